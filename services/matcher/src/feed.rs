//! Feeds the subscriber's commits to the driver, and hands the decisions
//! they call for to the executor.

use crate::Core;
use refer_domain::ids::{EventId, NeedId};
use refer_domain::AggregateKind;
use refer_eventstore::Recorded;
use refer_matching::planner::Decision;
use refer_service::lease::Fence;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Decisions on their way to the executor, with the event that caused each.
pub(crate) type Decisions = mpsc::UnboundedSender<(Decision, Option<EventId>)>;

/// Feeds the subscriber's commits to the shared core.
pub(crate) struct Feed {
    pub(crate) core: Arc<Mutex<Core>>,
    /// Catching up on the backlog at start: fold only, plan once at the end.
    /// Live, every commit is planned at its own time, so the decisions are a
    /// function of the stream (`Planner::replay` makes the same ones).
    pub(crate) catching_up: bool,
    pub(crate) decisions: Decisions,
    /// Whether this matcher holds the lease: a standby folds every commit
    /// (its projection stays warm) but plans nothing.
    pub(crate) lease: Fence,
}

impl refer_eventstore::Projection for Feed {
    fn apply(&mut self, commit: &Recorded) {
        let mut core = self.core.lock().expect("core lock");
        if self.catching_up || !self.lease.held() {
            core.fold_commit(commit);
        } else {
            core.fold_commit(commit);
            core.plan_folded();
            // Carried out at once, before the batch's checkpoint is on disk:
            // after a crash the same decisions are planned again with the
            // same derived keys, and land once.
            core.send(&self.decisions);
        }
    }

    fn persist(&mut self, batch: &mut sled::Batch) {
        let mut core = self.core.lock().expect("core lock");
        for (kind, id) in core.take_changed() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use refer_domain::ids::CorrelationId;
    use refer_domain::ids::{OrgId, PlacementId, ProviderId};
    use refer_domain::kinds::ServiceKind;
    use refer_domain::need::NeedEvent;
    use refer_domain::provider::ProviderEvent;
    use refer_domain::sample::{self, NIGHT};
    use refer_domain::CommandMeta;
    use refer_domain::{AggregateRef, Envelope, Event};
    use refer_eventstore::Projection as _;
    use refer_matching::planner::Partition;
    use uuid::Uuid;

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
            .take_planned()
            .iter()
            .filter_map(|(decision, _)| match decision {
                Decision::Propose { need, .. } => Some(*need),
                _ => None,
            })
            .collect();
        assert_eq!(proposed, vec![need]);
    }
}
