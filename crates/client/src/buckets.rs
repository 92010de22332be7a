//! The JetStream key-value buckets Refer keeps beside its stream (leases,
//! instance claims, idempotency bindings, console sessions): what each is
//! ([`Bucket`]), made by the operator ([`Bucket::create`], through
//! `crate::provision`), opened by every other process ([`Bucket::open`]).
//!
//! A bucket is made here rather than by async-nats, which always allows
//! rollups: any credential that may write a bucket could then publish one
//! entry with `Nats-Rollup: all` and wipe every other (every lease, every
//! claim), and no subject permission can forbid a header. So rollups are
//! off (deletes write a marker, as `Store::delete` does), and a bucket
//! that still allows them is refused, naming the operator's fix.

use async_nats::jetstream::{self, kv, stream};
use std::time::Duration;

/// Where a bucket keeps its entries.
pub use jetstream::stream::StorageType as Storage;

/// A bucket: `replicas` copies, one value per key, entries living
/// `max_age` after their last write, kept in `storage`; with a `cap` (in
/// bytes), the oldest entries make room for new ones once it is full.
#[derive(Clone, Debug)]
pub struct Bucket {
    pub name: String,
    pub description: &'static str,
    pub replicas: usize,
    pub max_age: Duration,
    pub storage: Storage,
    pub cap: Option<i64>,
}

impl Bucket {
    fn stream_name(&self) -> String {
        format!("KV_{}", self.name)
    }

    fn config(&self) -> stream::Config {
        stream::Config {
            name: self.stream_name(),
            description: Some(self.description.to_owned()),
            subjects: vec![format!("$KV.{}.>", self.name)],
            max_messages_per_subject: 1,
            max_age: self.max_age,
            storage: self.storage,
            num_replicas: self.replicas.max(1),
            allow_rollup: false,
            deny_delete: true,
            deny_purge: false,
            allow_direct: true,
            max_bytes: self.cap.unwrap_or(-1),
            discard: match self.cap {
                Some(_) => stream::DiscardPolicy::Old,
                None => stream::DiscardPolicy::New,
            },
            ..Default::default()
        }
    }

    /// Makes the bucket, or checks the one there: the operator's step
    /// (`refer admin provision`); no service's credential may make a stream.
    pub async fn create(&self, js: &jetstream::Context) -> anyhow::Result<kv::Store> {
        let config = self.config();
        let made = refer_eventstore::patiently(
            &format!("key-value bucket {}", self.name),
            || async { js.get_or_create_stream(config.clone()).await.map_err(|e| e.to_string()) },
            |_| true,
            || refer_eventstore::unanswered("the bucket's stream"),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the key-value bucket {}: {e}", self.name))?;
        self.checked(made)
    }

    /// Opens the bucket the operator made, checked. A bucket not there
    /// yet (the operator still provisioning, a cluster still electing) is
    /// waited for as long as a service waits for its stream at start.
    pub async fn open(&self, js: &jetstream::Context) -> anyhow::Result<kv::Store> {
        let found = refer_eventstore::patiently(
            &format!("key-value bucket {}", self.name),
            || self.find(js),
            |_| true,
            || refer_eventstore::unanswered("the bucket's stream"),
        )
        .await
        .map_err(anyhow::Error::msg)?;
        self.checked(found)
    }

    /// Opens the bucket if it is there now, without waiting (a bucket
    /// looked up again in the middle of a request).
    pub async fn open_now(&self, js: &jetstream::Context) -> anyhow::Result<kv::Store> {
        self.checked(self.find(js).await.map_err(anyhow::Error::msg)?)
    }

    /// The bucket's stream, or why not (naming the operator's step when it
    /// does not exist).
    async fn find(&self, js: &jetstream::Context) -> Result<stream::Stream, String> {
        js.get_stream(self.stream_name())
            .await
            .map_err(|e| refer_eventstore::not_provisioned(&format!("key-value bucket {}", self.name), &e))
    }

    fn checked(&self, stream: stream::Stream) -> anyhow::Result<kv::Store> {
        let config = &stream.cached_info().config;
        refuse_unsafe_bucket(&self.name, config)?;
        // Each console ends a session after its own idle time, whatever
        // the bucket keeps; every other bucket's age is its entries' ttl.
        let skip: &[&str] = match self.name == crate::provision::CONSOLE_SESSIONS {
            true => &["max_age"],
            false => &[],
        };
        refer_eventstore::refuse_unlike(&self.config(), config, skip).map_err(anyhow::Error::msg)?;
        // From the stream in hand: looked up again at once, a bucket just
        // made in a cluster may not be found yet.
        Ok(kv::Store {
            name: self.name.clone(),
            stream_name: self.stream_name(),
            prefix: format!("$KV.{}.", self.name),
            put_prefix: None,
            use_jetstream_prefix: false,
            stream,
        })
    }
}

/// Refuses bucket `name` if its stream allows rollups or is not the
/// bucket's alone (the rule lives
/// with the sealed keys' bucket, the lowest crate that opens buckets).
pub fn refuse_unsafe_bucket(name: &str, config: &stream::Config) -> anyhow::Result<()> {
    refer_sealed::refuse_unsafe_bucket(name, config).map_err(anyhow::Error::msg)
}

/// Turns rollups off on every key-value bucket of the account that still
/// allows them (made by async-nats or an earlier Refer), and caps each of
/// `capped` made before it had its cap, with a credential that may update
/// streams (the operator's). Returns the buckets changed.
pub async fn harden_all(js: &jetstream::Context, capped: &[Bucket]) -> anyhow::Result<Vec<String>> {
    use futures::TryStreamExt;
    let names: Vec<String> = js.stream_names().try_collect().await?;
    let mut hardened = Vec::new();
    for stream_name in names.iter().filter(|n| n.starts_with("KV_")) {
        let mut stream = js.get_stream(stream_name).await?;
        let mut config = stream.info().await?.config.clone();
        let cap = capped
            .iter()
            .find(|b| &b.stream_name() == stream_name)
            .map(Bucket::config);
        let uncapped = cap
            .as_ref()
            .is_some_and(|c| (c.max_bytes, c.discard) != (config.max_bytes, config.discard));
        if config.allow_rollup || uncapped {
            config.allow_rollup = false;
            if let Some(cap) = cap {
                (config.max_bytes, config.discard) = (cap.max_bytes, cap.discard);
            }
            js.update_stream(&config)
                .await
                .map_err(|e| anyhow::anyhow!("cannot harden {stream_name}: {e}"))?;
            hardened.push(stream_name.trim_start_matches("KV_").to_owned());
        }
    }
    Ok(hardened)
}
