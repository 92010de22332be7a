//! What a client relies on, checked through the gRPC API as an outside
//! client would: every call authenticates first, errors name their field
//! with the documented code, keys name one request, watches never end on a
//! stale status, and the reads say what they count.

use refer_domain::sample::{self, NIGHT};
use refer_proto::capacity::v1 as cap;
use refer_proto::capacity::v1::capacity_client::CapacityClient;
use refer_proto::common::v1 as pb;
use refer_proto::donations::v1 as don;
use refer_proto::donations::v1::donations_client::DonationsClient;
use refer_proto::intake::v1 as intake;
use refer_proto::intake::v1::intake_client::IntakeClient;
use refer_proto::matcher::v1::matcher_client::MatcherClient;
use refer_proto::matcher::v1::GetStatusRequest;
use refer_service::convert::{self as cv, id_pb};
use refer_service::testing::authed;
use refer_tests::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::{Code, Request};
use uuid::Uuid;

/// The services `channel` lists through reflection `$version` (v1 or v1alpha).
macro_rules! list_services {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut client = ServerReflectionClient::new($channel);
        let mut answers = client
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .unwrap()
            .into_inner();
        match answers.next().await.unwrap().unwrap().message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<String>>()
            }
            other => panic!("no list: {other:?}"),
        }
    }};
}

