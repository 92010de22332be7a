//! From needs and sites to placements: hard constraints (the catalog), then
//! the optimal batch (or the greedy rule), beds first, then everything else.
//!
//! A person's bed or room anchors their bundle: it is placed first, and the
//! distance that counts for their other services is the distance from it
//! (the hard limit on distance still counts from where the person is). Beds
//! and services never compete for the same units, so solving them in two
//! stages keeps the priority order exact.
//!
//! This is the one policy: `refer solve` runs it on a file and the matcher
//! service runs it on the needs that wait, with what earlier decisions left
//! (a bed already placed, group mates already placed) in `Earlier`.

use crate::catalog::{Catalog, Query};
use crate::{solve_batch, Need, Problem, TIERS};
use refer_domain::geo::GeoPoint;
use refer_domain::ids::{GroupId, PlacementId};
use refer_domain::kinds::NeedKind;
use refer_domain::need::{GroupMembership, Target};
use refer_domain::profile::AgeBand;
use refer_domain::request::{Cohesion, NeedSpec};
use refer_domain::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How needs that wait together are decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The true optimum of the model, all needs together.
    Batch,
    /// Each need in turn, at the nearest site with room: what matching every
    /// need on arrival would give.
    Greedy,
}

/// What decisions made before this batch mean for one of its needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Earlier {
    /// Where the person's bed already is: the rest of their bundle is
    /// measured from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bed: Option<GeoPoint>,
    /// Targets where members of the need's group already have this kind of
    /// need placed (proposed, accepted, or about to be): barred to a group
    /// kept apart, preferred by a group kept together.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mates: Vec<Target>,
}

impl Earlier {
    pub fn is_empty(&self) -> bool {
        self.bed.is_none() && self.mates.is_empty()
    }
}

/// How a need stands in a batch (the policy that protects the urgent,
/// docs/matching.md). Without needs held back it changes nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Decided now, in its priority tier.
    #[default]
    Now,
    /// A soon or routine need that may wait (a bounded time) while scarce
    /// units are kept for the urgent needs expected: it ranks below them.
    HeldBack,
    /// An urgent need expected soon (a copy of one seen recently): it ranks
    /// between the needs decided now and those held back, and is never
    /// placed for real. Only the immediate tiers are forecast.
    Forecast,
}

/// The rank of a need in the batch solver (`Need::tier`): its tier when
/// decided now (0-5), 6-7 for a forecast immediate need, 8-11 for a soon or
/// routine need held back.
pub fn rank(spec: &NeedSpec, standing: Standing) -> u8 {
    let t = tier(spec);
    match standing {
        Standing::Now => t,
        Standing::Forecast => 6 + t.min(1),
        Standing::HeldBack => 6 + t.max(2),
    }
}

/// One need to place.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Decided now, held back, or a forecast (`Standing`).
    pub standing: Standing,
    pub spec: &'a NeedSpec,
    /// The person (their bundle of needs).
    pub person: PlacementId,
    pub group: Option<GroupMembership>,
    /// Targets it may not go to (declined before, or let expire).
    pub exclude: Vec<Target>,
    pub earlier: Earlier,
}

impl Request<'_> {
    fn cohesion(&self) -> Cohesion {
        self.group.map_or(Cohesion::NoPreference, |g| g.cohesion)
    }

    /// The targets this need may not use: those it was excluded from, and,
    /// kept apart, where group mates already are.
    fn barred(&self) -> Vec<Target> {
        let mut barred = self.exclude.clone();
        if self.cohesion() == Cohesion::KeepApart {
            barred.extend(&self.earlier.mates);
        }
        barred
    }
}

/// A need's keep-apart class (one per group kept apart and kind of need),
/// numbered in `classes` as first met.
fn class_of(classes: &mut BTreeMap<(GroupId, NeedKind), u32>, request: &Request) -> Option<u32> {
    let group = request.group.filter(|g| g.cohesion == Cohesion::KeepApart)?;
    let next = classes.len() as u32;
    Some(*classes.entry((group.group, request.spec.kind)).or_insert(next))
}

/// The priority tier of a need: urgency first, juvenile before adult.
pub fn tier(spec: &NeedSpec) -> u8 {
    (spec.urgency as u8) * 2 + u8::from(spec.profile.age_band != AgeBand::Juvenile)
}

