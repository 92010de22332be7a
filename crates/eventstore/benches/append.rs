//! Append throughput against a private nats-server, beside raw JetStream
//! publish of the same payloads in the same run, printed as ratios.
//!
//! Run: `cargo bench -p refer-eventstore --bench append` (add `-- --quick`
//! for a smoke run). Both JetStream settings are measured: `sync_interval:
//! always` (fsync before every ack: the durable setting Refer's tests use) and
//! the server default (ack before fsync, synced every 2 minutes).

use futures::stream::{self, StreamExt};
use refer_domain::ids::{CorrelationId, EventId, OrgId};
use refer_domain::kinds::ServiceKind;
use refer_domain::provider::{Provider, ProviderCommand, ProviderEvent};
use refer_domain::sample::{self, NIGHT};
use refer_domain::{encode_commit, AggregateKind, AggregateRef, CommandMeta, Envelope, Event, IdempotencyKey};
use refer_eventstore::{EventStore, StreamSettings};
use refer_testkit::{NatsServer, ServerOptions};
use std::time::Instant;
use uuid::Uuid;

const AGGREGATES: usize = 100;
const WINDOW: usize = 256;

fn envelope(aggregate: AggregateRef, i: usize) -> Envelope {
    let meta = CommandMeta {
        occurred_at: NIGHT,
        correlation_id: CorrelationId::from_u128(i as u128),
        causation_id: None,
        idempotency_key: Some(IdempotencyKey::new(format!("bench-{i}")).unwrap()),
    };
    let event = Event::Provider(ProviderEvent::CapacityAdjusted {
        service: ServiceKind::ShelterBed,
        delta: 1,
    });
    Envelope::new(EventId::from_uuid(Uuid::new_v4()), aggregate, &meta, event)
}

struct Row {
    name: &'static str,
    ops: usize,
    secs: f64,
}

