//! The one shape of a service's read model: state folded from the stream,
//! kept in sled beside the consumer's checkpoint, and a broadcast of each
//! change with its stream position for the watch RPCs.
//!
//! A model says how one commit changes it ([`Model::apply`], writing what
//! changed through [`Changes`]) and how one stored entry is read back
//! ([`Model::restore`]). Everything else lives here once: the lock, the
//! persistence in the checkpoint's batch, announcing changes in position
//! order only after they are in that batch, and what happens to an entry
//! that cannot be decoded: it is logged and counted, and the model is
//! rebuilt from the stream instead of starting with a hole.

use crate::watch::{announce, follow, Positioned, WatchStream};
use refer_eventstore::{EventStore, Projection, Recorded, StoreError, Subscriber};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use tokio::sync::broadcast;

/// An entry read back from sled that the model could not decode.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode a stored entry: {0}")]
pub struct Undecodable(pub String);

impl From<postcard::Error> for Undecodable {
    fn from(err: postcard::Error) -> Self {
        Self(err.to_string())
    }
}

/// A read model's state and its rules.
pub trait Model: Default + Send + Sync + 'static {
    /// What a watcher hears: one item's new state at a position.
    type Change: Positioned + Clone + Send + Sync + 'static;
    /// Applies one commit (in stream order), recording what changed.
    fn apply(&mut self, commit: &Recorded, changes: &mut Changes<Self::Change>);
    /// Reads back one entry this model wrote.
    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), Undecodable>;
}

/// What one batch of commits changed: sled writes (the last write of a key
/// wins) and the changes to announce, in position order.
pub struct Changes<C> {
    /// `None`: the entry is removed.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    announced: Vec<C>,
}

impl<C: Positioned> Changes<C> {
    /// Stores `value` under `key` with the checkpoint.
    pub fn write(&mut self, key: Vec<u8>, value: &impl Serialize) {
        let bytes = postcard::to_stdvec(value).expect("read-model entries encode");
        self.writes.insert(key, Some(bytes));
    }

    /// Removes the entry under `key` with the checkpoint.
    pub fn remove(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// Tells watchers of `change` once the batch is stored.
    pub fn announce(&mut self, change: C) {
        announce(&mut self.announced, change);
    }
}

/// A sled key: a one-byte tag, then the postcard of `id`.
pub fn key(tag: u8, id: &impl Serialize) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend(postcard::to_stdvec(id).expect("ids encode"));
    k
}

/// Shared between the projection task (the writer) and the handlers.
pub struct ReadModel<M: Model> {
    state: Arc<RwLock<M>>,
    changes: broadcast::Sender<M::Change>,
    /// The stream position of the last commit applied.
    position: Arc<tokio::sync::watch::Sender<u64>>,
    /// The last position on the model's subjects when it was opened: the
    /// model is caught up once it has applied that far.
    target: u64,
}

impl<M: Model> Clone for ReadModel<M> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            changes: self.changes.clone(),
            position: self.position.clone(),
            target: self.target,
        }
    }
}

