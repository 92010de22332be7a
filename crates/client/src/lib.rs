//! What a Refer process needs to reach another, without the services'
//! runtime: TLS at both ends of a connection (the console serves too),
//! the bus connection with its credential, bearer tokens and the token
//! file, the wire forms of domain values, the bus's buckets, and logging.
//! The CLI, the console and `refer-bench` stand on this crate;
//! `refer-service` builds the services' shell on it.
#![forbid(unsafe_code)]

pub mod buckets;
pub mod bus;
pub mod history;
pub mod provision;
pub mod tls;
pub mod tokens;
pub mod wire;

pub use tokens::{authed, Role};

/// Logs as text (or JSON lines), filtered by `RUST_LOG` (default `info`).
pub fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Closing each RPC's span logs it once, with its method, correlation id and time.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
