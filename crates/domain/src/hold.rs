//! The vocabulary of holds, shared by the two kinds of target that hold
//! units for a need: providers and donations. Its own module, so neither
//! aggregate takes it from the other.

use serde::{Deserialize, Serialize};

/// No single service (or donation) declares more units than this.
pub const MAX_UNITS: u32 = 100_000;

/// Why a hold ends without the person being placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReleaseReason {
    Declined,
    Expired,
    Cancelled,
    /// The donation was withdrawn (donations only).
    Withdrawn,
}
