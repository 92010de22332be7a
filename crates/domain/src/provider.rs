//! A provider partner's site and its capacity per service.
//!
//! `declared` is what the provider says is free (beds empty tonight, slots
//! open); `held` is the part of it reserved for referrals awaiting an answer.
//! The matcher may only hold what is free: `declared - held`.

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::event::{AggregateKind, Event};
pub use crate::events::provider::{ProviderEvent, ProviderProfile};
use crate::ids::{HoldId, NeedId};
use crate::kinds::ServiceKind;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::hold::{ReleaseReason, MAX_UNITS};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProviderCommand {
    Register(Box<ProviderProfile>),
    /// Replaces a registered site's profile (a directory import, new
    /// hours). The site keeps its organisation and its region; a service
    /// with units held for pending referrals cannot be dropped.
    UpdateProfile(Box<ProviderProfile>),
    /// Sets what is free now, absolutely.
    SetCapacity {
        service: ServiceKind,
        declared: u32,
    },
    /// Adds to (or, negative, takes from) what is free.
    AdjustCapacity {
        service: ServiceKind,
        delta: i32,
    },
    Suspend,
    Resume,
    PlaceHold {
        hold: HoldId,
        need: NeedId,
        service: ServiceKind,
        units: u32,
        expires_at: Timestamp,
    },
    ReleaseHold {
        hold: HoldId,
        reason: ReleaseReason,
    },
    /// The provider accepted the referral: the held units are taken.
    ConfirmHold {
        hold: HoldId,
    },
    /// Several holds in one commit, all or none (the matcher's referrals to
    /// a busy site, so they share one append). A hold already placed is this
    /// same decision carried out before (hold ids are unique): it is skipped.
    PlaceHolds(Vec<HoldRequest>),
}

/// One hold of `PlaceHolds`, as `PlaceHold` takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRequest {
    pub hold: HoldId,
    pub need: NeedId,
    pub service: ServiceKind,
    pub units: u32,
    pub expires_at: Timestamp,
}

/// Units of one service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Units {
    pub declared: u32,
    pub held: u32,
    /// Referrals accepted so far (a running total, for reporting).
    pub placed: u32,
    /// When the provider last declared this service's capacity (set or
    /// adjusted it); `None` when it never did since declarations carry
    /// their instant. Freshness is measured from it (`crate::freshness`).
    pub as_of: Option<Timestamp>,
}

