//! A whole night, replayed: needs arriving incident by incident, providers
//! answering referrals after a delay (declining some), capacity added as
//! the night goes on. Three outcomes of the same night, side by side:
//!
//! - `Night::live`: the matcher's real planner (`planner::Projection`) under
//!   a simulated clock, its decisions carried out through the domain's own
//!   `decide` as the matcher's executor does;
//! - `Night::greedy`: each need at the nearest site with room on arrival
//!   (and waitlisted needs in arrival order when capacity appears);
//! - `Night::hindsight`: the exact optimum of the same needs with every
//!   unit that existed at any time and every decline known in advance.
//!
//! Pure and seeded: the same seed gives the same night and outcomes.

use crate::instance::{DonatedResource, Instance, OpenNeed, ProviderSite};
use crate::planner::{Decision, Ledger, Policy, Projection};
use crate::scenario::{Rng, Scenario, NIGHT};
use crate::{tier, Catalog, TIERS};
use refer_domain::donation::{Donation, DonationCommand};
use refer_domain::geo::GeoPoint;
use refer_domain::ids::{DonationId, GroupId, HoldId, NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::kinds::{NeedKind, ServiceKind};
use refer_domain::need::{DeclineReason, Need, NeedCommand, NeedRequest, NeedStatus, Proposal, Target};
use refer_domain::profile::AgeBand;
use refer_domain::provider::{HoldRequest, Provider, ProviderCommand, ReleaseReason};
use refer_domain::request::{Cohesion, Urgency};
use refer_domain::{Aggregate, Event, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Branch-and-bound nodes the hindsight may use per part of the night (a
/// part not finished within them is reported: `Outcome::proven` is false,
/// and the ratios against it are then upper estimates).
pub const HINDSIGHT_NODES: u64 = 3_000;

/// Priority weights by tier (immediate juvenile first): a tier counts twice
/// the next.
pub const WEIGHTS: [u64; TIERS] = [32, 16, 8, 4, 2, 1];

/// The kinds of night the replay generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NightKind {
    /// About half the beds asked for exist.
    Scarce,
    /// Capacity for nearly everyone.
    Ample,
    /// A scarce night with one operation: 15 people (14 adults, 1 juvenile)
    /// recovered together at once.
    Operation,
}

impl NightKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Scarce => "scarce",
            Self::Ample => "ample",
            Self::Operation => "operation",
        }
    }
}

/// People recovered together, requested in one go.
#[derive(Clone, Debug)]
pub struct Incident {
    pub at: Timestamp,
    /// Their needs, person by person (a person's needs are consecutive).
    pub needs: Vec<OpenNeed>,
}

/// Capacity a provider adds during the night.
#[derive(Clone, Debug)]
pub struct Addition {
    pub at: Timestamp,
    pub provider: ProviderId,
    pub service: ServiceKind,
    /// Units added (declared capacity grows by this).
    pub units: u32,
}

/// A generated night.
#[derive(Clone, Debug)]
pub struct Night {
    pub kind: NightKind,
    pub seed: u64,
    pub start: Timestamp,
    /// Sites with the capacity they declare at the start.
    pub providers: Vec<ProviderSite>,
    pub donations: Vec<DonatedResource>,
    /// In order of arrival.
    pub incidents: Vec<Incident>,
    /// In order of time.
    pub additions: Vec<Addition>,
    /// Chance that a provider declines a given need.
    pub decline_rate: f64,
    /// A provider answers between these many seconds after a referral.
    pub answer_secs: (i64, i64),
    /// How long needs keep arriving.
    pub length_secs: i64,
}

