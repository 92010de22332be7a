//! Events as they travel on the bus: a versioned envelope around the domain
//! event, encoded with postcard.
//!
//! postcard has no field tags, so compatibility is kept by rules, not luck:
//! every enum here is append-only (never reorder or remove a variant), a
//! changed event shape becomes a new variant, and a new envelope layout becomes
//! a new `WireCommit` variant that decoding upcasts to the current `Envelope`.

use crate::error::DomainError;
use crate::events::donation::DonationEvent;
use crate::events::need::NeedEvent;
use crate::events::placement::PlacementEvent;
use crate::events::provider::ProviderEvent;
use crate::events::standing::StandingEvent;
use crate::ids::{CorrelationId, EventId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;
use uuid::Uuid;

/// The kinds of aggregate; each has its own subject space on the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AggregateKind {
    Provider,
    Donation,
    Need,
    Placement,
    Standing,
}

impl AggregateKind {
    pub const ALL: [AggregateKind; 5] = [
        Self::Provider,
        Self::Donation,
        Self::Need,
        Self::Placement,
        Self::Standing,
    ];

    /// The subject token: `refer.<token>.<id>`.
    pub fn token(self) -> &'static str {
        match self {
            Self::Provider => "provider",
            Self::Donation => "donation",
            Self::Need => "need",
            Self::Placement => "placement",
            Self::Standing => "standing",
        }
    }
}

/// Which aggregate an event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AggregateRef {
    pub kind: AggregateKind,
    pub id: Uuid,
}

impl fmt::Display for AggregateRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind.token(), self.id.as_simple())
    }
}

/// Every domain event, across aggregates. Append-only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    Provider(ProviderEvent),
    Donation(DonationEvent),
    Need(NeedEvent),
    Placement(PlacementEvent),
    Standing(StandingEvent),
}

impl Event {
    /// A stable, dotted name (`need.proposed`), for logs and filtering.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Provider(e) => e.type_name(),
            Self::Donation(e) => e.type_name(),
            Self::Need(e) => e.type_name(),
            Self::Placement(e) => e.type_name(),
            Self::Standing(e) => e.type_name(),
        }
    }

    pub fn aggregate_kind(&self) -> AggregateKind {
        match self {
            Self::Provider(_) => AggregateKind::Provider,
            Self::Donation(_) => AggregateKind::Donation,
            Self::Need(_) => AggregateKind::Need,
            Self::Placement(_) => AggregateKind::Placement,
            Self::Standing(_) => AggregateKind::Standing,
        }
    }
}

