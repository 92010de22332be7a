//! The intake service through its gRPC API, against a real nats-server.

use refer_domain::ids::{CorrelationId, HoldId, NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::need::{Need, NeedCommand, NeedStatus, Proposal, Target};
use refer_domain::sample::{self, NIGHT};
use refer_domain::{CommandMeta, IdempotencyKey};
use refer_proto::common::v1 as common;
use refer_proto::intake::v1 as pb;
use refer_proto::intake::v1::intake_client::IntakeClient;
use refer_service::convert as cv;
use refer_service::testing::{authed, refused, Solo};
use refer_service::Role;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;
use uuid::Uuid;

const OFFICER: &str = "token-officer-ramos";
const PARTNER: &str = "token-officer-other-agency";
const SHELTER: &str = "token-shelter";
const AGENCY: OrgId = OrgId::from_u128(0x10);

type World = Solo<IntakeClient<Channel>>;

async fn world() -> World {
    Solo::start(
        refer_intake::SERVICE,
        [
            (OFFICER, Role::Intake, AGENCY, "ramos"),
            (PARTNER, Role::Intake, OrgId::from_u128(0x11), "other agency"),
            (SHELTER, Role::Provider, OrgId::from_u128(0x12), "shelter"),
        ],
        IntakeClient::new,
    )
    .await
}

fn person(case: &str, needs: &[common::NeedKind]) -> pb::PersonRequest {
    let need = sample::shelter_need(AGENCY, refer_domain::ids::PlacementId::from_u128(1), None);
    pb::PersonRequest {
        case_reference: case.into(),
        profile: Some(cv::profile_pb(&need.spec.profile)),
        constraints: Some(cv::constraints_pb(&need.spec.constraints)),
        urgency: common::Urgency::Immediate as i32,
        needs: needs.iter().map(|k| *k as i32).collect(),
    }
}

async fn place(w: &mut World, key: &str, p: pb::PersonRequest) -> Result<pb::Placement, tonic::Status> {
    let request = pb::RequestPlacementRequest {
        idempotency_key: key.into(),
        person: Some(p),
    };
    w.client
        .request_placement(authed(OFFICER, request))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn a_placement_request_creates_one_need_per_kind_and_a_retry_creates_nothing_more() {
    let mut w = world().await;
    let needs = [
        common::NeedKind::Shelter,
        common::NeedKind::Medical,
        common::NeedKind::Transport,
    ];
    let placement = place(&mut w, "op-nightfall-1", person("CASE-2026-0042", &needs))
        .await
        .unwrap();
    assert_eq!(placement.case_reference, "CASE-2026-0042");
    assert_eq!(placement.needs.len(), 3);
    assert!(placement
        .needs
        .iter()
        .all(|n| n.status == pb::NeedStatus::Requested as i32));
    let stream_before = w.store.last_sequence().await.unwrap();

    let again = place(&mut w, "op-nightfall-1", person("CASE-2026-0042", &needs))
        .await
        .unwrap();
    assert_eq!(again.placement_id, placement.placement_id);
    assert_eq!(
        again.needs.iter().map(|n| &n.need_id).collect::<Vec<_>>(),
        placement.needs.iter().map(|n| &n.need_id).collect::<Vec<_>>()
    );
    assert_eq!(
        w.store.last_sequence().await.unwrap(),
        stream_before,
        "the retry appended nothing"
    );

    // The needs are on the bus with the profile but without the case reference.
    let need: Uuid = placement.needs[0].need_id.parse().unwrap();
    let loaded = w.store.load::<Need>(need).await.unwrap().state;
    assert_eq!(loaded.request.as_ref().unwrap().agency, AGENCY);
    let all = w
        .store
        .read_all(0, w.store.last_sequence().await.unwrap())
        .await
        .unwrap();
    let bytes: Vec<u8> = all
        .iter()
        .flat_map(|c| refer_domain::encode_commit(&c.events).unwrap())
        .collect();
    assert!(
        !bytes.windows(b"CASE-2026-0042".len()).any(|w| w == b"CASE-2026-0042"),
        "case reference leaked to the bus"
    );
}

#[tokio::test]
async fn status_follows_the_needs_and_can_be_watched_cancelled_and_fulfilled() {
    let mut w = world().await;
    let placement = place(
        &mut w,
        "p1",
        person("CASE-7", &[common::NeedKind::Shelter, common::NeedKind::Legal]),
    )
    .await
    .unwrap();
    let mut watch = w
        .client
        .watch_placement(authed(
            OFFICER,
            pb::WatchPlacementRequest {
                placement_id: placement.placement_id.clone(),
                after_position: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner();

    // The matcher proposes the shelter need and the provider accepts.
    let shelter_need: Uuid = placement.needs[0].need_id.parse().unwrap();
    let provider = ProviderId::from_uuid(Uuid::new_v4());
    let proposal = Proposal {
        target: Target::Provider(provider),
        hold: HoldId::from_uuid(Uuid::new_v4()),
        deadline: NIGHT.plus_secs(900),
    };
    let meta = |key: &str| CommandMeta {
        occurred_at: NIGHT,
        correlation_id: CorrelationId::from_u128(1),
        causation_id: None,
        idempotency_key: Some(IdempotencyKey::new(key).unwrap()),
    };
    w.store
        .execute::<Need>(shelter_need, &NeedCommand::Propose(proposal), &meta("propose"), None)
        .await
        .unwrap();
    w.store
        .execute::<Need>(
            shelter_need,
            &NeedCommand::Accept {
                by: Target::Provider(provider),
            },
            &meta("accept"),
            None,
        )
        .await
        .unwrap();

    let mut accepted = None;
    while accepted.is_none() {
        let update = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("an update")
            .unwrap()
            .unwrap();
        if update.status == pb::NeedStatus::Accepted as i32 {
            accepted = Some(update);
        }
    }
    let accepted = accepted.unwrap();
    assert_eq!(accepted.need_id, placement.needs[0].need_id);
    assert_eq!(accepted.placed_with, Some(cv::target_pb(&Target::Provider(provider))));

    let got = w
        .client
        .get_placement(authed(
            OFFICER,
            pb::GetPlacementRequest {
                placement_id: placement.placement_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.needs[0].status, pb::NeedStatus::Accepted as i32);

    let fulfil = pb::FulfilNeedRequest {
        idempotency_key: "f1".into(),
        need_id: placement.needs[0].need_id.clone(),
    };
    assert_eq!(
        w.client
            .fulfil_need(authed(OFFICER, fulfil))
            .await
            .unwrap()
            .into_inner()
            .status,
        pb::NeedStatus::Fulfilled as i32
    );
    let cancel = pb::CancelNeedRequest {
        idempotency_key: "c1".into(),
        need_id: placement.needs[1].need_id.clone(),
    };
    assert_eq!(
        w.client
            .cancel_need(authed(OFFICER, cancel.clone()))
            .await
            .unwrap()
            .into_inner()
            .status,
        pb::NeedStatus::Cancelled as i32
    );
    assert_eq!(
        w.client
            .cancel_need(authed(OFFICER, cancel))
            .await
            .unwrap()
            .into_inner()
            .status,
        pb::NeedStatus::Cancelled as i32,
        "retry"
    );
    let again = pb::CancelNeedRequest {
        idempotency_key: "c2".into(),
        need_id: placement.needs[1].need_id.clone(),
    };
    assert_eq!(
        w.client.cancel_need(authed(OFFICER, again)).await.unwrap_err().code(),
        Code::FailedPrecondition,
        "final stays final"
    );
    assert_eq!(
        w.store.load::<Need>(shelter_need).await.unwrap().state.status,
        NeedStatus::Fulfilled
    );
}

#[tokio::test]
async fn a_group_is_requested_whole_and_listed_by_page() {
    let mut w = world().await;
    let people: Vec<_> = (0..15)
        .map(|i| {
            person(
                &format!("OP-{i}"),
                &[common::NeedKind::Shelter, common::NeedKind::Medical],
            )
        })
        .collect();
    let group = pb::RequestGroupRequest {
        idempotency_key: "operation-nightfall".into(),
        cohesion: pb::Cohesion::KeepApart as i32,
        people,
    };
    let g = w
        .client
        .request_group(authed(OFFICER, group.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.people.len(), 15);
    assert!(g.people.iter().all(|p| p.group_id == g.group_id && p.needs.len() == 2));
    // One commit for the whole group: every file and every need written in
    // one atomic batch, so the matcher never meets part of the group.
    let stream = w.store.jetstream().get_stream("REFER").await.unwrap();
    let mut batches = std::collections::BTreeSet::new();
    for placement in &g.people {
        let subjects = std::iter::once(format!("refer.placement.{}", placement.placement_id))
            .chain(placement.needs.iter().map(|n| format!("refer.need.{}", n.need_id)));
        for subject in subjects {
            let written = stream.get_last_raw_message_by_subject(&subject).await.unwrap();
            let batch = written.headers.get("Nats-Batch-Id").map(|v| v.to_string());
            batches.insert(batch.unwrap_or_else(|| panic!("{subject} was written outside any batch")));
        }
    }
    assert_eq!(batches.len(), 1, "the group was written in {} commits", batches.len());
    let retry = w
        .client
        .request_group(authed(OFFICER, group))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.group_id, g.group_id);

    let need: Uuid = g.people[3].needs[1].need_id.parse().unwrap();
    let membership = w
        .store
        .load::<Need>(need)
        .await
        .unwrap()
        .state
        .request
        .unwrap()
        .group
        .unwrap();
    assert_eq!(
        (membership.people, membership.cohesion),
        (15, refer_domain::request::Cohesion::KeepApart)
    );

    let page = w
        .client
        .list_placements(authed(
            OFFICER,
            pb::ListPlacementsRequest {
                page_size: 10,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.placements.len(), 10);
    let rest = w
        .client
        .list_placements(authed(
            OFFICER,
            pb::ListPlacementsRequest {
                page_size: 10,
                page_token: page.next_page_token,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.placements.len(), 5);
    assert!(rest.next_page_token.is_empty());
    let other = w
        .client
        .list_placements(authed(PARTNER, pb::ListPlacementsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(other.placements.is_empty(), "another agency sees none of them");
}

#[tokio::test]
async fn a_group_of_people_in_two_regions_is_refused_and_nothing_is_requested() {
    let mut w = world().await;
    let mut elsewhere = person("OP-2", &[common::NeedKind::Shelter]);
    let constraints = elsewhere.constraints.as_mut().unwrap();
    constraints.origin.as_mut().unwrap().region = "US-06-075".into();
    let group = pb::RequestGroupRequest {
        idempotency_key: "two-places".into(),
        cohesion: pb::Cohesion::KeepTogether as i32,
        people: vec![person("OP-1", &[common::NeedKind::Shelter]), elsewhere],
    };
    let err = w.client.request_group(authed(OFFICER, group)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("people[1].constraints.origin.region"),
        "{}",
        err.message()
    );
    let listed = w
        .client
        .list_placements(authed(OFFICER, pb::ListPlacementsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.placements.is_empty(), "nothing requested");
}

#[tokio::test]
async fn bad_requests_name_the_field_and_agencies_see_only_their_own() {
    let mut w = world().await;
    let mut p = person("C", &[common::NeedKind::Shelter]);
    p.profile.as_mut().unwrap().party_size = 40;
    let err = place(&mut w, "k1", p).await.unwrap_err();
    assert!(
        err.code() == Code::InvalidArgument && err.message().contains("person.profile.party_size"),
        "{err:?}"
    );
    let err = place(&mut w, "k2", person("C", &[])).await.unwrap_err();
    assert!(err.message().contains("person.needs"), "{}", err.message());
    let err = place(
        &mut w,
        "k3",
        person("C", &[common::NeedKind::Shelter, common::NeedKind::Shelter]),
    )
    .await
    .unwrap_err();
    assert!(err.message().contains("person.needs"), "{}", err.message());
    let err = place(&mut w, "k4", person(&"x".repeat(65), &[common::NeedKind::Shelter]))
        .await
        .unwrap_err();
    assert!(err.message().contains("person.case_reference"), "{}", err.message());
    let mut p = person("C", &[common::NeedKind::Shelter]);
    p.constraints.as_mut().unwrap().avoid_regions = vec!["orange county".into()];
    assert!(place(&mut w, "k5", p)
        .await
        .unwrap_err()
        .message()
        .contains("person.constraints.avoid_regions"));
    let group = pb::RequestGroupRequest {
        idempotency_key: "g".into(),
        cohesion: 0,
        people: vec![person("A", &[common::NeedKind::Shelter]), person("B", &[])],
    };
    assert!(w
        .client
        .request_group(authed(OFFICER, group))
        .await
        .unwrap_err()
        .message()
        .contains("people[1].needs"));

    let placement = place(&mut w, "mine", person("C-9", &[common::NeedKind::Shelter]))
        .await
        .unwrap();
    let get = pb::GetPlacementRequest {
        placement_id: placement.placement_id.clone(),
    };
    assert_eq!(
        refused(w.client.get_placement(tonic::Request::new(get.clone())).await),
        Code::Unauthenticated
    );
    assert_eq!(
        refused(w.client.get_placement(authed("nope", get.clone())).await),
        Code::Unauthenticated
    );
    assert_eq!(
        refused(w.client.get_placement(authed(SHELTER, get.clone())).await),
        Code::PermissionDenied
    );
    // Another agency's placement and need answer exactly as unknown ones
    // (intake.proto: NOT_FOUND), so the answer does not confirm they exist.
    let unknown_placement = pb::GetPlacementRequest {
        placement_id: PlacementId::from_u128(6).to_string(),
    };
    let unknown = w
        .client
        .get_placement(authed(OFFICER, unknown_placement))
        .await
        .unwrap_err();
    let theirs = w.client.get_placement(authed(PARTNER, get.clone())).await.unwrap_err();
    assert_eq!((theirs.code(), theirs.message()), (Code::NotFound, unknown.message()));
    let watch = pb::WatchPlacementRequest {
        placement_id: placement.placement_id.clone(),
        after_position: 0,
    };
    let theirs = w.client.watch_placement(authed(PARTNER, watch)).await.unwrap_err();
    assert_eq!((theirs.code(), theirs.message()), (Code::NotFound, unknown.message()));
    let cancel = pb::CancelNeedRequest {
        idempotency_key: "x".into(),
        need_id: placement.needs[0].need_id.clone(),
    };
    let unknown = pb::CancelNeedRequest {
        idempotency_key: "x".into(),
        need_id: NeedId::from_u128(5).to_string(),
    };
    let unknown = w.client.cancel_need(authed(OFFICER, unknown)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let theirs = w.client.cancel_need(authed(PARTNER, cancel)).await.unwrap_err();
    assert_eq!((theirs.code(), theirs.message()), (Code::NotFound, unknown.message()));
}

#[tokio::test]
async fn retries_after_intake_lost_its_data_name_the_same_placements_and_request_nothing_twice() {
    let mut w = world().await;
    let needs = [common::NeedKind::Shelter, common::NeedKind::Medical];
    let mut first = Vec::new();
    for i in 0..40 {
        first.push(
            place(&mut w, &format!("night-{i}"), person(&format!("C-{i}"), &needs))
                .await
                .unwrap(),
        );
    }
    // The machine is lost: intake comes back with an empty data directory.
    w.app.stop().await;
    std::fs::remove_dir_all(&w.app.data_dir).unwrap();
    w.app.restart().await;
    w.client = IntakeClient::new(w.app.channel());
    for (i, earlier) in first.iter().enumerate() {
        let again = place(&mut w, &format!("night-{i}"), person(&format!("C-{i}"), &needs))
            .await
            .unwrap();
        assert_eq!(again.placement_id, earlier.placement_id);
        let ids = |p: &pb::Placement| p.needs.iter().map(|n| n.need_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&again), ids(earlier));
    }
    // Each need was requested on the stream once.
    let last = w.store.last_sequence().await.unwrap();
    let mut requested = std::collections::BTreeMap::new();
    for commit in w.store.read_all(0, last).await.unwrap() {
        for e in commit.events {
            if let refer_domain::Event::Need(refer_domain::need::NeedEvent::Requested(_)) = e.event {
                *requested.entry(e.aggregate.id).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(requested.len(), 80);
    assert!(requested.values().all(|n| *n == 1), "{requested:?}");
}

#[tokio::test]
async fn records_an_older_intake_kept_in_sled_move_to_sealed_files_and_the_clear_copy_goes() {
    use refer_domain::kinds::NeedKind;
    use refer_intake::migrate::{write_legacy, LegacyRecord, TREE};
    let mut w = world().await;
    w.app.stop().await;
    let records: Vec<LegacyRecord> = (0..2u128)
        .map(|i| LegacyRecord {
            placement: PlacementId::from_u128(0xAB00 + i),
            agency: AGENCY,
            case_reference: format!("OLD-CASE-{i}"),
            group: None,
            needs: vec![(NeedId::from_u128(0xCD00 + i), NeedKind::Shelter)],
            requested_at: NIGHT.plus_secs(i as i64 * 60),
        })
        .collect();
    {
        let db = sled::open(&w.app.data_dir).unwrap();
        write_legacy(&db, &records).unwrap();
    }
    w.app.restart().await;
    let mut client = IntakeClient::new(w.app.channel());
    for record in &records {
        let get = pb::GetPlacementRequest {
            placement_id: cv::id_pb(record.placement.as_uuid()),
        };
        let p = client.get_placement(authed(OFFICER, get)).await.unwrap().into_inner();
        assert_eq!(p.case_reference, record.case_reference);
        assert_eq!(p.needs[0].need_id, cv::id_pb(record.needs[0].0.as_uuid()));
        assert_eq!(p.requested_at_ms, record.requested_at.millis());
    }
    let list = pb::ListPlacementsRequest {
        page_size: 10,
        page_token: String::new(),
    };
    let listed = client
        .list_placements(authed(OFFICER, list))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed
            .placements
            .iter()
            .map(|p| p.case_reference.as_str())
            .collect::<Vec<_>>(),
        ["OLD-CASE-1", "OLD-CASE-0"],
        "newest first"
    );
    // Migrated once: a second start finds nothing to move; the clear copy is gone.
    w.app.restart().await;
    w.app.stop().await;
    let db = sled::open(&w.app.data_dir).unwrap();
    assert!(!db.tree_names().iter().any(|n| n.as_ref() == TREE.as_bytes()));
    let last = w.store.last_sequence().await.unwrap();
    let recorded = w
        .store
        .read_all(0, last)
        .await
        .unwrap()
        .iter()
        .flat_map(|c| c.events.clone())
        .filter(|e| e.event_type == "placement.recorded")
        .count();
    assert_eq!(recorded, 2);
    // Sealed on the way: no message carries a migrated reference in clear.
    let js = async_nats::jetstream::new(w.nats.connect().await);
    let stream = js.get_stream("REFER").await.unwrap();
    for seq in 1..=last {
        let message = stream.get_raw_message(seq).await.unwrap();
        assert!(
            !message.payload.windows(9).any(|x| x == b"OLD-CASE-"),
            "message {seq} carries a case reference"
        );
    }
}
