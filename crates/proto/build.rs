//! Compiles the contracts in `proto/` with the vendored `protoc`, so a fresh
//! machine needs nothing but cargo. Also writes the descriptor set that the
//! services expose through gRPC reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files: Vec<PathBuf> = ["common", "capacity", "donations", "intake", "matcher"]
        .iter()
        .map(|name| root.join(format!("refer/{name}/v1/{name}.proto")))
        .collect();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    // Build scripts are single-threaded; prost-build reads PROTOC.
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // Bad bytes in a request answer INVALID_ARGUMENT (see src/codec.rs).
        .codec_path("crate::codec::ReferCodec")
        .file_descriptor_set_path(out.join("refer_descriptor.bin"))
        .compile_protos(&files, &[root])?;
    Ok(())
}
