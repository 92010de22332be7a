//! What the planner decides. Each decision carries everything its executor
//! needs (target, service, units, hold id, expiry or deadline), so carrying
//! it out looks nothing up again.

use refer_domain::ids::{HoldId, NeedId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::Target;
use refer_domain::provider::ReleaseReason;
use refer_domain::Timestamp;
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Hold `units` at `target` until `expires_at` and propose the need to
    /// it. At a provider the units come from `service`; a donation has one
    /// pool (`service` is `None`) and needs no answer: the need is then
    /// accepted at once.
    Propose {
        need: NeedId,
        target: Target,
        service: Option<ServiceKind>,
        hold: HoldId,
        units: u32,
        expires_at: Timestamp,
    },
    /// A need proposed to a donation is accepted on the business's behalf
    /// (a donation is given in advance; a crash may have left this step).
    AcceptDonation { need: NeedId, target: Target, hold: HoldId },
    /// A hold was placed (it lasts until `deadline`) but the need not yet
    /// proposed: a crash in between.
    CompleteProposal {
        need: NeedId,
        target: Target,
        hold: HoldId,
        deadline: Timestamp,
    },
    /// Nothing fits now, or the need is held back until `held_until`
    /// (`NeedCommand::waitlist`). `attempt` (`Need::step`) tells this
    /// waitlisting from earlier ones.
    Waitlist {
        need: NeedId,
        attempt: u32,
        held_until: Option<Timestamp>,
    },
    /// The deadline passed without an answer: the need expires, and its
    /// hold at `target` is released.
    Expire { need: NeedId, target: Target, hold: HoldId },
    /// The need was accepted: the held units are taken.
    Confirm { target: Target, hold: HoldId },
    /// The need was declined, expired or cancelled, or moved on: free the units.
    Release {
        target: Target,
        hold: HoldId,
        reason: ReleaseReason,
    },
}

impl Decision {
    /// The aggregate this decision contends for: the target whose holds it
    /// changes, or else the need. An executor runs one decision per lane at
    /// a time.
    pub fn lane(&self) -> Uuid {
        let target = match self {
            Self::Propose { target, .. }
            | Self::AcceptDonation { target, .. }
            | Self::CompleteProposal { target, .. }
            | Self::Confirm { target, .. }
            | Self::Release { target, .. } => *target,
            Self::Waitlist { need, .. } | Self::Expire { need, .. } => return need.as_uuid(),
        };
        match target {
            Target::Provider(id) => id.as_uuid(),
            Target::Donation(id) => id.as_uuid(),
        }
    }

    /// A label for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Propose { .. } => "propose",
            Self::AcceptDonation { .. } => "accept_donation",
            Self::CompleteProposal { .. } => "complete_proposal",
            Self::Waitlist { .. } => "waitlist",
            Self::Expire { .. } => "expire",
            Self::Confirm { .. } => "confirm",
            Self::Release { .. } => "release",
        }
    }

    /// The need it is about, if it is about one.
    pub fn need(&self) -> Option<NeedId> {
        match self {
            Self::Propose { need, .. }
            | Self::AcceptDonation { need, .. }
            | Self::CompleteProposal { need, .. }
            | Self::Waitlist { need, .. }
            | Self::Expire { need, .. } => Some(*need),
            Self::Confirm { .. } | Self::Release { .. } => None,
        }
    }
}

/// The hold id for a need's `attempt`-th proposal: derived, so a re-planned
/// decision after a crash lands on the same idempotency keys.
pub fn hold_id(need: NeedId, attempt: u32) -> HoldId {
    const NAMESPACE: Uuid = Uuid::from_u128(0x5e1f_0c4a_7b2d_4e6f_9a80_1c3b_5d7e_9f21);
    let mut name = need.as_uuid().as_bytes().to_vec();
    name.extend_from_slice(&attempt.to_be_bytes());
    HoldId::from_uuid(Uuid::new_v5(&NAMESPACE, &name))
}
