//! The matcher service: a durable consumer of every event that keeps a
//! projection of providers, donations and needs in memory (checkpointed in
//! sled), and turns it into decisions: a referral with a hold and a deadline,
//! expiry, re-matching after a decline or expiry (skipping whoever declined),
//! the waitlist, and settling holds when needs are answered or cancelled.
#![forbid(unsafe_code)]

pub mod acceptance;

pub mod failpoint;

use refer_domain::decision::{
    keys, Answer, AnswerAndSettle, AtProvider, AtomicDecision, Expire, OneCommand, ProposeAtDonation,
    ProposeAtProviders, Touched,
};
use refer_domain::donation::{Donation, DonationCommand};
use refer_domain::ids::{CorrelationId, EventId, NeedId};
use refer_domain::need::{Need, NeedCommand, NeedStatus, Proposal, Target};
use refer_domain::provider::{HoldRequest, Provider, ProviderCommand, ReleaseReason};
use refer_domain::{AggregateKind, AggregateRef, CommandMeta, Event, IdempotencyKey, Timestamp};
use refer_eventstore::{Committed, EventStore, Recorded, StoreError, Subscriber};
use refer_matching::planner::{Decision, Ledger, Partition, Projection as State};
use refer_proto::matcher::v1 as pb;
use refer_proto::matcher::v1::matcher_server::{Matcher, MatcherServer};
use refer_service::lease::{Fence, Lease};
use refer_service::runtime::{Context, ServiceSpec, Started};
use refer_service::{caller, Role, SharedClock};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The gRPC service name (for health checks).
pub const SERVICE_NAME: &str = "refer.matcher.v1.Matcher";
/// The durable consumer of every event.
pub const CONSUMER: &str = "matcher";

