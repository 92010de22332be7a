//! Batch and online matching speed. Run: `cargo bench -p refer-matching --bench batch`.
//!
//! `batch/...` time `solve_batch` on synthetic problems of the sizes the
//! targets name; `assign/...` time the whole engine (hard constraints, beds,
//! bundles, groups) on seeded realistic instances; `online/...` time one
//! decision including the eligibility filter over the catalog.

use criterion::{criterion_group, criterion_main, Criterion};
use refer_matching::scenario::{synthetic_problem as problem, Scenario};
use refer_matching::{assign, decide_one, online, solve_batch, Mode};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let burst = problem(45, 300, 20, 1);
    c.bench_function("batch/burst 45 needs x 300 providers", |b| {
        b.iter(|| solve_batch(black_box(&burst)))
    });
    let regional = problem(750, 3000, 20, 2);
    c.bench_function("batch/750 needs x 3000 providers", |b| {
        b.iter(|| solve_batch(black_box(&regional)))
    });

    for (name, scenario) in [
        ("assign/operation night x 300 providers", Scenario::operation_night(1)),
        ("assign/regional 300 people x 3000 providers", Scenario::regional(2)),
    ] {
        let instance = scenario.instance();
        let (catalog, free) = instance.catalog();
        let requests = instance.requests();
        eprintln!("{name}: {} needs, {} sites", requests.len(), catalog.len());
        c.bench_function(name, |b| {
            b.iter(|| {
                assign(
                    &catalog,
                    refer_matching::Stock::fresh(&|s| free[s]),
                    instance.now,
                    black_box(&requests),
                    Mode::Batch,
                )
            })
        });
    }

    let instance = Scenario::regional(3).instance();
    let (catalog, free) = instance.catalog();
    let requests = instance.requests();
    let mut next = 0;
    c.bench_function("online/one need x 3000 providers, eligibility included", |b| {
        b.iter(|| {
            next = (next + 1) % requests.len();
            decide_one(&catalog, &free, instance.now, black_box(&requests[next]))
        })
    });
    let one = problem(1, 3000, 3000, 3);
    c.bench_function("online/one need x 3000 pre-filtered options", |b| {
        b.iter(|| online(black_box(&one.capacity), black_box(&one.needs[0])))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