/// Where a need goes: the catalog site and the distance that counts.
pub type Choice = Option<(usize, u32)>;

/// What the sites hold at the instant of matching: `free(i)` gives site
/// `i`'s free units and `stale(i)` whether they are stale (declared longer
/// ago than the coalition's freshness limit, `refer_domain::Freshness`).
/// Read only for the sites someone may use.
#[derive(Clone, Copy)]
pub struct Stock<'a> {
    pub free: &'a dyn Fn(usize) -> u32,
    pub stale: &'a dyn Fn(usize) -> bool,
}

impl<'a> Stock<'a> {
    /// Every site's units fresh.
    pub fn fresh(free: &'a dyn Fn(usize) -> u32) -> Self {
        Self {
            free,
            stale: &|_| false,
        }
    }
}

/// Places `requests` on the catalog's sites with what `stock` holds.
pub fn assign(catalog: &Catalog, stock: Stock, now: Timestamp, requests: &[Request], mode: Mode) -> Vec<Choice> {
    assign_within(
        catalog,
        stock,
        now,
        requests,
        mode,
        (crate::PARTY_NODES, crate::PARTY_WORK),
    )
    .0
}

/// `assign` in batch mode with `budget` branch-and-bound nodes per part of
/// each batch (`u64::MAX`: to the end, the exact optimum; the night
/// replay's hindsight). Also says whether the answer is proven optimal.
pub fn assign_exact(
    catalog: &Catalog,
    stock: Stock,
    now: Timestamp,
    requests: &[Request],
    budget: u64,
) -> (Vec<Choice>, bool) {
    assign_within(catalog, stock, now, requests, Mode::Batch, (budget, u64::MAX))
}

fn assign_within(
    catalog: &Catalog,
    stock: Stock,
    now: Timestamp,
    requests: &[Request],
    mode: Mode,
    budget: (u64, u64),
) -> (Vec<Choice>, bool) {
    let mut placing = Placing {
        budget,
        proven: true,
        catalog,
        now,
        requests,
        queries: requests.iter().map(|r| catalog.query(r.spec, &r.barred())).collect(),
        free: stock.free,
        stale: stock.stale,
        used: BTreeMap::new(),
        choices: vec![None; requests.len()],
        classes: BTreeMap::new(),
    };
    // The batch takes needs in line: by priority tier, then as given (in
    // arrival order), as the matcher service queues them. Ties between
    // equally good answers go by this order, so a file and the live matcher
    // given the same needs make the same choices. Greedy follows arrival.
    let mut line: Vec<usize> = (0..requests.len()).collect();
    if mode == Mode::Batch {
        line.sort_by_key(|i| (rank(requests[*i].spec, requests[*i].standing), *i));
    }
    let (beds, others): (Vec<usize>, Vec<usize>) = line
        .into_iter()
        .partition(|i| requests[*i].spec.kind == NeedKind::Shelter);

    placing.stage(&beds, mode, |_, _, km| km);
    if mode == Mode::Batch {
        placing.keep_together(&beds);
    }

    // Each person's bed, where the rest of their bundle is measured from:
    // placed in this batch, or before it.
    let mut bed_of: BTreeMap<PlacementId, GeoPoint> = BTreeMap::new();
    for i in &beds {
        if let Some((site, _)) = placing.choices[*i] {
            bed_of.insert(requests[*i].person, catalog.site(site).location.point);
        }
    }
    let anchors: Vec<Option<GeoPoint>> = requests
        .iter()
        .map(|r| bed_of.get(&r.person).copied().or(r.earlier.bed))
        .collect();
    placing.stage(&others, mode, |i, site, km| {
        anchors[i].map_or(km, |bed| bed.distance_km(&catalog.site(site).location.point))
    });
    (placing.choices, placing.proven)
}

/// One assignment under way: the needs, their compiled queries, the units
/// used at each site so far and the choices.
struct Placing<'a> {
    /// Branch-and-bound nodes and work per part of a batch (`solve_batch_bounded`).
    budget: (u64, u64),
    /// Every batch so far solved to proven optimality.
    proven: bool,
    catalog: &'a Catalog,
    now: Timestamp,
    requests: &'a [Request<'a>],
    queries: Vec<Query>,
    free: &'a dyn Fn(usize) -> u32,
    stale: &'a dyn Fn(usize) -> bool,
    used: BTreeMap<usize, u32>,
    choices: Vec<Choice>,
    /// Keep-apart classes: one per group kept apart and kind of need.
    classes: BTreeMap<(GroupId, NeedKind), u32>,
}

