//! The planner's driver: the projection folded commit by commit, the plans
//! it makes, and what a failed decision does to them. The matcher service
//! runs it on the live stream (adding only I/O: the bus, sled, metrics);
//! `Planner::replay` runs it over a recorded one; the tests and the bench
//! drive it directly.

use super::{Decision, Ledger, Partition, Projection};
use refer_domain::ids::EventId;
use refer_domain::{AggregateKind, Envelope, Timestamp};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The projection, the in-flight ledger, and the decisions planned but not
/// yet handed to whoever carries them out (each with the event that caused
/// it).
#[derive(Default)]
pub struct Planner {
    pub state: Projection,
    pub ledger: Ledger,
    planned: Vec<(Decision, Option<EventId>)>,
    /// Aggregates folded since `take_changed` (what a saved copy must write).
    changed: BTreeSet<(AggregateKind, Uuid)>,
    /// When the last folded commit happened, and its last event, until a
    /// plan looks at it.
    unplanned: Option<(Timestamp, Option<EventId>)>,
}

impl Planner {
    /// A planner over a projection restored from a saved copy.
    pub fn restored(state: Projection) -> Self {
        Self {
            state,
            ..Self::default()
        }
    }

    /// An empty planner of `partition`'s aggregates.
    pub fn of(partition: Partition) -> Self {
        Self::restored(Projection::of(partition))
    }

    /// Folds one commit (its stream sequence and events) and plans what it
    /// calls for.
    pub fn apply(&mut self, seq: u64, events: &[Envelope]) {
        self.fold(seq, events);
        self.plan_folded();
    }

    /// Folds one commit without planning (a matcher catching up plans once
    /// at the end of its backlog: `plan_folded`). The holds of the needs it
    /// touched are settled in the ledger.
    pub fn fold(&mut self, seq: u64, events: &[Envelope]) {
        let mut last = None;
        for envelope in events {
            let Some(kind) = self.state.apply(seq, envelope.aggregate.id, &envelope.event) else {
                continue;
            };
            self.changed.insert((kind, envelope.aggregate.id));
            last = Some(envelope);
        }
        self.state.settle_touched(&mut self.ledger);
        if let Some(last) = last {
            self.unplanned = Some((last.occurred_at, Some(last.event_id)));
        }
    }

    /// Plans what the commits folded since the last plan call for, at the
    /// time of the last of them.
    pub fn plan_folded(&mut self) {
        let Some((at, cause)) = self.unplanned.take() else {
            return;
        };
        let decisions = self.state.plan(at, &mut self.ledger);
        self.planned.extend(decisions.into_iter().map(|d| (d, cause)));
    }

    /// Asks for a plan at `now` even with nothing folded (after a restart,
    /// or on taking the lead).
    pub fn resume(&mut self, now: Timestamp) {
        self.unplanned.get_or_insert((now, None));
    }

    /// Takes the lead: what an earlier term planned was carried out or
    /// refused, so everything is planned afresh at `now` (the same
    /// decisions derive the same keys, and land once).
    pub fn lead(&mut self, now: Timestamp) {
        self.ledger = Ledger::default();
        self.state.capacity_changed = true;
        self.resume(now);
    }

    /// The timer's round at `now`: housekeeping over every hold (referrals
    /// past their deadline with no commit to notice it, settlements that
    /// failed), and, since no commit marks the moment a site opens or a
    /// wait held back for the urgent ends, another match when one did.
    pub fn tick(&mut self, now: Timestamp) {
        let chores = self.state.housekeeping(now, &mut self.ledger);
        self.planned.extend(chores.into_iter().map(|d| (d, None)));
        if self.state.note_openings(now) || self.state.waits_due(now) {
            let matched = self.state.match_needs(now, &mut self.ledger);
            self.planned.extend(matched.into_iter().map(|d| (d, None)));
        }
    }

    /// Stands by: the decisions planned and not handed over are dropped.
    pub fn stand_by(&mut self) {
        self.planned.clear();
    }

    /// How many decisions wait to be handed over.
    pub fn planned(&self) -> usize {
        self.planned.len()
    }

    /// The decisions planned so far, in order, each with its cause.
    pub fn take_planned(&mut self) -> Vec<(Decision, Option<EventId>)> {
        std::mem::take(&mut self.planned)
    }

    /// The aggregates folded since the last call.
    pub fn take_changed(&mut self) -> BTreeSet<(AggregateKind, Uuid)> {
        std::mem::take(&mut self.changed)
    }

    /// A decision that was not carried out (refused, a lost race, the bus
    /// away) is forgotten, so its needs or holds are planned again; and as
    /// the projection may have been behind, every waitlisted need gets
    /// another look at the next plan.
    pub fn failed(&mut self, decision: &Decision) {
        match *decision {
            Decision::Propose { need, hold, .. } | Decision::CompleteProposal { need, hold, .. } => {
                self.ledger.abandon(need, Some(hold))
            }
            Decision::Waitlist { need, .. } | Decision::Expire { need, .. } | Decision::AcceptDonation { need, .. } => {
                self.ledger.abandon(need, None)
            }
            Decision::Confirm { hold, .. } | Decision::Release { hold, .. } => self.ledger.abandon_settling(hold),
        }
        self.state.capacity_changed = true;
    }

    /// Matches the needs that wait now (after a failure: `failed`).
    pub fn match_now(&mut self, now: Timestamp) -> Vec<Decision> {
        self.state.match_needs(now, &mut self.ledger)
    }

    /// The proposals and waitlistings a live matcher would have made over a
    /// recorded stream (each commit's sequence and events), planning after
    /// every commit. Recorded history may differ where decisions raced (a
    /// live matcher plans before earlier decisions land, and they may land
    /// in another order), except after a restart (a matcher catching up
    /// plans once at the end of its backlog) and when a site opens (the
    /// live matcher's timer notices it; a replay, at the next commit).
    pub fn replay<'a>(commits: impl IntoIterator<Item = (u64, &'a [Envelope])>) -> Vec<Decision> {
        let mut planner = Planner::default();
        let mut decisions = Vec::new();
        for (seq, events) in commits {
            planner.apply(seq, events);
            decisions.extend(
                planner
                    .take_planned()
                    .into_iter()
                    .map(|(d, _)| d)
                    .filter(|d| matches!(d, Decision::Propose { .. } | Decision::Waitlist { .. })),
            );
        }
        decisions
    }
}
