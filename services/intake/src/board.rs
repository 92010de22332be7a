//! Need status as intake sees it, built from the need events on the stream
//! (rebuildable). Keyed by need, with the placement each belongs to.

use refer_domain::ids::{NeedId, PlacementId};
use refer_domain::kinds::NeedKind;
use refer_domain::need::{NeedEvent, NeedStatus, Target};
use refer_domain::Event;
use refer_eventstore::{Projection, Recorded};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedView {
    pub need: NeedId,
    pub placement: PlacementId,
    pub kind: NeedKind,
    pub status: NeedStatus,
    /// Where the need was placed, once accepted.
    pub placed_with: Option<Target>,
    pub position: u64,
}

impl refer_service::watch::Positioned for NeedView {
    fn position(&self) -> u64 {
        self.position
    }
}

#[derive(Default)]
pub struct State {
    pub needs: BTreeMap<NeedId, NeedView>,
}

#[derive(Clone)]
pub struct Board {
    pub state: Arc<RwLock<State>>,
    pub changes: broadcast::Sender<NeedView>,
}

impl Board {
    pub fn restore(tree: &sled::Tree) -> Self {
        let mut state = State::default();
        for (_, value) in tree.scan_prefix(b"n").flatten() {
            if let Ok(view) = postcard::from_bytes::<NeedView>(&value) {
                state.needs.insert(view.need, view);
            }
        }
        let (changes, _) = broadcast::channel(1024);
        Self {
            state: Arc::new(RwLock::new(state)),
            changes,
        }
    }

    pub fn projection(&self) -> BoardProjection {
        BoardProjection {
            board: self.clone(),
            dirty: BTreeSet::new(),
        }
    }
}

pub struct BoardProjection {
    board: Board,
    dirty: BTreeSet<NeedId>,
}

impl Projection for BoardProjection {
    fn apply(&mut self, commit: &Recorded) {
        let mut state = self.board.state.write().expect("board lock");
        for envelope in &commit.events {
            let Event::Need(event) = &envelope.event else { continue };
            let need = NeedId::from_uuid(envelope.aggregate.id);
            if let NeedEvent::Requested(request) = event {
                state.needs.insert(
                    need,
                    NeedView {
                        need,
                        placement: request.placement,
                        kind: request.spec.kind,
                        status: NeedStatus::Requested,
                        placed_with: None,
                        position: commit.seq,
                    },
                );
            }
            let Some(view) = state.needs.get_mut(&need) else {
                continue;
            };
            view.position = commit.seq;
            view.status = match event {
                NeedEvent::Requested(_) => NeedStatus::Requested,
                NeedEvent::Proposed(_) => NeedStatus::Proposed,
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
            self.dirty.insert(need);
        }
    }

    fn persist(&mut self, batch: &mut sled::Batch) {
        let state = self.board.state.read().expect("board lock");
        for need in std::mem::take(&mut self.dirty) {
            if let Some(view) = state.needs.get(&need) {
                let mut key = vec![b'n'];
                key.extend_from_slice(need.as_uuid().as_bytes());
                batch.insert(key, postcard::to_stdvec(view).expect("views encode"));
                let _ = self.board.changes.send(view.clone());
            }
        }
    }
}
