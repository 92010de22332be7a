use refer_domain::{AggregateRef, CodecError, DomainError};
use thiserror::Error;

/// What can go wrong reading or writing events. The service shell maps these
/// to gRPC statuses: `Domain` by its kind, `Conflict` to ABORTED,
/// `Unavailable` to UNAVAILABLE, the rest to INTERNAL.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Someone else appended to the aggregate first. Reload and retry.
    #[error("version conflict on {aggregate}: expected version {expected}, found {actual}")]
    Conflict {
        aggregate: AggregateRef,
        expected: u64,
        actual: u64,
    },
    /// The bus could not be reached or did not answer in time. The command may
    /// or may not have been applied: retry it with the same idempotency key.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// A message on the stream could not be decoded. Nothing after it is applied.
    #[error("stream message {seq} is unreadable: {source}")]
    Corrupt { seq: u64, source: CodecError },
    /// The events could not be encoded (too large, inconsistent).
    #[error("cannot encode events: {0}")]
    Encode(CodecError),
    #[error("local state (sled): {0}")]
    Local(#[from] sled::Error),
    #[error("stream setup: {0}")]
    Setup(String),
    /// An atomic batch was refused because one of its messages was seen
    /// before (an earlier try landed): nothing of the batch was stored.
    #[error("a commit of the batch was applied before")]
    Duplicate,
    /// The caller's precondition for a decision's commit did not hold (a
    /// matcher that no longer holds its lease): nothing was written.
    #[error("precondition failed: {0}")]
    Precondition(String),
}

impl StoreError {
    /// Whether retrying the same command (with its idempotency key) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Conflict { .. } | Self::Unavailable(_))
    }
}
