//! From needs and sites to placements: hard constraints (the catalog), then
//! the optimal batch (or the greedy rule), beds first, then everything else.
//!
//! A person's bed or room anchors their bundle: it is placed first, and the
//! distance that counts for their other services is the distance from it
//! (the hard limit on distance still counts from where the person is). Beds
//! and services never compete for the same units, so solving them in two
//! stages keeps the priority order exact.

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

/// One need to place.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub spec: &'a NeedSpec,
    /// The person (their bundle of needs).
    pub person: PlacementId,
    pub group: Option<GroupMembership>,
    /// Targets it may not go to (declined before; where a group member it
    /// must be kept apart from already is).
    pub exclude: Vec<Target>,
}

/// The priority tier of a need: urgency first, juvenile before adult.
pub fn tier(spec: &NeedSpec) -> u8 {
    (spec.urgency as u8) * 2 + u8::from(spec.profile.age_band != AgeBand::Juvenile)
}

/// Where a need goes: the catalog site and the distance that counts.
pub type Choice = Option<(usize, u32)>;

/// Places `requests` on the catalog's sites, which have `free` units each.
pub fn assign(catalog: &Catalog, free: &[u32], now: Timestamp, requests: &[Request], mode: Mode) -> Vec<Choice> {
    let mut placing = Placing {
        catalog,
        now,
        requests,
        queries: requests.iter().map(|r| catalog.query(r.spec, &r.exclude)).collect(),
        left: free.to_vec(),
        choices: vec![None; requests.len()],
    };
    let (beds, others): (Vec<usize>, Vec<usize>) =
        (0..requests.len()).partition(|i| requests[*i].spec.kind == NeedKind::Shelter);

    placing.stage(&beds, mode, |_, _, km| km);
    if mode == Mode::Batch {
        placing.keep_together(&beds);
    }
    placing.keep_apart(&beds);

    // Each person's bed, where the rest of their bundle is measured from.
    let mut bed_of: BTreeMap<PlacementId, GeoPoint> = BTreeMap::new();
    for i in &beds {
        if let Some((site, _)) = placing.choices[*i] {
            bed_of.insert(requests[*i].person, catalog.site(site).location.point);
        }
    }
    let anchors: Vec<Option<GeoPoint>> = requests.iter().map(|r| bed_of.get(&r.person).copied()).collect();
    placing.stage(&others, mode, |i, site, km| {
        anchors[i].map_or(km, |bed| bed.distance_km(&catalog.site(site).location.point))
    });
    placing.keep_apart(&others);
    placing.choices
}

/// One assignment under way: the needs, their compiled queries, the units
/// left at each site and the choices so far.
struct Placing<'a> {
    catalog: &'a Catalog,
    now: Timestamp,
    requests: &'a [Request<'a>],
    queries: Vec<Query>,
    left: Vec<u32>,
    choices: Vec<Choice>,
}

