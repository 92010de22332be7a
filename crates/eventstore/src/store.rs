//! Appending and loading aggregates on JetStream.

use crate::error::StoreError;
use crate::group::{Appended, GroupCommit};
use crate::local::LocalState;
use crate::stream::StreamSettings;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use refer_domain::ids::EventId;
use refer_domain::{encode_commit, Aggregate, AggregateRef, CommandMeta, Envelope, IdempotencyKey};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// One message of the stream: the events of one command, at its sequence
/// (none for a message that is no commit, quarantined: `crate::readable`).
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub seq: u64,
    pub events: Vec<Envelope>,
}

/// An aggregate's state at a version (the stream sequence of its last commit;
/// 0 when it has none).
#[derive(Clone, Debug)]
pub struct Loaded<A> {
    pub state: A,
    pub version: u64,
    /// Idempotency keys of commands folded in after the snapshot, with the
    /// version each was applied at.
    keys: BTreeSet<(IdempotencyKey, u64)>,
    /// Commits read from the stream to reach this state.
    pub replayed: usize,
}

impl<A> Loaded<A> {
    pub(crate) fn applied(&self, key: &IdempotencyKey) -> Option<u64> {
        self.keys.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    pub(crate) fn keys_applied(self) -> BTreeSet<(IdempotencyKey, u64)> {
        self.keys
    }
}

/// The message id of a commit, so the server drops a resend of these very
/// events inside its duplicate window (a publish whose answer was lost).
///
/// Unguessable: the server drops any message whose id it saw in the window,
/// on any subject, so an id anyone could work out (the aggregate and the
/// command's key, say) let a credential holder publish junk under it first
/// and have every commit of that decision refused as applied before. It is
/// a hash of a secret drawn by this process and the events (their ids,
/// aggregate, key and time): the same events sent again carry the same
/// id; another process's, or another attempt's, never do, and optimistic
/// concurrency and the aggregate's own keys settle those.
pub(crate) fn message_id(events: &[Envelope]) -> String {
    use sha2::{Digest, Sha256};
    static SECRET: std::sync::OnceLock<[u8; 16]> = std::sync::OnceLock::new();
    let secret = SECRET.get_or_init(|| *uuid::Uuid::new_v4().as_bytes());
    let mut hash = Sha256::new();
    hash.update(secret);
    for event in events {
        hash.update(event.aggregate.to_string().as_bytes());
        hash.update(event.event_id.to_string().as_bytes());
        hash.update(event.occurred_at.millis().to_be_bytes());
        if let Some(key) = &event.idempotency_key {
            hash.update(key.as_str().as_bytes());
        }
    }
    hex::encode(&hash.finalize()[..16])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// New events were appended.
    Applied,
    /// A command with the same idempotency key was applied before; nothing new.
    Duplicate,
    /// The command was valid and changed nothing (suspending a suspended provider).
    NoChange,
}

#[derive(Clone, Debug)]
pub struct Executed<A> {
    pub state: A,
    pub version: u64,
    pub events: Vec<Envelope>,
    pub outcome: Outcome,
}

/// How many times `execute` reloads and re-decides after losing a race. Each
/// lost race means another writer made progress, so this only runs out under
/// extreme contention on one aggregate; then the caller gets the conflict.
const MAX_ATTEMPTS: u32 = 64;

/// How long a write or a read waits for the stream to have a leader again
/// (an election after the node leading it died: 4 to 9 s on nats-server
/// 2.15) before it answers `Unavailable`: retried every 100 to 200 ms for
/// this long, plus at most one request timeout (5 s) for the last try.
pub const RIDE_OUT: Duration = Duration::from_secs(5);

/// The request timeout of every JetStream call.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a direct get may take before the stream leader is asked
/// instead (see `EventStore::get`); answered, it takes a millisecond or so.
const DIRECT_TRY: Duration = Duration::from_secs(1);

/// How long reads ask the stream leader first after a direct get went
/// unanswered, before direct gets are tried again.
const DIRECT_REST: Duration = Duration::from_secs(10);

/// A message get of one subject's commits.
#[derive(Clone, Copy)]
enum Get<'a> {
    /// The last message on the subject.
    Last(&'a str),
    /// The first message on the subject at or after the sequence.
    Next(&'a str, u64),
}

impl Get<'_> {
    /// The request as JetStream's message get reads it.
    fn request(self) -> serde_json::Value {
        match self {
            Get::Last(subject) => serde_json::json!({ "last_by_subj": subject }),
            Get::Next(subject, seq) => serde_json::json!({ "next_by_subj": subject, "seq": seq }),
        }
    }
}

/// The event store: JetStream as the source of truth, sled for what can be rebuilt.
#[derive(Clone)]
pub struct EventStore {
    js: jetstream::Context,
    stream: stream::Stream,
    settings: StreamSettings,
    local: LocalState,
    group: GroupCommit,
    /// Direct gets are not tried before this instant (see `EventStore::get`).
    direct_resumes: std::sync::Arc<std::sync::Mutex<Option<Instant>>>,
}

impl EventStore {
    /// Opens the stream (made by the operator, `StreamSettings::create`)
    /// and local state in `db`.
    pub async fn open(client: async_nats::Client, settings: StreamSettings, db: sled::Db) -> Result<Self, StoreError> {
        let js = jetstream::ContextBuilder::new().timeout(REQUEST_TIMEOUT).build(client);
        // A new cluster's nodes may still elect, or the operator may still
        // be making the stream: try again for a while.
        let stream = crate::patiently(
            "stream",
            || settings.open(&js),
            |e| matches!(e, StoreError::Unavailable(_)),
            || StoreError::Unavailable(crate::unanswered(&format!("stream {}", settings.name))),
        )
        .await?;
        Ok(Self {
            direct_resumes: Default::default(),
            group: GroupCommit::start(js.clone()),
            js,
            stream,
            settings,
            local: LocalState::open(db)?,
        })
    }

