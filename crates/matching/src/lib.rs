//! Refer's matching engine: which need goes where, when several compete.
//! Pure (no I/O) and deterministic: the same input gives the same answer.
//!
//! - `catalog`: the hard constraints (service kind, eligibility, party size
//!   against free units, opening hours and windows, maximum distance,
//!   regions to avoid), compiled so one need is checked against thousands
//!   of sites in microseconds; `Catalog::nearest` is the online rule.
//! - `solve_batch`: the optimum of the model on needs already filtered:
//!   1. place as many needs as possible **by priority tier** (lexicographic
//!      maximum of the placed count per tier, highest tier first), so no
//!      lower-tier need takes a unit a higher-tier need could use;
//!   2. then the **least total distance**.
//! - `assign`: beds first, then the rest of each person's bundle measured
//!   from their bed; keep-together and keep-apart groups.
//! - `Instance`: a problem as data (JSON for `refer solve`).
//! - `planner`: the matcher service's planning (the fold of the events,
//!   housekeeping, the batch it hands to `assign`), pure as well.
#![forbid(unsafe_code)]

mod assign;
mod catalog;
mod flow;
mod instance;
pub mod night;
pub mod planner;
pub mod scenario;

use std::collections::BTreeMap;

pub use assign::{
    assign, assign_exact, decide_one, max_placeable, measure, rank, tier, Choice, Earlier, Metrics, Mode, Request,
    Standing, Stock,
};
pub use catalog::{Catalog, Offer, Query, Site};
pub use instance::{DonatedResource, Instance, OpenNeed, Placement, ProviderSite, Solution};

/// Priority tiers, highest first: (immediate, soon, routine) x (juvenile, adult).
pub const TIERS: usize = 6;

/// The ranks the batch solver orders needs by, highest first: the six tiers
/// of the needs decided now, then the forecast urgent needs a reserve keeps
/// units for, then the needs held back for them (see `Standing`).
pub const RANKS: usize = 12;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Need {
    /// Its rank: 0 is the highest priority (below `RANKS`; the six tiers
    /// when nothing is held back).
    pub tier: u8,
    /// Units taken at one source (party size times units per person).
    pub units: u32,
    /// The sources this need may use, with their distance in km.
    pub options: Vec<(usize, u32)>,
    /// A keep-apart class (a group kept apart, for one kind of need): two
    /// needs of one class never go to one source. A hard constraint.
    pub apart: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problem {
    /// Free units per source.
    pub capacity: Vec<u32>,
    pub needs: Vec<Need>,
}

/// For each need, the source it goes to, if any.
pub type Assignment = Vec<Option<usize>>;

/// How good an assignment is; greater is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Score {
    /// Needs placed per rank, highest first.
    pub placed: [u32; RANKS],
    /// Total distance, negated so that less distance compares greater.
    pub minus_distance: i64,
}

impl Problem {
    /// Whether `assignment` uses only allowed options, no source beyond its
    /// capacity, and never puts two needs of one keep-apart class at one source.
    pub fn feasible(&self, assignment: &Assignment) -> bool {
        let mut used = vec![0u64; self.capacity.len()];
        let mut apart = std::collections::BTreeSet::new();
        for (need, choice) in self.needs.iter().zip(assignment) {
            if let Some(source) = choice {
                if !need.options.iter().any(|(s, _)| s == source) {
                    return false;
                }
                if need.apart.is_some_and(|class| !apart.insert((class, *source))) {
                    return false;
                }
                used[*source] += u64::from(need.units);
            }
        }
        assignment.len() == self.needs.len() && used.iter().zip(&self.capacity).all(|(u, c)| *u <= u64::from(*c))
    }

    pub fn score(&self, assignment: &Assignment) -> Score {
        let mut placed = [0u32; RANKS];
        let mut distance = 0i64;
        for (need, choice) in self.needs.iter().zip(assignment) {
            if let Some(source) = choice {
                placed[usize::from(need.tier).min(RANKS - 1)] += 1;
                let km = need.options.iter().find(|(s, _)| s == source).map_or(0, |(_, d)| *d);
                distance += i64::from(km);
            }
        }
        Score {
            placed,
            minus_distance: -distance,
        }
    }
}

