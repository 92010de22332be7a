//! The night replay: the live planner against greedy-by-arrival and the
//! exact hindsight optimum, over several seeded nights of each kind.
//! Run: `cargo bench -p refer-matching --bench night` (prints Markdown).
//! `NIGHT_SEEDS=1..=10` picks the seeds (default 1..=5).

use refer_matching::night::{Night, NightKind, Outcome, WEIGHTS};
use refer_matching::planner::Policy;
use refer_matching::TIERS;
use std::time::Instant;

fn seeds() -> std::ops::RangeInclusive<u64> {
    let spec = std::env::var("NIGHT_SEEDS").unwrap_or_else(|_| "1..=5".into());
    let (a, b) = spec.split_once("..=").expect("NIGHT_SEEDS like 1..=5");
    a.parse().expect("a seed")..=b.parse().expect("a seed")
}

fn pct(a: f64, b: f64) -> String {
    if b == 0.0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * a / b)
    }
}

#[derive(Default)]
struct Sum {
    placed: [u64; TIERS],
    weighted: u64,
    km: u64,
    unsafe_placements: u64,
    idle: u64,
    worst_weighted: f64,
    worst_immediate: f64,
    worst_placed: f64,
}

impl Sum {
    fn add(&mut self, o: &Outcome, hindsight: &Outcome) {
        for t in 0..TIERS {
            self.placed[t] += u64::from(o.placed_by_tier[t]);
        }
        self.weighted += o.weighted();
        self.km += o.total_km;
        self.unsafe_placements += u64::from(o.unsafe_placements);
        self.idle += u64::from(o.idle_while_waiting);
        let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
        let w = ratio(o.weighted(), hindsight.weighted());
        let imm = ratio(
            u64::from(o.placed_by_tier[0] + o.placed_by_tier[1]),
            u64::from(hindsight.placed_by_tier[0] + hindsight.placed_by_tier[1]),
        );
        let p = ratio(u64::from(o.placed()), u64::from(hindsight.placed()));
        if self.worst_weighted == 0.0 || w < self.worst_weighted {
            self.worst_weighted = w;
        }
        if self.worst_immediate == 0.0 || imm < self.worst_immediate {
            self.worst_immediate = imm;
        }
        if self.worst_placed == 0.0 || p < self.worst_placed {
            self.worst_placed = p;
        }
    }
    fn placed(&self) -> u64 {
        self.placed.iter().sum()
    }
}

fn main() {
    // Cargo passes `--bench`; nothing to parse.
    println!("| night | seeds | needs | beds asked / existing | outcome | placed | priority-weighted | imm. juvenile | imm. adult | soon | routine | mean km | unsafe | idle while waiting |");
    println!("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for kind in [NightKind::Scarce, NightKind::Operation, NightKind::Ample] {
        let (mut live, mut before, mut greedy, mut hind) =
            (Sum::default(), Sum::default(), Sum::default(), Sum::default());
        let mut grouped = Sum::default();
        let (mut needs, mut asked, mut existing, mut proven, mut n) = (0u64, 0u64, 0u64, 0, 0);
        let started = Instant::now();
        for seed in seeds() {
            let night = Night::generate(kind, seed);
            let h = night.hindsight();
            let l = night.live(Policy::default());
            let b = night.live(Policy::arrival_order());
            let g = night.greedy();
            hind.add(&h, &h);
            live.add(&l, &h);
            before.add(&b, &h);
            grouped.add(&night.live_with(Policy::default(), false), &h);
            greedy.add(&g, &h);
            needs += u64::from(h.needs_by_tier.iter().sum::<u32>());
            let (a, e) = night.beds();
            asked += u64::from(a);
            existing += u64::from(e);
            proven += usize::from(h.proven);
            n += 1;
        }
        let h_imm = (hind.placed[0] + hind.placed[1]) as f64;
        for (name, s) in [
            ("live, protecting the urgent", &live),
            ("same, a group one person per commit", &grouped),
            ("live, arrival order (before)", &before),
            ("greedy by arrival", &greedy),
            ("hindsight", &hind),
        ] {
            println!(
                "| {} | {} | {} | {} / {} | {} | {} ({}) | {} | {} ({}) | {} ({}) | {} | {} | {:.1} ({}) | {} | {} |",
                kind.name(),
                n,
                needs,
                asked,
                existing,
                name,
                s.placed(),
                pct(s.placed() as f64, hind.placed() as f64),
                pct(s.weighted as f64, hind.weighted as f64),
                s.placed[0],
                pct(s.placed[0] as f64, hind.placed[0] as f64),
                s.placed[1],
                pct(s.placed[1] as f64, hind.placed[1] as f64),
                s.placed[2] + s.placed[3],
                s.placed[4] + s.placed[5],
                s.km as f64 / s.placed().max(1) as f64,
                pct(
                    s.km as f64 / s.placed().max(1) as f64,
                    hind.km as f64 / hind.placed().max(1) as f64
                ),
                s.unsafe_placements,
                s.idle,
            );
        }
        println!(
            "| {} | | | | worst night, protecting: | {} | {} | immediate {} | | | | | | |",
            kind.name(),
            pct(live.worst_placed, 1.0),
            pct(live.worst_weighted, 1.0),
            pct(live.worst_immediate, 1.0),
        );
        println!(
            "| {} | | | | immediate tiers placed, protecting / hindsight: | | | {} | | | | | | |",
            kind.name(),
            pct((live.placed[0] + live.placed[1]) as f64, h_imm),
        );
        println!(
            "| {} | | | | hindsight proven optimal on {proven} of {n} nights | | | | | | | | | |",
            kind.name()
        );
        eprintln!(
            "{}: {n} nights in {:.1} s, hindsight proven optimal on {proven} of them; weights {WEIGHTS:?}",
            kind.name(),
            started.elapsed().as_secs_f64()
        );
    }
}