impl<M: Model> ReadModel<M> {
    /// Opens the durable consumer `name` and restores the model from its
    /// tree. If any entry cannot be decoded (a model changed its format, a
    /// damaged file), the tree and checkpoint are cleared and the consumer
    /// starts again from the stream's beginning: the model is rebuilt.
    pub async fn open(store: &EventStore, name: &str, filters: &[String]) -> Result<(Self, Subscriber), StoreError> {
        // Read from the stream's leader: what exists now, which a read on
        // this replica must find once it says it is caught up. A start
        // during an election (a node stalled or dead) waits for it, for as
        // long as opening the store does, instead of exiting.
        let target = refer_eventstore::patiently(
            &format!("the stream's end for {name}"),
            || store.last_sequence_on(filters),
            |e| matches!(e, StoreError::Unavailable(_)),
            || StoreError::Unavailable(refer_eventstore::unanswered(&format!("the stream's end for {name}"))),
        )
        .await?;
        // Entries embed domain states (a donation, a placement), so their
        // shape is part of the model's definition: a new shape rebuilds it
        // rather than risk decoding old bytes as something else.
        let definition = format!("states {}", refer_eventstore::SNAPSHOT_FORMAT);
        let subscriber = Subscriber::open_defined(store, name, filters, definition.as_bytes()).await?;
        let (mut model, undecodable) = Self::restore(name, subscriber.tree());
        model.target = target;
        if undecodable == 0 {
            model.position.send_replace(subscriber.checkpoint());
            return Ok((model, subscriber));
        }
        tracing::error!(
            model = name,
            undecodable,
            "read model has entries it cannot decode; rebuilding it from the stream"
        );
        subscriber.tree().clear()?;
        subscriber.tree().flush_async().await?;
        drop(subscriber);
        let subscriber = Subscriber::open_defined(store, name, filters, definition.as_bytes()).await?;
        let mut model = Self::new(M::default());
        model.target = target;
        Ok((model, subscriber))
    }

    /// The model stored in `tree`, and how many entries could not be
    /// decoded (each logged by key, and counted in
    /// `refer_read_model_undecodable_total`).
    pub fn restore(name: &str, tree: &sled::Tree) -> (Self, usize) {
        let mut model = M::default();
        let mut undecodable = 0;
        for entry in tree.iter() {
            let outcome = match &entry {
                Ok((key, _)) if key.first() == Some(&0) => continue, // the subscriber's own keys
                Ok((key, value)) => model.restore(key, value).map_err(|e| (hex::encode(key), e.0)),
                Err(err) => Err((String::new(), err.to_string())),
            };
            if let Err((key, reason)) = outcome {
                undecodable += 1;
                tracing::warn!(model = name, key, reason, "read-model entry not decoded");
                refer_metrics::count(
                    "refer_read_model_undecodable_total",
                    "Stored read-model entries that could not be decoded (the model is then rebuilt).",
                    &[("model", name)],
                    1.0,
                );
            }
        }
        (Self::new(model), undecodable)
    }

    fn new(model: M) -> Self {
        let (changes, _) = broadcast::channel(1024);
        Self {
            state: Arc::new(RwLock::new(model)),
            changes,
            position: Arc::new(tokio::sync::watch::channel(0).0),
            target: 0,
        }
    }

    /// Resolves once the model has applied every commit its subjects had
    /// on the stream when it was opened (at once if its checkpoint was
    /// there already): until then a read on this replica could miss an
    /// object that exists. The service serves only after that
    /// ([`crate::runtime::Context::ready_when`]).
    pub fn caught_up(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut seen = self.position.subscribe();
        let target = self.target;
        async move {
            let _ = seen.wait_for(|p| *p >= target).await;
        }
    }