/// The core, the decisions waiting to be carried out, and what to persist.
#[derive(Default)]
pub struct Core {
    pub state: State,
    pub ledger: Ledger,
    queue: Vec<(Decision, Option<EventId>)>,
    dirty: BTreeSet<(AggregateKind, Uuid)>,
    /// The time of the last event folded in since the last plan (plan at
    /// that time), and the event.
    unplanned: Option<(Timestamp, Option<EventId>)>,
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
    fn report(&self) {
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
    fn send(&mut self, decisions: &Decisions) {
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

/// Decisions on their way to the executor, with the event that caused each.
type Decisions = mpsc::UnboundedSender<(Decision, Option<EventId>)>;

/// Feeds the subscriber's commits to the shared core.
struct Feed {
    core: Arc<Mutex<Core>>,
    /// Catching up on the backlog at start: fold only, plan once at the end.
    /// Live, every commit is planned at its own time, so the decisions are a
    /// function of the stream (`replay` makes the same ones).
    catching_up: bool,
    decisions: Decisions,
    /// Whether this matcher holds the lease: a standby folds every commit
    /// (its projection stays warm) but plans nothing.
    lease: Fence,
}

impl refer_eventstore::Projection for Feed {
    fn apply(&mut self, commit: &Recorded) {
        let mut core = self.core.lock().expect("core lock");
        if self.catching_up || !self.lease.held() {
            core.fold(commit);
        } else {
            core.apply(commit);
            // Carried out at once, before the batch's checkpoint is on disk:
            // after a crash the same decisions are planned again with the
            // same derived keys, and land once.
            core.send(&self.decisions);
        }
    }

    fn persist(&mut self, batch: &mut sled::Batch) {
        let mut core = self.core.lock().expect("core lock");
        for (kind, id) in std::mem::take(&mut core.dirty) {
            let (tag, bytes) = match kind {
                AggregateKind::Provider => (
                    b'p',
                    postcard::to_stdvec(&core.state.providers[&refer_domain::ids::ProviderId::from_uuid(id)]),
                ),
                AggregateKind::Donation => (
                    b'd',
                    postcard::to_stdvec(&core.state.donations[&refer_domain::ids::DonationId::from_uuid(id)]),
                ),
                AggregateKind::Need => {
                    let need = NeedId::from_uuid(id);
                    (
                        b'n',
                        postcard::to_stdvec(&(&core.state.needs[&need], core.state.arrival[&need])),
                    )
                }
                // Nothing of a placement's file or a standing hand-off is the matcher's.
                AggregateKind::Placement | AggregateKind::Standing => continue,
            };
            let mut key = vec![tag];
            key.extend_from_slice(id.as_bytes());
            batch.insert(key, bytes.expect("state encodes"));
        }
    }
}

/// Carries out decisions through the event store, with idempotency keys
/// derived from the decision, so doing one twice applies it once.
#[derive(Clone)]
struct Executor {
    store: EventStore,
    clock: SharedClock,
    core: Arc<Mutex<Core>>,
    /// Checked before every commit of every decision, retries included
    /// (`Executor::fence`): a matcher that lost the lease (or was paused
    /// past it) carries out nothing more.
    lease: Fence,
    failpoint: failpoint::Failpoint,
}

impl Executor {
    fn meta(&self, need: Option<NeedId>, cause: Option<EventId>) -> CommandMeta {
        CommandMeta {
            occurred_at: self.clock.now(),
            // All events about one need share its correlation id.
            correlation_id: need.map_or(CorrelationId::from_u128(0), |n| CorrelationId::from_uuid(n.as_uuid())),
            causation_id: cause,
            // Each step's own, derived from its hold (refer_domain::decision::keys).
            idempotency_key: None,
        }
    }

    /// The fence, checked by the decision commit before each try commits
    /// (`EventStore::decide`): a matcher that lost the lease, or was paused
    /// past it, writes nothing more, not even a retry of a commit it began
    /// while it held the lease. `proposals` counts the proposals of the
    /// decision (for the test failpoint).
    fn fence(&self, proposals: usize) -> impl Fn(u32) -> Result<(), StoreError> + Sync + '_ {
        move |attempt| {
            if attempt > 1 && proposals > 1 {
                self.failpoint.pause_mid_retry(proposals);
            }
            if self.lease.held() {
                Ok(())
            } else {
                Err(StoreError::Precondition("this matcher does not hold the lease".into()))
            }
        }
    }

    /// Carries out an atomic decision, or a single command, through the one
    /// decision commit, fenced; `meta` is each aggregate's metadata.
    async fn decide<D: AtomicDecision>(
        &self,
        decision: &D,
        proposals: usize,
        meta: &(dyn Fn(&AggregateRef) -> CommandMeta + Sync),
    ) -> Result<Committed, StoreError> {
        let now = self.clock.now();
        self.store.decide(decision, now, meta, &self.fence(proposals)).await
    }

    /// One command on one aggregate (a settlement, a waitlisting), fenced.
    async fn one<A>(
        &self,
        id: Uuid,
        command: A::Command,
        key: IdempotencyKey,
        meta: CommandMeta,
    ) -> Result<(), StoreError>
    where
        A: Touched,
        A::Command: Sync,
    {
        let one = OneCommand::<A> { id, command, key };
        self.decide(&one, 0, &|_| meta.clone()).await.map(|_| ())
    }

    async fn settle(
        &self,
        target: Target,
        hold: refer_domain::ids::HoldId,
        release: Option<ReleaseReason>,
        cause: Option<EventId>,
    ) -> Result<(), StoreError> {
        let meta = self.meta(None, cause);
        let key = keys::settle(hold);
        match (target, release) {
            (Target::Provider(p), None) => {
                self.one::<Provider>(p.as_uuid(), ProviderCommand::ConfirmHold { hold }, key, meta)
                    .await
            }
            (Target::Provider(p), Some(reason)) => {
                self.one::<Provider>(p.as_uuid(), ProviderCommand::ReleaseHold { hold, reason }, key, meta)
                    .await
            }
            (Target::Donation(d), None) => {
                self.one::<Donation>(d.as_uuid(), DonationCommand::ConfirmHold { hold }, key, meta)
                    .await
            }
            (Target::Donation(d), Some(reason)) => {
                self.one::<Donation>(d.as_uuid(), DonationCommand::ReleaseHold { hold, reason }, key, meta)
                    .await
            }
        }
    }

    /// Proposals to providers, as one atomic decision
    /// (`refer_domain::decision::ProposeAtProviders`): every hold with its
    /// proposal, whichever providers they go to; a proposal the aggregates
    /// refuse is left out with its hold, the others go ahead. Returns each
    /// proposal's outcome, in order.
    async fn propose_at_providers(&self, proposals: &[(Decision, Option<EventId>)]) -> Vec<Result<(), StoreError>> {
        let mut metas: BTreeMap<AggregateRef, CommandMeta> = BTreeMap::new();
        let decision = ProposeAtProviders {
            proposals: proposals
                .iter()
                .map(|(decision, cause)| match *decision {
                    Decision::Propose {
                        need,
                        target: Target::Provider(provider),
                        service: Some(service),
                        hold,
                        units,
                        expires_at,
                    } => {
                        let meta = self.meta(Some(need), *cause);
                        let at = AggregateRef {
                            kind: AggregateKind::Provider,
                            id: provider.as_uuid(),
                        };
                        // A provider's commit is correlated with its first proposal.
                        metas.entry(at).or_insert_with(|| meta.clone());
                        metas.insert(
                            AggregateRef {
                                kind: AggregateKind::Need,
                                id: need.as_uuid(),
                            },
                            meta,
                        );
                        AtProvider {
                            provider,
                            hold: HoldRequest {
                                hold,
                                need,
                                service,
                                units,
                                expires_at,
                            },
                        }
                    }
                    _ => unreachable!("only proposals to providers are committed here"),
                })
                .collect(),
        };
        let meta = |aggregate: &AggregateRef| metas[aggregate].clone();
        match self.decide(&decision, proposals.len(), &meta).await {
            Ok(committed) => {
                let mut outcomes: Vec<Result<(), StoreError>> = (0..proposals.len()).map(|_| Ok(())).collect();
                for (i, refused) in committed.refused {
                    outcomes[i] = Err(StoreError::Domain(refused));
                }
                outcomes
            }
            Err(err) => proposals.iter().map(|_| Err(clone_error(&err))).collect(),
        }
    }

    async fn run(&self, decision: &Decision, cause: Option<EventId>) -> Result<(), StoreError> {
        match *decision {
            Decision::Propose {
                target: Target::Provider(_),
                ..
            } => {
                let one = [(decision.clone(), cause)];
                let outcome = self.propose_at_providers(&one).await.into_iter().next();
                outcome.unwrap_or(Ok(()))
            }
            Decision::Propose {
                need,
                target: Target::Donation(donation),
                hold,
                units,
                expires_at,
                ..
            } => {
                let meta = self.meta(Some(need), cause);
                let given = ProposeAtDonation {
                    need,
                    donation,
                    hold,
                    units,
                    expires_at,
                };
                self.decide(&given, 1, &|_| meta.clone()).await.map(|_| ())
            }
            Decision::CompleteProposal {
                need,
                target,
                hold,
                deadline,
            } => {
                // A hold left without its proposal by a matcher from before
                // atomic commits.
                if deadline > self.clock.now() {
                    let meta = self.meta(Some(need), cause);
                    let proposal = NeedCommand::Propose(Proposal { target, hold, deadline });
                    match self
                        .one::<Need>(need.as_uuid(), proposal, keys::propose(hold), meta)
                        .await
                    {
                        Err(StoreError::Domain(_)) => {
                            self.settle(target, hold, Some(ReleaseReason::Cancelled), cause).await
                        }
                        other => other,
                    }
                } else {
                    self.settle(target, hold, Some(ReleaseReason::Expired), cause).await
                }
            }
            Decision::AcceptDonation { need, target, hold } => {
                // A proposal to a donation left unaccepted (before atomic
                // commits): accepted and the hold used, together.
                let need_meta = self.meta(Some(need), cause);
                let hold_meta = self.meta(None, cause);
                let accepted = AnswerAndSettle {
                    need,
                    target,
                    hold,
                    answer: Answer::Accept { handoff: None },
                    key: keys::accept(hold),
                };
                let meta = |a: &AggregateRef| match a.kind {
                    AggregateKind::Need => need_meta.clone(),
                    _ => hold_meta.clone(),
                };
                self.decide(&accepted, 0, &meta).await.map(|_| ())
            }
            Decision::Waitlist {
                need,
                attempt,
                held_until,
            } => {
                let meta = self.meta(Some(need), cause);
                // `attempt` counts proposals and waitlistings (`Need::step`),
                // so each waitlisting has a key of its own.
                let key = IdempotencyKey::new(format!("wait-{attempt}")).expect("derived keys are valid");
                self.one::<Need>(need.as_uuid(), NeedCommand::waitlist(held_until), key, meta)
                    .await
            }
            Decision::Expire { need, target, hold } => {
                // The need expires and its hold is released, together.
                let need_meta = self.meta(Some(need), cause);
                let hold_meta = self.meta(None, cause);
                let meta = |a: &AggregateRef| match a.kind {
                    AggregateKind::Need => need_meta.clone(),
                    _ => hold_meta.clone(),
                };
                self.decide(&Expire { need, target, hold }, 0, &meta).await.map(|_| ())
            }
            Decision::Confirm { target, hold } => self.settle(target, hold, None, cause).await,
            Decision::Release { target, hold, reason } => self.settle(target, hold, Some(reason), cause).await,
        }
    }

    /// Carries out one decision. One the aggregates refuse (the projection
    /// was behind) or that met an unavailable bus is forgotten, and the
    /// needs it concerned are matched again right away (not only when
    /// another event arrives). The decision commit checks the fence.
    async fn carry_out(&self, decision: Decision, cause: Option<EventId>, decisions: &Decisions) {
        let started = std::time::Instant::now();
        let outcome = self.run(&decision, cause).await;
        self.done(decision, outcome, started, decisions);
    }

    /// Records how a decision went; one that failed is planned again.
    fn done(
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
        let Err(err) = outcome else { return };
        tracing::info!(?decision, error = %err, "decision not carried out; it will be planned again");
        let mut core = self.core.lock().expect("core lock");
        match decision {
            Decision::Propose { need, hold, .. } | Decision::CompleteProposal { need, hold, .. } => {
                core.ledger.abandon(need, Some(hold))
            }
            Decision::Waitlist { need, .. } | Decision::Expire { need, .. } | Decision::AcceptDonation { need, .. } => {
                core.ledger.abandon(need, None)
            }
            Decision::Confirm { hold, .. } | Decision::Release { hold, .. } => core.ledger.abandon_settling(hold),
        }
        let Core { state, ledger, .. } = &mut *core;
        state.capacity_changed = true;
        if !self.lease.held() {
            // Refused by the fence: the next holder plans it again, and so
            // does this matcher should it take the lease back (its ledger
            // no longer holds the decision).
            return;
        }
        for again in state.match_needs(self.clock.now(), ledger) {
            let _ = decisions.send((again, None));
        }
    }

    /// Proposals to providers planned together (waiting together in one
    /// provider's lane, or arriving together for providers with nothing
    /// under way): one atomic commit for all their holds and proposals.
    async fn propose_together(&self, batch: Vec<(Decision, Option<EventId>)>, decisions: &Decisions) {
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
    async fn serve(self, mut queue: mpsc::UnboundedReceiver<(Decision, Option<EventId>)>, decisions: Decisions) {
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
    async fn drain(
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
type Lane = std::collections::VecDeque<(Decision, Option<EventId>)>;

/// The next decision of a lane, or the proposals to a provider at its front,
/// together (at most `HOLDS_AT_ONCE`).
fn next_batch(lane: &mut Lane) -> Vec<(Decision, Option<EventId>)> {
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
const HOLDS_AT_ONCE: usize = 64;

/// The same error again, for each decision of a batch that met it.
fn clone_error(err: &StoreError) -> StoreError {
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
const DECISIONS_AT_ONCE: usize = 64;
/// How often the workload gauges are refreshed.
const REPORT_EVERY: Duration = Duration::from_millis(250);

/// Who may call: coalition admins.
pub const ROLES: &[Role] = &[Role::Admin];

/// How `main` and the tests start the matcher.
pub const SERVICE: ServiceSpec = ServiceSpec {
    name: "matcher",
    grpc_name: SERVICE_NAME,
    default_port: 50054,
    start: |context| Box::pin(start(context)),
};

/// How long a lease lives without renewal: a standby decides at most about
/// this long after the holder died.
pub const LEASE_TTL: Duration = Duration::from_secs(3);

/// Renews the lease every third of its ttl until shutdown, then gives it
/// up so a standby takes over at once.
async fn keep_lease(mut lease: Lease, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(lease.renew_every());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                lease.hold().await;
            }
            _ = shutdown.changed() => {
                lease.release().await;
                return;
            }
        }
    }
}

/// The partition a matcher's configuration names (every region if none).
pub fn partition(config: &refer_service::runtime::Config) -> Partition {
    match &config.partition {
        None => Partition::whole(),
        Some((name, regions)) => Partition::of(name.clone(), regions.clone()),
    }
}

/// Starts the matcher of its partition: takes (or waits for) the
/// partition's lease, restores the projection, keeps it current, carries
/// out decisions while it holds the lease, and runs housekeeping (expiry)
/// every `tick`.
async fn start(context: Context) -> anyhow::Result<Started> {
    let store = context.store.clone();
    let clock = context.clock.clone();
    let tick = context.config.tick;
    let mut shutdown = context.shutdown.clone();
    let partition = partition(&context.config);
    // One matcher of each partition decides; others stand by, warm.
    let mut lease = Lease::open(
        store.jetstream(),
        &format!("{}_LEASES", context.config.stream.name),
        context.config.stream.replicas,
        &partition.lease(),
        &context.config.instance,
        LEASE_TTL,
    )
    .await?;
    lease.hold().await;
    let fence = lease.fence();
    let leasing = tokio::spawn(keep_lease(lease, context.shutdown.clone()));
    // Every subject: the projection leaves out what is not its own (other
    // regions, placements' files, standing hand-offs): a consumer filtered
    // to the three subjects it folds made a cold start an order of magnitude
    // slower (docs/benchmarks.md). A projection saved for other regions is
    // rebuilt, never restored.
    let consumer = match partition.name() {
        None => context.consumer(CONSUMER),
        // `_` is in no partition or instance name: `matcher_north-m_1` and
        // `matcher_north_m-1` are two consumers (with `-` they were one).
        Some(name) => format!("{CONSUMER}_{name}_{}", context.config.instance),
    };
    let regions = match partition.regions() {
        None => "every region".to_owned(),
        Some(regions) => regions.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(","),
    };
    // The tree keeps the domain's states, so their shape is part of its
    // definition: a new shape rebuilds it, as other regions do.
    let definition = format!("{regions}; states {}", refer_eventstore::SNAPSHOT_FORMAT);
    let mut subscriber = Subscriber::open_defined(&store, &consumer, &[], definition.as_bytes()).await?;
    tracing::info!(partition = partition.name().unwrap_or("every region"), %regions, "matching");
    let core = Arc::new(Mutex::new(Core::restore(subscriber.tree(), partition.clone())));
    let checkpoint = Arc::new(std::sync::atomic::AtomicU64::new(subscriber.checkpoint()));
    let executor = Executor {
        store,
        clock: clock.clone(),
        core: core.clone(),
        lease: fence.clone(),
        failpoint: failpoint::Failpoint::from_env(),
    };
    let (decisions, queue) = mpsc::unbounded_channel();
    let executing = tokio::spawn(executor.clone().serve(queue, decisions.clone()));
    let mut feed = Feed {
        core: core.clone(),
        catching_up: true,
        decisions: decisions.clone(),
        lease: fence.clone(),
    };
    let status_core = core.clone();
    let status_lease = fence.clone();
    let position = checkpoint.clone();
    // GetStatus answers (and health says SERVING) once the backlog is folded.
    let (caught_up, ready) = tokio::sync::oneshot::channel::<()>();
    context.ready_when(async move {
        let _ = ready.await;
    });
    let task = tokio::spawn(async move {
        while let Err(err) = subscriber.catch_up(&mut feed).await {
            position.store(subscriber.checkpoint(), std::sync::atomic::Ordering::Relaxed);
            if *shutdown.borrow() {
                executing.abort();
                return;
            }
            refer_service::runtime::pause_after(&err, "matcher catching up").await;
        }
        feed.catching_up = false;
        let _ = caught_up.send(());
        let mut reported = std::time::Instant::now();
        let mut swept: Option<std::time::Instant> = None;
        let mut leading = false;
        loop {
            // Taking the lease (at start, or from a holder that died): plan
            // everything, as after a restart. Losing it: drop what is planned.
            match (leading, fence.held()) {
                (false, true) => {
                    let mut guard = core.lock().expect("core lock");
                    // Decisions of an earlier term were carried out, or
                    // refused by the fence: plan everything afresh (the
                    // same decisions derive the same keys, and land once).
                    guard.ledger = Ledger::default();
                    guard.state.capacity_changed = true;
                    guard.resume(clock.now());
                    swept = None;
                    leading = true;
                    tracing::info!("this matcher decides");
                }
                (true, false) => {
                    core.lock().expect("core lock").queue.clear();
                    leading = false;
                    tracing::warn!("this matcher stands by");
                }
                _ => {}
            }
            // Plans what the backlog left (first round), then, every tick,
            // housekeeping over every hold: referrals past their deadline
            // with no commit to notice it, settlements that failed, sites
            // that opened. (Each commit already settles the holds of the
            // needs it touched.)
            if leading {
                let mut guard = core.lock().expect("core lock");
                guard.plan_folded();
                if swept.is_none_or(|at| at.elapsed() >= tick) {
                    swept = Some(std::time::Instant::now());
                    let Core {
                        state, ledger, queue, ..
                    } = &mut *guard;
                    let now = clock.now();
                    let chores = state.housekeeping(now, ledger);
                    queue.extend(chores.into_iter().map(|a| (a, None)));
                    // No commit marks the moment a site opens, or a wait
                    // held back for the urgent ends: the timer does.
                    if state.note_openings(now) || state.waits_due(now) {
                        let matched = state.match_needs(now, ledger);
                        queue.extend(matched.into_iter().map(|a| (a, None)));
                    }
                }
                guard.send(&decisions);
            }
            // The gauges scan every need: a few times a second is enough.
            if reported.elapsed() >= REPORT_EVERY {
                core.lock().expect("core lock").report();
                reported = std::time::Instant::now();
            }
            if *shutdown.borrow() {
                executing.abort();
                break;
            }
            tokio::select! {
                _ = shutdown.changed() => continue,
                polled = subscriber.poll(&mut feed, 256, tick) => {
                    if let Err(err) = polled {
                        refer_service::runtime::pause_after(&err, "matcher").await;
                    }
                }
            }
            position.store(subscriber.checkpoint(), std::sync::atomic::Ordering::Relaxed);
        }
    });
    let service = MatcherService {
        core: status_core,
        checkpoint,
        lease: status_lease,
    };
    let server = MatcherServer::new(service).max_decoding_message_size(refer_service::server::MAX_REQUEST_BYTES);
    Ok(Started {
        routes: tonic::service::Routes::new(InterceptedService::new(server, context.authenticate(ROLES))),
        tasks: vec![task, leasing],
    })
}

#[derive(Clone)]
pub struct MatcherService {
    core: Arc<Mutex<Core>>,
    checkpoint: Arc<std::sync::atomic::AtomicU64>,
    lease: Fence,
}

#[tonic::async_trait]
impl Matcher for MatcherService {
    async fn get_status(&self, request: Request<pb::GetStatusRequest>) -> Result<Response<pb::Status>, Status> {
        caller(&request)?;
        // Counters the planner keeps as it folds: the lock is held for a copy.
        let (providers, donations, tally, (p50, timed), (p90, _), partition) = {
            let core = self.core.lock().expect("core lock");
            let state = &core.state;
            (
                state.providers.len(),
                state.donations.len(),
                state.tally().clone(),
                core.acceptance.percentile(50),
                core.acceptance.percentile(90),
                state.partition().clone(),
            )
        };
        let open_needs = tally
            .needs
            .iter()
            .filter(|(status, _)| !status.is_final())
            .map(|(_, n)| *n)
            .sum();
        let accepted_needs = tally.count(NeedStatus::Accepted);
        Ok(Response::new(pb::Status {
            checkpoint: self.checkpoint.load(std::sync::atomic::Ordering::Relaxed),
            providers: providers as u32,
            donations: donations as u32,
            #[allow(deprecated)]
            open_needs,
            unplaced_needs: open_needs - accepted_needs,
            accepted_needs,
            pending_referrals: tally.count(NeedStatus::Proposed),
            acceptance_p50_ms: p50.unwrap_or(0),
            acceptance_p90_ms: p90.unwrap_or(0),
            acceptance_timed: timed as u32,
            partition: partition.name().unwrap_or_default().to_owned(),
            regions: partition
                .regions()
                .into_iter()
                .flatten()
                .map(|r| r.as_str().to_owned())
                .collect(),
            leading: self.lease.held(),
            waitlist: tally
                .waitlist
                .into_iter()
                .map(|((kind, region), needs)| pb::WaitlistCount {
                    kind: refer_service::convert::need_kind_pb(kind),
                    region,
                    needs,
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refer_domain::ids::{OrgId, PlacementId, ProviderId};
    use refer_domain::kinds::ServiceKind;
    use refer_domain::need::NeedEvent;
    use refer_domain::provider::ProviderEvent;
    use refer_domain::sample::{self, NIGHT};
    use refer_domain::{AggregateRef, Envelope, Event};
    use refer_eventstore::Projection as _;

    fn commit(seq: u64, kind: AggregateKind, id: Uuid, event: Event) -> Recorded {
        let meta = CommandMeta {
            occurred_at: NIGHT,
            correlation_id: CorrelationId::from_u128(1),
            causation_id: None,
            idempotency_key: None,
        };
        let envelope = Envelope::new(EventId::from_u128(seq.into()), AggregateRef { kind, id }, &meta, event);
        Recorded {
            seq,
            events: vec![envelope],
        }
    }

    #[test]
    fn a_start_with_no_backlog_still_plans_what_the_last_run_left_undone() {
        // The last run folded a shelter with a bed and a need for it, wrote
        // them with its checkpoint, and stopped before proposing.
        let (decisions, _queue) = mpsc::unbounded_channel();
        let mut feed = Feed {
            core: Arc::default(),
            catching_up: true,
            decisions,
            lease: Fence::always(),
        };
        let (shelter, need) = (ProviderId::from_u128(1), NeedId::from_u128(2));
        let registered = ProviderEvent::Registered(Box::new(sample::shelter(OrgId::from_u128(1))));
        let bed = ProviderEvent::CapacitySet {
            service: ServiceKind::ShelterBed,
            declared: 1,
        };
        let request = sample::shelter_need(OrgId::from_u128(2), PlacementId::from_u128(3), None);
        let commits = [
            commit(
                1,
                AggregateKind::Provider,
                shelter.as_uuid(),
                Event::Provider(registered),
            ),
            commit(2, AggregateKind::Provider, shelter.as_uuid(), Event::Provider(bed)),
            commit(
                3,
                AggregateKind::Need,
                need.as_uuid(),
                Event::Need(NeedEvent::Requested(request)),
            ),
        ];
        for c in &commits {
            feed.apply(c);
        }
        let tree = sled::Config::new()
            .temporary(true)
            .open()
            .unwrap()
            .open_tree("m")
            .unwrap();
        let mut batch = sled::Batch::default();
        feed.persist(&mut batch);
        tree.apply_batch(batch).unwrap();

        // The new run finds nothing after the checkpoint to fold.
        let mut core = Core::restore(&tree, Partition::whole());
        core.resume(NIGHT);
        core.plan_folded();
        let proposed: Vec<NeedId> = core
            .queue
            .iter()
            .filter_map(|(decision, _)| match decision {
                Decision::Propose { need, .. } => Some(*need),
                _ => None,
            })
            .collect();
        assert_eq!(proposed, vec![need]);
    }
}
