//! Sealed data, one mechanism for everything Refer must share or keep but
//! must be able to erase for good: a hand-off, a note, a case reference.
//!
//! Each item is encrypted with its own random data key (XChaCha20-Poly1305,
//! RustCrypto's `chacha20poly1305`; random 24-byte nonces). The data key is
//! wrapped by the key-encryption key (KEK, read from a file named in the
//! configuration, never on the bus or in a log) and kept in a JetStream
//! key-value bucket replicated like the stream. The ciphertext ([`Sealed`])
//! may travel anywhere, the immutable stream included; a key never does.
//!
//! Erasing an item purges its data key and the key's history from the
//! bucket: the ciphertext left in the stream can then never be read again,
//! by anyone, the KEK's holder included (crypto-shredding).
//!
//! Rotation: start the services with the new KEK as `current` and the old
//! one among `previous`, then call [`Vault::rotate`]: every wrapped key is
//! re-wrapped under the new KEK (by revision, so a concurrent erase wins),
//! after which the old KEK file can be destroyed. Each wrapped key names
//! the KEK that wrapped it (the first 8 bytes of its SHA-256).
#![forbid(unsafe_code)]

use bytes::Bytes;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("key-encryption key {path}: {reason}")]
    Kek { path: String, reason: String },
    #[error("sealed item {0:?} was erased (or never sealed): it cannot be read")]
    Erased(String),
    #[error("sealed item {0:?} does not open: altered, or sealed for another purpose")]
    Tampered(String),
    #[error("sealed item {0:?} is already sealed")]
    Exists(String),
    #[error("item name {0:?} must be 1-200 of A-Z a-z 0-9 - _ . =")]
    Name(String),
    #[error("the data key of {item:?} was wrapped by key-encryption key {kek}, which this service does not have")]
    UnknownKek { item: String, kek: String },
    #[error("key store unavailable: {0}")]
    Unavailable(String),
}

/// A key-encryption key and its id.
#[derive(Clone)]
pub struct Kek {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kek({})", self.id) // never the key
    }
}

impl Kek {
    /// Reads a KEK file: 64 hex digits (32 bytes; `openssl rand -hex 32`).
    /// A missing, short or malformed file is refused with the path named.
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let refuse = |reason: &str| SealError::Kek {
            path: path.display().to_string(),
            reason: reason.to_owned(),
        };
        let text = std::fs::read_to_string(path).map_err(|e| refuse(&format!("cannot be read: {e}")))?;
        let bytes = hex::decode(text.trim()).map_err(|_| refuse("must hold 64 hex digits (32 random bytes)"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| refuse("must hold 64 hex digits (32 random bytes): it is too short or too long"))?;
        Ok(Self::from_bytes(key))
    }

