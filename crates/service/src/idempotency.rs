//! One rule for idempotency keys in every service: a key names one request.
//! The same request again (a retry) gets the first one's outcome; a
//! different request under a key already used by the caller's organisation
//! is refused with INVALID_ARGUMENT naming `idempotency_key`, and nothing is
//! applied. As with Stripe's keys, a key is bound to its request on first
//! use, whatever that request's outcome.
//!
//! The binding (organisation, key) -> fingerprint of the request (its type
//! and encoded bytes) is kept in the service's sled database. It guards
//! against a client's mistake; the store's own idempotency (per aggregate,
//! and the stream's message ids) is what keeps a retry from applying twice,
//! so losing this tree loses the check, never data.

use crate::{invalid, Principal};
use refer_domain::IdempotencyKey;
use sha2::{Digest, Sha256};
use tonic::Status;

#[derive(Clone)]
pub struct KeyBook {
    tree: sled::Tree,
}

impl KeyBook {
    pub fn open(db: &sled::Db) -> sled::Result<Self> {
        Ok(Self {
            tree: db.open_tree("idempotency-requests")?,
        })
    }

    /// Binds `key` to `request` for the caller's organisation, or checks
    /// that it is bound to this very request.
    pub fn bind<T: prost::Message>(&self, who: &Principal, key: &IdempotencyKey, request: &T) -> Result<(), Status> {
        let mut hash = Sha256::new();
        hash.update(std::any::type_name::<T>().as_bytes());
        hash.update(request.encode_to_vec());
        let fingerprint: [u8; 32] = hash.finalize().into();
        let name = format!("{}/{}", who.org.as_uuid(), key.as_str());
        let outcome = self
            .tree
            .compare_and_swap(name.as_bytes(), None as Option<&[u8]>, Some(&fingerprint[..]))
            .map_err(|e| Status::unavailable(format!("idempotency records: {e}")))?;
        match outcome {
            Ok(()) => Ok(()),
            Err(current) if current.current.as_deref() == Some(&fingerprint[..]) => Ok(()),
            Err(_) => Err(invalid(
                "idempotency_key",
                "was already used for a different request; use a fresh key for each request",
            )),
        }
    }
}
