//! The event store against a real nats-server (one private server per test).

use refer_domain::ids::{CorrelationId, EventId, OrgId};
use refer_domain::kinds::ServiceKind;
use refer_domain::provider::{Provider, ProviderCommand, ProviderEvent};
use refer_domain::sample::{self, NIGHT};
use refer_domain::{AggregateKind, AggregateRef, CommandMeta, Envelope, Event, IdempotencyKey};
use refer_eventstore::{EventStore, Outcome, Projection, Recorded, StoreError, StreamSettings, Subscriber};
use refer_testkit::NatsServer;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const BED: ServiceKind = ServiceKind::ShelterBed;

async fn open_store(server: &NatsServer, dir: &Path, settings: StreamSettings) -> EventStore {
    // As the operator makes it (`refer admin provision`).
    let js = async_nats::jetstream::new(server.connect().await);
    settings.create(&js).await.unwrap();
    let db = sled::open(dir).expect("open sled");
    EventStore::open(server.connect().await, settings, db)
        .await
        .expect("open store")
}

fn meta(key: Option<&str>) -> CommandMeta {
    CommandMeta {
        occurred_at: NIGHT,
        correlation_id: CorrelationId::from_u128(1),
        causation_id: None,
        idempotency_key: key.map(|k| IdempotencyKey::new(k).unwrap()),
    }
}

async fn register(store: &EventStore, id: Uuid, beds: u32) {
    store
        .execute::<Provider>(
            id,
            &ProviderCommand::Register(Box::new(sample::shelter(OrgId::from_u128(1)))),
            &meta(None),
            None,
        )
        .await
        .unwrap();
    store
        .execute::<Provider>(
            id,
            &ProviderCommand::SetCapacity {
                service: BED,
                declared: beds,
            },
            &meta(None),
            None,
        )
        .await
        .unwrap();
}

fn adjust(delta: i32) -> ProviderCommand {
    ProviderCommand::AdjustCapacity { service: BED, delta }
}

#[tokio::test]
async fn appended_commands_load_back_and_snapshots_spare_the_replay() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&server, dir.path(), StreamSettings::default()).await;
    let id = Uuid::new_v4();
    register(&store, id, 3).await;
    let done = store
        .execute::<Provider>(id, &adjust(2), &meta(None), None)
        .await
        .unwrap();
    assert_eq!(done.outcome, Outcome::Applied);
    assert_eq!(done.state.units(BED).declared, 5);

    let loaded = store.load::<Provider>(id).await.unwrap();
    assert_eq!(loaded.state, done.state);
    assert_eq!(loaded.version, done.version);
    assert_eq!(loaded.replayed, 0, "the snapshot written at append time is current");

    let history = store
        .history(
            &AggregateRef {
                kind: AggregateKind::Provider,
                id,
            },
            0,
        )
        .await
        .unwrap();
    let types: Vec<_> = history
        .iter()
        .flat_map(|c| c.events.iter().map(|e| e.event_type.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            "provider.registered",
            "provider.capacity_set",
            "provider.capacity_adjusted"
        ]
    );
    assert_eq!(history.last().unwrap().seq, done.version);
}

#[tokio::test]
async fn domain_errors_append_nothing() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&server, dir.path(), StreamSettings::default()).await;
    let id = Uuid::new_v4();
    register(&store, id, 1).await;
    let before = store.last_sequence().await.unwrap();
    let err = store
        .execute::<Provider>(id, &adjust(-2), &meta(None), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Domain(_)), "{err}");
    assert_eq!(store.last_sequence().await.unwrap(), before);
}

