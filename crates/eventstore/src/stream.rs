//! The one domain stream and its subjects.

use crate::error::StoreError;
use async_nats::jetstream::{self, stream};
use refer_domain::event::MAX_COMMIT_BYTES;
use refer_domain::{AggregateKind, AggregateRef};
use std::time::Duration;

/// How the domain stream is laid out on the server.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// Stream name; tests and deployments choose their own.
    pub name: String,
    /// Subject prefix: aggregates live under `<prefix>.<kind>.<id>`.
    pub prefix: String,
    /// 1 for a single server, 3 for the compose cluster.
    pub replicas: usize,
    /// The server's own de-duplication window for `Nats-Msg-Id`.
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            name: "REFER".into(),
            prefix: "refer".into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl StreamSettings {
    pub fn subject(&self, aggregate: &AggregateRef) -> String {
        format!(
            "{}.{}.{}",
            self.prefix,
            aggregate.kind.token(),
            aggregate.id.as_simple()
        )
    }

    /// Every subject of one kind of aggregate (a consumer's filter).
    pub fn subjects_of(&self, kind: AggregateKind) -> String {
        format!("{}.{}.>", self.prefix, kind.token())
    }

    /// Every subject of the stream.
    pub fn all_subjects(&self) -> String {
        format!("{}.>", self.prefix)
    }

    /// The read log of sealed items beside the stream (`<name>_READS`,
    /// subjects `<prefix>_reads.>`; `refer_service::reads`), replicated
    /// like it and, like it, never deleted from.
    pub fn read_log(&self) -> stream::Config {
        stream::Config {
            name: format!("{}_READS", self.name),
            subjects: vec![format!("{}_reads.>", self.prefix)],
            description: Some("Refer's read log of sealed items (refer_service::reads): who, which, when".into()),
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            allow_atomic_publish: true,
            ..Default::default()
        }
    }

    fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: vec![self.all_subjects()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            // The log is the source of truth: nothing is ever deleted or purged.
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            // Decisions that touch several aggregates commit as one batch.
            allow_atomic_publish: true,
            max_message_size: (MAX_COMMIT_BYTES + 4096) as i32,
            description: Some("Refer domain events: one subject per aggregate".into()),
            ..Default::default()
        }
    }

    /// Creates the stream, or checks the one already there (the operator's
    /// `refer admin provision`; a stream made before atomic commits gets
    /// them turned on). The bus not answering (a cluster still electing)
    /// is `Unavailable`; a stream set up otherwise is `Setup`.
    pub async fn create(&self, js: &jetstream::Context) -> Result<stream::Stream, StoreError> {
        // (Its subjects are checked exactly below: a credential that could
        // create the stream could have made it first, capturing more.)
        let mut stream = js
            .get_or_create_stream(self.config())
            .await
            .map_err(|e| StoreError::Unavailable(format!("stream {}: {e}", self.name)))?;
        let info = stream
            .info()
            .await
            .map_err(|e| StoreError::Unavailable(format!("stream {}: {e}", self.name)))?;
        if !info.config.allow_atomic_publish {
            let mut config = info.config.clone();
            config.allow_atomic_publish = true;
            js.update_stream(config)
                .await
                .map_err(|e| StoreError::Setup(format!("stream {}: allowing atomic batches: {e}", self.name)))?;
        }
        self.check(js.get_stream(&self.name).await.map_err(|e| self.missing(e))?)
    }

    /// Opens the stream the operator made, checked. Never creates it: no
    /// process but the operator's tools may make a stream (whoever makes
    /// one first decides what it captures), so a missing stream is
    /// `Unavailable`, naming the command that makes it.
    pub async fn open(&self, js: &jetstream::Context) -> Result<stream::Stream, StoreError> {
        self.check(js.get_stream(&self.name).await.map_err(|e| self.missing(e))?)
    }

    fn missing(&self, e: jetstream::context::GetStreamError) -> StoreError {
        StoreError::Unavailable(not_provisioned(&format!("stream {}", self.name), &e))
    }

    fn check(&self, stream: stream::Stream) -> Result<stream::Stream, StoreError> {
        let config = &stream.cached_info().config;
        refuse_unlike(&self.config(), config, &[]).map_err(StoreError::Setup)?;
        // (A stream without atomic batches is refused above, naming them.)
        if !config.allow_direct {
            return Err(StoreError::Setup(format!("stream {} must allow direct get", self.name)));
        }
        Ok(stream)
    }
}

/// Why `what` could not be opened: if it does not exist, that the
/// operator makes it (`refer admin provision`), which no service may.
pub fn not_provisioned(what: &str, error: &dyn std::fmt::Display) -> String {
    let text = error.to_string();
    if text.contains("not found") {
        format!(
            "{what} does not exist: the operator makes every stream and bucket Refer uses \
             (`refer admin provision`, docs/operations.md); no service may"
        )
    } else {
        format!("{what}: {text}")
    }
}

/// Refuses a stream Refer opens (the domain stream, the read log, a
/// key-value bucket's) unless it is as Refer makes it: exactly `subjects`,
/// no mirror, no sources, no republish. A credential that may create the
/// stream could have made it before any process did, with more subjects
/// (another process's reply inboxes) or as a copy of another stream; such
/// a stream is named, and not used.
pub fn refuse_foreign_stream(config: &stream::Config, subjects: &[String]) -> Result<(), String> {
    let copies = config.mirror.is_some() || config.sources.as_ref().is_some_and(|s| !s.is_empty());
    if config.subjects != subjects || copies || config.republish.is_some() {
        return Err(format!(
            "the stream {} is not as Refer makes it (subjects {:?} where {:?}, or a mirror, sources or a \
             republish): something else made it, and it may capture other traffic. Delete it with the \
             operator's credential and start again (docs/operations.md, \"Credentials\")",
            config.name, config.subjects, subjects
        ));
    }
    Ok(())
}

