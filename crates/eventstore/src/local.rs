//! What this service keeps on its own disk (sled): aggregate snapshots and
//! idempotency records. All of it can be rebuilt from the stream, so losing
//! the directory costs time, never data (docs/architecture.md).

use crate::error::StoreError;
use refer_domain::{Aggregate, AggregateRef, IdempotencyKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Bumped whenever an aggregate's state struct changes shape: older snapshots
/// are then ignored and the state is rebuilt from the stream.
pub const SNAPSHOT_FORMAT: u16 = 1;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    format: u16,
    version: u64,
    state: Vec<u8>,
}

/// The aggregate tree: `s/<aggregate>` holds a snapshot, `i/<aggregate>/<key>`
/// the version at which a command with that idempotency key was applied.
/// Both are written in one atomic batch.
#[derive(Clone)]
pub struct LocalState {
    db: sled::Db,
    aggregates: sled::Tree,
}

fn snapshot_key(aggregate: &AggregateRef) -> Vec<u8> {
    format!("s/{aggregate}").into_bytes()
}

fn idempotency_key(aggregate: &AggregateRef, key: &IdempotencyKey) -> Vec<u8> {
    format!("i/{aggregate}/{}", key.as_str()).into_bytes()
}

impl LocalState {
    pub fn open(db: sled::Db) -> Result<Self, StoreError> {
        let aggregates = db.open_tree("aggregates")?;
        Ok(Self { db, aggregates })
    }

    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The snapshot of an aggregate, if one exists in the current format.
    pub fn snapshot<A: Aggregate>(&self, aggregate: &AggregateRef) -> Result<Option<(u64, A)>, StoreError> {
        let Some(bytes) = self.aggregates.get(snapshot_key(aggregate))? else {
            return Ok(None);
        };
        let decoded = postcard::from_bytes::<Snapshot>(&bytes)
            .ok()
            .filter(|s| s.format == SNAPSHOT_FORMAT)
            .and_then(|s| postcard::from_bytes::<A>(&s.state).ok().map(|state| (s.version, state)));
        if decoded.is_none() {
            tracing::warn!(%aggregate, "ignoring an unreadable snapshot; rebuilding from the stream");
        }
        Ok(decoded)
    }

    /// The version at which a command with `key` was applied, if recorded.
    pub fn applied(&self, aggregate: &AggregateRef, key: &IdempotencyKey) -> Result<Option<u64>, StoreError> {
        Ok(self
            .aggregates
            .get(idempotency_key(aggregate, key))?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes)))
    }

    /// Records a snapshot at `version` together with the idempotency keys of
    /// every command folded into it since the previous snapshot.
    pub fn record<A: Aggregate>(
        &self,
        aggregate: &AggregateRef,
        version: u64,
        state: &A,
        keys: &BTreeSet<(IdempotencyKey, u64)>,
    ) -> Result<(), StoreError> {
        let state = postcard::to_stdvec(state).map_err(|e| StoreError::Setup(format!("snapshot encoding: {e}")))?;
        let snapshot = postcard::to_stdvec(&Snapshot {
            format: SNAPSHOT_FORMAT,
            version,
            state,
        })
        .map_err(|e| StoreError::Setup(format!("snapshot encoding: {e}")))?;
        let mut batch = sled::Batch::default();
        batch.insert(snapshot_key(aggregate), snapshot);
        for (key, at) in keys {
            batch.insert(idempotency_key(aggregate, key), &at.to_be_bytes());
        }
        self.aggregates.apply_batch(batch)?;
        Ok(())
    }
}