    /// Waits (at most `within`) until the model has applied the commit at
    /// `position` (one this service just wrote): then a read shows it.
    /// Says whether it did.
    pub async fn reached(&self, position: u64, within: std::time::Duration) -> bool {
        let mut seen = self.position.subscribe();
        tokio::time::timeout(within, seen.wait_for(|p| *p >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Answers a command only once the model shows what it wrote at
    /// `position` (at most a couple of seconds), so the caller's next read
    /// on this replica lists it; a model that lags is logged, and the
    /// answer goes anyway.
    pub async fn read_your_write(&self, position: u64) {
        if !self.reached(position, std::time::Duration::from_secs(2)).await {
            tracing::warn!(position, "the read model lags behind a write; answering anyway");
        }
    }

    /// Reads the current state.
    pub fn read(&self) -> RwLockReadGuard<'_, M> {
        self.state.read().expect("read-model lock")
    }

    /// The projection that keeps this model current (for the subscriber).
    pub fn projection(&self) -> Feed<M> {
        Feed {
            model: self.clone(),
            changes: Changes {
                writes: BTreeMap::new(),
                announced: Vec::new(),
            },
        }
    }

    /// A watch: the changes `current` lists after `after` (latest state of
    /// each item, oldest first), then every live change `wanted` keeps, in
    /// position order (see [`follow`]).
    pub fn watch<V: Send + 'static>(
        &self,
        after: u64,
        current: impl Fn(&M, u64) -> Vec<M::Change> + Send + 'static,
        wanted: impl Fn(&M::Change) -> bool + Send + 'static,
        view: impl Fn(&M::Change) -> V + Send + 'static,
    ) -> WatchStream<V> {
        let model = self.clone();
        follow(
            self.changes.subscribe(),
            after,
            move |after| current(&model.read(), after),
            wanted,
            view,
        )
    }
}

/// Feeds a [`ReadModel`] from its subscriber.
pub struct Feed<M: Model> {
    model: ReadModel<M>,
    changes: Changes<M::Change>,
}

impl<M: Model> Projection for Feed<M> {
    fn apply(&mut self, commit: &Recorded) {
        let mut state = self.model.state.write().expect("read-model lock");
        state.apply(commit, &mut self.changes);
        drop(state);
        self.model.position.send_replace(commit.seq);
        // Watchers hear of a change as soon as the model shows it: the
        // commit is durable in the stream, whenever the model's copy on disk
        // catches up. A replay after a crash may repeat it (same position).
        for change in self.changes.announced.drain(..) {
            let _ = self.model.changes.send(change);
        }
    }

    fn persist(&mut self, batch: &mut sled::Batch) {
        for (key, value) in std::mem::take(&mut self.changes.writes) {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Counts(BTreeMap<u8, u64>);

    #[derive(Clone)]
    struct Counted(u8, u64);

    impl Positioned for Counted {
        type Key = u8;
        fn key(&self) -> u8 {
            self.0
        }
        fn position(&self) -> u64 {
            self.1
        }
    }

    impl Model for Counts {
        type Change = Counted;
        fn apply(&mut self, commit: &Recorded, changes: &mut Changes<Counted>) {
            let item = (commit.seq % 3) as u8;
            *self.0.entry(item).or_default() += 1;
            changes.write(key(b'c', &item), &self.0[&item]);
            changes.announce(Counted(item, commit.seq));
        }
        fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), Undecodable> {
            let item: u8 = postcard::from_bytes(&key[1..])?;
            self.0.insert(item, postcard::from_bytes(value)?);
            Ok(())
        }
    }

    #[test]
    fn a_model_persists_and_restores_and_counts_what_it_cannot_decode() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("m").unwrap();
        let (model, _) = ReadModel::<Counts>::restore("m", &tree);
        let mut feed = model.projection();
        for seq in 1..=7 {
            feed.apply(&Recorded { seq, events: vec![] });
        }
        let mut batch = sled::Batch::default();
        feed.persist(&mut batch);
        tree.apply_batch(batch).unwrap();
        let (restored, undecodable) = ReadModel::<Counts>::restore("m", &tree);
        assert_eq!((restored.read().0.clone(), undecodable), (model.read().0.clone(), 0));
        // A damaged entry is counted, not skipped in silence.
        tree.insert(key(b'c', &9u8), vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
            .unwrap();
        let (_, undecodable) = ReadModel::<Counts>::restore("m", &tree);
        assert_eq!(undecodable, 1);
    }

    #[tokio::test]
    async fn a_write_is_read_back_once_the_model_reached_its_position() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let (model, _) = ReadModel::<Counts>::restore("m", &db.open_tree("m").unwrap());
        let short = std::time::Duration::from_millis(50);
        assert!(!model.reached(3, short).await, "nothing applied yet");
        let mut feed = model.projection();
        let waiting = tokio::spawn({
            let model = model.clone();
            async move { model.reached(3, std::time::Duration::from_secs(5)).await }
        });
        for seq in 1..=3 {
            feed.apply(&Recorded { seq, events: vec![] });
        }
        assert!(waiting.await.unwrap(), "woken when position 3 is applied");
        assert!(model.reached(2, short).await && !model.reached(4, short).await);
    }
}