/// The nearest option with room (ties: lower source index): the rule for a
/// need that arrives alone.
pub fn online(capacity: &[u32], need: &Need) -> Option<usize> {
    need.options
        .iter()
        .filter(|(s, _)| capacity.get(*s).is_some_and(|c| *c >= need.units))
        .min_by_key(|(s, d)| (*d, *s))
        .map(|(s, _)| *s)
}

/// Above this many ways of placing the parties of a batch, parties are
/// placed greedily instead of searched (see `solve_batch`).
pub const PARTY_SEARCH_LIMIT: u64 = 256;

/// How many ways the parties (needs of more than one unit) of `problem` can
/// be placed or left out, counting only sources big enough for each.
pub fn party_combinations(problem: &Problem) -> u64 {
    problem
        .needs
        .iter()
        .filter(|n| n.units > 1)
        .map(|n| {
            let fits = n
                .options
                .iter()
                .filter(|(s, _)| problem.capacity.get(*s).is_some_and(|c| *c >= n.units))
                .count();
            fits as u64 + 1
        })
        .fold(1u64, |a, b| a.saturating_mul(b))
}

/// Solves a batch. Needs of one unit (people alone) are solved exactly by a
/// minimum-cost flow. Parties must get all their units at one source, which
/// no flow can express: when there are at most `PARTY_SEARCH_LIMIT` ways to
/// place them, every way is tried with the flow solving everyone else, so
/// the result is the exact optimum; beyond that, parties are placed first
/// (highest tier and largest first, each at the nearest source with room
/// that leaves a unit for every person alone who can use only that source,
/// or else the nearest with room).
pub fn solve_batch(problem: &Problem) -> Assignment {
    solve_batch_bounded(problem, PARTY_NODES, PARTY_WORK).0
}

/// The exact optimum, however long the party search takes; also says
/// whether it is proven (always, unless `u64::MAX` nodes did not suffice).
pub fn solve_batch_exact(problem: &Problem) -> (Assignment, bool) {
    solve_batch_within(problem, u64::MAX)
}

/// `solve_batch` with a budget of branch-and-bound nodes per connected
/// part; says whether every part's answer is proven optimal.
pub fn solve_batch_within(problem: &Problem, budget: u64) -> (Assignment, bool) {
    solve_batch_bounded(problem, budget, u64::MAX)
}

/// `solve_batch_within`, with at most `work` (needs times nodes) per part.
pub(crate) fn solve_batch_bounded(problem: &Problem, budget: u64, work: u64) -> (Assignment, bool) {
    let problem = prune(problem);
    let mut proven = true;
    let mut assignment: Assignment = vec![None; problem.needs.len()];
    // Needs that share no source are independent problems: solved apart,
    // their optima add up to the optimum (per tier, then distance).
    for (sources, needs) in components(&problem) {
        let part = Problem {
            capacity: sources.iter().map(|s| problem.capacity[*s]).collect(),
            needs: needs
                .iter()
                .map(|i| {
                    let need = &problem.needs[*i];
                    Need {
                        options: need
                            .options
                            .iter()
                            .map(|(s, km)| (sources.binary_search(s).expect("in its component"), *km))
                            .collect(),
                        ..need.clone()
                    }
                })
                .collect(),
        };
        let nodes = match work {
            u64::MAX => budget,
            work => budget.min(work / part.needs.len().max(1) as u64),
        };
        let (answer, exact) = solve_component(&part, nodes);
        proven &= exact;
        for (i, choice) in needs.iter().zip(answer) {
            assignment[*i] = choice.map(|k| sources[k]);
        }
    }
    (assignment, proven)
}

