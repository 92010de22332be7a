//! What every Refer gRPC service shares: authentication against configured
//! tokens, error-to-status mapping, wire conversions, the clock, serving.
#![forbid(unsafe_code)]

pub mod auth;
pub mod clock;
pub mod convert;
pub mod runtime;
pub mod server;
pub mod status;
pub mod testing;
pub mod watch;

pub use auth::{Principal, Role, TokenBook};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use status::{domain_status, invalid, store_status};
