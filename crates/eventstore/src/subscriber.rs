//! A durable, explicitly acknowledged consumer that feeds a projection and
//! keeps its checkpoint in sled.
//!
//! Order of work for each batch: apply every commit to the projection, then
//! acknowledge the messages. What the projection changed is written to sled
//! with the new checkpoint, in one atomic batch, at most every
//! [`PERSIST_EVERY`] (and whenever the consumer has nothing to read, and at a
//! graceful stop): a sled batch costs two or three disk syncs however small
//! it is (sled rolls its log buffer before and after every batch), so a
//! batch per commit made a placement request wait on about four syncs in
//! each service it passed through (docs/benchmarks.md, issue #22). The
//! stream, not the server's consumer position, is the source of truth; on
//! start the consumer always resumes right after the checkpoint found on
//! disk (see `start_consumer`). So:
//! - a crash loses at most the last [`PERSIST_EVERY`] of *progress*, never
//!   an event: the projection on disk and its checkpoint agree, and what
//!   came after is read from the stream again;
//! - a message delivered again at or below the checkpoint (an ack lost, a
//!   slow batch past the ack wait) is acknowledged and skipped: nothing is
//!   applied twice;
//! - a lost sled directory has checkpoint 0: the consumer is recreated from
//!   the start of the stream and the projection is rebuilt.
//!
//! Nor is the batch flushed: sled writes it out within half a second, and a
//! flush would buy nothing that the restart at the checkpoint does not
//! already give.

use crate::error::StoreError;
use crate::store::{EventStore, Recorded};
use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer, DeliverPolicy};
use async_nats::jetstream::Message;
use futures::{FutureExt, StreamExt};
use std::time::Duration;

const CHECKPOINT_KEY: &[u8] = b"\0checkpoint";
/// The server's name of the consumer last started (see `start_consumer`).
const CONSUMER_KEY: &[u8] = b"\0consumer";
/// How long applied progress may wait in memory before it is written to
/// sled (see the module's comment): what a crash makes the next start read
/// again, against one sled batch per commit.
pub const PERSIST_EVERY: Duration = Duration::from_millis(250);
/// How long one pull request stands at the server before it is renewed,
/// and how often the server says it is alive while it has nothing to
/// send. A pull request lives only in the consumer's leader: when that
/// node stalls or dies, the request is gone with it and the new leader
/// knows nothing of it. Two heartbeats missed end the pull and the
/// consumer is started again from the checkpoint (without heartbeats the
/// pull would wait out its expiry, 30 s by default, delivering nothing).
const PULL_EXPIRES: Duration = Duration::from_secs(10);
const PULL_HEARTBEAT: Duration = Duration::from_secs(2);
/// What the projection in the tree keeps (see [`Subscriber::open_defined`]).
const DEFINITION_KEY: &[u8] = b"\0definition";

/// What one pull gave: messages (perhaps none within the wait), or the
/// reason it was lost before any arrived.
enum Pulled {
    Messages(Vec<Message>),
    Lost(String),
}

/// A read model built by folding the stream.
pub trait Projection {
    /// Applies one commit, in stream order. Must be deterministic.
    fn apply(&mut self, commit: &Recorded);
    /// Adds what changed since the last call to `batch`; the batch is applied
    /// atomically with the checkpoint, to the subscriber's tree.
    fn persist(&mut self, batch: &mut sled::Batch);
}

pub struct Subscriber {
    name: String,
    filters: Vec<String>,
    stream: async_nats::jetstream::stream::Stream,
    consumer: Consumer<pull::Config>,
    /// A standing pull: the server pushes commits as they land, so an idle
    /// subscriber costs nothing and a busy one never waits for a request
    /// round trip. Opened on first use; after an error the consumer itself
    /// is started again from the checkpoint (see `receive`).
    messages: Option<pull::Stream>,
    pull_lost: bool,
    /// The consumer's delivery sequence of the last message received from
    /// it (0: none since it was started): see `in_order`.
    delivered: u64,
    tree: sled::Tree,
    /// The stream sequence of the last commit applied.
    checkpoint: u64,
    /// The checkpoint on disk, and when it was last written.
    persisted: u64,
    persisted_at: std::time::Instant,
}

