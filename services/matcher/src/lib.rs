//! The matcher service: a durable consumer of every event that keeps a
//! projection of providers, donations and needs in memory (checkpointed in
//! sled), and turns it into decisions: a referral with a hold and a deadline,
//! expiry, re-matching after a decline or expiry (skipping whoever declined),
//! the waitlist, and settling holds when needs are answered or cancelled.
#![forbid(unsafe_code)]

use refer_domain::donation::{Donation, DonationCommand};
use refer_domain::ids::{CorrelationId, EventId, NeedId};
use refer_domain::need::{Need, NeedCommand, NeedStatus, Proposal, Target};
use refer_domain::provider::{Provider, ProviderCommand, ReleaseReason};
use refer_domain::{AggregateKind, CommandMeta, IdempotencyKey, Timestamp};
use refer_eventstore::{EventStore, Recorded, StoreError, Subscriber};
use refer_matching::planner::{Decision, Ledger, Projection as State};
use refer_proto::matcher::v1 as pb;
use refer_proto::matcher::v1::matcher_server::{Matcher, MatcherServer};
use refer_service::{Role, SharedClock, TokenBook};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
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
}

impl Core {
    /// Restores the projection from the subscriber's tree. An entry that
    /// does not decode is logged and counted, never skipped silently: the
    /// matcher would plan without that aggregate.
    pub fn restore(tree: &sled::Tree) -> Self {
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
            state: State::restored(providers, donations, needs),
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
    pub fn fold(&mut self, commit: &Recorded) {
        for envelope in &commit.events {
            let kind = self.state.apply(commit.seq, envelope.aggregate.id, &envelope.event);
            self.dirty.insert((kind, envelope.aggregate.id));
        }
        self.state.settle_touched(&mut self.ledger);
        if let Some(last) = commit.events.last() {
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
}

impl refer_eventstore::Projection for Feed {
    fn apply(&mut self, commit: &Recorded) {
        let mut core = self.core.lock().expect("core lock");
        if self.catching_up {
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
}

fn key(text: String) -> Option<IdempotencyKey> {
    Some(IdempotencyKey::new(text).expect("derived keys are valid"))
}

impl Executor {
    fn meta(&self, need: Option<NeedId>, cause: Option<EventId>, key: Option<IdempotencyKey>) -> CommandMeta {
        CommandMeta {
            occurred_at: self.clock.now(),
            // All events about one need share its correlation id.
            correlation_id: need.map_or(CorrelationId::from_u128(0), |n| CorrelationId::from_uuid(n.as_uuid())),
            causation_id: cause,
            idempotency_key: key,
        }
    }

    /// Places a proposal's hold and returns when it expires (the proposal's
    /// deadline). `PlaceHolds` skips a hold already placed (this decision,
    /// carried out before a crash or by a batch whose answer was lost), so a
    /// repeat proceeds to the proposal, with the deadline of the hold placed.
    async fn place_hold(&self, decision: &Decision, meta: &CommandMeta) -> Result<Timestamp, StoreError> {
        let Decision::Propose {
            need,
            target,
            service,
            hold,
            units,
            expires_at,
        } = *decision
        else {
            unreachable!("only a proposal places a hold")
        };
        match (target, service) {
            (Target::Provider(p), Some(service)) => {
                let command = ProviderCommand::PlaceHolds(vec![refer_domain::provider::HoldRequest {
                    hold,
                    need,
                    service,
                    units,
                    expires_at,
                }]);
                let done = self
                    .store
                    .execute::<Provider>(p.as_uuid(), &command, meta, None)
                    .await?;
                Ok(done.state.holds.get(&hold).map_or(expires_at, |h| h.expires_at))
            }
            (Target::Provider(_), None) => Err(StoreError::Domain(refer_domain::DomainError::invalid(
                "service",
                "a hold at a provider names its service",
            ))),
            (Target::Donation(d), _) => {
                let command = DonationCommand::PlaceHold {
                    hold,
                    need,
                    units,
                    expires_at,
                };
                let done = self
                    .store
                    .execute::<Donation>(d.as_uuid(), &command, meta, None)
                    .await?;
                Ok(done.state.holds.get(&hold).map_or(expires_at, |h| h.expires_at))
            }
        }
    }

    async fn settle(
        &self,
        target: Target,
        hold: refer_domain::ids::HoldId,
        release: Option<ReleaseReason>,
        cause: Option<EventId>,
    ) -> Result<(), StoreError> {
        let meta = self.meta(None, cause, key(format!("settle-{hold}")));
        match (target, release) {
            (Target::Provider(p), None) => self
                .store
                .execute::<Provider>(p.as_uuid(), &ProviderCommand::ConfirmHold { hold }, &meta, None)
                .await
                .map(|_| ()),
            (Target::Provider(p), Some(reason)) => self
                .store
                .execute::<Provider>(p.as_uuid(), &ProviderCommand::ReleaseHold { hold, reason }, &meta, None)
                .await
                .map(|_| ()),
            (Target::Donation(d), None) => self
                .store
                .execute::<Donation>(d.as_uuid(), &DonationCommand::ConfirmHold { hold }, &meta, None)
                .await
                .map(|_| ()),
            (Target::Donation(d), Some(reason)) => self
                .store
                .execute::<Donation>(d.as_uuid(), &DonationCommand::ReleaseHold { hold, reason }, &meta, None)
                .await
                .map(|_| ()),
        }
    }

    async fn propose(
        &self,
        need: NeedId,
        target: Target,
        hold: refer_domain::ids::HoldId,
        deadline: Timestamp,
        cause: Option<EventId>,
    ) -> Result<(), StoreError> {
        let meta = self.meta(Some(need), cause, key(format!("propose-{hold}")));
        let proposal = Proposal { target, hold, deadline };
        if let Err(err) = self
            .store
            .execute::<Need>(need.as_uuid(), &NeedCommand::Propose(proposal), &meta, None)
            .await
        {
            // The need moved on (cancelled, say): give the units back.
            if matches!(err, StoreError::Domain(_)) {
                self.settle(target, hold, Some(ReleaseReason::Cancelled), cause).await?;
            }
            return Err(err);
        }
        if let Target::Donation(_) = target {
            self.accept_donation(need, target, hold, cause).await?;
        }
        Ok(())
    }

    async fn accept_donation(
        &self,
        need: NeedId,
        target: Target,
        hold: refer_domain::ids::HoldId,
        cause: Option<EventId>,
    ) -> Result<(), StoreError> {
        let meta = self.meta(Some(need), cause, key(format!("accept-{hold}")));
        self.store
            .execute::<Need>(need.as_uuid(), &NeedCommand::Accept { by: target }, &meta, None)
            .await?;
        self.settle(target, hold, None, cause).await
    }

    async fn run(&self, decision: &Decision, cause: Option<EventId>) -> Result<(), StoreError> {
        match *decision {
            Decision::Propose { need, target, hold, .. } => {
                let meta = self.meta(Some(need), cause, key(format!("hold-{hold}")));
                let deadline = self.place_hold(decision, &meta).await?;
                self.propose(need, target, hold, deadline, cause).await
            }
            Decision::CompleteProposal {
                need,
                target,
                hold,
                deadline,
            } => {
                if deadline > self.clock.now() {
                    self.propose(need, target, hold, deadline, cause).await
                } else {
                    self.settle(target, hold, Some(ReleaseReason::Expired), cause).await
                }
            }
            Decision::AcceptDonation { need, target, hold } => self.accept_donation(need, target, hold, cause).await,
            Decision::Waitlist { need, attempt } => {
                let meta = self.meta(Some(need), cause, key(format!("waitlist-{attempt}")));
                self.store
                    .execute::<Need>(need.as_uuid(), &NeedCommand::Waitlist, &meta, None)
                    .await
                    .map(|_| ())
            }
            Decision::Expire { need, target, hold } => {
                let meta = self.meta(Some(need), cause, key(format!("expire-{hold}")));
                self.store
                    .execute::<Need>(need.as_uuid(), &NeedCommand::Expire, &meta, None)
                    .await?;
                self.settle(target, hold, Some(ReleaseReason::Expired), cause).await
            }
            Decision::Confirm { target, hold } => self.settle(target, hold, None, cause).await,
            Decision::Release { target, hold, reason } => self.settle(target, hold, Some(reason), cause).await,
        }
    }

    /// Carries out one decision. One the aggregates refuse (the projection
    /// was behind) or that met an unavailable bus is forgotten, and the
    /// needs it concerned are matched again right away (not only when
    /// another event arrives).
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
        for again in state.match_needs(self.clock.now(), ledger) {
            let _ = decisions.send((again, None));
        }
    }

    /// Proposals of needs to one provider, waiting together in its lane:
    /// their holds go in one commit (`PlaceHolds`), then the needs are
    /// proposed together. If the commit is refused (the projection was
    /// behind), each is carried out on its own, as usual.
    async fn propose_together(&self, batch: Vec<(Decision, Option<EventId>)>, decisions: &Decisions) {
        let started = std::time::Instant::now();
        let mut provider = None;
        let mut holds = Vec::new();
        for (decision, _) in &batch {
            if let Decision::Propose {
                need,
                target: Target::Provider(p),
                service: Some(service),
                hold,
                units,
                expires_at,
            } = *decision
            {
                provider = Some(p);
                holds.push(refer_domain::provider::HoldRequest {
                    hold,
                    need,
                    service,
                    units,
                    expires_at,
                });
            }
        }
        let placed = match provider.filter(|_| holds.len() == batch.len()) {
            Some(p) => {
                // Idempotent by content (holds already placed are skipped), so no key.
                let meta = self.meta(None, batch[0].1, None);
                let command = ProviderCommand::PlaceHolds(holds);
                self.store
                    .execute::<Provider>(p.as_uuid(), &command, &meta, None)
                    .await
                    .ok()
            }
            None => None,
        };
        let Some(placed) = placed else {
            for (decision, cause) in batch {
                self.carry_out(decision, cause, decisions).await;
            }
            return;
        };
        let placed = &placed.state;
        let proposals = batch.into_iter().map(|(decision, cause)| async move {
            let outcome = match decision {
                Decision::Propose {
                    need,
                    target,
                    hold,
                    expires_at,
                    ..
                } => {
                    let deadline = placed.holds.get(&hold).map_or(expires_at, |h| h.expires_at);
                    self.propose(need, target, hold, deadline, cause).await
                }
                _ => unreachable!("only proposals are batched"),
            };
            self.done(decision, outcome, started, decisions);
        });
        futures::future::join_all(proposals).await;
    }

    /// Carries out decisions as they come, up to `DECISIONS_AT_ONCE` lanes
    /// at once: decisions on one aggregate (a provider's holds, say) run in
    /// its lane, in the order planned, so they never race each other for
    /// the aggregate's next version, and proposals waiting together in a
    /// provider's lane share one commit for their holds. Lanes run together,
    /// and their appends share the server's fsyncs. Planning goes on
    /// meanwhile; `Ledger` keeps a need from being planned twice.
    async fn serve(self, mut queue: mpsc::UnboundedReceiver<(Decision, Option<EventId>)>, decisions: Decisions) {
        let lanes: Arc<Mutex<BTreeMap<Uuid, Lane>>> = Arc::default();
        let permits = Arc::new(tokio::sync::Semaphore::new(DECISIONS_AT_ONCE));
        while let Some((decision, cause)) = queue.recv().await {
            let lane = decision.lane();
            {
                let mut lanes = lanes.lock().expect("lanes lock");
                if let Some(waiting) = lanes.get_mut(&lane) {
                    waiting.push_back((decision, cause)); // its lane's task takes it
                    continue;
                }
                lanes.insert(lane, Lane::from([(decision, cause)]));
            }
            let (executor, lanes, permits, decisions) =
                (self.clone(), lanes.clone(), permits.clone(), decisions.clone());
            tokio::spawn(async move {
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
                        executor.carry_out(decision, cause, &decisions).await;
                    } else {
                        executor.propose_together(batch, &decisions).await;
                    }
                }
            });
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

/// How many decisions the executor carries out at once.
const DECISIONS_AT_ONCE: usize = 64;
/// How often the workload gauges are refreshed.
const REPORT_EVERY: Duration = Duration::from_millis(250);

/// Starts the matcher: restores the projection, keeps it current, carries
/// out decisions, and runs housekeeping (expiry) every `tick`.
pub async fn start(
    store: EventStore,
    tokens: TokenBook,
    clock: SharedClock,
    mut shutdown: watch::Receiver<bool>,
    tick: Duration,
) -> anyhow::Result<(MatcherServer<MatcherService>, tokio::task::JoinHandle<()>)> {
    let mut subscriber = Subscriber::open(&store, CONSUMER, None).await?;
    let core = Arc::new(Mutex::new(Core::restore(subscriber.tree())));
    let checkpoint = Arc::new(std::sync::atomic::AtomicU64::new(subscriber.checkpoint()));
    let executor = Executor {
        store,
        clock: clock.clone(),
        core: core.clone(),
    };
    let (decisions, queue) = mpsc::unbounded_channel();
    let executing = tokio::spawn(executor.clone().serve(queue, decisions.clone()));
    let mut feed = Feed {
        core: core.clone(),
        catching_up: true,
        decisions: decisions.clone(),
    };
    let status_core = core.clone();
    let position = checkpoint.clone();
    let task = tokio::spawn(async move {
        while let Err(err) = subscriber.catch_up(&mut feed).await {
            tracing::warn!(error = %err, "matcher catching up paused; retrying");
            position.store(subscriber.checkpoint(), std::sync::atomic::Ordering::Relaxed);
            if *shutdown.borrow() {
                executing.abort();
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        feed.catching_up = false;
        core.lock().expect("core lock").resume(clock.now());
        let mut reported = std::time::Instant::now();
        let mut swept: Option<std::time::Instant> = None;
        loop {
            // Plans what the backlog left (first round), then, every tick,
            // housekeeping over every hold: referrals past their deadline
            // with no commit to notice it, settlements that failed, sites
            // that opened. (Each commit already settles the holds of the
            // needs it touched.)
            {
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
                    // No commit marks the moment a site opens: the timer does.
                    if state.note_openings(now) {
                        let matched = state.match_needs(now, ledger);
                        queue.extend(matched.into_iter().map(|a| (a, None)));
                    }
                }
                guard.send(&decisions);
                // The gauges scan every need: a few times a second is enough.
                if reported.elapsed() >= REPORT_EVERY {
                    guard.report();
                    reported = std::time::Instant::now();
                }
            }
            if *shutdown.borrow() {
                executing.abort();
                break;
            }
            tokio::select! {
                _ = shutdown.changed() => continue,
                polled = subscriber.poll(&mut feed, 256, tick) => {
                    if let Err(err) = polled {
                        tracing::warn!(error = %err, "matcher paused; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            position.store(subscriber.checkpoint(), std::sync::atomic::Ordering::Relaxed);
        }
    });
    let service = MatcherService {
        tokens,
        core: status_core,
        checkpoint,
    };
    Ok((
        MatcherServer::new(service).max_decoding_message_size(refer_service::server::MAX_REQUEST_BYTES),
        task,
    ))
}

#[derive(Clone)]
pub struct MatcherService {
    tokens: TokenBook,
    core: Arc<Mutex<Core>>,
    checkpoint: Arc<std::sync::atomic::AtomicU64>,
}

#[tonic::async_trait]
impl Matcher for MatcherService {
    async fn get_status(&self, request: Request<pb::GetStatusRequest>) -> Result<Response<pb::Status>, Status> {
        self.tokens.authenticate(request.metadata())?.require(&[Role::Admin])?;
        // Counters the planner keeps as it folds: the lock is held for a copy.
        let (providers, donations, tally) = {
            let core = self.core.lock().expect("core lock");
            let state = &core.state;
            (state.providers.len(), state.donations.len(), state.tally().clone())
        };
        let open_needs = tally
            .needs
            .iter()
            .filter(|(status, _)| !status.is_final())
            .map(|(_, n)| *n)
            .sum();
        Ok(Response::new(pb::Status {
            checkpoint: self.checkpoint.load(std::sync::atomic::Ordering::Relaxed),
            providers: providers as u32,
            donations: donations as u32,
            open_needs,
            pending_referrals: tally.count(NeedStatus::Proposed),
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
        let mut core = Core::restore(&tree);
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
