//! Identifiers. Every id is a random 128-bit value chosen by the shell (never
//! derived from a person), wrapped in a newtype so a `NeedId` can't be passed
//! where a `ProviderId` is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a value chosen by the caller (random in production, fixed in tests).
            pub const fn from_u128(value: u128) -> Self {
                Self(Uuid::from_u128(value))
            }
            pub const fn from_uuid(value: Uuid) -> Self {
                Self(value)
            }
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_simple().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id!(
    /// A provider partner's service site (a shelter, a clinic, a legal-aid office).
    ProviderId
);
id!(
    /// One donated resource registered by a business.
    DonationId
);
id!(
    /// One need: one kind of service for one person or party.
    NeedId
);
id!(
    /// A placement request: the bundle of needs of one person. This random id is
    /// the only handle on the person that ever leaves intake.
    PlacementId
);
id!(
    /// Several people recovered together and requested together.
    GroupId
);
id!(
    /// An organisation of the coalition: an agency, a provider partner, a business.
    OrgId
);
id!(
    /// A reservation of units at a provider or donation while a referral is pending.
    HoldId
);
id!(
    /// One event.
    EventId
);
id!(
    /// Ties together every event caused by one request from a user.
    CorrelationId
);
