//! Refer's event store: JetStream is the source of truth, sled holds only
//! what can be rebuilt from it (snapshots, idempotency records, projection
//! checkpoints). See `docs/architecture.md`.
#![forbid(unsafe_code)]

mod atomic;
mod batch;
mod decision;
mod durable;
mod error;
mod group;
mod local;
mod patience;
mod quarantine;
mod store;
mod stream;
mod subscriber;

pub use atomic::{back_off, Part, Prepared, COMMIT_ATTEMPTS};
pub use batch::{publish_atomic, BatchMessage, Refused, MAX_BATCH};
pub use decision::{always, Committed, Landed, Precondition};
pub use durable::{GroupFlush, Ticket};
pub use error::StoreError;
pub use local::{LocalState, SNAPSHOT_FORMAT};
pub use patience::{patiently, unanswered, START_PATIENCE};
pub use store::{EventStore, Executed, Loaded, Outcome, Recorded, RIDE_OUT};
pub use stream::{not_provisioned, refuse_foreign_stream, refuse_unlike, StreamSettings};
pub use subscriber::{Projection, Subscriber, PERSIST_EVERY};

pub use quarantine::readable;
