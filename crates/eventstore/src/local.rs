//! What this service keeps on its own disk (sled): aggregate snapshots and
//! idempotency records. All of it can be rebuilt from the stream, so losing
//! the directory costs time, never data (docs/architecture.md).
//!
//! Snapshots are a cache, so they are written behind: a commit records the
//! aggregate's new state in memory, where the next command on it finds it
//! decoded, and a writer thread puts the newest state of each aggregate
//! changed since its last pass into sled every [`WRITE_BEHIND`], with the
//! idempotency records folded into it, in one atomic batch. A busy
//! aggregate written a hundred times a second costs one sled write a
//! second, not a hundred encodings and writes (docs/benchmarks.md). A crash
//! loses at most that last second of snapshots and records together: the
//! next load reads the commits after the older snapshot from the stream,
//! and finds those commits' keys there.

use crate::error::StoreError;
use refer_domain::{Aggregate, AggregateRef, IdempotencyKey};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often the newest snapshots go to sled.
pub const WRITE_BEHIND: Duration = Duration::from_secs(1);

/// How many decoded states stay in memory once written (the hot ones are
/// recorded again soon; the rest are read from sled when needed).
const KEPT_DECODED: usize = 20_000;

/// Bumped whenever an aggregate's state struct changes shape: older snapshots
/// are then ignored and the state is rebuilt from the stream.
pub const SNAPSHOT_FORMAT: u16 = 3;

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
    inner: Arc<Inner>,
}

struct Inner {
    aggregates: sled::Tree,
    recent: Mutex<Recent>,
}

/// What this process recorded and has in memory.
#[derive(Default)]
struct Recent {
    /// The newest state recorded of each aggregate, decoded.
    states: HashMap<AggregateRef, Held>,
    /// Aggregates whose newest state is not in sled yet.
    unwritten: HashSet<AggregateRef>,
    /// Idempotency records not in sled yet (their sled key, the version).
    keys: HashMap<Vec<u8>, u64>,
}

struct Held {
    version: u64,
    state: Arc<dyn Any + Send + Sync>,
    encode: Encode,
}

type Encode = fn(u64, &(dyn Any + Send + Sync)) -> Option<Vec<u8>>;

/// The snapshot's bytes of `state` (an `A`) at `version`.
fn encode<A: Aggregate>(version: u64, state: &(dyn Any + Send + Sync)) -> Option<Vec<u8>> {
    let state = postcard::to_stdvec(state.downcast_ref::<A>()?).ok()?;
    postcard::to_stdvec(&Snapshot {
        format: SNAPSHOT_FORMAT,
        version,
        state,
    })
    .ok()
}

fn snapshot_key(aggregate: &AggregateRef) -> Vec<u8> {
    format!("s/{aggregate}").into_bytes()
}

fn idempotency_key(aggregate: &AggregateRef, key: &IdempotencyKey) -> Vec<u8> {
    format!("i/{aggregate}/{}", key.as_str()).into_bytes()
}

impl Inner {
    /// Puts every state and record not in sled yet into it, in one batch.
    /// The lock is held until sled has the batch: a key taken out of memory
    /// is readable in sled from then on, never in neither.
    fn write_out(&self) -> Result<(), StoreError> {
        let mut recent = self.recent.lock().expect("snapshot lock");
        let recent = &mut *recent;
        if recent.unwritten.is_empty() && recent.keys.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for aggregate in &recent.unwritten {
            let held = &recent.states[aggregate];
            match (held.encode)(held.version, held.state.as_ref()) {
                Some(bytes) => batch.insert(snapshot_key(aggregate), bytes),
                None => tracing::warn!(%aggregate, "a snapshot did not encode; it is rebuilt from the stream"),
            }
        }
        for (key, at) in &recent.keys {
            batch.insert(key.as_slice(), &at.to_be_bytes());
        }
        self.aggregates.apply_batch(batch)?;
        recent.unwritten.clear();
        recent.keys.clear();
        if recent.states.len() > KEPT_DECODED {
            recent.states.clear();
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(err) = self.write_out() {
            tracing::warn!(error = %err, "snapshots not written at close; they are rebuilt from the stream");
        }
    }
}

/// Writes `inner`'s snapshots out every [`WRITE_BEHIND`] while it lives.
fn write_behind(inner: Weak<Inner>) {
    let spawned = std::thread::Builder::new()
        .name("snapshots".into())
        .spawn(move || loop {
            std::thread::sleep(WRITE_BEHIND);
            let Some(inner) = inner.upgrade() else { return };
            if let Err(err) = inner.write_out() {
                tracing::warn!(error = %err, "snapshots not written; trying again");
            }
        });
    if let Err(err) = spawned {
        tracing::error!(error = %err, "cannot start the snapshot writer; snapshots go to sled at close only");
    }
}

impl LocalState {
    pub fn open(db: sled::Db) -> Result<Self, StoreError> {
        let aggregates = db.open_tree("aggregates")?;
        let inner = Arc::new(Inner {
            aggregates,
            recent: Mutex::default(),
        });
        write_behind(Arc::downgrade(&inner));
        Ok(Self { db, inner })
    }

    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Writes every snapshot recorded so far to sled now (tests, and
    /// anyone about to copy the directory).
    pub fn write_out(&self) -> Result<(), StoreError> {
        self.inner.write_out()
    }

    /// The snapshot of an aggregate, if one exists in the current format:
    /// the newest this process recorded, or else the one in sled.
    pub fn snapshot<A: Aggregate>(&self, aggregate: &AggregateRef) -> Result<Option<(u64, A)>, StoreError> {
        if let Some(held) = self.inner.recent.lock().expect("snapshot lock").states.get(aggregate) {
            if let Some(state) = held.state.downcast_ref::<A>() {
                return Ok(Some((held.version, state.clone())));
            }
        }
        let Some(bytes) = self.inner.aggregates.get(snapshot_key(aggregate))? else {
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
        let key = idempotency_key(aggregate, key);
        if let Some(at) = self.inner.recent.lock().expect("snapshot lock").keys.get(&key) {
            return Ok(Some(*at));
        }
        Ok(self
            .inner
            .aggregates
            .get(key)?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes)))
    }