    /// Fails at once while the client is cut off from the bus, instead of
    /// each call waiting for its request to time out: a service answers
    /// UNAVAILABLE within moments of the bus going away.
    pub fn reachable(&self) -> Result<(), StoreError> {
        match self.js.client().connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(StoreError::Unavailable(format!(
                "the event bus is unreachable ({state:?})"
            ))),
        }
    }

    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    pub fn local(&self) -> &LocalState {
        &self.local
    }

    /// Appends the events of one command as one message, only if the
    /// aggregate is still at `expected` (optimistic concurrency). The message
    /// id is the command's idempotency key (or its first event id), so the
    /// server drops a resend inside its duplicate window. Concurrent appends
    /// share atomic batches (`group`), each still checked and answered on
    /// its own.
    pub async fn append(&self, expected: u64, events: &[Envelope]) -> Result<(u64, bool), StoreError> {
        self.reachable()?;
        let payload = encode_commit(events).map_err(StoreError::Encode)?;
        let aggregate = events[0].aggregate;
        let subject = self.settings.subject(&aggregate);
        let payload = Bytes::from(payload);
        // While the stream has no leader (an election), a publish finds no
        // one to answer it ("no responders", which the client reports as a
        // missing stream) or times out: try again, with the same message
        // id (a try that landed reads as a duplicate), for `RIDE_OUT`.
        let started = Instant::now();
        let mut attempt = 0;
        let appended = loop {
            attempt += 1;
            let appended = self
                .group
                .append(subject.clone(), expected, message_id(events), payload.clone())
                .await;
            match appended {
                Appended::NoStream | Appended::Unavailable(_) if started.elapsed() < RIDE_OUT => {
                    self.reachable()?;
                    tracing::debug!(%aggregate, attempt, outcome = ?appended, "no stream leader; trying again");
                    pause().await;
                }
                other => break other,
            }
        };
        match appended {
            Appended::Stored(sequence, duplicate) => {
                if !duplicate {
                    refer_metrics::count(
                        "refer_events_appended_total",
                        "Events appended to the stream, by aggregate kind.",
                        &[("aggregate", aggregate.kind.token())],
                        events.len() as f64,
                    );
                }
                Ok((sequence, duplicate))
            }
            Appended::WrongLastSequence => {
                refer_metrics::count(
                    "refer_append_conflicts_total",
                    "Appends refused because another writer got there first.",
                    &[("aggregate", aggregate.kind.token())],
                    1.0,
                );
                Err(StoreError::Conflict {
                    aggregate,
                    expected,
                    actual: self.version(&aggregate).await.unwrap_or(0),
                })
            }
            Appended::TooLarge => Err(StoreError::Encode(refer_domain::CodecError::TooLarge(events.len()))),
            Appended::NoStream => Err(StoreError::Unavailable(format!(
                "stream {} has no leader (an election, or the stream is gone) after {} s",
                self.settings.name,
                RIDE_OUT.as_secs()
            ))),
            Appended::Unavailable(why) => Err(StoreError::Unavailable(why)),
        }
    }

