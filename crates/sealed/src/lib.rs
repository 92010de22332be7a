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
//! Erasing an item deletes every stored copy of its wrapped data key with
//! JetStream's secure delete, which overwrites the message with random bytes
//! on every node's disk (a key-value purge would only add a marker and leave
//! the old bytes in the block files). The ciphertext left in the stream can
//! then never be read again, by anyone, the KEK's holder included
//! (crypto-shredding). So the bucket is made here, as a key-value bucket
//! that permits message deletes (async-nats makes them with `deny_delete`,
//! which a stream can never drop), and read from its stream's leader only,
//! so an erase never misses a key a lagging follower has not seen yet.
//! What JetStream cannot overwrite is bounded in docs/privacy.md: the Raft
//! log of a replicated bucket until its next snapshot, a node that is down
//! at the time, and backups, which die with the KEK that wrapped them.
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

/// The sealed-data store of one sealing service: the bucket it seals into
/// and erases from, and those of the services whose items it reads (and
/// may erase, where the bus lets it).
#[derive(Clone)]
pub struct Vault {
    own: Keys,
    others: Vec<Keys>,
    current: Kek,
    previous: Vec<Kek>,
}

/// One key bucket and its stream (whose messages secure deletes overwrite).
#[derive(Clone)]
struct Keys {
    bucket: async_nats::jetstream::kv::Store,
    stream: async_nats::jetstream::stream::Stream,
}

impl Keys {
    /// Opens bucket `name`, refusing one that could not erase for good.
    async fn open(jetstream: &async_nats::jetstream::Context, name: &str) -> Result<Self, SealError> {
        let stream_name = format!("KV_{name}");
        let stream = jetstream.get_stream(&stream_name).await.map_err(|e| {
            SealError::Unavailable(match e.to_string().contains("not found") {
                true => format!(
                    "the sealed-key bucket {name} does not exist: the operator makes it (`refer admin provision`, \
                     docs/operations.md); no service may"
                ),
                false => format!("the sealed-key bucket {name}: {e}"),
            })
        })?;
        let config = &stream.cached_info().config;
        if config.deny_delete || config.allow_direct {
            return Err(SealError::Unavailable(format!(
                "bucket {name} refuses secure deletes or reads from followers, so erasure could not be for good; \
                 it was not made by this version (docs/operations.md: moving the sealed keys)"
            )));
        }
        refuse_unsafe_bucket(name, config).map_err(SealError::Unavailable)?;
        refer_eventstore::refuse_unlike(&bucket_config(name, config.num_replicas), config, &[])
            .map_err(SealError::Unavailable)?;
        // From the stream in hand: looked up again at once, a bucket just
        // made in a cluster may not be found yet.
        let bucket = async_nats::jetstream::kv::Store {
            name: name.to_owned(),
            stream_name,
            prefix: format!("$KV.{name}."),
            put_prefix: None,
            use_jetstream_prefix: false,
            stream: stream.clone(),
        };
        Ok(Self { bucket, stream })
    }

    /// Deletes every stored revision of `name`'s key, newest first,
    /// overwriting each, until the leader has none.
    async fn erase(&self, item: &str, name: &str) -> Result<(), SealError> {
        // A rotation may add a revision meanwhile; each pass removes one.
        for _ in 0..=HISTORY + 2 {
            let Some(entry) = self.bucket.entry(name).await.map_err(unavailable)? else {
                return Ok(());
            };
            self.overwrite(entry.revision).await?;
        }
        Err(SealError::Unavailable(format!(
            "the data key of {item:?} kept changing while it was erased"
        )))
    }

