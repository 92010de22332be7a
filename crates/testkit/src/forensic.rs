//! The attacker of the erasure tests: someone holding a copy of every
//! node's store directory and the key-encryption key, who knows how
//! `crates/sealed` lays out a wrapped data key (the code is open) and looks
//! for every copy of one anywhere in the files, live or deleted, in message
//! blocks, Raft logs or snapshots. A data key that unwraps under the KEK for
//! an item's name is that item recovered: the wrap is authenticated with the
//! name, so a match is never a false positive.
//!
//! It depends on nothing of the code it attacks, only on the layout: postcard
//! of `{ kek: String, nonce: [u8; 24], key: Vec<u8> }`, the KEK's id being
//! the hex of the first 8 bytes of its SHA-256, and the name `dek.<item>`
//! as associated data.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A data key (32 bytes) wrapped with a 16-byte tag.
const WRAPPED_LEN: usize = 48;

/// Copies `from` into a new directory under `into` (as a backup would).
pub fn copy_dir(from: &Path, into: &Path) -> std::io::Result<PathBuf> {
    let to = into.join(format!("copy-{}", std::fs::read_dir(into)?.count()));
    let mut stack = vec![(from.to_path_buf(), to.clone())];
    while let Some((src, dst)) = stack.pop() {
        std::fs::create_dir_all(&dst)?;
        for entry in std::fs::read_dir(&src)? {
            let entry = entry?;
            let target = dst.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                stack.push((entry.path(), target));
            } else {
                // A file the server removes meanwhile is simply not copied.
                let _ = std::fs::copy(entry.path(), target);
            }
        }
    }
    Ok(to)
}

/// For each of `items` whose data key can be recovered from the files under
/// `dirs` with `kek`: how many copies of its wrapped key were found.
pub fn recover(dirs: &[PathBuf], kek: [u8; 32], items: &[String]) -> BTreeMap<String, usize> {
    let id = hex::encode(&Sha256::digest(kek)[..8]);
    let mut marker = vec![id.len() as u8];
    marker.extend_from_slice(id.as_bytes());
    let cipher = XChaCha20Poly1305::new(Key::from_slice(&kek));
    let mut found = BTreeMap::new();
    for file in files(dirs) {
        let Ok(bytes) = std::fs::read(&file) else { continue };
        let mut at = 0;
        while let Some(pos) = find(&bytes[at..], &marker) {
            let start = at + pos + marker.len();
            at += pos + 1;
            let Some(rest) = bytes.get(start..) else { break };
            if rest.len() < 24 + 1 + WRAPPED_LEN || rest[24] as usize != WRAPPED_LEN {
                continue;
            }
            let nonce = XNonce::from_slice(&rest[..24]);
            let wrapped = &rest[25..25 + WRAPPED_LEN];
            for item in items {
                let aad = format!("dek.{item}");
                let payload = Payload {
                    msg: wrapped,
                    aad: aad.as_bytes(),
                };
                if cipher.decrypt(nonce, payload).is_ok() {
                    *found.entry(item.clone()).or_insert(0) += 1;
                }
            }
        }
    }
    found
}

fn files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = dirs.to_vec();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
