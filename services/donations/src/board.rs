//! The donations board: every donation's state, who owns it, and when its
//! units were used (never by whom), folded from the stream.

use refer_domain::aggregate::Aggregate;
use refer_domain::donation::{Donation, DonationEvent};
use refer_domain::ids::{DonationId, HoldId, OrgId};
use refer_domain::{Event, Timestamp};
use refer_eventstore::Recorded;
use refer_service::read_model::{key, Changes, Model, Undecodable};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One donation as its business sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub donation: DonationId,
    pub org: OrgId,
    pub state: Donation,
    /// Units per pending hold (to know how many a confirmation uses).
    pub holds: BTreeMap<HoldId, u32>,
    /// When units were used, and how many.
    pub usage: Vec<(Timestamp, u32)>,
    /// Stream position of the latest change (the donation's version).
    pub position: u64,
}

impl refer_service::watch::Positioned for Entry {
    type Key = DonationId;
    fn key(&self) -> DonationId {
        self.donation
    }
    fn position(&self) -> u64 {
        self.position
    }
}

#[derive(Default)]
pub struct Donations {
    pub entries: BTreeMap<DonationId, Entry>,
    pub orgs: BTreeMap<OrgId, BTreeSet<DonationId>>,
}

impl Donations {
    /// The donations of the organisations `acts_for` admits, changed after
    /// `after`, oldest change first.
    pub fn changed_after(&self, acts_for: impl Fn(OrgId) -> bool, after: u64) -> Vec<Entry> {
        let mut out: Vec<Entry> = self
            .orgs
            .iter()
            .filter(|(org, _)| acts_for(**org))
            .flat_map(|(_, ids)| ids.iter().filter_map(|id| self.entries.get(id)))
            .filter(|e| e.position > after)
            .cloned()
            .collect();
        out.sort_by_key(|e| (e.position, e.donation));
        out
    }
}

impl Model for Donations {
    type Change = Entry;

    fn apply(&mut self, commit: &Recorded, out: &mut Changes<Entry>) {
        for envelope in &commit.events {
            let Event::Donation(event) = &envelope.event else {
                continue;
            };
            let donation = DonationId::from_uuid(envelope.aggregate.id);
            if let Some(offer) = event.offer() {
                self.orgs.entry(offer.org).or_default().insert(donation);
                self.entries.entry(donation).or_insert_with(|| Entry {
                    donation,
                    org: offer.org,
                    state: Donation::default(),
                    holds: BTreeMap::new(),
                    usage: Vec::new(),
                    position: commit.seq,
                });
            }
            let Some(entry) = self.entries.get_mut(&donation) else {
                continue;
            };
            entry.state = std::mem::take(&mut entry.state).evolve(event);
            entry.position = commit.seq;
            match event {
                DonationEvent::HoldPlaced { hold, units, .. } => {
                    entry.holds.insert(*hold, *units);
                }
                DonationEvent::HoldReleased { hold, .. } => {
                    entry.holds.remove(hold);
                }
                DonationEvent::HoldConfirmed { hold } => {
                    if let Some(units) = entry.holds.remove(hold) {
                        entry.usage.push((envelope.occurred_at, units));
                    }
                }
                DonationEvent::Registered(_) | DonationEvent::RegisteredAt { .. } | DonationEvent::Withdrawn => {}
            }
            out.write(key(b'e', &donation), entry);
            out.announce(entry.clone());
        }
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), Undecodable> {
        if key.first() != Some(&b'e') {
            return Err(Undecodable("an entry of no known kind".into()));
        }
        let entry: Entry = postcard::from_bytes(value)?;
        self.orgs.entry(entry.org).or_default().insert(entry.donation);
        self.entries.insert(entry.donation, entry);
        Ok(())
    }
}