/// Intake requests a placement for one person with `needs` under `key`.
async fn request_one(c: &mut Coalition, key: &str, needs: &[pb::NeedKind]) -> intake::Placement {
    let request = intake::RequestPlacementRequest {
        idempotency_key: key.into(),
        person: Some(person(key, needs)),
    };
    c.intake
        .request_placement(authed(INTAKE, request))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn every_rpc_without_a_token_is_unauthenticated_before_its_input_is_read() {
    let c = Coalition::start(0, 0).await;
    // Each request is invalid too (no ids, no reason): authentication comes first.
    let mut capacity = CapacityClient::new(c.channel(0));
    let mut donations = DonationsClient::new(c.channel(1));
    let mut intake = IntakeClient::new(c.channel(2));
    let mut matcher = MatcherClient::new(c.channel(3));
    let codes: Vec<(&str, Code)> = vec![
        (
            "RegisterProvider",
            capacity
                .register_provider(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "GetProvider",
            capacity
                .get_provider(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "ListProviders",
            capacity
                .list_providers(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "SetCapacity",
            capacity
                .set_capacity(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "AdjustCapacity",
            capacity
                .adjust_capacity(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "SuspendProvider",
            capacity
                .suspend_provider(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "ResumeProvider",
            capacity
                .resume_provider(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "ListReferrals",
            capacity
                .list_referrals(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "WatchReferrals",
            capacity
                .watch_referrals(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "AcceptReferral",
            capacity
                .accept_referral(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "DeclineReferral",
            capacity
                .decline_referral(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "RegisterDonation",
            donations
                .register_donation(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "WithdrawDonation",
            donations
                .withdraw_donation(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "GetDonation",
            donations
                .get_donation(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "ListDonations",
            donations
                .list_donations(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "WatchDonations",
            donations
                .watch_donations(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "RequestPlacement",
            intake
                .request_placement(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "RequestGroup",
            intake
                .request_group(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "GetPlacement",
            intake
                .get_placement(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "ListPlacements",
            intake
                .list_placements(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "WatchPlacement",
            intake
                .watch_placement(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "CancelNeed",
            intake
                .cancel_need(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "FulfilNeed",
            intake
                .fulfil_need(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "GetReferral",
            capacity
                .get_referral(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "SetSiteHandoff",
            capacity
                .set_site_handoff(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "SetHandoffContact",
            intake
                .set_handoff_contact(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "GetHandoffContact",
            intake
                .get_handoff_contact(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "ShareNote",
            intake
                .share_note(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "RevokeNote",
            intake
                .revoke_note(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "ForgetPlacement",
            intake
                .forget_placement(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "SetDonationHandoff",
            donations
                .set_donation_handoff(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "GetStatus",
            matcher
                .get_status(Request::new(GetStatusRequest {}))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "Capacity.ListSealedReads",
            capacity
                .list_sealed_reads(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "Donations.ListSealedReads",
            donations
                .list_sealed_reads(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
        (
            "Intake.ListSealedReads",
            intake
                .list_sealed_reads(Request::new(Default::default()))
                .await
                .unwrap_err()
                .code(),
        ),
    ];
    for (rpc, code) in &codes {
        assert_eq!(*code, Code::Unauthenticated, "{rpc}");
    }
    // Even a request over the size cap is refused for its missing token first.
    let big = intake::RequestPlacementRequest {
        idempotency_key: "k".into(),
        person: Some(person(&"x".repeat(300 * 1024), &[pb::NeedKind::Shelter])),
    };
    let err = intake.request_placement(Request::new(big)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
}

/// A `PersonRequest` whose case reference travels as raw bytes.
#[derive(Clone, PartialEq, prost::Message)]
struct RawPerson {
    #[prost(bytes = "vec", tag = "1")]
    case_reference: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawRequest {
    #[prost(string, tag = "1")]
    idempotency_key: String,
    #[prost(message, optional, tag = "2")]
    person: Option<RawPerson>,
}

#[tokio::test]
async fn bad_bytes_big_requests_and_out_of_range_numbers_get_their_documented_codes() {
    let mut c = Coalition::start(1, 1).await;
    // A string field holding bytes that are not UTF-8: INVALID_ARGUMENT, field named.
    let mut grpc = tonic::client::Grpc::new(c.channel(2));
    grpc.ready().await.unwrap();
    let raw = RawRequest {
        idempotency_key: "raw".into(),
        person: Some(RawPerson {
            case_reference: vec![0xff, 0xfe, 0xfd],
        }),
    };
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/refer.intake.v1.Intake/RequestPlacement");
    let codec = tonic_prost::ProstCodec::<RawRequest, intake::Placement>::default();
    let answer = grpc.unary(authed(INTAKE, raw), path, codec).await;
    assert_invalid(answer.map(|r| r.into_inner()), "case_reference");

    // Over 256 KiB: RESOURCE_EXHAUSTED, as gRPC clients expect.
    let big = intake::RequestPlacementRequest {
        idempotency_key: "big".into(),
        person: Some(person(&"x".repeat(300 * 1024), &[pb::NeedKind::Shelter])),
    };
    let err = c.intake.request_placement(authed(INTAKE, big)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    // A number beyond what a field accepts names the field.
    let site = site(&c, 0, &[pb::ServiceKind::ShelterBed], 1).await;
    let set = cap::SetCapacityRequest {
        idempotency_key: "huge".into(),
        provider_id: site.clone(),
        service: pb::ServiceKind::ShelterBed as i32,
        declared: u32::MAX,
        expected_version: None,
    };
    assert_invalid(
        c.capacity.set_capacity(authed(&provider_token(0), set)).await,
        "declared",
    );
    let adjust = cap::AdjustCapacityRequest {
        idempotency_key: "huge-delta".into(),
        provider_id: site,
        service: pb::ServiceKind::ShelterBed as i32,
        delta: i32::MIN,
    };
    assert_invalid(
        c.capacity.adjust_capacity(authed(&provider_token(0), adjust)).await,
        "delta",
    );

    // Repeated fields are bounded before they are read: 40,000 copies of "en".
    let mut flood = person("flood", &[pb::NeedKind::Shelter]);
    flood.profile.as_mut().unwrap().languages = vec!["en".into(); 40_000];
    let request = intake::RequestPlacementRequest {
        idempotency_key: "flood".into(),
        person: Some(flood),
    };
    assert_invalid(
        c.intake.request_placement(authed(INTAKE, request)).await,
        "person.profile.languages",
    );
    let mut twice = person("twice", &[pb::NeedKind::Shelter]);
    twice.profile.as_mut().unwrap().languages = vec!["en".into(), "en".into()];
    let request = intake::RequestPlacementRequest {
        idempotency_key: "twice".into(),
        person: Some(twice),
    };
    assert_invalid(
        c.intake.request_placement(authed(INTAKE, request)).await,
        "person.profile.languages[1]",
    );

    // Times and windows are bounded.
    let mut late = person("late", &[pb::NeedKind::Shelter]);
    late.constraints.as_mut().unwrap().needed_by_ms = Some(i64::MIN);
    let request = intake::RequestPlacementRequest {
        idempotency_key: "late".into(),
        person: Some(late),
    };
    assert_invalid(
        c.intake.request_placement(authed(INTAKE, request)).await,
        "person.constraints.needed_by_ms",
    );
    let rooms = sample::hotel_rooms(business_org(0));
    let mut spec = don::DonationSpec {
        org_id: String::new(),
        kind: cv::resource_kind_pb(rooms.kind),
        quantity: rooms.quantity,
        window: Some(pb::TimeWindow {
            start_ms: i64::MIN,
            end_ms: i64::MAX,
        }),
        location: Some(cv::location_pb(&rooms.location)),
        max_units_per_need: 0,
        eligibility: Some(cv::eligibility_pb(&rooms.eligibility)),
    };
    let donate = |spec: don::DonationSpec| don::RegisterDonationRequest {
        idempotency_key: format!("d-{}", Uuid::new_v4().simple()),
        donation_id: id_pb(Uuid::new_v4()),
        spec: Some(spec),
    };
    assert_invalid(
        c.donations
            .register_donation(authed(&business_token(0), donate(spec.clone())))
            .await,
        "spec.window.start_ms",
    );
    spec.window = Some(pb::TimeWindow {
        start_ms: NIGHT.millis(),
        end_ms: NIGHT.millis() + 400 * 24 * 3600 * 1000,
    });
    assert_invalid(
        c.donations
            .register_donation(authed(&business_token(0), donate(spec)))
            .await,
        "spec.window.end_ms",
    );

    // Field paths name the sub-field: a slot that closes when it opens, a bad region.
    let mut spec = site_spec(&[pb::ServiceKind::ShelterBed]);
    spec.hours = Some(pb::Hours {
        always: false,
        utc_offset_minutes: 0,
        slots: vec![pb::WeeklySlot {
            day: pb::Weekday::Monday as i32,
            open_minute: 600,
            close_minute: 600,
        }],
    });
    let register = |spec: cap::ProviderSpec| cap::RegisterProviderRequest {
        idempotency_key: format!("r-{}", Uuid::new_v4().simple()),
        provider_id: id_pb(Uuid::new_v4()),
        spec: Some(spec),
    };
    assert_invalid(
        c.capacity
            .register_provider(authed(&provider_token(0), register(spec)))
            .await,
        "spec.hours.slots[0].close_minute",
    );
    let mut spec = site_spec(&[pb::ServiceKind::ShelterBed]);
    spec.eligibility.as_mut().unwrap().service_area = Some(pb::eligibility::ServiceArea::Regions(pb::RegionList {
        regions: vec!["US-06-037".into(), "los angeles".into()],
    }));
    assert_invalid(
        c.capacity
            .register_provider(authed(&provider_token(0), register(spec)))
            .await,
        "spec.eligibility.regions.regions[1]",
    );
}

#[tokio::test]
async fn a_key_names_one_request_in_every_service() {
    let mut c = Coalition::start(1, 0).await;
    let token = provider_token(0);
    let site = site(&c, 0, &[pb::ServiceKind::ShelterBed], 2).await;
    let set = cap::SetCapacityRequest {
        idempotency_key: "monday-beds".into(),
        provider_id: site.clone(),
        service: pb::ServiceKind::ShelterBed as i32,
        declared: 5,
        expected_version: None,
    };
    let first = c
        .capacity
        .set_capacity(authed(&token, set.clone()))
        .await
        .unwrap()
        .into_inner();
    // The same request again: the same outcome, applied once.
    let again = c.capacity.set_capacity(authed(&token, set)).await.unwrap().into_inner();
    assert_eq!(again.version, first.version);
    // Another request under that key: refused, nothing applied.
    let suspend = cap::SuspendProviderRequest {
        idempotency_key: "monday-beds".into(),
        provider_id: site.clone(),
    };
    assert_invalid(
        c.capacity.suspend_provider(authed(&token, suspend)).await,
        "idempotency_key",
    );
    let get = cap::GetProviderRequest { provider_id: site };
    let now = c.capacity.get_provider(authed(&token, get)).await.unwrap().into_inner();
    assert!(!now.suspended);
    assert_eq!(now.version, first.version);

    // Intake follows the same rule.
    let one = intake::RequestPlacementRequest {
        idempotency_key: "case-7".into(),
        person: Some(person("7", &[pb::NeedKind::Shelter])),
    };
    let placed = c
        .intake
        .request_placement(authed(INTAKE, one.clone()))
        .await
        .unwrap()
        .into_inner();
    let retried = c
        .intake
        .request_placement(authed(INTAKE, one))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.placement_id, placed.placement_id);
    let other = intake::RequestPlacementRequest {
        idempotency_key: "case-7".into(),
        person: Some(person("8", &[pb::NeedKind::Counseling])),
    };
    assert_invalid(
        c.intake.request_placement(authed(INTAKE, other)).await,
        "idempotency_key",
    );
}

#[tokio::test]
async fn a_placement_watch_ends_on_the_status_get_placement_shows() {
    let mut c = Coalition::start(2, 0).await;
    let services = [
        pb::ServiceKind::ShelterBed,
        pb::ServiceKind::Counseling,
        pb::ServiceKind::Medical,
        pb::ServiceKind::Legal,
    ];
    for i in 0..2 {
        let id = site(&c, i, &services, 20).await;
        accept_every_referral(&c, i, id);
    }
    // 6 people x 5 needs; transport has no donation, so it waits.
    let kinds = [
        pb::NeedKind::Shelter,
        pb::NeedKind::Counseling,
        pb::NeedKind::Medical,
        pb::NeedKind::Legal,
        pb::NeedKind::Transport,
    ];
    let group = intake::RequestGroupRequest {
        idempotency_key: "raid".into(),
        cohesion: intake::Cohesion::Unspecified as i32,
        people: (0..6).map(|i| person(&format!("p{i}"), &kinds)).collect(),
    };
    let group = c
        .intake
        .request_group(authed(INTAKE, group))
        .await
        .unwrap()
        .into_inner();
    let mut watches = Vec::new();
    for p in &group.people {
        let watch = intake::WatchPlacementRequest {
            placement_id: p.placement_id.clone(),
            after_position: 0,
        };
        watches.push(
            c.intake
                .watch_placement(authed(INTAKE, watch))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let settled = |p: &intake::Placement| {
        p.needs.iter().all(|n| {
            let waiting = n.kind == pb::NeedKind::Transport as i32;
            n.status
                == if waiting {
                    intake::NeedStatus::Waitlisted as i32
                } else {
                    intake::NeedStatus::Accepted as i32
                }
        })
    };
    let mut finals = Vec::new();
    for p in &group.people {
        finals.push(placement_until(&c.intake, &p.placement_id, "accepted or waitlisted", settled).await);
    }
    // Each watch reaches, for every need, the very update GetPlacement shows.
    for (watch, placement) in watches.iter_mut().zip(&finals) {
        let want: BTreeMap<String, (i32, u64)> = placement
            .needs
            .iter()
            .map(|n| (n.need_id.clone(), (n.status, n.position)))
            .collect();
        let mut seen: BTreeMap<String, (i32, u64)> = BTreeMap::new();
        let mut positions = Vec::new();
        while seen != want {
            let next = tokio::time::timeout(Duration::from_secs(5), watch.next())
                .await
                .unwrap_or_else(|_| panic!("the watch stopped short: saw {seen:?}, want {want:?}"))
                .unwrap()
                .unwrap();
            positions.push(next.position);
            seen.insert(next.need_id, (next.status, next.position));
        }
        assert!(
            positions.windows(2).all(|w| w[0] <= w[1]),
            "in position order: {positions:?}"
        );
    }
    // The reads say what they count and what a need waits for.
    let transport = finals[0]
        .needs
        .iter()
        .find(|n| n.kind == pb::NeedKind::Transport as i32)
        .unwrap();
    let waiting = transport.waiting_for.as_ref().expect("what it waits for");
    assert_eq!(
        (waiting.service, waiting.resources.clone(), waiting.region.as_str()),
        (
            0,
            vec![pb::ResourceKind::Vehicle as i32, pb::ResourceKind::RentalCar as i32],
            "US-06-037"
        )
    );
    let mut matcher = MatcherClient::new(c.channel(3));
    let status = matcher
        .get_status(authed(ADMIN, GetStatusRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.accepted_needs, status.unplaced_needs), (24, 6), "{status:?}");
    assert_eq!(
        status.acceptance_timed, 24,
        "every acceptance is timed from its request"
    );
}

#[tokio::test]
async fn a_proposed_need_shows_its_deadline_to_intake() {
    let mut c = Coalition::start(1, 0).await;
    site(&c, 0, &[pb::ServiceKind::ShelterBed], 1).await;
    let placed = request_one(&mut c, "one", &[pb::NeedKind::Shelter]).await;
    placement_until(&c.intake, &placed.placement_id, "proposed with a deadline", |p| {
        let need = &p.needs[0];
        need.status == intake::NeedStatus::Proposed as i32
            && need.deadline_ms == NIGHT.millis() + refer_domain::need::HOLD_SECS * 1000
    })
    .await;
}

#[tokio::test]
async fn donations_are_watched_after_a_position_and_reflection_speaks_both_versions() {
    let mut c = Coalition::start(0, 1).await;
    let rooms = sample::hotel_rooms(business_org(0));
    let spec = don::DonationSpec {
        org_id: String::new(),
        kind: cv::resource_kind_pb(rooms.kind),
        quantity: rooms.quantity,
        window: Some(cv::time_window_pb(&rooms.window)),
        location: Some(cv::location_pb(&rooms.location)),
        max_units_per_need: 0,
        eligibility: Some(cv::eligibility_pb(&rooms.eligibility)),
    };
    let token = business_token(0);
    let register = don::RegisterDonationRequest {
        idempotency_key: "rooms".into(),
        donation_id: id_pb(Uuid::new_v4()),
        spec: Some(spec),
    };
    let d = c
        .donations
        .register_donation(authed(&token, register))
        .await
        .unwrap()
        .into_inner();
    let watch = don::WatchDonationsRequest {
        after_position: d.version,
        ..Default::default()
    };
    let mut watch = c
        .donations
        .watch_donations(authed(&token, watch))
        .await
        .unwrap()
        .into_inner();
    let withdraw = don::WithdrawDonationRequest {
        idempotency_key: "withdraw".into(),
        donation_id: d.donation_id.clone(),
    };
    c.donations.withdraw_donation(authed(&token, withdraw)).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("a change")
        .unwrap()
        .unwrap();
    // The registration at `after_position` is not sent again; the withdrawal is.
    assert!(next.withdrawn && next.version > d.version, "{next:?}");

    let v1 = list_services!(v1, c.channel(1));
    let v1alpha = list_services!(v1alpha, c.channel(1));
    for names in [v1, v1alpha] {
        assert!(names.contains(&refer_donations::SERVICE_NAME.to_string()), "{names:?}");
    }
}

#[tokio::test]
async fn a_read_model_entry_that_cannot_be_decoded_is_counted_and_rebuilt() {
    let mut c = Coalition::start(0, 0).await;
    let placed = request_one(&mut c, "kept", &[pb::NeedKind::Transport]).await;
    let waitlisted = |p: &intake::Placement| p.needs[0].status == intake::NeedStatus::Waitlisted as i32;
    placement_until(&c.intake, &placed.placement_id, "waitlisted", waitlisted).await;
    // Damage the intake board on disk while intake is stopped.
    c.apps[2].stop().await;
    let dir = c.apps[2].data_dir.clone();
    let db = {
        let started = Instant::now();
        loop {
            match sled::open(&dir) {
                Ok(db) => break db,
                Err(_) if started.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("intake's sled stays locked: {e}"),
            }
        }
    };
    let consumer = format!(
        "{}-{}",
        refer_intake::CONSUMER,
        refer_service::runtime::instance_of(&c.apps[2].data_dir)
    );
    let tree = db.open_tree(format!("projection/{consumer}")).unwrap();
    let entries: Vec<_> = tree.iter().keys().map(|k| k.unwrap()).filter(|k| k[0] != 0).collect();
    assert!(!entries.is_empty());
    for key in entries {
        tree.insert(key, vec![0xff; 3]).unwrap();
    }
    db.flush().unwrap();
    drop(tree);
    drop(db);
    c.apps[2].restart().await;
    let restarted = IntakeClient::new(c.channel(2));
    placement_until(
        &restarted,
        &placed.placement_id,
        "the board rebuilt from the stream",
        waitlisted,
    )
    .await;
    let metrics = c.apps[2].metrics().await;
    assert!(
        metrics.contains(&format!("refer_read_model_undecodable_total{{model=\"{consumer}\"}}")),
        "{metrics}"
    );
}

#[tokio::test]
async fn made_up_paths_from_anyone_add_no_metric_series() {
    let c = Coalition::start(0, 0).await;
    let capacity = &c.apps[0];
    let before = capacity.metrics().await.len();
    // Calls with no token to paths no service serves, as a stranger could send.
    let mut grpc = tonic::client::Grpc::new(capacity.channel());
    for i in 0..200 {
        grpc.ready().await.unwrap();
        let path = format!("/refer.capacity.v1.Capacity/MadeUp{i}");
        let path = tonic::codegen::http::uri::PathAndQuery::try_from(path).unwrap();
        let codec = tonic_prost::ProstCodec::<
            tonic_health::pb::HealthCheckRequest,
            tonic_health::pb::HealthCheckResponse,
        >::default();
        let asked = grpc
            .unary(
                Request::new(tonic_health::pb::HealthCheckRequest::default()),
                path,
                codec,
            )
            .await;
        assert!(asked.is_err(), "a made-up path is refused");
    }
    let metrics = capacity.metrics().await;
    assert!(!metrics.contains("MadeUp"), "a series per made-up path");
    assert!(
        metrics.contains("method=\"unknown\""),
        "made-up paths are counted, as one"
    );
    assert!(
        metrics.len() < before + 4096,
        "the metrics grew by {} bytes",
        metrics.len() - before
    );
}
