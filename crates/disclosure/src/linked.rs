//! Rule 3 over a whole report: tables that count the same things are
//! checked together, since what one shows is known when another is read.
//!
//! Each table is a circulation (see the crate's notes). Tables are linked
//! when they hold the same figure: two breakdowns of the unmet needs share
//! their row totals (unmet needs of each kind) and their grand total; the
//! outcome table's unmet columns add up to those same row totals. Each
//! table's network carries every figure it holds, shared ones included
//! (the outcome table routes its unmet columns through a node per row, so
//! "unmet needs of kind k" is one of its edges). A table that agrees with
//! all that is published differs from the true ones by one circulation per
//! table, the shared figures moving alike in each.
//!
//! A hidden figure is safe when such a joint move exists that changes it:
//! the check searches moves that change it by one and at most two shared
//! figures by one (a need added to one kind moves its kind's total and
//! the grand total), each table's part found as a flow in its residual
//! graph. Every figure declared safe has such a witness, so the check
//! never passes a figure a reader can work out; it may miss a witness that
//! needs more shared figures to move, and then it hides more than needed.

use crate::{primary, Published, ShapeError, Shown, Table};
use std::collections::{BTreeMap, VecDeque};

/// How tables of one report hold the same figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// These tables count the same items by the same rows, each item in
    /// exactly one column: their row totals are the same figures, and so
    /// are their grand totals.
    SameRows(Vec<usize>),
    /// In `table`, each row's cells in `columns` add up to that row's total
    /// in table `of` (the outcome table's unmet columns and the unmet
    /// breakdowns); `of: None` when those sums are known to be zero (a
    /// breakdown of nothing is not published, and its absence says so).
    Part {
        table: usize,
        columns: Vec<usize>,
        of: Option<usize>,
    },
}

/// One figure of a table's network: from one node to another, its true
/// count, and which figure of the family it is.
#[derive(Clone, Copy, Debug)]
struct Edge {
    from: usize,
    to: usize,
    id: usize,
}

/// A table as a circulation: 0 source, 1 sink, then rows, columns, and the
/// nodes a `Part` link adds (one per row, and one gathering the columns).
struct Net {
    nodes: usize,
    edges: Vec<Edge>,
}

/// The tables of one report with their figures numbered once each.
struct Family {
    nets: Vec<Net>,
    /// True count of each figure.
    counts: Vec<u64>,
    /// How each figure is shown (a figure no table shows, known to be zero,
    /// is `Count(0)`: known all the same).
    shown: Vec<Shown>,
    /// Whether each figure is held by more than one table.
    shared: Vec<bool>,
    /// Whether each figure is a cell (cheaper to hide than a total).
    cell: Vec<bool>,
    /// Figures every reader knows whatever is shown (a part known to be
    /// zero, and its cells): never moved, never protected.
    known: Vec<bool>,
    /// Each table's figures in the order `Published` lists them: cells row
    /// by row, row totals, column totals, the grand total.
    shows: Vec<Vec<usize>>,
}

/// Publishes every table of a report under the three rules, rule 3 over
/// the tables together as `links` says they are related.
pub fn publish_linked(tables: &[Table], links: &[Link]) -> Result<Vec<Published>, ShapeError> {
    for t in tables {
        check_shape(t)?;
    }
    let mut family = Family::of(tables, links)?;
    family.protect();
    Ok(tables
        .iter()
        .zip(&family.shows)
        .map(|(t, ids)| {
            let (rows, columns) = (t.rows.len(), t.columns.len());
            let shown: Vec<Shown> = ids.iter().map(|&id| family.shown[id]).collect();
            Published {
                title: t.title.clone(),
                rows: t.rows.clone(),
                columns: t.columns.clone(),
                cells: shown[..rows * columns].chunks(columns).map(<[Shown]>::to_vec).collect(),
                row_totals: shown[rows * columns..rows * columns + rows].to_vec(),
                column_totals: shown[rows * columns + rows..rows * columns + rows + columns].to_vec(),
                total: shown[rows * columns + rows + columns],
            }
        })
        .collect())
}

