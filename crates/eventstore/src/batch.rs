//! JetStream's atomic batch publish (ADR-50, nats-server 2.12+), as one
//! function every caller shares: the event store's multi-aggregate commits,
//! its group commit, and the benchmark's raw baseline. async-nats 0.51 has
//! no batch API, so the headers are set here: `Nats-Batch-Id` and
//! `Nats-Batch-Sequence` on every message, `Nats-Batch-Commit` on the last,
//! which alone is acknowledged. The messages of a batch are stored together,
//! in order, at consecutive sequences, or not at all.

use async_nats::HeaderMap;
use bytes::Bytes;
use serde::Deserialize;
use std::time::Duration;
use uuid::Uuid;

/// The most messages one batch may hold (the server's default limit).
pub const MAX_BATCH: usize = 1000;

/// How long the commit's acknowledgement may take.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// One message of a batch. Its headers may carry its own expectation
/// (`Nats-Expected-Last-Subject-Sequence`) and message id.
pub struct BatchMessage {
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// Why a batch was not stored. Nothing of it was.
#[derive(Debug)]
pub enum Refused {
    /// One message's expected last sequence was stale.
    WrongLastSequence,
    /// One message's id was seen inside the duplicate window.
    Duplicate,
    /// The bus did not answer, or answered something else.
    Unavailable(String),
}

#[derive(Deserialize)]
struct Ack {
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    count: u64,
    #[serde(default)]
    batch: String,
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// "wrong last sequence: {seq}".
const WRONG_LAST_SEQUENCE: u64 = 10071;
/// "wrong last sequence" (the same refusal, without the sequence; seen
/// from nats-server 2.15.1 on a batch whose expectation went stale).
const WRONG_LAST_SEQUENCE_CONSTANT: u64 = 10164;
/// "atomic publish batch contains duplicate message id".
const DUPLICATE_MESSAGE: u64 = 10201;

/// Publishes `messages` (at most `MAX_BATCH`) as one atomic batch and
/// returns the stream sequence of the first; the others follow it.
pub async fn publish_atomic(client: &async_nats::Client, messages: Vec<BatchMessage>) -> Result<u64, Refused> {
    let count = messages.len();
    assert!(
        (1..=MAX_BATCH).contains(&count),
        "a batch holds 1 to {MAX_BATCH} messages"
    );
    let batch = Uuid::new_v4().simple().to_string();
    let mut reply = None;
    for (n, mut message) in messages.into_iter().enumerate() {
        message.headers.insert("Nats-Batch-Id", batch.as_str());
        message
            .headers
            .insert("Nats-Batch-Sequence", (n + 1).to_string().as_str());
        if n + 1 < count {
            client
                .publish_with_headers(message.subject, message.headers, message.payload)
                .await
                .map_err(|e| Refused::Unavailable(e.to_string()))?;
        } else {
            message.headers.insert("Nats-Batch-Commit", "1");
            let request = client.request_with_headers(message.subject, message.headers, message.payload);
            reply = Some(
                tokio::time::timeout(COMMIT_TIMEOUT, request)
                    .await
                    .map_err(|_| Refused::Unavailable("no answer to the batch commit".into()))?
                    .map_err(|e| Refused::Unavailable(e.to_string()))?,
            );
        }
    }
    let reply = reply.expect("the last message commits");
    let ack: Ack = serde_json::from_slice(&reply.payload)
        .map_err(|e| Refused::Unavailable(format!("unreadable batch acknowledgement: {e}")))?;
    if let Some(error) = ack.error {
        return Err(match error.err_code {
            WRONG_LAST_SEQUENCE | WRONG_LAST_SEQUENCE_CONSTANT => Refused::WrongLastSequence,
            DUPLICATE_MESSAGE => Refused::Duplicate,
            code => Refused::Unavailable(format!("batch refused ({code}): {}", error.description)),
        });
    }
    if ack.batch != batch || ack.count != count as u64 {
        return Err(Refused::Unavailable(
            "batch acknowledgement does not match the batch".into(),
        ));
    }
    Ok(ack.seq + 1 - count as u64)
}