impl Units {
    /// What may still be held. Never negative: `held <= declared` always holds.
    pub fn free(&self) -> u32 {
        self.declared.saturating_sub(self.held)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderHold {
    pub need: NeedId,
    pub service: ServiceKind,
    pub units: u32,
    pub expires_at: Timestamp,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    pub profile: Option<ProviderProfile>,
    pub suspended: bool,
    pub capacity: BTreeMap<ServiceKind, Units>,
    pub holds: BTreeMap<HoldId, ProviderHold>,
}

impl Provider {
    pub fn units(&self, service: ServiceKind) -> Units {
        self.capacity.get(&service).copied().unwrap_or_default()
    }

    fn registered(&self) -> Result<&ProviderProfile, DomainError> {
        self.profile.as_ref().ok_or(DomainError::NotRegistered)
    }

    fn offered(&self, service: ServiceKind) -> Result<(), DomainError> {
        if self.registered()?.services.contains(&service) {
            Ok(())
        } else {
            Err(DomainError::ServiceNotOffered(service))
        }
    }

    fn check_declared(&self, service: ServiceKind, declared: i64) -> Result<(), DomainError> {
        let held = self.units(service).held;
        if declared < i64::from(held) {
            return Err(DomainError::CapacityBelowHeld {
                declared: declared.max(0) as u32,
                held,
            });
        }
        if declared > i64::from(MAX_UNITS) {
            return Err(DomainError::CapacityTooLarge { max: MAX_UNITS });
        }
        Ok(())
    }

    fn hold(&self, hold: HoldId) -> Result<&ProviderHold, DomainError> {
        self.holds.get(&hold).ok_or(DomainError::UnknownHold)
    }
}

impl Aggregate for Provider {
    const KIND: AggregateKind = AggregateKind::Provider;
    type Command = ProviderCommand;
    type Event = ProviderEvent;

    fn decide(&self, command: &ProviderCommand, now: Timestamp) -> Result<Vec<ProviderEvent>, DomainError> {
        use ProviderCommand as C;
        use ProviderEvent as E;
        let event = match command {
            C::Register(profile) => {
                if self.profile.is_some() {
                    return Err(DomainError::AlreadyRegistered);
                }
                profile.validate()?;
                E::Registered(profile.clone())
            }
            C::UpdateProfile(profile) => {
                let current = self.registered()?;
                if profile.org != current.org {
                    return Err(DomainError::invalid("org", "a site stays with its organisation"));
                }
                if profile.location.region != current.location.region {
                    return Err(DomainError::invalid(
                        "location.region",
                        "a site keeps its region (register a new site for another)",
                    ));
                }
                profile.validate()?;
                if let Some(dropped) = current
                    .services
                    .difference(&profile.services)
                    .find(|s| self.units(**s).held > 0)
                {
                    return Err(DomainError::ServiceInUse(*dropped));
                }
                if **profile == *current {
                    return Ok(vec![]);
                }
                E::ProfileUpdated(profile.clone())
            }
            C::SetCapacity { service, declared } => {
                self.offered(*service)?;
                self.check_declared(*service, i64::from(*declared))?;
                E::CapacitySetAt {
                    service: *service,
                    declared: *declared,
                    at: now,
                }
            }
            C::AdjustCapacity { service, delta } => {
                self.offered(*service)?;
                if *delta == 0 {
                    return Err(DomainError::invalid("delta", "must not be zero"));
                }
                let declared = i64::from(self.units(*service).declared) + i64::from(*delta);
                self.check_declared(*service, declared)?;
                E::CapacityAdjustedAt {
                    service: *service,
                    delta: *delta,
                    at: now,
                }
            }
            C::Suspend => {
                self.registered()?;
                if self.suspended {
                    return Ok(vec![]);
                }
                E::Suspended
            }
            C::Resume => {
                self.registered()?;
                if !self.suspended {
                    return Ok(vec![]);
                }
                E::Resumed
            }
            C::PlaceHold {
                hold,
                need,
                service,
                units,
                expires_at,
            } => {
                self.offered(*service)?;
                if self.suspended {
                    return Err(DomainError::Suspended);
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
                let free = self.units(*service).free();
                if *units > free {
                    return Err(DomainError::InsufficientCapacity {
                        requested: *units,
                        free,
                    });
                }
                E::HoldPlaced {
                    hold: *hold,
                    need: *need,
                    service: *service,
                    units: *units,
                    expires_at: *expires_at,
                }
            }
            C::PlaceHolds(holds) => {
                if holds.is_empty() {
                    return Err(DomainError::invalid("holds", "must hold at least one"));
                }
                let mut state = self.clone();
                let mut events = Vec::new();
                for h in holds.iter().filter(|h| !self.holds.contains_key(&h.hold)) {
                    let one = C::PlaceHold {
                        hold: h.hold,
                        need: h.need,
                        service: h.service,
                        units: h.units,
                        expires_at: h.expires_at,
                    };
                    for event in state.decide(&one, now)? {
                        state = state.evolve(&event);
                        events.push(event);
                    }
                }
                return Ok(events);
            }
            C::ReleaseHold { hold, reason } => {
                self.hold(*hold)?;
                E::HoldReleased {
                    hold: *hold,
                    reason: *reason,
                }
            }
            // The deadline is enforced where the answer is given (the need's
            // `Accept`); confirming settles a referral accepted in time, even
            // if the settlement itself comes later (after a crash).
            C::ConfirmHold { hold } => {
                self.hold(*hold)?;
                E::HoldConfirmed { hold: *hold }
            }
        };
        Ok(vec![event])
    }

    fn evolve(mut self, event: &ProviderEvent) -> Self {
        use ProviderEvent as E;
        match event {
            E::Registered(profile) | E::ProfileUpdated(profile) => self.profile = Some(profile.as_ref().clone()),
            E::CapacitySet { service, declared } => {
                self.capacity.entry(*service).or_default().declared = *declared;
            }
            E::CapacityAdjusted { service, delta } => {
                let units = self.capacity.entry(*service).or_default();
                units.declared = units.declared.saturating_add_signed(*delta);
            }
            E::CapacitySetAt { service, declared, at } => {
                let units = self.capacity.entry(*service).or_default();
                units.declared = *declared;
                units.as_of = Some(*at);
            }
            E::CapacityAdjustedAt { service, delta, at } => {
                let units = self.capacity.entry(*service).or_default();
                units.declared = units.declared.saturating_add_signed(*delta);
                units.as_of = Some(*at);
            }
            E::Suspended => self.suspended = true,
            E::Resumed => self.suspended = false,
            E::HoldPlaced {
                hold,
                need,
                service,
                units,
                expires_at,
            } => {
                self.capacity.entry(*service).or_default().held += units;
                self.holds.insert(
                    *hold,
                    ProviderHold {
                        need: *need,
                        service: *service,
                        units: *units,
                        expires_at: *expires_at,
                    },
                );
            }
            E::HoldReleased { hold, .. } => {
                if let Some(h) = self.holds.remove(hold) {
                    let units = self.capacity.entry(h.service).or_default();
                    units.held = units.held.saturating_sub(h.units);
                }
            }
            E::HoldConfirmed { hold } => {
                if let Some(h) = self.holds.remove(hold) {
                    let units = self.capacity.entry(h.service).or_default();
                    units.held = units.held.saturating_sub(h.units);
                    units.declared = units.declared.saturating_sub(h.units);
                    units.placed = units.placed.saturating_add(h.units);
                }
            }
        }
        self
    }

    fn wrap(event: ProviderEvent) -> Event {
        Event::Provider(event)
    }

    fn unwrap(event: &Event) -> Option<&ProviderEvent> {
        match event {
            Event::Provider(e) => Some(e),
            _ => None,
        }
    }
}