#[tokio::test]
async fn concurrent_appends_at_one_version_have_exactly_one_winner() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&server, dir.path(), StreamSettings::default()).await;
    let id = Uuid::new_v4();
    register(&store, id, 0).await;
    let aggregate = AggregateRef {
        kind: AggregateKind::Provider,
        id,
    };
    for round in 0..5u128 {
        let version = store.version(&aggregate).await.unwrap();
        let tasks: Vec<_> = (0..8u128)
            .map(|writer| {
                let store = store.clone();
                tokio::spawn(async move {
                    let event = Event::Provider(ProviderEvent::CapacityAdjusted { service: BED, delta: 1 });
                    let envelope =
                        Envelope::new(EventId::from_u128(round * 100 + writer), aggregate, &meta(None), event);
                    store.append(version, &[envelope]).await
                })
            })
            .collect();
        let mut wins = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => wins += 1,
                Err(StoreError::Conflict { expected, actual, .. }) => {
                    assert_eq!(expected, version);
                    assert!(actual > version);
                }
                Err(other) => panic!("unexpected error {other}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
    assert_eq!(store.load::<Provider>(id).await.unwrap().state.units(BED).declared, 5);
}

#[tokio::test]
async fn concurrent_commands_lose_no_update() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&server, dir.path(), StreamSettings::default()).await;
    let id = Uuid::new_v4();
    register(&store, id, 0).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.execute::<Provider>(id, &adjust(1), &meta(None), None).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().outcome, Outcome::Applied);
    }
    assert_eq!(store.load::<Provider>(id).await.unwrap().state.units(BED).declared, 20);
}

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&server, dir.path(), StreamSettings::default()).await;
    let id = Uuid::new_v4();
    register(&store, id, 2).await;
    let seen = store.load::<Provider>(id).await.unwrap().version;
    store
        .execute::<Provider>(id, &adjust(1), &meta(None), None)
        .await
        .unwrap();
    let set = ProviderCommand::SetCapacity {
        service: BED,
        declared: 9,
    };
    let err = store
        .execute::<Provider>(id, &set, &meta(None), Some(seen))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { expected, .. } if expected == seen),
        "{err}"
    );
    assert!(err.is_retryable());
    assert_eq!(store.load::<Provider>(id).await.unwrap().state.units(BED).declared, 3);
}

#[tokio::test]
async fn a_retried_command_is_applied_once_even_past_the_duplicate_window_and_without_sled() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = StreamSettings {
        duplicate_window: Duration::from_secs(1),
        ..Default::default()
    };
    let id = Uuid::new_v4();
    {
        let store = open_store(&server, dir.path(), settings.clone()).await;
        register(&store, id, 0).await;
        let first = store
            .execute::<Provider>(id, &adjust(1), &meta(Some("night-7")), None)
            .await
            .unwrap();
        assert_eq!(first.outcome, Outcome::Applied);
        let again = store
            .execute::<Provider>(id, &adjust(1), &meta(Some("night-7")), None)
            .await
            .unwrap();
        assert_eq!(again.outcome, Outcome::Duplicate);
        // Past the server's window, only our own record stops it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let late = store
            .execute::<Provider>(id, &adjust(1), &meta(Some("night-7")), None)
            .await
            .unwrap();
        assert_eq!(late.outcome, Outcome::Duplicate);
        assert_eq!(late.state.units(BED).declared, 1);
    }
    // With the sled directory gone, the stream's own history still knows the key.
    let fresh = tempfile::tempdir().unwrap();
    let store = open_store(&server, fresh.path(), settings).await;
    let retry = store
        .execute::<Provider>(id, &adjust(1), &meta(Some("night-7")), None)
        .await
        .unwrap();
    assert_eq!(retry.outcome, Outcome::Duplicate);
    let other = store
        .execute::<Provider>(id, &adjust(1), &meta(Some("night-8")), None)
        .await
        .unwrap();
    assert_eq!(other.outcome, Outcome::Applied);
    assert_eq!(other.state.units(BED).declared, 2);
}

/// Free beds per provider and the number of commits applied, persisted in
/// the subscriber's tree.
#[derive(Default, Debug, PartialEq)]
struct FreeBeds {
    free: BTreeMap<Uuid, u32>,
    commits: u64,
    dirty: Vec<Uuid>,
}

impl FreeBeds {
    fn restore(tree: &sled::Tree) -> Self {
        let mut me = Self::default();
        for entry in tree.scan_prefix(b"p/") {
            let (k, v) = entry.unwrap();
            let id = Uuid::from_slice(&k[2..]).unwrap();
            me.free.insert(id, u32::from_be_bytes(v.as_ref().try_into().unwrap()));
        }
        if let Some(v) = tree.get(b"commits").unwrap() {
            me.commits = u64::from_be_bytes(v.as_ref().try_into().unwrap());
        }
        me
    }
}

impl Projection for FreeBeds {
    fn apply(&mut self, commit: &Recorded) {
        self.commits += 1;
        for envelope in &commit.events {
            let id = envelope.aggregate.id;
            let free = self.free.entry(id).or_default();
            match &envelope.event {
                Event::Provider(
                    ProviderEvent::CapacitySet { declared, .. } | ProviderEvent::CapacitySetAt { declared, .. },
                ) => *free = *declared,
                Event::Provider(
                    ProviderEvent::CapacityAdjusted { delta, .. } | ProviderEvent::CapacityAdjustedAt { delta, .. },
                ) => *free = free.saturating_add_signed(*delta),
                _ => {}
            }
            self.dirty.push(id);
        }
    }