impl Subscriber {
    /// Opens the durable consumer `name` (filtered to the subjects `filters`,
    /// or every subject when empty) and its sled tree, resuming after the
    /// stored checkpoint.
    pub async fn open(store: &EventStore, name: &str, filters: &[String]) -> Result<Self, StoreError> {
        let tree = store.local().db().open_tree(format!("projection/{name}"))?;
        let checkpoint = tree
            .get(CHECKPOINT_KEY)?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0);
        let filters = filters.to_vec();
        // A start while the bus elects (a node stalled or dead: the
        // consumer's own group may have lost its leader) waits for it, as
        // opening the store does, instead of exiting.
        let (stream, consumer) = crate::patiently(
            &format!("consumer {name}"),
            || async {
                let stream = store
                    .jetstream()
                    .get_stream(&store.settings().name)
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                let consumer = start_consumer(&stream, &tree, name, &filters, checkpoint).await?;
                Ok::<_, StoreError>((stream, consumer))
            },
            // A refusal (the credential may not) is no election: said at once.
            |e| matches!(e, StoreError::Unavailable(why) if !why.to_lowercase().contains("permission")),
            || StoreError::Unavailable(crate::unanswered(&format!("consumer {name}"))),
        )
        .await?;
        Ok(Self {
            name: name.to_owned(),
            filters,
            stream,
            consumer,
            messages: None,
            pull_lost: false,
            delivered: 0,
            tree,
            checkpoint,
            persisted: checkpoint,
            persisted_at: std::time::Instant::now(),
        })
    }

    /// Opens like [`Subscriber::open`] a projection whose definition (what
    /// it keeps, for example a matcher's regions) is `definition`. A tree
    /// kept under another definition, or none, is cleared first: the
    /// projection is rebuilt from the start of the stream, never restored
    /// with what another definition kept or left out.
    pub async fn open_defined(
        store: &EventStore,
        name: &str,
        filters: &[String],
        definition: &[u8],
    ) -> Result<Self, StoreError> {
        let tree = store.local().db().open_tree(format!("projection/{name}"))?;
        if tree.get(DEFINITION_KEY)?.as_deref() != Some(definition) {
            if !tree.is_empty() {
                tracing::info!(
                    consumer = name,
                    "projection kept under another definition: rebuilt from the stream"
                );
            }
            tree.clear()?;
            tree.insert(DEFINITION_KEY, definition)?;
            tree.flush_async().await?;
        }
        Self::open(store, name, filters).await
    }

    /// The server's name of the consumer now feeding this subscriber
    /// (`<name>_<random>`, see `start_consumer`).
    pub fn consumer_name(&self) -> String {
        self.consumer.cached_info().name.clone()
    }

    /// The sled tree holding the projection's state and the checkpoint; a
    /// projection restores itself from it at start-up.
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// The stream sequence of the last commit applied (on disk within
    /// [`PERSIST_EVERY`]; see [`Subscriber::persisted`]).
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint
    }

    /// The stream sequence of the last commit whose effect is in the tree:
    /// where the next start resumes.
    pub fn persisted(&self) -> u64 {
        self.persisted
    }

    /// Writes what the projection changed since the last write, with the
    /// checkpoint, in one atomic sled batch (nothing when nothing changed).
    /// Called by `poll` on its cadence; call it at a graceful stop so the
    /// next start has nothing to read again.
    pub fn persist(&mut self, projection: &mut impl Projection) -> Result<(), StoreError> {
        self.persisted_at = std::time::Instant::now();
        if self.checkpoint == self.persisted {
            return Ok(());
        }
        let mut writes = sled::Batch::default();
        projection.persist(&mut writes);
        writes.insert(CHECKPOINT_KEY, &self.checkpoint.to_be_bytes());
        self.tree.apply_batch(writes)?;
        self.persisted = self.checkpoint;
        Ok(())
    }

    /// Messages the server still has for this consumer.
    pub async fn pending(&mut self) -> Result<u64, StoreError> {
        let info = self
            .consumer
            .info()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }

    /// Takes up to `max` commits (waiting at most `wait` for the first),
    /// applies them and acknowledges them; persists when [`PERSIST_EVERY`]
    /// has passed since the last write or nothing came. Returns how many
    /// commits were applied; redeliveries of already applied commits are
    /// acked and skipped.
    pub async fn poll(
        &mut self,
        projection: &mut impl Projection,
        max: usize,
        wait: Duration,
    ) -> Result<usize, StoreError> {
        let received = self.receive(max, wait).await?;
        let mut applied = 0;
        let mut checkpoint = self.checkpoint;
        // Each delivery says how many messages wait behind it: the consumer's lag.
        if let Some(last) = received.last().and_then(|m| m.info().ok()) {
            refer_metrics::set(
                "refer_consumer_lag",
                "Messages waiting for the consumer after its last delivery.",
                &[("consumer", &self.name)],
                last.pending as f64,
            );
        }
        let mut stopped = None;
        for msg in &received {
            let seq = msg
                .info()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?
                .stream_sequence;
            if seq <= checkpoint {
                continue;
            }
            match crate::readable(seq, &msg.subject, &msg.payload) {
                Ok(Some(events)) => {
                    projection.apply(&Recorded { seq, events });
                    applied += 1;
                }
                Ok(None) => {} // quarantined: passed over, like every reader
                Err(err) => {
                    // A newer writer's commit: stop right before it, with
                    // what came before persisted; the consumer starts again
                    // there, so nothing delivered after it is lost.
                    self.messages = None;
                    self.pull_lost = true;
                    stopped = Some(err);
                    break;
                }
            }
            checkpoint = seq;
        }
        if checkpoint != self.checkpoint {
            refer_metrics::count(
                "refer_events_consumed_total",
                "Commits applied by a consumer to its projection.",
                &[("consumer", &self.name)],
                applied as f64,
            );
            self.checkpoint = checkpoint;
        }
        if stopped.is_some() || received.is_empty() || self.persisted_at.elapsed() >= PERSIST_EVERY {
            self.persist(projection)?;
        }
        if let Some(err) = stopped {
            return Err(err);
        }
        for msg in &received {
            msg.ack().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        }
        tracing::trace!(consumer = %self.name, applied, checkpoint = self.checkpoint, "batch done");
        Ok(applied)
    }

    /// Waits up to `wait` for a first message, then takes whatever else has
    /// already arrived, up to `max`: a batch is as large as the backlog, and
    /// a lone commit is not held back waiting for company. A pull lost
    /// before anything arrived (the consumer deleted, the server restarted)
    /// is opened again once before giving up.
    async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Message>, StoreError> {
        let mut lost = None;
        for _ in 0..2 {
            match self.pull(max, wait).await? {
                Pulled::Messages(received) => return Ok(received),
                Pulled::Lost(why) => lost = Some(why),
            }
        }
        Err(StoreError::Unavailable(lost.unwrap_or_default()))
    }

    async fn pull(&mut self, max: usize, wait: Duration) -> Result<Pulled, StoreError> {
        if self.messages.is_none() {
            // Messages a lost pull had in flight come back only after the
            // ack wait, behind later ones: start the consumer again at the
            // checkpoint, so no commit is skipped.
            if self.pull_lost {
                self.consumer =
                    start_consumer(&self.stream, &self.tree, &self.name, &self.filters, self.checkpoint).await?;
                self.pull_lost = false;
                self.delivered = 0;
            }
            let pull = self
                .consumer
                .stream()
                .max_messages_per_batch(max.max(1))
                .expires(PULL_EXPIRES)
                .heartbeat(PULL_HEARTBEAT)
                .messages()
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            self.messages = Some(pull);
        }
        let messages = self.messages.as_mut().expect("opened above");
        let mut received = Vec::new();
        let Ok(mut next) = tokio::time::timeout(wait, messages.next()).await else {
            return Ok(Pulled::Messages(received));
        };
        loop {
            match next {
                Some(Ok(msg)) if in_order(&mut self.delivered, &self.name, self.checkpoint, &msg) => received.push(msg),
                // A delivery went missing (see `in_order`): what arrived
                // before it is kept; the consumer starts again after the
                // checkpoint next time, so nothing behind the gap is skipped.
                Some(Ok(_)) => {
                    self.messages = None;
                    self.pull_lost = true;
                    break;
                }
                // The pull failed or ended: open a new one next time, and
                // keep what arrived before it (those acks are still owed).
                end => {
                    self.messages = None;
                    self.pull_lost = true;
                    let why = match end {
                        Some(Err(err)) => err.to_string(),
                        _ => "the consumer's pull ended".to_owned(),
                    };
                    if received.is_empty() {
                        return Ok(Pulled::Lost(why));
                    }
                    tracing::warn!(consumer = %self.name, error = %why, "pull interrupted; reopening");
                    break;
                }
            }
            if received.len() >= max {
                break;
            }
            match messages.next().now_or_never() {
                Some(more) => next = more,
                None => break,
            }
        }
        Ok(Pulled::Messages(received))
    }

    /// Polls until the consumer has nothing pending (used by tests, rebuilds
    /// and benchmarks). Returns the number of commits applied.
    pub async fn catch_up(&mut self, projection: &mut impl Projection) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            total += self.poll(projection, 1000, Duration::from_millis(200)).await?;
            if self.pending().await? == 0 {
                self.persist(projection)?;
                return Ok(total);
            }
        }
    }
}

