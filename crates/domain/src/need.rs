//! One need and its closed loop:
//!
//! ```text
//! requested ─► proposed ─► accepted ─► fulfilled
//!    │            │ ├────► declined ─┐
//!    │            │ └────► expired ──┤─► proposed again (another target)
//!    └──────────► waitlisted ◄───────┘
//! any open state ─► cancelled          (cancelled and fulfilled are final)
//! ```
//!
//! A need is waitlisted for one of two reasons: no unit it could use is
//! free (`Waitlisted`), or it is a soon or routine need held back, for a
//! bounded time, while scarce units are kept for more urgent needs the
//! night is expected to bring (`HeldBack`, with the instant its wait ends:
//! docs/matching.md, "Over a night"). Intake is shown which, and until when.

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::event::{AggregateKind, Event};
pub use crate::events::need::{DeclineReason, GroupMembership, NeedEvent, NeedRequest, NeedStatus, Proposal, Target};
use crate::sealed::Sealed;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How long a provider has to answer a referral: the hold behind it lasts
/// this long, and the need expires when it ends.
pub const HOLD_SECS: i64 = 15 * 60;

/// When a hold placed at `now` expires: `HOLD_SECS` later, but never after
/// the end of the donation window it is in (`window_end`), since a hold
/// never outlives its window.
pub fn hold_expiry(now: Timestamp, window_end: Option<Timestamp>) -> Timestamp {
    let expiry = now.plus_secs(HOLD_SECS);
    window_end.map_or(expiry, |end| expiry.min(end))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NeedCommand {
    Request(NeedRequest),
    Propose(Proposal),
    Accept {
        by: Target,
    },
    Decline {
        by: Target,
        reason: DeclineReason,
    },
    Expire,
    Waitlist,
    Cancel,
    Fulfil,
    /// The accepting provider's hand-off, sealed for the agency; given in
    /// the acceptance's own commit.
    HandOff(Sealed),
    /// Waitlisted while units it could use are kept for more urgent needs,
    /// until `until` at the latest.
    HoldBack {
        until: Timestamp,
    },
}

impl NeedCommand {
    /// The waitlisting the matcher decides: held back until an instant, or
    /// waiting for a unit.
    pub fn waitlist(held_until: Option<Timestamp>) -> Self {
        held_until.map_or(Self::Waitlist, |until| Self::HoldBack { until })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Need {
    pub request: Option<NeedRequest>,
    pub status: NeedStatus,
    /// The live proposal while proposed, the accepted one once accepted.
    pub proposal: Option<Proposal>,
    /// Targets that declined or let the hold expire: never proposed again.
    pub excluded: BTreeSet<Target>,
    pub proposals_made: u32,
    /// While waitlisted and held back: when its wait ends.
    pub held_until: Option<Timestamp>,
    /// How many times it was waitlisted (or held back): with
    /// `proposals_made`, tells each waitlisting from earlier ones.
    pub waitlistings: u32,
}

impl Need {
    /// Tells each step of the need from the others: its status, and how
    /// many proposals and waitlistings it went through (a need waitlisted
    /// again, say held back and then not, keeps its status).
    pub fn step(&self) -> (NeedStatus, u32) {
        (self.status, self.proposals_made + self.waitlistings)
    }

    fn transition(&self, action: &'static str, allowed: bool) -> Result<(), DomainError> {
        if self.status == NeedStatus::New {
            return Err(DomainError::NotRegistered);
        }
        if allowed {
            Ok(())
        } else {
            Err(DomainError::InvalidTransition {
                from: self.status,
                action,
            })
        }
    }

    fn pending(&self, action: &'static str, by: Target) -> Result<Proposal, DomainError> {
        self.transition(action, self.status == NeedStatus::Proposed)?;
        let proposal = self.proposal.expect("a proposed need has a proposal");
        if proposal.target != by {
            return Err(DomainError::WrongTarget);
        }
        Ok(proposal)
    }
}

impl Aggregate for Need {
    const KIND: AggregateKind = AggregateKind::Need;
    type Command = NeedCommand;
    type Event = NeedEvent;

    fn decide(&self, command: &NeedCommand, now: Timestamp) -> Result<Vec<NeedEvent>, DomainError> {
        use NeedCommand as C;
        use NeedEvent as E;
        use NeedStatus as S;
        let event = match command {
            C::Request(request) => {
                if self.status != S::New {
                    return Err(DomainError::AlreadyRegistered);
                }
                request.spec.validate("spec")?;
                if let Some(group) = &request.group {
                    if group.people == 0 || usize::from(group.people) > crate::request::MAX_GROUP_SIZE {
                        return Err(DomainError::invalid("group.people", "must be 1 to 100"));
                    }
                }
                E::Requested(request.clone())
            }
            C::Propose(proposal) => {
                self.transition("propose", self.status.awaits_match())?;
                if self.excluded.contains(&proposal.target) {
                    return Err(DomainError::TargetExcluded);
                }
                if proposal.deadline <= now {
                    return Err(DomainError::invalid("deadline", "must be in the future"));
                }
                E::Proposed(*proposal)
            }
            C::Accept { by } => {
                let proposal = self.pending("accept", *by)?;
                if now >= proposal.deadline {
                    return Err(DomainError::HoldExpired);
                }
                E::Accepted(proposal)
            }
            C::Decline { by, reason } => {
                let proposal = self.pending("decline", *by)?;
                E::Declined {
                    proposal,
                    reason: *reason,
                }
            }
            C::Expire => {
                self.transition("expire", self.status == S::Proposed)?;
                let proposal = self.proposal.expect("a proposed need has a proposal");
                if now < proposal.deadline {
                    return Err(DomainError::HoldNotExpired);
                }
                E::Expired(proposal)
            }
            C::Waitlist => {
                // A need held back is waitlisted again when its wait ends.
                let allowed = matches!(self.status, S::Requested | S::Declined | S::Expired)
                    || (self.status == S::Waitlisted && self.held_until.is_some());
                self.transition("waitlist", allowed)?;
                E::Waitlisted
            }
            C::HoldBack { until } => {
                let allowed = matches!(self.status, S::Requested | S::Declined | S::Expired)
                    || (self.status == S::Waitlisted && self.held_until != Some(*until));
                self.transition("hold back", allowed)?;
                if *until <= now {
                    return Err(DomainError::invalid("until", "must be in the future"));
                }
                E::HeldBack { until: *until }
            }
            C::Cancel => {
                self.transition("cancel", !self.status.is_final())?;
                let pending = (self.status == S::Proposed).then_some(self.proposal).flatten();
                E::Cancelled { pending }
            }
            C::Fulfil => {
                self.transition("fulfil", self.status == S::Accepted)?;
                E::Fulfilled
            }
            C::HandOff(handoff) => {
                self.transition("hand off", self.status == S::Accepted)?;
                handoff.validate("handoff")?;
                E::HandedOff(handoff.clone())
            }
        };
        Ok(vec![event])
    }

    fn evolve(mut self, event: &NeedEvent) -> Self {
        use NeedEvent as E;
        if let Some(status) = event.status_after() {
            self.status = status;
            self.held_until = None;
        }
        match event {
            E::Requested(request) => self.request = Some(request.clone()),
            E::Proposed(proposal) => {
                self.proposal = Some(*proposal);
                self.proposals_made += 1;
            }
            E::Declined { proposal, .. } | E::Expired(proposal) => {
                self.excluded.insert(proposal.target);
                self.proposal = None;
            }
            E::Cancelled { .. } => self.proposal = None,
            E::Waitlisted => self.waitlistings += 1,
            E::HeldBack { until } => {
                self.held_until = Some(*until);
                self.waitlistings += 1;
            }
            E::Accepted(_) | E::Fulfilled | E::HandedOff(_) => {}
        }
        self
    }

    fn wrap(event: NeedEvent) -> Event {
        Event::Need(event)
    }

    fn unwrap(event: &Event) -> Option<&NeedEvent> {
        match event {
            Event::Need(e) => Some(e),
            _ => None,
        }
    }
}