    fn persist(&mut self, batch: &mut sled::Batch) {
        for id in self.dirty.drain(..) {
            let mut key = b"p/".to_vec();
            key.extend_from_slice(id.as_bytes());
            batch.insert(key, &self.free[&id].to_be_bytes());
        }
        batch.insert(b"commits", &self.commits.to_be_bytes());
    }
}

impl FreeBeds {
    fn view(&self) -> (BTreeMap<Uuid, u32>, u64) {
        (self.free.clone(), self.commits)
    }
}

#[tokio::test]
async fn a_consumer_resumes_after_a_restart_with_nothing_lost_or_doubled() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let store = open_store(&server, dir.path(), StreamSettings::default()).await;
    for id in &ids {
        register(&store, *id, 1).await; // 2 commits each
    }
    let persisted;
    {
        let mut subscriber = Subscriber::open(&store, "beds", &[]).await.unwrap();
        let mut beds = FreeBeds::restore(subscriber.tree());
        // A poll takes what has arrived (up to the maximum): poll until four.
        let mut applied = 0;
        while applied < 4 {
            applied += subscriber
                .poll(&mut beds, 4 - applied, Duration::from_secs(1))
                .await
                .unwrap();
        }
        assert_eq!(subscriber.checkpoint(), 4);
        // The process crashes here, partway through the stream: what it
        // applied since its last write to sled is read again, nothing more.
        persisted = subscriber.persisted();
        assert!(persisted <= 4);
    }
    for id in &ids {
        store
            .execute::<Provider>(*id, &adjust(2), &meta(None), None)
            .await
            .unwrap();
    }
    let mut subscriber = Subscriber::open(&store, "beds", &[]).await.unwrap();
    let mut beds = FreeBeds::restore(subscriber.tree());
    assert_eq!(beds.commits, persisted, "restored from the checkpointed tree");
    assert_eq!(subscriber.checkpoint(), persisted, "the tree and its checkpoint agree");
    subscriber.catch_up(&mut beds).await.unwrap();
    assert_eq!(beds.commits, 15, "every commit applied exactly once");
    assert!(ids.iter().all(|id| beds.free[id] == 3));

    // The server's consumer is replaced under the running subscriber, to
    // deliver everything again (an operator's reset): nothing is applied twice.
    let stream = store.jetstream().get_stream("REFER").await.unwrap();
    let name = subscriber.consumer_name();
    let config = stream.consumer_info(&name).await.unwrap().config.clone();
    stream.delete_consumer(&name).await.unwrap();
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: config.durable_name,
            ack_policy: config.ack_policy,
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(subscriber.catch_up(&mut beds).await.unwrap(), 0);
    assert_eq!(beds.commits, 15);
    assert_eq!(
        FreeBeds::restore(subscriber.tree()).view(),
        beds.view(),
        "disk matches memory"
    );
}

/// Progress is written to sled on a cadence, not per commit (a sled batch
/// costs disk syncs): once the consumer has nothing to read, and at a
/// graceful stop, everything applied is on disk, and a start after either
/// reads nothing again.
#[tokio::test]
async fn progress_is_on_disk_once_the_consumer_is_idle_and_after_a_graceful_stop() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&server, dir.path(), StreamSettings::default()).await;
    let id = Uuid::new_v4();
    register(&store, id, 1).await; // 2 commits
    let mut subscriber = Subscriber::open(&store, "beds", &[]).await.unwrap();
    let mut beds = FreeBeds::restore(subscriber.tree());
    let start = std::time::Instant::now();
    while subscriber.checkpoint() < 2 && start.elapsed() < Duration::from_secs(10) {
        subscriber.poll(&mut beds, 1, Duration::from_secs(1)).await.unwrap();
    }
    assert_eq!(subscriber.checkpoint(), 2);
    // Nothing more to read: the poll that finds nothing writes what was applied.
    assert_eq!(
        subscriber.poll(&mut beds, 10, Duration::from_millis(50)).await.unwrap(),
        0
    );
    assert_eq!(subscriber.persisted(), 2);
    assert_eq!(
        FreeBeds::restore(subscriber.tree()).view(),
        beds.view(),
        "disk matches memory"
    );

    store
        .execute::<Provider>(id, &adjust(1), &meta(None), None)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    while subscriber.checkpoint() < 3 && start.elapsed() < Duration::from_secs(10) {
        subscriber.poll(&mut beds, 1, Duration::from_secs(1)).await.unwrap();
    }
    assert_eq!(subscriber.checkpoint(), 3);
    subscriber.persist(&mut beds).unwrap(); // a graceful stop
    drop(subscriber);
    let subscriber = Subscriber::open(&store, "beds", &[]).await.unwrap();
    assert_eq!(subscriber.checkpoint(), 3, "resumes after every applied commit");
    assert_eq!(FreeBeds::restore(subscriber.tree()).view(), beds.view());
}