/// The hash of a (need, target) pair in `0..1`, for a seed and a purpose:
/// declines and delays are fixed per pair, so hindsight can know them.
fn pair_hash(seed: u64, need: NeedId, target: Target, salt: u64) -> f64 {
    let t = match target {
        Target::Provider(p) => p.as_uuid().as_u128(),
        Target::Donation(d) => d.as_uuid().as_u128() ^ 1,
    };
    let n = need.as_uuid().as_u128();
    let mut rng = Rng::new(seed ^ salt ^ (n as u64) ^ ((n >> 64) as u64).rotate_left(17) ^ (t as u64).rotate_left(31));
    rng.next_u64();
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

impl Night {
    /// A night of `kind` from `seed`: about 130 people in about 66 incidents
    /// over 150 minutes, in one metropolitan area.
    pub fn generate(kind: NightKind, seed: u64) -> Self {
        Self::sized(kind, seed, 130)
    }

    /// A night of `kind` for about `people` people (the operation's 15
    /// among them), with sites in proportion (40 per 130 people when
    /// scarce, 120 when ample).
    pub fn sized(kind: NightKind, seed: u64, people: usize) -> Self {
        let (per_130, capacity_factor) = match kind {
            NightKind::Scarce | NightKind::Operation => (40, 0.6),
            NightKind::Ample => (120, 1.0),
        };
        let providers = (per_130 * people).div_ceil(130).max(3);
        let people = match kind {
            NightKind::Operation => people.saturating_sub(15).max(1),
            _ => people,
        };
        let scenario = Scenario {
            seed,
            providers,
            donations: 3,
            people,
            group_size: 3,
            area: (33.5, -118.8, 34.5, -117.6),
            capacity_factor,
            stale_share: 0.0,
        };
        let instance = scenario.instance();
        let length_secs = 150 * 60;
        let mut rng = Rng::new(seed ^ 0x006e_6967_6874);

        // Incidents: a group, or a person alone (consecutive needs).
        let mut incidents: Vec<Incident> = Vec::new();
        let mut last: Option<(Option<GroupId>, PlacementId)> = None;
        for need in instance.needs {
            let key = (need.group.map(|g| g.group), need.placement);
            let same = last.is_some_and(|(g, p)| match (g, key.0) {
                (Some(a), Some(b)) => a == b,
                (None, None) => p == key.1,
                _ => false,
            });
            if !same {
                incidents.push(Incident {
                    at: NIGHT,
                    needs: Vec::new(),
                });
            }
            last = Some(key);
            incidents.last_mut().expect("pushed").needs.push(need);
        }
        if kind == NightKind::Operation {
            incidents.push(Self::operation(seed));
        }
        for incident in &mut incidents {
            incident.at = NIGHT.plus_secs(rng.below(length_secs as u64) as i64);
        }
        incidents.sort_by_key(|i| i.at);

        // Some beds appear during the night: about one in six held back.
        let mut providers = instance.providers;
        let mut additions = Vec::new();
        for p in &mut providers {
            for (service, free) in p.free.iter_mut() {
                if *service == ServiceKind::ShelterBed && *free > 0 && rng.chance(0.3) {
                    let units = 1 + rng.below(u64::from(*free).div_ceil(2)) as u32;
                    *free -= units;
                    additions.push(Addition {
                        at: NIGHT.plus_secs(rng.below(length_secs as u64) as i64),
                        provider: p.id,
                        service: *service,
                        units,
                    });
                }
            }
        }
        additions.sort_by_key(|a| (a.at, a.provider));
        Self {
            kind,
            seed,
            start: NIGHT,
            providers,
            donations: instance.donations,
            incidents,
            additions,
            decline_rate: 0.12,
            answer_secs: (24, 14 * 60),
            length_secs,
        }
    }

    /// The operation: 15 people recovered at one place, 14 adults and 1
    /// juvenile, all immediate.
    fn operation(seed: u64) -> Incident {
        let scenario = Scenario {
            seed: seed ^ 0x0b5e,
            providers: 0,
            donations: 0,
            people: 15,
            group_size: 15,
            area: (33.5, -118.8, 34.5, -117.6),
            capacity_factor: 1.0,
            stale_share: 0.0,
        };
        let mut needs = Vec::new();
        let mut people = 0;
        let mut last = None;
        for mut need in scenario.instance().needs {
            if last != Some(need.placement) {
                people += 1;
                last = Some(need.placement);
            }
            need.id = NeedId::from_u128(need.id.as_uuid().as_u128() + 0x0010_0000);
            need.placement = PlacementId::from_u128(need.placement.as_uuid().as_u128() + 0x0010_0000);
            if let Some(g) = &mut need.group {
                g.group = GroupId::from_u128(g.group.as_uuid().as_u128() + 0x0010_0000);
            }
            need.spec.urgency = Urgency::Immediate;
            need.spec.profile.age_band = if people == 1 { AgeBand::Juvenile } else { AgeBand::Adult };
            needs.push(need);
        }
        Incident { at: NIGHT, needs }
    }

    /// Every need of the night, in order of arrival.
    pub fn needs(&self) -> impl Iterator<Item = &OpenNeed> {
        self.incidents.iter().flat_map(|i| &i.needs)
    }

    /// Whether `target` declines `need` (fixed for the pair).
    pub fn declines(&self, need: NeedId, target: Target) -> bool {
        matches!(target, Target::Provider(_)) && pair_hash(self.seed, need, target, 0xdec1) < self.decline_rate
    }

    /// How long `target` takes to answer a referral of `need`.
    pub fn answer_after(&self, need: NeedId, target: Target) -> i64 {
        let (low, high) = self.answer_secs;
        low + ((high - low) as f64 * pair_hash(self.seed, need, target, 0xa45)) as i64
    }

    /// Bed units asked for (party sizes) and bed units that exist at some
    /// point of the night (providers' beds and hotel rooms).
    pub fn beds(&self) -> (u32, u32) {
        let asked = self
            .needs()
            .filter(|n| n.spec.kind == NeedKind::Shelter)
            .map(|n| n.spec.units())
            .sum();
        let providers: u32 = self
            .providers
            .iter()
            .map(|p| p.free.get(&ServiceKind::ShelterBed).copied().unwrap_or(0))
            .sum();
        let added: u32 = self
            .additions
            .iter()
            .filter(|a| a.service == ServiceKind::ShelterBed)
            .map(|a| a.units)
            .sum();
        let hotels: u32 = self
            .donations
            .iter()
            .filter(|d| d.kind == refer_domain::kinds::ResourceKind::HotelRoomNight)
            .map(|d| d.free)
            .sum();
        (asked, providers + added + hotels)
    }

    /// The providers with every unit they have at some point of the night.
    fn providers_at_most(&self) -> Vec<ProviderSite> {
        let mut providers = self.providers.clone();
        for a in &self.additions {
            if let Some(p) = providers.iter_mut().find(|p| p.id == a.provider) {
                *p.free.entry(a.service).or_insert(0) += a.units;
            }
        }
        providers
    }

    /// The night as one instance: every need, every unit that ever exists,
    /// each need barred from the targets that would decline it.
    pub fn hindsight_instance(&self) -> Instance {
        let providers = self.providers_at_most();
        let targets: Vec<Target> = providers
            .iter()
            .map(|p| Target::Provider(p.id))
            .chain(self.donations.iter().map(|d| Target::Donation(d.id)))
            .collect();
        let needs = self
            .needs()
            .map(|n| OpenNeed {
                exclude: targets.iter().copied().filter(|t| self.declines(n.id, *t)).collect(),
                ..n.clone()
            })
            .collect();
        Instance {
            now: self.start,
            fresh_for_secs: None,
            providers,
            donations: self.donations.clone(),
            needs,
        }
    }

    /// The exact hindsight optimum (per tier, then distance).
    pub fn hindsight(&self) -> Outcome {
        let instance = self.hindsight_instance();
        let (catalog, free) = instance.catalog();
        let requests = instance.requests();
        let stale = instance.stale();
        let stock = crate::Stock {
            free: &|s| free[s],
            stale: &|s| stale[s],
        };
        let (choices, proven) = crate::assign::assign_exact(&catalog, stock, instance.now, &requests, HINDSIGHT_NODES);
        let placed = instance
            .needs
            .iter()
            .zip(&choices)
            .filter_map(|(n, c)| c.map(|(site, _)| (n.id, catalog.site(site).target)))
            .collect();
        let mut outcome = self.outcome(&placed);
        outcome.proven = proven;
        outcome
    }

    /// Each need on arrival at the nearest site with room that will not
    /// decline it (a decline is answered and the next nearest tried; the
    /// order of events is the same); waitlisted needs, in arrival order,
    /// when capacity is added. A person's bed first, the rest of their needs
    /// measured from it.
    pub fn greedy(&self) -> Outcome {
        let instance = self.hindsight_instance();
        let (catalog, _) = instance.catalog();
        // Free units now, per catalog site: the start's capacity.
        let start = Instance {
            providers: self.providers.clone(),
            ..instance.clone()
        };
        let (_, mut free) = start.catalog();
        let site_of = |provider: ProviderId, service: ServiceKind| {
            catalog
                .sites_of(Target::Provider(provider))
                .find(|&i| matches!(catalog.site(i).offer, crate::Offer::Service { service: s, .. } if s == service))
        };
        let needs: Vec<&OpenNeed> = instance.needs.iter().collect();
        let index: BTreeMap<NeedId, usize> = needs.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
        let mut placed: BTreeMap<NeedId, Target> = BTreeMap::new();
        let mut beds: BTreeMap<PlacementId, GeoPoint> = BTreeMap::new();
        let mut apart: BTreeSet<(GroupId, NeedKind, Target)> = BTreeSet::new();
        let mut waiting: Vec<usize> = Vec::new();
        let mut additions = self.additions.iter().peekable();
        let mut try_place = |i: usize, free: &mut Vec<u32>, placed: &mut BTreeMap<NeedId, Target>| -> bool {
            let n = needs[i];
            let mut barred = n.exclude.clone();
            let group = n.group.filter(|g| g.cohesion == Cohesion::KeepApart);
            if let Some(g) = group {
                barred.extend(
                    apart
                        .iter()
                        .filter(|(a, k, _)| *a == g.group && *k == n.spec.kind)
                        .map(|x| x.2),
                );
            }
            let query = catalog.query(&n.spec, &barred);
            let anchor = (n.spec.kind != NeedKind::Shelter)
                .then(|| beds.get(&n.placement))
                .flatten();
            let best = catalog
                .options(&query, instance.now, |s| free[s])
                .into_iter()
                .map(|(s, km)| (anchor.map_or(km, |b| b.distance_km(&catalog.site(s).location.point)), s))
                .min();
            let Some((_, site)) = best else { return false };
            free[site] -= query.units();
            let target = catalog.site(site).target;
            placed.insert(n.id, target);
            if n.spec.kind == NeedKind::Shelter {
                beds.insert(n.placement, catalog.site(site).location.point);
            }
            if let Some(g) = group {
                apart.insert((g.group, n.spec.kind, target));
            }
            true
        };
        for incident in &self.incidents {
            while let Some(a) = additions.next_if(|a| a.at <= incident.at) {
                if let Some(s) = site_of(a.provider, a.service) {
                    free[s] += a.units;
                }
                waiting.retain(|i| !try_place(*i, &mut free, &mut placed));
            }
            let mut order: Vec<usize> = incident.needs.iter().map(|n| index[&n.id]).collect();
            // A person's bed first.
            order.sort_by_key(|i| (needs[*i].placement, needs[*i].spec.kind != NeedKind::Shelter, *i));
            order.sort_by_key(|i| incident.needs.iter().position(|n| n.placement == needs[*i].placement));
            for i in order {
                if !try_place(i, &mut free, &mut placed) {
                    waiting.push(i);
                }
            }
        }
        for a in additions {
            if let Some(s) = site_of(a.provider, a.service) {
                free[s] += a.units;
            }
            waiting.retain(|i| !try_place(*i, &mut free, &mut placed));
        }
        self.outcome(&placed)
    }

    /// Measures where needs were placed: counts by tier, kilometres (from
    /// where the person is for a bed, from their bed for the rest), and
    /// every safety rule checked again from scratch.
    pub fn outcome(&self, placed: &BTreeMap<NeedId, Target>) -> Outcome {
        let instance = self.hindsight_instance();
        let (catalog, _) = instance.catalog();
        let mut out = Outcome::default();
        let location = |target: Target, kind: NeedKind| {
            catalog
                .sites_of(target)
                .find(|s| catalog.site(*s).offer.serves(kind))
                .map(|s| catalog.site(s).location.point)
        };
        let mut beds: BTreeMap<PlacementId, GeoPoint> = BTreeMap::new();
        for n in instance.needs.iter().filter(|n| n.spec.kind == NeedKind::Shelter) {
            if let Some(point) = placed.get(&n.id).and_then(|t| location(*t, NeedKind::Shelter)) {
                beds.insert(n.placement, point);
            }
        }
        let mut apart: BTreeSet<(GroupId, NeedKind, Target)> = BTreeSet::new();
        for n in &instance.needs {
            let t = usize::from(tier(&n.spec));
            out.needs_by_tier[t] += 1;
            let Some(target) = placed.get(&n.id) else { continue };
            out.placed_by_tier[t] += 1;
            let point = location(*target, n.spec.kind);
            let from = match n.spec.kind {
                NeedKind::Shelter => None,
                _ => beds.get(&n.placement).copied(),
            };
            if let Some(point) = point {
                out.total_km += u64::from(from.map_or_else(
                    || n.spec.constraints.origin.point.distance_km(&point),
                    |bed| bed.distance_km(&point),
                ));
            }
            // Safety, from scratch: eligibility, distance, regions to avoid
            // (all in the catalog's query, capacity aside), keep-apart.
            let query = catalog.query(&n.spec, &[]);
            let allowed = catalog
                .sites_of(*target)
                .any(|s| catalog.option_at(s, &query, instance.now, || u32::MAX).is_some());
            let kept_apart = n
                .group
                .filter(|g| g.cohesion == Cohesion::KeepApart)
                .is_none_or(|g| apart.insert((g.group, n.spec.kind, *target)));
            if !allowed || !kept_apart {
                out.unsafe_placements += 1;
            }
        }
        out
    }

    /// The night through the matcher's real planner, under `policy`, each
    /// incident's needs in one commit (as intake writes a group).
    pub fn live(&self, policy: Policy) -> Outcome {
        self.live_with(policy, true)
    }

    /// The same, with each incident's needs in one commit when
    /// `group_commit`, else one person per commit (as intake wrote a group
    /// before: compared in the bench).
    pub fn live_with(&self, policy: Policy, group_commit: bool) -> Outcome {
        let mut live = Live::new(self);
        live.state.policy = policy;
        live.group_commit = group_commit;
        live.run()
    }
}

/// How a night ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub placed_by_tier: [u32; TIERS],
    pub needs_by_tier: [u32; TIERS],
    /// Kilometres that count, summed over placed needs.
    pub total_km: u64,
    /// Placements that break a safety rule (must be 0).
    pub unsafe_placements: u32,
    /// Needs left waiting at the end while a unit they could use is idle.
    pub idle_while_waiting: u32,
    /// The hindsight optimum is proven (the search finished).
    pub proven: bool,
}