    pub fn from_bytes(key: [u8; 32]) -> Self {
        let id = hex::encode(&Sha256::digest(key)[..8]);
        Self {
            id,
            cipher: XChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// The KEK's id, as wrapped keys name it (safe to log).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// What sealing gives back (the domain's type): safe to store or send anywhere.
pub use refer_domain::sealed::Sealed;

/// A fresh item name: `<kind>.` and 32 random hex digits, so the name says
/// nothing about the item and a retried request never collides.
pub fn item(kind: &str) -> String {
    let mut bytes = [0u8; 16];
    chacha20poly1305::aead::rand_core::RngCore::fill_bytes(&mut OsRng, &mut bytes);
    format!("{kind}.{}", hex::encode(bytes))
}

/// A data key as the bucket holds it.
#[derive(Serialize, Deserialize)]
struct Wrapped {
    kek: String,
    nonce: [u8; 24],
    key: Vec<u8>,
}

/// The sealed-data store of one bucket.
#[derive(Clone)]
pub struct Vault {
    bucket: async_nats::jetstream::kv::Store,
    current: Kek,
    previous: Vec<Kek>,
}

fn valid_name(item: &str) -> Result<String, SealError> {
    let ok = !item.is_empty()
        && item.len() <= 200
        && item
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='));
    if ok {
        Ok(format!("dek.{item}"))
    } else {
        Err(SealError::Name(item.to_owned()))
    }
}

fn unavailable(e: impl std::fmt::Display) -> SealError {
    SealError::Unavailable(e.to_string())
}

impl Vault {
    /// Opens (creating if needed) the bucket `name` with `replicas` copies.
    /// Only the latest revision of a key is kept, so a purge leaves nothing.
    pub async fn open(
        jetstream: &async_nats::jetstream::Context,
        name: &str,
        replicas: usize,
        current: Kek,
        previous: Vec<Kek>,
    ) -> Result<Self, SealError> {
        let bucket = match jetstream.get_key_value(name).await {
            Ok(bucket) => bucket,
            Err(_) => jetstream
                .create_key_value(async_nats::jetstream::kv::Config {
                    bucket: name.to_owned(),
                    description: "Refer's wrapped data keys (see crates/sealed)".into(),
                    history: 1,
                    num_replicas: replicas,
                    storage: async_nats::jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(unavailable)?,
        };
        Ok(Self {
            bucket,
            current,
            previous,
        })
    }

    /// Seals `plaintext` as `item` (a name used once), bound to `purpose`
    /// (authenticated, not secret: the same purpose is needed to open it).
    pub async fn seal(&self, item: &str, plaintext: &[u8], purpose: &[u8]) -> Result<Sealed, SealError> {
        let name = valid_name(item)?;
        let data_key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let wrap_nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let wrapped = Wrapped {
            kek: self.current.id.clone(),
            nonce: wrap_nonce.into(),
            key: self
                .current
                .cipher
                .encrypt(
                    &wrap_nonce,
                    Payload {
                        msg: &data_key,
                        aad: name.as_bytes(),
                    },
                )
                .expect("wrapping a key cannot fail"),
        };
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = [name.as_bytes(), b"\0", purpose].concat();
        let ciphertext = XChaCha20Poly1305::new(&data_key)
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("encryption cannot fail");
        let bytes = postcard::to_stdvec(&wrapped).expect("wrapped keys encode");
        self.bucket.create(&name, Bytes::from(bytes)).await.map_err(|e| {
            if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists {
                SealError::Exists(item.to_owned())
            } else {
                unavailable(e)
            }
        })?;
        Ok(Sealed {
            item: item.to_owned(),
            nonce: nonce.into(),
            ciphertext,
        })
    }

    /// Seals text under a fresh name of `kind` (see [`item`]).
    pub async fn seal_text(&self, kind: &str, text: &str, purpose: &str) -> Result<Sealed, SealError> {
        self.seal(&item(kind), text.as_bytes(), purpose.as_bytes()).await
    }

    /// Opens text sealed by [`Vault::seal_text`] for `purpose`.
    pub async fn open_text(&self, sealed: &Sealed, purpose: &str) -> Result<String, SealError> {
        let bytes = self.open_sealed(sealed, purpose.as_bytes()).await?;
        String::from_utf8(bytes).map_err(|_| SealError::Tampered(sealed.item.clone()))
    }

    /// Opens `sealed` (sealed for `purpose`).
    pub async fn open_sealed(&self, sealed: &Sealed, purpose: &[u8]) -> Result<Vec<u8>, SealError> {
        let item = sealed.item.as_str();
        let name = valid_name(item)?;
        let bytes = self
            .bucket
            .get(&name)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| SealError::Erased(item.to_owned()))?;
        let data_key = self.unwrap(item, &name, &bytes)?;
        let aad = [name.as_bytes(), b"\0", purpose].concat();
        XChaCha20Poly1305::new(Key::from_slice(&data_key))
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Tampered(item.to_owned()))
    }

    fn unwrap(&self, item: &str, name: &str, bytes: &[u8]) -> Result<Vec<u8>, SealError> {
        let wrapped: Wrapped = postcard::from_bytes(bytes).map_err(|_| SealError::Tampered(item.to_owned()))?;
        let kek = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == wrapped.kek)
            .ok_or_else(|| SealError::UnknownKek {
                item: item.to_owned(),
                kek: wrapped.kek.clone(),
            })?;
        kek.cipher
            .decrypt(
                XNonce::from_slice(&wrapped.nonce),
                Payload {
                    msg: &wrapped.key,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| SealError::Tampered(item.to_owned()))
    }

    /// Erases `item` for good: its data key and the key's history are
    /// purged from the bucket. Erasing twice, or an unknown item, is fine.
    pub async fn erase(&self, item: &str) -> Result<(), SealError> {
        let name = valid_name(item)?;
        self.bucket.purge(&name).await.map_err(unavailable)
    }

    /// Re-wraps every data key not wrapped by the current KEK; returns how
    /// many. A key erased meanwhile stays erased (updates go by revision).
    pub async fn rotate(&self) -> Result<usize, SealError> {
        let names: Vec<String> = self
            .bucket
            .keys()
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        let mut rewrapped = 0;
        for name in names {
            let Some(entry) = self.bucket.entry(&name).await.map_err(unavailable)? else {
                continue;
            };
            if entry.value.is_empty() {
                continue;
            }
            let wrapped: Wrapped = postcard::from_bytes(&entry.value).map_err(|_| SealError::Tampered(name.clone()))?;
            if wrapped.kek == self.current.id {
                continue;
            }
            let item = name.trim_start_matches("dek.");
            let data_key = self.unwrap(item, &name, &entry.value)?;
            let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
            let fresh = Wrapped {
                kek: self.current.id.clone(),
                nonce: nonce.into(),
                key: self
                    .current
                    .cipher
                    .encrypt(
                        &nonce,
                        Payload {
                            msg: &data_key,
                            aad: name.as_bytes(),
                        },
                    )
                    .expect("wrapping a key cannot fail"),
            };
            let bytes = Bytes::from(postcard::to_stdvec(&fresh).expect("wrapped keys encode"));
            match self.bucket.update(&name, bytes, entry.revision).await {
                Ok(_) => rewrapped += 1,
                // Erased or changed meanwhile: leave it as it is now.
                Err(err) => tracing::info!(key = %name, error = %err, "not re-wrapped: changed meanwhile"),
            }
        }
        Ok(rewrapped)
    }
}
