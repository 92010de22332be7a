//! What a reader does with a message that is no commit Refer wrote: a
//! credential holder's garbage on the subjects it may write, or a bug.
//! Every reader (projections, aggregate loads, replays) passes over it the
//! same way, so a replica rebuilding from nothing ends where the live ones
//! are instead of stopping there, and no reader loses the commits around
//! it. It is logged by sequence (never its bytes) and counted, for the
//! operator to look at. A commit from a newer version of Refer is not
//! garbage: readers stop before it until they are upgraded.

use crate::error::StoreError;
use refer_domain::{decode_commit, Envelope};

/// The events of the commit at `seq`, or `None` when it is quarantined.
pub fn readable(seq: u64, payload: &[u8]) -> Result<Option<Vec<Envelope>>, StoreError> {
    match decode_commit(payload) {
        Ok(events) => Ok(Some(events)),
        Err(source) if source.from_newer_writer() => Err(StoreError::Corrupt { seq, source }),
        Err(reason) => {
            tracing::warn!(seq, %reason, "a message that is no commit: quarantined (passed over by every reader)");
            refer_metrics::count(
                "refer_commits_quarantined_total",
                "Messages on the stream that are no commit, passed over by every reader.",
                &[],
                1.0,
            );
            Ok(None)
        }
    }
}
