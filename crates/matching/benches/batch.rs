//! Batch and online matching on seeded synthetic instances.
//! Run: `cargo bench -p refer-matching --bench batch`.

use criterion::{criterion_group, criterion_main, Criterion};
use refer_matching::{online, solve_batch, Need, Problem};
use std::hint::black_box;

/// A small deterministic generator (no dependency, same instances every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

/// `needs` people alone against `sources` sites with 1-4 free units, each need
/// eligible at about `eligible` sites within 80 km.
fn instance(needs: usize, sources: usize, eligible: usize, seed: u64) -> Problem {
    let mut rng = Lcg(seed);
    let capacity = (0..sources).map(|_| 1 + rng.next(4) as u32).collect();
    let needs = (0..needs)
        .map(|_| {
            let mut options: Vec<(usize, u32)> = (0..eligible)
                .map(|_| (rng.next(sources as u64) as usize, rng.next(80) as u32))
                .collect();
            options.sort();
            options.dedup_by_key(|(s, _)| *s);
            Need {
                tier: rng.next(6) as u8,
                units: 1,
                options,
            }
        })
        .collect();
    Problem { capacity, needs }
}

fn bench(c: &mut Criterion) {
    let burst = instance(45, 300, 20, 1);
    c.bench_function("batch/burst 45 needs x 300 providers", |b| {
        b.iter(|| solve_batch(black_box(&burst)))
    });
    let regional = instance(750, 3000, 20, 2);
    c.bench_function("batch/750 needs x 3000 providers", |b| {
        b.iter(|| solve_batch(black_box(&regional)))
    });
    let one = instance(1, 3000, 3000, 3);
    c.bench_function("online/one need x 3000 providers", |b| {
        b.iter(|| online(black_box(&one.capacity), black_box(&one.needs[0])))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