fn check_shape(table: &Table) -> Result<(), ShapeError> {
    let (rows, columns) = (table.rows.len(), table.columns.len());
    if rows == 0 || columns == 0 {
        return Err(ShapeError::Empty);
    }
    if table.cells.len() != rows {
        return Err(ShapeError::Rows {
            cells: table.cells.len(),
            labels: rows,
        });
    }
    if let Some((row, cells)) = table.cells.iter().enumerate().find(|(_, c)| c.len() != columns) {
        return Err(ShapeError::Ragged {
            row,
            cells: cells.len(),
            columns,
        });
    }
    Ok(())
}

/// The strictest of two ways of showing the same figure.
fn stricter(a: Shown, b: Shown) -> Shown {
    match (a, b) {
        (Shown::Suppressed, _) | (_, Shown::Suppressed) => Shown::Suppressed,
        (Shown::UnderFive, _) | (_, Shown::UnderFive) => Shown::UnderFive,
        (a, _) => a,
    }
}

impl Family {
    fn of(tables: &[Table], links: &[Link]) -> Result<Self, ShapeError> {
        let link_error = |why: String| Err(ShapeError::Links(why));
        // Number every figure of every table; links then make some the same.
        let mut shows: Vec<Vec<usize>> = Vec::new();
        let mut counts: Vec<u64> = Vec::new();
        let mut shown: Vec<Shown> = Vec::new();
        let mut cell: Vec<bool> = Vec::new();
        for t in tables {
            let (rows, columns) = (t.rows.len(), t.columns.len());
            let mut figures: Vec<u64> = t.cells.iter().flatten().map(|f| f.count).collect();
            figures.extend(t.cells.iter().map(|r| r.iter().map(|f| f.count).sum::<u64>()));
            figures.extend((0..columns).map(|j| t.cells.iter().map(|r| r[j].count).sum::<u64>()));
            figures.push(t.cells.iter().flatten().map(|f| f.count).sum());
            let first = counts.len();
            shows.push((first..first + figures.len()).collect());
            counts.extend(figures);
            shown.extend(primary(t));
            cell.extend((0..rows * columns + rows + columns + 1).map(|f| f < rows * columns));
        }
        let row_total = |t: usize, i: usize| {
            let (rows, columns) = (tables[t].rows.len(), tables[t].columns.len());
            shows[t][rows * columns + i]
        };
        let grand_total = |t: usize| *shows[t].last().expect("a table has figures");
        // Same figures: each id points at the one it is.
        let mut same: Vec<usize> = (0..counts.len()).collect();
        let mut parts: Vec<(usize, Vec<usize>, Option<usize>)> = Vec::new();
        for link in links {
            match link {
                Link::SameRows(group) => {
                    let Some(&first) = group.first() else { continue };
                    for &t in group {
                        if t >= tables.len() || tables[t].rows != tables[first].rows {
                            return link_error(format!("table {t} has not the rows of table {first}"));
                        }
                        for i in 0..tables[t].rows.len() {
                            same[row_total(t, i)] = row_total(first, i);
                        }
                        same[grand_total(t)] = grand_total(first);
                    }
                }
                Link::Part { table, columns, of } => {
                    let t = &tables[*table];
                    if columns.iter().any(|&c| c >= t.columns.len()) {
                        return link_error(format!("a part of table {table} names a column it has not"));
                    }
                    if let Some(of) = of {
                        if tables[*of].rows != t.rows {
                            return link_error(format!("table {of} has not the rows of table {table}"));
                        }
                    }
                    parts.push((*table, columns.clone(), *of));
                }
            }
        }
        fn root(same: &[usize], mut id: usize) -> usize {
            while same[id] != id {
                id = same[id];
            }
            id
        }
        // The figures a part adds to its table: its sums by row and in all,
        // the other table's totals, or zero known to all.
        let mut part_ids: BTreeMap<usize, (Vec<usize>, usize)> = BTreeMap::new();
        let mut known = vec![false; counts.len()];
        for (table, part_columns, of) in &parts {
            let rows = tables[*table].rows.len();
            let ids = match of {
                Some(of) => (
                    (0..rows).map(|i| root(&same, row_total(*of, i))).collect(),
                    root(&same, grand_total(*of)),
                ),
                None => {
                    let first = counts.len();
                    for _ in 0..=rows {
                        counts.push(0);
                        shown.push(Shown::Count(0));
                        cell.push(false);
                        same.push(same.len());
                        known.push(true);
                    }
                    // Nothing of the part: each of its cells and column
                    // totals is zero, and every reader knows it.
                    let t = &tables[*table];
                    let columns = t.columns.len();
                    for &j in part_columns {
                        for i in 0..rows {
                            known[shows[*table][i * columns + j]] = true;
                        }
                        known[shows[*table][rows * columns + rows + j]] = true;
                    }
                    ((first..first + rows).collect(), first + rows)
                }
            };
            part_ids.insert(*table, ids);
        }
        let canonical = |id: usize| root(&same, id);
        for id in 0..same.len() {
            let c = canonical(id);
            if c != id {
                if counts[c] != counts[id] {
                    return link_error(format!("linked figures disagree: {} and {}", counts[c], counts[id]));
                }
                shown[c] = stricter(shown[c], shown[id]);
            }
        }
        // Each table's network, its figures by their canonical ids.
        let mut nets = Vec::new();
        let mut holders = vec![0usize; counts.len()];
        for (t, table) in tables.iter().enumerate() {
            let (rows, columns) = (table.rows.len(), table.columns.len());
            let row = |i: usize| 2 + i;
            let column = |j: usize| 2 + rows + j;
            let part = parts.iter().find(|(p, ..)| *p == t);
            let in_part = |j: usize| part.is_some_and(|(_, cs, _)| cs.contains(&j));
            let by_row = |i: usize| 2 + rows + columns + i;
            let gather = 2 + rows + columns + rows;
            let id = |f: usize| canonical(shows[t][f]);
            let mut edges = Vec::new();
            for i in 0..rows {
                for j in 0..columns {
                    let from = if in_part(j) { by_row(i) } else { row(i) };
                    edges.push(Edge {
                        from,
                        to: column(j),
                        id: id(i * columns + j),
                    });
                }
            }
            for i in 0..rows {
                edges.push(Edge {
                    from: 0,
                    to: row(i),
                    id: id(rows * columns + i),
                });
            }
            for j in 0..columns {
                let to = if in_part(j) { gather } else { 1 };
                edges.push(Edge {
                    from: column(j),
                    to,
                    id: id(rows * columns + rows + j),
                });
            }
            edges.push(Edge {
                from: 1,
                to: 0,
                id: id(rows * columns + rows + columns),
            });
            if let Some((sums, all)) = part_ids.get(&t) {
                for (i, &sum) in sums.iter().enumerate() {
                    edges.push(Edge {
                        from: row(i),
                        to: by_row(i),
                        id: sum,
                    });
                }
                edges.push(Edge {
                    from: gather,
                    to: 1,
                    id: *all,
                });
            }
            for e in &edges {
                holders[e.id] += 1;
            }
            nets.push(Net {
                nodes: gather + 1,
                edges,
            });
        }
        // The part's sums must be what the other table says they are.
        for (table, columns, _) in &parts {
            let (sums, all) = &part_ids[table];
            for (i, &sum) in sums.iter().enumerate() {
                let found: u64 = columns.iter().map(|&j| tables[*table].cells[i][j].count).sum();
                if found != counts[sum] {
                    return link_error(format!(
                        "row {i} of table {table}: its part is {found}, not {}",
                        counts[sum]
                    ));
                }
            }
            let found: u64 = sums.iter().map(|&s| counts[s]).sum();
            if found != counts[*all] {
                return link_error(format!(
                    "table {table}: its part is {found} in all, not {}",
                    counts[*all]
                ));
            }
        }
        let shows = shows
            .into_iter()
            .map(|ids| ids.into_iter().map(canonical).collect())
            .collect();
        let counts_len = counts.len();
        // A figure is known when any of its names is.
        for id in 0..counts_len {
            if known[id] {
                known[canonical(id)] = true;
            }
        }
        Ok(Self {
            nets,
            counts,
            shown,
            shared: holders.iter().map(|&h| h > 1).collect(),
            cell,
            known: (0..counts_len).map(|id| known[id]).collect(),
            shows,
        })
    }

