//! The fold: every provider, donation and need, as the domain folds them,
//! and the indexes the planner reads (needs in line, waitlisted, proposed by
//! deadline, holds by need, groups and bundles, counters).

use super::ledger::{Ledger, Pool};
use super::partition::Partition;
use crate::{Catalog, Offer, Site};
use refer_domain::donation::{Donation, DonationEvent};
use refer_domain::ids::{DonationId, GroupId, HoldId, NeedId, PlacementId, ProviderId};
use refer_domain::kinds::NeedKind;
use refer_domain::need::{Need, NeedEvent, NeedStatus, Target};
use refer_domain::profile::AgeBand;
use refer_domain::provider::{Provider, ProviderEvent};
use refer_domain::{Aggregate, AggregateKind, Event, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Urgency, juvenile or not, arrival, need: the order needs are served in.
pub(crate) type InLine = (u8, u8, u64, NeedId);

/// What the status of the matcher reports, kept as events are folded so
/// reading it scans nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Needs requested, by status.
    pub needs: BTreeMap<NeedStatus, u32>,
    /// Waitlisted needs by kind and the region the person is in.
    pub waitlist: BTreeMap<(NeedKind, String), u32>,
    /// Holds open at providers and donations.
    pub holds: u32,
}

impl Tally {
    /// Needs in `status`.
    pub fn count(&self, status: NeedStatus) -> u32 {
        self.needs.get(&status).copied().unwrap_or(0)
    }

    fn need(&mut self, need: &Need, add: bool) {
        let Some(request) = &need.request else { return };
        fn bump<K: Ord + Clone>(counts: &mut BTreeMap<K, u32>, key: K, add: bool) {
            let n = counts.entry(key.clone()).or_insert(0);
            *n = if add { *n + 1 } else { n.saturating_sub(1) };
            if *n == 0 {
                counts.remove(&key);
            }
        }
        bump(&mut self.needs, need.status, add);
        if need.status == NeedStatus::Waitlisted {
            let region = request.spec.constraints.origin.region.as_str().to_owned();
            bump(&mut self.waitlist, (request.spec.kind, region), add);
        }
    }

    fn holds(&mut self, before: usize, after: usize) {
        self.holds = (self.holds as usize + after).saturating_sub(before) as u32;
    }
}

