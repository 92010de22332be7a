//! The referral board: what each provider site has been sent, built from the
//! stream. It joins provider holds with the needs they serve, keeping only
//! what a provider may see (service, units, party size, age band, languages,
//! accessibility, urgency, deadline): never the agency, never a case reference.

use refer_domain::ids::{HoldId, NeedId, OrgId, ProviderId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{NeedEvent, Target};
use refer_domain::profile::{Accessibility, AgeBand, Language};
use refer_domain::provider::{ProviderEvent, ReleaseReason};
use refer_domain::request::Urgency;
use refer_domain::{Event, Timestamp};
use refer_eventstore::{Projection, Recorded};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReferralStatus {
    /// The hold exists but the need has not been proposed yet: not shown.
    Offered,
    Pending,
    Accepted,
    Declined,
    Expired,
    Cancelled,
}

/// What the provider may know about the person behind a referral.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedSummary {
    pub party_size: u16,
    pub age_band: AgeBand,
    pub languages: BTreeSet<Language>,
    pub accessibility: BTreeSet<Accessibility>,
    pub urgency: Urgency,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    pub hold: HoldId,
    pub provider: ProviderId,
    pub need: NeedId,
    pub service: ServiceKind,
    pub units: u32,
    pub deadline: Timestamp,
    pub status: ReferralStatus,
    pub summary: Option<NeedSummary>,
    /// Stream sequence of the latest change.
    pub position: u64,
}

impl refer_service::watch::Positioned for Referral {
    fn position(&self) -> u64 {
        self.position
    }
}

#[derive(Default)]
pub struct State {
    pub referrals: BTreeMap<HoldId, Referral>,
    pub by_provider: BTreeMap<ProviderId, BTreeSet<HoldId>>,
    needs: BTreeMap<NeedId, NeedSummary>,
    pub orgs: BTreeMap<OrgId, BTreeSet<ProviderId>>,
}

impl State {
    /// A provider's visible referrals with a position after `after`, in stream order.
    pub fn referrals_of(&self, provider: ProviderId, after: u64) -> Vec<Referral> {
        let mut out: Vec<Referral> = self
            .by_provider
            .get(&provider)
            .into_iter()
            .flatten()
            .filter_map(|hold| self.referrals.get(hold))
            .filter(|r| r.status != ReferralStatus::Offered && r.position > after)
            .cloned()
            .collect();
        out.sort_by_key(|r| (r.position, r.hold));
        out
    }
}

/// Shared between the projection task (writer) and the RPC handlers (readers).
#[derive(Clone)]
pub struct Board {
    pub state: Arc<RwLock<State>>,
    pub changes: broadcast::Sender<Referral>,
}

impl Board {
    pub fn restore(tree: &sled::Tree) -> Self {
        let mut state = State::default();
        for entry in tree.iter().flatten() {
            let (key, value) = entry;
            match key.first() {
                Some(b'r') => {
                    if let Ok(r) = postcard::from_bytes::<Referral>(&value) {
                        state.by_provider.entry(r.provider).or_default().insert(r.hold);
                        state.referrals.insert(r.hold, r);
                    }
                }
                Some(b'n') => {
                    if let (Ok(id), Ok(s)) = (postcard::from_bytes(&key[1..]), postcard::from_bytes(&value)) {
                        state.needs.insert(id, s);
                    }
                }
                Some(b'o') => {
                    if let Ok((org, provider)) = postcard::from_bytes::<(OrgId, ProviderId)>(&key[1..]) {
                        state.orgs.entry(org).or_default().insert(provider);
                    }
                }
                _ => {}
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
            writes: Vec::new(),
            announce: Vec::new(),
        }
    }
}

pub struct BoardProjection {
    board: Board,
    writes: Vec<(Vec<u8>, Vec<u8>)>,
    announce: Vec<Referral>,
}

fn key(tag: u8, id: &impl Serialize) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend(postcard::to_stdvec(id).expect("ids encode"));
    k
}

impl BoardProjection {
    fn touch(&mut self, state: &mut State, hold: HoldId, seq: u64, change: impl FnOnce(&mut Referral)) {
        if let Some(r) = state.referrals.get_mut(&hold) {
            change(r);
            r.position = seq;
            self.writes
                .push((key(b'r', &hold), postcard::to_stdvec(r).expect("referral encodes")));
            if r.status != ReferralStatus::Offered {
                self.announce.push(r.clone());
            }
        }
    }

