//! The quality report: greedy (each need on arrival) against the batch
//! optimum on the same seeded, realistic instances, then the national-scale
//! instance with its time and peak memory.
//! Run: `cargo bench -p refer-matching --bench quality` (prints Markdown).

use refer_domain::kinds::NeedKind;
use refer_domain::profile::{AgeBand, Gender};
use refer_matching::scenario::Scenario;
use refer_matching::{Instance, Mode, Solution};
use std::collections::BTreeMap;
use std::time::Instant;

/// Sums over several instances.
#[derive(Default)]
struct Tally {
    needs: usize,
    placed: usize,
    max_placeable: usize,
    violations: usize,
    total_km: u64,
    worst_km: u32,
    bundle_spread_km: u32,
    groups_split: usize,
    /// Beds: (placed, asked) per subgroup.
    beds: BTreeMap<&'static str, (usize, usize)>,
}

fn subgroups(need: &refer_matching::OpenNeed) -> [&'static str; 3] {
    let profile = &need.spec.profile;
    let age = match profile.age_band {
        AgeBand::Juvenile => "juvenile",
        AgeBand::Adult => "adult",
    };
    let gender = match profile.gender {
        Gender::Female => "female",
        Gender::Male => "male",
        Gender::NonBinary => "non-binary",
    };
    let speaks = |code: &str| profile.languages.iter().any(|l| l.as_str() == code);
    let language = if speaks("en") {
        "speaks en"
    } else if speaks("es") {
        "es, no en"
    } else {
        "other, no en"
    };
    [age, gender, language]
}

impl Tally {
    fn add(&mut self, instance: &Instance, solution: &Solution) {
        let m = &solution.metrics;
        self.needs += m.needs;
        self.placed += m.placed;
        self.max_placeable += solution.max_placeable;
        self.violations += m.priority_violations;
        self.total_km += m.total_km;
        self.worst_km = self.worst_km.max(m.worst_km);
        self.bundle_spread_km = self.bundle_spread_km.max(m.bundle_spread_km);
        self.groups_split += m.groups_split;
        for (need, placement) in instance.needs.iter().zip(&solution.placements) {
            if need.spec.kind != NeedKind::Shelter {
                continue;
            }
            for group in subgroups(need) {
                let entry = self.beds.entry(group).or_default();
                entry.0 += usize::from(placement.target.is_some());
                entry.1 += 1;
            }
        }
    }

    fn row(&self, label: &str) -> String {
        let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
        format!(
            "| {label} | {} | {} ({:.1}%) | {:.1}% | {} | {:.1} | {} | {} | {} |",
            self.needs,
            self.placed,
            pct(self.placed, self.needs),
            pct(self.placed, self.max_placeable),
            self.violations,
            self.total_km as f64 / self.placed.max(1) as f64,
            self.worst_km,
            self.bundle_spread_km,
            self.groups_split,
        )
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn compare(title: &str, instances: Vec<Instance>) {
    let (mut greedy, mut batch) = (Tally::default(), Tally::default());
    for instance in &instances {
        greedy.add(instance, &instance.solve(Mode::Greedy));
        batch.add(instance, &instance.solve(Mode::Batch));
    }
    println!("\n### {title} ({} instances)\n", instances.len());
    println!("| mode | needs | placed | of max placeable | priority violations | mean km | worst km | bundle spread km | keep-together split |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!("{}", greedy.row("greedy"));
    println!("{}", batch.row("batch"));
    println!("\nBeds placed by subgroup (greedy / batch):\n");
    println!("| subgroup | asked | greedy | batch |");
    println!("|---|---|---|---|");
    for (group, (placed, asked)) in &batch.beds {
        let greedy_placed = greedy.beds.get(group).map_or(0, |g| g.0);
        let pct = |p: usize| 100.0 * p as f64 / (*asked).max(1) as f64;
        println!(
            "| {group} | {asked} | {:.1}% | {:.1}% |",
            pct(greedy_placed),
            pct(*placed)
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `--quick` keeps CI smoke runs short.
    let quick = std::env::args().any(|a| a == "--quick");
    let seeds = if quick { 1..=2 } else { 1..=20 };
    compare(
        "Operation night: 15 people (one group) x 300 providers",
        seeds.clone().map(|s| Scenario::operation_night(s).instance()).collect(),
    );
    compare(
        "Operation night where beds are scarce: 15 people x 300 providers, a tenth of the free units",
        seeds
            .clone()
            .map(|s| {
                Scenario {
                    capacity_factor: 0.1,
                    ..Scenario::operation_night(s)
                }
                .instance()
            })
            .collect(),
    );
    compare(
        "Regional, capacity short: 300 people x 3,000 providers, a tenth of the free units",
        seeds
            .take(3)
            .map(|s| {
                Scenario {
                    capacity_factor: 0.1,
                    ..Scenario::regional(100 + s)
                }
                .instance()
            })
            .collect(),
    );
    if quick {
        return;
    }

    let started = Instant::now();
    let instance = Scenario::national(7).instance();
    let generated = started.elapsed();
    let rss_instance = peak_rss_mb();
    let started = Instant::now();
    let (catalog, free) = instance.catalog();
    let catalogued = started.elapsed();
    let requests = instance.requests();
    let started = Instant::now();
    let choices = refer_matching::assign(
        &catalog,
        refer_matching::Stock::fresh(&|s| free[s]),
        instance.now,
        &requests,
        Mode::Batch,
    );
    let solved = started.elapsed();
    let placed = choices.iter().filter(|c| c.is_some()).count();
    println!(
        "\n### National: {} needs x {} providers ({} sites)\n",
        requests.len(),
        instance.providers.len(),
        catalog.len()
    );
    println!("| step | time |");
    println!("|---|---|");
    println!("| generate the instance | {:.2} s |", generated.as_secs_f64());
    println!("| compile the catalog | {:.2} s |", catalogued.as_secs_f64());
    println!(
        "| batch optimum (constraints, beds, bundles, groups) | {:.2} s |",
        solved.as_secs_f64()
    );
    println!(
        "\nPlaced {placed} of {} needs. Peak RSS: {:.0} MB (of which the instance as data: {:.0} MB).",
        requests.len(),
        peak_rss_mb(),
        rss_instance
    );
}