/// The projection, and its indexes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Projection {
    pub providers: BTreeMap<ProviderId, Provider>,
    pub donations: BTreeMap<DonationId, Donation>,
    pub needs: BTreeMap<NeedId, Need>,
    /// Stream sequence at which each need was requested (its place in line).
    pub arrival: BTreeMap<NeedId, u64>,
    /// The whole waitlist gets another look (sites were added or resumed,
    /// a restart, a decision that failed).
    pub capacity_changed: bool,
    #[serde(skip)]
    pub(crate) tally: Tally,
    /// Targets whose free units may have grown since the last plan: the
    /// waitlisted needs they could take get another look.
    #[serde(skip)]
    pub(crate) freed: BTreeSet<Target>,
    /// Needs that changed, or whose holds did, since the last plan: only
    /// their holds can need settling (the timer's housekeeping looks at all).
    #[serde(skip)]
    pub(crate) touched: BTreeSet<NeedId>,
    /// The same, for the commit being folded (see `settle_touched`).
    #[serde(skip)]
    just_touched: Vec<NeedId>,
    /// The open holds of each need, wherever they are.
    #[serde(skip)]
    pub(crate) holds_by_need: BTreeMap<NeedId, BTreeSet<(Target, HoldId)>>,
    /// The needs of each group, and of each person (their bundle).
    #[serde(skip)]
    pub(crate) groups: BTreeMap<GroupId, BTreeSet<NeedId>>,
    #[serde(skip)]
    pub(crate) bundles: BTreeMap<PlacementId, BTreeSet<NeedId>>,
    /// The next plan looks at every hold (after a restore: holds placed
    /// before it were touched by no commit since).
    #[serde(skip)]
    pub(crate) sweep_all: bool,
    /// The next match looks at every awaiting need (after a restore).
    #[serde(skip)]
    pub(crate) sweep_awaiting: bool,
    /// Every site compiled for the matching engine's hard constraints,
    /// built when first needed; a registration adds its sites to it (profiles
    /// and offers never change afterwards). Free units are read live, so a
    /// suspended provider or a withdrawn donation simply has no room.
    #[serde(skip)]
    pub(crate) sites: Option<Catalog>,
    /// Needs awaiting a match (waitlisted ones apart), and needs proposed:
    /// kept beside `needs` so a plan looks only at those, not at every need
    /// ever requested.
    #[serde(skip)]
    pub(crate) awaiting: BTreeSet<InLine>,
    /// The awaiting needs that changed since the last plan: a plan looks at
    /// these only (the others have a decision in flight), unless it must
    /// look at everything (after a restart or a decision that failed).
    #[serde(skip)]
    pub(crate) unplanned: BTreeSet<InLine>,
    #[serde(skip)]
    pub(crate) waitlisted: BTreeSet<NeedId>,
    /// Waitlisted needs compiled against `sites`, so a capacity change can
    /// check them quickly.
    #[serde(skip)]
    pub(crate) queries: BTreeMap<NeedId, crate::Query>,
    /// Needs proposed, by when they are due for housekeeping: a referral at
    /// its deadline, a donation at once (it is accepted on the business's
    /// behalf). `due` finds a need's entry.
    #[serde(skip)]
    pub(crate) proposed: BTreeSet<(Timestamp, NeedId)>,
    #[serde(skip)]
    due: BTreeMap<NeedId, Timestamp>,
    /// When opening hours and donation windows were last looked at.
    #[serde(skip)]
    pub(crate) hours_checked: Option<Timestamp>,
    /// The regions whose aggregates this projection keeps (all by default).
    #[serde(skip)]
    partition: Partition,
    /// The policy that protects the urgent.
    #[serde(skip)]
    pub policy: super::Policy,
    /// When each need was first queued for matching (its wait starts then).
    /// After a restart, a need held back counts from when its recorded wait
    /// began (`Need::held_until` less its bound), others from the restart.
    #[serde(skip)]
    pub(crate) seen: BTreeMap<NeedId, Timestamp>,
    /// Needs of every tier by when they were first seen, within the
    /// lookback: the forecast's sample (`Policy::forecast`).
    #[serde(skip)]
    pub(crate) recent: BTreeSet<(Timestamp, NeedId)>,
    /// Needs held back for the urgent, and when their wait ends.
    #[serde(skip)]
    pub(crate) held_back: BTreeMap<NeedId, Timestamp>,
    /// When this matcher first saw a need (arrival rates count from then).
    #[serde(skip)]
    pub(crate) observing_since: Option<Timestamp>,
    /// When the first arrival rate will be known, while needs wait for it.
    #[serde(skip)]
    pub(crate) learned_at: Option<Timestamp>,
}

/// A registered provider's sites, one per service it offers.
fn provider_sites(id: ProviderId, provider: &Provider) -> Vec<Site> {
    let Some(profile) = &provider.profile else {
        return vec![];
    };
    profile
        .services
        .iter()
        .map(|service| Site {
            target: Target::Provider(id),
            offer: Offer::Service {
                service: *service,
                hours: profile.hours.clone(),
            },
            location: profile.location.clone(),
            eligibility: profile.eligibility.clone(),
        })
        .collect()
}

/// A registered donation's site.
fn donation_site(id: DonationId, donation: &Donation) -> Option<Site> {
    let offer = donation.offer.as_ref()?;
    Some(Site {
        target: Target::Donation(id),
        offer: Offer::Resource {
            kind: offer.kind,
            window: offer.window,
            max_units_per_need: offer.max_units_per_need,
        },
        location: offer.location.clone(),
        eligibility: offer.eligibility.clone(),
    })
}

/// The pool a need of `kind` takes units from at `target`.
pub(crate) fn pool(target: Target, kind: NeedKind) -> Pool {
    match target {
        Target::Provider(_) => (target, kind.provider_service()),
        Target::Donation(_) => (target, None),
    }
}

/// The pool a catalog site gives units from.
pub(crate) fn site_pool(site: &Site) -> Pool {
    match site.offer {
        Offer::Service { service, .. } => (site.target, Some(service)),
        Offer::Resource { .. } => (site.target, None),
    }
}

