//! Sealed content as the domain carries it: ciphertext and the name of the
//! data key that opens it. The domain never sees a key or a plaintext; the
//! sealing itself is `crates/sealed`. Erasing the named key (crypto-shredding)
//! makes every copy of the ciphertext, on the stream included, unreadable.

use crate::error::DomainError;
use serde::{Deserialize, Serialize};

/// The largest plaintext sealed into an event: a hand-off, a note, a contact.
pub const MAX_SEALED_TEXT: usize = 1024;
/// The largest ciphertext an event carries: a text and a short name with it
/// (a hand-off names its site), plus the AEAD's tag.
pub const MAX_SEALED_BYTES: usize = 2 * MAX_SEALED_TEXT;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Sealed {
    /// The data key's name in the key store (random, says nothing).
    pub item: String,
    pub nonce: [u8; 24],
    pub ciphertext: Vec<u8>,
}

impl Sealed {
    /// Refuses ciphertext too large to hold at most `MAX_SEALED_TEXT` bytes.
    pub fn validate(&self, field: &str) -> Result<(), DomainError> {
        if self.item.is_empty() || self.item.len() > 200 {
            return Err(DomainError::invalid(
                format!("{field}.item"),
                "must be 1-200 characters",
            ));
        }
        if self.ciphertext.len() > MAX_SEALED_BYTES {
            return Err(DomainError::invalid(
                field,
                format!("must seal at most {MAX_SEALED_TEXT} bytes of text"),
            ));
        }
        Ok(())
    }
}
