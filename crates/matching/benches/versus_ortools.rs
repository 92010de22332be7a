//! The batch optimiser against OR-Tools' min-cost flow on the same instances,
//! in the same run: `cargo bench -p refer-matching --bench versus_ortools`.
//!
//! Each instance is written to a file that `versus_ortools.py` reads; it
//! solves it with OR-Tools lexicographically (a maximum flow per priority
//! tier with the higher tiers' counts fixed, then one minimum-cost flow for
//! distance) and prints its time and objective. Both objectives must agree
//! (per-tier counts and total distance), so the comparison is of two exact
//! solvers. Python with `ortools` comes from `scripts/install-ortools`
//! (`REFER_ORTOOLS_PYTHON` names another interpreter).

use refer_matching::scenario::synthetic_problem as problem;
use refer_matching::{solve_batch, Problem};
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

fn write(problem: &Problem, path: &std::path::Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("instance file"));
    writeln!(out, "{} {}", problem.capacity.len(), problem.needs.len()).unwrap();
    for c in &problem.capacity {
        write!(out, "{c} ").unwrap();
    }
    writeln!(out).unwrap();
    for need in &problem.needs {
        write!(out, "{} {}", need.tier, need.options.len()).unwrap();
        for (s, km) in &need.options {
            write!(out, " {s} {km}").unwrap();
        }
        writeln!(out).unwrap();
    }
}

/// The median of `runs` timed solves, and the objective.
fn engine(problem: &Problem, runs: usize) -> (Duration, [u32; 6], i64) {
    let mut times = Vec::new();
    let mut score = None;
    for _ in 0..runs {
        let started = Instant::now();
        let assignment = solve_batch(std::hint::black_box(problem));
        times.push(started.elapsed());
        score = Some(problem.score(&assignment));
    }
    times.sort();
    let score = score.expect("at least one run");
    // The synthetic problems use the six tiers only (no forecast, nothing held back).
    let mut tiers = [0u32; 6];
    tiers.copy_from_slice(&score.placed[..6]);
    (times[times.len() / 2], tiers, -score.minus_distance)
}

fn python() -> String {
    if let Ok(python) = std::env::var("REFER_ORTOOLS_PYTHON") {
        return python;
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let output = Command::new(format!("{root}/scripts/install-ortools"))
        .output()
        .expect("scripts/install-ortools runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("a path").trim().to_owned()
}

fn main() {
    // `cargo bench` passes `--bench`; a filter picks instances by name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let python = python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/versus_ortools.py");
    let dir = tempfile::tempdir().expect("temp dir");
    println!(
        "{:<24} {:>12} {:>12} {:>8}  objective (placed by tier; km)",
        "instance", "engine", "OR-Tools", "ratio"
    );
    // The first three have room for everyone; the last is scarce (about
    // 2,500 units for 3,000 needs), so tiers compete.
    for (name, needs, sources, runs) in [
        ("750 x 3,000", 750, 3_000, 21),
        ("3,000 x 12,000", 3_000, 12_000, 11),
        ("10,000 x 100,000", 10_000, 100_000, 5),
        ("3,000 x 1,000 scarce", 3_000, 1_000, 11),
    ] {
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let problem = problem(needs, sources, 20, needs as u64);
        let path = dir.path().join(format!("{needs}.txt"));
        write(&problem, &path);
        let (took, placed, km) = engine(&problem, runs);
        let output = Command::new(&python)
            .arg(script)
            .arg(&path)
            .arg(runs.to_string())
            .output()
            .expect("the OR-Tools baseline runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8(output.stdout).expect("utf-8");
        let fields: Vec<&str> = text.split_whitespace().collect();
        let theirs = Duration::from_secs_f64(fields[0].parse().expect("seconds"));
        let their_placed: Vec<u32> = fields[1..7].iter().map(|f| f.parse().expect("count")).collect();
        let their_km: i64 = fields[7].parse().expect("km");
        assert_eq!(
            (placed.to_vec(), km),
            (their_placed, their_km),
            "{name}: the engine and OR-Tools disagree on the optimum"
        );
        println!(
            "{name:<24} {:>10.2}ms {:>10.2}ms {:>7.2}x  {placed:?}; {km}",
            took.as_secs_f64() * 1e3,
            theirs.as_secs_f64() * 1e3,
            theirs.as_secs_f64() / took.as_secs_f64(),
        );
    }
    println!("ratio: OR-Tools' time over the engine's (above 1: the engine is faster). Medians of repeated solves.");
}
