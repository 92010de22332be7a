//! The shape of every watch RPC: what changed after a position, then each
//! change as it happens, in position order, resumable by position.

use std::collections::BTreeSet;
use std::pin::Pin;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tonic::Status;

pub type WatchStream<V> = Pin<Box<dyn Stream<Item = Result<V, Status>> + Send>>;

/// Something a read model announces: which item changed, and where in the
/// stream. One commit may change many items at the same position.
pub trait Positioned {
    type Key: Ord + Clone + Send + 'static;
    fn key(&self) -> Self::Key;
    fn position(&self) -> u64;
}

/// Adds `change` to the changes a batch announces, in position order. An
/// item changed twice in one commit is announced once, in its later state:
/// a watcher keeps one state per item and position.
pub fn announce<T: Positioned>(changes: &mut Vec<T>, change: T) {
    let same = changes
        .iter()
        .rev()
        .take_while(|c| c.position() == change.position())
        .position(|c| c.key() == change.key());
    match same {
        Some(back) => {
            let i = changes.len() - 1 - back;
            changes[i] = change;
        }
        None => changes.push(change),
    }
}

/// What a watcher has delivered: the last position, and which items it
/// delivered at that position (a commit changes many items at once). The
/// position a client resumes after counts as wholly delivered.
struct Delivered<K> {
    last: u64,
    at_last: BTreeSet<K>,
    resumed: bool,
}

impl<K: Ord> Delivered<K> {
    fn after(position: u64) -> Self {
        Self {
            last: position,
            at_last: BTreeSet::new(),
            resumed: true,
        }
    }

    /// Whether a change at `position` of `key` is news; records it if so.
    fn admit(&mut self, key: K, position: u64) -> bool {
        let at_last = position == self.last && (self.resumed || self.at_last.contains(&key));
        if position < self.last || at_last {
            return false;
        }
        if position > self.last {
            self.last = position;
            self.at_last.clear();
            self.resumed = false;
        }
        self.at_last.insert(key);
        true
    }
}

