//! Minimum-cost flow by successive shortest paths with potentials (Dijkstra).
//! Costs are `i128` so lexicographic objectives fit in one number.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Clone, Debug)]
struct Edge {
    to: usize,
    capacity: i64,
    cost: i128,
}

pub struct Graph {
    edges: Vec<Edge>,
    adjacent: Vec<Vec<usize>>,
}

impl Graph {
    pub fn new(nodes: usize) -> Self {
        Self {
            edges: Vec::new(),
            adjacent: vec![Vec::new(); nodes],
        }
    }

    /// Adds an arc and returns its index (its reverse is `index ^ 1`).
    pub fn add(&mut self, from: usize, to: usize, capacity: i64, cost: i128) -> usize {
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

    /// Pushes as much flow as the arcs of zero reduced cost carry from
    /// `source` to `sink`, by depth-first search with a current-arc pointer
    /// per node (each arc is given up once it cannot carry more).
    fn blocking_flow(&mut self, source: usize, sink: usize, potential: &[i128]) -> i64 {
        let n = self.adjacent.len();
        // Levels along zero-reduced-cost arcs keep the search acyclic.
        let mut level = vec![u32::MAX; n];
        level[source] = 0;
        let mut queue = std::collections::VecDeque::from([source]);
        while let Some(u) = queue.pop_front() {
            for &e in &self.adjacent[u] {
                let edge = &self.edges[e];
                if edge.capacity > 0 && level[edge.to] == u32::MAX && edge.cost + potential[u] - potential[edge.to] == 0
                {
                    level[edge.to] = level[u] + 1;
                    queue.push_back(edge.to);
                }
            }
        }
        let mut next = vec![0usize; n];
        let mut total = 0;
        loop {
            let pushed = self.push(source, sink, i64::MAX, potential, &level, &mut next);
            if pushed == 0 {
                return total;
            }
            total += pushed;
        }
    }

    fn push(
        &mut self,
        u: usize,
        sink: usize,
        limit: i64,
        potential: &[i128],
        level: &[u32],
        next: &mut [usize],
    ) -> i64 {
        if u == sink {
            return limit;
        }
        while next[u] < self.adjacent[u].len() {
            let e = self.adjacent[u][next[u]];
            let (to, capacity, cost) = (self.edges[e].to, self.edges[e].capacity, self.edges[e].cost);
            if capacity > 0 && level[to] == level[u].wrapping_add(1) && cost + potential[u] - potential[to] == 0 {
                let pushed = self.push(to, sink, limit.min(capacity), potential, level, next);
                if pushed > 0 {
                    self.edges[e].capacity -= pushed;
                    self.edges[e ^ 1].capacity += pushed;
                    return pushed;
                }
            }
            next[u] += 1;
        }
        0
    }

    /// Pushes flow from `source` to `sink` along cheapest paths while a path
    /// of negative cost exists (so the result is a minimum-cost flow of any
    /// value, not a maximum flow). `order` lists the nodes in a topological
    /// order of the initial graph, which lets the potentials start exact even
    /// with negative costs.
    pub fn min_cost_flow(&mut self, source: usize, sink: usize, order: &[usize]) -> i128 {
        let n = self.adjacent.len();
        const INF: i128 = i128::MAX / 4;
        // Initial potentials: shortest distances in the DAG.
        let mut potential = vec![INF; n];
        potential[source] = 0;
        for &u in order {
            if potential[u] == INF {
                continue;
            }
            for &e in &self.adjacent[u] {
                let edge = &self.edges[e];
                if edge.capacity > 0 && potential[u] + edge.cost < potential[edge.to] {
                    potential[edge.to] = potential[u] + edge.cost;
                }
            }
        }
        for p in potential.iter_mut() {
            if *p == INF {
                *p = 0;
            }
        }
        let mut total = 0i128;
        loop {
            let mut dist = vec![INF; n];
            let mut via = vec![usize::MAX; n];
            dist[source] = 0;
            let mut heap = BinaryHeap::new();
            heap.push(Reverse((0i128, source)));
            while let Some(Reverse((d, u))) = heap.pop() {
                if d > dist[u] {
                    continue;
                }
                // Nothing popped later can shorten the path to the sink.
                if u == sink {
                    break;
                }
                for &e in &self.adjacent[u] {
                    let edge = &self.edges[e];
                    if edge.capacity <= 0 {
                        continue;
                    }
                    let reduced = edge.cost + potential[u] - potential[edge.to];
                    let next = d + reduced;
                    if next < dist[edge.to] {
                        dist[edge.to] = next;
                        via[edge.to] = e;
                        heap.push(Reverse((next, edge.to)));
                    }
                }
            }
            if dist[sink] == INF {
                break;
            }
            // Nodes not settled before the sink count as at the sink's distance,
            // which keeps every reduced cost non-negative.
            let reach = dist[sink];
            for u in 0..n {
                potential[u] += dist[u].min(reach);
            }
            // The true cost of the path; stop when it no longer pays.
            let path_cost = potential[sink] - potential[source];
            if path_cost >= 0 {
                break;
            }
            // Every shortest path now has reduced cost 0: push along all of
            // them before searching again (a blocking flow, Dinic style).
            let pushed = self.blocking_flow(source, sink, &potential);
            total += path_cost * i128::from(pushed);
        }
        total
    }
}