    /// The aggregate's current version (0 if it has no events).
    pub async fn version(&self, aggregate: &AggregateRef) -> Result<u64, StoreError> {
        self.reachable()?;
        let subject = self.settings.subject(aggregate);
        Ok(self.get(Get::Last(&subject)).await?.map_or(0, |(seq, _)| seq))
    }

    /// The aggregate's commits after version `after`, in order.
    pub async fn history(&self, aggregate: &AggregateRef, after: u64) -> Result<Vec<Recorded>, StoreError> {
        self.reachable()?;
        let subject = self.settings.subject(aggregate);
        let mut out = Vec::new();
        let mut next = after + 1;
        loop {
            let Some((seq, payload)) = self.get(Get::Next(&subject, next)).await? else {
                return Ok(out);
            };
            next = seq + 1;
            // A quarantined message is kept as an empty commit: it still
            // moves the aggregate's version, which the stream checks.
            let events = crate::readable(seq, &subject, &payload)?.unwrap_or_default();
            out.push(Recorded { seq, events });
        }
    }

    /// The last sequence among the subjects `filters` (every subject when
    /// empty) as the stream's leader knows it now: what a projection fed
    /// from those subjects must reach to be caught up.
    pub async fn last_sequence_on(&self, filters: &[String]) -> Result<u64, StoreError> {
        let last = self.last_sequence().await?;
        if filters.is_empty() || last == 0 {
            return Ok(last);
        }
        let mut upto = 0;
        for filter in filters {
            upto = upto.max(self.leader_last_on(filter).await?);
        }
        Ok(upto)
    }

    /// The sequence of the last message on `filter` (0: none), as the
    /// stream's leader answers it (a message get, which only the leader
    /// answers, where a direct get may reach a follower a moment behind).
    async fn leader_last_on(&self, filter: &str) -> Result<u64, StoreError> {
        let started = Instant::now();
        loop {
            match self.leader_get(Get::Last(filter)).await {
                Ok(found) => return Ok(found.map_or(0, |(seq, _)| seq)),
                Err(failed) if started.elapsed() >= RIDE_OUT => return Err(StoreError::Unavailable(failed)),
                Err(_) => {}
            }
            self.reachable()?;
            pause().await;
        }
    }

    /// One message get asked of the stream's leader (which only it
    /// answers); `None` when no message matches, `Err` with why when
    /// it was not answered.
    async fn leader_get(&self, get: Get<'_>) -> Result<Option<(u64, Bytes)>, String> {
        let asked = match get {
            Get::Last(subject) => self.stream.raw_message_builder().last_by_subject(subject),
            Get::Next(subject, seq) => self.stream.raw_message_builder().sequence(seq).next_by_subject(subject),
        };
        match asked.send().await {
            Ok(msg) => Ok(Some((msg.sequence, msg.payload))),
            Err(err) if err.kind() == stream::RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(err) => Err(format!("message get: {err}")),
        }
    }

    /// One message get: a direct get first, which any copy of the stream
    /// may answer (a follower a moment behind too), then, if that is not
    /// answered within `DIRECT_TRY`, the stream leader's message get,
    /// alternating until one answers; `None` when no message matches. Both
    /// are needed: a direct get is served by whichever copy the bus picks,
    /// and a stalled node (SIGSTOP, a frozen VM) keeps its place among them
    /// until its peers drop it, which takes minutes, swallowing the gets
    /// sent its way; the leader's get waits out an election. After a direct
    /// get went unanswered, reads go to the leader first for `DIRECT_REST`
    /// (a stalled node keeps swallowing direct gets for minutes, and each
    /// would cost `DIRECT_TRY`). Not answered either way: tried again for
    /// `RIDE_OUT`.
    async fn get(&self, get: Get<'_>) -> Result<Option<(u64, Bytes)>, StoreError> {
        let subject = format!("$JS.API.DIRECT.GET.{}", self.settings.name);
        let body = Bytes::from(serde_json::to_vec(&get.request()).expect("a request encodes"));
        let client = self.js.client();
        let started = Instant::now();
        let resting = self
            .direct_resumes
            .lock()
            .expect("direct resumes")
            .is_some_and(|until| started < until);
        let mut attempt = usize::from(resting);
        loop {
            attempt += 1;
            let failed = if attempt % 2 == 1 {
                let asked = tokio::time::timeout(DIRECT_TRY, client.request(subject.clone(), body.clone()));
                match asked.await {
                    Ok(Ok(msg)) => match msg.status.map(|s| s.as_u16()) {
                        None | Some(200) => {
                            let seq = msg
                                .headers
                                .as_ref()
                                .and_then(|h| h.get("Nats-Sequence"))
                                .and_then(|v| v.as_str().parse::<u64>().ok())
                                .ok_or_else(|| {
                                    StoreError::Unavailable("a direct get answer without its sequence".into())
                                })?;
                            return Ok(Some((seq, msg.payload)));
                        }
                        Some(404) => return Ok(None),
                        Some(code) => format!("direct get answered {code} {}", msg.description.unwrap_or_default()),
                    },
                    Ok(Err(err)) => format!("direct get: {err}"),
                    Err(_) => {
                        *self.direct_resumes.lock().expect("direct resumes") = Some(Instant::now() + DIRECT_REST);
                        "direct get: timed out".to_owned()
                    }
                }
            } else {
                match self.leader_get(get).await {
                    Ok(found) => return Ok(found),
                    Err(failed) => failed,
                }
            };
            if started.elapsed() >= RIDE_OUT {
                return Err(StoreError::Unavailable(failed));
            }
            self.reachable()?;
            tracing::debug!(attempt, failed, "read not answered; trying again");
            if attempt % 2 == 0 {
                pause().await;
            }
        }
    }

