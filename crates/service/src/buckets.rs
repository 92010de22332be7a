//! The JetStream key-value buckets Refer keeps beside its stream (leases,
//! idempotency bindings, console sessions): each opened if it exists, else
//! created, in one place.

use async_nats::jetstream::{self, kv};
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
    match js.get_key_value(name).await {
        Ok(bucket) => Ok(bucket),
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: name.to_owned(),
                description: description.to_owned(),
                history: 1,
                max_age,
                num_replicas: replicas,
                storage,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("cannot create the key-value bucket {name}: {e}")),
    }
}
