//! The matcher's core: the library's `Planner` (the pure driver:
//! `refer_matching::planner::Planner`), restored from and saved to sled,
//! with the acceptance clock and the workload gauges the status reports.

use crate::acceptance;
use crate::Decisions;
use refer_domain::ids::NeedId;
use refer_domain::need::{Need, NeedStatus};
use refer_domain::Event;
use refer_eventstore::Recorded;
use refer_matching::planner::{Partition, Planner, Projection as State};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The planner, and how long needs wait from request to acceptance (for
/// the status). It reads as its planner (`Deref`).
#[derive(Default)]
pub struct Core {
    pub planner: Planner,
    pub acceptance: acceptance::AcceptanceClock,
}

impl std::ops::Deref for Core {
    type Target = Planner;
    fn deref(&self) -> &Planner {
        &self.planner
    }
}

impl std::ops::DerefMut for Core {
    fn deref_mut(&mut self) -> &mut Planner {
        &mut self.planner
    }
}

impl Core {
    /// Restores the projection of `partition` from the subscriber's tree
    /// (kept for the same partition: see `start`). An entry that does not
    /// decode is logged and counted, never skipped silently: the matcher
    /// would plan without that aggregate.
    pub fn restore(tree: &sled::Tree, partition: Partition) -> Self {
        let mut providers = BTreeMap::new();
        let mut donations = BTreeMap::new();
        let mut needs = BTreeMap::new();
        for (key, value) in tree.iter().flatten() {
            let Some((tag, id)) = key.split_first() else { continue };
            let Ok(id) = Uuid::from_slice(id) else { continue };
            let decoded = match tag {
                b'p' => postcard::from_bytes(&value).map(|p| {
                    providers.insert(refer_domain::ids::ProviderId::from_uuid(id), p);
                }),
                b'd' => postcard::from_bytes(&value).map(|d| {
                    donations.insert(refer_domain::ids::DonationId::from_uuid(id), d);
                }),
                b'n' => postcard::from_bytes::<(Need, u64)>(&value).map(|n| {
                    needs.insert(NeedId::from_uuid(id), n);
                }),
                _ => continue,
            };
            if let Err(err) = decoded {
                tracing::error!(%id, error = %err, "matcher state entry does not decode");
                refer_metrics::count(
                    "refer_matcher_undecodable_entries_total",
                    "Saved matcher state entries that did not decode at restore.",
                    &[],
                    1.0,
                );
            }
        }
        Core {
            planner: Planner::restored(State::restored(providers, donations, needs, partition)),
            acceptance: Default::default(),
        }
    }

    /// Publishes the workload as gauges: holds open, referrals pending,
    /// waitlist (counters the planner keeps: nothing is scanned).
    pub(crate) fn report(&self) {
        let tally = self.state.tally();
        refer_metrics::set(
            "refer_matcher_open_holds",
            "Holds open for referrals awaiting an answer.",
            &[],
            f64::from(tally.holds),
        );
        refer_metrics::set(
            "refer_matcher_pending_referrals",
            "Needs proposed and awaiting an answer.",
            &[],
            f64::from(tally.count(NeedStatus::Proposed)),
        );
        refer_metrics::set(
            "refer_matcher_waitlist",
            "Needs waiting for capacity.",
            &[],
            f64::from(tally.count(NeedStatus::Waitlisted)),
        );
    }

    /// Folds a commit in and plans what follows from it (at the commit's time).
    /// Folds one commit (planning waits for `plan_folded`), and notes when
    /// each need was requested and accepted.
    pub fn fold_commit(&mut self, commit: &Recorded) {
        self.planner.fold(commit.seq, &commit.events);
        for envelope in &commit.events {
            if let Event::Need(event) = &envelope.event {
                self.acceptance.fold(envelope.aggregate.id, event, envelope.occurred_at);
            }
        }
    }

    /// Hands the decisions planned so far to the executor.
    pub(crate) fn send(&mut self, decisions: &Decisions) {
        for decision in self.planner.take_planned() {
            let _ = decisions.send(decision);
        }
    }
}