impl Projection {
    /// An empty projection of `partition`'s providers, donations and needs.
    pub fn of(partition: Partition) -> Self {
        Self {
            partition,
            ..Self::default()
        }
    }

    /// The regions this projection keeps.
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// Folds one event in. Returns the kind of aggregate it touched, or
    /// `None` when the event is not this partition's (it is left out).
    pub fn apply(&mut self, seq: u64, id: Uuid, event: &Event) -> Option<AggregateKind> {
        let known = || match event {
            Event::Provider(_) => self.providers.contains_key(&ProviderId::from_uuid(id)),
            Event::Donation(_) => self.donations.contains_key(&DonationId::from_uuid(id)),
            Event::Need(_) => self.needs.contains_key(&NeedId::from_uuid(id)),
            Event::Placement(_) | Event::Standing(_) => false,
        };
        if !self.partition.admits(event, known) {
            return None;
        }
        Some(self.fold(seq, id, event))
    }

    fn fold(&mut self, seq: u64, id: Uuid, event: &Event) -> AggregateKind {
        match event {
            Event::Provider(e) => {
                let pid = ProviderId::from_uuid(id);
                let p = self.providers.remove(&pid).unwrap_or_default();
                let target = Target::Provider(pid);
                match e {
                    ProviderEvent::HoldPlaced { hold, need, .. } => self.track_hold(target, *hold, Some(*need), true),
                    ProviderEvent::HoldReleased { hold, .. } | ProviderEvent::HoldConfirmed { hold } => {
                        self.track_hold(target, *hold, p.holds.get(hold).map(|h| h.need), false)
                    }
                    _ => {}
                }
                let before = p.holds.len();
                let p = p.evolve(e);
                self.tally.holds(before, p.holds.len());
                self.providers.insert(pid, p);
                match (e, &mut self.sites) {
                    (ProviderEvent::Registered(_), Some(catalog)) => {
                        for site in provider_sites(pid, &self.providers[&pid]) {
                            catalog.add(site);
                        }
                    }
                    // Rare (an import, new hours): the catalog is compiled
                    // again when next needed.
                    (ProviderEvent::ProfileUpdated(_), _) => self.sites = None,
                    _ => {}
                }
                // Only what can free units gives the waitlist another look:
                // a hold placed or confirmed frees nothing.
                match e {
                    ProviderEvent::Registered(_) | ProviderEvent::ProfileUpdated(_) | ProviderEvent::Resumed => {
                        self.capacity_changed = true
                    }
                    ProviderEvent::HoldPlaced { .. }
                    | ProviderEvent::HoldConfirmed { .. }
                    | ProviderEvent::Suspended => {}
                    _ => {
                        self.freed.insert(target);
                    }
                }
                AggregateKind::Provider
            }
            Event::Donation(e) => {
                let did = DonationId::from_uuid(id);
                let d = self.donations.remove(&did).unwrap_or_default();
                let target = Target::Donation(did);
                match e {
                    DonationEvent::HoldPlaced { hold, need, .. } => self.track_hold(target, *hold, Some(*need), true),
                    DonationEvent::HoldReleased { hold, .. } | DonationEvent::HoldConfirmed { hold } => {
                        self.track_hold(target, *hold, d.holds.get(hold).map(|h| h.need), false)
                    }
                    _ => {}
                }
                let before = d.holds.len();
                let d = d.evolve(e);
                self.tally.holds(before, d.holds.len());
                self.donations.insert(did, d);
                if let (Some(_), Some(catalog)) = (e.offer(), &mut self.sites) {
                    if let Some(site) = donation_site(did, &self.donations[&did]) {
                        catalog.add(site);
                    }
                }
                match e {
                    DonationEvent::Registered(_) | DonationEvent::RegisteredAt { .. } => self.capacity_changed = true,
                    DonationEvent::HoldReleased { .. } => {
                        self.freed.insert(target);
                    }
                    _ => {}
                }
                AggregateKind::Donation
            }
            // What intake and the sites share changes nothing the matcher decides on.
            Event::Need(NeedEvent::HandedOff(_)) => AggregateKind::Need,
            Event::Placement(_) => AggregateKind::Placement,
            Event::Standing(_) => AggregateKind::Standing,
            Event::Need(e) => {
                let need = NeedId::from_uuid(id);
                let n = self.needs.remove(&need).unwrap_or_default();
                self.tally.need(&n, false);
                self.arrival.entry(need).or_insert(seq);
                let n = n.evolve(e);
                self.tally.need(&n, true);
                self.needs.insert(need, n);
                self.index(need);
                self.touched.insert(need);
                self.just_touched.push(need);
                AggregateKind::Need
            }
        }
    }

