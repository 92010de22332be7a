//! The shell every Refer gRPC service stands on: authentication before any
//! handler, error-to-status mapping, wire conversions, paging, read models
//! and their watches, the clock, configuration and serving. A service's own
//! code is its handlers.
#![forbid(unsafe_code)]

pub mod auth;
pub mod clock;
pub mod handler;
pub mod idempotency;
pub mod identity;
pub mod lease;
pub mod page;
pub mod read_model;
pub mod reads;
pub mod runtime;
pub mod sealing;
pub mod server;
pub mod status;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod watch;

pub use auth::{caller, Principal, Role, TokenBook};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use refer_client::wire as convert;
pub use refer_client::{buckets, enum_map, provision, tls};
pub use status::{domain_status, invalid, store_status};