/// Whether `msg` is the delivery that follows the last one received.
/// The server numbers every delivery of a consumer, redeliveries too.
/// A number skipped is a delivery that never arrived: when the node
/// leading the consumer stalls or dies, a batch it sent may be lost
/// with the connection, and the server redelivers it only after the
/// ack wait, behind later commits, where it would be taken for a
/// redelivery at or below the checkpoint and skipped for good.
fn in_order(delivered: &mut u64, name: &str, checkpoint: u64, msg: &Message) -> bool {
    let Ok(info) = msg.info() else { return false };
    if info.consumer_sequence != *delivered + 1 {
        tracing::warn!(
            consumer = name,
            expected = *delivered + 1,
            got = info.consumer_sequence,
            checkpoint = checkpoint,
            "a delivery went missing; starting the consumer again after the checkpoint"
        );
        refer_metrics::count(
            "refer_consumer_restarts_total",
            "Consumers started again after their checkpoint because a delivery went missing.",
            &[("consumer", name)],
            1.0,
        );
        return false;
    }
    *delivered = info.consumer_sequence;
    true
}

/// Creates a durable consumer for the projection `name` delivering after
/// `checkpoint`, deleting the one it started last (recorded in `tree`).
/// Never reused: a process killed a moment ago may still have a pull open
/// at the server (its death not yet noticed), and deliveries to it would
/// sit unacked for the ack wait and then come back behind later commits,
/// below the new checkpoint, and be skipped. One process runs each.
///
/// The server knows it as `<name>_<random>`: JetStream's permissions name
/// a consumer only by a whole subject token, so every service may pull
/// from, inspect or delete any consumer whose name it knows; none may list
/// them (deploy/nats/auth.conf), so an unguessable name keeps another
/// service's credential from taking or delaying this one's deliveries.
async fn start_consumer(
    stream: &async_nats::jetstream::stream::Stream,
    tree: &sled::Tree,
    name: &str,
    filters: &[String],
    checkpoint: u64,
) -> Result<Consumer<pull::Config>, StoreError> {
    if let Some(last) = tree.get(CONSUMER_KEY)? {
        // Not found is fine; any other failure leaves it to expire.
        let _ = stream.delete_consumer(&String::from_utf8_lossy(&last)).await;
    }
    let server_name = format!("{name}_{}", uuid::Uuid::new_v4().simple());
    // Recorded before it exists, so a crash right after leaves no consumer
    // the next start does not know to delete.
    tree.insert(CONSUMER_KEY, server_name.as_bytes())?;
    let config = pull::Config {
        durable_name: Some(server_name.clone()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 10_000,
        // A replica that is gone for a day has its consumer removed by the
        // server; if it comes back, it starts one again from its checkpoint.
        inactive_threshold: Duration::from_secs(24 * 3600),
        deliver_policy: match checkpoint {
            0 => DeliverPolicy::All,
            seq => DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            },
        },
        // One filter goes in `filter_subject`, which every server reads.
        filter_subject: match filters {
            [one] => one.clone(),
            _ => String::new(),
        },
        filter_subjects: match filters {
            [_] => vec![],
            many => many.to_vec(),
        },
        ..Default::default()
    };
    tracing::info!(consumer = name, checkpoint, "starting consumer from checkpoint");
    stream
        .create_consumer(config)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}
