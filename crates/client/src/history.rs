//! Reading the stream whole, in order, as the operator's tools do (a report,
//! a migration): an ordered consumer, each commit's events decoded as every
//! reader decodes them (`refer_eventstore::readable`: a message that is no
//! commit is passed over, one from a newer Refer stops the read).

use async_nats::jetstream;
use futures::StreamExt;
use refer_domain::Envelope;

/// Hands every event on `filter` (subjects of stream `stream`; empty: all of
/// them) to `visit`, in stream order, up to the last message there when the
/// read began.
pub async fn each_event(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
    visit: impl FnMut(Envelope),
) -> anyhow::Result<()> {
    each_event_from(js, stream, filter, &mut 1, visit).await
}

/// As [`each_event`], from stream sequence `*next` on, moving `*next` past
/// each message as soon as its events are visited: a read model kept in
/// memory reads only what was appended since, and a read that fails
/// halfway leaves `*next` exactly after what was visited (never twice).
pub async fn each_event_from(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
    next: &mut u64,
    mut visit: impl FnMut(Envelope),
) -> anyhow::Result<()> {
    *next = (*next).max(1);
    let mut stream = js.get_stream(stream).await?;
    let last = stream.info().await?.state.last_sequence;
    if last < *next {
        return Ok(());
    }
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: filter.to_owned(),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence: *next },
            ..Default::default()
        })
        .await?;
    if consumer.cached_info().num_pending == 0 {
        // Nothing on the filter up to the end: every sequence to it is read.
        *next = last + 1;
        return Ok(());
    }
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| anyhow::anyhow!("reading the stream: {e}"))?;
        let info = message.info().map_err(|e| anyhow::anyhow!("reading the stream: {e}"))?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        let events = refer_eventstore::readable(seq, &message.subject, &message.payload)?.unwrap_or_default();
        for envelope in events {
            visit(envelope);
        }
        *next = seq + 1;
        if pending == 0 || seq >= last {
            *next = (*next).max(last + 1);
            return Ok(());
        }
    }
    Err(anyhow::anyhow!("reading the stream: it ended before sequence {last}"))
}