/// Refuses a stream Refer opens unless it is as Refer makes it (`expected`,
/// its configuration as `refer admin provision` makes it): its subjects
/// and no copy of another ([`refuse_foreign_stream`]), and every setting a
/// promise rests on: nothing expires, is capped or is dropped that Refer
/// keeps (retention, age, counts, sizes, discard), nothing may be wiped
/// (rollups, purges, deletes where Refer refuses them), no message lives
/// by a TTL or a schedule, none is rewritten on the way in, and a
/// duplicate is recognised as long as Refer counts on. Settings in `skip`
/// are the caller's to judge. Replicas are the operator's choice.
pub fn refuse_unlike(expected: &stream::Config, actual: &stream::Config, skip: &[&str]) -> Result<(), String> {
    refuse_foreign_stream(actual, &expected.subjects)?;
    // Limits: 0 and -1 both say "none".
    let limit = |n: i64| if n <= 0 { "none".to_owned() } else { n.to_string() };
    let age = |d: Duration| {
        if d.is_zero() {
            "none".to_owned()
        } else {
            format!("{d:?}")
        }
    };
    // Unset, the server keeps duplicates two minutes, or the stream's age
    // if shorter.
    let window = match (expected.duplicate_window, expected.max_age) {
        (set, _) if !set.is_zero() => set,
        (_, kept) if !kept.is_zero() && kept < Duration::from_secs(120) => kept,
        _ => Duration::from_secs(120),
    };
    // Skipped or not, an age Refer sets is never "forever".
    let forever = !expected.max_age.is_zero() && actual.max_age.is_zero();
    let checks: [(&str, String, String); 19] = [
        (
            "retention",
            format!("{:?}", expected.retention),
            format!("{:?}", actual.retention),
        ),
        (
            "storage",
            format!("{:?}", expected.storage),
            format!("{:?}", actual.storage),
        ),
        (
            "max_age",
            age(expected.max_age),
            match forever {
                true => "none (entries kept forever)".to_owned(),
                false => age(actual.max_age),
            },
        ),
        ("max_msgs", limit(expected.max_messages), limit(actual.max_messages)),
        ("max_bytes", limit(expected.max_bytes), limit(actual.max_bytes)),
        (
            "max_msgs_per_subject",
            limit(expected.max_messages_per_subject),
            limit(actual.max_messages_per_subject),
        ),
        (
            "max_consumers",
            limit(expected.max_consumers.into()),
            limit(actual.max_consumers.into()),
        ),
        (
            "discard",
            format!("{:?}", expected.discard),
            format!("{:?}", actual.discard),
        ),
        (
            "allow_rollup_hdrs",
            expected.allow_rollup.to_string(),
            actual.allow_rollup.to_string(),
        ),
        (
            "deny_delete",
            expected.deny_delete.to_string(),
            actual.deny_delete.to_string(),
        ),
        (
            "deny_purge",
            expected.deny_purge.to_string(),
            actual.deny_purge.to_string(),
        ),
        ("sealed", expected.sealed.to_string(), actual.sealed.to_string()),
        (
            "allow_msg_ttl",
            expected.allow_message_ttl.to_string(),
            actual.allow_message_ttl.to_string(),
        ),
        (
            "allow_msg_schedules",
            expected.allow_message_schedules.to_string(),
            actual.allow_message_schedules.to_string(),
        ),
        (
            "subject_transform",
            format!("{:?}", expected.subject_transform.is_some()),
            format!("{:?}", actual.subject_transform.is_some()),
        ),
        (
            // Shorter than Refer's would let a retried publish land twice.
            "duplicate_window",
            age(window),
            match actual.duplicate_window < window {
                true => age(actual.duplicate_window),
                false => age(window),
            },
        ),
        // Unacknowledged publishes would leave a commit's fate unknown.
        ("no_ack", expected.no_ack.to_string(), actual.no_ack.to_string()),
        (
            "discard_new_per_subject",
            expected.discard_new_per_subject.to_string(),
            actual.discard_new_per_subject.to_string(),
        ),
        (
            // Where Refer commits in atomic batches, they must be allowed.
            "allow_atomic",
            "true".to_owned(),
            (actual.allow_atomic_publish || !expected.allow_atomic_publish).to_string(),
        ),
    ];
    let unlike: Vec<String> = checks
        .into_iter()
        .filter(|(name, want, have)| want != have && (!skip.contains(name) || (*name == "max_age" && forever)))
        .map(|(name, want, have)| format!("{name} {have} where Refer makes {want}"))
        .collect();
    let too_small = actual.max_message_size > 0
        && (expected.max_message_size <= 0 || actual.max_message_size < expected.max_message_size);
    let unlike: Vec<String> = unlike
        .into_iter()
        .chain(too_small.then(|| format!("max_msg_size {} caps what Refer writes", actual.max_message_size)))
        .collect();
    if unlike.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the stream {} is not as Refer makes it ({}): something else made or changed it. Make it again with \
         the operator's credential (`refer admin provision`, docs/operations.md)",
        actual.name,
        unlike.join("; ")
    ))
}
