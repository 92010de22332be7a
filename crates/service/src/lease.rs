//! Leadership without a home-made consensus: a lease is one entry of a
//! JetStream key-value bucket whose entries live `ttl` (the bucket's
//! `max_age`). Taking it is `create` (only when absent), keeping it is
//! `update` by revision every third of the ttl; a holder that dies stops
//! renewing, the entry expires, and a standby's `create` succeeds.
//!
//! The holder also fences itself: it counts the lease as held only for
//! two thirds of the ttl after its last successful renewal, by its own
//! monotonic clock. A process paused past that (SIGSTOP, a long GC, a
//! frozen VM) wakes up not holding it, before it could act on it, and its
//! next renewal fails on the revision the new holder wrote.

use async_nats::jetstream::kv;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Lease {
    bucket: kv::Store,
    key: String,
    holder: String,
    ttl: Duration,
    revision: Option<u64>,
    fence: Fence,
}

/// Whether the lease is held, readable anywhere without waiting: checked
/// before every action the lease guards.
#[derive(Clone, Debug)]
pub struct Fence {
    base: Instant,
    /// Held until this many milliseconds after `base` (0: not held).
    until_ms: Arc<AtomicU64>,
}

impl Fence {
    /// A fence that is always held (tests of what the lease guards).
    #[cfg(feature = "test-support")]
    pub fn always() -> Self {
        Self {
            base: Instant::now(),
            until_ms: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    /// A fence not held yet.
    pub(crate) fn closed() -> Self {
        Self {
            base: Instant::now(),
            until_ms: Arc::default(),
        }
    }

    pub fn held(&self) -> bool {
        (self.base.elapsed().as_millis() as u64) < self.until_ms.load(Ordering::Acquire)
    }

    pub(crate) fn hold_for(&self, window: Duration) {
        let until = self.base.elapsed() + window;
        self.until_ms.store(until.as_millis() as u64, Ordering::Release);
    }

    pub(crate) fn drop_hold(&self) {
        self.until_ms.store(0, Ordering::Release);
    }
}

impl Lease {
    /// The lease `key` in `bucket` (made by the operator; its entries
    /// live the bucket's `max_age`, the lease's ttl), for `holder` (this
    /// process's name).
    pub async fn open(
        js: &async_nats::jetstream::Context,
        bucket: &crate::buckets::Bucket,
        key: &str,
        holder: &str,
    ) -> anyhow::Result<Self> {
        let ttl = bucket.max_age;
        Ok(Self {
            bucket: bucket.open(js).await?,
            key: key.to_owned(),
            holder: holder.to_owned(),
            ttl,
            revision: None,
            fence: Fence::closed(),
        })
    }

    /// The fence this lease keeps up to date.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// How often to call [`Lease::hold`].
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// Takes or keeps the lease; says whether it is held now. A lease held
    /// under this process's name before it started (its own before a
    /// crash, or a live process's of which this one is a copy) is not
    /// taken back: it is waited out like any other, because only its
    /// lapse proves that its holder's fence has closed.
    pub async fn hold(&mut self) -> bool {
        let value = Bytes::from(self.holder.clone());
        let revision = match self.revision {
            Some(revision) => self.bucket.update(&self.key, value, revision).await.ok(),
            None => self.bucket.create(&self.key, value).await.ok(),
        };
        if revision.is_none() && self.revision.is_some() {
            tracing::warn!(lease = %self.key, "lease lost");
        }
        if revision.is_some() && self.revision.is_none() {
            tracing::info!(lease = %self.key, holder = %self.holder, "lease taken");
        }
        self.revision = revision;
        // Counted as held for two thirds of the ttl from now, by this
        // process's clock: a paused holder stands down before the entry
        // expires and another takes it.
        match revision {
            Some(_) => self.fence.hold_for(self.ttl * 2 / 3),
            None => self.fence.drop_hold(),
        }
        self.fence.held()
    }

    /// Gives the lease up (a clean stop): a standby takes it at once.
    pub async fn release(&mut self) {
        self.fence.drop_hold();
        if let Some(revision) = self.revision.take() {
            let _ = self.bucket.delete_expect_revision(&self.key, Some(revision)).await;
        }
    }
}
