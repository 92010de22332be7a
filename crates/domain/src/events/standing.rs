//! What a standing records on the stream: its events and the types they
//! carry. Leaves of the domain: nothing here imports an aggregate, so the
//! event envelope (`crate::event`) and the aggregates both build on them.

use crate::ids::{DonationId, OrgId, ProviderId};
use crate::sealed::Sealed;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Whose standing hand-off it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Owner {
    /// An intake agency's on-call contact.
    Agency(OrgId),
    /// A provider site's default hand-off instructions.
    Site(ProviderId),
    /// A donated resource's hand-off instructions (front desk, keys).
    Donation(DonationId),
}

impl Owner {
    /// The aggregate id: one standing hand-off per owner.
    pub fn id(self) -> Uuid {
        const SPACE: Uuid = Uuid::from_u128(0x5ef0_0000_57a1_4d1e_8a3b_7e7a_11ce_0002);
        let name = match self {
            Self::Agency(org) => format!("agency/{org}"),
            Self::Site(site) => format!("site/{site}"),
            Self::Donation(donation) => format!("donation/{donation}"),
        };
        Uuid::new_v5(&SPACE, name.as_bytes())
    }
}

/// Append-only: never reorder or remove variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StandingEvent {
    /// The first text (or the first after a clear).
    Set {
        owner: Owner,
        text: Sealed,
    },
    Cleared {
        owner: Owner,
    },
    /// A new text in place of `replaced`, whose key must be erased.
    Replaced {
        owner: Owner,
        text: Sealed,
        replaced: Sealed,
    },
}

impl StandingEvent {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Set { .. } => "standing.set",
            Self::Cleared { .. } => "standing.cleared",
            Self::Replaced { .. } => "standing.replaced",
        }
    }

    pub fn owner(&self) -> Owner {
        match self {
            Self::Set { owner, .. } | Self::Cleared { owner } | Self::Replaced { owner, .. } => *owner,
        }
    }

    /// The text this event makes current, if any.
    pub fn text(&self) -> Option<&Sealed> {
        match self {
            Self::Set { text, .. } | Self::Replaced { text, .. } => Some(text),
            Self::Cleared { .. } => None,
        }
    }

    /// The text this event replaced, whose key is to be erased.
    pub fn replaced(&self) -> Option<&Sealed> {
        match self {
            Self::Replaced { replaced, .. } => Some(replaced),
            _ => None,
        }
    }
}
