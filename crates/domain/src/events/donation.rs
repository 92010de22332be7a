//! What a donation records on the stream: its events and the types they
//! carry. Leaves of the domain: nothing here imports an aggregate, so the
//! event envelope (`crate::event`) and the aggregates both build on them.

use crate::eligibility::Eligibility;
use crate::error::DomainError;
use crate::geo::Location;
use crate::hold::{ReleaseReason, MAX_UNITS};
use crate::ids::{HoldId, NeedId, OrgId};
use crate::kinds::ResourceKind;
use crate::time::{TimeWindow, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DonationOffer {
    /// The business that donates; only its users see or change it.
    pub org: OrgId,
    pub kind: ResourceKind,
    pub quantity: u32,
    pub window: TimeWindow,
    pub location: Location,
    /// At most this many units for one need (for example at most 3 nights).
    pub max_units_per_need: Option<u32>,
    pub eligibility: Eligibility,
}

impl DonationOffer {
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.quantity == 0 || self.quantity > MAX_UNITS {
            return Err(DomainError::invalid("quantity", format!("must be 1 to {MAX_UNITS}")));
        }
        self.window.validate("window")?;
        self.location.validate("location")?;
        if self.max_units_per_need == Some(0) {
            return Err(DomainError::invalid(
                "max_units_per_need",
                "must be at least 1 when set",
            ));
        }
        self.eligibility.validate("eligibility")
    }
}

/// Append-only: never reorder or remove variants (see docs/architecture.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DonationEvent {
    Registered(DonationOffer),
    Withdrawn,
    HoldPlaced {
        hold: HoldId,
        need: NeedId,
        units: u32,
        expires_at: Timestamp,
    },
    HoldReleased {
        hold: HoldId,
        reason: ReleaseReason,
    },
    HoldConfirmed {
        hold: HoldId,
    },
    /// `Registered` with the instant the business offered it (its "as of").
    /// Decided since freshness; the variant without it stays for the
    /// history before.
    RegisteredAt {
        offer: DonationOffer,
        at: Timestamp,
    },
}

impl DonationEvent {
    /// The offer a registration carries, whichever variant recorded it.
    pub fn offer(&self) -> Option<&DonationOffer> {
        match self {
            Self::Registered(offer) | Self::RegisteredAt { offer, .. } => Some(offer),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Registered(_) | Self::RegisteredAt { .. } => "donation.registered",
            Self::Withdrawn => "donation.withdrawn",
            Self::HoldPlaced { .. } => "donation.hold_placed",
            Self::HoldReleased { .. } => "donation.hold_released",
            Self::HoldConfirmed { .. } => "donation.hold_confirmed",
        }
    }
}