    /// Deletes one message of the bucket's stream, overwriting it.
    async fn overwrite(&self, sequence: u64) -> Result<(), SealError> {
        use async_nats::jetstream::stream::DeleteMessageErrorKind;
        match self.stream.delete_message(sequence).await {
            Ok(_) => Ok(()),
            // Gone already (erased by another replica, or replaced): the
            // server says so only in words, under the code of every failed delete.
            Err(e)
                if matches!(e.kind(), DeleteMessageErrorKind::JetStream(ref j)
                if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_MESSAGE_DELETE_FAILED
                    && j.to_string().contains("no message found")) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// The key bucket of the sealing service `sealer` (`capacity`, `donations`
/// or `intake`) on the event stream `stream`: each seals into its own, so
/// the bus can keep one from erasing another's items (secure erasure is by
/// a stream's sequence, which no subject permission can narrow).
pub fn bucket_for(stream: &str, sealer: &str) -> String {
    format!("{stream}_DATA_KEYS_{}", sealer.to_uppercase())
}

/// The key bucket earlier versions kept (a plain key-value bucket, whose
/// purges leave old bytes on disk); [`migrate`] moves it.
pub fn legacy_bucket_for(stream: &str) -> String {
    format!("{stream}_SEALED")
}

/// The one key bucket every sealing service shared before each had its
/// own; [`migrate`] moves it.
pub fn shared_bucket_for(stream: &str) -> String {
    format!("{stream}_DATA_KEYS")
}

/// The buckets of earlier versions, oldest first.
pub fn earlier_buckets_for(stream: &str) -> [String; 2] {
    [legacy_bucket_for(stream), shared_bucket_for(stream)]
}

/// How a key bucket is made ([`Vault::create_bucket`]) and checked.
fn bucket_config(name: &str, replicas: usize) -> async_nats::jetstream::stream::Config {
    use async_nats::jetstream::stream;
    stream::Config {
        name: format!("KV_{name}"),
        description: Some("Refer's wrapped data keys (see crates/sealed)".into()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: HISTORY,
        storage: stream::StorageType::File,
        num_replicas: replicas.max(1),
        // A rollup from any writer would wipe every key at once.
        allow_rollup: false,
        deny_delete: false,
        deny_purge: false,
        // Reads go to the leader: a follower may not have a key
        // sealed a moment ago, and an erase must not miss it.
        allow_direct: false,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// Revisions kept per key: the current one and, for the moment a rotation
/// takes, the one it replaces (which it then erases itself, rather than let
/// the server drop it without overwriting it).
const HISTORY: i64 = 2;

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

/// Every key name `bucket` holds.
async fn key_names(bucket: &async_nats::jetstream::kv::Store) -> Result<Vec<String>, SealError> {
    bucket
        .keys()
        .await
        .map_err(unavailable)?
        .try_collect()
        .await
        .map_err(unavailable)
}

fn unavailable(e: impl std::fmt::Display) -> SealError {
    SealError::Unavailable(e.to_string())
}

impl Vault {
    /// Makes the bucket `name` with `replicas` copies, or finds the one
    /// there: the operator's step (`refer admin provision`); a service
    /// only opens it ([`Vault::open`]).
    pub async fn create_bucket(
        jetstream: &async_nats::jetstream::Context,
        name: &str,
        replicas: usize,
    ) -> Result<(), SealError> {
        jetstream
            .get_or_create_stream(bucket_config(name, replicas))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Opens the bucket `name` the operator made ([`Vault::create_bucket`]).
    /// A bucket that refuses message deletes (one made by async-nats, or by
    /// an earlier Refer) is refused: its erasures could not overwrite.
    pub async fn open(
        jetstream: &async_nats::jetstream::Context,
        name: &str,
        current: Kek,
        previous: Vec<Kek>,
    ) -> Result<Self, SealError> {
        Ok(Self {
            own: Keys::open(jetstream, name).await?,
            others: Vec::new(),
            current,
            previous,
        })
    }

    /// The same store, also reading the items sealed into the buckets
    /// `names` (other services'): an item is looked for in this store's
    /// own bucket first, then in those, in order. Erasing one of them
    /// needs the bus's leave (deploy/nats/auth.conf).
    pub async fn reading(
        mut self,
        jetstream: &async_nats::jetstream::Context,
        names: &[String],
    ) -> Result<Self, SealError> {
        for name in names {
            self.others.push(Keys::open(jetstream, name).await?);
        }
        Ok(self)
    }

    /// Opens the key bucket of the sealing service `sealer` on the event
    /// stream `stream` ([`bucket_for`]), reading those of the services
    /// `reads` too, refusing while a bucket of an earlier version still
    /// holds keys: they must be moved first ([`migrate`]), with every
    /// service stopped.
    pub async fn open_for_stream(
        jetstream: &async_nats::jetstream::Context,
        stream: &str,
        sealer: &str,
        reads: &[&str],
        current: Kek,
        previous: Vec<Kek>,
    ) -> Result<Self, SealError> {
        for earlier in earlier_buckets_for(stream) {
            if jetstream.get_stream(format!("KV_{earlier}")).await.is_ok() {
                return Err(SealError::Unavailable(format!(
                    "the sealed-key bucket {earlier} of an earlier version is still there: stop every service and \
                     run `refer admin migrate-sealed --stream {stream}` (docs/operations.md)"
                )));
            }
        }
        let others: Vec<String> = reads.iter().map(|other| bucket_for(stream, other)).collect();
        Self::open(jetstream, &bucket_for(stream, sealer), current, previous)
            .await?
            .reading(jetstream, &others)
            .await
    }

    /// The bucket holding `name`'s key, and its value: this store's own
    /// first, then those it reads.
    async fn find(&self, name: &str) -> Result<Option<Bytes>, SealError> {
        for keys in std::iter::once(&self.own).chain(&self.others) {
            if let Some(value) = keys.bucket.get(name).await.map_err(unavailable)? {
                return Ok(Some(value));
            }
        }
        Ok(None)
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
        let bytes = Bytes::from(postcard::to_stdvec(&wrapped).expect("wrapped keys encode"));
        match self.own.bucket.create(&name, bytes.clone()).await {
            Ok(_) => {}
            // A write that timed out and was sent again may have landed the
            // first time: our own key (these very bytes) is not a clash.
            Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                let stored = self.own.bucket.get(&name).await.map_err(unavailable)?;
                if stored.as_ref() != Some(&bytes) {
                    return Err(SealError::Exists(item.to_owned()));
                }
            }
            Err(e) => return Err(unavailable(e)),
        }
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
            .find(&name)
            .await?
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

    /// Erases `item` for good: every stored revision of its data key is
    /// deleted with secure delete (overwritten on disk), newest first, until
    /// the leader has none, in this store's own bucket and in those it
    /// reads. Erasing twice, or an unknown item, is fine.
    pub async fn erase(&self, item: &str) -> Result<(), SealError> {
        let name = valid_name(item)?;
        for keys in std::iter::once(&self.own).chain(&self.others) {
            if keys.bucket.entry(&name).await.map_err(unavailable)?.is_some() {
                keys.erase(item, &name).await?;
            }
        }
        Ok(())
    }

    /// The names of the items whose data keys are live.
    pub async fn items(&self) -> Result<Vec<String>, SealError> {
        Ok(key_names(&self.own.bucket)
            .await?
            .into_iter()
            .filter_map(|n| n.strip_prefix("dek.").map(str::to_owned))
            .collect())
    }

    /// Re-wraps every data key of the store's own bucket not wrapped by the
    /// current KEK; returns how many. A key erased meanwhile stays erased
    /// (updates go by revision).
    pub async fn rotate(&self) -> Result<usize, SealError> {
        let names = key_names(&self.own.bucket).await?;
        let mut rewrapped = 0;
        for name in names {
            let Some(entry) = self.own.bucket.entry(&name).await.map_err(unavailable)? else {
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
            match self.own.bucket.update(&name, bytes, entry.revision).await {
                Ok(_) => {
                    // The old revision holds the same data key under the old
                    // KEK: overwrite it rather than leave it to the limit.
                    self.own.overwrite(entry.revision).await?;
                    rewrapped += 1
                }
                // Erased or changed meanwhile: leave it as it is now.
                Err(err) => tracing::info!(key = %name, error = %err, "not re-wrapped: changed meanwhile"),
            }
        }
        Ok(rewrapped)
    }
}

/// Moves every live data key of the event stream `stream` from the buckets
/// earlier versions kept ([`earlier_buckets_for`]: one whose purges left
/// old bytes on disk, then one every sealing service shared) into the
/// bucket of the service that sealed it ([`bucket_for`], with as many
/// copies; `sealer_of` names it from the item's name), then deletes the
/// old buckets' streams, files and all. Returns how many keys moved; with
/// no old bucket, moves nothing. Run it with every service stopped: an
/// erase racing the move could bring a key back.
pub async fn migrate(
    jetstream: &async_nats::jetstream::Context,
    stream: &str,
    sealer_of: impl Fn(&str) -> String,
) -> Result<usize, SealError> {
    let mut moved = 0;
    for earlier in earlier_buckets_for(stream) {
        let Ok(mut old_stream) = jetstream.get_stream(format!("KV_{earlier}")).await else {
            continue;
        };
        let replicas = old_stream.info().await.map_err(unavailable)?.config.num_replicas;
        let old = jetstream.get_key_value(&earlier).await.map_err(unavailable)?;
        let names = key_names(&old).await?;
        // The KEKs are not needed: wrapped keys move as they are.
        let mut to: std::collections::BTreeMap<String, Vault> = Default::default();
        for name in names {
            let Some(value) = old.get(&name).await.map_err(unavailable)? else {
                continue; // purged: erased
            };
            if value.is_empty() {
                continue;
            }
            let bucket = bucket_for(stream, &sealer_of(name.trim_start_matches("dek.")));
            if !to.contains_key(&bucket) {
                Vault::create_bucket(jetstream, &bucket, replicas).await?;
                let unused = Kek::from_bytes([0; 32]);
                to.insert(bucket.clone(), Vault::open(jetstream, &bucket, unused, vec![]).await?);
            }
            match to[&bucket].own.bucket.create(&name, value).await {
                Ok(_) => moved += 1,
                // Moved by an earlier, interrupted run.
                Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => moved += 1,
                Err(e) => return Err(unavailable(e)),
            }
        }
        jetstream
            .delete_stream(format!("KV_{earlier}"))
            .await
            .map_err(unavailable)?;
    }
    Ok(moved)
}

/// Refuses key-value bucket `name` if its stream allows rollups (made by
/// async-nats or an earlier Refer): one `Nats-Rollup: all` from any
/// credential that may write it would wipe it whole, and no subject
/// permission can forbid a header. Refuses it too if its stream is not
/// the bucket's alone (other subjects, a mirror, sources, a republish).
/// Every bucket Refer opens is checked here, the sealed keys', the
/// service shell's and the console's alike.
pub fn refuse_unsafe_bucket(name: &str, config: &async_nats::jetstream::stream::Config) -> Result<(), String> {
    if config.allow_rollup {
        return Err(format!(
            "the key-value bucket {name} allows rollups, so any credential that writes it could wipe it whole; \
             it was made by an earlier version: run `refer admin harden-buckets` with the operator's credential \
             (docs/operations.md, \"Upgrading\")"
        ));
    }
    refer_eventstore::refuse_foreign_stream(config, &[format!("$KV.{name}.>")])
}
