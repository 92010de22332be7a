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
use tonic::Status;

/// How long a key stays bound to its request (as Stripe keeps its keys).
pub use refer_client::provision::IDEMPOTENCY_KEPT as KEPT;

#[derive(Clone)]
pub struct KeyBook {
    tree: sled::Tree,
    bucket: std::sync::Arc<std::sync::Mutex<kv::Store>>,
    /// To create the bucket again: a bucket in memory is gone when every
    /// node that held it restarted.
    js: async_nats::jetstream::Context,
    spec: crate::buckets::Bucket,
}

fn wrong_request() -> Status {
    invalid(
        "idempotency_key",
        "was already used for a different request; use a fresh key for each request",
    )
}

impl KeyBook {
    /// The bindings in `bucket` (`refer_client::provision::idempotency`),
    /// with this replica's own copy in `db`.
    pub async fn open(
        db: &sled::Db,
        js: &async_nats::jetstream::Context,
        bucket: &crate::buckets::Bucket,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            tree: db.open_tree("idempotency-requests")?,
            bucket: std::sync::Arc::new(std::sync::Mutex::new(bucket.open(js).await?)),
            js: js.clone(),
            spec: bucket.clone(),
        })
    }

    /// Creates the binding, opening the bucket again once if
    /// it failed for another reason than the binding's existence. A failure
    /// comes with the bucket the binding was tried in.
    async fn create(&self, entry: &str, value: &[u8]) -> Result<(), (kv::Store, kv::CreateError)> {
        let bucket = self.bucket.lock().expect("bucket lock").clone();
        let failed = match bucket.create(entry, value.to_vec().into()).await {
            Ok(_) => return Ok(()),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => return Err((bucket, err)),
            Err(err) => err,
        };
        let bucket = match self.spec.open_now(&self.js).await {
            Ok(again) => again,
            Err(reopen) if reopen.to_string().contains("does not exist") => {
                // Every node's memory lost at once (a whole cluster
                // restarted), and no service may make a bucket: the check
                // is this replica's alone until the operator provisions
                // again. Nothing is applied twice either way (the store's
                // own per-aggregate keys guard that).
                tracing::warn!(bucket = %self.spec.name, "the idempotency bucket is gone: binding keys on this replica only until the operator runs `refer admin provision`");
                refer_metrics::count(
                    "refer_idempotency_bucket_missing_total",
                    "Idempotency keys bound on one replica only, as the shared bucket was gone.",
                    &[],
                    1.0,
                );
                return Ok(());
            }
            Err(reopen) => {
                tracing::warn!(error = %reopen, bucket = %self.spec.name, "the idempotency bucket cannot be opened again");
                return Err((bucket, failed));
            }
        };
        tracing::info!(error = %failed, bucket = %self.spec.name, "the idempotency bucket was opened again");
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