impl Outcome {
    pub fn placed(&self) -> u32 {
        self.placed_by_tier.iter().sum()
    }

    pub fn weighted(&self) -> u64 {
        self.placed_by_tier
            .iter()
            .zip(WEIGHTS)
            .map(|(p, w)| u64::from(*p) * w)
            .sum()
    }

    pub fn mean_km(&self) -> f64 {
        self.total_km as f64 / f64::from(self.placed().max(1))
    }
}

/// What is scheduled in the simulated night.
#[derive(Clone, Debug)]
enum Happening {
    Arrive(usize),
    Add(usize),
    Answer { need: NeedId, hold: HoldId },
    Tick,
}

/// The live replay: the planner's state and ledger, a simulated clock, and
/// an executor that carries decisions out through the domain's `decide`.
struct Live<'a> {
    night: &'a Night,
    state: Projection,
    ledger: Ledger,
    seq: u64,
    now: Timestamp,
    agenda: BTreeMap<(Timestamp, u64), Happening>,
    scheduled: u64,
    /// An incident's needs are folded in one commit, then planned.
    group_commit: bool,
}

/// How often the matcher's timer looks (housekeeping, openings, waits).
const TICK_SECS: i64 = 30;

impl<'a> Live<'a> {
    fn new(night: &'a Night) -> Self {
        let mut live = Self {
            night,
            state: Projection::default(),
            ledger: Ledger::default(),
            seq: 0,
            now: night.start,
            agenda: BTreeMap::new(),
            scheduled: 0,
            group_commit: false,
        };
        let mut events = Vec::new();
        for (i, p) in night.providers.iter().enumerate() {
            let id = p.id.as_uuid();
            events.extend(
                p.events(OrgId::from_u128(1), format!("site {i}"))
                    .into_iter()
                    .map(|e| (id, Event::Provider(e))),
            );
        }
        for d in &night.donations {
            events.push((d.id.as_uuid(), Event::Donation(d.event(OrgId::from_u128(3)))));
        }
        live.fold(events);
        for (i, incident) in night.incidents.iter().enumerate() {
            live.schedule(incident.at, Happening::Arrive(i));
        }
        for (i, a) in night.additions.iter().enumerate() {
            live.schedule(a.at, Happening::Add(i));
        }
        let mut t = night.start;
        while t <= night.start.plus_secs(night.length_secs + 6 * 3600) {
            live.schedule(t, Happening::Tick);
            t = t.plus_secs(TICK_SECS);
        }
        live
    }

