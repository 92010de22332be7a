//! No victim identity leaves intake: the agency's case reference, planted in
//! requests, appears in no message on the stream (payload or header) and in
//! no log line, while the whole flow runs.

use refer_proto::capacity::v1 as cap;
use refer_proto::common::v1 as pb;
use refer_proto::intake::v1 as intake;
use refer_service::convert::id_pb;
use refer_service::testing::authed;
use refer_tests::*;
use std::time::{Duration, Instant};
use uuid::Uuid;

const PLANTED: &str = "ZX-CASE-7731-MARIA-LOPEZ";

#[tokio::test]
async fn the_case_reference_is_in_no_event_and_no_log_line() {
    let log = Log::capture(
        "info,refer_capacity=debug,refer_donations=debug,refer_intake=debug,refer_matcher=debug,\
             refer_eventstore=debug,refer_service=debug",
    );

    let mut c = Coalition::start(1, 0).await;
    let token = provider_token(0);
    let provider = id_pb(Uuid::new_v4());
    let spec = cap::ProviderSpec {
        org_id: String::new(),
        name: "Harbor House".into(),
        services: vec![pb::ServiceKind::ShelterBed as i32],
        eligibility: Some(pb::Eligibility {
            age_bands: vec![pb::AgeBand::Adult as i32],
            genders: vec![pb::Gender::Female as i32],
            languages: vec!["es".into()],
            accessibility: vec![],
            service_area: None,
        }),
        location: Some(pb::Location {
            point: Some(pb::GeoPoint {
                lat: 34.05,
                lon: -118.24,
            }),
            region: "US-06-037".into(),
        }),
        hours: Some(pb::Hours {
            always: true,
            ..Default::default()
        }),
    };
    let register = cap::RegisterProviderRequest {
        idempotency_key: "reg".into(),
        provider_id: provider.clone(),
        spec: Some(spec),
    };
    c.capacity.register_provider(authed(&token, register)).await.unwrap();
    let set = cap::SetCapacityRequest {
        idempotency_key: "cap".into(),
        provider_id: provider.clone(),
        service: pb::ServiceKind::ShelterBed as i32,
        declared: 3,
        expected_version: None,
    };
    c.capacity.set_capacity(authed(&token, set)).await.unwrap();

    let person = |suffix: &str| intake::PersonRequest {
        case_reference: format!("{PLANTED}{suffix}"),
        profile: Some(pb::Profile {
            age_band: pb::AgeBand::Adult as i32,
            gender: pb::Gender::Female as i32,
            languages: vec!["es".into()],
            accessibility: vec![],
            party_size: 1,
        }),
        constraints: Some(pb::Constraints {
            origin: Some(pb::Location {
                point: Some(pb::GeoPoint { lat: 34.0, lon: -118.2 }),
                region: "US-06-037".into(),
            }),
            max_distance_km: Some(50),
            avoid_regions: vec![],
            needed_by_ms: None,
        }),
        urgency: pb::Urgency::Immediate as i32,
        needs: vec![pb::NeedKind::Shelter as i32],
    };
    let single = intake::RequestPlacementRequest {
        idempotency_key: "one".into(),
        person: Some(person("-A")),
    };
    let mut request = authed(INTAKE, single);
    let correlation = Uuid::new_v4();
    request
        .metadata_mut()
        .insert("x-correlation-id", correlation.to_string().parse().unwrap());
    let placement = c.intake.request_placement(request).await.unwrap().into_inner();
    let group = intake::RequestGroupRequest {
        idempotency_key: "two".into(),
        cohesion: 0,
        people: vec![person("-B"), person("-C")],
    };
    c.intake.request_group(authed(INTAKE, group)).await.unwrap();

    // The provider answers; the need is accepted; intake cancels another.
    let started = Instant::now();
    loop {
        let list = cap::ListReferralsRequest {
            provider_id: provider.clone(),
            pending_only: true,
            page_size: 0,
            page_token: String::new(),
        };
        let pending = c
            .capacity
            .list_referrals(authed(&token, list))
            .await
            .unwrap()
            .into_inner()
            .referrals;
        if pending.len() == 3 {
            for r in pending {
                let accept = cap::AcceptReferralRequest {
                    idempotency_key: format!("a-{}", r.referral_id),
                    provider_id: provider.clone(),
                    referral_id: r.referral_id,
                    handoff: SIDE_DOOR.into(),
                };
                c.capacity.accept_referral(authed(&token, accept)).await.unwrap();
            }
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "referrals did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let get = intake::GetPlacementRequest {
        placement_id: placement.placement_id.clone(),
    };
    let seen = c.intake.get_placement(authed(INTAKE, get)).await.unwrap().into_inner();
    assert!(
        seen.case_reference.starts_with(PLANTED),
        "intake itself keeps the reference for the agency"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Every message of the stream, raw: payload and headers.
    let js = async_nats::jetstream::new(c.nats.connect().await);
    let stream = js.get_stream("REFER").await.unwrap();
    let last = c.store.last_sequence().await.unwrap();
    assert!(last > 10, "the flow wrote events");
    for seq in 1..=last {
        let message = stream.get_raw_message(seq).await.unwrap();
        assert!(
            !contains(&message.payload, PLANTED),
            "message {seq} carries the case reference"
        );
        for (name, values) in message.headers.iter() {
            for value in values {
                assert!(
                    !value.as_str().contains(PLANTED),
                    "header {name} of message {seq} carries it"
                );
            }
        }
    }
    // The request's correlation id ties its log line to the events it caused.
    let need: Uuid = placement.needs[0].need_id.parse().unwrap();
    let history = c
        .store
        .history(
            &refer_domain::AggregateRef {
                kind: refer_domain::AggregateKind::Need,
                id: need,
            },
            0,
        )
        .await
        .unwrap();
    assert_eq!(history[0].events[0].correlation_id.as_uuid(), correlation);

    // Every log line.
    let log = log.bytes();
    assert!(
        contains(&log, &format!("correlation_id={correlation}")),
        "the RPC's log line carries its correlation id"
    );
    assert!(contains(&log, "rpc"), "the services logged their RPCs");
    assert!(!contains(&log, PLANTED), "a log line carries the case reference");
    if std::env::var_os("REFER_SHOW_LOG").is_some() {
        println!("{}", String::from_utf8_lossy(&log));
    }
}
