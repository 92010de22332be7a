//! Carries out each decision through the event store: its commands, its
//! idempotency keys, the lease's fence before every commit.

use crate::failpoint;
use crate::lanes::clone_error;
use crate::Core;
use refer_domain::decision::{
    keys, Answer, AnswerAndSettle, AtProvider, AtomicDecision, Expire, OneCommand, ProposeAtDonation,
    ProposeAtProviders, Touched,
};
use refer_domain::donation::{Donation, DonationCommand};
use refer_domain::ids::{CorrelationId, EventId, NeedId};
use refer_domain::need::{Need, NeedCommand, Proposal, Target};
use refer_domain::provider::{HoldRequest, Provider, ProviderCommand, ReleaseReason};
use refer_domain::{AggregateKind, AggregateRef, CommandMeta, IdempotencyKey};
use refer_eventstore::{Committed, EventStore, StoreError};
use refer_matching::planner::Decision;
use refer_service::lease::Fence;
use refer_service::SharedClock;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Carries out decisions through the event store, with idempotency keys
/// derived from the decision, so doing one twice applies it once.
#[derive(Clone)]
pub(crate) struct Executor {
    pub(crate) store: EventStore,
    pub(crate) clock: SharedClock,
    pub(crate) core: Arc<Mutex<Core>>,
    /// Checked before every commit of every decision, retries included
    /// (`Executor::fence`): a matcher that lost the lease (or was paused
    /// past it) carries out nothing more.
    pub(crate) lease: Fence,
    pub(crate) failpoint: failpoint::Failpoint,
    /// Decisions that failed in a row (reset by one carried out): what
    /// spaces out planning again while the bus keeps refusing.
    pub(crate) failures: Arc<std::sync::atomic::AtomicU32>,
}

impl Executor {
    pub(crate) fn meta(&self, need: Option<NeedId>, cause: Option<EventId>) -> CommandMeta {
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
    pub(crate) fn fence(&self, proposals: usize) -> impl Fn(u32) -> Result<(), StoreError> + Sync + '_ {
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
    pub(crate) async fn decide<D: AtomicDecision>(
        &self,
        decision: &D,
        proposals: usize,
        meta: &(dyn Fn(&AggregateRef) -> CommandMeta + Sync),
    ) -> Result<Committed, StoreError> {
        let now = self.clock.now();
        self.store.decide(decision, now, meta, &self.fence(proposals)).await
    }

    /// One command on one aggregate (a settlement, a waitlisting), fenced.
    pub(crate) async fn one<A>(
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

    pub(crate) async fn settle(
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
    pub(crate) async fn propose_at_providers(
        &self,
        proposals: &[(Decision, Option<EventId>)],
    ) -> Vec<Result<(), StoreError>> {
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

    pub(crate) async fn run(&self, decision: &Decision, cause: Option<EventId>) -> Result<(), StoreError> {
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
}