    fn schedule(&mut self, at: Timestamp, happening: Happening) {
        self.scheduled += 1;
        self.agenda.insert((at, self.scheduled), happening);
    }

    fn fold(&mut self, events: impl IntoIterator<Item = (Uuid, Event)>) {
        for (id, event) in events {
            self.seq += 1;
            self.state.apply(self.seq, id, &event);
            self.state.settle_touched(&mut self.ledger);
        }
    }

    fn run(mut self) -> Outcome {
        while let Some(((at, _), happening)) = self.agenda.pop_first() {
            self.now = at;
            match happening {
                Happening::Arrive(i) => {
                    // As intake writes a group today: one person per commit,
                    // the matcher planning after each.
                    let needs = &self.night.incidents[i].needs;
                    let mut person = 0;
                    while person < needs.len() {
                        let placement = needs[person].placement;
                        let end = match self.group_commit {
                            true => needs.len(),
                            false => needs[person..]
                                .iter()
                                .position(|n| n.placement != placement)
                                .map_or(needs.len(), |k| person + k),
                        };
                        let events: Vec<(Uuid, Event)> = needs[person..end]
                            .iter()
                            .map(|n| {
                                let request = NeedRequest {
                                    placement: n.placement,
                                    group: n.group,
                                    agency: OrgId::from_u128(2),
                                    spec: n.spec.clone(),
                                };
                                (
                                    n.id.as_uuid(),
                                    Event::Need(refer_domain::need::NeedEvent::Requested(request)),
                                )
                            })
                            .collect();
                        self.fold(events);
                        self.plan();
                        person = end;
                    }
                }
                Happening::Add(i) => {
                    let a = &self.night.additions[i];
                    let declared = self
                        .state
                        .providers
                        .get(&a.provider)
                        .map_or(0, |p| p.units(a.service).declared);
                    self.provider_do(
                        a.provider,
                        ProviderCommand::SetCapacity {
                            service: a.service,
                            declared: declared + a.units,
                        },
                    );
                    self.plan();
                }
                Happening::Answer { need, hold } => {
                    let pending = self
                        .state
                        .needs
                        .get(&need)
                        .filter(|n| n.status == NeedStatus::Proposed)
                        .and_then(|n| n.proposal)
                        .filter(|p| p.hold == hold);
                    if let Some(p) = pending {
                        let command = if self.night.declines(need, p.target) {
                            NeedCommand::Decline {
                                by: p.target,
                                reason: DeclineReason::NoCapacity,
                            }
                        } else {
                            NeedCommand::Accept { by: p.target }
                        };
                        self.need_do(need, command);
                        self.plan();
                    }
                }
                Happening::Tick => {
                    let chores = self.state.housekeeping(self.now, &mut self.ledger);
                    self.carry_out_all(&chores);
                    let mut more = Vec::new();
                    if self.state.note_openings(self.now) {
                        more = self.state.match_needs(self.now, &mut self.ledger);
                    }
                    self.carry_out_all(&more);
                    self.plan();
                }
            }
        }
        let placed: BTreeMap<NeedId, Target> = self
            .state
            .needs
            .iter()
            .filter(|(_, n)| matches!(n.status, NeedStatus::Accepted | NeedStatus::Fulfilled))
            .filter_map(|(id, n)| Some((*id, n.proposal?.target)))
            .collect();
        let mut outcome = self.night.outcome(&placed);
        outcome.idle_while_waiting = self.idle_while_waiting();
        outcome
    }