    /// Loads an aggregate: its snapshot, if any, then the commits after it.
    pub async fn load<A: Aggregate>(&self, id: Uuid) -> Result<Loaded<A>, StoreError> {
        let aggregate = AggregateRef { kind: A::KIND, id };
        let (version, state) = self.local.snapshot::<A>(&aggregate)?.unwrap_or_default();
        let commits = self.history(&aggregate, version).await?;
        let mut loaded = Loaded {
            state,
            version,
            keys: BTreeSet::new(),
            replayed: commits.len(),
        };
        for commit in commits {
            if let Some(key) = commit.events.first().and_then(|e| e.idempotency_key.clone()) {
                loaded.keys.insert((key, commit.seq));
            }
            for envelope in &commit.events {
                if let Some(event) = A::unwrap(&envelope.event) {
                    loaded.state = loaded.state.evolve(event);
                }
            }
            loaded.version = commit.seq;
        }
        if loaded.replayed > 0 {
            self.local
                .record(&aggregate, loaded.version, &loaded.state, &loaded.keys)?;
        }
        Ok(loaded)
    }

    /// Loads an aggregate that is known to have a commit at `version` (an
    /// acknowledgement said so): a read may reach a copy of the stream a
    /// moment behind, so it is read again until it shows that commit (for
    /// at most `RIDE_OUT`, then `Unavailable`), never answered without it.
    pub async fn load_at_least<A: Aggregate>(&self, id: Uuid, version: u64) -> Result<Loaded<A>, StoreError> {
        let started = Instant::now();
        loop {
            let loaded = self.load::<A>(id).await?;
            if loaded.version >= version {
                return Ok(loaded);
            }
            if started.elapsed() >= RIDE_OUT {
                return Err(StoreError::Unavailable(format!(
                    "commit {version} is not readable yet (read {})",
                    loaded.version
                )));
            }
            pause().await;
        }
    }

    /// The state as of the local snapshot, without reading the stream.
    pub(crate) fn cached<A: Aggregate>(&self, aggregate: &AggregateRef) -> Result<Loaded<A>, StoreError> {
        let (version, state) = self.local.snapshot::<A>(aggregate)?.unwrap_or_default();
        Ok(Loaded {
            state,
            version,
            keys: BTreeSet::new(),
            replayed: 0,
        })
    }