#[tokio::test]
async fn a_restarted_subscriber_is_not_starved_by_the_pull_of_the_process_it_replaces() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&server, dir.path(), StreamSettings::default()).await;
    let id = Uuid::new_v4();
    register(&store, id, 1).await; // 2 commits
                                   // The old process caught up and then waited for more: its standing pull
                                   // is still open at the server when the new process starts (a SIGKILL
                                   // the server has not noticed yet). It never reads again.
    let mut old = Subscriber::open(&store, "beds", &[]).await.unwrap();
    let mut old_beds = FreeBeds::restore(old.tree());
    old.catch_up(&mut old_beds).await.unwrap();
    assert_eq!(
        old.poll(&mut old_beds, 100, Duration::from_millis(50)).await.unwrap(),
        0
    );
    assert_eq!(old.checkpoint(), 2);

    let mut new = Subscriber::open(&store, "beds", &[]).await.unwrap();
    let mut beds = FreeBeds::restore(new.tree());
    for _ in 0..3 {
        store
            .execute::<Provider>(id, &adjust(1), &meta(None), None)
            .await
            .unwrap();
    }
    let start = std::time::Instant::now();
    while beds.commits < 5 && start.elapsed() < Duration::from_secs(5) {
        new.poll(&mut beds, 100, Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(
        beds.view(),
        (BTreeMap::from([(id, 4)]), 5),
        "the new process gets every commit"
    );
    drop(old);
}

#[tokio::test]
async fn a_delivery_that_never_arrived_is_read_again_not_skipped() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&server, dir.path(), StreamSettings::default()).await;
    let id = Uuid::new_v4();
    register(&store, id, 1).await; // 2 commits
    let mut subscriber = Subscriber::open(&store, "beds", &[]).await.unwrap();
    let mut beds = FreeBeds::restore(subscriber.tree());

    // The first commit is delivered, but never reaches the subscriber: a
    // pull of its own consumer takes it and never acks, as a batch lost
    // with a stalled node's connection would (the server redelivers it only
    // after the 30 s ack wait, behind the second one).
    let stream = store.jetstream().get_stream("REFER").await.unwrap();
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer(&subscriber.consumer_name()).await.unwrap();
    use futures::StreamExt;
    let mut lost = consumer.fetch().max_messages(1).messages().await.unwrap();
    let taken = lost.next().await.expect("a delivery").unwrap();
    assert_eq!(taken.info().unwrap().stream_sequence, 1);

    // The subscriber gets the second commit next: it must notice the gap
    // and read the first again, well before the ack wait.
    let start = std::time::Instant::now();
    while beds.commits < 2 && start.elapsed() < Duration::from_secs(10) {
        subscriber
            .poll(&mut beds, 100, Duration::from_millis(200))
            .await
            .unwrap();
    }
    assert_eq!(
        beds.view(),
        (BTreeMap::from([(id, 1)]), 2),
        "both commits applied, in order, once each"
    );
    assert_eq!(subscriber.checkpoint(), 2);
}

#[tokio::test]
async fn a_message_that_is_no_commit_is_passed_over_by_every_reader_and_nothing_around_it_is_lost() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&server, dir.path(), StreamSettings::default()).await;
    let id = Uuid::new_v4();
    register(&store, id, 1).await; // commits 1 and 2
                                   // Bytes that are no commit, on the provider's own subject (a credential
                                   // that may write there could), between commits.
    let subject = format!("refer.provider.{}", id.simple());
    store
        .jetstream()
        .publish(subject, bytes::Bytes::from_static(b"\x07 not a commit"))
        .await
        .unwrap()
        .await
        .unwrap();
    // The aggregate still takes commands (its version counts the message).
    for _ in 0..2 {
        store
            .execute::<Provider>(id, &adjust(1), &meta(None), None)
            .await
            .unwrap();
    }
    let loaded = store.load::<Provider>(id).await.unwrap();
    assert_eq!(loaded.version, 5);

    // A projection built from nothing, in one batch, passes over it and
    // applies every commit around it once.
    let mut subscriber = Subscriber::open(&store, "beds", &[]).await.unwrap();
    let mut beds = FreeBeds::restore(subscriber.tree());
    let start = std::time::Instant::now();
    while subscriber.checkpoint() < 5 && start.elapsed() < Duration::from_secs(10) {
        subscriber
            .poll(&mut beds, 100, Duration::from_millis(200))
            .await
            .unwrap();
    }
    assert_eq!(
        beds.view(),
        (BTreeMap::from([(id, 3)]), 4),
        "four commits, one bed and two added"
    );
    assert_eq!(subscriber.checkpoint(), 5);
    // A replay reads the same.
    let all = store.read_all(0, 5).await.unwrap();
    assert_eq!(all.iter().map(|c| c.events.len()).collect::<Vec<_>>(), [1, 1, 0, 1, 1]);
}