    /// Needs not placed at the end for which a site with room would do.
    fn idle_while_waiting(&mut self) -> u32 {
        self.state.compile_sites();
        let catalog: &Catalog = self.state.sites.as_ref().expect("compiled");
        let mut count = 0;
        for need in self.state.needs.values() {
            if matches!(
                need.status,
                NeedStatus::Accepted | NeedStatus::Fulfilled | NeedStatus::Cancelled
            ) {
                continue;
            }
            let Some(request) = &need.request else { continue };
            let mut excluded: Vec<Target> = need.excluded.iter().copied().collect();
            // A group kept apart: where a mate with this kind of need is
            // placed is no unit this need could use.
            if let Some(g) = request.group.filter(|g| g.cohesion == Cohesion::KeepApart) {
                excluded.extend(self.state.needs.values().filter_map(|mate| {
                    let r = mate.request.as_ref()?;
                    let placed = matches!(
                        mate.status,
                        NeedStatus::Proposed | NeedStatus::Accepted | NeedStatus::Fulfilled
                    );
                    (placed && r.group.is_some_and(|m| m.group == g.group) && r.spec.kind == request.spec.kind)
                        .then_some(mate.proposal?.target)
                }));
            }
            let query = catalog.query(&request.spec, &excluded);
            let free = |i: usize| {
                self.state
                    .free(crate::planner::site_pool_of(catalog.site(i)), &self.ledger)
            };
            if catalog.nearest(&query, self.now, free).is_some() {
                count += 1;
            }
        }
        count
    }