    /// Hides figures until every hidden one has a witness: first the
    /// cheapest way round it in its own table; if it is still pinned, every
    /// "< 5" of the tables linked to it as `suppressed` (their bounds are
    /// information too); then every figure of those tables.
    fn protect(&mut self) {
        // How far each pinned figure has gone: a step that hid nothing
        // moves it to the next; one that hid something is tried again.
        let mut levels: BTreeMap<usize, usize> = BTreeMap::new();
        while let Some(f) =
            (0..self.counts.len()).find(|&f| self.shown[f].is_hidden() && !self.known[f] && !self.free(f))
        {
            let level = levels.entry(f).or_insert(0);
            loop {
                let before = self.shown.clone();
                match *level {
                    0 => {
                        let mut hide = self.cover(f).unwrap_or_default();
                        if hide.iter().all(|&id| self.shown[id].is_hidden()) {
                            hide = self.follow(f);
                        }
                        for id in hide {
                            self.shown[id] = Shown::Suppressed;
                        }
                    }
                    1 => self.widen(f, |s| s == Shown::UnderFive),
                    2 => self.widen(f, |_| true),
                    _ => unreachable!("a figure is pinned with every figure of its tables hidden"),
                }
                if self.shown != before {
                    break;
                }
                *level += 1;
            }
        }
    }