#[tokio::test]
async fn deleting_the_sled_directory_rebuilds_the_same_state_from_the_stream() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let (before_view, before_states) = {
        let store = open_store(&server, dir.path(), StreamSettings::default()).await;
        for (i, id) in ids.iter().enumerate() {
            register(&store, *id, i as u32).await;
            store
                .execute::<Provider>(*id, &adjust(3), &meta(Some(&format!("k{i}"))), None)
                .await
                .unwrap();
        }
        let mut subscriber = Subscriber::open(&store, "beds", &[]).await.unwrap();
        let mut beds = FreeBeds::restore(subscriber.tree());
        subscriber.catch_up(&mut beds).await.unwrap();
        let mut states = Vec::new();
        for id in &ids {
            states.push(store.load::<Provider>(*id).await.unwrap().state);
        }
        (beds.view(), states)
    };
    std::fs::remove_dir_all(dir.path()).unwrap();

    let store = open_store(&server, dir.path(), StreamSettings::default()).await;
    let mut subscriber = Subscriber::open(&store, "beds", &[]).await.unwrap();
    assert_eq!(subscriber.checkpoint(), 0);
    let mut beds = FreeBeds::restore(subscriber.tree());
    subscriber.catch_up(&mut beds).await.unwrap();
    assert_eq!(beds.view(), before_view);
    for (id, before) in ids.iter().zip(&before_states) {
        let loaded = store.load::<Provider>(*id).await.unwrap();
        assert_eq!(&loaded.state, before);
        assert!(loaded.replayed > 0, "rebuilt from the stream, not a snapshot");
    }
    // Idempotency survives too.
    let retry = store
        .execute::<Provider>(ids[0], &adjust(3), &meta(Some("k0")), None)
        .await
        .unwrap();
    assert_eq!(retry.outcome, Outcome::Duplicate);
}

#[tokio::test]
async fn a_server_crash_mid_stream_loses_no_acknowledged_event() {
    let mut server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&server, dir.path(), StreamSettings::default()).await;
    let id = Uuid::new_v4();
    register(&store, id, 0).await;

    const COMMANDS: usize = 120;
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = {
        let store = store.clone();
        let acked = acked.clone();
        tokio::spawn(async move {
            for i in 0..COMMANDS {
                let key = format!("cmd-{i}");
                // Retry with the same key until the bus answers.
                let mut tries = 0;
                loop {
                    tries += 1;
                    match store.execute::<Provider>(id, &adjust(1), &meta(Some(&key)), None).await {
                        Ok(done) => {
                            acked.lock().unwrap().push((key.clone(), done.outcome));
                            break;
                        }
                        Err(err) if err.is_retryable() && tries < 200 => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(err) => panic!("command {i} failed for good: {err}"),
                    }
                }
            }
        })
    };
    // Crash the server (SIGKILL) partway through, then bring it back.
    while acked.lock().unwrap().len() < 40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("writer finished")
        .unwrap();

    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), COMMANDS);
    let fresh = tempfile::tempdir().unwrap();
    let reader = open_store(&server, fresh.path(), StreamSettings::default()).await;
    let loaded = reader.load::<Provider>(id).await.unwrap();
    assert_eq!(
        loaded.state.units(BED).declared as usize,
        COMMANDS,
        "each command applied exactly once"
    );
    let history = reader
        .history(
            &AggregateRef {
                kind: AggregateKind::Provider,
                id,
            },
            0,
        )
        .await
        .unwrap();
    let keys: Vec<_> = history
        .iter()
        .filter_map(|c| c.events[0].idempotency_key.as_ref().map(|k| k.as_str().to_owned()))
        .collect();
    let expected: Vec<_> = (0..COMMANDS).map(|i| format!("cmd-{i}")).collect();
    assert_eq!(
        keys, expected,
        "every acknowledged command is in the stream once, in order"
    );
}

