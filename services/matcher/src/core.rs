//! The matcher's pure core: a projection of every aggregate and the rules
//! that turn it into decisions. No I/O; time is an input. Given the same
//! ordered events it plans the same decisions, which is what makes a replay
//! of the stream reproduce history.
//!
//! Every decision is derived from the state, so a matcher that crashed
//! between two steps of a decision finds the half-done step in the state and
//! completes it (hold ids are derived from the need and its attempt number,
//! and every command carries a derived idempotency key).

use refer_domain::donation::Donation;
use refer_domain::donation::DonationEvent;
use refer_domain::ids::{DonationId, HoldId, NeedId, ProviderId};
use refer_domain::kinds::NeedKind;
use refer_domain::need::{Need, NeedStatus, Target};
use refer_domain::profile::AgeBand;
use refer_domain::provider::ProviderEvent;
use refer_domain::provider::{Provider, ReleaseReason};
use refer_domain::request::Cohesion;
use refer_domain::{Aggregate, AggregateKind, Event, Timestamp};
use refer_matching::{Catalog, Offer, Site};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// How long a provider has to answer a referral.
pub const HOLD_SECS: i64 = 15 * 60;

/// What the matcher decides to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Hold `units` at `target` and propose the need to it. Donations need no
    /// answer: the need is accepted at once.
    Propose {
        need: NeedId,
        target: Target,
        hold: HoldId,
        units: u32,
    },
    /// A need proposed to a donation is accepted on the business's behalf
    /// (a donation is given in advance; a crash may have left this step).
    AcceptDonation { need: NeedId, target: Target },
    /// A hold was placed but the need not yet proposed (a crash in between).
    CompleteProposal { need: NeedId, target: Target, hold: HoldId },
    /// Nothing fits now. `attempt` tells this waitlisting from earlier ones.
    Waitlist { need: NeedId, attempt: u32 },
    /// The deadline passed without an answer.
    Expire { need: NeedId, hold: HoldId },
    /// The need was accepted: the held units are taken.
    Confirm { target: Target, hold: HoldId },
    /// The need was declined, expired or cancelled, or moved on: free the units.
    Release {
        target: Target,
        hold: HoldId,
        reason: ReleaseReason,
    },
}

impl Action {
    /// The aggregate this action contends for: the target whose holds it
    /// changes, or else the need. The executor runs one action per lane at
    /// a time.
    pub fn lane(&self) -> Uuid {
        let target = match self {
            Self::Propose { target, .. }
            | Self::AcceptDonation { target, .. }
            | Self::CompleteProposal { target, .. }
            | Self::Confirm { target, .. }
            | Self::Release { target, .. } => *target,
            Self::Waitlist { need, .. } | Self::Expire { need, .. } => return need.as_uuid(),
        };
        match target {
            Target::Provider(id) => id.as_uuid(),
            Target::Donation(id) => id.as_uuid(),
        }
    }

    /// A label for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Propose { .. } => "propose",
            Self::AcceptDonation { .. } => "accept_donation",
            Self::CompleteProposal { .. } => "complete_proposal",
            Self::Waitlist { .. } => "waitlist",
            Self::Expire { .. } => "expire",
            Self::Confirm { .. } => "confirm",
            Self::Release { .. } => "release",
        }
    }
}

/// The projection: every provider, donation and need, as the domain folds them.
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
    /// Targets whose free units may have grown since the last plan: the
    /// waitlisted needs they could take get another look.
    #[serde(skip)]
    freed: BTreeSet<Target>,
    /// Needs that changed, or whose holds did, since the last plan: only
    /// their holds can need settling (the timer's housekeeping looks at all).
    #[serde(skip)]
    touched: BTreeSet<NeedId>,
    /// The same, for the commit being folded (see `settle_touched`).
    #[serde(skip)]
    just_touched: Vec<NeedId>,
    /// The open holds of each need, wherever they are.
    #[serde(skip)]
    holds_by_need: BTreeMap<NeedId, BTreeSet<(Target, HoldId)>>,
    /// The next plan looks at every hold (after a restore: holds placed
    /// before it were touched by no commit since).
    #[serde(skip)]
    sweep_all: bool,
    /// Every site compiled for the matching engine's hard constraints,
    /// built when first needed; a registration adds its sites to it (profiles
    /// and offers never change afterwards). Free units are read live, so a
    /// suspended provider or a withdrawn donation simply has no room.
    #[serde(skip)]
    sites: Option<Catalog>,
    /// Needs awaiting a match (waitlisted ones apart), and needs proposed:
    /// kept beside `needs` so a plan looks only at those, not at every need
    /// ever requested.
    #[serde(skip)]
    awaiting: BTreeSet<InLine>,
    #[serde(skip)]
    waitlisted: BTreeSet<NeedId>,
    /// Waitlisted needs compiled against `sites`, so a capacity change can
    /// check them quickly.
    #[serde(skip)]
    queries: BTreeMap<NeedId, refer_matching::Query>,
    /// Needs proposed, by when they are due for housekeeping: a referral at
    /// its deadline, a donation at once (it is accepted on the business's
    /// behalf). `due` finds a need's entry.
    #[serde(skip)]
    proposed: BTreeSet<(Timestamp, NeedId)>,
    #[serde(skip)]
    due: BTreeMap<NeedId, Timestamp>,
    /// When opening hours and donation windows were last looked at.
    #[serde(skip)]
    hours_checked: Option<Timestamp>,
}

