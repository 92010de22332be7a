//! One rule for idempotency keys in every service: a key names one request.
//! The same request again (a retry) gets the first one's outcome; a
//! different request under a key already used by the caller's organisation
//! is refused with INVALID_ARGUMENT naming `idempotency_key`, and nothing is
//! applied. As with Stripe's keys, a key is bound to its request on first
//! use, whatever that request's outcome.
//!
//! The binding (organisation, key) -> fingerprint of the request (its type
//! and encoded bytes) is kept where every replica of every service sees it:
//! the JetStream key-value bucket `<stream>_KEYS`, replicated like the
//! stream (in memory: see `KeyBook::open`), whose `create` binds a key once
//! across all replicas. Each replica
//! also keeps the bindings it has seen in its sled database, so a retry to
//! the same replica is checked without a round trip. A binding lives
//! [`KEPT`] (the bucket's max age); the store's own idempotency (per
//! aggregate, and the stream's message ids) is what keeps a retry from
//! applying twice, so this guards against a client's mistake, and losing it
//! loses the check, never data.

use crate::{invalid, Principal};
use async_nats::jetstream::kv;
use refer_domain::IdempotencyKey;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tonic::Status;

/// How long a key stays bound to its request (as Stripe keeps its keys).
pub const KEPT: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
pub struct KeyBook {
    tree: sled::Tree,
    bucket: std::sync::Arc<std::sync::Mutex<kv::Store>>,
    /// To create the bucket again: a bucket in memory is gone when every
    /// node that held it restarted.
    js: async_nats::jetstream::Context,
    name: String,
    replicas: usize,
}

const DESCRIPTION: &str = "Idempotency keys bound to their requests (refer_service::idempotency)";

fn wrong_request() -> Status {
    invalid(
        "idempotency_key",
        "was already used for a different request; use a fresh key for each request",
    )
}

impl KeyBook {
    /// The bindings in bucket `name` (created with `replicas` copies if
    /// absent), with this replica's own copy in `db`.
    pub async fn open(
        db: &sled::Db,
        js: &async_nats::jetstream::Context,
        name: &str,
        replicas: usize,
    ) -> anyhow::Result<Self> {
        let bucket = Self::bucket(js, name, replicas).await?;
        Ok(Self {
            tree: db.open_tree("idempotency-requests")?,
            bucket: std::sync::Arc::new(std::sync::Mutex::new(bucket)),
            js: js.clone(),
            name: name.to_owned(),
            replicas,
        })
    }

    /// In memory, replicated: a binding costs a round trip, not an fsync
    /// (every command makes one), and losing every node's memory at once
    /// loses the check, never data.
    async fn bucket(js: &async_nats::jetstream::Context, name: &str, replicas: usize) -> anyhow::Result<kv::Store> {
        crate::buckets::open(js, name, DESCRIPTION, replicas, KEPT, crate::buckets::Storage::Memory).await
    }

    /// Creates the binding, opening (or creating) the bucket again once if
    /// it failed for another reason than the binding's existence. A failure
    /// comes with the bucket the binding was tried in.
    async fn create(&self, entry: &str, value: &[u8]) -> Result<(), (kv::Store, kv::CreateError)> {
        let bucket = self.bucket.lock().expect("bucket lock").clone();
        let failed = match bucket.create(entry, value.to_vec().into()).await {
            Ok(_) => return Ok(()),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => return Err((bucket, err)),
            Err(err) => err,
        };
        let bucket = match Self::bucket(&self.js, &self.name, self.replicas).await {
            Ok(again) => again,
            Err(reopen) => {
                tracing::warn!(error = %reopen, bucket = %self.name, "the idempotency bucket cannot be opened again");
                return Err((bucket, failed));
            }
        };
        tracing::info!(error = %failed, bucket = %self.name, "the idempotency bucket was opened again");
        *self.bucket.lock().expect("bucket lock") = bucket.clone();
        match bucket.create(entry, value.to_vec().into()).await {
            Ok(_) => Ok(()),
            Err(err) => Err((bucket, err)),
        }
    }