/// A hold on a provider and a proposal-like change on a second provider
/// commit together: both land, at consecutive sequences, or neither does.
#[tokio::test]
async fn commits_to_two_aggregates_land_together_or_not_at_all() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&server, dir.path(), StreamSettings::default()).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    register(&store, a, 3).await;
    register(&store, b, 3).await;

    // Given both prepared at their versions, when committed as one batch,
    // then both apply, one after the other.
    let pa = store
        .prepare::<Provider>(a, &[adjust(1)], &meta(Some("both-a")), 1)
        .await
        .unwrap();
    let pb = store
        .prepare::<Provider>(b, &[adjust(2), adjust(3)], &meta(Some("both-b")), 1)
        .await
        .unwrap();
    let seqs = store.commit_atomic(&[&pa, &pb]).await.unwrap();
    let (sa, sb) = (seqs[0].unwrap(), seqs[1].unwrap());
    assert_eq!(sb, sa + 1);
    assert_eq!(store.finish(pa, seqs[0]).unwrap().state.units(BED).declared, 4);
    assert_eq!(store.finish(pb, seqs[1]).unwrap().state.units(BED).declared, 8);
    assert_eq!(store.load::<Provider>(a).await.unwrap().version, sa);
    assert_eq!(store.load::<Provider>(b).await.unwrap().state.units(BED).declared, 8);

    // Given one of them changed since it was prepared, then the batch is
    // refused whole: nothing of it is stored.
    let pa = store
        .prepare::<Provider>(a, &[adjust(1)], &meta(Some("stale-a")), 1)
        .await
        .unwrap();
    let pb = store
        .prepare::<Provider>(b, &[adjust(1)], &meta(Some("stale-b")), 1)
        .await
        .unwrap();
    store
        .execute::<Provider>(b, &adjust(-1), &meta(None), None)
        .await
        .unwrap();
    let before = store.last_sequence().await.unwrap();
    let refused = store.commit_atomic(&[&pa, &pb]).await.unwrap_err();
    assert!(matches!(refused, StoreError::Conflict { .. }), "{refused:?}");
    assert_eq!(
        store.last_sequence().await.unwrap(),
        before,
        "nothing of the batch stored"
    );
    assert_eq!(store.load::<Provider>(a).await.unwrap().state.units(BED).declared, 4);

    // A batch sent again after it landed is refused as a duplicate, and
    // prepared again it writes nothing.
    let pa = store
        .prepare::<Provider>(a, &[adjust(5)], &meta(Some("twice-a")), 1)
        .await
        .unwrap();
    let pb = store
        .prepare::<Provider>(b, &[adjust(5)], &meta(Some("twice-b")), 1)
        .await
        .unwrap();
    let first = store.commit_atomic(&[&pa, &pb]).await.unwrap();
    let after = store.last_sequence().await.unwrap();
    assert!(matches!(
        store.commit_atomic(&[&pa, &pb]).await,
        Err(StoreError::Duplicate)
    ));
    assert_eq!(store.last_sequence().await.unwrap(), after);
    store.finish(pa, first[0]).unwrap();
    store.finish(pb, first[1]).unwrap();
    let again = store
        .prepare::<Provider>(a, &[adjust(5)], &meta(Some("twice-a")), 1)
        .await
        .unwrap();
    assert!(again.is_duplicate() && !again.writes());

    // A domain rule refuses at prepare time, before anything is sent.
    let over = ProviderCommand::AdjustCapacity {
        service: BED,
        delta: -1000,
    };
    assert!(matches!(
        store.prepare::<Provider>(a, &[over], &meta(None), 2).await,
        Err(StoreError::Domain(_))
    ));
}