    /// Shows as `suppressed` every figure `which` picks in the tables
    /// linked to those holding `f` (what every reader knows stays known).
    fn widen(&mut self, f: usize, which: impl Fn(Shown) -> bool) {
        for net in self.linked(f) {
            for i in 0..self.nets[net].edges.len() {
                let id = self.nets[net].edges[i].id;
                if which(self.shown[id]) && !self.known[id] {
                    self.shown[id] = Shown::Suppressed;
                }
            }
        }
    }

    /// The tables linked (through shared figures, transitively) to those
    /// holding `f`.
    fn linked(&self, f: usize) -> Vec<usize> {
        let holds = |net: usize, id: usize| self.nets[net].edges.iter().any(|e| e.id == id);
        let mut found: Vec<usize> = (0..self.nets.len()).filter(|&n| holds(n, f)).collect();
        let mut queue: VecDeque<usize> = found.iter().copied().collect();
        while let Some(n) = queue.pop_front() {
            for e in &self.nets[n].edges {
                if !self.shared[e.id] {
                    continue;
                }
                for other in 0..self.nets.len() {
                    if !found.contains(&other) && holds(other, e.id) {
                        found.push(other);
                        queue.push_back(other);
                    }
                }
            }
        }
        found
    }

    /// The joint moves tried for hidden figure `f`: it changes by one, and
    /// with it at most two hidden shared figures of its tables (one if `f`
    /// is shared itself), each within what is shown of it.
    fn moves(&self, f: usize) -> Vec<BTreeMap<usize, i64>> {
        let mut along: Vec<usize> = (0..self.nets.len())
            .filter(|&n| self.holds(n, f))
            .flat_map(|n| self.nets[n].edges.iter().map(|e| e.id))
            .filter(|&id| id != f && self.shared[id] && self.shown[id].is_hidden() && !self.known[id])
            .collect();
        along.sort_unstable();
        along.dedup();
        let can = |id: usize, step: i64| {
            let (low, high) = self.shown[id].bounds();
            let count = self.counts[id];
            if step > 0 {
                count < high
            } else {
                count > low
            }
        };
        let mut moves = Vec::new();
        for step in [1i64, -1] {
            if !can(f, step) {
                continue;
            }
            moves.push(BTreeMap::from([(f, step)]));
            for (a, &g) in along.iter().enumerate() {
                for sg in [1i64, -1] {
                    if !can(g, sg) {
                        continue;
                    }
                    moves.push(BTreeMap::from([(f, step), (g, sg)]));
                    if self.shared[f] {
                        continue;
                    }
                    for &h in &along[a + 1..] {
                        for sh in [1i64, -1] {
                            if can(h, sh) {
                                moves.push(BTreeMap::from([(f, step), (g, sg), (h, sh)]));
                            }
                        }
                    }
                }
            }
        }
        moves
    }