/// Waitlisted needs to look at again, and the only sites (by catalog index)
/// worth looking at for them; `None`: every site.
struct Revisit {
    needs: Vec<NeedId>,
    only: Option<Vec<usize>>,
}

/// Urgency, juvenile or not, arrival, need: the order needs are served in.
type InLine = (u8, u8, u64, NeedId);

/// Decisions planned but not yet seen on the stream: their units are spoken
/// for, and their needs are not planned again. Not persisted: after a
/// restart the same decisions are re-derived with the same hold ids.
#[derive(Clone, Debug, Default)]
pub struct InFlight {
    /// Holds planned: where, for which need, how many units, and the kind of
    /// need (which of the target's pools they come from).
    holds: BTreeMap<HoldId, (Target, NeedId, u32, NeedKind)>,
    /// What those holds speak for, per target and kind (kept as they come
    /// and go, so a plan need not add them up).
    spoken: BTreeMap<(Target, NeedKind), u32>,
    /// Needs with a decision under way, and their status when it was made.
    pub needs: BTreeMap<NeedId, NeedStatus>,
    /// Holds being confirmed or released.
    pub settling: BTreeMap<HoldId, Target>,
}

impl InFlight {
    /// Forgets a decision that failed, so the need is planned again.
    pub fn abandon(&mut self, need: NeedId, hold: Option<HoldId>) {
        self.needs.remove(&need);
        if let Some(hold) = hold {
            self.drop_hold(hold);
        }
    }

    fn plan_hold(&mut self, hold: HoldId, target: Target, need: NeedId, units: u32, kind: NeedKind) {
        if let Some(old) = self.holds.insert(hold, (target, need, units, kind)) {
            self.unspeak(old.0, old.3, old.2);
        }
        *self.spoken.entry((target, kind)).or_insert(0) += units;
    }

    fn drop_hold(&mut self, hold: HoldId) {
        if let Some((target, _, units, kind)) = self.holds.remove(&hold) {
            self.unspeak(target, kind, units);
        }
    }

    fn unspeak(&mut self, target: Target, kind: NeedKind, units: u32) {
        if let Some(spoken) = self.spoken.get_mut(&(target, kind)) {
            *spoken = spoken.saturating_sub(units);
            if *spoken == 0 {
                self.spoken.remove(&(target, kind));
            }
        }
    }

    /// Whether `hold` is planned and not yet seen.
    pub fn holds(&self, hold: &HoldId) -> bool {
        self.holds.contains_key(hold)
    }
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

/// The hold id for a need's `attempt`-th proposal: derived, so a re-planned
/// decision after a crash lands on the same idempotency keys.
pub fn hold_id(need: NeedId, attempt: u32) -> HoldId {
    const NAMESPACE: Uuid = Uuid::from_u128(0x5e1f_0c4a_7b2d_4e6f_9a80_1c3b_5d7e_9f21);
    let mut name = need.as_uuid().as_bytes().to_vec();
    name.extend_from_slice(&attempt.to_be_bytes());
    HoldId::from_uuid(Uuid::new_v5(&NAMESPACE, &name))
}

impl Projection {
    /// Folds one event in. Returns the kind of aggregate it touched.
    pub fn apply(&mut self, seq: u64, id: Uuid, event: &Event) -> AggregateKind {
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
                self.providers.insert(pid, p.evolve(e));
                if let (ProviderEvent::Registered(_), Some(catalog)) = (e, &mut self.sites) {
                    for site in provider_sites(pid, &self.providers[&pid]) {
                        catalog.add(site);
                    }
                }
                // Only what can free units gives the waitlist another look:
                // a hold placed or confirmed frees nothing.
                match e {
                    ProviderEvent::Registered(_) | ProviderEvent::Resumed => self.capacity_changed = true,
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
                self.donations.insert(did, d.evolve(e));
                if let (DonationEvent::Registered(_), Some(catalog)) = (e, &mut self.sites) {
                    if let Some(site) = donation_site(did, &self.donations[&did]) {
                        catalog.add(site);
                    }
                }
                match e {
                    DonationEvent::Registered(_) => self.capacity_changed = true,
                    DonationEvent::HoldReleased { .. } => {
                        self.freed.insert(target);
                    }
                    _ => {}
                }
                AggregateKind::Donation
            }
            Event::Need(e) => {
                let need = NeedId::from_uuid(id);
                let n = self.needs.remove(&need).unwrap_or_default();
                self.arrival.entry(need).or_insert(seq);
                self.needs.insert(need, n.evolve(e));
                self.index(need);
                self.touched.insert(need);
                self.just_touched.push(need);
                AggregateKind::Need
            }
        }
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