impl Row {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

async fn run(options: ServerOptions, n_serial: usize, n_pipelined: usize) -> Vec<Row> {
    let server = NatsServer::start_with(options).await.expect("nats-server");
    let client = server.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(
        client.clone(),
        StreamSettings::default(),
        sled::open(dir.path()).unwrap(),
    )
    .await
    .unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "RAW".into(),
        subjects: vec!["raw.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();

    let ids: Vec<Uuid> = (0..AGGREGATES).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        let meta = CommandMeta {
            occurred_at: NIGHT,
            correlation_id: CorrelationId::from_u128(0),
            causation_id: None,
            idempotency_key: None,
        };
        let register = ProviderCommand::Register(Box::new(sample::shelter(OrgId::from_u128(1))));
        store.execute::<Provider>(*id, &register, &meta, None).await.unwrap();
    }
    let aggregates: Vec<AggregateRef> = ids
        .iter()
        .map(|id| AggregateRef {
            kind: AggregateKind::Provider,
            id: *id,
        })
        .collect();
    let mut versions = Vec::new();
    for a in &aggregates {
        versions.push(store.version(a).await.unwrap());
    }
    let payload = bytes::Bytes::from(encode_commit(&[envelope(aggregates[0], 0)]).unwrap());
    let mut rows = Vec::new();

    // Raw JetStream, one at a time.
    let start = Instant::now();
    for i in 0..n_serial {
        js.publish(format!("raw.{}", i % AGGREGATES), payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    rows.push(Row {
        name: "raw publish, one at a time",
        ops: n_serial,
        secs: start.elapsed().as_secs_f64(),
    });

    // Our append (encode + expected-sequence + message id), one at a time.
    let start = Instant::now();
    for i in 0..n_serial {
        let slot = i % AGGREGATES;
        let (seq, _) = store
            .append(versions[slot], &[envelope(aggregates[slot], i)])
            .await
            .unwrap();
        versions[slot] = seq;
    }
    rows.push(Row {
        name: "append, one at a time",
        ops: n_serial,
        secs: start.elapsed().as_secs_f64(),
    });

    // The whole command path (snapshot, decide, append, record), one at a time.
    // Raw appends above bypassed the snapshots; bring them up to date first.
    for id in &ids {
        store.load::<Provider>(*id).await.unwrap();
    }
    let n_exec = n_serial / 2;
    let start = Instant::now();
    for i in 0..n_exec {
        let meta = CommandMeta {
            occurred_at: NIGHT,
            correlation_id: CorrelationId::from_u128(i as u128),
            causation_id: None,
            idempotency_key: Some(IdempotencyKey::new(format!("exec-{i}")).unwrap()),
        };
        let cmd = ProviderCommand::AdjustCapacity {
            service: ServiceKind::ShelterBed,
            delta: 1,
        };
        store
            .execute::<Provider>(ids[i % AGGREGATES], &cmd, &meta, None)
            .await
            .unwrap();
    }
    rows.push(Row {
        name: "execute (snapshot+decide+append+record), one at a time",
        ops: n_exec,
        secs: start.elapsed().as_secs_f64(),
    });

    // Raw JetStream, pipelined: up to WINDOW acks in flight, awaited concurrently.
    let start = Instant::now();
    stream::iter(0..n_pipelined)
        .map(|i| {
            let js = js.clone();
            let payload = payload.clone();
            async move {
                js.publish(format!("raw.{}", i % AGGREGATES), payload)
                    .await
                    .unwrap()
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(WINDOW)
        .for_each(|_| async {})
        .await;
    rows.push(Row {
        name: "raw publish, pipelined",
        ops: n_pipelined,
        secs: start.elapsed().as_secs_f64(),
    });

    // Our append, pipelined: one writer per aggregate, all aggregates at once.
    for (slot, a) in aggregates.iter().enumerate() {
        versions[slot] = store.version(a).await.unwrap();
    }
    let per = n_pipelined / AGGREGATES;
    let start = Instant::now();
    stream::iter(aggregates.iter().copied().zip(versions.iter().copied()).enumerate())
        .map(|(slot, (aggregate, mut version))| {
            let store = store.clone();
            async move {
                for k in 0..per {
                    let (seq, _) = store
                        .append(version, &[envelope(aggregate, 1_000_000 + slot * per + k)])
                        .await
                        .unwrap();
                    version = seq;
                }
            }
        })
        .buffer_unordered(AGGREGATES)
        .for_each(|_| async {})
        .await;
    rows.push(Row {
        name: "append, pipelined (100 aggregates)",
        ops: per * AGGREGATES,
        secs: start.elapsed().as_secs_f64(),
    });
    rows
}

fn print(title: &str, rows: &[Row]) {
    println!("\n## {title}\n");
    println!("| operation | ops | ops/s | ratio to raw |");
    println!("|---|---:|---:|---:|");
    let serial = rows[0].rate();
    let pipelined = rows[3].rate();
    for (i, row) in rows.iter().enumerate() {
        let base = if i < 3 { serial } else { pipelined };
        println!(
            "| {} | {} | {:.0} | {:.2} |",
            row.name,
            row.ops,
            row.rate(),
            row.rate() / base
        );
    }
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (serial, pipelined) = if quick { (200, 2_000) } else { (3_000, 30_000) };
    let payload = encode_commit(&[envelope(
        AggregateRef {
            kind: AggregateKind::Provider,
            id: Uuid::nil(),
        },
        0,
    )])
    .unwrap();
    println!("payload: {} bytes (one CapacityAdjusted commit)", payload.len());
    let durable = run(
        ServerOptions {
            fsync_always: true,
            ..Default::default()
        },
        serial,
        pipelined,
    )
    .await;
    print("sync_interval: always (fsync before ack)", &durable);
    let default = run(
        ServerOptions {
            fsync_always: false,
            ..Default::default()
        },
        serial,
        pipelined,
    )
    .await;
    print("server default sync (ack before fsync)", &default);
}