    /// The projection a restart restores from saved aggregates (each need
    /// with its place in line): indexes and counters rebuilt, every hold
    /// looked at, and the whole waitlist given another look.
    pub fn restored(
        providers: BTreeMap<ProviderId, Provider>,
        donations: BTreeMap<DonationId, Donation>,
        needs: BTreeMap<NeedId, (Need, u64)>,
        partition: Partition,
    ) -> Self {
        let mut state = Projection {
            providers,
            donations,
            ..Projection::of(partition)
        };
        for (id, (need, arrival)) in needs {
            state.needs.insert(id, need);
            state.arrival.insert(id, arrival);
        }
        state.reindex();
        state.capacity_changed = true;
        state
    }

    /// What the matcher's status reports.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Files a hold placed (or gone) under its need, and marks the need.
    fn track_hold(&mut self, target: Target, hold: HoldId, need: Option<NeedId>, placed: bool) {
        let Some(need) = need else { return };
        self.touched.insert(need);
        self.just_touched.push(need);
        let holds = self.holds_by_need.entry(need).or_default();
        if placed {
            holds.insert((target, hold));
        } else {
            holds.remove(&(target, hold));
            if holds.is_empty() {
                self.holds_by_need.remove(&need);
            }
        }
    }

    /// Files a need under awaiting, waitlisted or proposed, by its status,
    /// and under its group and person.
    fn index(&mut self, need: NeedId) {
        let status = self.needs.get(&need).map(|n| n.status);
        if let Some(place) = self.place_in_line(need) {
            if status.is_some_and(|s| s.awaits_match() && s != NeedStatus::Waitlisted) {
                self.awaiting.insert(place);
                self.unplanned.insert(place);
            } else {
                self.awaiting.remove(&place);
                self.unplanned.remove(&place);
            }
        }
        if let Some(request) = self.needs.get(&need).and_then(|n| n.request.as_ref()) {
            if let Some(group) = request.group {
                self.groups.entry(group.group).or_default().insert(need);
            }
            self.bundles.entry(request.placement).or_default().insert(need);
        }
        if status == Some(NeedStatus::Waitlisted) {
            self.waitlisted.insert(need);
            // A wait recorded on the stream is kept, also after a restart.
            if let Some(until) = self.needs.get(&need).and_then(|n| n.held_until) {
                self.held_back.insert(need, until);
            }
        } else {
            self.waitlisted.remove(&need);
            self.queries.remove(&need);
        }
        if let Some(at) = self.due.remove(&need) {
            self.proposed.remove(&(at, need));
        }
        let proposal = self.needs.get(&need).and_then(|n| n.proposal);
        if let (Some(NeedStatus::Proposed), Some(proposal)) = (status, proposal) {
            let at = match proposal.target {
                Target::Provider(_) => proposal.deadline,
                Target::Donation(_) => Timestamp(i64::MIN),
            };
            self.proposed.insert((at, need));
            self.due.insert(need, at);
        }
    }

    /// Files every need again and counts everything afresh (after the maps
    /// were filled directly, as a restore does).
    pub fn reindex(&mut self) {
        let ids: Vec<NeedId> = self.needs.keys().copied().collect();
        for id in ids {
            self.index(id);
        }
        self.tally = Tally::default();
        for need in self.needs.values() {
            self.tally.need(need, true);
        }
        let holds = self.providers.values().map(|p| p.holds.len()).sum::<usize>()
            + self.donations.values().map(|d| d.holds.len()).sum::<usize>();
        self.tally.holds(0, holds);
        self.holds_by_need.clear();
        for (target, hold, need) in self.holds() {
            self.holds_by_need.entry(need).or_default().insert((target, hold));
        }
        self.sweep_all = true;
        self.sweep_awaiting = true;
    }