    /// Records a snapshot at `version` together with the idempotency keys of
    /// every command folded into it since the previous snapshot (in memory
    /// now, in sled at the next write-out). An older version than the one
    /// held (a slower concurrent commit) does not replace it.
    pub fn record<A: Aggregate>(
        &self,
        aggregate: &AggregateRef,
        version: u64,
        state: &A,
        keys: &BTreeSet<(IdempotencyKey, u64)>,
    ) -> Result<(), StoreError> {
        let mut recent = self.inner.recent.lock().expect("snapshot lock");
        for (key, at) in keys {
            recent.keys.insert(idempotency_key(aggregate, key), *at);
        }
        if recent.states.get(aggregate).is_some_and(|held| held.version > version) {
            return Ok(());
        }
        recent.states.insert(
            *aggregate,
            Held {
                version,
                state: Arc::new(state.clone()),
                encode: encode::<A>,
            },
        );
        recent.unwritten.insert(*aggregate);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refer_domain::need::Need;
    use refer_domain::AggregateKind;

    fn need(proposals_made: u32) -> Need {
        Need {
            proposals_made,
            ..Need::default()
        }
    }

    fn at(proposals_made: u32) -> AggregateRef {
        AggregateRef {
            kind: AggregateKind::Need,
            id: uuid::Uuid::from_u128(u128::from(proposals_made) + 1),
        }
    }

    fn key(name: &str) -> IdempotencyKey {
        IdempotencyKey::new(name).unwrap()
    }

    /// The directory as a process that crashed now would find it.
    fn on_disk(db: &sled::Db) -> LocalState {
        let tree = db.open_tree("aggregates").unwrap();
        LocalState {
            db: db.clone(),
            inner: Arc::new(Inner {
                aggregates: tree,
                recent: Mutex::default(),
            }),
        }
    }

    #[test]
    fn a_snapshot_is_read_back_at_once_and_reaches_sled_with_its_keys_at_the_write_out() {
        // Given a store that recorded three commits of one need
        let db = sled::Config::new().temporary(true).open().unwrap();
        let local = LocalState::open(db.clone()).unwrap();
        let aggregate = at(0);
        for version in 1..=3u32 {
            let keys = BTreeSet::from([(key(&format!("k{version}")), u64::from(version))]);
            local
                .record(&aggregate, u64::from(version), &need(version), &keys)
                .unwrap();
        }
        // Then the newest is read back from memory, with every key
        let (version, state) = local.snapshot::<Need>(&aggregate).unwrap().unwrap();
        assert_eq!((version, state.proposals_made), (3, 3));
        assert_eq!(local.applied(&aggregate, &key("k2")).unwrap(), Some(2));
        // When it is written out
        local.write_out().unwrap();
        // Then the directory alone holds the newest state and every key
        let crashed = on_disk(&db);
        let (version, state) = crashed.snapshot::<Need>(&aggregate).unwrap().unwrap();
        assert_eq!((version, state.proposals_made), (3, 3));
        for (name, version) in [("k1", 1), ("k2", 2), ("k3", 3)] {
            assert_eq!(crashed.applied(&aggregate, &key(name)).unwrap(), Some(version));
        }
    }

    #[test]
    fn an_older_commit_recorded_late_does_not_replace_a_newer_snapshot() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let local = LocalState::open(db).unwrap();
        let aggregate = at(1);
        local.record(&aggregate, 9, &need(9), &BTreeSet::new()).unwrap();
        local
            .record(&aggregate, 7, &need(7), &BTreeSet::from([(key("late"), 7)]))
            .unwrap();
        let (version, state) = local.snapshot::<Need>(&aggregate).unwrap().unwrap();
        assert_eq!((version, state.proposals_made), (9, 9));
        // Its key still counts: the command was applied.
        assert_eq!(local.applied(&aggregate, &key("late")).unwrap(), Some(7));
    }

    #[test]
    fn closing_the_store_writes_what_was_recorded() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let aggregate = at(2);
        {
            let local = LocalState::open(db.clone()).unwrap();
            local
                .record(&aggregate, 4, &need(4), &BTreeSet::from([(key("k"), 4)]))
                .unwrap();
        }
        let reopened = on_disk(&db);
        assert_eq!(reopened.snapshot::<Need>(&aggregate).unwrap().map(|(v, _)| v), Some(4));
        assert_eq!(reopened.applied(&aggregate, &key("k")).unwrap(), Some(4));
    }

    #[test]
    fn the_writer_puts_snapshots_in_sled_within_its_period() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let local = LocalState::open(db.clone()).unwrap();
        let aggregate = at(3);
        local.record(&aggregate, 5, &need(5), &BTreeSet::new()).unwrap();
        let deadline = std::time::Instant::now() + WRITE_BEHIND * 5;
        while on_disk(&db).snapshot::<Need>(&aggregate).unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "never written behind");
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(local);
    }
}