/// A client-chosen key that makes a command safe to retry: 1 to 64 characters
/// of `A-Z a-z 0-9 - _`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn new(key: impl Into<String>) -> Result<Self, DomainError> {
        let key = key.into();
        let ok =
            (1..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(key))
        } else {
            Err(DomainError::invalid(
                "idempotency_key",
                "must be 1-64 characters of A-Z, a-z, 0-9, '-' and '_'",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The schema version written by this code. Bumped when an event variant is
/// added, so an old reader can tell it is looking at something newer.
/// 2: placements' files, standing hand-offs and `need.handed_off`.
pub const SCHEMA_VERSION: u16 = 2;

/// One event with its metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: EventId,
    pub aggregate: AggregateRef,
    /// `event.type_name()`, stored so tools can read it without knowing the enum.
    pub event_type: String,
    pub schema_version: u16,
    pub occurred_at: Timestamp,
    pub correlation_id: CorrelationId,
    /// The event that caused this one (for example a need's request causing a
    /// matcher proposal); `None` when a user's command caused it directly.
    pub causation_id: Option<EventId>,
    pub idempotency_key: Option<IdempotencyKey>,
    pub event: Event,
}

/// The fields every event of one command shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandMeta {
    pub occurred_at: Timestamp,
    pub correlation_id: CorrelationId,
    pub causation_id: Option<EventId>,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl Envelope {
    pub fn new(event_id: EventId, aggregate: AggregateRef, meta: &CommandMeta, event: Event) -> Self {
        Self {
            event_id,
            aggregate,
            event_type: event.type_name().to_owned(),
            schema_version: SCHEMA_VERSION,
            occurred_at: meta.occurred_at,
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            idempotency_key: meta.idempotency_key.clone(),
            event,
        }
    }
}

/// The unit written to the bus: all events of one command, so a command is
/// appended whole or not at all. Append-only.
#[derive(Serialize, Deserialize)]
enum WireCommit {
    V1(Vec<Envelope>),
}

/// Nothing larger is decoded (JetStream's default message limit is 1 MiB).
pub const MAX_COMMIT_BYTES: usize = 256 * 1024;
/// Nor more events than this in one commit.
pub const MAX_EVENTS_PER_COMMIT: usize = 512;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CodecError {
    #[error("commit of {0} bytes exceeds the {MAX_COMMIT_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("commit holds no events")]
    Empty,
    #[error("commit holds {0} events, more than {MAX_EVENTS_PER_COMMIT}")]
    TooManyEvents(usize),
    #[error("malformed commit: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the commit")]
    TrailingBytes(usize),
    #[error("event schema version {0} is newer than this reader ({SCHEMA_VERSION})")]
    NewerSchema(u16),
    #[error("event type {stored:?} does not match its payload {actual:?}")]
    TypeMismatch { stored: String, actual: &'static str },
    #[error("event of a {event:?} filed under a {aggregate:?}")]
    WrongAggregate {
        aggregate: AggregateKind,
        event: AggregateKind,
    },
    #[error("events of one commit belong to different aggregates")]
    MixedAggregates,
}

impl CodecError {
    /// Whether the commit was written by a newer version of Refer: a reader
    /// must stop there until it is upgraded (skipping it would lose a real
    /// event). Any other error means bytes that are no commit Refer wrote
    /// (a credential holder's garbage on its own subjects, a bug): readers
    /// quarantine those and go on.
    pub fn from_newer_writer(&self) -> bool {
        matches!(self, CodecError::NewerSchema(_))
    }
}

fn check(events: &[Envelope]) -> Result<(), CodecError> {
    let first = events.first().ok_or(CodecError::Empty)?;
    if events.len() > MAX_EVENTS_PER_COMMIT {
        return Err(CodecError::TooManyEvents(events.len()));
    }
    for envelope in events {
        if envelope.aggregate != first.aggregate {
            return Err(CodecError::MixedAggregates);
        }
        if envelope.schema_version > SCHEMA_VERSION {
            return Err(CodecError::NewerSchema(envelope.schema_version));
        }
        let actual = envelope.event.type_name();
        if envelope.event_type != actual {
            return Err(CodecError::TypeMismatch {
                stored: envelope.event_type.clone(),
                actual,
            });
        }
        if envelope.event.aggregate_kind() != envelope.aggregate.kind {
            return Err(CodecError::WrongAggregate {
                aggregate: envelope.aggregate.kind,
                event: envelope.event.aggregate_kind(),
            });
        }
    }
    Ok(())
}

/// The schema version a commit that does not decode says it was written
/// at, when that is newer than this reader's. A new event variant cannot
/// be decoded by an older reader (postcard meets an enum tag it does not
/// know), but the fields before it in the first envelope still read: a
/// newer writer's commit is then told apart from bytes that are no commit
/// at all (which readers quarantine, `CodecError::from_newer_writer`).
fn newer_writer(bytes: &[u8]) -> Option<u16> {
    #[derive(Deserialize)]
    struct Head {
        _event_id: EventId,
        _aggregate: AggregateRef,
        _event_type: String,
        schema_version: u16,
    }
    let (tag, rest) = postcard::take_from_bytes::<u32>(bytes).ok()?;
    let (count, rest) = postcard::take_from_bytes::<u64>(rest).ok()?;
    if tag != 0 || count == 0 {
        return None;
    }
    let (head, _) = postcard::take_from_bytes::<Head>(rest).ok()?;
    (head.schema_version > SCHEMA_VERSION).then_some(head.schema_version)
}

/// Encodes the events of one command. Fails on the same rules decoding checks,
/// so nothing is written that could not be read back.
pub fn encode_commit(events: &[Envelope]) -> Result<Vec<u8>, CodecError> {
    check(events)?;
    #[derive(Serialize)]
    enum WireCommitRef<'a> {
        V1(&'a [Envelope]),
    }
    let bytes = postcard::to_stdvec(&WireCommitRef::V1(events)).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_COMMIT_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// Decodes one commit from untrusted bytes: the size is capped before any
/// decoding, and any input gives a value or an error, never a panic.
pub fn decode_commit(bytes: &[u8]) -> Result<Vec<Envelope>, CodecError> {
    if bytes.len() > MAX_COMMIT_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    let (wire, rest): (WireCommit, _) = postcard::take_from_bytes(bytes).map_err(|e| match newer_writer(bytes) {
        Some(version) => CodecError::NewerSchema(version),
        None => CodecError::Malformed(e.to_string()),
    })?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes(rest.len()));
    }
    // A match, not a `let`: each future wire version adds an upcasting arm here.
    #[allow(clippy::infallible_destructuring_match)]
    let events = match wire {
        WireCommit::V1(events) => events,
    };
    check(&events)?;
    Ok(events)
}