/// Streams `current(after)` (the latest state of every item changed after
/// `after`, oldest first), then the live `changes` that `wanted` keeps, each
/// turned into a message by `view`.
///
/// Changes must be announced in position order (the read model does so).
/// Subscribing happens before reading the backlog, so nothing falls between;
/// a change is dropped only if this watcher delivered that item at that
/// position or has delivered a later position (the state it sent then was
/// newer); a watcher that falls behind the broadcast reads the backlog again
/// from its last position instead of missing changes.
pub fn follow<T, V>(
    mut changes: broadcast::Receiver<T>,
    after: u64,
    current: impl Fn(u64) -> Vec<T> + Send + 'static,
    wanted: impl Fn(&T) -> bool + Send + 'static,
    view: impl Fn(&T) -> V + Send + 'static,
) -> WatchStream<V>
where
    T: Positioned + Clone + Send + 'static,
    V: Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut delivered = Delivered::after(after);
        let mut backlog = current(after);
        loop {
            for item in backlog.drain(..) {
                if delivered.admit(item.key(), item.position()) && tx.send(Ok(view(&item))).await.is_err() {
                    return;
                }
            }
            match changes.recv().await {
                Ok(item) if wanted(&item) => backlog.push(item),
                Ok(_) => {}
                // Items changed at the last position may not all have been sent.
                Err(broadcast::error::RecvError::Lagged(_)) => backlog = current(delivered.last.saturating_sub(1)),
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use tokio_stream::StreamExt;

    #[derive(Clone, Debug, PartialEq)]
    struct Change {
        item: u8,
        status: u32,
        position: u64,
    }

    impl Positioned for Change {
        type Key = u8;
        fn key(&self) -> u8 {
            self.item
        }
        fn position(&self) -> u64 {
            self.position
        }
    }

    /// A read model in miniature: the latest change of each item.
    type Latest = Arc<Mutex<BTreeMap<u8, Change>>>;

    fn backlog(latest: &Latest, after: u64) -> Vec<Change> {
        let mut out: Vec<Change> = latest
            .lock()
            .unwrap()
            .values()
            .filter(|c| c.position > after)
            .cloned()
            .collect();
        out.sort_by_key(|c| (c.position, c.item));
        out
    }

    /// Runs `batches` (each: commits, each commit: the items it changes)
    /// through a model that a watcher joins after `join` batches, from
    /// `after`; returns what it received and the model's final state.
    fn watch(batches: &[Vec<Vec<u8>>], join: usize, after: u64, capacity: usize) -> (Vec<Change>, Vec<Change>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let latest: Latest = Arc::default();
            let (changes, _) = broadcast::channel(capacity);
            let (mut position, mut status) = (0u64, 0u32);
            let mut stream = None;
            for (i, batch) in batches.iter().enumerate() {
                if i == join {
                    let model = latest.clone();
                    stream = Some(follow(
                        changes.subscribe(),
                        after,
                        move |after| backlog(&model, after),
                        |_| true,
                        Change::clone,
                    ));
                    // Let the watcher read its backlog before the batch lands.
                    tokio::task::yield_now().await;
                }
                // Apply every commit of the batch, then announce, as a subscriber does.
                let mut announce = Vec::new();
                for commit in batch {
                    position += 1;
                    for item in commit {
                        status += 1;
                        let change = Change {
                            item: *item,
                            status,
                            position,
                        };
                        latest.lock().unwrap().insert(*item, change.clone());
                        super::announce(&mut announce, change);
                    }
                }
                for change in announce {
                    let _ = changes.send(change);
                }
                tokio::task::yield_now().await;
            }
            let last = backlog(&latest, after);
            let mut stream = stream.unwrap_or_else(|| {
                let model = latest.clone();
                follow(
                    changes.subscribe(),
                    after,
                    move |after| backlog(&model, after),
                    |_| true,
                    Change::clone,
                )
            });
            let mut got = Vec::new();
            // Every item's final state arrives; then nothing more is sent.
            let target: BTreeMap<u8, u64> = last.iter().map(|c| (c.item, c.position)).collect();
            let mut seen: BTreeMap<u8, u64> = BTreeMap::new();
            while seen != target {
                let next = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
                    .await
                    .expect("the watch stalled before every final state arrived")
                    .unwrap()
                    .unwrap();
                seen.insert(next.item, next.position);
                got.push(next);
            }
            (got, last)
        })
    }

    #[test]
    fn many_items_changed_in_one_commit_all_arrive() {
        // One commit requests 30 needs; the next changes them in reverse order.
        let request: Vec<u8> = (0..30).collect();
        let reverse: Vec<Vec<u8>> = (0..30).rev().map(|i| vec![i]).collect();
        let (got, last) = watch(&[vec![request], reverse], 0, 0, 1024);
        assert_eq!(got.len(), 60, "every change of every item: {got:?}");
        let finals: Vec<&Change> = got.iter().rev().take(30).collect();
        assert!(finals.iter().all(|c| last.contains(c)));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Whatever the batches, however late the watcher joins and however
        /// small the broadcast: positions never go back, no change arrives
        /// twice, and each item's last message is its final state. A watcher
        /// that never lags gets every change after its position.
        #[test]
        fn a_watch_delivers_every_change_in_position_order(
            batches in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(0u8..12, 1..6), 1..5), 1..12),
            join in 0usize..12,
            after in 0u64..10,
            small in any::<bool>(),
        ) {
            let capacity = if small { 2 } else { 4096 };
            let (got, last) = watch(&batches, join, after, capacity);
            for pair in got.windows(2) {
                prop_assert!(pair[0].position <= pair[1].position, "out of order: {got:?}");
            }
            let mut once = BTreeSet::new();
            for c in &got {
                prop_assert!(once.insert((c.item, c.position)), "twice: {c:?}");
                prop_assert!(c.position > after);
            }
            let mut final_of: BTreeMap<u8, &Change> = BTreeMap::new();
            for c in &got {
                final_of.insert(c.item, c);
            }
            for c in &last {
                prop_assert_eq!(final_of.get(&c.item).copied(), Some(c));
            }
            if join == 0 && !small {
                // Joined before anything happened: every change after `after`.
                let mut position = 0;
                let mut expected = 0;
                for commit in batches.iter().flatten() {
                    position += 1;
                    if position > after {
                        expected += commit.iter().collect::<BTreeSet<_>>().len();
                    }
                }
                prop_assert_eq!(got.len(), expected);
            }
        }
    }
}
