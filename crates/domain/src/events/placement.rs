//! What a placement records on the stream: its events and the types they
//! carry. Leaves of the domain: nothing here imports an aggregate, so the
//! event envelope (`crate::event`) and the aggregates both build on them.

use crate::ids::{GroupId, NeedId, OrgId};
use crate::kinds::NeedKind;
use crate::sealed::Sealed;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementFile {
    pub agency: OrgId,
    pub group: Option<GroupId>,
    pub needs: Vec<(NeedId, NeedKind)>,
    pub requested_at: Timestamp,
    /// The agency's own reference, sealed for the agency; `None` once erased.
    pub case_reference: Option<Sealed>,
}

/// The person's informed consent to share one note with the provider that
/// accepts one need: what is shared, with whom (that provider only), until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// What is shared, in words ("first name to ask for at the door").
    pub shares: String,
    pub given_at: Timestamp,
    pub until: Timestamp,
}

/// A sealed piece of a placement, as erasures name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SealedPart {
    CaseReference,
    /// The consented note for the provider accepting this need.
    Note(NeedId),
    /// The hand-off the accepting provider gave for this need.
    Handoff(NeedId),
}

/// Why an erasure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ErasureReason {
    /// `ForgetPlacement`, by the agency or an admin.
    Requested,
    /// The need (or every need) was final for the retention period.
    Retention,
    ConsentRevoked,
    ConsentExpired,
}

/// Append-only: never reorder or remove variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlacementEvent {
    Recorded(PlacementFile),
    NoteShared {
        need: NeedId,
        consent: Consent,
        note: Sealed,
    },
    Erased {
        parts: Vec<SealedPart>,
        reason: ErasureReason,
    },
}

impl PlacementEvent {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Recorded(_) => "placement.recorded",
            Self::NoteShared { .. } => "placement.note_shared",
            Self::Erased { .. } => "placement.erased",
        }
    }
}
