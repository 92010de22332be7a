//! Intake's files, built from the stream (rebuildable: deleting intake's
//! data directory loses nothing). Each placement's file (its needs, group,
//! sealed case reference, notes and erasures, folded with the domain's own
//! `evolve`), and each need's status as intake sees it: the placement it
//! belongs to, the deadline of a pending proposal, what a waitlisted need
//! waits for, the sealed hand-off once accepted, when it became final.

use refer_domain::geo::RegionCode;
use refer_domain::ids::{NeedId, OrgId, PlacementId};
use refer_domain::kinds::NeedKind;
use refer_domain::need::{DeclineReason, NeedEvent, NeedStatus, Target};
use refer_domain::placement::{NeedClock, Placement};
use refer_domain::sealed::Sealed;
use refer_domain::{Aggregate, Event, Timestamp};
use refer_eventstore::Recorded;
use refer_service::read_model::{key, Changes, Model, Undecodable};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedView {
    pub need: NeedId,
    pub placement: PlacementId,
    pub kind: NeedKind,
    pub status: NeedStatus,
    /// Where the need was placed, once accepted.
    pub placed_with: Option<Target>,
    /// While proposed: when the referral's answer is due.
    pub deadline: Option<Timestamp>,
    /// The region the person is in: where capacity is looked for.
    pub region: RegionCode,
    /// The accepting provider's hand-off, sealed for the agency.
    pub handoff: Option<Sealed>,
    /// When the need became final (cancelled or fulfilled).
    pub final_at: Option<Timestamp>,
    pub position: u64,
    /// While waitlisted and held back for the urgent: when its wait ends.
    pub held_until: Option<Timestamp>,
    /// What happened to it, oldest first: its latest [`TIMELINE_STEPS`]
    /// changes of status (a decline with its coded reason, never by whom).
    pub timeline: Vec<Step>,
}

/// The most steps a need's timeline keeps (a night re-matches a need a
/// few times; this bounds a need that is declined over and over).
pub const TIMELINE_STEPS: usize = 50;

/// One change of a need's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub at: Timestamp,
    pub status: NeedStatus,
    pub declined: Option<DeclineReason>,
}

impl NeedView {
    /// Notes a change of status on the timeline; a repeat of the same
    /// status (a waitlisted need held back) is not a new step.
    pub fn record(&mut self, at: Timestamp, event: &NeedEvent) {
        let Some(status) = event.status_after() else { return };
        let declined = match event {
            NeedEvent::Declined { reason, .. } => Some(*reason),
            _ => None,
        };
        if declined.is_none() && self.timeline.last().is_some_and(|s| s.status == status) {
            return;
        }
        if self.timeline.len() == TIMELINE_STEPS {
            self.timeline.remove(0);
        }
        self.timeline.push(Step { at, status, declined });
    }
}

impl refer_service::watch::Positioned for NeedView {
    type Key = NeedId;
    fn key(&self) -> NeedId {
        self.need
    }
    fn position(&self) -> u64 {
        self.position
    }
}

/// Every placement's file, every need's view, and each agency's placements
/// by request time (for listing newest first).
#[derive(Default)]
pub struct Files {
    pub needs: BTreeMap<NeedId, NeedView>,
    pub placements: BTreeMap<PlacementId, Placement>,
    pub by_agency: BTreeMap<OrgId, BTreeSet<(Timestamp, PlacementId)>>,
}

impl Files {
    /// The placement's file, if the caller's `agency` may see it.
    pub fn placement(&self, id: PlacementId) -> Option<&Placement> {
        self.placements.get(&id).filter(|p| p.file.is_some())
    }

    /// What the sweeper needs to know of each need of `placement`.
    pub fn clocks(&self, placement: &Placement) -> Vec<NeedClock> {
        let file = placement.file.as_ref();
        file.into_iter()
            .flat_map(|f| &f.needs)
            .filter_map(|(need, _)| self.needs.get(need))
            .map(|v| NeedClock {
                need: v.need,
                final_at: v.final_at,
                handed_off: v.handoff.is_some(),
            })
            .collect()
    }

    fn index(&mut self, id: PlacementId) {
        if let Some(file) = self.placements.get(&id).and_then(|p| p.file.as_ref()) {
            self.by_agency
                .entry(file.agency)
                .or_default()
                .insert((file.requested_at, id));
        }
    }
}

impl Model for Files {
    type Change = NeedView;

    fn apply(&mut self, commit: &Recorded, out: &mut Changes<NeedView>) {
        for envelope in &commit.events {
            let event = match &envelope.event {
                Event::Need(event) => event,
                Event::Placement(event) => {
                    let id = PlacementId::from_uuid(envelope.aggregate.id);
                    let placement = self.placements.remove(&id).unwrap_or_default().evolve(event);
                    out.write(key(b'p', &id), &placement);
                    self.placements.insert(id, placement);
                    self.index(id);
                    continue;
                }
                _ => continue,
            };
            let need = NeedId::from_uuid(envelope.aggregate.id);
            if let NeedEvent::Requested(request) = event {
                self.needs.insert(
                    need,
                    NeedView {
                        need,
                        placement: request.placement,
                        kind: request.spec.kind,
                        status: NeedStatus::Requested,
                        placed_with: None,
                        deadline: None,
                        region: request.spec.constraints.origin.region.clone(),
                        handoff: None,
                        final_at: None,
                        position: commit.seq,
                        held_until: None,
                        timeline: Vec::new(),
                    },
                );
            }
            let Some(view) = self.needs.get_mut(&need) else {
                continue;
            };
            view.position = commit.seq;
            view.record(envelope.occurred_at, event);
            if let NeedEvent::HandedOff(handoff) = event {
                view.handoff = Some(handoff.clone());
            }
            if let Some(status) = event.status_after() {
                view.status = status;
                view.deadline = match event {
                    NeedEvent::Proposed(p) => Some(p.deadline),
                    _ => None,
                };
                view.held_until = match event {
                    NeedEvent::HeldBack { until } => Some(*until),
                    _ => None,
                };
                if let NeedEvent::Accepted(p) = event {
                    view.placed_with = Some(p.target);
                }
                if status.is_final() {
                    view.final_at = Some(envelope.occurred_at);
                }
            }
            out.write(key(b'v', &need), view);
            out.announce(view.clone());
        }
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), Undecodable> {
        match key.first() {
            Some(b'v') => {
                let view: NeedView = postcard::from_bytes(value)?;
                self.needs.insert(view.need, view);
            }
            Some(b'p') => {
                let id: PlacementId = postcard::from_bytes(&key[1..])?;
                self.placements.insert(id, postcard::from_bytes(value)?);
                self.index(id);
            }
            _ => return Err(Undecodable("an entry of no known kind".into())),
        }
        Ok(())
    }
}
