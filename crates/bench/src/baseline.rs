//! Raw JetStream on the same server in the same run: what the figures are
//! divided by, because the machine is shared and absolute times drift.

use async_nats::jetstream::{self, stream::StorageType};
use bytes::Bytes;
use futures::StreamExt;
use std::time::{Duration, Instant};

const SUBJECTS: usize = 100;
/// The baselines' own streams, deleted after use (names no deployment uses).
const ONE: &str = "REFER_BENCH_RAW_ONE";
const PIPELINED: &str = "REFER_BENCH_RAW_PIPELINED";
const ATOMIC: &str = "REFER_BENCH_RAW_ATOMIC";
/// Messages per atomic batch in the batched baseline.
pub const ATOMIC_BATCH: usize = 100;
const WINDOW: usize = 256;

async fn baseline_stream(js: &jetstream::Context, name: &str) -> anyhow::Result<()> {
    let _ = js.delete_stream(name).await;
    js.create_stream(jetstream::stream::Config {
        name: name.to_owned(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        storage: StorageType::File,
        allow_atomic_publish: true,
        ..Default::default()
    })
    .await?;
    Ok(())
}

/// Waits until nothing has been appended to `stream` for a second (the
/// services have carried out what the last phase started), at most `limit`.
/// Returns how long it waited.
pub async fn quiet(js: &jetstream::Context, stream: &str, limit: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut last = js.get_stream(stream).await?.info().await?.state.last_sequence;
    while started.elapsed() < limit {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = js.get_stream(stream).await?.info().await?.state.last_sequence;
        if now == last {
            break;
        }
        last = now;
    }
    Ok(started.elapsed())
}

/// Publishes `count` payloads of `size` bytes, awaiting each ack before the next.
pub async fn publish_one_at_a_time(js: &jetstream::Context, count: usize, size: usize) -> anyhow::Result<f64> {
    baseline_stream(js, ONE).await?;
    let payload = Bytes::from(vec![7u8; size]);
    let started = Instant::now();
    for i in 0..count {
        js.publish(format!("{}.{}", ONE.to_lowercase(), i % SUBJECTS), payload.clone())
            .await?
            .await?;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    js.delete_stream(ONE).await?;
    Ok(rate)
}

/// Publishes `count` payloads of `size` bytes with up to `WINDOW` acks outstanding.
pub async fn publish_pipelined(js: &jetstream::Context, count: usize, size: usize) -> anyhow::Result<f64> {
    baseline_stream(js, PIPELINED).await?;
    let payload = Bytes::from(vec![7u8; size]);
    let started = Instant::now();
    let mut acks = futures::stream::iter(0..count)
        .map(|i| {
            let js = js.clone();
            let payload = payload.clone();
            async move {
                let subject = format!("{}.{}", PIPELINED.to_lowercase(), i % SUBJECTS);
                js.publish(subject, payload).await?.await
            }
        })
        .buffer_unordered(WINDOW);
    while let Some(ack) = acks.next().await {
        ack?;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    js.delete_stream(PIPELINED).await?;
    Ok(rate)
}

/// Publishes `count` payloads of `size` bytes in atomic batches of
/// `ATOMIC_BATCH` (one batch at a time, the event store's own batch
/// publisher): what a group commit can reach at best.
pub async fn publish_atomic_batches(js: &jetstream::Context, count: usize, size: usize) -> anyhow::Result<f64> {
    baseline_stream(js, ATOMIC).await?;
    let payload = Bytes::from(vec![7u8; size]);
    let client = js.client();
    let started = Instant::now();
    let mut sent = 0;
    while sent < count {
        let n = ATOMIC_BATCH.min(count - sent);
        let messages = (sent..sent + n)
            .map(|i| refer_eventstore::BatchMessage {
                subject: format!("{}.{}", ATOMIC.to_lowercase(), i % SUBJECTS),
                headers: async_nats::HeaderMap::new(),
                payload: payload.clone(),
            })
            .collect();
        refer_eventstore::publish_atomic(&client, messages)
            .await
            .map_err(|e| anyhow::anyhow!("atomic batch refused: {e:?}"))?;
        sent += n;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    js.delete_stream(ATOMIC).await?;
    Ok(rate)
}

/// Reads the whole `stream` with an ordered consumer, doing nothing with
/// the messages: messages per second.
pub async fn ordered_replay(js: &jetstream::Context, stream: &str) -> anyhow::Result<(u64, Duration)> {
    let mut stream = js.get_stream(stream).await?;
    let last = stream.info().await?.state.last_sequence;
    let started = Instant::now();
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await?;
    let mut messages = consumer.messages().await?;
    let mut count = 0u64;
    while let Some(message) = messages.next().await {
        let message = message?;
        count += 1;
        if message.info().map_err(|e| anyhow::anyhow!("{e}"))?.stream_sequence >= last {
            break;
        }
    }
    Ok((count, started.elapsed()))
}

/// The average size of a message in `stream` (payload, headers and subject).
pub async fn average_message_bytes(js: &jetstream::Context, stream: &str) -> anyhow::Result<usize> {
    let info = js.get_stream(stream).await?.info().await?.clone();
    Ok((info.state.bytes / info.state.messages.max(1)) as usize)
}
