//! `refer solve`: the matching engine on a problem instance from a file, no
//! services needed, so anyone can check it on their own data.

use anyhow::{bail, Context};
use refer_matching::{Instance, Mode};
use std::io::Read;
use std::path::Path;

/// Instances beyond this size are refused before they are parsed.
const MAX_INSTANCE_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum SolveMode {
    /// The optimum of the model, all needs together.
    Batch,
    /// Each need in arrival order at the nearest site with room.
    Greedy,
}

pub fn run(file: &Path, mode: SolveMode) -> anyhow::Result<()> {
    let mut text = String::new();
    let source: Box<dyn Read> = if file == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?)
    };
    source
        .take(MAX_INSTANCE_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", file.display()))?;
    if text.len() as u64 > MAX_INSTANCE_BYTES {
        bail!("{} is larger than {MAX_INSTANCE_BYTES} bytes", file.display());
    }
    let instance: Instance = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a problem instance (the format is in docs/matching.md)",
            file.display()
        )
    })?;
    instance.validate().context("invalid instance")?;
    let mode = match mode {
        SolveMode::Batch => Mode::Batch,
        SolveMode::Greedy => Mode::Greedy,
    };
    println!("{}", serde_json::to_string_pretty(&instance.solve(mode))?);
    Ok(())
}