    /// Runs one command: load, decide at `meta.occurred_at`, append.
    ///
    /// The first attempt is speculative: it decides on the local snapshot
    /// without reading the stream and appends at the snapshot's version. If
    /// the snapshot is current (the usual case for an aggregate this service
    /// writes) that saves a round trip; if it is stale the append conflicts,
    /// and an error or no-op decided on it is not trusted, so the command is
    /// decided again on state read from the stream.
    ///
    /// With an idempotency key, a command already applied returns
    /// `Outcome::Duplicate` and appends nothing: the key is checked in the
    /// local record and in the commits read since the snapshot, so the check
    /// holds beyond the server's duplicate window and after sled is lost.
    ///
    /// With `expected` set, the aggregate must be at that version (the client
    /// read it and decided on it); otherwise a lost race is retried by
    /// reloading and deciding again.
    pub async fn execute<A: Aggregate>(
        &self,
        id: Uuid,
        command: &A::Command,
        meta: &CommandMeta,
        expected: Option<u64>,
    ) -> Result<Executed<A>, StoreError> {
        let aggregate = AggregateRef { kind: A::KIND, id };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let speculative = attempt == 1;
            let loaded = if speculative {
                self.cached::<A>(&aggregate)?
            } else {
                self.load::<A>(id).await?
            };
            if let Some(key) = &meta.idempotency_key {
                if self.local.applied(&aggregate, key)?.is_some() || loaded.applied(key).is_some() {
                    // Answer a retry with the current state, not a snapshot's.
                    let current = if speculative { self.load::<A>(id).await? } else { loaded };
                    return Ok(Executed {
                        state: current.state,
                        version: current.version,
                        events: vec![],
                        outcome: Outcome::Duplicate,
                    });
                }
            }
            if let Some(expected) = expected {
                if expected != loaded.version {
                    if speculative {
                        continue;
                    }
                    return Err(StoreError::Conflict {
                        aggregate,
                        expected,
                        actual: loaded.version,
                    });
                }
            }
            let events = match loaded.state.decide(command, meta.occurred_at) {
                Ok(events) => events,
                Err(_) if speculative => continue,
                Err(err) => return Err(err.into()),
            };
            if events.is_empty() {
                if speculative {
                    continue;
                }
                return Ok(Executed {
                    state: loaded.state,
                    version: loaded.version,
                    events: vec![],
                    outcome: Outcome::NoChange,
                });
            }
            let envelopes: Vec<Envelope> = events
                .into_iter()
                .map(|event| Envelope::new(EventId::from_uuid(Uuid::new_v4()), aggregate, meta, A::wrap(event)))
                .collect();
            match self.append(loaded.version, &envelopes).await {
                Ok((version, duplicate)) => {
                    if duplicate {
                        // The server saw this message id before: an earlier
                        // try landed, at `version`, maybe through another
                        // replica, and the copy a read reaches may not have
                        // it yet: read until it does.
                        let state = self.load_at_least::<A>(id, version).await?;
                        return Ok(Executed {
                            state: state.state,
                            version: state.version,
                            events: vec![],
                            outcome: Outcome::Duplicate,
                        });
                    }
                    let state = envelopes
                        .iter()
                        .filter_map(|e| A::unwrap(&e.event))
                        .fold(loaded.state, |state, event| state.evolve(event));
                    let mut keys = loaded.keys;
                    if let Some(key) = &meta.idempotency_key {
                        keys.insert((key.clone(), version));
                    }
                    self.local.record(&aggregate, version, &state, &keys)?;
                    return Ok(Executed {
                        state,
                        version,
                        events: envelopes,
                        outcome: Outcome::Applied,
                    });
                }
                Err(StoreError::Conflict { .. }) if speculative => continue,
                Err(StoreError::Conflict { .. }) if expected.is_none() && attempt < MAX_ATTEMPTS => {
                    tracing::debug!(%aggregate, attempt, "lost an append race; reloading");
                    crate::atomic::back_off(attempt).await;
                    continue;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Every commit of the stream with a sequence in `(after, upto]`, read
    /// with an ordered consumer (for rebuilds, audits and tests).
    pub async fn read_all(&self, after: u64, upto: u64) -> Result<Vec<Recorded>, StoreError> {
        use futures::StreamExt;
        self.reachable()?;
        let mut out = Vec::new();
        if upto <= after {
            return Ok(out);
        }
        let consumer = self
            .stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        while let Some(msg) = messages.next().await {
            let msg = msg.map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let seq = msg
                .info()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?
                .stream_sequence;
            let events = crate::readable(seq, &msg.subject, &msg.payload)?.unwrap_or_default();
            out.push(Recorded { seq, events });
            if seq >= upto {
                break;
            }
        }
        Ok(out)
    }

    /// The sequence of the last message in the stream.
    pub async fn last_sequence(&self) -> Result<u64, StoreError> {
        self.reachable()?;
        let mut stream = self.stream.clone();
        let info = stream
            .info()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(info.state.last_sequence)
    }
}

/// A jittered pause of 100 to 200 ms before trying again.
async fn pause() {
    let jitter = (Uuid::new_v4().as_u128() % 100) as u64;
    tokio::time::sleep(Duration::from_millis(100 + jitter)).await;
}
