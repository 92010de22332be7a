//! The JetStream key-value buckets Refer keeps beside its stream (leases,
//! instance claims, idempotency bindings, console sessions): each opened if
//! it exists, else created, in one place.
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

/// Opens bucket `name`, or creates it with `replicas` copies, one value per
/// key, entries living `max_age` after their last write, kept in `storage`.
pub async fn open(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    replicas: usize,
    max_age: Duration,
    storage: Storage,
) -> anyhow::Result<kv::Store> {
    let stream_name = format!("KV_{name}");
    let config = stream::Config {
        name: stream_name.clone(),
        description: Some(description.to_owned()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage,
        num_replicas: replicas.max(1),
        allow_rollup: false,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    // A cluster busy starting (every service making its buckets at once,
    // an election) may let a request time out: tried again, for as long as
    // a service waits for its stream at start.
    let made = refer_eventstore::patiently(
        &format!("key-value bucket {name}"),
        || async {
            match js.get_stream(&stream_name).await {
                Ok(existing) => Ok(existing),
                Err(_) => js.get_or_create_stream(config.clone()).await.map_err(|e| e.to_string()),
            }
        },
        |_| true,
        || refer_eventstore::unanswered("the bucket's stream"),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot create the key-value bucket {name}: {e}"))?;
    refuse_unsafe_bucket(name, &made.cached_info().config)?;
    // From the stream in hand: looked up again at once, a bucket just made
    // in a cluster may not be found yet.
    Ok(kv::Store {
        name: name.to_owned(),
        stream_name,
        prefix: format!("$KV.{name}."),
        put_prefix: None,
        use_jetstream_prefix: false,
        stream: made,
    })
}

/// Refuses bucket `name` if its stream allows rollups or is not the
/// bucket's alone (the rule lives
/// with the sealed keys' bucket, the lowest crate that opens buckets).
pub fn refuse_unsafe_bucket(name: &str, config: &stream::Config) -> anyhow::Result<()> {
    refer_sealed::refuse_unsafe_bucket(name, config).map_err(anyhow::Error::msg)
}

/// Turns rollups off on every key-value bucket of the account that still
/// allows them (made by async-nats or an earlier Refer), with a credential
/// that may update streams (the operator's). Returns the buckets changed.
pub async fn harden_all(js: &jetstream::Context) -> anyhow::Result<Vec<String>> {
    use futures::TryStreamExt;
    let names: Vec<String> = js.stream_names().try_collect().await?;
    let mut hardened = Vec::new();
    for stream_name in names.iter().filter(|n| n.starts_with("KV_")) {
        let mut stream = js.get_stream(stream_name).await?;
        let mut config = stream.info().await?.config.clone();
        if config.allow_rollup {
            config.allow_rollup = false;
            js.update_stream(&config)
                .await
                .map_err(|e| anyhow::anyhow!("cannot turn rollups off on {stream_name}: {e}"))?;
            hardened.push(stream_name.trim_start_matches("KV_").to_owned());
        }
    }
    Ok(hardened)
}