    fn holds(&self, net: usize, id: usize) -> bool {
        self.nets[net].edges.iter().any(|e| e.id == id)
    }

    /// Whether a joint move changes hidden figure `f` (see the notes).
    fn free(&self, f: usize) -> bool {
        self.moves(f)
            .iter()
            .any(|m| (0..self.nets.len()).all(|n| self.carries(n, m)))
    }

    /// What a shown figure costs to hide: its count (small first), and a
    /// total more than any cell (readers need totals most).
    fn hide_cost(&self, id: usize) -> u64 {
        let all: u64 = self.counts.iter().sum();
        match self.shown[id].is_hidden() {
            true => 0,
            false => 1 + self.counts[id] + if self.cell[id] { 0 } else { all + 1 },
        }
    }

    /// When the tables holding `f` can move it but a linked table cannot
    /// follow: the cheapest move they can make, and the shown figures the
    /// other tables must hide to follow it.
    fn follow(&self, f: usize) -> Vec<usize> {
        let mut best: Option<(u64, Vec<usize>)> = None;
        for m in self.moves(f) {
            if !(0..self.nets.len())
                .filter(|&n| self.holds(n, f))
                .all(|n| self.carries(n, &m))
            {
                continue;
            }
            let mut cost = 0;
            let mut hide = Vec::new();
            let mut possible = true;
            for n in (0..self.nets.len()).filter(|&n| !self.carries(n, &m)) {
                match self.cheapest_carry(n, &m) {
                    Some((c, ids)) => {
                        cost += c;
                        hide.extend(ids);
                    }
                    None => possible = false,
                }
            }
            if possible && best.as_ref().is_none_or(|(c, _)| cost < *c) {
                best = Some((cost, hide));
            }
        }
        best.map(|(_, hide)| hide).unwrap_or_default()
    }

