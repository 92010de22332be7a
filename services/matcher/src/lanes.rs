//! The executor's lanes: decisions on one aggregate run one at a time,
//! proposals to a provider together, and what a failed decision does.

use crate::executor::Executor;
use crate::Decisions;
use refer_domain::ids::EventId;
use refer_domain::need::Target;
use refer_eventstore::StoreError;
use refer_matching::planner::Decision;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

impl Executor {
    /// Carries out one decision. One the aggregates refuse (the projection
    /// was behind) or that met an unavailable bus is forgotten, and the
    /// needs it concerned are matched again right away (not only when
    /// another event arrives). The decision commit checks the fence.
    pub(crate) async fn carry_out(&self, decision: Decision, cause: Option<EventId>, decisions: &Decisions) {
        let started = std::time::Instant::now();
        let outcome = self.run(&decision, cause).await;
        self.done(decision, outcome, started, decisions);
    }

    /// Records how a decision went; one that failed is planned again.
    pub(crate) fn done(
        &self,
        decision: Decision,
        outcome: Result<(), StoreError>,
        started: std::time::Instant,
        decisions: &Decisions,
    ) {
        refer_metrics::observe(
            "refer_matcher_decision_seconds",
            "Time to carry out one matcher decision through the event store.",
            &[("decision", decision.name())],
            started.elapsed(),
        );
        use std::sync::atomic::Ordering;
        let Err(err) = outcome else {
            self.failures.store(0, Ordering::Relaxed);
            return;
        };
        let in_a_row = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(?decision, error = %err, in_a_row, "decision not carried out; it will be planned again");
        self.core.lock().expect("core lock").failed(&decision);
        if !self.lease.held() {
            // Refused by the fence: the next holder plans it again, and so
            // does this matcher should it take the lease back (its ledger
            // no longer holds the decision).
            return;
        }
        // A refusal because the projection was behind is mended by
        // planning again at once; one that repeats (the bus refusing, a
        // writer holding every batch slot open) is tried again less and
        // less often, up to every 2 s, not in a loop.
        let wait = match in_a_row {
            0..=2 => Duration::ZERO,
            n => Duration::from_millis(25 << (n - 2).min(7)).min(Duration::from_secs(2)),
        };
        let (core, clock, decisions) = (self.core.clone(), self.clock.clone(), decisions.clone());
        let lease = self.lease.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if !lease.held() {
                return;
            }
            let again = core.lock().expect("core lock").match_now(clock.now());
            for decision in again {
                let _ = decisions.send((decision, None));
            }
        });
    }

    /// Proposals to providers planned together (waiting together in one
    /// provider's lane, or arriving together for providers with nothing
    /// under way): one atomic commit for all their holds and proposals.
    pub(crate) async fn propose_together(&self, batch: Vec<(Decision, Option<EventId>)>, decisions: &Decisions) {
        let started = std::time::Instant::now();
        let outcomes = self.propose_at_providers(&batch).await;
        for ((decision, _), outcome) in batch.into_iter().zip(outcomes) {
            self.done(decision, outcome, started, decisions);
        }
    }

    /// Carries out decisions as they come, up to `DECISIONS_AT_ONCE` lanes
    /// at once: decisions on one aggregate (a provider's holds, say) run in
    /// its lane, in the order planned, so they never race each other for
    /// the aggregate's next version. Proposals that arrive together (one
    /// plan's) for providers with nothing under way share one atomic commit,
    /// whichever providers they go to; proposals waiting together in a
    /// provider's lane share one too. Planning goes on meanwhile; the ledger
    /// keeps a need from being planned twice.
    pub(crate) async fn serve(
        self,
        mut queue: mpsc::UnboundedReceiver<(Decision, Option<EventId>)>,
        decisions: Decisions,
    ) {
        let lanes: Arc<Mutex<BTreeMap<Uuid, Lane>>> = Arc::default();
        let permits = Arc::new(tokio::sync::Semaphore::new(DECISIONS_AT_ONCE));
        while let Some(first) = queue.recv().await {
            let mut arrived = vec![first];
            while let Ok(next) = queue.try_recv() {
                arrived.push(next);
            }
            let mut together = Vec::new();
            let mut claimed: BTreeSet<Uuid> = BTreeSet::new();
            let mut started = Vec::new();
            {
                let mut lanes = lanes.lock().expect("lanes lock");
                for (decision, cause) in arrived {
                    let lane = decision.lane();
                    let to_provider = matches!(
                        decision,
                        Decision::Propose {
                            target: Target::Provider(_),
                            ..
                        }
                    );
                    if claimed.contains(&lane) && to_provider && together.len() < HOLDS_AT_ONCE {
                        together.push((decision, cause));
                    } else if let Some(waiting) = lanes.get_mut(&lane) {
                        waiting.push_back((decision, cause)); // its lane's task takes it
                    } else if to_provider && together.len() < HOLDS_AT_ONCE {
                        lanes.insert(lane, Lane::new());
                        claimed.insert(lane);
                        together.push((decision, cause));
                    } else {
                        lanes.insert(lane, Lane::from([(decision, cause)]));
                        started.push(lane);
                    }
                }
            }
            for lane in started {
                tokio::spawn(
                    self.clone()
                        .drain(lane, lanes.clone(), permits.clone(), decisions.clone()),
                );
            }
            if together.is_empty() {
                continue;
            }
            let (executor, lanes, permits, decisions) =
                (self.clone(), lanes.clone(), permits.clone(), decisions.clone());
            tokio::spawn(async move {
                if let Ok(_permit) = permits.acquire().await {
                    executor.propose_together(together, &decisions).await;
                }
                // What queued behind in the claimed lanes runs in them.
                for lane in claimed {
                    tokio::spawn(
                        executor
                            .clone()
                            .drain(lane, lanes.clone(), permits.clone(), decisions.clone()),
                    );
                }
            });
        }
    }

    /// Runs what waits in `lane` until it is empty, then removes the lane.
    pub(crate) async fn drain(
        self,
        lane: Uuid,
        lanes: Arc<Mutex<BTreeMap<Uuid, Lane>>>,
        permits: Arc<tokio::sync::Semaphore>,
        decisions: Decisions,
    ) {
        loop {
            let batch = {
                let mut lanes = lanes.lock().expect("lanes lock");
                let batch = lanes.get_mut(&lane).map(next_batch).unwrap_or_default();
                if batch.is_empty() {
                    lanes.remove(&lane);
                    return;
                }
                batch
            };
            let Ok(_permit) = permits.acquire().await else { return };
            if batch.len() == 1 {
                let (decision, cause) = batch.into_iter().next().expect("one");
                self.carry_out(decision, cause, &decisions).await;
            } else {
                self.propose_together(batch, &decisions).await;
            }
        }
    }
}

