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

/// The events of the commit at `seq` on `subject`, or `None` when it is
/// quarantined: not a commit (`decode_commit` checks it holds one
/// aggregate's events, each of its kind), or one of another aggregate than
/// its subject's.
pub fn readable(seq: u64, subject: &str, payload: &[u8]) -> Result<Option<Vec<Envelope>>, StoreError> {
    let reason = match decode_commit(payload) {
        Ok(events) if on_its_subject(subject, &events) => return Ok(Some(events)),
        Ok(_) => "a commit of another aggregate than its subject's".to_owned(),
        Err(source) if source.from_newer_writer() => return Err(StoreError::Corrupt { seq, source }),
        Err(reason) => reason.to_string(),
    };
    tracing::warn!(seq, %reason, "a message that is no commit: quarantined (passed over by every reader)");
    refer_metrics::count(
        "refer_commits_quarantined_total",
        "Messages on the stream that are no commit, passed over by every reader.",
        &[],
        1.0,
    );
    Ok(None)
}

/// Whether `events` (of one aggregate) belong on `subject`,
/// `<prefix>.<kind>.<id>`. The bus lets a credential write only some kinds
/// of aggregate's subjects; a commit naming another aggregate would let it
/// write any kind through them (an outside attacker forged intake's erasure
/// of a placement with the matcher's credential so).
fn on_its_subject(subject: &str, events: &[Envelope]) -> bool {
    let Some(first) = events.first() else { return false };
    subject
        .split_once('.')
        .is_some_and(|(_, aggregate)| aggregate == first.aggregate.to_string())
}