    /// Plans after a change and carries everything out, until nothing is left.
    fn plan(&mut self) {
        for _ in 0..64 {
            let decisions = self.state.plan(self.now, &mut self.ledger);
            if decisions.is_empty() {
                return;
            }
            self.carry_out_all(&decisions);
        }
    }

    fn carry_out_all(&mut self, decisions: &[Decision]) {
        for d in decisions {
            self.carry_out(d);
        }
    }

    fn provider_do(&mut self, id: ProviderId, command: ProviderCommand) -> bool {
        let state = self.state.providers.get(&id).cloned().unwrap_or_default();
        let Ok(events) = state.decide(&command, self.now) else {
            return false;
        };
        self.fold(events.into_iter().map(|e| (id.as_uuid(), Provider::wrap(e))));
        true
    }

    fn donation_do(&mut self, id: DonationId, command: DonationCommand) -> bool {
        let state = self.state.donations.get(&id).cloned().unwrap_or_default();
        let Ok(events) = state.decide(&command, self.now) else {
            return false;
        };
        self.fold(events.into_iter().map(|e| (id.as_uuid(), Donation::wrap(e))));
        true
    }

    fn need_do(&mut self, id: NeedId, command: NeedCommand) -> bool {
        let state = self.state.needs.get(&id).cloned().unwrap_or_default();
        let Ok(events) = state.decide(&command, self.now) else {
            return false;
        };
        self.fold(events.into_iter().map(|e| (id.as_uuid(), Need::wrap(e))));
        true
    }