    /// Free units in `pool`, less what the ledger speaks for.
    pub(crate) fn free(&self, pool: Pool, ledger: &Ledger) -> u32 {
        let free = match pool {
            (Target::Provider(id), Some(service)) => self
                .providers
                .get(&id)
                .filter(|p| !p.suspended)
                .map_or(0, |p| p.units(service).free()),
            (Target::Provider(_), None) => 0,
            (Target::Donation(id), _) => self.donations.get(&id).map_or(0, |d| d.free()),
        };
        free.saturating_sub(ledger.spoken_at(&pool))
    }

    /// Whether `pool`'s units are stale at `now` under the policy's
    /// freshness limit (a donation's never are: its window says when it holds).
    pub(crate) fn stale(&self, pool: Pool, now: Timestamp) -> bool {
        match pool {
            (Target::Provider(id), Some(service)) => self
                .providers
                .get(&id)
                .is_none_or(|p| self.policy.freshness.is_stale(p.units(service).as_of, now)),
            (Target::Provider(_), None) | (Target::Donation(_), _) => false,
        }
    }

    /// Compiles every site that takes referrals for the matching engine.
    pub(crate) fn compile_sites(&mut self) {
        if self.sites.is_some() {
            return;
        }
        let providers = self.providers.iter().flat_map(|(id, p)| provider_sites(*id, p));
        let donations = self.donations.iter().flat_map(|(id, d)| donation_site(*id, d));
        self.sites = Some(Catalog::new(providers.chain(donations)));
    }

    /// A need's place in line: most urgent first, juveniles first within an
    /// urgency, then in order of arrival. Fixed once the need is requested.
    pub(crate) fn place_in_line(&self, id: NeedId) -> Option<InLine> {
        let r = self.needs.get(&id)?.request.as_ref()?;
        let juvenile = u8::from(r.spec.profile.age_band != AgeBand::Juvenile);
        Some((
            r.spec.urgency as u8,
            juvenile,
            self.arrival.get(&id).copied().unwrap_or(0),
            id,
        ))
    }

    /// Holds at providers and donations, with the need each serves.
    pub(crate) fn holds(&self) -> Vec<(Target, HoldId, NeedId)> {
        let providers = self.providers.iter().flat_map(|(id, p)| {
            p.holds
                .iter()
                .map(move |(h, hold)| (Target::Provider(*id), *h, hold.need))
        });
        let donations = self.donations.iter().flat_map(|(id, d)| {
            d.holds
                .iter()
                .map(move |(h, hold)| (Target::Donation(*id), *h, hold.need))
        });
        providers.chain(donations).collect()
    }

    /// When `hold` at `target` expires, if it is open.
    pub(crate) fn hold_expiry(&self, target: Target, hold: HoldId) -> Option<Timestamp> {
        match target {
            Target::Provider(id) => self.providers.get(&id)?.holds.get(&hold).map(|h| h.expires_at),
            Target::Donation(id) => self.donations.get(&id)?.holds.get(&hold).map(|h| h.expires_at),
        }
    }

    /// Whether `hold` is open at `target`.
    fn holds_at(&self, target: Target, hold: HoldId) -> bool {
        self.hold_expiry(target, hold).is_some()
    }

    /// Forgets ledger entries that the stream has caught up with (or that
    /// will never land), so the capacity they spoke for counts from the
    /// state. Only the entries of needs the last folded commit touched can
    /// have landed; their hold ids are derived from the need and the
    /// attempt, so they are found without a scan of the whole ledger.
    pub fn settle_touched(&mut self, ledger: &mut Ledger) {
        for need_id in std::mem::take(&mut self.just_touched) {
            let Some(need) = self.needs.get(&need_id) else { continue };
            if ledger.needs.get(&need_id).is_some_and(|step| *step != need.step()) {
                ledger.needs.remove(&need_id);
            }
            for attempt in 1..=need.proposals_made + 1 {
                let hold = super::hold_id(need_id, attempt);
                if let Some(target) = ledger.hold_target(&hold) {
                    let moved_on = need.proposals_made > 0 && need.proposal.map(|p| p.hold) == Some(hold);
                    if moved_on || self.holds_at(target, hold) {
                        ledger.drop_hold(hold);
                    }
                }
                if let Some(target) = ledger.settling.get(&hold) {
                    if !self.holds_at(*target, hold) {
                        ledger.settling.remove(&hold);
                    }
                }
            }
        }
    }
}