    /// Whether `key` is bound to this very `request` already (a retry),
    /// without binding it.
    pub async fn bound_to<T: prost::Message>(
        &self,
        who: &Principal,
        key: &IdempotencyKey,
        request: &T,
    ) -> Result<bool, Status> {
        let (name, fingerprint) = (binding_name(who, key), fingerprint(request));
        let unavailable = |e: &dyn std::fmt::Display| Status::unavailable(format!("idempotency records: {e}"));
        if let Some(bound) = self.tree.get(name.as_bytes()).map_err(|e| unavailable(&e))? {
            if bound.get(..32) == Some(&fingerprint[..]) {
                return Ok(true);
            }
        }
        let entry = hex::encode(Sha256::digest(name.as_bytes()));
        let bucket = self.bucket.lock().expect("bucket lock").clone();
        let bound = bucket.get(&entry).await.map_err(|e| unavailable(&e))?;
        Ok(bound.is_some_and(|value| value.as_ref() == fingerprint))
    }

    /// Binds `key` to `request` for the caller's organisation, or checks
    /// that it is bound to this very request, on whichever replica it was
    /// first used.
    pub async fn bind<T: prost::Message>(
        &self,
        who: &Principal,
        key: &IdempotencyKey,
        request: &T,
    ) -> Result<(), Status> {
        let (name, fingerprint) = (binding_name(who, key), fingerprint(request));
        let unavailable = |e: &dyn std::fmt::Display| Status::unavailable(format!("idempotency records: {e}"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some(bound) = self.tree.get(name.as_bytes()).map_err(|e| unavailable(&e))? {
            // Fingerprint, then when it was bound (seconds); a binding past
            // `KEPT` is looked up again, as the bucket forgot it.
            let (seen, at) = bound.split_at(32.min(bound.len()));
            let at = at.try_into().map_or(now, u64::from_be_bytes);
            if now.saturating_sub(at) < KEPT.as_secs() {
                return if seen == fingerprint {
                    Ok(())
                } else {
                    Err(wrong_request())
                };
            }
        }
        // The bucket's keys: a hash of the name (any key's characters fit,
        // and no caller's key is spelled out on the bus).
        let entry = hex::encode(Sha256::digest(name.as_bytes()));
        // While the bucket's group elects a leader (a node died), its
        // answers fail for a few seconds: ride it out as the store does.
        let started = std::time::Instant::now();
        let bound = loop {
            match self.bound_in_bucket(&entry, &fingerprint).await {
                Ok(bound) => break bound,
                Err(err) if started.elapsed() < refer_eventstore::RIDE_OUT => {
                    tracing::debug!(error = %err, "idempotency bucket not answering; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                }
                Err(err) => return Err(unavailable(&err)),
            }
        };
        let local = [&bound[..], &now.to_be_bytes()].concat();
        self.tree.insert(name.as_bytes(), local).map_err(|e| unavailable(&e))?;
        if bound == fingerprint {
            Ok(())
        } else {
            Err(wrong_request())
        }
    }

    /// What the bucket binds `entry` to: `fingerprint` if it was free.
    async fn bound_in_bucket(&self, entry: &str, fingerprint: &[u8; 32]) -> Result<Vec<u8>, String> {
        match self.create(entry, fingerprint).await {
            Ok(_) => Ok(fingerprint.to_vec()),
            Err((bucket, err)) if err.kind() == kv::CreateErrorKind::AlreadyExists => {
                match bucket.get(entry).await.map_err(|e| e.to_string())? {
                    Some(value) => Ok(value.to_vec()),
                    // Expired between the two calls: bind it now.
                    None => {
                        bucket
                            .put(entry, fingerprint.to_vec().into())
                            .await
                            .map_err(|e| e.to_string())?;
                        Ok(fingerprint.to_vec())
                    }
                }
            }
            Err((_, err)) => Err(err.to_string()),
        }
    }
}

/// What a request is known by in its binding: its type and bytes, hashed.
fn fingerprint<T: prost::Message>(request: &T) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(std::any::type_name::<T>().as_bytes());
    hash.update(request.encode_to_vec());
    hash.finalize().into()
}

/// A binding's name: the caller's organisation and the key.
fn binding_name(who: &Principal, key: &IdempotencyKey) -> String {
    format!("{}/{}", who.org.as_uuid(), key.as_str())
}