    /// Carries a decision out as the matcher's executor does; one that an
    /// aggregate refuses is forgotten and its need planned again.
    fn carry_out(&mut self, decision: &Decision) {
        let done = match *decision {
            Decision::Propose {
                need,
                target,
                service,
                hold,
                units,
                expires_at,
            } => {
                let held = match target {
                    Target::Provider(p) => self.provider_do(
                        p,
                        ProviderCommand::PlaceHolds(vec![HoldRequest {
                            hold,
                            need,
                            service: service.expect("a provider's service"),
                            units,
                            expires_at,
                        }]),
                    ),
                    Target::Donation(d) => self.donation_do(
                        d,
                        DonationCommand::PlaceHold {
                            hold,
                            need,
                            units,
                            expires_at,
                        },
                    ),
                };
                held && self.propose(need, target, hold, expires_at)
            }
            Decision::CompleteProposal {
                need,
                target,
                hold,
                deadline,
            } if deadline > self.now => self.propose(need, target, hold, deadline),
            Decision::CompleteProposal { target, hold, .. } => self.settle(target, hold, Some(ReleaseReason::Expired)),
            Decision::AcceptDonation { need, target, hold } => {
                self.need_do(need, NeedCommand::Accept { by: target }) && self.settle(target, hold, None)
            }
            Decision::Waitlist { need, held_until, .. } => self.need_do(need, NeedCommand::waitlist(held_until)),
            Decision::Expire { need, target, hold } => {
                self.need_do(need, NeedCommand::Expire) && self.settle(target, hold, Some(ReleaseReason::Expired))
            }
            Decision::Confirm { target, hold } => self.settle(target, hold, None),
            Decision::Release { target, hold, reason } => self.settle(target, hold, Some(reason)),
        };
        if !done {
            match *decision {
                Decision::Propose { need, hold, .. } | Decision::CompleteProposal { need, hold, .. } => {
                    self.ledger.abandon(need, Some(hold))
                }
                Decision::Confirm { hold, .. } | Decision::Release { hold, .. } => self.ledger.abandon_settling(hold),
                _ => self.ledger.abandon(decision.need().expect("about a need"), None),
            }
            self.state.capacity_changed = true;
        }
    }

