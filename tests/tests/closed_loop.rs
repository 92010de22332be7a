//! One need's closed loop, end to end on the foundation: every command goes
//! through the event store to a real nats-server, a durable subscriber builds
//! a read model in sled, and that read model is rebuilt identically after its
//! sled directory is deleted. (The matcher service automates the proposing
//! done by hand here.)

use refer_domain::donation::{Donation, DonationCommand};
use refer_domain::ids::{CorrelationId, DonationId, EventId, HoldId, NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{DeclineReason, Need, NeedCommand, NeedStatus, Proposal, Target};
use refer_domain::provider::{Provider, ProviderCommand, ReleaseReason};
use refer_domain::sample::{self, NIGHT};
use refer_domain::{Aggregate, AggregateKind, CommandMeta, Event, IdempotencyKey, Timestamp};
use refer_eventstore::{EventStore, Projection, Recorded, StreamSettings, Subscriber};
use refer_testkit::NatsServer;
use std::collections::BTreeMap;
use std::path::Path;
use uuid::Uuid;

/// Mirrors every aggregate by folding its events with the domain's own
/// `evolve`: what a read model of the whole coalition looks like.
#[derive(Default, PartialEq, Debug)]
struct Board {
    providers: BTreeMap<Uuid, Provider>,
    donations: BTreeMap<Uuid, Donation>,
    needs: BTreeMap<Uuid, Need>,
    dirty: Vec<(AggregateKind, Uuid)>,
}

fn key(kind: AggregateKind, id: Uuid) -> Vec<u8> {
    format!("{}/{}", kind.token(), id.as_simple()).into_bytes()
}

impl Board {
    fn restore(tree: &sled::Tree) -> Self {
        let mut board = Self::default();
        for kind in AggregateKind::ALL {
            for entry in tree.scan_prefix(format!("{}/", kind.token())) {
                let (k, v) = entry.unwrap();
                let id = Uuid::parse_str(std::str::from_utf8(&k).unwrap().split('/').nth(1).unwrap()).unwrap();
                match kind {
                    AggregateKind::Provider => board.providers.insert(id, postcard::from_bytes(&v).unwrap()).is_some(),
                    AggregateKind::Donation => board.donations.insert(id, postcard::from_bytes(&v).unwrap()).is_some(),
                    AggregateKind::Need => board.needs.insert(id, postcard::from_bytes(&v).unwrap()).is_some(),
                    AggregateKind::Placement | AggregateKind::Standing => false,
                };
            }
        }
        board
    }
}

fn fold<A: Aggregate>(map: &mut BTreeMap<Uuid, A>, id: Uuid, event: &Event) {
    if let Some(event) = A::unwrap(event) {
        let state = map.remove(&id).unwrap_or_default();
        map.insert(id, state.evolve(event));
    }
}

impl Projection for Board {
    fn apply(&mut self, commit: &Recorded) {
        for envelope in &commit.events {
            let id = envelope.aggregate.id;
            match envelope.aggregate.kind {
                AggregateKind::Provider => fold(&mut self.providers, id, &envelope.event),
                AggregateKind::Donation => fold(&mut self.donations, id, &envelope.event),
                AggregateKind::Need => fold(&mut self.needs, id, &envelope.event),
                AggregateKind::Placement | AggregateKind::Standing => continue,
            }
            self.dirty.push((envelope.aggregate.kind, id));
        }
    }

    fn persist(&mut self, batch: &mut sled::Batch) {
        for (kind, id) in self.dirty.drain(..) {
            let bytes = match kind {
                AggregateKind::Provider => postcard::to_stdvec(&self.providers[&id]),
                AggregateKind::Donation => postcard::to_stdvec(&self.donations[&id]),
                AggregateKind::Need => postcard::to_stdvec(&self.needs[&id]),
                AggregateKind::Placement | AggregateKind::Standing => continue,
            };
            batch.insert(key(kind, id), bytes.unwrap());
        }
    }
}

struct Shell {
    store: EventStore,
    correlation: CorrelationId,
}

impl Shell {
    /// Runs a command at `now` with a key derived from what caused it, as the
    /// matcher will: a retry of the same step can never apply twice.
    async fn run<A: Aggregate>(&self, id: Uuid, command: A::Command, now: Timestamp, key: &str) -> A {
        let meta = CommandMeta {
            occurred_at: now,
            correlation_id: self.correlation,
            causation_id: Some(EventId::from_uuid(Uuid::new_v4())),
            idempotency_key: Some(IdempotencyKey::new(key).unwrap()),
        };
        self.store.execute::<A>(id, &command, &meta, None).await.unwrap().state
    }
}

async fn open(server: &NatsServer, dir: &Path) -> EventStore {
    // As the operator makes it (`refer admin provision`).
    let js = async_nats::jetstream::new(server.connect().await);
    StreamSettings::default().create(&js).await.unwrap();
    EventStore::open(
        server.connect().await,
        StreamSettings::default(),
        sled::open(dir).unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_need_is_declined_re_proposed_accepted_and_the_read_model_survives_losing_sled() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shell = Shell {
        store: open(&server, dir.path()).await,
        correlation: CorrelationId::from_u128(1),
    };
    let (shelter, hotel) = (
        ProviderId::from_uuid(Uuid::new_v4()),
        DonationId::from_uuid(Uuid::new_v4()),
    );
    let (first, second) = (NeedId::from_uuid(Uuid::new_v4()), NeedId::from_uuid(Uuid::new_v4()));
    let agency = OrgId::from_uuid(Uuid::new_v4());
    let bed = ServiceKind::ShelterBed;

    // Partners declare what they have.
    let register = ProviderCommand::Register(Box::new(sample::shelter(OrgId::from_uuid(Uuid::new_v4()))));
    shell.run::<Provider>(shelter.as_uuid(), register, NIGHT, "p-reg").await;
    shell
        .run::<Provider>(
            shelter.as_uuid(),
            ProviderCommand::SetCapacity {
                service: bed,
                declared: 2,
            },
            NIGHT,
            "p-cap",
        )
        .await;
    let donate = DonationCommand::Register(sample::hotel_rooms(OrgId::from_uuid(Uuid::new_v4())));
    shell.run::<Donation>(hotel.as_uuid(), donate, NIGHT, "d-reg").await;

    // Intake requests two beds.
    for (need, placement) in [(first, 1), (second, 2)] {
        let request = sample::shelter_need(agency, PlacementId::from_u128(placement), None);
        shell
            .run::<Need>(need.as_uuid(), NeedCommand::Request(request), NIGHT, "request")
            .await;
    }

    // First need: proposed to the shelter with a 15-minute hold, declined.
    let deadline = NIGHT.plus_secs(900);
    let hold = HoldId::from_uuid(Uuid::new_v4());
    let place = ProviderCommand::PlaceHold {
        hold,
        need: first,
        service: bed,
        units: 1,
        expires_at: deadline,
    };
    let p = shell
        .run::<Provider>(shelter.as_uuid(), place, NIGHT, "n1-hold-1")
        .await;
    assert_eq!(p.units(bed).free(), 1);
    let to_shelter = Proposal {
        target: Target::Provider(shelter),
        hold,
        deadline,
    };
    shell
        .run::<Need>(first.as_uuid(), NeedCommand::Propose(to_shelter), NIGHT, "n1-propose-1")
        .await;
    let decline = NeedCommand::Decline {
        by: Target::Provider(shelter),
        reason: DeclineReason::SafetyConcern,
    };
    shell
        .run::<Need>(first.as_uuid(), decline, NIGHT.plus_secs(120), "n1-decline")
        .await;
    let release = ProviderCommand::ReleaseHold {
        hold,
        reason: ReleaseReason::Declined,
    };
    shell
        .run::<Provider>(shelter.as_uuid(), release, NIGHT.plus_secs(120), "n1-release-1")
        .await;

    // ... re-matched to the hotel rooms, accepted.
    let hold2 = HoldId::from_uuid(Uuid::new_v4());
    let at = NIGHT.plus_secs(180);
    let room = DonationCommand::PlaceHold {
        hold: hold2,
        need: first,
        units: 1,
        expires_at: at.plus_secs(900),
    };
    shell.run::<Donation>(hotel.as_uuid(), room, at, "n1-hold-2").await;
    let to_hotel = Proposal {
        target: Target::Donation(hotel),
        hold: hold2,
        deadline: at.plus_secs(900),
    };
    shell
        .run::<Need>(first.as_uuid(), NeedCommand::Propose(to_hotel), at, "n1-propose-2")
        .await;
    shell
        .run::<Need>(
            first.as_uuid(),
            NeedCommand::Accept {
                by: Target::Donation(hotel),
            },
            at.plus_secs(60),
            "n1-accept",
        )
        .await;
    shell
        .run::<Donation>(
            hotel.as_uuid(),
            DonationCommand::ConfirmHold { hold: hold2 },
            at.plus_secs(60),
            "n1-use",
        )
        .await;

    // Second need: proposed to the shelter, no answer in time, expires, waitlisted.
    let hold3 = HoldId::from_uuid(Uuid::new_v4());
    let place = ProviderCommand::PlaceHold {
        hold: hold3,
        need: second,
        service: bed,
        units: 1,
        expires_at: deadline,
    };
    shell
        .run::<Provider>(shelter.as_uuid(), place, NIGHT, "n2-hold-1")
        .await;
    let proposal = Proposal {
        target: Target::Provider(shelter),
        hold: hold3,
        deadline,
    };
    shell
        .run::<Need>(second.as_uuid(), NeedCommand::Propose(proposal), NIGHT, "n2-propose-1")
        .await;
    shell
        .run::<Need>(second.as_uuid(), NeedCommand::Expire, deadline, "n2-expire")
        .await;
    let release = ProviderCommand::ReleaseHold {
        hold: hold3,
        reason: ReleaseReason::Expired,
    };
    shell
        .run::<Provider>(shelter.as_uuid(), release, deadline, "n2-release-1")
        .await;
    shell
        .run::<Need>(second.as_uuid(), NeedCommand::Waitlist, deadline, "n2-waitlist")
        .await;
    // A retried step (same key) changes nothing.
    shell
        .run::<Need>(
            second.as_uuid(),
            NeedCommand::Waitlist,
            deadline.plus_secs(5),
            "n2-waitlist",
        )
        .await;

    // The read model, built by a durable subscriber, shows the outcome.
    let (board, applied) = {
        let mut subscriber = Subscriber::open(&shell.store, "board", &[]).await.unwrap();
        let mut board = Board::restore(subscriber.tree());
        let applied = subscriber.catch_up(&mut board).await.unwrap();
        (board, applied)
    };
    println!("read model after {applied} commits:");
    for (id, need) in &board.needs {
        println!(
            "  need {}: {:?}, targets excluded: {}",
            &id.as_simple().to_string()[..8],
            need.status,
            need.excluded.len()
        );
    }
    for (id, provider) in &board.providers {
        println!(
            "  shelter {}: beds {:?}",
            &id.as_simple().to_string()[..8],
            provider.units(bed)
        );
    }
    for (id, rooms) in &board.donations {
        println!(
            "  hotel {}: rooms used {}, free {}",
            &id.as_simple().to_string()[..8],
            rooms.used,
            rooms.free()
        );
    }
    assert_eq!(board.needs[&first.as_uuid()].status, NeedStatus::Accepted);
    assert_eq!(
        board.needs[&first.as_uuid()].excluded.len(),
        1,
        "the shelter that declined is excluded"
    );
    assert_eq!(board.needs[&second.as_uuid()].status, NeedStatus::Waitlisted);
    let shelter_units = board.providers[&shelter.as_uuid()].units(bed);
    assert_eq!(
        (shelter_units.declared, shelter_units.held, shelter_units.free()),
        (2, 0, 2)
    );
    let rooms = &board.donations[&hotel.as_uuid()];
    assert_eq!((rooms.used, rooms.held, rooms.free()), (1, 0, 9));
    // The read model agrees with loading each aggregate from the stream.
    assert_eq!(
        shell.store.load::<Need>(first.as_uuid()).await.unwrap().state,
        board.needs[&first.as_uuid()]
    );
    assert_eq!(
        shell.store.load::<Provider>(shelter.as_uuid()).await.unwrap().state,
        board.providers[&shelter.as_uuid()]
    );
    drop(shell);

    // Lose the whole sled directory: the same board comes back from the stream.
    std::fs::remove_dir_all(dir.path()).unwrap();
    let store = open(&server, dir.path()).await;
    let mut subscriber = Subscriber::open(&store, "board", &[]).await.unwrap();
    let mut rebuilt = Board::restore(subscriber.tree());
    assert!(rebuilt.needs.is_empty());
    subscriber.catch_up(&mut rebuilt).await.unwrap();
    assert_eq!(rebuilt, board);
    println!("sled deleted; read model rebuilt from the stream: identical");
    assert_eq!(Board::restore(subscriber.tree()), board, "and it is on disk");
}
