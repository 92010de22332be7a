//! Commits to several aggregates at once, all stored or none: JetStream's
//! atomic batch publish (nats-server 2.12+, a stream with `allow_atomic`).
//!
//! Each aggregate's commit is one message of the batch and carries its own
//! `Nats-Expected-Last-Subject-Sequence` and `Nats-Msg-Id`: one stale
//! expectation, or one message id the server has seen, refuses the whole
//! batch and nothing of it is stored. So a decision that touches two
//! aggregates (a hold on a provider and a proposal on a need) is one commit
//! with optimistic concurrency and idempotency on both.

use crate::batch::{publish_atomic, BatchMessage, Refused, MAX_BATCH};
use crate::error::StoreError;
use crate::store::{EventStore, Executed, Loaded, Outcome};
use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_ID};
use async_nats::HeaderMap;
use refer_domain::ids::EventId;
use refer_domain::{encode_commit, Aggregate, AggregateRef, CommandMeta, Envelope};
use std::time::Duration;
use uuid::Uuid;

/// Commands decided on one aggregate, waiting to be committed with others.
#[derive(Debug)]
pub struct Prepared<A: Aggregate> {
    aggregate: AggregateRef,
    loaded: Loaded<A>,
    /// The state after the events.
    pub state: A,
    envelopes: Vec<Envelope>,
    meta: CommandMeta,
    duplicate: bool,
}

impl<A: Aggregate> Prepared<A> {
    /// Whether there is anything to write (not a duplicate, not a no-op).
    pub fn writes(&self) -> bool {
        !self.envelopes.is_empty()
    }

    /// The version the aggregate was decided at.
    pub fn version(&self) -> u64 {
        self.loaded.version
    }

    /// Whether a command with the same idempotency key was applied before.
    pub fn is_duplicate(&self) -> bool {
        self.duplicate
    }
}

/// One aggregate's part of a batch, whatever its type.
pub trait Part: Sync {
    fn aggregate(&self) -> AggregateRef;
    fn expected(&self) -> u64;
    fn envelopes(&self) -> &[Envelope];
}

impl<A: Aggregate + Sync> Part for Prepared<A> {
    fn aggregate(&self) -> AggregateRef {
        self.aggregate
    }
    fn expected(&self) -> u64 {
        self.loaded.version
    }
    fn envelopes(&self) -> &[Envelope] {
        &self.envelopes
    }
}

impl EventStore {
    /// Decides `commands` in order on aggregate `id` without writing: their
    /// events become one commit of a batch. With an idempotency key already
    /// applied, nothing is decided and the part writes nothing
    /// (`is_duplicate`).
    ///
    /// The first `attempt` is speculative, as `execute`'s is: it decides on
    /// the local snapshot without reading the stream and expects the
    /// snapshot's version, so a stale snapshot makes the commit conflict and
    /// the next attempt (the caller's retry, `retry_races`) reads the stream.
    /// A speculative decision that fails, writes nothing or meets a key is
    /// not trusted: it is made again on the stream at once.
    pub async fn prepare<A: Aggregate>(
        &self,
        id: Uuid,
        commands: &[A::Command],
        meta: &CommandMeta,
        attempt: u32,
    ) -> Result<Prepared<A>, StoreError> {
        let aggregate = AggregateRef { kind: A::KIND, id };
        if attempt <= 1 {
            let cached = self.cached::<A>(&aggregate)?;
            let seen = match &meta.idempotency_key {
                Some(key) => self.local().applied(&aggregate, key)?.is_some(),
                None => false,
            };
            if !seen {
                if let Ok(part) = Self::decide_part(aggregate, cached, commands, meta, false) {
                    if part.writes() {
                        return Ok(part);
                    }
                }
            }
        }
        let loaded = self.load::<A>(id).await?;
        let duplicate = match &meta.idempotency_key {
            Some(key) => self.local().applied(&aggregate, key)?.is_some() || loaded.applied(key).is_some(),
            None => false,
        };
        Self::decide_part(aggregate, loaded, commands, meta, duplicate)
    }

    fn decide_part<A: Aggregate>(
        aggregate: AggregateRef,
        loaded: Loaded<A>,
        commands: &[A::Command],
        meta: &CommandMeta,
        duplicate: bool,
    ) -> Result<Prepared<A>, StoreError> {
        let mut state = loaded.state.clone();
        let mut envelopes = Vec::new();
        if !duplicate {
            for command in commands {
                for event in state.decide(command, meta.occurred_at)? {
                    let wrapped = A::wrap(event.clone());
                    envelopes.push(Envelope::new(
                        EventId::from_uuid(Uuid::new_v4()),
                        aggregate,
                        meta,
                        wrapped,
                    ));
                    state = state.evolve(&event);
                }
            }
        }
        Ok(Prepared {
            aggregate,
            loaded,
            state,
            envelopes,
            meta: meta.clone(),
            duplicate,
        })
    }

