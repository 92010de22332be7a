//! Minimum-cost flow by shortest augmenting paths (Dijkstra with
//! potentials), one unit at a time from a chosen start, with an undo log.
//! Costs are kilometres (`i64`): no weights are needed for priorities,
//! which the caller gets from the order of its searches.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Clone, Debug)]
struct Edge {
    to: usize,
    capacity: i64,
    cost: i64,
}

pub struct Graph {
    edges: Vec<Edge>,
    adjacent: Vec<Vec<usize>>,
}

/// What `Graph::augment_from` keeps between searches: the potentials, and
/// scratch space reset after each search.
pub struct Search {
    potential: Vec<i64>,
    dist: Vec<i64>,
    via: Vec<usize>,
    touched: Vec<usize>,
    settled: Vec<usize>,
}

/// What searches changed, so they can be taken back (newest first).
#[derive(Default)]
pub struct Undo {
    /// Arcs that carried one more unit.
    arcs: Vec<usize>,
    /// Potentials before they changed.
    potentials: Vec<(usize, i64)>,
}

impl Search {
    pub fn new(nodes: usize) -> Self {
        Self {
            potential: vec![0; nodes],
            dist: vec![i64::MAX; nodes],
            via: vec![usize::MAX; nodes],
            touched: Vec::new(),
            settled: Vec::new(),
        }
    }

    /// Raises `node`'s potential to the highest of `heads`, so that new arcs
    /// of cost 0 from it to them have non-negative reduced costs (a node
    /// with no arc into it yet may take any potential).
    pub fn lift(&mut self, node: usize, heads: impl Iterator<Item = usize>) {
        let top = heads.map(|h| self.potential[h]).max().unwrap_or(0);
        self.potential[node] = self.potential[node].max(top);
    }
}

impl Graph {
    pub fn new(nodes: usize) -> Self {
        Self {
            edges: Vec::new(),
            adjacent: vec![Vec::new(); nodes],
        }
    }

    pub fn len(&self) -> usize {
        self.adjacent.len()
    }

    /// Adds an arc and returns its index (its reverse is `index ^ 1`).
    /// Costs must be non-negative.
    pub fn add(&mut self, from: usize, to: usize, capacity: i64, cost: i64) -> usize {
        debug_assert!(cost >= 0);
        let index = self.edges.len();
        self.edges.push(Edge { to, capacity, cost });
        self.adjacent[from].push(index);
        self.edges.push(Edge {
            to: from,
            capacity: 0,
            cost: -cost,
        });
        self.adjacent[to].push(index + 1);
        index
    }

    /// Flow on the arc `index` (as returned by `add`).
    pub fn flow(&self, index: usize) -> i64 {
        self.edges[index ^ 1].capacity
    }

    /// Pushes one unit from `start` to `sink` along a cheapest path, if any.
    /// `search.potential` keeps every reduced cost non-negative (true at
    /// zero flow, since costs are, and kept by every augmentation), so
    /// Dijkstra is exact; it stops as soon as the sink is settled, and only
    /// the nodes it settled get new potentials, so a search costs what it
    /// looked at, not the size of the graph. Returns false, changing
    /// nothing, when no path exists. `undo` records what changed.
    pub fn augment_from(&mut self, start: usize, sink: usize, search: &mut Search, undo: Option<&mut Undo>) -> bool {
        let Search {
            potential,
            dist,
            via,
            touched,
            settled,
        } = search;
        dist[start] = 0;
        touched.push(start);
        let mut heap = BinaryHeap::from([Reverse((0i64, start))]);
        let mut reached = false;
        while let Some(Reverse((d, u))) = heap.pop() {
            if d > dist[u] {
                continue;
            }
            settled.push(u);
            if u == sink {
                reached = true;
                break;
            }
            for &e in &self.adjacent[u] {
                let edge = &self.edges[e];
                if edge.capacity <= 0 {
                    continue;
                }
                let next = d + edge.cost + potential[u] - potential[edge.to];
                if next < dist[edge.to] {
                    if dist[edge.to] == i64::MAX {
                        touched.push(edge.to);
                    }
                    dist[edge.to] = next;
                    via[edge.to] = e;
                    heap.push(Reverse((next, edge.to)));
                }
            }
        }
        if reached {
            // Settled nodes move by their distance less the sink's; the
            // others keep theirs (the same as moving by the sink's distance,
            // up to a constant): every reduced cost stays non-negative, and
            // the path's arcs get reduced cost 0, so their reverses do too.
            let reach = dist[sink];
            let mut undo = undo;
            for &u in settled.iter() {
                if let Some(undo) = undo.as_deref_mut() {
                    undo.potentials.push((u, potential[u]));
                }
                potential[u] += dist[u] - reach;
            }
            let mut v = sink;
            while v != start {
                let e = via[v];
                self.edges[e].capacity -= 1;
                self.edges[e ^ 1].capacity += 1;
                if let Some(undo) = undo.as_deref_mut() {
                    undo.arcs.push(e);
                }
                v = self.edges[e ^ 1].to;
            }
        }
        for &u in touched.iter() {
            dist[u] = i64::MAX;
        }
        touched.clear();
        settled.clear();
        reached
    }

    /// Takes back what the searches recorded in `undo` did.
    pub fn undo(&mut self, search: &mut Search, undo: Undo) {
        for e in undo.arcs.into_iter().rev() {
            self.edges[e].capacity += 1;
            self.edges[e ^ 1].capacity -= 1;
        }
        for (u, p) in undo.potentials.into_iter().rev() {
            search.potential[u] = p;
        }
    }
}
