//! A given-when-then kit for the planner, like the domain's:
//! `given(events).at(now).plan()`, then the expected decisions. It can also
//! carry decisions out as the matcher's executor does (through the domain's
//! own `decide`, folding the events that would land), wholly or only up to
//! the hold, and restart (the ledger lost, the state restored), so whole
//! closed loops run in microseconds.
#![allow(dead_code)]

use refer_domain::donation::{Donation, DonationCommand};
use refer_domain::ids::{NeedId, ProviderId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{Need, NeedCommand, NeedEvent, NeedRequest, Proposal, Target};
use refer_domain::provider::{HoldRequest, Provider, ProviderCommand, ProviderEvent, ProviderProfile, ReleaseReason};
use refer_domain::{Aggregate, Event, Timestamp};
use refer_matching::planner::{Decision, Partition, Projection};
use uuid::Uuid;

/// The library's planner (`refer_matching::planner::Planner`, which the
/// matcher runs), with a clock and a sequence of its own; it reads as the
/// library's (`Deref`: `planner.state`, `planner.ledger`).
pub struct Planner {
    pub inner: refer_matching::planner::Planner,
    seq: u64,
    now: Timestamp,
}

impl std::ops::Deref for Planner {
    type Target = refer_matching::planner::Planner;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Planner {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

/// Starts from the state that `events` (aggregate id, event) fold into.
pub fn given(events: impl IntoIterator<Item = (Uuid, Event)>) -> Planner {
    given_in(Partition::whole(), events)
}

/// The same, for the matcher of `partition`: what lies elsewhere is left out.
pub fn given_in(partition: Partition, events: impl IntoIterator<Item = (Uuid, Event)>) -> Planner {
    let mut planner = Planner {
        inner: refer_matching::planner::Planner::of(partition),
        seq: 0,
        now: Timestamp(0),
    };
    planner.fold(events);
    planner
}

/// A provider's registration and its capacity per service.
pub fn provider(id: ProviderId, profile: ProviderProfile, capacity: &[(ServiceKind, u32)]) -> Vec<(Uuid, Event)> {
    let mut events = vec![(
        id.as_uuid(),
        Event::Provider(ProviderEvent::Registered(Box::new(profile))),
    )];
    for (service, declared) in capacity {
        events.push((
            id.as_uuid(),
            Event::Provider(ProviderEvent::CapacitySet {
                service: *service,
                declared: *declared,
            }),
        ));
    }
    events
}

/// A need requested.
pub fn requested(id: NeedId, request: NeedRequest) -> (Uuid, Event) {
    (id.as_uuid(), Event::Need(NeedEvent::Requested(request)))
}

impl Planner {
    /// Folds more events in, as the matcher does with each commit.
    pub fn fold(&mut self, events: impl IntoIterator<Item = (Uuid, Event)>) -> &mut Self {
        for (id, event) in events {
            self.seq += 1;
            self.inner.state.apply(self.seq, id, &event);
            self.inner.state.settle_touched(&mut self.inner.ledger);
        }
        self
    }

    pub fn at(&mut self, now: Timestamp) -> &mut Self {
        self.now = now;
        self
    }

    /// Plans what follows from everything folded, at the current time.
    pub fn plan(&mut self) -> Vec<Decision> {
        self.inner.state.plan(self.now, &mut self.inner.ledger)
    }

    /// The timer's housekeeping, at the current time.
    pub fn housekeeping(&mut self) -> Vec<Decision> {
        self.inner.state.housekeeping(self.now, &mut self.inner.ledger)
    }

    /// A restart: the ledger is lost, the state restored from what was saved.
    pub fn restart(&mut self) -> &mut Self {
        let partition = self.inner.state.partition().clone();
        let saved = std::mem::take(&mut self.inner.state);
        let needs = saved
            .needs
            .into_iter()
            .map(|(id, need)| (id, (need, saved.arrival[&id])))
            .collect();
        let restored = Projection::restored(saved.providers, saved.donations, needs, partition);
        self.inner = refer_matching::planner::Planner::restored(restored);
        self
    }

    /// Runs a command on a provider; false if it refuses it.
    fn provider_do(&mut self, id: ProviderId, command: ProviderCommand) -> bool {
        let state = self.inner.state.providers.get(&id).cloned().unwrap_or_default();
        let Ok(events) = state.decide(&command, self.now) else {
            return false;
        };
        self.fold(events.into_iter().map(|e| (id.as_uuid(), Provider::wrap(e))));
        true
    }

    /// Runs a command on a donation; false if it refuses it.
    fn donation_do(&mut self, id: refer_domain::ids::DonationId, command: DonationCommand) -> bool {
        let state = self.inner.state.donations.get(&id).cloned().unwrap_or_default();
        let Ok(events) = state.decide(&command, self.now) else {
            return false;
        };
        self.fold(events.into_iter().map(|e| (id.as_uuid(), Donation::wrap(e))));
        true
    }

    /// Runs a command on a need; false if the need refuses it.
    pub fn need_do(&mut self, id: NeedId, command: NeedCommand) -> bool {
        let state = self.inner.state.needs.get(&id).cloned().unwrap_or_default();
        match state.decide(&command, self.now) {
            Ok(events) => {
                self.fold(events.into_iter().map(|e| (id.as_uuid(), Need::wrap(e))));
                true
            }
            Err(_) => false,
        }
    }

    /// Places a proposal's hold and stops there (a crash before the
    /// proposal). False if the target refuses it.
    pub fn hold_only(&mut self, decision: &Decision) -> bool {
        let Decision::Propose {
            need,
            target,
            service,
            hold,
            units,
            expires_at,
        } = *decision
        else {
            panic!("only a proposal places a hold: {decision:?}")
        };
        match target {
            Target::Provider(p) => self.provider_do(
                p,
                ProviderCommand::PlaceHolds(vec![HoldRequest {
                    hold,
                    need,
                    service: service.expect("a provider's service"),
                    units,
                    expires_at,
                }]),
            ),
            Target::Donation(d) => self.donation_do(
                d,
                DonationCommand::PlaceHold {
                    hold,
                    need,
                    units,
                    expires_at,
                },
            ),
        }
    }

    /// Carries a decision out wholly, as the executor does: one that an
    /// aggregate refuses (the state moved on) is forgotten, and its need
    /// planned again.
    pub fn carry_out(&mut self, decision: &Decision) {
        let done = match *decision {
            Decision::Propose {
                need,
                target,
                hold,
                expires_at,
                ..
            } => self.hold_only(decision) && self.propose(need, target, hold, expires_at),
            Decision::CompleteProposal {
                need,
                target,
                hold,
                deadline,
            } if deadline > self.now => self.propose(need, target, hold, deadline),
            Decision::CompleteProposal { target, hold, .. } => self.settle(target, hold, Some(ReleaseReason::Expired)),
            Decision::AcceptDonation { need, target, hold } => {
                self.need_do(need, NeedCommand::Accept { by: target }) && self.settle(target, hold, None)
            }
            Decision::Waitlist { need, held_until, .. } => self.need_do(need, NeedCommand::waitlist(held_until)),
            Decision::Expire { need, target, hold } => {
                self.need_do(need, NeedCommand::Expire) && self.settle(target, hold, Some(ReleaseReason::Expired))
            }
            Decision::Confirm { target, hold } => self.settle(target, hold, None),
            Decision::Release { target, hold, reason } => self.settle(target, hold, Some(reason)),
        };
        if !done {
            self.forget(decision);
        }
    }

    /// What the executor does with a decision that failed: forgets it, so
    /// its need is planned again, and gives the waitlist another look.
    pub fn forget(&mut self, decision: &Decision) {
        self.inner.failed(decision);
    }

    pub fn carry_out_all(&mut self, decisions: &[Decision]) {
        for decision in decisions {
            self.carry_out(decision);
        }
    }

    fn propose(&mut self, need: NeedId, target: Target, hold: refer_domain::ids::HoldId, deadline: Timestamp) -> bool {
        let proposal = Proposal { target, hold, deadline };
        if !self.need_do(need, NeedCommand::Propose(proposal)) {
            // The need moved on (cancelled, say): give the units back.
            self.settle(target, hold, Some(ReleaseReason::Cancelled));
            return false;
        }
        match target {
            Target::Donation(_) => {
                self.need_do(need, NeedCommand::Accept { by: target }) && self.settle(target, hold, None)
            }
            Target::Provider(_) => true,
        }
    }

    fn settle(&mut self, target: Target, hold: refer_domain::ids::HoldId, release: Option<ReleaseReason>) -> bool {
        match (target, release) {
            (Target::Provider(p), None) => self.provider_do(p, ProviderCommand::ConfirmHold { hold }),
            (Target::Provider(p), Some(reason)) => self.provider_do(p, ProviderCommand::ReleaseHold { hold, reason }),
            (Target::Donation(d), None) => self.donation_do(d, DonationCommand::ConfirmHold { hold }),
            (Target::Donation(d), Some(reason)) => self.donation_do(d, DonationCommand::ReleaseHold { hold, reason }),
        }
    }
}

/// The target each proposal goes to, by need.
pub fn proposals(decisions: &[Decision]) -> std::collections::BTreeMap<NeedId, Target> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Propose { need, target, .. } => Some((*need, *target)),
            _ => None,
        })
        .collect()
}
