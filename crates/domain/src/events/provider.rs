//! What a provider records on the stream: its events and the types they
//! carry. Leaves of the domain: nothing here imports an aggregate, so the
//! event envelope (`crate::event`) and the aggregates both build on them.

use crate::eligibility::Eligibility;
use crate::error::DomainError;
use crate::geo::Location;
use crate::hold::ReleaseReason;
use crate::ids::{HoldId, NeedId, OrgId};
use crate::kinds::ServiceKind;
use crate::time::{Hours, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What a provider registers once (and may later amend through new events).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderProfile {
    /// The partner organisation that runs the site; only its users manage it.
    pub org: OrgId,
    /// A display name chosen by the partner (the site's public or code name).
    pub name: String,
    pub services: BTreeSet<ServiceKind>,
    pub eligibility: Eligibility,
    /// Confidential: coarse, and shown only to the matcher, never to intake.
    pub location: Location,
    pub hours: Hours,
}

impl ProviderProfile {
    pub fn validate(&self) -> Result<(), DomainError> {
        let name_len = self.name.chars().count();
        if name_len == 0 || name_len > 120 || self.name.chars().any(char::is_control) {
            return Err(DomainError::invalid("name", "must be 1 to 120 printable characters"));
        }
        if self.services.is_empty() {
            return Err(DomainError::invalid("services", "must offer at least one service"));
        }
        self.eligibility.validate("eligibility")?;
        self.location.validate("location")?;
        self.hours.validate("hours")
    }
}

/// Append-only: never reorder or remove variants (see docs/architecture.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProviderEvent {
    Registered(Box<ProviderProfile>),
    CapacitySet {
        service: ServiceKind,
        declared: u32,
    },
    CapacityAdjusted {
        service: ServiceKind,
        delta: i32,
    },
    Suspended,
    Resumed,
    HoldPlaced {
        hold: HoldId,
        need: NeedId,
        service: ServiceKind,
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
    /// `CapacitySet` with the instant the provider declared it (its "as of",
    /// what freshness is measured from). Decided since freshness; the
    /// variant without it stays for the history before.
    CapacitySetAt {
        service: ServiceKind,
        declared: u32,
        at: Timestamp,
    },
    /// `CapacityAdjusted` with the instant of the declaration.
    CapacityAdjustedAt {
        service: ServiceKind,
        delta: i32,
        at: Timestamp,
    },
    /// The site's new profile (same organisation, same region).
    ProfileUpdated(Box<ProviderProfile>),
}

impl ProviderEvent {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Registered(_) => "provider.registered",
            Self::ProfileUpdated(_) => "provider.profile_updated",
            Self::CapacitySet { .. } | Self::CapacitySetAt { .. } => "provider.capacity_set",
            Self::CapacityAdjusted { .. } | Self::CapacityAdjustedAt { .. } => "provider.capacity_adjusted",
            Self::Suspended => "provider.suspended",
            Self::Resumed => "provider.resumed",
            Self::HoldPlaced { .. } => "provider.hold_placed",
            Self::HoldReleased { .. } => "provider.hold_released",
            Self::HoldConfirmed { .. } => "provider.hold_confirmed",
        }
    }
}
