//! Every stream and bucket Refer keeps on the bus, in one place, and the
//! operator's step that makes them (`refer admin provision`).
//!
//! No process but the operator's tools may make a stream: whoever makes a
//! stream first decides what it captures (more subjects than its own, or a
//! mirror of the sealed-key bucket), and JetStream's permissions cannot
//! look inside a create request. So the services' credentials hold no
//! `STREAM.CREATE` (deploy/nats/auth.conf), every process opens what is
//! listed here and checks it is as Refer makes it, and the operator makes
//! it all before the first start (and again after a whole cluster lost the
//! idempotency bucket, kept in memory).

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

/// The services that seal, each into a key bucket of its own
/// (`refer_sealed::bucket_for`), with the other services' buckets each
/// reads: capacity opens the notes intake shares with a site; intake opens
/// the hand-offs of sites and donations, and erases them with a placement.
/// Secure erasure is by a bucket's sequence, which no subject permission
/// can narrow, so a bucket of its own is what keeps one service's
/// credential from erasing another's items (deploy/nats/auth.conf grants
/// exactly these reads).
pub const SEALERS: [(&str, &[&str]); 3] = [
    ("capacity", &["intake"]),
    ("donations", &[]),
    ("intake", &["capacity", "donations"]),
];

/// The other sealing services' buckets `sealer` reads ([`SEALERS`]).
pub fn reads_of(sealer: &str) -> &'static [&'static str] {
    SEALERS
        .iter()
        .find(|(name, _)| *name == sealer)
        .map_or(&[], |(_, reads)| reads)
}

/// The sealing service that sealed an item of `kind` (its name's first
/// part, `refer_sealed::item`), where the kind tells: hand-offs are
/// capacity's; case references and notes intake's. A standing hand-off
/// (`standing`) is its owner's, which only the stream tells.
pub fn sealer_of_kind(kind: &str) -> Option<&'static str> {
    match kind {
        "handoff" => Some("capacity"),
        "case" | "note" => Some("intake"),
        _ => None,
    }
}

/// Idempotency keys bound to their requests, shared by every service
/// (`refer_service::idempotency`). In memory, replicated: a binding costs
/// a round trip, not an fsync (every command makes one); losing every
/// node's memory at once loses the check, never data. Capped
/// ([`IDEMPOTENCY_CAP`]): any service credential may write it, and
/// unbounded it let one fill a node's memory; full, the oldest bindings
/// make room, so filling it never refuses a command.
pub fn idempotency(stream: &StreamSettings) -> Bucket {
    Bucket {
        name: format!("{}_KEYS", stream.name),
        description: "Idempotency keys bound to their requests (refer_service::idempotency)",
        replicas: stream.replicas,
        max_age: IDEMPOTENCY_KEPT,
        storage: Storage::Memory,
        cap: Some(IDEMPOTENCY_CAP),
    }
}

/// The idempotency bucket's size: about two million bindings (a binding
/// is about 120 bytes), far beyond a day's commands.
pub const IDEMPOTENCY_CAP: i64 = 256 * 1024 * 1024;

/// Which process runs each instance name (`refer_service::identity`).
pub fn instances(stream: &StreamSettings) -> Bucket {
    Bucket {
        name: format!("{}_INSTANCES", stream.name),
        description: "Which process runs each replica's identity (see refer_service::identity)",
        replicas: stream.replicas,
        max_age: CLAIM_TTL,
        storage: Storage::File,
        cap: None,
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
        cap: None,
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
        cap: None,
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
    refer_eventstore::refuse_unlike(&log, &made.cached_info().config, &[]).map_err(anyhow::Error::msg)?;
    ready.push(log.name);
    for (sealer, _) in SEALERS {
        let keys = refer_sealed::bucket_for(&stream.name, sealer);
        refer_sealed::Vault::create_bucket(js, &keys, stream.replicas).await?;
        // Checked as a sealing service opens it.
        refer_sealed::Vault::open(js, &keys, refer_sealed::Kek::from_bytes([0; 32]), vec![]).await?;
        ready.push(keys);
    }
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

/// The sealing service that sealed each standing hand-off the stream
/// `stream` has held (its owner's: a site's is capacity's, a donation's
/// donations', an agency's intake's), by item: what moving keys out of
/// an earlier version's shared bucket needs (`refer admin migrate-sealed`).
pub async fn standing_sealers(
    js: &jetstream::Context,
    stream: &StreamSettings,
) -> anyhow::Result<std::collections::BTreeMap<String, &'static str>> {
    use refer_domain::events::standing::Owner;
    use refer_domain::Event;
    let mut sealers = std::collections::BTreeMap::new();
    crate::history::each_event(js, &stream.name, &format!("{}.standing.>", stream.prefix), |envelope| {
        if let Event::Standing(event) = envelope.event {
            let sealer = match event.owner() {
                Owner::Site(_) => "capacity",
                Owner::Donation(_) => "donations",
                Owner::Agency(_) => "intake",
            };
            for sealed in event.text().into_iter().chain(event.replaced()) {
                sealers.insert(sealed.item.clone(), sealer);
            }
        }
    })
    .await?;
    Ok(sealers)
}

/// Deletes every consumer of `streams` that has no pull waiting and has
/// done nothing (made, delivered, acknowledged) for `idle`, and returns
/// their names. A running process's consumers always have a pull waiting;
/// a credential holder's junk, made to use up the store's consumer bound
/// (docs/operations.md, "Limits"), has none. A process whose consumer was
/// pruned while it was down makes a new one at its checkpoint.
pub async fn prune_idle_consumers(
    js: &jetstream::Context,
    streams: &[String],
    idle: std::time::Duration,
) -> anyhow::Result<Vec<String>> {
    use futures::TryStreamExt;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut pruned = Vec::new();
    for name in streams {
        let stream = js.get_stream(name).await?;
        let consumers: Vec<jetstream::consumer::Info> = stream.consumers().try_collect().await?;
        for info in consumers {
            let last = [
                Some(info.created),
                info.delivered.last_active,
                info.ack_floor.last_active,
            ]
            .into_iter()
            .flatten()
            .map(|at| at.unix_timestamp())
            .max()
            .unwrap_or(0);
            if info.num_waiting == 0 && now.saturating_sub(last) >= idle.as_secs() as i64 {
                stream.delete_consumer(&info.name).await?;
                pruned.push(format!("{name}/{}", info.name));
            }
        }
    }
    Ok(pruned)
}
