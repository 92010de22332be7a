//! Refer's domain: the pure, deterministic core.
//!
//! Nothing in this crate does I/O, reads a clock or draws a random number:
//! time and ids are inputs. Each aggregate is a `decide` (command to events,
//! or a typed error) and an `evolve` (fold an event into the state), so every
//! rule is testable in microseconds. See `docs/architecture.md`.
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod decision;
pub mod donation;
pub mod eligibility;
pub mod error;
pub mod event;
pub mod events;
pub mod freshness;
pub mod geo;
pub mod hold;
pub mod ids;
pub mod kinds;
pub mod need;
pub mod placement;
pub mod profile;
pub mod provider;
pub mod request;
#[cfg(any(test, feature = "test-support"))]
pub mod sample;
pub mod sealed;
#[cfg(any(test, feature = "test-support"))]
pub mod spec;
pub mod standing;
pub mod time;

pub use aggregate::Aggregate;
pub use error::{DomainError, ErrorKind};
pub use event::{
    decode_commit, encode_commit, AggregateKind, AggregateRef, CodecError, CommandMeta, Envelope, Event, IdempotencyKey,
};
pub use freshness::Freshness;
pub use time::Timestamp;
