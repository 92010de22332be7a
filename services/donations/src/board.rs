//! The donations board: which business owns which donation, and when units
//! were used (never by whom), built from the stream.

use refer_domain::donation::DonationEvent;
use refer_domain::ids::{DonationId, HoldId, OrgId};
use refer_domain::{Event, Timestamp};
use refer_eventstore::{Projection, Recorded};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Units per pending hold (to know how many a confirmation uses).
    pub holds: BTreeMap<HoldId, u32>,
    /// When units were used, and how many.
    pub usage: Vec<(Timestamp, u32)>,
}

#[derive(Default)]
pub struct State {
    pub orgs: BTreeMap<OrgId, BTreeSet<DonationId>>,
    pub owner: BTreeMap<DonationId, OrgId>,
    pub ledgers: BTreeMap<DonationId, Ledger>,
}

/// A change to one donation, at a stream position.
#[derive(Clone, Copy, Debug)]
pub struct Change {
    pub donation: DonationId,
    pub org: OrgId,
    pub position: u64,
}

#[derive(Clone)]
pub struct Board {
    pub state: Arc<RwLock<State>>,
    pub changes: broadcast::Sender<Change>,
}

impl Board {
    pub fn restore(tree: &sled::Tree) -> Self {
        let mut state = State::default();
        for (key, value) in tree.iter().flatten() {
            if key.first() == Some(&b'd') {
                if let (Ok(id), Ok((org, ledger))) = (
                    postcard::from_bytes::<DonationId>(&key[1..]),
                    postcard::from_bytes::<(OrgId, Ledger)>(&value),
                ) {
                    state.orgs.entry(org).or_default().insert(id);
                    state.owner.insert(id, org);
                    state.ledgers.insert(id, ledger);
                }
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
            announce: Vec::new(),
        }
    }
}

pub struct BoardProjection {
    board: Board,
    dirty: BTreeSet<DonationId>,
    announce: Vec<Change>,
}

impl Projection for BoardProjection {
    fn apply(&mut self, commit: &Recorded) {
        let mut state = self.board.state.write().expect("board lock");
        for envelope in &commit.events {
            let Event::Donation(event) = &envelope.event else {
                continue;
            };
            let donation = DonationId::from_uuid(envelope.aggregate.id);
            if let DonationEvent::Registered(offer) = event {
                state.orgs.entry(offer.org).or_default().insert(donation);
                state.owner.insert(donation, offer.org);
            }
            let ledger = state.ledgers.entry(donation).or_default();
            match event {
                DonationEvent::HoldPlaced { hold, units, .. } => {
                    ledger.holds.insert(*hold, *units);
                }
                DonationEvent::HoldReleased { hold, .. } => {
                    ledger.holds.remove(hold);
                }
                DonationEvent::HoldConfirmed { hold } => {
                    if let Some(units) = ledger.holds.remove(hold) {
                        ledger.usage.push((envelope.occurred_at, units));
                    }
                }
                DonationEvent::Registered(_) | DonationEvent::Withdrawn => {}
            }
            self.dirty.insert(donation);
            if let Some(org) = state.owner.get(&donation) {
                self.announce.push(Change {
                    donation,
                    org: *org,
                    position: commit.seq,
                });
            }
        }
    }

    fn persist(&mut self, batch: &mut sled::Batch) {
        let state = self.board.state.read().expect("board lock");
        for donation in std::mem::take(&mut self.dirty) {
            if let (Some(org), Some(ledger)) = (state.owner.get(&donation), state.ledgers.get(&donation)) {
                let mut key = vec![b'd'];
                key.extend(postcard::to_stdvec(&donation).expect("ids encode"));
                batch.insert(key, postcard::to_stdvec(&(org, ledger)).expect("ledger encodes"));
            }
        }
        for change in self.announce.drain(..) {
            let _ = self.board.changes.send(change);
        }
    }
}
