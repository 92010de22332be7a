//! A resource donated by a business: so many units of one kind, usable only
//! inside a time window.

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::event::{AggregateKind, Event};
pub use crate::events::donation::{DonationEvent, DonationOffer};
use crate::hold::ReleaseReason;
use crate::ids::{HoldId, NeedId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DonationCommand {
    Register(DonationOffer),
    /// Takes the donation off the table; pending holds are released.
    Withdraw,
    PlaceHold {
        hold: HoldId,
        need: NeedId,
        units: u32,
        expires_at: Timestamp,
    },
    ReleaseHold {
        hold: HoldId,
        reason: ReleaseReason,
    },
    /// The units were used (the room was given, the car lent).
    ConfirmHold {
        hold: HoldId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DonationHold {
    pub need: NeedId,
    pub units: u32,
    pub expires_at: Timestamp,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Donation {
    pub offer: Option<DonationOffer>,
    pub withdrawn: bool,
    pub held: u32,
    pub used: u32,
    pub holds: BTreeMap<HoldId, DonationHold>,
    /// When the business offered it; `None` for offers recorded before
    /// registrations carried their instant.
    pub as_of: Option<Timestamp>,
}

impl Donation {
    /// Units that may still be held.
    pub fn free(&self) -> u32 {
        match &self.offer {
            Some(offer) if !self.withdrawn => offer.quantity.saturating_sub(self.held + self.used),
            _ => 0,
        }
    }

    fn offer(&self) -> Result<&DonationOffer, DomainError> {
        self.offer.as_ref().ok_or(DomainError::NotRegistered)
    }

    fn hold(&self, hold: HoldId) -> Result<&DonationHold, DomainError> {
        self.holds.get(&hold).ok_or(DomainError::UnknownHold)
    }
}

impl Aggregate for Donation {
    const KIND: AggregateKind = AggregateKind::Donation;
    type Command = DonationCommand;
    type Event = DonationEvent;

    fn decide(&self, command: &DonationCommand, now: Timestamp) -> Result<Vec<DonationEvent>, DomainError> {
        use DonationCommand as C;
        use DonationEvent as E;
        match command {
            C::Register(offer) => {
                if self.offer.is_some() {
                    return Err(DomainError::AlreadyRegistered);
                }
                offer.validate()?;
                Ok(vec![E::RegisteredAt {
                    offer: offer.clone(),
                    at: now,
                }])
            }
            C::Withdraw => {
                self.offer()?;
                if self.withdrawn {
                    return Ok(vec![]);
                }
                let mut events = vec![E::Withdrawn];
                events.extend(self.holds.keys().map(|hold| E::HoldReleased {
                    hold: *hold,
                    reason: ReleaseReason::Withdrawn,
                }));
                Ok(events)
            }
            C::PlaceHold {
                hold,
                need,
                units,
                expires_at,
            } => {
                let offer = self.offer()?;
                if self.withdrawn {
                    return Err(DomainError::Withdrawn);
                }
                if self.holds.contains_key(hold) {
                    return Err(DomainError::DuplicateHold);
                }
                if *units == 0 {
                    return Err(DomainError::invalid("units", "must be at least 1"));
                }
                if *expires_at <= now {
                    return Err(DomainError::invalid("expires_at", "must be in the future"));
                }
                // The whole hold, from now to its deadline, lies inside the window.
                if !offer.window.contains(now) || *expires_at > offer.window.end {
                    return Err(DomainError::OutsideWindow);
                }
                if let Some(max) = offer.max_units_per_need {
                    if *units > max {
                        return Err(DomainError::OverPerNeedLimit { max });
                    }
                }
                let free = self.free();
                if *units > free {
                    return Err(DomainError::InsufficientCapacity {
                        requested: *units,
                        free,
                    });
                }
                Ok(vec![E::HoldPlaced {
                    hold: *hold,
                    need: *need,
                    units: *units,
                    expires_at: *expires_at,
                }])
            }
            C::ReleaseHold { hold, reason } => {
                self.hold(*hold)?;
                Ok(vec![E::HoldReleased {
                    hold: *hold,
                    reason: *reason,
                }])
            }
            // As for providers, the deadline is the need's to enforce.
            C::ConfirmHold { hold } => {
                self.hold(*hold)?;
                Ok(vec![E::HoldConfirmed { hold: *hold }])
            }
        }
    }

    fn evolve(mut self, event: &DonationEvent) -> Self {
        use DonationEvent as E;
        match event {
            E::Registered(offer) => self.offer = Some(offer.clone()),
            E::RegisteredAt { offer, at } => {
                self.offer = Some(offer.clone());
                self.as_of = Some(*at);
            }
            E::Withdrawn => self.withdrawn = true,
            E::HoldPlaced {
                hold,
                need,
                units,
                expires_at,
            } => {
                self.held += units;
                self.holds.insert(
                    *hold,
                    DonationHold {
                        need: *need,
                        units: *units,
                        expires_at: *expires_at,
                    },
                );
            }
            E::HoldReleased { hold, .. } => {
                if let Some(h) = self.holds.remove(hold) {
                    self.held = self.held.saturating_sub(h.units);
                }
            }
            E::HoldConfirmed { hold } => {
                if let Some(h) = self.holds.remove(hold) {
                    self.held = self.held.saturating_sub(h.units);
                    self.used += h.units;
                }
            }
        }
        self
    }

    fn wrap(event: DonationEvent) -> Event {
        Event::Donation(event)
    }

    fn unwrap(event: &Event) -> Option<&DonationEvent> {
        match event {
            Event::Donation(e) => Some(e),
            _ => None,
        }
    }
}