impl Placing<'_> {
    /// Free units left at `site`.
    fn left(&self, site: usize) -> u32 {
        (self.free)(site).saturating_sub(self.used.get(&site).copied().unwrap_or(0))
    }

    fn take(&mut self, site: usize, units: u32) {
        *self.used.entry(site).or_insert(0) += units;
    }

    fn give_back(&mut self, site: usize, units: u32) {
        if let Some(used) = self.used.get_mut(&site) {
            *used = used.saturating_sub(units);
        }
    }

    /// Need `i`'s sites with room, nearest first.
    fn options(&self, i: usize) -> Vec<(usize, u32)> {
        self.catalog.options(&self.queries[i], self.now, |s| self.left(s))
    }

    fn class(&mut self, i: usize) -> Option<u32> {
        class_of(&mut self.classes, &self.requests[i])
    }

    /// Solves the needs `which` (which never share units with other stages).
    ///
    /// Fresh capacity before stale at equal priority: an option at a stale
    /// site costs its distance plus `penalty`, more than the distances of
    /// every need of the stage together, so the optimum places as many
    /// needs per tier as before, then as few of them on stale capacity as
    /// it can, then the least distance (docs/matching.md).
    fn stage(&mut self, which: &[usize], mode: Mode, distance: impl Fn(usize, usize, u32) -> u32) {
        let options: Vec<Vec<(usize, u32)>> = which
            .iter()
            .map(|&i| {
                self.options(i)
                    .into_iter()
                    .map(|(site, km)| (site, distance(i, site, km)))
                    .collect()
            })
            .collect();
        let farthest: u64 = options
            .iter()
            .map(|o| o.iter().map(|(_, km)| u64::from(*km)).max().unwrap_or(0))
            .sum();
        let penalty = u32::try_from(farthest + 1).unwrap_or(u32::MAX / 2).min(u32::MAX / 2);
        let cost = |site: usize, km: u32| km.saturating_add(if (self.stale)(site) { penalty } else { 0 });
        match mode {
            Mode::Greedy => {
                let mut taken: BTreeSet<(u32, usize)> = BTreeSet::new();
                for (k, &i) in which.iter().enumerate() {
                    let class = self.class(i);
                    let best = options[k]
                        .iter()
                        .filter(|(site, _)| self.left(*site) >= self.queries[i].units())
                        .filter(|(site, _)| class.is_none_or(|c| !taken.contains(&(c, *site))))
                        .map(|&(site, km)| (cost(site, km), site, km))
                        .min();
                    if let Some((_, site, km)) = best {
                        self.take(site, self.queries[i].units());
                        self.choices[i] = Some((site, km));
                        if let Some(c) = class {
                            taken.insert((c, site));
                        }
                    }
                }
            }
            Mode::Batch => {
                // Only the sites someone may use become sources of the flow.
                let mut pool_of: BTreeMap<usize, usize> = BTreeMap::new();
                let mut sites: Vec<usize> = Vec::new();
                let mut problem = Problem::default();
                for (k, &i) in which.iter().enumerate() {
                    let mut costs = Vec::new();
                    for &(site, km) in &options[k] {
                        let pool = *pool_of.entry(site).or_insert_with(|| {
                            sites.push(site);
                            problem.capacity.push(self.left(site));
                            sites.len() - 1
                        });
                        costs.push((pool, cost(site, km)));
                    }
                    problem.needs.push(Need {
                        tier: rank(self.requests[i].spec, self.requests[i].standing),
                        units: self.queries[i].units(),
                        options: costs,
                        apart: self.class(i),
                    });
                }
                let (answer, proven) = crate::solve_batch_bounded(&problem, self.budget.0, self.budget.1);
                self.proven &= proven;
                for (k, choice) in answer.into_iter().enumerate() {
                    if let Some(pool) = choice {
                        let i = which[k];
                        let km = options[k].iter().find(|(s, _)| *s == sites[pool]).map(|(_, km)| *km);
                        self.take(sites[pool], self.queries[i].units());
                        self.choices[i] = Some((sites[pool], km.unwrap_or(0)));
                    }
                }
            }
        }
    }

    /// Members of a keep-together group that landed at different sites (or
    /// away from where earlier members are) move to one site that can take
    /// them all, when one exists (nobody is unplaced for it): a site where
    /// earlier members are, when one fits, or else the nearest common one
    /// (fresh before stale).
    fn keep_together(&mut self, which: &[usize]) {
        let mut groups: BTreeMap<GroupId, Vec<usize>> = BTreeMap::new();
        for &i in which {
            if let (Some(g), Some(_)) = (self.requests[i].group, self.choices[i]) {
                if g.cohesion == Cohesion::KeepTogether {
                    groups.entry(g.group).or_default().push(i);
                }
            }
        }
        for members in groups.values() {
            let mates: BTreeSet<Target> = members
                .iter()
                .flat_map(|i| self.requests[*i].earlier.mates.iter().copied())
                .collect();
            let used: BTreeSet<Target> = members
                .iter()
                .filter_map(|i| self.choices[*i].map(|c| self.catalog.site(c.0).target))
                .chain(mates.iter().copied())
                .collect();
            if used.len() < 2 {
                continue;
            }
            // Free the members' units, then look for one site that fits everyone.
            for i in members {
                self.give_back(self.choices[*i].expect("placed").0, self.queries[*i].units());
            }
            let total: u32 = members.iter().map(|i| self.queries[*i].units()).sum();
            let mut common: Option<BTreeMap<usize, u32>> = None;
            for i in members {
                let options: BTreeMap<usize, u32> = self.options(*i).into_iter().collect();
                common = Some(match common {
                    None => options,
                    Some(c) => c
                        .into_iter()
                        .filter_map(|(s, km)| options.get(&s).map(|k| (s, km + k)))
                        .collect(),
                });
            }
            let fits: Vec<(usize, u32)> = common
                .unwrap_or_default()
                .into_iter()
                .filter(|(s, _)| self.left(*s) >= total)
                .collect();
            let joins = |s: &usize| mates.contains(&self.catalog.site(*s).target);
            let best = fits
                .iter()
                .filter(|(s, _)| mates.is_empty() || joins(s))
                .min_by_key(|(s, km)| ((self.stale)(*s), *km, *s))
                .copied();
            match best {
                Some((site, _)) => {
                    for i in members {
                        let origin = self.requests[*i].spec.constraints.origin.point;
                        self.choices[*i] = Some((site, origin.distance_km(&self.catalog.site(site).location.point)));
                    }
                    self.take(site, total);
                }
                None => {
                    for i in members {
                        self.take(self.choices[*i].expect("placed").0, self.queries[*i].units());
                    }
                }
            }
        }
    }
}