    fn propose(&mut self, need: NeedId, target: Target, hold: HoldId, deadline: Timestamp) -> bool {
        let proposal = Proposal { target, hold, deadline };
        if !self.need_do(need, NeedCommand::Propose(proposal)) {
            self.settle(target, hold, Some(ReleaseReason::Cancelled));
            return false;
        }
        match target {
            Target::Donation(_) => {
                self.need_do(need, NeedCommand::Accept { by: target }) && self.settle(target, hold, None)
            }
            Target::Provider(_) => {
                let at = self.now.plus_secs(self.night.answer_after(need, target));
                self.schedule(at, Happening::Answer { need, hold });
                true
            }
        }
    }

    fn settle(&mut self, target: Target, hold: HoldId, release: Option<ReleaseReason>) -> bool {
        match (target, release) {
            (Target::Provider(p), None) => self.provider_do(p, ProviderCommand::ConfirmHold { hold }),
            (Target::Provider(p), Some(reason)) => self.provider_do(p, ProviderCommand::ReleaseHold { hold, reason }),
            (Target::Donation(d), None) => self.donation_do(d, DonationCommand::ConfirmHold { hold }),
            (Target::Donation(d), Some(reason)) => self.donation_do(d, DonationCommand::ReleaseHold { hold, reason }),
        }
    }
}
