//! Need status as intake sees it, built from the need events on the stream
//! (rebuildable). Keyed by need, with the placement each belongs to, the
//! deadline of a pending proposal and what a waitlisted need waits for.

use refer_domain::geo::RegionCode;
use refer_domain::ids::{NeedId, PlacementId};
use refer_domain::kinds::NeedKind;
use refer_domain::need::{NeedEvent, NeedStatus, Target};
use refer_domain::{Event, Timestamp};
use refer_eventstore::Recorded;
use refer_service::read_model::{key, Changes, Model, Undecodable};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    pub position: u64,
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

#[derive(Default)]
pub struct Needs {
    pub needs: BTreeMap<NeedId, NeedView>,
}

impl Model for Needs {
    type Change = NeedView;

    fn apply(&mut self, commit: &Recorded, out: &mut Changes<NeedView>) {
        for envelope in &commit.events {
            let Event::Need(event) = &envelope.event else { continue };
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
                        position: commit.seq,
                    },
                );
            }
            let Some(view) = self.needs.get_mut(&need) else {
                continue;
            };
            view.position = commit.seq;
            view.deadline = None;
            view.status = match event {
                NeedEvent::Requested(_) => NeedStatus::Requested,
                NeedEvent::Proposed(p) => {
                    view.deadline = Some(p.deadline);
                    NeedStatus::Proposed
                }
                NeedEvent::Accepted(p) => {
                    view.placed_with = Some(p.target);
                    NeedStatus::Accepted
                }
                NeedEvent::Declined { .. } => NeedStatus::Declined,
                NeedEvent::Expired(_) => NeedStatus::Expired,
                NeedEvent::Waitlisted => NeedStatus::Waitlisted,
                NeedEvent::Cancelled { .. } => NeedStatus::Cancelled,
                NeedEvent::Fulfilled => NeedStatus::Fulfilled,
            };
            out.write(key(b'v', &need), view);
            out.announce(view.clone());
        }
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), Undecodable> {
        if key.first() != Some(&b'v') {
            return Err(Undecodable("an entry of no known kind".into()));
        }
        let view: NeedView = postcard::from_bytes(value)?;
        self.needs.insert(view.need, view);
        Ok(())
    }
}