    /// The shown figures of table `net` whose hiding lets it carry `moved`,
    /// found unit by unit along cheapest paths, and what they cost.
    fn cheapest_carry(&self, net: usize, moved: &BTreeMap<usize, i64>) -> Option<(u64, Vec<usize>)> {
        let n = &self.nets[net];
        let mut supply = vec![0i64; n.nodes];
        // (from, to, figure, room)
        let mut arcs: Vec<(usize, usize, usize, i64)> = Vec::new();
        for e in &n.edges {
            match moved.get(&e.id) {
                Some(&step) => {
                    let (from, to) = if step > 0 { (e.from, e.to) } else { (e.to, e.from) };
                    supply[to] += 1;
                    supply[from] -= 1;
                }
                None if self.shared[e.id] || self.known[e.id] => {}
                None => {
                    let (low, high) = match self.shown[e.id] {
                        Shown::Count(_) => Shown::Suppressed.bounds(),
                        hidden => hidden.bounds(),
                    };
                    let count = self.counts[e.id];
                    let room = |r: u64| r.min(3) as i64;
                    arcs.push((e.from, e.to, e.id, room(high.saturating_sub(count))));
                    arcs.push((e.to, e.from, e.id, room(count.saturating_sub(low))));
                }
            }
        }
        let mut paid: Vec<usize> = Vec::new();
        let mut total = 0;
        while let Some(start) = (0..n.nodes).find(|&v| supply[v] > 0) {
            // Dijkstra from `start` to any node short of flow.
            let mut best = vec![u64::MAX; n.nodes];
            let mut via: Vec<Option<usize>> = vec![None; n.nodes];
            let mut queue = std::collections::BinaryHeap::from([std::cmp::Reverse((0u64, start))]);
            best[start] = 0;
            while let Some(std::cmp::Reverse((d, node))) = queue.pop() {
                if d > best[node] {
                    continue;
                }
                for (a, &(from, to, id, room)) in arcs.iter().enumerate() {
                    if from != node || room <= 0 {
                        continue;
                    }
                    let step = if paid.contains(&id) { 0 } else { self.hide_cost(id) };
                    if d + step < best[to] {
                        best[to] = d + step;
                        via[to] = Some(a);
                        queue.push(std::cmp::Reverse((d + step, to)));
                    }
                }
            }
            let goal = (0..n.nodes)
                .filter(|&v| supply[v] < 0 && best[v] < u64::MAX)
                .min_by_key(|&v| best[v])?;
            total += best[goal];
            let mut node = goal;
            while node != start {
                let a = via[node]?;
                arcs[a].3 -= 1;
                let (from, _, id, _) = arcs[a];
                if !self.shown[id].is_hidden() && !paid.contains(&id) {
                    paid.push(id);
                }
                node = from;
            }
            supply[start] -= 1;
            supply[goal] += 1;
        }
        Some((total, paid))
    }

    /// Whether table `net` can take the changes `moved` makes to its
    /// figures: a flow in its residual graph (every other hidden figure free
    /// within what is shown of it, shared ones not in `moved` held still).
    fn carries(&self, net: usize, moved: &BTreeMap<usize, i64>) -> bool {
        let n = &self.nets[net];
        let mut supply = vec![0i64; n.nodes];
        // Residual arcs: (from, to, capacity), at most 3 units ever move.
        let mut arcs: Vec<(usize, usize, i64)> = Vec::new();
        let mut any = false;
        for e in &n.edges {
            match moved.get(&e.id) {
                Some(&step) => {
                    any = true;
                    let (from, to) = if step > 0 { (e.from, e.to) } else { (e.to, e.from) };
                    supply[to] += 1;
                    supply[from] -= 1;
                }
                None if self.shared[e.id] || self.known[e.id] || !self.shown[e.id].is_hidden() => {}
                None => {
                    let (low, high) = self.shown[e.id].bounds();
                    let count = self.counts[e.id];
                    let cap = |room: u64| room.min(3) as i64;
                    arcs.push((e.from, e.to, cap(high.saturating_sub(count))));
                    arcs.push((e.to, e.from, cap(count.saturating_sub(low))));
                }
            }
        }
        if !any {
            return true;
        }
        max_flow_meets(n.nodes, &arcs, &supply)
    }

    /// The cheapest set of shown figures of the first table holding `f`
    /// whose hiding opens a way round it there (a hidden figure costs
    /// nothing, a shown one its count, a total more than any cell).
    fn cover(&self, f: usize) -> Option<Vec<usize>> {
        let net = (0..self.nets.len()).find(|&n| self.nets[n].edges.iter().any(|e| e.id == f))?;
        let n = &self.nets[net];
        let edge = *n.edges.iter().find(|e| e.id == f)?;
        let (low, high) = self.shown[f].bounds();
        let count = self.counts[f];
        let cost = |id: usize| self.hide_cost(id);
        let mut ways = Vec::new();
        if count < high {
            ways.extend(self.cheapest_path(net, f, edge.to, edge.from, &cost));
        }
        if count > low {
            ways.extend(self.cheapest_path(net, f, edge.from, edge.to, &cost));
        }
        ways.into_iter()
            .min_by_key(|path| path.iter().map(|&id| cost(id)).sum::<u64>())
            .map(|path| {
                path.into_iter()
                    .filter(|&id| !self.shown[id].is_hidden() && !self.known[id])
                    .collect()
            })
    }

