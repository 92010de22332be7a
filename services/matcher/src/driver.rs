//! The planner's driver: the projection folded commit by commit, the
//! plans it makes, and a replay of a whole stream.

use crate::acceptance;
use crate::Decisions;
use refer_domain::ids::{EventId, NeedId};
use refer_domain::need::{Need, NeedStatus};
use refer_domain::{AggregateKind, Event, Timestamp};
use refer_eventstore::Recorded;
use refer_matching::planner::{Decision, Ledger, Partition, Projection as State};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The core, the decisions waiting to be carried out, and what to persist.
#[derive(Default)]
pub struct Core {
    pub state: State,
    pub ledger: Ledger,
    pub(crate) queue: Vec<(Decision, Option<EventId>)>,
    pub(crate) dirty: BTreeSet<(AggregateKind, Uuid)>,
    /// The time of the last event folded in since the last plan (plan at
    /// that time), and the event.
    pub(crate) unplanned: Option<(Timestamp, Option<EventId>)>,
    /// How long needs wait from request to acceptance (for the status).
    pub acceptance: acceptance::AcceptanceClock,
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
            state: State::restored(providers, donations, needs, partition),
            ..Core::default()
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
    pub fn apply(&mut self, commit: &Recorded) {
        self.fold(commit);
        self.plan_folded();
    }

    /// Folds a commit in without planning: a cold start folds its backlog,
    /// then plans once, instead of planning at every commit (quadratic).
    /// Events of another partition's aggregates are left out.
    pub fn fold(&mut self, commit: &Recorded) {
        let mut last = None;
        for envelope in &commit.events {
            let Some(kind) = self.state.apply(commit.seq, envelope.aggregate.id, &envelope.event) else {
                continue;
            };
            self.dirty.insert((kind, envelope.aggregate.id));
            if let Event::Need(event) = &envelope.event {
                self.acceptance.fold(envelope.aggregate.id, event, envelope.occurred_at);
            }
            last = Some(envelope);
        }
        self.state.settle_touched(&mut self.ledger);
        if let Some(last) = last {
            self.unplanned = Some((last.occurred_at, Some(last.event_id)));
        }
    }

    /// Hands every planned decision to the executor.
    pub(crate) fn send(&mut self, decisions: &Decisions) {
        for decision in self.queue.drain(..) {
            // Only fails once the executor stopped, at shutdown.
            let _ = decisions.send(decision);
        }
    }

    /// Actions planned and not yet carried out.
    pub fn planned(&self) -> usize {
        self.queue.len()
    }

    /// Plans what follows from everything folded since the last plan, at the
    /// time of the last folded event.
    pub fn plan_folded(&mut self) {
        let Some((at, cause)) = self.unplanned.take() else {
            return;
        };
        let actions = self.state.plan(at, &mut self.ledger);
        self.queue.extend(actions.into_iter().map(|a| (a, cause)));
    }

    /// Makes sure the first plan after a start happens, at `now` if the
    /// backlog was empty. Decisions planned before a stop and not carried
    /// out live on only in the state: when the checkpoint was already at the
    /// end of the stream, no commit would call for them again.
    pub fn resume(&mut self, now: Timestamp) {
        self.unplanned.get_or_insert((now, None));
    }
}

/// Runs the core over a recorded stream from scratch and returns the
/// matching decisions it makes (proposals and waitlistings), in order. The
/// live matcher plans every commit the same way, so these equal the
/// `need.proposed` and `need.waitlisted` events it wrote, need by need (it
/// carries out decisions about different needs together, so between needs
/// they may land in another order), except after a restart (a matcher
/// catching up plans once at the end of its backlog) and when a site opens
/// (the live matcher's timer notices it; a replay, at the next commit).
pub fn replay(commits: &[Recorded]) -> Vec<Decision> {
    let mut core = Core::default();
    let mut decisions = Vec::new();
    for commit in commits {
        core.apply(commit);
        decisions.extend(
            core.queue
                .drain(..)
                .map(|(a, _)| a)
                .filter(|a| matches!(a, Decision::Propose { .. } | Decision::Waitlist { .. })),
        );
    }
    decisions
}