    /// Files a need under awaiting, waitlisted or proposed, by its status.
    fn index(&mut self, need: NeedId) {
        let status = self.needs.get(&need).map(|n| n.status);
        if let Some(place) = self.place_in_line(need) {
            if status.is_some_and(|s| s.awaits_match() && s != NeedStatus::Waitlisted) {
                self.awaiting.insert(place);
            } else {
                self.awaiting.remove(&place);
            }
        }
        if status == Some(NeedStatus::Waitlisted) {
            self.waitlisted.insert(need);
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

    /// Files every need again (after `needs` was filled directly, as a restore does).
    pub fn reindex(&mut self) {
        let ids: Vec<NeedId> = self.needs.keys().copied().collect();
        for id in ids {
            self.index(id);
        }
        self.holds_by_need.clear();
        for (target, hold, need) in self.holds() {
            self.holds_by_need.entry(need).or_default().insert((target, hold));
        }
        self.sweep_all = true;
    }

    /// Free units at `target` for a need of `kind`, less what is spoken for.
    fn free(&self, target: Target, kind: NeedKind, spoken: &BTreeMap<(Target, NeedKind), u32>) -> u32 {
        let free = match target {
            Target::Provider(id) => kind
                .provider_service()
                .and_then(|s| {
                    self.providers
                        .get(&id)
                        .filter(|p| !p.suspended)
                        .map(|p| p.units(s).free())
                })
                .unwrap_or(0),
            Target::Donation(id) => self.donations.get(&id).map_or(0, |d| d.free()),
        };
        free.saturating_sub(spoken.get(&(target, kind)).copied().unwrap_or(0))
    }

    /// Notes the sites that opened since the last look (their hours began,
    /// a donation's window started) as having gained room, so the waitlisted
    /// needs they could take get another look. Hours change on the minute,
    /// so this looks at most once per minute of `now`. Returns whether any
    /// site opened.
    pub fn note_openings(&mut self, now: Timestamp) -> bool {
        let Some(catalog) = &self.sites else { return false };
        let last = match self.hours_checked {
            Some(last) if last.epoch_minutes() >= now.epoch_minutes() => return false,
            Some(last) => last,
            None => {
                // First look (a start): the whole waitlist is looked at anyway.
                self.hours_checked = Some(now);
                return false;
            }
        };
        self.hours_checked = Some(now);
        let before = self.freed.len();
        for i in 0..catalog.len() {
            let site = catalog.site(i);
            if site.offer.open_at(now) && !site.offer.open_at(last) {
                self.freed.insert(site.target);
            }
        }
        self.freed.len() > before
    }

    /// The waitlisted needs worth another look: all of them after a change
    /// to the sites themselves; otherwise those that a target with more
    /// room since the last plan could take (most capacity changes concern
    /// one site, and the waitlist can be long).
    fn revisit(&mut self, now: Timestamp, spoken: &BTreeMap<(Target, NeedKind), u32>) -> Revisit {
        let freed = std::mem::take(&mut self.freed);
        if std::mem::take(&mut self.capacity_changed) {
            // New sites may bring languages and regions the compiled queries
            // do not know of: compile them again when next needed.
            self.queries.clear();
            return Revisit {
                needs: self.waitlisted.iter().copied().collect(),
                only: None,
            };
        }
        let none = Revisit {
            needs: vec![],
            only: Some(vec![]),
        };
        let Self {
            sites: Some(catalog),
            queries,
            needs,
            waitlisted,
            ..
        } = self
        else {
            return none;
        };
        let freed: Vec<usize> = freed.iter().flat_map(|t| catalog.sites_of(*t)).collect();
        if freed.is_empty() {
            return none;
        }
        for id in waitlisted.iter() {
            if let (None, Some(need)) = (queries.get(id), needs.get(id)) {
                if let Some(request) = &need.request {
                    let excluded: Vec<Target> = need.excluded.iter().copied().collect();
                    queries.insert(*id, catalog.query(&request.spec, &excluded));
                }
            }
        }
        let catalog = self.sites.as_ref().expect("compiled above");
        let needs = self
            .waitlisted
            .iter()
            .copied()
            .filter(|id| {
                let Some(query) = self.queries.get(id) else {
                    return false;
                };
                let kind = query.kind();
                freed.iter().any(|&i| {
                    let target = catalog.site(i).target;
                    catalog
                        .option_at(i, query, now, || self.free(target, kind, spoken))
                        .is_some()
                })
            })
            .collect();
        Revisit {
            needs,
            only: Some(freed),
        }
    }

    /// A waitlisted need's options among the sites that gained room: the
    /// others had none for it when it was last looked at, and have not
    /// gained any since (or the whole waitlist would be looked at again).
    fn options_among(
        &self,
        need: NeedId,
        sites: &[usize],
        now: Timestamp,
        spoken: &BTreeMap<(Target, NeedKind), u32>,
        avoid: &BTreeSet<Target>,
    ) -> Option<Vec<(u32, Target)>> {
        let (catalog, query) = (self.sites.as_ref()?, self.queries.get(&need)?);
        let kind = query.kind();
        let mut found: Vec<(u32, usize)> = sites
            .iter()
            .filter(|i| !avoid.contains(&catalog.site(**i).target))
            .filter_map(|&i| {
                let target = catalog.site(i).target;
                catalog
                    .option_at(i, query, now, || self.free(target, kind, spoken))
                    .map(|km| (km, i))
            })
            .collect();
        found.sort();
        Some(found.into_iter().map(|(km, i)| (km, catalog.site(i).target)).collect())
    }

    /// Compiles every site that takes referrals for the matching engine.
    fn compile_sites(&mut self) {
        if self.sites.is_some() {
            return;
        }
        let providers = self.providers.iter().flat_map(|(id, p)| provider_sites(*id, p));
        let donations = self.donations.iter().flat_map(|(id, d)| donation_site(*id, d));
        self.sites = Some(Catalog::new(providers.chain(donations)));
    }

    /// Eligible targets with room for `need`, nearest first: every hard
    /// constraint, checked by the matching engine's catalog.
    fn candidates(
        &self,
        need: &Need,
        now: Timestamp,
        spoken: &BTreeMap<(Target, NeedKind), u32>,
        avoid: &BTreeSet<Target>,
    ) -> Vec<(u32, Target)> {
        let (Some(request), Some(catalog)) = (&need.request, &self.sites) else {
            return vec![];
        };
        let kind = request.spec.kind;
        let exclude: Vec<Target> = need.excluded.iter().chain(avoid).copied().collect();
        let query = catalog.query(&request.spec, &exclude);
        catalog
            .options(&query, now, |i| self.free(catalog.site(i).target, kind, spoken))
            .into_iter()
            .map(|(i, km)| (km, catalog.site(i).target))
            .collect()
    }

    /// Where the other members of `need`'s group have their shelter, for
    /// keeping a group together or apart.
    fn group_sites(&self, need: NeedId, in_flight: &InFlight) -> BTreeSet<Target> {
        let Some(me) = self.needs.get(&need).and_then(|n| n.request.as_ref()) else {
            return BTreeSet::new();
        };
        let Some(group) = me.group else { return BTreeSet::new() };
        let mut sites = BTreeSet::new();
        for (id, other) in &self.needs {
            let Some(request) = &other.request else { continue };
            if *id == need || request.group.map(|g| g.group) != Some(group.group) || request.placement == me.placement {
                continue;
            }
            if request.spec.kind != me.spec.kind {
                continue;
            }
            if let Some(p) = other.proposal {
                if matches!(
                    other.status,
                    NeedStatus::Proposed | NeedStatus::Accepted | NeedStatus::Fulfilled
                ) {
                    sites.insert(p.target);
                }
            }
        }
        sites.extend(
            in_flight
                .holds
                .values()
                .filter(|(_, n, _, _)| {
                    self.needs.get(n).and_then(|x| x.request.as_ref()).is_some_and(|r| {
                        r.group.map(|g| g.group) == Some(group.group)
                            && r.placement != me.placement
                            && r.spec.kind == me.spec.kind
                    })
                })
                .map(|(t, _, _, _)| *t),
        );
        sites
    }

    /// A need's place in line: most urgent first, juveniles first within an
    /// urgency, then in order of arrival. Fixed once the need is requested.
    fn place_in_line(&self, id: NeedId) -> Option<InLine> {
        let r = self.needs.get(&id)?.request.as_ref()?;
        let juvenile = u8::from(r.spec.profile.age_band != AgeBand::Juvenile);
        Some((
            r.spec.urgency as u8,
            juvenile,
            self.arrival.get(&id).copied().unwrap_or(0),
            id,
        ))
    }

    /// Needs to match now, in line: those awaiting a match with no decision
    /// under way, and the waitlisted ones given another look.
    fn queue(&self, in_flight: &InFlight, waitlisted: &[NeedId]) -> Vec<NeedId> {
        let mut line: Vec<InLine> = self
            .awaiting
            .iter()
            .filter(|place| !in_flight.needs.contains_key(&place.3))
            .copied()
            .collect();
        if !waitlisted.is_empty() {
            line.extend(waitlisted.iter().filter_map(|id| self.place_in_line(*id)));
            line.sort();
        }
        line.into_iter().map(|(_, _, _, id)| id).collect()
    }

    /// Holds at providers and donations, with the need each serves.
    fn holds(&self) -> Vec<(Target, HoldId, NeedId)> {
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

    /// Everything to do after an event: housekeeping, then matching.
    pub fn plan(&mut self, now: Timestamp, in_flight: &mut InFlight) -> Vec<Action> {
        // Only the holds of needs that changed can need settling: a commit
        // looks at those, not at every open hold.
        let touched = std::mem::take(&mut self.touched);
        let scope = (!std::mem::take(&mut self.sweep_all)).then_some(&touched);
        let mut actions = self.chores(now, in_flight, scope);
        actions.extend(self.match_needs(now, in_flight));
        actions
    }

    /// Follow-ups that the state calls for: settle holds whose need moved
    /// on, finish half-done proposals, expire referrals past their deadline,
    /// accept proposals to donations. Also run on a timer.
    pub fn housekeeping(&self, now: Timestamp, in_flight: &mut InFlight) -> Vec<Action> {
        self.chores(now, in_flight, None)
    }

    /// Housekeeping, for the holds of `needs` only, or of every need.
    fn chores(&self, now: Timestamp, in_flight: &mut InFlight, needs: Option<&BTreeSet<NeedId>>) -> Vec<Action> {
        let mut actions = Vec::new();

        // Settle holds whose need has moved on, and finish half-done proposals.
        let holds = match needs {
            None => self.holds(),
            Some(needs) => needs
                .iter()
                .flat_map(|need| {
                    self.holds_by_need
                        .get(need)
                        .into_iter()
                        .flatten()
                        .map(move |(target, hold)| (*target, *hold, *need))
                })
                .collect(),
        };
        for (target, hold, need_id) in holds {
            if in_flight.holds(&hold) || in_flight.settling.contains_key(&hold) {
                continue;
            }
            let Some(need) = self.needs.get(&need_id) else { continue };
            let live = need.proposal.filter(|p| p.hold == hold && p.target == target);
            match (need.status, live) {
                (NeedStatus::Proposed, Some(_)) => {}
                (NeedStatus::Accepted | NeedStatus::Fulfilled, Some(_)) => {
                    in_flight.settling.insert(hold, target);
                    actions.push(Action::Confirm { target, hold });
                }
                (status, None) if status.awaits_match() && hold == hold_id(need_id, need.proposals_made + 1) => {
                    in_flight.needs.insert(need_id, status);
                    actions.push(Action::CompleteProposal {
                        need: need_id,
                        target,
                        hold,
                    });
                }
                (status, _) => {
                    let reason = match status {
                        NeedStatus::Declined => ReleaseReason::Declined,
                        NeedStatus::Expired => ReleaseReason::Expired,
                        _ => ReleaseReason::Cancelled,
                    };
                    in_flight.settling.insert(hold, target);
                    actions.push(Action::Release { target, hold, reason });
                }
            }
        }

        // Referrals past their deadline; donation proposals not yet accepted.
        let due = self.proposed.iter().take_while(|(at, _)| *at <= now).map(|(_, id)| id);
        for (id, need) in due.filter_map(|id| Some((id, self.needs.get(id)?))) {
            let Some(proposal) = need.proposal.filter(|_| need.status == NeedStatus::Proposed) else {
                continue;
            };
            if in_flight.needs.contains_key(id) {
                continue;
            }
            match proposal.target {
                Target::Provider(_) if proposal.deadline <= now => {
                    in_flight.needs.insert(*id, NeedStatus::Proposed);
                    actions.push(Action::Expire {
                        need: *id,
                        hold: proposal.hold,
                    });
                }
                Target::Donation(_) => {
                    in_flight.needs.insert(*id, NeedStatus::Proposed);
                    actions.push(Action::AcceptDonation {
                        need: *id,
                        target: proposal.target,
                    });
                }
                Target::Provider(_) => {}
            }
        }
        actions
    }

    /// Matches the needs that wait, all together, with the matching engine:
    /// each to an eligible target with room, or the waitlist. Waitlisted needs
    /// are looked at again only when a target they could use gained room
    /// (see `revisit`). `in_flight` is updated
    /// with what is planned, so a caller that executes it later (or a replay
    /// that never does) plans the same way.
    pub fn match_needs(&mut self, now: Timestamp, in_flight: &mut InFlight) -> Vec<Action> {
        // The optimum for people alone: most placed by priority tier, then least distance.
        self.compile_sites();
        self.note_openings(now);
        let spoken = &in_flight.spoken;
        let revisit = self.revisit(now, spoken);
        let mut problem = refer_matching::Problem::default();
        let mut pools: Vec<Target> = Vec::new();
        let mut pool_of: BTreeMap<(Target, NeedKind), usize> = BTreeMap::new();
        let mut waiting: Vec<(NeedId, BTreeSet<Target>, Cohesion)> = Vec::new();
        for need_id in self.queue(in_flight, &revisit.needs) {
            if in_flight.needs.contains_key(&need_id) {
                continue;
            }
            let need = &self.needs[&need_id];
            // Its next hold is placed already (a crash between hold and
            // proposal): housekeeping completes the proposal. Matching it
            // again would count those units twice.
            let next = hold_id(need_id, need.proposals_made + 1);
            if self
                .holds_by_need
                .get(&need_id)
                .is_some_and(|holds| holds.iter().any(|(_, h)| *h == next))
            {
                continue;
            }
            let request = need.request.as_ref().expect("queued needs are requested");
            let kind = request.spec.kind;
            let group_sites = self.group_sites(need_id, in_flight);
            let cohesion = request.group.map_or(Cohesion::NoPreference, |g| g.cohesion);
            let avoid = if cohesion == Cohesion::KeepApart {
                group_sites.clone()
            } else {
                BTreeSet::new()
            };
            let mut options = Vec::new();
            let found = match &revisit.only {
                Some(sites) if need.status == NeedStatus::Waitlisted => {
                    self.options_among(need_id, sites, now, spoken, &avoid)
                }
                _ => None,
            };
            let found = found.unwrap_or_else(|| self.candidates(need, now, spoken, &avoid));
            for (km, target) in found {
                let pool = *pool_of.entry((target, kind)).or_insert_with(|| {
                    problem.capacity.push(self.free(target, kind, spoken));
                    pools.push(target);
                    pools.len() - 1
                });
                // Keeping a group together: its sites count as no distance at all.
                let km = if cohesion == Cohesion::KeepTogether && group_sites.contains(&target) {
                    0
                } else {
                    km
                };
                options.push((pool, km));
            }
            let juvenile = request.spec.profile.age_band == AgeBand::Juvenile;
            let tier = (request.spec.urgency as u8) * 2 + u8::from(!juvenile);
            problem.needs.push(refer_matching::Need {
                tier,
                units: request.spec.units(),
                options,
            });
            waiting.push((need_id, group_sites, cohesion));
        }
        let assignment = refer_matching::solve_batch(&problem);

        let mut actions = Vec::new();
        // Two members of a group kept apart may not land at one site in one batch.
        let mut apart: BTreeSet<(refer_domain::ids::GroupId, NeedKind, Target)> = BTreeSet::new();
        for ((need_id, _, cohesion), choice) in waiting.into_iter().zip(assignment) {
            let need = &self.needs[&need_id];
            let request = need.request.as_ref().expect("queued needs are requested");
            match choice {
                Some(pool) => {
                    let target = pools[pool];
                    if let (Cohesion::KeepApart, Some(group)) = (cohesion, request.group) {
                        if !apart.insert((group.group, request.spec.kind, target)) {
                            continue; // planned again once the other member's proposal shows
                        }
                    }
                    let hold = hold_id(need_id, need.proposals_made + 1);
                    let units = request.spec.units();
                    in_flight.plan_hold(hold, target, need_id, units, request.spec.kind);
                    in_flight.needs.insert(need_id, need.status);
                    actions.push(Action::Propose {
                        need: need_id,
                        target,
                        hold,
                        units,
                    });
                }
                None if need.status != NeedStatus::Waitlisted => {
                    in_flight.needs.insert(need_id, need.status);
                    actions.push(Action::Waitlist {
                        need: need_id,
                        attempt: need.proposals_made,
                    });
                }
                None => {}
            }
        }
        actions
    }

    /// Forgets in-flight marks that the stream has caught up with (or that
    /// will never land), so the capacity they spoke for counts from the
    /// state. Only the marks of needs the last folded commit touched can have
    /// landed; their hold ids are derived from the need and the attempt, so
    /// they are found without a scan of everything in flight.
    pub fn settle_touched(&mut self, in_flight: &mut InFlight) {
        for need_id in std::mem::take(&mut self.just_touched) {
            let Some(need) = self.needs.get(&need_id) else { continue };
            if in_flight
                .needs
                .get(&need_id)
                .is_some_and(|status| *status != need.status)
            {
                in_flight.needs.remove(&need_id);
            }
            for attempt in 1..=need.proposals_made + 1 {
                let hold = hold_id(need_id, attempt);
                if let Some((target, _, _, _)) = in_flight.holds.get(&hold) {
                    let moved_on = need.proposals_made > 0 && need.proposal.map(|p| p.hold) == Some(hold);
                    if moved_on || self.holds_at(*target, hold) {
                        in_flight.drop_hold(hold);
                    }
                }
                if let Some(target) = in_flight.settling.get(&hold) {
                    if !self.holds_at(*target, hold) {
                        in_flight.settling.remove(&hold);
                    }
                }
            }
        }
    }

    /// Whether `hold` is open at `target`.
    fn holds_at(&self, target: Target, hold: HoldId) -> bool {
        match target {
            Target::Provider(id) => self.providers.get(&id).is_some_and(|p| p.holds.contains_key(&hold)),
            Target::Donation(id) => self.donations.get(&id).is_some_and(|d| d.holds.contains_key(&hold)),
        }
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

    #[test]
    fn a_bed_and_a_counseling_slot_at_one_site_are_counted_apart() {
        let mut state = Projection::default();
        let site = Uuid::from_u128(1);
        let registered = ProviderEvent::Registered(Box::new(sample::shelter(OrgId::from_u128(1))));
        state.apply(1, site, &Event::Provider(registered));
        for service in [ServiceKind::ShelterBed, ServiceKind::Counseling] {
            state.apply(
                2,
                site,
                &Event::Provider(ProviderEvent::CapacitySet { service, declared: 1 }),
            );
        }
        let placement = PlacementId::from_u128(9);
        for (i, kind) in [(10, NeedKind::Shelter), (11, NeedKind::Counseling)] {
            let mut request = sample::shelter_need(OrgId::from_u128(2), placement, None);
            request.spec.kind = kind;
            state.apply(3, Uuid::from_u128(i), &Event::Need(NeedEvent::Requested(request)));
        }
        let actions = state.plan(NIGHT, &mut InFlight::default());
        let proposed: Vec<_> = actions.iter().filter(|a| matches!(a, Action::Propose { .. })).collect();
        assert_eq!(proposed.len(), 2, "{actions:?}");
        // A third need for a bed finds none left, in flight or not.
        let mut request = sample::shelter_need(OrgId::from_u128(2), PlacementId::from_u128(8), None);
        request.spec.kind = NeedKind::Shelter;
        state.apply(4, Uuid::from_u128(12), &Event::Need(NeedEvent::Requested(request)));
        let mut in_flight = InFlight::default();
        let actions = state.plan(NIGHT, &mut in_flight);
        assert!(
            actions.contains(&Action::Waitlist {
                need: NeedId::from_u128(12),
                attempt: 0
            }),
            "{actions:?}"
        );
    }

    #[test]
    fn room_at_one_site_revisits_only_the_waitlisted_needs_it_could_take() {
        use refer_domain::profile::Gender;
        // A takes women, B takes men; both full. A woman and a man wait.
        let mut state = Projection::default();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut men = sample::shelter(OrgId::from_u128(1));
        men.eligibility.genders = [Gender::Male].into();
        for (id, profile) in [(a, sample::shelter(OrgId::from_u128(1))), (b, men)] {
            state.apply(1, id, &Event::Provider(ProviderEvent::Registered(Box::new(profile))));
        }
        let woman = sample::shelter_need(OrgId::from_u128(2), PlacementId::from_u128(8), None);
        let mut man = sample::shelter_need(OrgId::from_u128(2), PlacementId::from_u128(9), None);
        man.spec.profile.gender = Gender::Male;
        let (her, him) = (NeedId::from_u128(10), NeedId::from_u128(11));
        for (id, request) in [(her, woman), (him, man)] {
            state.apply(2, id.as_uuid(), &Event::Need(NeedEvent::Requested(request)));
        }
        let mut in_flight = InFlight::default();
        let actions = state.plan(NIGHT, &mut in_flight);
        assert_eq!(actions.len(), 2, "both wait: {actions:?}");
        for id in [her, him] {
            state.apply(3, id.as_uuid(), &Event::Need(NeedEvent::Waitlisted));
        }
        state.settle_touched(&mut in_flight);
        assert!(state.plan(NIGHT, &mut in_flight).is_empty(), "nothing changed");

        let bed = |declared| ProviderEvent::CapacitySet {
            service: ServiceKind::ShelterBed,
            declared,
        };
        state.apply(4, a, &Event::Provider(bed(1)));
        state.compile_sites();
        assert_eq!(
            state.revisit(NIGHT, &in_flight.spoken).needs,
            vec![her],
            "only the woman can use A"
        );
        state.apply(5, b, &Event::Provider(bed(1)));
        let actions = state.plan(NIGHT, &mut in_flight);
        let proposed: Vec<NeedId> = actions
            .iter()
            .filter_map(|x| match x {
                Action::Propose { need, .. } => Some(*need),
                _ => None,
            })
            .collect();
        // A's room was looked at above (and the woman is still waiting for
        // it); B's room brings back only the man.
        assert_eq!(proposed, vec![him], "{actions:?}");
    }

    #[test]
    fn a_need_waitlisted_overnight_is_proposed_when_the_site_opens() {
        // The only shelter opens at 09:00, seven hours after NIGHT.
        let mut state = Projection::default();
        let site = Uuid::from_u128(1);
        let mut profile = sample::shelter(OrgId::from_u128(1));
        profile.hours = sample::thursday_day_hours();
        state.apply(1, site, &Event::Provider(ProviderEvent::Registered(Box::new(profile))));
        let bed = ProviderEvent::CapacitySet {
            service: ServiceKind::ShelterBed,
            declared: 1,
        };
        state.apply(2, site, &Event::Provider(bed));
        let need = NeedId::from_u128(10);
        let request = sample::shelter_need(OrgId::from_u128(2), PlacementId::from_u128(8), None);
        state.apply(3, need.as_uuid(), &Event::Need(NeedEvent::Requested(request)));
        let mut in_flight = InFlight::default();
        let waitlisted = Action::Waitlist { need, attempt: 0 };
        assert_eq!(state.plan(NIGHT, &mut in_flight), vec![waitlisted]);
        state.apply(4, need.as_uuid(), &Event::Need(NeedEvent::Waitlisted));
        state.settle_touched(&mut in_flight);

        assert!(!state.note_openings(NIGHT.plus_secs(6 * 3600)), "08:00: still closed");
        assert!(state.note_openings(NIGHT.plus_secs(7 * 3600 + 30)), "09:00:30: open");
        let actions = state.match_needs(NIGHT.plus_secs(7 * 3600 + 30), &mut in_flight);
        assert!(
            matches!(actions.as_slice(), [Action::Propose { need: n, .. }] if *n == need),
            "{actions:?}"
        );
    }

    #[test]
    fn needs_waiting_together_are_solved_together() {
        use refer_domain::profile::Gender;
        // Site X (near) takes women and men; site Y (farther) only women. One bed each.
        let mut state = Projection::default();
        let (x, y) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut near = sample::shelter(OrgId::from_u128(1));
        near.location = sample::location(33.78, -118.19, "US-06-037");
        near.eligibility.genders = [Gender::Female, Gender::Male].into();
        let mut far = sample::shelter(OrgId::from_u128(1));
        far.location = sample::location(34.00, -118.25, "US-06-037");
        for (id, profile) in [(x, near), (y, far)] {
            state.apply(1, id, &Event::Provider(ProviderEvent::Registered(Box::new(profile))));
            let beds = ProviderEvent::CapacitySet {
                service: ServiceKind::ShelterBed,
                declared: 1,
            };
            state.apply(2, id, &Event::Provider(beds));
        }
        // A woman (first in line) could go to either; a man only to X.
        let woman = sample::shelter_need(OrgId::from_u128(2), PlacementId::from_u128(8), None);
        let mut man = sample::shelter_need(OrgId::from_u128(2), PlacementId::from_u128(9), None);
        man.spec.profile.gender = Gender::Male;
        state.apply(3, Uuid::from_u128(10), &Event::Need(NeedEvent::Requested(woman)));
        state.apply(4, Uuid::from_u128(11), &Event::Need(NeedEvent::Requested(man)));
        let actions = state.match_needs(NIGHT, &mut InFlight::default());
        let target = |need: u128| {
            actions.iter().find_map(|a| match a {
                Action::Propose { need: n, target, .. } if *n == NeedId::from_u128(need) => Some(*target),
                _ => None,
            })
        };
        // Nearest-first would give X to the woman and leave the man without a bed.
        assert_eq!(target(10), Some(Target::Provider(ProviderId::from_uuid(y))));
        assert_eq!(target(11), Some(Target::Provider(ProviderId::from_uuid(x))));
    }
}