/// How good a set of placements is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    pub needs: usize,
    pub placed: usize,
    /// Placed needs per priority tier: immediate juvenile, immediate adult,
    /// soon juvenile, soon adult, routine juvenile, routine adult.
    pub placed_by_tier: [u32; TIERS],
    pub needs_by_tier: [u32; TIERS],
    /// Total and worst distance that counts (from the person for a bed, from
    /// their bed for the rest of the bundle).
    pub total_km: u64,
    pub worst_km: u32,
    /// The largest distance between a person's bed and another of their services.
    pub bundle_spread_km: u32,
    /// Keep-together groups whose beds ended up at more than one site.
    pub groups_split: usize,
    /// Unplaced needs for which a lower-tier need holds units they could use.
    pub priority_violations: usize,
    /// Needs placed on stale capacity (see `Stock`).
    #[serde(default)]
    pub placed_stale: usize,
}

/// Measures `choices` for `requests` (same order).
pub fn measure(
    catalog: &Catalog,
    free: &[u32],
    stale: &dyn Fn(usize) -> bool,
    now: Timestamp,
    requests: &[Request],
    choices: &[Choice],
) -> Metrics {
    let mut m = Metrics {
        needs: requests.len(),
        ..Metrics::default()
    };
    let mut left = free.to_vec();
    let mut bed: BTreeMap<PlacementId, usize> = BTreeMap::new();
    let mut group_sites: BTreeMap<GroupId, BTreeSet<usize>> = BTreeMap::new();
    for (request, choice) in requests.iter().zip(choices) {
        let t = usize::from(tier(request.spec));
        m.needs_by_tier[t] += 1;
        if let Some((site, km)) = choice {
            m.placed += 1;
            m.placed_by_tier[t] += 1;
            m.placed_stale += usize::from(stale(*site));
            m.total_km += u64::from(*km);
            m.worst_km = m.worst_km.max(*km);
            left[*site] = left[*site].saturating_sub(request.spec.units());
            if request.spec.kind == NeedKind::Shelter {
                bed.insert(request.person, *site);
                if let Some(g) = request.group.filter(|g| g.cohesion == Cohesion::KeepTogether) {
                    group_sites.entry(g.group).or_default().insert(*site);
                }
            }
        }
    }
    for (request, choice) in requests.iter().zip(choices) {
        if let (Some((site, _)), Some(b)) = (choice, bed.get(&request.person)) {
            m.bundle_spread_km = m.bundle_spread_km.max(catalog.km_between(*site, *b));
        }
    }
    m.groups_split = group_sites.values().filter(|s| s.len() > 1).count();

    // A lower-tier need holding units an unplaced higher-tier need could use.
    let mut holders: BTreeMap<usize, Vec<(u8, u32)>> = BTreeMap::new();
    for (request, choice) in requests.iter().zip(choices) {
        if let Some((site, _)) = choice {
            holders
                .entry(*site)
                .or_default()
                .push((tier(request.spec), request.spec.units()));
        }
    }
    // Sites a keep-apart member may not use: where a group mate already is.
    let apart: BTreeSet<(GroupId, NeedKind, usize)> = requests
        .iter()
        .zip(choices)
        .filter_map(|(r, c)| {
            let g = r.group.filter(|g| g.cohesion == Cohesion::KeepApart)?;
            Some((g.group, r.spec.kind, c.as_ref()?.0))
        })
        .collect();
    for (request, choice) in requests.iter().zip(choices) {
        if choice.is_some() {
            continue;
        }
        let barred = |site: usize| {
            request
                .group
                .filter(|g| g.cohesion == Cohesion::KeepApart)
                .is_some_and(|g| apart.contains(&(g.group, request.spec.kind, site)))
        };
        let query = catalog.query(request.spec, &request.barred());
        let units = query.units();
        let mine = tier(request.spec);
        let usable = catalog.options(&query, now, |_| u32::MAX).into_iter().any(|(site, _)| {
            !barred(site)
                && holders.get(&site).is_some_and(|h| {
                    h.iter()
                        .any(|(t, u)| *t > mine && left[site].saturating_add(*u) >= units)
                })
        });
        m.priority_violations += usize::from(usable);
    }
    m
}