    /// Writes every part that has events as one atomic batch (a single part
    /// is a plain append). Returns the stream sequence of each part's commit,
    /// `None` for parts with nothing to write. A stale expectation on any
    /// part answers `Conflict` (naming the first part: reload all and decide
    /// again); a message id the server saw before answers `Duplicate` for
    /// the batch (some part landed before: commit the parts one by one to
    /// learn which).
    pub async fn commit_atomic(&self, parts: &[&dyn Part]) -> Result<Vec<Option<u64>>, StoreError> {
        self.reachable()?;
        let writing: Vec<usize> = (0..parts.len()).filter(|i| !parts[*i].envelopes().is_empty()).collect();
        let mut seqs = vec![None; parts.len()];
        match writing.as_slice() {
            [] => return Ok(seqs),
            [one] => {
                let part = parts[*one];
                let (seq, duplicate) = self.append(part.expected(), part.envelopes()).await?;
                if duplicate {
                    return Err(StoreError::Duplicate);
                }
                seqs[*one] = Some(seq);
                return Ok(seqs);
            }
            _ if writing.len() > MAX_BATCH => {
                return Err(StoreError::Setup(format!(
                    "a batch holds at most {MAX_BATCH} commits, not {}",
                    writing.len()
                )))
            }
            _ => {}
        }
        let mut messages = Vec::new();
        for i in &writing {
            let part = parts[*i];
            let payload = encode_commit(part.envelopes()).map_err(StoreError::Encode)?;
            let mut headers = HeaderMap::new();
            headers.insert(
                NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                part.expected().to_string().as_str(),
            );
            headers.insert(NATS_MESSAGE_ID, crate::store::message_id(part.envelopes()).as_str());
            messages.push(BatchMessage {
                subject: self.settings().subject(&part.aggregate()),
                headers,
                payload: payload.into(),
            });
        }
        let first = match publish_atomic(&self.jetstream().client(), messages).await {
            Ok(first) => first,
            Err(Refused::WrongLastSequence) => {
                refer_metrics::count(
                    "refer_append_conflicts_total",
                    "Appends refused because another writer got there first.",
                    &[("aggregate", "batch")],
                    1.0,
                );
                let first = parts[writing[0]];
                return Err(StoreError::Conflict {
                    aggregate: first.aggregate(),
                    expected: first.expected(),
                    actual: self.version(&first.aggregate()).await.unwrap_or(0),
                });
            }
            Err(Refused::Duplicate) => return Err(StoreError::Duplicate),
            Err(Refused::Unavailable(why)) => return Err(StoreError::Unavailable(why)),
        };
        for (n, i) in writing.iter().enumerate() {
            seqs[*i] = Some(first + n as u64);
            let part = parts[*i];
            refer_metrics::count(
                "refer_events_appended_total",
                "Events appended to the stream, by aggregate kind.",
                &[("aggregate", part.aggregate().kind.token())],
                part.envelopes().len() as f64,
            );
        }
        Ok(seqs)
    }

    /// Takes a prepared part that was committed at `seq` (or that wrote
    /// nothing) into local state, and says what it did.
    pub fn finish<A: Aggregate>(&self, prepared: Prepared<A>, seq: Option<u64>) -> Result<Executed<A>, StoreError> {
        let Prepared {
            aggregate,
            loaded,
            state,
            envelopes,
            meta,
            duplicate,
        } = prepared;
        let Some(seq) = seq else {
            let outcome = if duplicate {
                Outcome::Duplicate
            } else {
                Outcome::NoChange
            };
            return Ok(Executed {
                state,
                version: loaded.version,
                events: vec![],
                outcome,
            });
        };
        let mut keys = loaded.keys_applied();
        if let Some(key) = &meta.idempotency_key {
            keys.insert((key.clone(), seq));
        }
        self.local().record(&aggregate, seq, &state, &keys)?;
        Ok(Executed {
            state,
            version: seq,
            events: envelopes,
            outcome: Outcome::Applied,
        })
    }
}

/// How many times `EventStore::decide` tries a commit that keeps losing.
pub const COMMIT_ATTEMPTS: u32 = 16;

/// Jittered backoff after a lost race (attempt 1, 2, ...), so writers that
/// collided spread out.
pub async fn back_off(attempt: u32) {
    let jitter = (Uuid::new_v4().as_u128() % 1000) as u64;
    tokio::time::sleep(Duration::from_micros(200 * u64::from(attempt.min(10)) + jitter)).await;
}
