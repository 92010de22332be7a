//! What a need records on the stream: its events and the types they
//! carry. Leaves of the domain: nothing here imports an aggregate, so the
//! event envelope (`crate::event`) and the aggregates both build on them.

use crate::ids::{DonationId, GroupId, HoldId, OrgId, PlacementId, ProviderId};
use crate::request::{Cohesion, NeedSpec};
use crate::sealed::Sealed;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Who a need is referred to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Target {
    Provider(ProviderId),
    Donation(DonationId),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NeedStatus {
    /// Not requested yet (the aggregate has no events).
    #[default]
    New,
    Requested,
    Proposed,
    Accepted,
    Declined,
    Expired,
    Waitlisted,
    Cancelled,
    Fulfilled,
}

impl NeedStatus {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Cancelled | Self::Fulfilled)
    }

    /// States from which the matcher may propose.
    pub fn awaits_match(self) -> bool {
        matches!(
            self,
            Self::Requested | Self::Declined | Self::Expired | Self::Waitlisted
        )
    }
}

/// Why a provider said no. Coded, never free text (free text leaks identity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeclineReason {
    NoCapacity,
    NotEligible,
    SafetyConcern,
    Other,
}

/// A need's place in a group of people recovered together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMembership {
    pub group: GroupId,
    pub cohesion: Cohesion,
    /// How many people the group holds (so the matcher knows it has them all).
    pub people: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedRequest {
    /// The person's bundle: needs with the same placement are one person's.
    pub placement: PlacementId,
    pub group: Option<GroupMembership>,
    /// The intake agency; only its staff see this need.
    pub agency: OrgId,
    pub spec: NeedSpec,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub target: Target,
    pub hold: HoldId,
    pub deadline: Timestamp,
}

/// Append-only: never reorder or remove variants (see docs/architecture.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NeedEvent {
    Requested(NeedRequest),
    Proposed(Proposal),
    Accepted(Proposal),
    Declined {
        proposal: Proposal,
        reason: DeclineReason,
    },
    Expired(Proposal),
    Waitlisted,
    /// Carries the pending proposal, if any, so its hold can be released.
    Cancelled {
        pending: Option<Proposal>,
    },
    Fulfilled,
    /// Where and how to bring the person, sealed for the requesting agency.
    HandedOff(Sealed),
    /// Waitlisted while units it could use are kept for more urgent needs:
    /// it is matched like any other need at `until` at the latest.
    HeldBack {
        until: Timestamp,
    },
}

impl NeedEvent {
    /// The status a need has right after this event (`None`: it leaves the
    /// status as it was). The one place the rule lives: the aggregate and
    /// every read model that shows a need's status derive it here.
    pub fn status_after(&self) -> Option<NeedStatus> {
        use NeedStatus as S;
        Some(match self {
            Self::Requested(_) => S::Requested,
            Self::Proposed(_) => S::Proposed,
            Self::Accepted(_) => S::Accepted,
            Self::Declined { .. } => S::Declined,
            Self::Expired(_) => S::Expired,
            Self::Waitlisted | Self::HeldBack { .. } => S::Waitlisted,
            Self::Cancelled { .. } => S::Cancelled,
            Self::Fulfilled => S::Fulfilled,
            Self::HandedOff(_) => return None,
        })
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Requested(_) => "need.requested",
            Self::Proposed(_) => "need.proposed",
            Self::Accepted(_) => "need.accepted",
            Self::Declined { .. } => "need.declined",
            Self::Expired(_) => "need.expired",
            Self::Waitlisted => "need.waitlisted",
            Self::Cancelled { .. } => "need.cancelled",
            Self::Fulfilled => "need.fulfilled",
            Self::HandedOff(_) => "need.handed_off",
            Self::HeldBack { .. } => "need.held_back",
        }
    }
}
