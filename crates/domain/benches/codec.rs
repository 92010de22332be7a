//! Encode and decode of typical commits. Run: `cargo bench -p refer-domain --bench codec`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use refer_domain::ids::{CorrelationId, EventId, HoldId, NeedId, OrgId, PlacementId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::NeedEvent;
use refer_domain::provider::ProviderEvent;
use refer_domain::sample::{self, NIGHT};
use refer_domain::{
    decode_commit, encode_commit, AggregateKind, AggregateRef, CommandMeta, Envelope, Event, IdempotencyKey,
};
use std::hint::black_box;
use uuid::Uuid;

fn envelope(kind: AggregateKind, event: Event) -> Vec<Envelope> {
    let meta = CommandMeta {
        occurred_at: NIGHT,
        correlation_id: CorrelationId::from_u128(1),
        causation_id: None,
        idempotency_key: Some(IdempotencyKey::new("7f0c2a1e-capacity-update").unwrap()),
    };
    vec![Envelope::new(
        EventId::from_u128(2),
        AggregateRef {
            kind,
            id: Uuid::from_u128(3),
        },
        &meta,
        event,
    )]
}

fn bench(c: &mut Criterion) {
    let cases = [
        (
            "capacity_set",
            envelope(
                AggregateKind::Provider,
                Event::Provider(ProviderEvent::CapacitySet {
                    service: ServiceKind::ShelterBed,
                    declared: 12,
                }),
            ),
        ),
        (
            "hold_placed",
            envelope(
                AggregateKind::Provider,
                Event::Provider(ProviderEvent::HoldPlaced {
                    hold: HoldId::from_u128(4),
                    need: NeedId::from_u128(5),
                    service: ServiceKind::ShelterBed,
                    units: 1,
                    expires_at: NIGHT.plus_secs(900),
                }),
            ),
        ),
        (
            "need_requested",
            envelope(
                AggregateKind::Need,
                Event::Need(NeedEvent::Requested(sample::shelter_need(
                    OrgId::from_u128(6),
                    PlacementId::from_u128(7),
                    None,
                ))),
            ),
        ),
    ];
    let mut group = c.benchmark_group("codec");
    for (name, commit) in &cases {
        let bytes = encode_commit(commit).unwrap();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| encode_commit(black_box(commit)).unwrap())
        });
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter_batched(
                || bytes.clone(),
                |bytes| decode_commit(black_box(&bytes)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        println!("{name}: {} bytes on the wire", bytes.len());
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
