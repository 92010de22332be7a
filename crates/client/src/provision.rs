//! Every stream and bucket Refer keeps on the bus, in one place, and the
//! operator's step that makes them (`refer admin provision`).
//!
//! No process but the operator's tools may make a stream: whoever makes a
//! stream first decides what it captures (more subjects than its own, or a
//! mirror of the sealed-key bucket), and JetStream's permissions cannot
//! look inside a create request. So the services' credentials hold no
//! `STREAM.CREATE` (deploy/nats/auth.conf), every process opens what is
//! listed here and checks it is as Refer makes it, and the operator makes
//! it all before the first start and after a change of replicas.

use crate::buckets::{Bucket, Storage};
use async_nats::jetstream;
pub use refer_eventstore::StreamSettings;
use std::time::Duration;

/// How long an idempotency binding is kept (the bucket's max age).
pub const IDEMPOTENCY_KEPT: Duration = Duration::from_secs(24 * 3600);

/// How long an instance claim lives after its last renewal.
pub const CLAIM_TTL: Duration = Duration::from_secs(6);

/// How long a matcher's lease lives after its last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(3);

/// The console's shared sessions.
pub const CONSOLE_SESSIONS: &str = "REFER_CONSOLE_SESSIONS";

/// How long the console keeps a session unused, unless configured.
pub const CONSOLE_IDLE: Duration = Duration::from_secs(30 * 60);

/// Idempotency keys bound to their requests, shared by every service
/// (`refer_service::idempotency`). In memory, replicated: a binding costs
/// a round trip, not an fsync (every command makes one); losing every
/// node's memory at once loses the check, never data.
pub fn idempotency(stream: &StreamSettings) -> Bucket {
    Bucket {
        name: format!("{}_KEYS", stream.name),
        description: "Idempotency keys bound to their requests (refer_service::idempotency)",
        replicas: stream.replicas,
        max_age: IDEMPOTENCY_KEPT,
        storage: Storage::Memory,
    }
}

/// Which process runs each instance name (`refer_service::identity`).
pub fn instances(stream: &StreamSettings) -> Bucket {
    Bucket {
        name: format!("{}_INSTANCES", stream.name),
        description: "Which process runs each replica's identity (see refer_service::identity)",
        replicas: stream.replicas,
        max_age: CLAIM_TTL,
        storage: Storage::File,
    }
}

/// The matchers' leases, one per partition (`refer_service::lease`).
pub fn leases(stream: &StreamSettings) -> Bucket {
    Bucket {
        name: format!("{}_LEASES", stream.name),
        description: "Refer's leases (see refer_service::lease)",
        replicas: stream.replicas,
        max_age: LEASE_TTL,
        storage: Storage::File,
    }
}

/// The console's sessions, sealed, ending `idle` after their last use.
pub fn console_sessions(replicas: usize, idle: Duration) -> Bucket {
    Bucket {
        name: CONSOLE_SESSIONS.to_owned(),
        description: "The console's sessions, sealed (services/console/src/session.rs)",
        replicas,
        max_age: idle,
        storage: Storage::File,
    }
}

/// Makes every stream and bucket of the domain stream `stream` and the
/// console's session bucket (`console_idle`), or checks those already
/// there. Idempotent: run at every deployment. Returns what is ready.
pub async fn provision(
    js: &jetstream::Context,
    stream: &StreamSettings,
    console_idle: Duration,
) -> anyhow::Result<Vec<String>> {
    let mut ready = Vec::new();
    let wait = |what: String| refer_eventstore::unanswered(&what);
    refer_eventstore::patiently(
        &format!("stream {}", stream.name),
        || stream.create(js),
        |e| matches!(e, refer_eventstore::StoreError::Unavailable(_)),
        || refer_eventstore::StoreError::Unavailable(wait(format!("stream {}", stream.name))),
    )
    .await?;
    ready.push(stream.name.clone());
    let log = stream.read_log();
    let made = js
        .get_or_create_stream(log.clone())
        .await
        .map_err(|e| anyhow::anyhow!("stream {}: {e}", log.name))?;
    refer_eventstore::refuse_foreign_stream(&made.cached_info().config, &log.subjects).map_err(anyhow::Error::msg)?;
    ready.push(log.name);
    let keys = refer_sealed::bucket_for(&stream.name);
    refer_sealed::Vault::create_bucket(js, &keys, stream.replicas).await?;
    ready.push(keys);
    for bucket in [
        idempotency(stream),
        instances(stream),
        leases(stream),
        console_sessions(stream.replicas, console_idle),
    ] {
        bucket.create(js).await?;
        ready.push(bucket.name);
    }
    Ok(ready)
}