    /// The cheapest path from `start` to `goal` in table `net` (Dijkstra),
    /// as the figures it moves; a hidden figure moves within its bounds, a
    /// shown one anywhere once hidden (down only from above zero); a figure
    /// known to be zero by its absence not at all.
    fn cheapest_path(
        &self,
        net: usize,
        skip: usize,
        start: usize,
        goal: usize,
        cost: &dyn Fn(usize) -> u64,
    ) -> Option<Vec<usize>> {
        let n = &self.nets[net];
        let mut arcs: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n.nodes];
        for e in &n.edges {
            if e.id == skip || self.known[e.id] {
                continue;
            }
            let (low, high) = match self.shown[e.id] {
                Shown::Count(_) => Shown::Suppressed.bounds(),
                hidden => hidden.bounds(),
            };
            let count = self.counts[e.id];
            if count < high {
                arcs[e.from].push((e.to, e.id));
            }
            if count > low {
                arcs[e.to].push((e.from, e.id));
            }
        }
        let mut best = vec![u64::MAX; n.nodes];
        let mut via: Vec<Option<(usize, usize)>> = vec![None; n.nodes];
        let mut queue = std::collections::BinaryHeap::from([std::cmp::Reverse((0u64, start))]);
        best[start] = 0;
        while let Some(std::cmp::Reverse((d, node))) = queue.pop() {
            if d > best[node] {
                continue;
            }
            for &(next, id) in &arcs[node] {
                let through = d + cost(id);
                if through < best[next] {
                    best[next] = through;
                    via[next] = Some((node, id));
                    queue.push(std::cmp::Reverse((through, next)));
                }
            }
        }
        let mut path = Vec::new();
        let mut node = goal;
        while node != start {
            let (previous, id) = via[node]?;
            path.push(id);
            node = previous;
        }
        Some(path)
    }
}

/// Whether flow can go from every node with a positive `supply` to those
/// with a negative one, through `arcs` (from, to, capacity), meeting them
/// all (augmenting paths; the supplies are a few units).
fn max_flow_meets(nodes: usize, arcs: &[(usize, usize, i64)], supply: &[i64]) -> bool {
    let (source, sink) = (nodes, nodes + 1);
    let mut capacity = vec![vec![0i64; nodes + 2]; nodes + 2];
    for &(from, to, cap) in arcs {
        capacity[from][to] += cap;
    }
    let mut needed = 0;
    for (node, &s) in supply.iter().enumerate() {
        if s > 0 {
            capacity[source][node] += s;
            needed += s;
        } else if s < 0 {
            capacity[node][sink] += -s;
        }
    }
    let mut flowed = 0;
    loop {
        let mut via = vec![usize::MAX; nodes + 2];
        via[source] = source;
        let mut queue = VecDeque::from([source]);
        while let Some(node) = queue.pop_front() {
            for next in 0..nodes + 2 {
                if via[next] == usize::MAX && capacity[node][next] > 0 {
                    via[next] = node;
                    queue.push_back(next);
                }
            }
        }
        if via[sink] == usize::MAX {
            return flowed == needed;
        }
        let mut node = sink;
        while node != source {
            let previous = via[node];
            capacity[previous][node] -= 1;
            capacity[node][previous] += 1;
            node = previous;
        }
        flowed += 1;
        if flowed == needed {
            return true;
        }
    }
}