/// Decisions waiting in one lane, in the order planned.
pub(crate) type Lane = std::collections::VecDeque<(Decision, Option<EventId>)>;

/// The next decision of a lane, or the proposals to a provider at its front,
/// together (at most `HOLDS_AT_ONCE`).
pub(crate) fn next_batch(lane: &mut Lane) -> Vec<(Decision, Option<EventId>)> {
    let to_provider = |a: &(Decision, Option<EventId>)| {
        matches!(
            a.0,
            Decision::Propose {
                target: Target::Provider(_),
                ..
            }
        )
    };
    let mut batch: Vec<_> = lane.pop_front().into_iter().collect();
    if batch.first().is_some_and(to_provider) {
        while batch.len() < HOLDS_AT_ONCE && lane.front().is_some_and(to_provider) {
            batch.extend(lane.pop_front());
        }
    }
    batch
}

/// How many holds one commit places at most.
pub(crate) const HOLDS_AT_ONCE: usize = 64;

/// The same error again, for each decision of a batch that met it.
pub(crate) fn clone_error(err: &StoreError) -> StoreError {
    match err {
        StoreError::Domain(domain) => StoreError::Domain(domain.clone()),
        StoreError::Conflict {
            aggregate,
            expected,
            actual,
        } => StoreError::Conflict {
            aggregate: *aggregate,
            expected: *expected,
            actual: *actual,
        },
        StoreError::Duplicate => StoreError::Duplicate,
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// How many decisions the executor carries out at once.
pub(crate) const DECISIONS_AT_ONCE: usize = 64;