impl Placing<'_> {
    /// Solves the needs `which` (which never share units with other stages).
    fn stage(&mut self, which: &[usize], mode: Mode, cost: impl Fn(usize, usize, u32) -> u32) {
        match mode {
            Mode::Greedy => {
                for &i in which {
                    let options = self.catalog.options(&self.queries[i], self.now, |s| self.left[s]);
                    let best = options.into_iter().map(|(site, km)| (cost(i, site, km), site)).min();
                    if let Some((km, site)) = best {
                        self.left[site] -= self.queries[i].units();
                        self.choices[i] = Some((site, km));
                    }
                }
            }
            Mode::Batch => {
                // Only the sites someone may use become sources of the flow.
                let mut pool_of: BTreeMap<usize, usize> = BTreeMap::new();
                let mut sites: Vec<usize> = Vec::new();
                let mut problem = Problem::default();
                for &i in which {
                    let mut options = Vec::new();
                    for (site, km) in self.catalog.options(&self.queries[i], self.now, |s| self.left[s]) {
                        let pool = *pool_of.entry(site).or_insert_with(|| {
                            sites.push(site);
                            problem.capacity.push(self.left[site]);
                            sites.len() - 1
                        });
                        options.push((pool, cost(i, site, km)));
                    }
                    problem.needs.push(Need {
                        tier: tier(self.requests[i].spec),
                        units: self.queries[i].units(),
                        options,
                    });
                }
                for (k, choice) in solve_batch(&problem).into_iter().enumerate() {
                    if let Some(pool) = choice {
                        let i = which[k];
                        let km = problem.needs[k]
                            .options
                            .iter()
                            .find(|(p, _)| *p == pool)
                            .map(|(_, km)| *km);
                        self.left[sites[pool]] -= self.queries[i].units();
                        self.choices[i] = Some((sites[pool], km.unwrap_or(0)));
                    }
                }
            }
        }
    }

    /// Members of a keep-together group that landed at different sites move to
    /// one site that can take them all, when one exists (nobody is unplaced for it).
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
            let used: BTreeSet<usize> = members.iter().filter_map(|i| self.choices[*i].map(|c| c.0)).collect();
            if used.len() < 2 {
                continue;
            }
            // Free the members' units, then look for one site that fits everyone.
            for i in members {
                self.left[self.choices[*i].expect("placed").0] += self.queries[*i].units();
            }
            let total: u32 = members.iter().map(|i| self.queries[*i].units()).sum();
            let mut common: Option<BTreeMap<usize, u32>> = None;
            for i in members {
                let options: BTreeMap<usize, u32> = self
                    .catalog
                    .options(&self.queries[*i], self.now, |s| self.left[s])
                    .into_iter()
                    .collect();
                common = Some(match common {
                    None => options,
                    Some(c) => c
                        .into_iter()
                        .filter_map(|(s, km)| options.get(&s).map(|k| (s, km + k)))
                        .collect(),
                });
            }
            let best = common
                .unwrap_or_default()
                .into_iter()
                .filter(|(s, _)| self.left[*s] >= total)
                .min_by_key(|(s, km)| (*km, *s));
            match best {
                Some((site, _)) => {
                    for i in members {
                        let origin = self.requests[*i].spec.constraints.origin.point;
                        self.choices[*i] = Some((site, origin.distance_km(&self.catalog.site(site).location.point)));
                    }
                    self.left[site] -= total;
                }
                None => {
                    for i in members {
                        self.left[self.choices[*i].expect("placed").0] -= self.queries[*i].units();
                    }
                }
            }
        }
    }

    /// Members of a keep-apart group never share a site for one kind: all but
    /// the first move to another site with room, or stay unplaced.
    fn keep_apart(&mut self, which: &[usize]) {
        let mut taken: BTreeSet<(GroupId, NeedKind, usize)> = BTreeSet::new();
        for &i in which {
            let Some(g) = self.requests[i].group.filter(|g| g.cohesion == Cohesion::KeepApart) else {
                continue;
            };
            let Some((site, _)) = self.choices[i] else { continue };
            let kind = self.requests[i].spec.kind;
            if taken.insert((g.group, kind, site)) {
                continue;
            }
            self.left[site] += self.queries[i].units();
            self.choices[i] = None;
            let elsewhere = self
                .catalog
                .options(&self.queries[i], self.now, |s| self.left[s])
                .into_iter()
                .find(|(s, _)| !taken.contains(&(g.group, kind, *s)));
            if let Some((s, km)) = elsewhere {
                self.left[s] -= self.queries[i].units();
                self.choices[i] = Some((s, km));
                taken.insert((g.group, kind, s));
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
}

/// Measures `choices` for `requests` (same order).
pub fn measure(catalog: &Catalog, free: &[u32], now: Timestamp, requests: &[Request], choices: &[Choice]) -> Metrics {
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
        let query = catalog.query(request.spec, &request.exclude);
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
pub fn max_placeable(catalog: &Catalog, free: &[u32], now: Timestamp, requests: &[Request]) -> usize {
    let mut pool_of: BTreeMap<usize, usize> = BTreeMap::new();
    let mut problem = Problem::default();
    for request in requests {
        let query = catalog.query(request.spec, &request.exclude);
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
        });
    }
    solve_batch(&problem).iter().filter(|c| c.is_some()).count()
}

/// The online rule on the catalog: one need, at once, the nearest site.
pub fn decide_one(catalog: &Catalog, free: &[u32], now: Timestamp, request: &Request) -> Choice {
    let query = catalog.query(request.spec, &request.exclude);
    catalog.nearest(&query, now, |s| free[s])
}
