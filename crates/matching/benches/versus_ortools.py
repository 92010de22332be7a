"""OR-Tools baseline for benches/versus_ortools.rs: one instance, solved
lexicographically (a maximum flow per priority tier with the higher tiers'
counts fixed, then one minimum-cost flow for distance), `runs` times.

Prints the median seconds, the placed count per tier (0-5) and the total km.
Input: "sources needs", the sources' free units, then per need
"tier k s1 km1 ... sk kmk". The timed part is what a solver call costs:
building OR-Tools' graphs from arrays (vectorised) and solving.
"""

import statistics
import sys
import time

import numpy as np
from ortools.graph.python import max_flow, min_cost_flow

TIERS = 6


def read(path):
    """The instance as arc arrays. Nodes: 0 source, 1 sink, 2..2+TIERS the
    tier nodes, then needs, then sources; the first TIERS arcs are
    source -> tier (their capacities are set per solve)."""
    with open(path) as f:
        sources, needs = map(int, f.readline().split())
        capacity = list(map(int, f.readline().split()))
        first_need = 2 + TIERS
        first_source = first_need + needs
        tails = [0] * TIERS
        heads = [2 + t for t in range(TIERS)]
        caps = [0] * TIERS
        costs = [0] * TIERS
        demand = [0] * TIERS
        for i in range(needs):
            fields = list(map(int, f.readline().split()))
            tier, k = fields[0], fields[1]
            demand[tier] += 1
            tails.append(2 + tier)
            heads.append(first_need + i)
            caps.append(1)
            costs.append(0)
            for j in range(k):
                tails.append(first_need + i)
                heads.append(first_source + fields[2 + 2 * j])
                caps.append(1)
                costs.append(fields[3 + 2 * j])
        for s, c in enumerate(capacity):
            tails.append(first_source + s)
            heads.append(1)
            caps.append(c)
            costs.append(0)
    as_array = lambda xs: np.array(xs, dtype=np.int64)
    return as_array(tails), as_array(heads), as_array(caps), as_array(costs), demand


def solve(tails, heads, caps, costs, demand):
    # Lexicographic counts: open tier t with the higher tiers fixed at their counts.
    flow = max_flow.SimpleMaxFlow()
    flow.add_arcs_with_capacity(tails, heads, caps)
    counts = [0] * TIERS
    for t in range(TIERS):
        for tt in range(TIERS):
            flow.set_arc_capacity(tt, counts[tt] if tt < t else (demand[t] if tt == t else 0))
        assert flow.solve(0, 1) == flow.OPTIMAL
        counts[t] = flow.optimal_flow() - sum(counts[:t])

    # Least distance with exactly those counts.
    fixed = caps.copy()
    fixed[:TIERS] = counts
    mcf = min_cost_flow.SimpleMinCostFlow()
    mcf.add_arcs_with_capacity_and_unit_cost(tails, heads, fixed, costs)
    total = sum(counts)
    mcf.set_node_supply(0, total)
    mcf.set_node_supply(1, -total)
    assert mcf.solve() == mcf.OPTIMAL
    return counts, mcf.optimal_cost()


def main():
    instance = read(sys.argv[1])
    runs = int(sys.argv[2])
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        counts, km = solve(*instance)
        times.append(time.perf_counter() - started)
    print(statistics.median(times), *counts, km)


if __name__ == "__main__":
    main()
