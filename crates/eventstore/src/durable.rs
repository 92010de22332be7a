//! Group commit for sled: writers that must be durable before they answer
//! share fsyncs. Each writer takes a ticket after its write; one flush
//! started after that covers it, so while one flush runs, every writer that
//! arrives meanwhile waits for the next one and they all ride on it
//! (`cargo bench -p refer-eventstore --bench group_flush`; docs/benchmarks.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Proof of a write, to be made durable by `GroupFlush::durable`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

#[derive(Clone)]
pub struct GroupFlush {
    inner: Arc<Inner>,
}

struct Inner {
    tree: sled::Tree,
    /// One flush at a time; the writers waiting here form the next group.
    flushing: tokio::sync::Mutex<()>,
    /// Tickets handed out so far.
    written: AtomicU64,
    /// Every ticket up to this one is on disk.
    flushed: AtomicU64,
    /// Flushes done (tests check the grouping with it).
    flushes: AtomicU64,
}

impl GroupFlush {
    pub fn new(tree: sled::Tree) -> Self {
        Self {
            inner: Arc::new(Inner {
                tree,
                flushing: tokio::sync::Mutex::new(()),
                written: AtomicU64::new(0),
                flushed: AtomicU64::new(0),
                flushes: AtomicU64::new(0),
            }),
        }
    }

    /// Takes a ticket for the writes the caller has completed.
    pub fn wrote(&self) -> Ticket {
        Ticket(self.inner.written.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Returns once the writes behind `ticket` are on disk.
    pub async fn durable(&self, ticket: Ticket) -> sled::Result<()> {
        let inner = &self.inner;
        let _turn = inner.flushing.lock().await;
        if inner.flushed.load(Ordering::SeqCst) >= ticket.0 {
            return Ok(()); // the flush before ours started after our write
        }
        // Every ticket taken so far was taken after its write: this flush covers them.
        let upto = inner.written.load(Ordering::SeqCst);
        flush(&inner.tree).await?;
        inner.flushes.fetch_add(1, Ordering::SeqCst);
        inner.flushed.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }

    /// `wrote` then `durable`: for a writer whose write just completed.
    pub async fn flush(&self) -> sled::Result<()> {
        self.durable(self.wrote()).await
    }

    /// How many flushes were done.
    pub fn flushes(&self) -> u64 {
        self.inner.flushes.load(Ordering::SeqCst)
    }
}

/// sled 0.34's `flush_async` can deadlock under concurrent writers (sled
/// issues #1241 and #1308; seen here under benchmark load: every worker
/// stuck in `apply_batch`), so the blocking flush runs on tokio's blocking pool.
async fn flush(tree: &sled::Tree) -> sled::Result<()> {
    let tree = tree.clone();
    match tokio::task::spawn_blocking(move || tree.flush()).await {
        Ok(flushed) => flushed.map(|_| ()),
        Err(task) => Err(sled::Error::Io(std::io::Error::other(format!(
            "flush task failed: {task}"
        )))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> sled::Tree {
        sled::Config::new()
            .temporary(true)
            .open()
            .unwrap()
            .open_tree("t")
            .unwrap()
    }

    #[tokio::test]
    async fn writers_waiting_together_share_one_flush() {
        let group = GroupFlush::new(tree());
        let tickets: Vec<Ticket> = (0..32u32)
            .map(|i| {
                group.inner.tree.insert(i.to_be_bytes(), vec![1]).unwrap();
                group.wrote()
            })
            .collect();
        let waits = tickets.into_iter().map(|t| group.durable(t));
        for done in futures::future::join_all(waits).await {
            done.unwrap();
        }
        assert_eq!(group.flushes(), 1);
    }

    #[tokio::test]
    async fn a_write_after_a_flush_gets_a_flush_of_its_own() {
        let group = GroupFlush::new(tree());
        let first = group.wrote();
        group.durable(first).await.unwrap();
        let second = group.wrote();
        group.durable(second).await.unwrap();
        assert_eq!(group.flushes(), 2, "the first flush came before the second write");
        group.durable(first).await.unwrap();
        assert_eq!(group.flushes(), 2, "already on disk");
    }
}