/// An upper bound on the needs that can be placed at all, whatever their
/// tier: the maximum flow with every party counted as one unit (a party
/// fits wherever it fits with fewer people), so exact without parties.
/// Keep-apart groups count as the constraint they are.
pub fn max_placeable(catalog: &Catalog, free: &[u32], now: Timestamp, requests: &[Request]) -> usize {
    let mut pool_of: BTreeMap<usize, usize> = BTreeMap::new();
    let mut classes: BTreeMap<(GroupId, NeedKind), u32> = BTreeMap::new();
    let mut problem = Problem::default();
    for request in requests {
        let apart = class_of(&mut classes, request);
        let query = catalog.query(request.spec, &request.barred());
        let options = catalog
            .options(&query, now, |s| free[s])
            .into_iter()
            .map(|(site, _)| {
                let pool = *pool_of.entry(site).or_insert_with(|| {
                    problem.capacity.push(free[site]);
                    problem.capacity.len() - 1
                });
                (pool, 0)
            })
            .collect();
        problem.needs.push(Need {
            tier: 0,
            units: 1,
            options,
            apart,
        });
    }
    solve_batch(&problem).iter().filter(|c| c.is_some()).count()
}

/// The online rule on the catalog: one need, at once, the nearest site.
pub fn decide_one(catalog: &Catalog, free: &[u32], now: Timestamp, request: &Request) -> Choice {
    let query = catalog.query(request.spec, &request.barred());
    catalog.nearest(&query, now, |s| free[s])
}