#[tokio::test]
async fn a_stream_made_before_atomic_commits_is_given_them() {
    let server = NatsServer::start().await.unwrap();
    let js = async_nats::jetstream::new(server.connect().await);
    let settings = StreamSettings::default();
    // As an earlier Refer made it: append-only, without atomic batches.
    js.create_stream(async_nats::jetstream::stream::Config {
        name: settings.name.clone(),
        subjects: vec![settings.all_subjects()],
        allow_direct: true,
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&server, dir.path(), settings.clone()).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    register(&store, a, 1).await;
    register(&store, b, 1).await;
    let pa = store
        .prepare::<Provider>(a, &[adjust(1)], &meta(None), 1)
        .await
        .unwrap();
    let pb = store
        .prepare::<Provider>(b, &[adjust(1)], &meta(None), 1)
        .await
        .unwrap();
    store.commit_atomic(&[&pa, &pb]).await.unwrap();
}

/// A credential that may create the stream could make it first, capturing
/// more than Refer's subjects (another process's reply inboxes) or copying
/// another stream: such a stream is refused, named, and nothing is written.
#[tokio::test]
async fn a_stream_made_first_to_capture_other_traffic_is_refused() {
    let settings = StreamSettings::default();
    let traps = [
        (vec![settings.all_subjects(), "_INBOX_intake.>".to_owned()], None),
        (vec![settings.all_subjects()], Some("_INBOX_intake.>")),
    ];
    for (subjects, republished) in traps {
        let server = NatsServer::start().await.unwrap();
        let js = async_nats::jetstream::new(server.connect().await);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: settings.name.clone(),
            subjects,
            allow_direct: true,
            republish: republished.map(|to| async_nats::jetstream::stream::Republish {
                source: ">".to_owned(),
                destination: to.to_owned(),
                headers_only: false,
            }),
            ..Default::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let err = EventStore::open(server.connect().await, settings.clone(), db)
            .await
            .err()
            .expect("a stream made by something else is refused");
        assert!(matches!(err, StoreError::Setup(_)), "{err}");
        assert!(err.to_string().contains("is not as Refer makes it"), "{err}");
    }
}
/// Concurrent commands on many aggregates share atomic batches (group
/// commit). Two stores write the same aggregates, so each decides on
/// snapshots the other made stale and its appends conflict inside batches:
/// a refused batch is split until each append has its own answer, the
/// losers decide again, and every command lands exactly once.
#[tokio::test]
async fn concurrent_appends_share_batches_and_each_gets_its_own_answer() {
    let server = NatsServer::start().await.unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open_store(&server, dir_a.path(), StreamSettings::default()).await;
    let b = open_store(&server, dir_b.path(), StreamSettings::default()).await;
    let ids: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        register(&a, *id, 1).await;
        b.load::<Provider>(*id).await.unwrap(); // b's snapshot, soon stale
    }
    let before = a.last_sequence().await.unwrap();
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        for round in 0..4 {
            let store = if round % 2 == 0 { a.clone() } else { b.clone() };
            let id = *id;
            tasks.push(tokio::spawn(async move {
                let key = format!("grouped-{i}-{round}");
                store.execute::<Provider>(id, &adjust(1), &meta(Some(&key)), None).await
            }));
        }
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().outcome, Outcome::Applied);
    }
    let landed = a.last_sequence().await.unwrap() - before;
    assert_eq!(landed, 40 * 4, "each command is one message, none twice");
    for id in &ids {
        assert_eq!(a.load::<Provider>(*id).await.unwrap().state.units(BED).declared, 5);
    }
    // Batches were stored, and refused ones split (this process's metrics).
    let metrics = refer_metrics::render();
    for result in ["stored", "split"] {
        let line = format!("refer_group_commit_batches_total{{result=\"{result}\"}}");
        assert!(metrics.contains(&line), "{result}: {metrics}");
    }
}