    fn settle(&mut self, state: &mut State, target: Target, hold: HoldId, seq: u64, status: ReferralStatus) {
        if let Target::Provider(_) = target {
            self.touch(state, hold, seq, |r| {
                if matches!(r.status, ReferralStatus::Offered | ReferralStatus::Pending) {
                    r.status = status;
                }
            });
        }
    }
}

impl Projection for BoardProjection {
    fn apply(&mut self, commit: &Recorded) {
        let board = self.board.clone();
        let mut state = board.state.write().expect("board lock");
        let seq = commit.seq;
        for envelope in &commit.events {
            let id = envelope.aggregate.id;
            match &envelope.event {
                Event::Provider(ProviderEvent::Registered(profile)) => {
                    let provider = ProviderId::from_uuid(id);
                    state.orgs.entry(profile.org).or_default().insert(provider);
                    self.writes.push((key(b'o', &(profile.org, provider)), vec![]));
                }
                Event::Provider(ProviderEvent::HoldPlaced {
                    hold,
                    need,
                    service,
                    units,
                    expires_at,
                }) => {
                    let provider = ProviderId::from_uuid(id);
                    let referral = Referral {
                        hold: *hold,
                        provider,
                        need: *need,
                        service: *service,
                        units: *units,
                        deadline: *expires_at,
                        status: ReferralStatus::Offered,
                        summary: state.needs.get(need).cloned(),
                        position: seq,
                    };
                    state.by_provider.entry(provider).or_default().insert(*hold);
                    state.referrals.insert(*hold, referral);
                    self.touch(&mut state, *hold, seq, |_| {});
                }
                Event::Provider(ProviderEvent::HoldConfirmed { hold }) => {
                    self.touch(&mut state, *hold, seq, |r| r.status = ReferralStatus::Accepted);
                }
                Event::Provider(ProviderEvent::HoldReleased { hold, reason }) => {
                    let status = match reason {
                        ReleaseReason::Declined => ReferralStatus::Declined,
                        ReleaseReason::Expired => ReferralStatus::Expired,
                        ReleaseReason::Cancelled | ReleaseReason::Withdrawn => ReferralStatus::Cancelled,
                    };
                    self.touch(&mut state, *hold, seq, |r| {
                        if matches!(r.status, ReferralStatus::Offered | ReferralStatus::Pending) {
                            r.status = status;
                        }
                    });
                }
                Event::Need(NeedEvent::Requested(request)) => {
                    let spec = &request.spec;
                    let summary = NeedSummary {
                        party_size: spec.profile.party_size,
                        age_band: spec.profile.age_band,
                        languages: spec.profile.languages.clone(),
                        accessibility: spec.profile.accessibility.clone(),
                        urgency: spec.urgency,
                    };
                    let need = NeedId::from_uuid(id);
                    self.writes.push((
                        key(b'n', &need),
                        postcard::to_stdvec(&summary).expect("summary encodes"),
                    ));
                    state.needs.insert(need, summary);
                }
                Event::Need(NeedEvent::Proposed(p)) => {
                    if let Target::Provider(_) = p.target {
                        let summary = state.needs.get(&NeedId::from_uuid(id)).cloned();
                        self.touch(&mut state, p.hold, seq, |r| {
                            if r.status == ReferralStatus::Offered {
                                r.status = ReferralStatus::Pending;
                                r.summary = summary;
                            }
                        });
                    }
                }
                Event::Need(NeedEvent::Accepted(p)) => {
                    self.settle(&mut state, p.target, p.hold, seq, ReferralStatus::Accepted)
                }
                Event::Need(NeedEvent::Declined { proposal: p, .. }) => {
                    self.settle(&mut state, p.target, p.hold, seq, ReferralStatus::Declined)
                }
                Event::Need(NeedEvent::Expired(p)) => {
                    self.settle(&mut state, p.target, p.hold, seq, ReferralStatus::Expired)
                }
                Event::Need(NeedEvent::Cancelled { pending: Some(p) }) => {
                    self.settle(&mut state, p.target, p.hold, seq, ReferralStatus::Cancelled)
                }
                _ => {}
            }
        }
    }

    fn persist(&mut self, batch: &mut sled::Batch) {
        for (k, v) in self.writes.drain(..) {
            batch.insert(k, v);
        }
        // Watchers hear of a change once it is in the batch written with the
        // checkpoint; a replay after a crash may repeat it (same position).
        for referral in self.announce.drain(..) {
            let _ = self.board.changes.send(referral);
        }
    }
}
