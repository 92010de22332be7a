//! How long needs wait from request to acceptance: the coalition's measure
//! of whether people are placed in minutes. Kept over the last `WINDOW`
//! acceptances the matcher folded since it started (a need requested before
//! a restart is not timed: its request time is not in the snapshot).

use refer_domain::need::NeedEvent;
use refer_domain::Timestamp;
use std::collections::{HashMap, VecDeque};
use uuid::Uuid;

/// The acceptances the measure covers.
pub const WINDOW: usize = 1000;

#[derive(Default)]
pub struct AcceptanceClock {
    requested: HashMap<Uuid, Timestamp>,
    waits_ms: VecDeque<i64>,
}

impl AcceptanceClock {
    /// Folds one event of need `need`, which happened `at`.
    pub fn fold(&mut self, need: Uuid, event: &NeedEvent, at: Timestamp) {
        match event {
            NeedEvent::Requested(_) => {
                self.requested.insert(need, at);
            }
            NeedEvent::Accepted(_) => {
                if let Some(asked) = self.requested.remove(&need) {
                    if self.waits_ms.len() == WINDOW {
                        self.waits_ms.pop_front();
                    }
                    self.waits_ms.push_back((at.millis() - asked.millis()).max(0));
                }
            }
            NeedEvent::Cancelled { .. } | NeedEvent::Fulfilled => {
                self.requested.remove(&need);
            }
            _ => {}
        }
    }

    /// The wait below which `percent` of the timed acceptances fall
    /// (nearest rank), and how many were timed.
    pub fn percentile(&self, percent: usize) -> (Option<i64>, usize) {
        let mut waits: Vec<i64> = self.waits_ms.iter().copied().collect();
        if waits.is_empty() {
            return (None, 0);
        }
        waits.sort_unstable();
        let rank = (percent * waits.len()).div_ceil(100).clamp(1, waits.len());
        (Some(waits[rank - 1]), waits.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refer_domain::ids::{HoldId, ProviderId};
    use refer_domain::need::{Proposal, Target};
    use refer_domain::sample::{self, NIGHT};

    fn accepted() -> NeedEvent {
        NeedEvent::Accepted(Proposal {
            target: Target::Provider(ProviderId::from_u128(1)),
            hold: HoldId::from_u128(1),
            deadline: NIGHT.plus_secs(900),
        })
    }

    #[test]
    fn the_wait_is_from_request_to_acceptance_and_untimed_needs_do_not_count() {
        let mut clock = AcceptanceClock::default();
        let requested = NeedEvent::Requested(sample::shelter_need(
            refer_domain::ids::OrgId::from_u128(1),
            refer_domain::ids::PlacementId::from_u128(1),
            None,
        ));
        for (i, minutes) in [2i64, 4, 6, 8, 30].iter().enumerate() {
            let need = Uuid::from_u128(i as u128);
            clock.fold(need, &requested, NIGHT);
            clock.fold(need, &accepted(), NIGHT.plus_secs(minutes * 60));
        }
        // Accepted, but requested before the matcher started: not timed.
        clock.fold(Uuid::from_u128(99), &accepted(), NIGHT.plus_secs(7200));
        // Cancelled before acceptance: never timed.
        let cancelled = Uuid::from_u128(98);
        clock.fold(cancelled, &requested, NIGHT);
        clock.fold(cancelled, &NeedEvent::Cancelled { pending: None }, NIGHT.plus_secs(60));
        clock.fold(cancelled, &accepted(), NIGHT.plus_secs(120));
        assert_eq!(clock.percentile(50), (Some(6 * 60_000), 5));
        assert_eq!(clock.percentile(90), (Some(30 * 60_000), 5));
        assert_eq!(AcceptanceClock::default().percentile(50), (None, 0));
    }
}