/// One operation carries an atomic decision: the caller's precondition (a
/// leader's fence) is checked before every try commits, retries included;
/// once it fails nothing is written, and the decision lands once it holds.
#[tokio::test]
async fn a_decision_checks_its_precondition_before_every_try_and_writes_nothing_once_it_fails() {
    use refer_domain::decision::{keys, AtProvider, ProposeAtProviders};
    use refer_domain::ids::{HoldId, NeedId, PlacementId, ProviderId};
    use refer_domain::need::{Need, NeedCommand, NeedStatus};
    use refer_domain::provider::HoldRequest;
    let server = NatsServer::start().await.unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open_store(&server, dir_a.path(), StreamSettings::default()).await;
    let b = open_store(&server, dir_b.path(), StreamSettings::default()).await;
    let (site, need) = (Uuid::new_v4(), Uuid::new_v4());
    register(&a, site, 2).await;
    let request = sample::shelter_need(OrgId::from_u128(2), PlacementId::from_u128(3), None);
    a.execute::<Need>(need, &NeedCommand::Request(request), &meta(None), None)
        .await
        .unwrap();
    // Another writer makes `a`'s snapshot of the site stale: its first try
    // conflicts and it tries again.
    b.execute::<Provider>(site, &adjust(1), &meta(None), None)
        .await
        .unwrap();
    let hold = HoldId::from_u128(7);
    let propose = ProposeAtProviders {
        proposals: vec![AtProvider {
            provider: ProviderId::from_uuid(site),
            hold: HoldRequest {
                hold,
                need: NeedId::from_uuid(need),
                service: BED,
                units: 1,
                expires_at: NIGHT.plus_secs(900),
            },
        }],
    };
    let tries = std::sync::Mutex::new(Vec::new());
    let fence_lost_on_retry = |attempt: u32| {
        tries.lock().unwrap().push(attempt);
        if attempt == 1 {
            Ok(())
        } else {
            Err(StoreError::Precondition("the lease was lost".into()))
        }
    };
    let refused = a.decide(&propose, NIGHT, &|_| meta(None), &fence_lost_on_retry).await;
    assert!(matches!(refused, Err(StoreError::Precondition(_))), "{refused:?}");
    assert_eq!(
        *tries.lock().unwrap(),
        [1, 2],
        "checked on the first try and on the retry"
    );
    assert!(a.load::<Provider>(site).await.unwrap().state.holds.is_empty());
    assert_eq!(a.load::<Need>(need).await.unwrap().state.status, NeedStatus::Requested);

    let committed = a
        .decide(&propose, NIGHT, &|_| meta(None), &refer_eventstore::always)
        .await
        .unwrap();
    assert!(committed.refused.is_empty());
    let held = a.load::<Provider>(site).await.unwrap();
    assert!(held.state.holds.contains_key(&hold));
    let history = a
        .history(
            &AggregateRef {
                kind: AggregateKind::Provider,
                id: site,
            },
            0,
        )
        .await
        .unwrap();
    let placing = history.last().unwrap();
    assert_eq!(placing.events[0].idempotency_key, Some(keys::hold(hold)));
    let proposed = committed.executed::<Need>(need).unwrap();
    assert_eq!(
        (proposed.state.status, proposed.outcome),
        (NeedStatus::Proposed, Outcome::Applied)
    );
    // Carried out again: nothing is written twice.
    let again = a
        .decide(&propose, NIGHT, &|_| meta(None), &refer_eventstore::always)
        .await
        .unwrap();
    assert_eq!(again.executed::<Need>(need).unwrap().outcome, Outcome::Duplicate);
    assert_eq!(a.load::<Provider>(site).await.unwrap().version, held.version);
}

#[tokio::test]
async fn the_last_sequence_on_some_subjects_is_that_of_their_last_commit() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&server, dir.path(), StreamSettings::default()).await;
    let settings = store.settings().clone();
    let providers = [settings.subjects_of(AggregateKind::Provider)];
    let needs = [settings.subjects_of(AggregateKind::Need)];
    assert_eq!(store.last_sequence_on(&providers).await.unwrap(), 0, "an empty stream");
    let id = Uuid::new_v4();
    register(&store, id, 3).await;
    let last_provider = store
        .version(&AggregateRef {
            kind: AggregateKind::Provider,
            id,
        })
        .await
        .unwrap();
    assert!(last_provider > 0);
    assert_eq!(store.last_sequence_on(&providers).await.unwrap(), last_provider);
    assert_eq!(store.last_sequence_on(&needs).await.unwrap(), 0, "no need yet");
    assert_eq!(
        store.last_sequence_on(&[]).await.unwrap(),
        store.last_sequence().await.unwrap()
    );
}

#[tokio::test]
async fn a_read_waits_for_a_write_the_reader_knows_of_instead_of_missing_it() {
    let server = NatsServer::start().await.unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let writer = open_store(&server, dir_a.path(), StreamSettings::default()).await;
    let reader = open_store(&server, dir_b.path(), StreamSettings::default()).await;
    let id = Uuid::new_v4();
    register(&writer, id, 3).await;
    let before = reader.load::<Provider>(id).await.unwrap();
    assert_eq!(before.state.units(BED).declared, 3);
    // The reader learns that a commit exists beyond what the copy it reads
    // has yet (as a duplicate acknowledgement tells it): its read waits
    // for it rather than answer without it.
    let next = writer.last_sequence().await.unwrap() + 1;
    let reading = tokio::spawn(async move { reader.load_at_least::<Provider>(id, next).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    writer
        .execute::<Provider>(id, &adjust(2), &meta(None), None)
        .await
        .unwrap();
    let after = reading.await.unwrap().unwrap();
    assert_eq!(after.version, next, "the read saw the write it knew of");
    assert_eq!(after.state.units(BED).declared, 5);
}
