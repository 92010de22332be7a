//! The shape of every watch RPC: what changed after a position, then each
//! change as it happens, in order, resumable by position.

use std::pin::Pin;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tonic::Status;

pub type WatchStream<V> = Pin<Box<dyn Stream<Item = Result<V, Status>> + Send>>;

/// Something a read model announces: where in the stream it changed.
pub trait Positioned {
    fn position(&self) -> u64;
}

/// Streams `current(after)` (the changes already made, oldest first), then
/// the live `changes` that `wanted` keeps, each turned into a message by
/// `view`. Subscribing happens before reading the backlog, so nothing falls
/// between; repeats are dropped by position; a watcher that falls behind the
/// broadcast reads the backlog again instead of missing changes.
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
        let mut last = after;
        let mut backlog = current(last);
        loop {
            for item in backlog.drain(..) {
                if item.position() > last {
                    last = item.position();
                    if tx.send(Ok(view(&item))).await.is_err() {
                        return;
                    }
                }
            }
            match changes.recv().await {
                Ok(item) if wanted(&item) => backlog.push(item),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => backlog = current(last),
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