/// The connected parts of the need-source graph: each part's sources
/// (ascending) and needs (ascending). Needs without options are in none.
fn components(problem: &Problem) -> Vec<(Vec<usize>, Vec<usize>)> {
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let known = problem.capacity.len();
    let mut parent: Vec<usize> = (0..known).collect();
    for need in &problem.needs {
        let mut sources = need.options.iter().map(|(s, _)| *s).filter(|s| *s < known);
        if let Some(first) = sources.next() {
            for other in sources {
                let (a, b) = (root(&mut parent, first), root(&mut parent, other));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut parts: BTreeMap<usize, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for (i, need) in problem.needs.iter().enumerate() {
        if let Some((s, _)) = need.options.iter().find(|(s, _)| *s < parent.len()) {
            parts.entry(root(&mut parent, *s)).or_default().1.push(i);
        }
    }
    for s in 0..parent.len() {
        let r = root(&mut parent, s);
        if let Some(part) = parts.get_mut(&r) {
            part.0.push(s);
        }
    }
    parts.into_values().collect()
}

/// Sources a keep-apart class already uses (a member placed there).
type Taken = std::collections::BTreeSet<(u32, usize)>;

/// Whether `need` may go to `source` given what its keep-apart class uses.
fn apart_allows(need: &Need, source: usize, taken: &Taken) -> bool {
    need.apart.is_none_or(|class| !taken.contains(&(class, source)))
}

/// One connected part: parties searched, the rest by the flow. Also says
/// whether the answer is proven optimal (the search finished in `budget`).
fn solve_component(problem: &Problem, budget: u64) -> (Assignment, bool) {
    let mut parties: Vec<usize> = (0..problem.needs.len())
        .filter(|i| problem.needs[*i].units > 1)
        .collect();
    parties.sort_by_key(|i| (problem.needs[*i].tier, std::cmp::Reverse(problem.needs[*i].units), *i));
    let mut assignment: Assignment = vec![None; problem.needs.len()];
    let mut capacity = problem.capacity.clone();
    let mut taken = Taken::new();
    if !parties.is_empty() && party_combinations(problem) <= PARTY_SEARCH_LIMIT {
        let mut best = None;
        search_parties(problem, &parties, &mut capacity, &mut taken, &mut assignment, &mut best);
        return (best.map(|(_, a)| a).unwrap_or(assignment), true);
    }
    let greedy = place_parties_greedily(problem, &parties);
    if parties.is_empty() {
        return (greedy, true);
    }
    // Beyond enumeration: branch and bound from the greedy answer, which it
    // only ever replaces by a strictly better one.
    if budget == 0 {
        return (greedy, false);
    }
    branch_and_bound(problem, &parties, greedy, budget)
}

/// The greedy placement of parties with the flow placing everyone else:
/// the answer beyond the party search before branch and bound, and its
/// first incumbent.
fn place_parties_greedily(problem: &Problem, parties: &[usize]) -> Assignment {
    let mut assignment: Assignment = vec![None; problem.needs.len()];
    let mut capacity = problem.capacity.clone();
    let mut taken = Taken::new();
    // Too many to search: each party at the nearest source with room that
    // still leaves a unit for every person alone who can use only that
    // source (or else the nearest with room), so a party goes a little
    // farther rather than leave such a person without a place.
    let mut only_here = vec![0u32; problem.capacity.len()];
    for need in problem.needs.iter().filter(|n| n.units == 1) {
        if let [(source, _)] = need.options.as_slice() {
            if let Some(count) = only_here.get_mut(*source) {
                *count += 1;
            }
        }
    }
    for &i in parties {
        let need = &problem.needs[i];
        let room = |s: usize, spare: u32| {
            capacity.get(s).is_some_and(|c| *c >= need.units + spare) && apart_allows(need, s, &taken)
        };
        let nearest = |spare: &dyn Fn(usize) -> u32| {
            need.options
                .iter()
                .filter(|(s, _)| room(*s, spare(*s)))
                .min_by_key(|(s, d)| (*d, *s))
                .map(|(s, _)| *s)
        };
        let choice = nearest(&|s| only_here[s]).or_else(|| nearest(&|_| 0));
        if let Some(source) = choice {
            capacity[source] -= need.units;
            assignment[i] = Some(source);
            if let Some(class) = need.apart {
                taken.insert((class, source));
            }
        }
    }
    place_singles(problem, &capacity, &taken, &mut assignment);
    assignment
}

/// Branch-and-bound nodes per connected part before `solve_batch` keeps the
/// best answer found so far (each node is one flow over the part), and at
/// most `PARTY_WORK` divided by the part's needs, so a big part costs a few
/// flows more than before, not minutes (`docs/matching.md`).
pub const PARTY_NODES: u64 = 4_000;

/// Needs times nodes a bounded party search may spend on one part.
pub const PARTY_WORK: u64 = 2_000;

/// The exact optimum with parties, by branch and bound over where parties
/// go, starting from `incumbent` (replaced only by a strictly better
/// answer). The bound at a node is the relaxation where every party not yet
/// placed takes one unit instead of all of its units (at a site where all of
/// them would fit): every true placement is one of the relaxation's, so its
/// optimum (the flow, exact) bounds the node's from above, per tier and then
/// distance. When the relaxation's answer gives each party all its units
/// without overfilling a site, it is a true placement and the node is done;
/// otherwise a party at an overfilled site is branched on: placed at each
/// of its sites with room (its relaxed site first), or left out. Returns
/// the answer and whether the search finished within `budget` nodes.
fn branch_and_bound(problem: &Problem, parties: &[usize], incumbent: Assignment, budget: u64) -> (Assignment, bool) {
    struct Search<'a> {
        problem: &'a Problem,
        /// Where each party is fixed: `None` free, `Some(None)` left out.
        fixed: Vec<Option<Option<usize>>>,
        is_party: Vec<bool>,
        best: (Score, Assignment),
        nodes: u64,
        budget: u64,
    }
    impl Search<'_> {
        fn node(&mut self, capacity: &mut [u32], taken: &mut Taken) {
            if self.nodes >= self.budget {
                return;
            }
            self.nodes += 1;
            let problem = self.problem;
            // The relaxation: free parties take one unit where all of theirs fit.
            let relaxed = Problem {
                capacity: capacity.to_vec(),
                needs: problem
                    .needs
                    .iter()
                    .enumerate()
                    .map(|(i, need)| match (self.is_party[i], self.fixed[i]) {
                        (false, _) => need.clone(),
                        (true, None) => Need {
                            units: 1,
                            options: need
                                .options
                                .iter()
                                .filter(|(s, _)| capacity.get(*s).is_some_and(|c| *c >= need.units))
                                .copied()
                                .collect(),
                            ..need.clone()
                        },
                        (true, Some(_)) => Need {
                            options: Vec::new(),
                            ..need.clone()
                        },
                    })
                    .collect(),
            };
            let mut answer: Assignment = (0..problem.needs.len()).map(|i| self.fixed[i].flatten()).collect();
            place_singles(&relaxed, capacity, taken, &mut answer);
            let bound = problem.score(&answer);
            if bound <= self.best.0 {
                return;
            }
            // Overfilled sites, if the free parties took all their units
            // (beside one each for the people alone).
            let mut used = vec![0u64; capacity.len()];
            for (i, choice) in answer.iter().enumerate() {
                if let (Some(s), None) = (choice, self.fixed[i]) {
                    used[*s] += u64::from(problem.needs[i].units);
                }
            }
            let over = |s: usize| used[s] > u64::from(capacity[s]);
            let Some(branch) = (0..problem.needs.len())
                .filter(|i| self.is_party[*i] && self.fixed[*i].is_none())
                .filter(|i| answer[*i].is_some_and(over))
                .min_by_key(|i| (problem.needs[*i].tier, std::cmp::Reverse(problem.needs[*i].units), *i))
            else {
                self.best = (bound, answer);
                return;
            };
            let need = &problem.needs[branch];
            let relaxed_site = answer[branch].expect("placed at an overfilled site");
            let mut sites: Vec<(usize, u32)> = need
                .options
                .iter()
                .filter(|(s, _)| capacity[*s] >= need.units && apart_allows(need, *s, taken))
                .copied()
                .collect();
            sites.sort_by_key(|(s, km)| (*s != relaxed_site, *km, *s));
            for (source, _) in sites {
                capacity[source] -= need.units;
                self.fixed[branch] = Some(Some(source));
                let mark = need.apart.map(|class| (class, source));
                if let Some(mark) = mark {
                    taken.insert(mark);
                }
                self.node(capacity, taken);
                if let Some(mark) = mark {
                    taken.remove(&mark);
                }
                capacity[source] += need.units;
            }
            self.fixed[branch] = Some(None);
            self.node(capacity, taken);
            self.fixed[branch] = None;
        }
    }
    let mut is_party = vec![false; problem.needs.len()];
    for &i in parties {
        is_party[i] = true;
    }
    let mut search = Search {
        problem,
        fixed: vec![None; problem.needs.len()],
        is_party,
        best: (problem.score(&incumbent), incumbent),
        nodes: 0,
        budget,
    };
    search.node(&mut problem.capacity.clone(), &mut Taken::new());
    let finished = search.nodes < budget;
    (search.best.1, finished)
}

/// How many of a need's nearest options `prune` looks at before giving up.
const PRUNE_SCAN: usize = 64;

/// Drops the options no optimal assignment needs. Take a person alone and
/// their nearest sites: once those sites have more free units than all the
/// *other* needs that may use any of them could take, one unit there is
/// always free, so moving the person there from anywhere farther places the
/// same needs for no more distance. Their farther options can go. Parties
/// keep all theirs (they need their units at one site), and so do members of
/// keep-apart groups.
fn prune(problem: &Problem) -> Problem {
    let mut pruned = problem.clone();
    let mut needs_at: Vec<Vec<usize>> = vec![Vec::new(); problem.capacity.len()];
    for (j, need) in problem.needs.iter().enumerate() {
        for (source, _) in &need.options {
            if let Some(list) = needs_at.get_mut(*source) {
                list.push(j);
            }
        }
    }
    let mut seen_by = vec![usize::MAX; problem.needs.len()];
    for (i, need) in pruned.needs.iter_mut().enumerate() {
        need.options.sort_by_key(|(source, km)| (*km, *source));
        // A free unit at a near source may be barred to a keep-apart member
        // (a group mate there), so the argument below holds for others only.
        if need.units != 1 || need.apart.is_some() {
            continue;
        }
        seen_by[i] = i;
        let (mut supply, mut demand) = (0u64, 0u64);
        for (k, (source, _)) in need.options.iter().enumerate().take(PRUNE_SCAN) {
            supply += u64::from(problem.capacity.get(*source).copied().unwrap_or(0));
            for &j in needs_at.get(*source).into_iter().flatten() {
                if seen_by[j] != i {
                    seen_by[j] = i;
                    demand += u64::from(problem.needs[j].units);
                }
            }
            if supply > demand {
                need.options.truncate(k + 1);
                break;
            }
        }
    }
    pruned
}

/// Tries every placement of `parties` (each option with room that their
/// keep-apart class allows, then none); the first best found wins ties, so
/// the result is deterministic.
fn search_parties(
    problem: &Problem,
    parties: &[usize],
    capacity: &mut [u32],
    taken: &mut Taken,
    assignment: &mut Assignment,
    best: &mut Option<(Score, Assignment)>,
) {
    let Some((&i, rest)) = parties.split_first() else {
        let mut complete = assignment.clone();
        place_singles(problem, capacity, taken, &mut complete);
        let score = problem.score(&complete);
        if best.as_ref().is_none_or(|(b, _)| score > *b) {
            *best = Some((score, complete));
        }
        return;
    };
    let need = &problem.needs[i];
    for &(source, _) in &need.options {
        if capacity.get(source).is_some_and(|c| *c >= need.units) && apart_allows(need, source, taken) {
            capacity[source] -= need.units;
            assignment[i] = Some(source);
            let mark = need.apart.map(|class| (class, source));
            if let Some(mark) = mark {
                taken.insert(mark);
            }
            search_parties(problem, rest, capacity, taken, assignment, best);
            if let Some(mark) = mark {
                taken.remove(&mark);
            }
            capacity[source] += need.units;
        }
    }
    assignment[i] = None;
    search_parties(problem, rest, capacity, taken, assignment, best);
}

/// The exact optimum for the needs of one unit on `capacity`, written into
/// `assignment`; `taken` are the sources keep-apart classes already use.
///
/// Shortest augmenting paths on the flow graph, tier by tier (highest
/// first). Within a tier, first one need at a time: each search stops at
/// the first site with room it reaches, so a need whose nearest site has
/// room costs a look at its own options and only contested needs search
/// further. Augmenting never unplaces anyone, and each step keeps the
/// placement the cheapest for the needs placed so far. When a need of the
/// tier finds no path, not all of the tier fits, and which of them are
/// placed becomes a choice: the tier's searches are undone and made again
/// from the tier's own node, which reaches every need of the tier, so each
/// search finds the cheapest way to place one more of them (taking a need
/// out for another of its tier when that is cheaper). A higher tier's count
/// never drops (no path leaves anyone of another tier unplaced), so the
/// counts are the lexicographic maximum, and the distance is the least for
/// those counts. No weights: costs are kilometres.
fn place_singles(problem: &Problem, capacity: &[u32], taken: &Taken, assignment: &mut Assignment) {
    let singles: Vec<usize> = (0..problem.needs.len())
        .filter(|i| problem.needs[*i].units == 1)
        .collect();
    if singles.is_empty() {
        return;
    }
    let mut net = SinglesFlow::new(problem, capacity, taken, &singles);
    let mut search = flow::Search::new(net.graph.len());
    let mut by_tier: [Vec<usize>; RANKS] = Default::default();
    for (k, &i) in singles.iter().enumerate() {
        by_tier[usize::from(problem.needs[i].tier).min(RANKS - 1)].push(k);
    }
    for (t, needs) in by_tier.iter().enumerate() {
        let mut undo = flow::Undo::default();
        let everyone = needs.iter().all(|k| {
            net.graph
                .augment_from(SinglesFlow::NEED + k, SinglesFlow::SINK, &mut search, Some(&mut undo))
        });
        if everyone {
            continue;
        }
        net.graph.undo(&mut search, undo);
        let tier = SinglesFlow::tier_node(t);
        search.lift(tier, needs.iter().map(|k| SinglesFlow::NEED + k));
        while net.graph.augment_from(tier, SinglesFlow::SINK, &mut search, None) {}
    }
    for (k, source, arc) in &net.arcs {
        if net.graph.flow(*arc) > 0 {
            assignment[singles[*k]] = Some(*source);
        }
    }
}

/// The flow graph of the needs of one unit. Nodes: 0 sink, one per tier
/// (with an arc to each need of the tier), needs, one gate per (keep-apart
/// class, source), sources. A gate lets one unit through, so one class never
/// takes two units of a source: keep-apart is a constraint of the flow, and
/// the flow stays exact.
struct SinglesFlow {
    graph: flow::Graph,
    /// (single, source, arc) for every option.
    arcs: Vec<(usize, usize, usize)>,
}

impl SinglesFlow {
    const SINK: usize = 0;
    const NEED: usize = 1 + RANKS;

    fn tier_node(tier: usize) -> usize {
        1 + tier
    }

    fn new(problem: &Problem, capacity: &[u32], taken: &Taken, singles: &[usize]) -> Self {
        let usable = |need: &Need, source: usize| {
            source < capacity.len() && capacity[source] > 0 && apart_allows(need, source, taken)
        };
        let mut gates: BTreeMap<(u32, usize), usize> = BTreeMap::new();
        for &i in singles {
            let need = &problem.needs[i];
            if let Some(class) = need.apart {
                for &(source, _) in need.options.iter().filter(|(s, _)| usable(need, *s)) {
                    let next = gates.len();
                    gates.entry((class, source)).or_insert(next);
                }
            }
        }
        let first_gate = Self::NEED + singles.len();
        let first_source = first_gate + gates.len();
        let mut graph = flow::Graph::new(first_source + capacity.len());
        for (&(_, source), &gate) in &gates {
            graph.add(first_gate + gate, first_source + source, 1, 0);
        }
        let mut arcs = Vec::new();
        for (k, &i) in singles.iter().enumerate() {
            let need = &problem.needs[i];
            let tier = usize::from(need.tier).min(RANKS - 1);
            graph.add(Self::tier_node(tier), Self::NEED + k, 1, 0);
            for &(source, km) in need.options.iter().filter(|(s, _)| usable(need, *s)) {
                let to = match need.apart {
                    Some(class) => first_gate + gates[&(class, source)],
                    None => first_source + source,
                };
                arcs.push((k, source, graph.add(Self::NEED + k, to, 1, i64::from(km))));
            }
        }
        for (source, free) in capacity.iter().enumerate() {
            if *free > 0 {
                graph.add(first_source + source, Self::SINK, i64::from(*free), 0);
            }
        }
        Self { graph, arcs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_higher_tier_gets_the_contested_bed_even_if_farther() {
        // One bed; an adult 2 km away and a juvenile 30 km away both fit.
        let problem = Problem {
            capacity: vec![1],
            needs: vec![
                Need {
                    tier: 1,
                    units: 1,
                    options: vec![(0, 2)],
                    apart: None,
                },
                Need {
                    tier: 0,
                    units: 1,
                    options: vec![(0, 30)],
                    apart: None,
                },
            ],
        };
        assert_eq!(solve_batch(&problem), vec![None, Some(0)]);
    }

    #[test]
    fn the_batch_places_more_than_the_greedy_rule() {
        // Greedy nearest-first sends A to the only source B can use.
        let problem = Problem {
            capacity: vec![1, 1],
            needs: vec![
                Need {
                    tier: 0,
                    units: 1,
                    options: vec![(0, 1), (1, 5)],
                    apart: None,
                },
                Need {
                    tier: 0,
                    units: 1,
                    options: vec![(0, 3)],
                    apart: None,
                },
            ],
        };
        let batch = solve_batch(&problem);
        assert_eq!(batch, vec![Some(1), Some(0)]);
        assert!(problem.feasible(&batch));
        assert_eq!(online(&problem.capacity, &problem.needs[0]), Some(0));
    }

    #[test]
    fn a_party_stays_together_and_capacity_is_respected() {
        let problem = Problem {
            capacity: vec![2, 3],
            needs: vec![
                Need {
                    tier: 0,
                    units: 3,
                    options: vec![(0, 1), (1, 9)],
                    apart: None,
                },
                Need {
                    tier: 1,
                    units: 1,
                    options: vec![(0, 1)],
                    apart: None,
                },
            ],
        };
        let a = solve_batch(&problem);
        assert_eq!(a, vec![Some(1), Some(0)]);
        assert!(problem.feasible(&a));
    }

    #[test]
    fn a_party_beyond_the_search_goes_farther_rather_than_leave_people_alone_without_a_bed() {
        // Shelter 0 has 3 beds, shelter 1 (8 km farther) 2. A party of two
        // could use either; two people alone only shelter 0. Six more
        // parties (sources 2-7) put the batch beyond the party search, and a
        // person alone who can use shelter 0 or 2 joins them in one part
        // (both options stay: 3 beds at shelter 0 do not cover its 4 wants).
        let mut needs = vec![
            Need {
                tier: 0,
                units: 2,
                options: vec![(0, 1), (1, 9)],
                apart: None,
            },
            Need {
                tier: 0,
                units: 1,
                options: vec![(0, 2)],
                apart: None,
            },
            Need {
                tier: 0,
                units: 1,
                options: vec![(0, 3)],
                apart: None,
            },
            Need {
                tier: 1,
                units: 1,
                options: vec![(0, 1), (2, 50)],
                apart: None,
            },
        ];
        for source in 2..8 {
            needs.push(Need {
                tier: 2,
                units: 2,
                options: vec![(2, 5), (source, 6)],
                apart: None,
            });
        }
        let problem = Problem {
            capacity: vec![3, 2, 20, 2, 2, 2, 2, 2],
            needs,
        };
        assert!(party_combinations(&problem) > PARTY_SEARCH_LIMIT);
        assert!(party_combinations(&prune(&problem)) > PARTY_SEARCH_LIMIT);
        let a = solve_batch(&problem);
        assert!(problem.feasible(&a));
        assert_eq!(a[0], Some(1), "the party goes 8 km farther");
        assert_eq!((a[1], a[2]), (Some(0), Some(0)), "both people alone are placed");
        assert!(a.iter().all(Option::is_some));
    }
}
