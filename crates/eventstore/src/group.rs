//! Group commit: appends of concurrent commands, from any number of callers,
//! share atomic batches, so they share the server's fsync (with
//! `sync_interval: always` the disk's sync rate is the limit, and a batch is
//! synced once). Each append keeps its own expectation and message id and
//! gets its own answer: a batch refused for one stale expectation or one
//! duplicate id is sent again as single appends, all at once, which answer
//! exactly as a lone publish does. An append that waits alone
//! is sent at once as a plain publish: no added latency when idle.

use crate::batch::{publish_atomic, BatchMessage, Refused};
use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_ID};
use async_nats::jetstream::{self, context::PublishErrorKind};
use async_nats::HeaderMap;
use bytes::Bytes;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// At most this many appends in one batch.
const GROUP: usize = 128;
/// At most this many batches (or lone appends) in flight at once: the
/// server syncs what is in flight together too.
const IN_FLIGHT: usize = 8;

/// How one append ended.
#[derive(Debug)]
pub(crate) enum Appended {
    /// Stored at this sequence, or (`true`) its id was seen before.
    Stored(u64, bool),
    WrongLastSequence,
    TooLarge,
    NoStream,
    Unavailable(String),
}

struct Pending {
    subject: String,
    expected: u64,
    msg_id: String,
    payload: Bytes,
    answer: oneshot::Sender<Appended>,
}

/// The sender side of the group committer; the committer runs until every
/// sender is dropped.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::UnboundedSender<Pending>,
}

impl GroupCommit {
    pub(crate) fn start(js: jetstream::Context) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(dispatch(js, waiting));
        Self { queue }
    }

    /// Appends one commit on `subject` if it is still at `expected`.
    pub(crate) async fn append(&self, subject: String, expected: u64, msg_id: String, payload: Bytes) -> Appended {
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            subject,
            expected,
            msg_id,
            payload,
            answer,
        };
        if self.queue.send(pending).is_err() {
            return Appended::Unavailable("the event store is shutting down".into());
        }
        answered
            .await
            .unwrap_or_else(|_| Appended::Unavailable("the group commit stopped".into()))
    }
}

/// Takes what waits (one append per subject per batch: two on one subject
/// would refuse each other's batch), and sends it while fewer than
/// `IN_FLIGHT` sends are under way.
async fn dispatch(js: jetstream::Context, mut waiting: mpsc::UnboundedReceiver<Pending>) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut deferred: VecDeque<Pending> = VecDeque::new();
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let first = match deferred.pop_front() {
            Some(pending) => pending,
            None => match waiting.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        let mut subjects = HashSet::from([first.subject.clone()]);
        let mut group = vec![first];
        let mut later = VecDeque::new();
        while group.len() < GROUP {
            let Some(next) = deferred.pop_front().or_else(|| waiting.try_recv().ok()) else {
                break;
            };
            if subjects.insert(next.subject.clone()) {
                group.push(next);
            } else {
                later.push_back(next);
            }
        }
        later.extend(deferred.drain(..));
        deferred = later;
        let js = js.clone();
        tokio::spawn(async move {
            send(&js, group).await;
            drop(permit);
        });
    }
}

/// Sends `group` as one batch (or a lone publish); on refusal, each alone.
async fn send(js: &jetstream::Context, mut group: Vec<Pending>) {
    {
        if group.len() == 1 {
            let pending = group.pop().expect("one");
            let outcome = publish_one(js, &pending).await;
            let _ = pending.answer.send(outcome);
            return;
        }
        let messages = group.iter().map(message).collect();
        let outcome = publish_atomic(&js.client(), messages).await;
        let result = match outcome {
            Ok(_) => "stored",
            Err(Refused::WrongLastSequence | Refused::Duplicate) => "split",
            Err(Refused::Unavailable(_)) => "unavailable",
        };
        refer_metrics::count(
            "refer_group_commit_batches_total",
            "Atomic batches of concurrent appends, by what became of them.",
            &[("result", result)],
            1.0,
        );
        match outcome {
            Ok(first) => {
                for (n, pending) in group.into_iter().enumerate() {
                    let _ = pending.answer.send(Appended::Stored(first + n as u64, false));
                }
            }
            Err(Refused::WrongLastSequence | Refused::Duplicate) => {
                // Which one is unknown: each is sent again on its own, all at
                // once (one more round trip, and the server syncs them together).
                let each = group.into_iter().map(|pending| async move {
                    let outcome = publish_one(js, &pending).await;
                    let _ = pending.answer.send(outcome);
                });
                futures::future::join_all(each).await;
            }
            Err(Refused::Unavailable(why)) => {
                for pending in group {
                    let _ = pending.answer.send(Appended::Unavailable(why.clone()));
                }
            }
        }
    }
}

fn headers(pending: &Pending) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
        pending.expected.to_string().as_str(),
    );
    headers.insert(NATS_MESSAGE_ID, pending.msg_id.as_str());
    headers
}

fn message(pending: &Pending) -> BatchMessage {
    BatchMessage {
        subject: pending.subject.clone(),
        headers: headers(pending),
        payload: pending.payload.clone(),
    }
}

async fn publish_one(js: &jetstream::Context, pending: &Pending) -> Appended {
    let ack = match js
        .publish_with_headers(pending.subject.clone(), headers(pending), pending.payload.clone())
        .await
    {
        Ok(future) => future.await,
        Err(err) => Err(err),
    };
    match ack {
        Ok(ack) => Appended::Stored(ack.sequence, ack.duplicate),
        Err(err) => match err.kind() {
            PublishErrorKind::WrongLastSequence => Appended::WrongLastSequence,
            PublishErrorKind::MaxPayloadExceeded => Appended::TooLarge,
            PublishErrorKind::StreamNotFound => Appended::NoStream,
            _ => Appended::Unavailable(err.to_string()),
        },
    }
}
