//! The capacity service through its gRPC API, against a real nats-server.

use refer_domain::ids::{CorrelationId, HoldId, NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::need::{Need, NeedCommand, NeedStatus, Proposal, Target};
use refer_domain::provider::{Provider, ProviderCommand};
use refer_domain::sample::{self, NIGHT};
use refer_domain::{CommandMeta, IdempotencyKey, Timestamp};
use refer_proto::capacity::v1 as pb;
use refer_proto::capacity::v1::capacity_client::CapacityClient;
use refer_proto::common::v1 as common;
use refer_service::convert as cv;
use refer_service::testing::{authed, refused, Solo};
use refer_service::{Clock, Role};
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;
use uuid::Uuid;

const HARBOR: &str = "token-harbor-house";
const OTHER: &str = "token-other-shelter";
const INTAKE: &str = "token-intake-officer";
const ADMIN: &str = "token-coalition-admin";
const HARBOR_ORG: OrgId = OrgId::from_u128(0xA);
const OTHER_ORG: OrgId = OrgId::from_u128(0xB);

type World = Solo<CapacityClient<Channel>>;

async fn world() -> World {
    Solo::start(
        refer_capacity::SERVICE,
        [
            (HARBOR, Role::Provider, HARBOR_ORG, "harbor"),
            (OTHER, Role::Provider, OTHER_ORG, "other"),
            (INTAKE, Role::Intake, OrgId::from_u128(0xC), "intake"),
            (ADMIN, Role::Admin, OrgId::from_u128(0xD), "admin"),
        ],
        CapacityClient::new,
    )
    .await
}

fn spec() -> pb::ProviderSpec {
    let s = sample::shelter(HARBOR_ORG);
    pb::ProviderSpec {
        org_id: String::new(),
        name: s.name,
        services: s.services.iter().map(|k| cv::service_kind_pb(*k)).collect(),
        eligibility: Some(cv::eligibility_pb(&s.eligibility)),
        location: Some(cv::location_pb(&s.location)),
        hours: Some(cv::hours_pb(&s.hours)),
    }
}

fn bed() -> i32 {
    common::ServiceKind::ShelterBed as i32
}

async fn register(w: &mut World, token: &str) -> String {
    let id = Uuid::new_v4().to_string();
    let request = pb::RegisterProviderRequest {
        idempotency_key: format!("reg-{}", &id[..8]),
        provider_id: id.clone(),
        spec: Some(spec()),
    };
    w.client.register_provider(authed(token, request)).await.unwrap();
    id
}

async fn set_beds(w: &mut World, token: &str, provider: &str, declared: u32) -> Result<pb::Provider, tonic::Status> {
    let request = pb::SetCapacityRequest {
        idempotency_key: Uuid::new_v4().simple().to_string(),
        provider_id: provider.into(),
        service: bed(),
        declared,
        expected_version: None,
    };
    w.client
        .set_capacity(authed(token, request))
        .await
        .map(|r| r.into_inner())
}

fn beds(p: &pb::Provider) -> &pb::ServiceCapacity {
    p.capacity.iter().find(|c| c.service == bed()).unwrap()
}

/// Does what the matcher does: a need is requested, a hold placed at the
/// provider, the need proposed to it.
async fn refer(w: &World, provider: &str, deadline: Timestamp) -> (NeedId, HoldId) {
    let provider = ProviderId::from_uuid(provider.parse().unwrap());
    let need = NeedId::from_uuid(Uuid::new_v4());
    let hold = HoldId::from_uuid(Uuid::new_v4());
    let meta = |key: &str| CommandMeta {
        occurred_at: NIGHT,
        correlation_id: CorrelationId::from_u128(1),
        causation_id: None,
        idempotency_key: Some(IdempotencyKey::new(key).unwrap()),
    };
    let mut request = sample::shelter_need(OrgId::from_u128(0xC), PlacementId::from_uuid(Uuid::new_v4()), None);
    request.spec.profile.party_size = 2;
    w.store
        .execute::<Need>(need.as_uuid(), &NeedCommand::Request(request), &meta("req"), None)
        .await
        .unwrap();
    let place = ProviderCommand::PlaceHold {
        hold,
        need,
        service: refer_domain::kinds::ServiceKind::ShelterBed,
        units: 2,
        expires_at: deadline,
    };
    w.store
        .execute::<Provider>(provider.as_uuid(), &place, &meta(&format!("hold-{hold}")), None)
        .await
        .unwrap();
    let propose = NeedCommand::Propose(Proposal {
        target: Target::Provider(provider),
        hold,
        deadline,
    });
    w.store
        .execute::<Need>(need.as_uuid(), &propose, &meta("propose"), None)
        .await
        .unwrap();
    (need, hold)
}

async fn pending(w: &mut World, provider: &str, count: usize) -> Vec<pb::Referral> {
    for _ in 0..200 {
        let request = pb::ListReferralsRequest {
            provider_id: provider.into(),
            pending_only: true,
            page_size: 0,
            page_token: String::new(),
        };
        let list = w
            .client
            .list_referrals(authed(HARBOR, request))
            .await
            .unwrap()
            .into_inner()
            .referrals;
        if list.len() >= count {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("referrals did not appear");
}

#[tokio::test]
async fn a_provider_registers_for_its_own_organisation_and_never_silently_for_another() {
    let mut w = world().await;
    let with_org = |org: String| pb::RegisterProviderRequest {
        idempotency_key: format!("reg-{org}"),
        provider_id: Uuid::new_v4().to_string(),
        spec: Some(pb::ProviderSpec { org_id: org, ..spec() }),
    };
    // Naming its own organisation (in any form an id takes) is its own.
    let own = with_org(HARBOR_ORG.as_uuid().hyphenated().to_string());
    let site = w
        .client
        .register_provider(authed(HARBOR, own))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(site.spec.unwrap().org_id, cv::id_pb(HARBOR_ORG.as_uuid()));
    // Naming another is refused, with the field named, and nothing is registered.
    let other = with_org(cv::id_pb(OTHER_ORG.as_uuid()));
    let err = w
        .client
        .register_provider(authed(HARBOR, other.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("spec.org_id"), "{err:?}");
    let get = pb::GetProviderRequest {
        provider_id: other.provider_id.clone(),
    };
    assert_eq!(refused(w.client.get_provider(authed(ADMIN, get)).await), Code::NotFound);
    // An admin registers for whichever organisation it names.
    let by_admin = w
        .client
        .register_provider(authed(ADMIN, other))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_admin.spec.unwrap().org_id, cv::id_pb(OTHER_ORG.as_uuid()));
}

#[tokio::test]
async fn a_provider_registers_and_keeps_capacity_current() {
    let mut w = world().await;
    let id = register(&mut w, HARBOR).await;
    let p = set_beds(&mut w, HARBOR, &id, 4).await.unwrap();
    assert_eq!((beds(&p).declared, beds(&p).free), (4, 4));
    assert_eq!(
        p.spec.as_ref().unwrap().org_id,
        cv::id_pb(HARBOR_ORG.as_uuid()),
        "registered for its own org"
    );

    let adjust = pb::AdjustCapacityRequest {
        idempotency_key: "adj-1".into(),
        provider_id: id.clone(),
        service: bed(),
        delta: -1,
    };
    let after = w
        .client
        .adjust_capacity(authed(HARBOR, adjust.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(beds(&after).declared, 3);
    // The same request again (a retry) changes nothing.
    let again = w
        .client
        .adjust_capacity(authed(HARBOR, adjust))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((beds(&again).declared, again.version), (3, after.version));

    // Absolute with an expected version: a stale version is ABORTED.
    let stale = pb::SetCapacityRequest {
        idempotency_key: "set-stale".into(),
        provider_id: id.clone(),
        service: bed(),
        declared: 9,
        expected_version: Some(p.version),
    };
    let err = w.client.set_capacity(authed(HARBOR, stale)).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    let fresh = pb::SetCapacityRequest {
        idempotency_key: "set-fresh".into(),
        provider_id: id.clone(),
        service: bed(),
        declared: 9,
        expected_version: Some(after.version),
    };
    assert_eq!(
        beds(&w.client.set_capacity(authed(HARBOR, fresh)).await.unwrap().into_inner()).declared,
        9
    );

    let suspended = w
        .client
        .suspend_provider(authed(
            HARBOR,
            pb::SuspendProviderRequest {
                idempotency_key: "s1".into(),
                provider_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(suspended.suspended);
    let got = w
        .client
        .get_provider(authed(
            HARBOR,
            pb::GetProviderRequest {
                provider_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, suspended);
}

#[tokio::test]
async fn bad_input_names_the_field_and_broken_rules_fail_the_precondition() {
    let mut w = world().await;
    let mut bad = spec();
    bad.eligibility.as_mut().unwrap().languages = vec!["English".into()];
    let request = pb::RegisterProviderRequest {
        idempotency_key: "r".into(),
        provider_id: Uuid::new_v4().to_string(),
        spec: Some(bad),
    };
    let err = w.client.register_provider(authed(HARBOR, request)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("spec.eligibility.languages"),
        "{}",
        err.message()
    );

    let request = pb::RegisterProviderRequest {
        idempotency_key: "r".into(),
        provider_id: "not-a-uuid".into(),
        spec: Some(spec()),
    };
    let err = w.client.register_provider(authed(HARBOR, request)).await.unwrap_err();
    assert!(err.message().contains("provider_id"), "{}", err.message());

    let request = pb::RegisterProviderRequest {
        idempotency_key: "has space".into(),
        provider_id: Uuid::new_v4().to_string(),
        spec: Some(spec()),
    };
    let err = w.client.register_provider(authed(HARBOR, request)).await.unwrap_err();
    assert!(err.message().contains("idempotency_key"), "{}", err.message());

    let id = register(&mut w, HARBOR).await;
    let legal = pb::SetCapacityRequest {
        idempotency_key: "legal".into(),
        provider_id: id.clone(),
        service: common::ServiceKind::Legal as i32,
        declared: 1,
        expected_version: None,
    };
    assert_eq!(
        w.client.set_capacity(authed(HARBOR, legal)).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    let unspecified = pb::SetCapacityRequest {
        idempotency_key: "u".into(),
        provider_id: id.clone(),
        service: 0,
        declared: 1,
        expected_version: None,
    };
    let err = w.client.set_capacity(authed(HARBOR, unspecified)).await.unwrap_err();
    assert!(
        err.code() == Code::InvalidArgument && err.message().contains("service"),
        "{err:?}"
    );
    let zero = pb::AdjustCapacityRequest {
        idempotency_key: "z".into(),
        provider_id: id.clone(),
        service: bed(),
        delta: 0,
    };
    assert!(w
        .client
        .adjust_capacity(authed(HARBOR, zero))
        .await
        .unwrap_err()
        .message()
        .contains("delta"));
    let unknown = pb::GetProviderRequest {
        provider_id: Uuid::new_v4().to_string(),
    };
    assert_eq!(
        w.client.get_provider(authed(HARBOR, unknown)).await.unwrap_err().code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn every_call_is_checked_against_the_callers_token_role_and_organisation() {
    let mut w = world().await;
    let id = register(&mut w, HARBOR).await;
    let get = || pb::GetProviderRequest {
        provider_id: id.clone(),
    };

    let err = w.client.get_provider(tonic::Request::new(get())).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "no token");
    let err = w
        .client
        .get_provider(authed("not-a-known-token", get()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "unknown token");
    // Authentication comes before validation: a decline with no token and no
    // reason is refused for the token, not the reason.
    let decline = pb::DeclineReferralRequest {
        idempotency_key: "d".into(),
        provider_id: id.clone(),
        referral_id: HoldId::from_u128(3).to_string(),
        reason: 0,
    };
    let err = w
        .client
        .decline_referral(tonic::Request::new(decline))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "no token, no reason: {err:?}");
    let err = w.client.get_provider(authed(INTAKE, get())).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::PermissionDenied,
        "intake staff do not manage providers"
    );

    // Another provider can neither read nor change this site, nor see its referrals:
    // the site answers as an unknown one does, so its id is not confirmed.
    let theirs = w.client.get_provider(authed(OTHER, get())).await.unwrap_err();
    let unknown = pb::GetProviderRequest {
        provider_id: Uuid::new_v4().to_string(),
    };
    let unknown = w.client.get_provider(authed(OTHER, unknown)).await.unwrap_err();
    assert_eq!((theirs.code(), theirs.message()), (Code::NotFound, unknown.message()));
    assert_eq!(
        set_beds(&mut w, OTHER, &id, 50).await.unwrap_err().code(),
        Code::NotFound
    );
    let referrals = pb::ListReferralsRequest {
        provider_id: id.clone(),
        pending_only: false,
        page_size: 0,
        page_token: String::new(),
    };
    assert_eq!(
        refused(w.client.list_referrals(authed(OTHER, referrals)).await),
        Code::NotFound
    );
    let watch = pb::WatchReferralsRequest {
        provider_id: id.clone(),
        after_position: 0,
    };
    assert_eq!(
        w.client.watch_referrals(authed(OTHER, watch)).await.unwrap_err().code(),
        Code::NotFound
    );
    let accept = pb::AcceptReferralRequest {
        idempotency_key: "a".into(),
        provider_id: id.clone(),
        referral_id: Uuid::new_v4().to_string(),
        handoff: "Side door; the duty worker meets you, 555-0100".into(),
    };
    assert_eq!(
        refused(w.client.accept_referral(authed(OTHER, accept)).await),
        Code::NotFound
    );
    // Re-registering someone else's id is refused without revealing the site.
    let steal = pb::RegisterProviderRequest {
        idempotency_key: "steal".into(),
        provider_id: id.clone(),
        spec: Some(spec()),
    };
    assert_eq!(
        refused(w.client.register_provider(authed(OTHER, steal)).await),
        Code::AlreadyExists
    );

    // An admin registers for any organisation, and must name it.
    let mut for_other = spec();
    for_other.org_id = cv::id_pb(OTHER_ORG.as_uuid());
    let request = pb::RegisterProviderRequest {
        idempotency_key: "adm".into(),
        provider_id: Uuid::new_v4().to_string(),
        spec: Some(for_other),
    };
    let p = w
        .client
        .register_provider(authed(ADMIN, request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.spec.unwrap().org_id, cv::id_pb(OTHER_ORG.as_uuid()));
    let request = pb::RegisterProviderRequest {
        idempotency_key: "adm2".into(),
        provider_id: Uuid::new_v4().to_string(),
        spec: Some(spec()),
    };
    let err = w.client.register_provider(authed(ADMIN, request)).await.unwrap_err();
    assert!(err.message().contains("spec.org_id"), "{}", err.message());

    // Each organisation lists only its own sites.
    let mut seen = Vec::new();
    for _ in 0..100 {
        let list = pb::ListProvidersRequest {
            page_size: 0,
            page_token: String::new(),
        };
        seen = w
            .client
            .list_providers(authed(OTHER, list))
            .await
            .unwrap()
            .into_inner()
            .providers;
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].provider_id, p.provider_id);
}

#[tokio::test]
async fn a_provider_sees_its_referrals_with_the_minimum_and_answers_them() {
    let mut w = world().await;
    let id = register(&mut w, HARBOR).await;
    set_beds(&mut w, HARBOR, &id, 4).await.unwrap();
    let mut watch = w
        .client
        .watch_referrals(authed(
            HARBOR,
            pb::WatchReferralsRequest {
                provider_id: id.clone(),
                after_position: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner();

    let (first, hold1) = refer(&w, &id, NIGHT.plus_secs(900)).await;
    let (second, hold2) = refer(&w, &id, NIGHT.plus_secs(900)).await;
    let list = pending(&mut w, &id, 2).await;
    let r = list
        .iter()
        .find(|r| r.referral_id == cv::id_pb(hold1.as_uuid()))
        .unwrap();
    assert_eq!(
        (r.units, r.party_size, r.age_band),
        (2, 2, common::AgeBand::Adult as i32)
    );
    assert_eq!(r.languages, vec!["es".to_string()]);
    assert_eq!(r.deadline_ms, NIGHT.plus_secs(900).millis());

    let streamed = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(streamed.status, pb::ReferralStatus::Pending as i32);

    // Accept the first: its units are taken.
    let accept = pb::AcceptReferralRequest {
        idempotency_key: "acc-1".into(),
        provider_id: id.clone(),
        referral_id: cv::id_pb(hold1.as_uuid()),
        handoff: "Side door; the duty worker meets you, 555-0100".into(),
    };
    let accepted = w
        .client
        .accept_referral(authed(HARBOR, accept))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.status, pb::ReferralStatus::Accepted as i32);
    let p = w
        .client
        .get_provider(authed(
            HARBOR,
            pb::GetProviderRequest {
                provider_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((beds(&p).declared, beds(&p).held, beds(&p).placed), (2, 2, 2));
    assert_eq!(
        w.store.load::<Need>(first.as_uuid()).await.unwrap().state.status,
        NeedStatus::Accepted
    );

    // Decline the second with a coded reason: the hold is released.
    let decline = pb::DeclineReferralRequest {
        idempotency_key: "dec-2".into(),
        provider_id: id.clone(),
        referral_id: cv::id_pb(hold2.as_uuid()),
        reason: refer_proto::common::v1::DeclineReason::NoCapacity as i32,
    };
    let declined = w
        .client
        .decline_referral(authed(HARBOR, decline.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(declined.status, pb::ReferralStatus::Declined as i32);
    assert_eq!(
        w.store.load::<Need>(second.as_uuid()).await.unwrap().state.status,
        NeedStatus::Declined
    );
    let p = w
        .client
        .get_provider(authed(
            HARBOR,
            pb::GetProviderRequest {
                provider_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((beds(&p).declared, beds(&p).held, beds(&p).free), (2, 0, 2));
    // Retrying the decline is harmless; declining without a reason is refused.
    w.client
        .decline_referral(authed(HARBOR, decline.clone()))
        .await
        .unwrap();
    let no_reason = pb::DeclineReferralRequest {
        reason: 0,
        idempotency_key: "dec-x".into(),
        ..decline
    };
    assert!(w
        .client
        .decline_referral(authed(HARBOR, no_reason))
        .await
        .unwrap_err()
        .message()
        .contains("reason"));

    // The watch stream sees every change, in stream order.
    let mut seen = vec![streamed];
    let answered = |seen: &[pb::Referral], id: HoldId, status: pb::ReferralStatus| {
        seen.iter()
            .any(|r| r.referral_id == cv::id_pb(id.as_uuid()) && r.status == status as i32)
    };
    while !(answered(&seen, hold1, pb::ReferralStatus::Accepted)
        && answered(&seen, hold2, pb::ReferralStatus::Declined))
    {
        let next = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("a change")
            .unwrap()
            .unwrap();
        assert!(next.position > seen.last().unwrap().position, "positions increase");
        seen.push(next);
    }
}

#[tokio::test]
async fn a_referral_cannot_be_accepted_after_its_deadline() {
    let mut w = world().await;
    let id = register(&mut w, HARBOR).await;
    set_beds(&mut w, HARBOR, &id, 2).await.unwrap();
    let (_, hold) = refer(&w, &id, NIGHT.plus_secs(600)).await;
    pending(&mut w, &id, 1).await;
    w.clock.advance_secs(601);
    let accept = pb::AcceptReferralRequest {
        idempotency_key: "late".into(),
        provider_id: id.clone(),
        referral_id: cv::id_pb(hold.as_uuid()),
        handoff: "Side door; the duty worker meets you, 555-0100".into(),
    };
    let err = w.client.accept_referral(authed(HARBOR, accept)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("expired"), "{}", err.message());
}

#[tokio::test]
async fn while_the_bus_is_away_calls_answer_unavailable_at_once_and_work_soon_after_it_returns() {
    let mut w = world().await;
    let id = register(&mut w, HARBOR).await;
    let set = |key: &str, declared: u32| pb::SetCapacityRequest {
        idempotency_key: key.into(),
        provider_id: id.clone(),
        service: common::ServiceKind::ShelterBed as i32,
        declared,
        expected_version: None,
    };
    w.nats.kill();
    // The service's client notices the lost connection in moments.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = std::time::Instant::now();
    let err = w.client.set_capacity(authed(HARBOR, set("away", 4))).await.unwrap_err();
    let answered_in = asked.elapsed();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("unreachable"), "{err:?}");
    let get = pb::GetProviderRequest {
        provider_id: id.clone(),
    };
    assert_eq!(
        refused(w.client.get_provider(authed(HARBOR, get.clone())).await),
        Code::Unavailable
    );

    w.nats.restart().await.unwrap();
    let back = std::time::Instant::now();
    // The same request, retried with its key, lands once the bus is back.
    loop {
        match w.client.set_capacity(authed(HARBOR, set("away", 4))).await {
            Ok(_) => break,
            Err(err) if err.code() == Code::Unavailable => {
                assert!(back.elapsed() < Duration::from_secs(30), "never reconnected: {err:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("{err:?}"),
        }
    }
    let serving_again = back.elapsed();
    let p = w.client.get_provider(authed(HARBOR, get)).await.unwrap().into_inner();
    assert_eq!(p.capacity[0].declared, 4);
    println!("UNAVAILABLE answered in {answered_in:?} while the bus was away; serving again {serving_again:?} after it returned");
}

/// Every capacity says when it was declared, and turns stale once older
/// than the coalition's limit (24 hours here): setting it again, even
/// unchanged, makes it fresh. Holds and acceptances are not declarations.
#[tokio::test]
async fn capacity_shows_its_as_of_and_turns_stale_after_the_limit() {
    let mut w = world().await;
    let provider = register(&mut w, HARBOR).await;
    // Registered but never declared: of unknown age, stale.
    let get = |w: &mut World| {
        let request = authed(
            HARBOR,
            pb::GetProviderRequest {
                provider_id: provider.clone(),
            },
        );
        let mut client = w.client.clone();
        async move { client.get_provider(request).await.unwrap().into_inner() }
    };
    let fresh = get(&mut w).await;
    assert_eq!((beds(&fresh).as_of_ms, beds(&fresh).stale), (0, true));

    let set = set_beds(&mut w, HARBOR, &provider, 3).await.unwrap();
    assert_eq!(beds(&set).as_of_ms, NIGHT.millis());
    assert!(!beds(&set).stale);

    // A hold placed and accepted later changes the count, not its age.
    w.clock.advance_secs(3600);
    refer(&w, &provider, w.clock.now().plus_secs(600)).await;
    let held = get(&mut w).await;
    assert_eq!((beds(&held).held, beds(&held).as_of_ms), (2, NIGHT.millis()));

    // A day after the declaration it is still fresh; a second later, stale.
    w.clock.advance_secs(23 * 3600);
    assert!(!beds(&get(&mut w).await).stale);
    w.clock.advance_secs(1);
    let stale = get(&mut w).await;
    assert!(beds(&stale).stale, "{stale:?}");

    // Confirmed unchanged: fresh again, as of now.
    let confirmed = set_beds(&mut w, HARBOR, &provider, beds(&stale).declared)
        .await
        .unwrap();
    assert_eq!(beds(&confirmed).as_of_ms, w.clock.now().millis());
    assert!(!beds(&confirmed).stale);
}

async fn update(
    w: &mut World,
    token: &str,
    provider: &str,
    spec: pb::ProviderSpec,
    expected_version: Option<u64>,
) -> Result<pb::Provider, tonic::Status> {
    let request = pb::UpdateProviderRequest {
        idempotency_key: Uuid::new_v4().simple().to_string(),
        provider_id: provider.into(),
        spec: Some(spec),
        expected_version,
    };
    w.client
        .update_provider(authed(token, request))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn a_site_updates_its_profile_and_only_its_own_organisation_or_an_admin_may() {
    let mut w = world().await;
    let site = register(&mut w, HARBOR).await;
    set_beds(&mut w, HARBOR, &site, 3).await.unwrap();
    let mut renamed = spec();
    renamed.name = "Harbor House North".into();
    renamed.hours = Some(common::Hours {
        always: false,
        utc_offset_minutes: -480,
        slots: vec![common::WeeklySlot {
            day: common::Weekday::Friday as i32,
            open_minute: 18 * 60,
            close_minute: 8 * 60,
        }],
    });
    let before = w
        .client
        .get_provider(authed(
            HARBOR,
            pb::GetProviderRequest {
                provider_id: site.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();

    // Another organisation's partner and intake staff cannot.
    assert_eq!(
        refused(update(&mut w, OTHER, &site, renamed.clone(), None).await),
        Code::NotFound
    );
    assert_eq!(
        refused(update(&mut w, INTAKE, &site, renamed.clone(), None).await),
        Code::PermissionDenied
    );
    // A stale version is refused.
    assert_eq!(
        refused(update(&mut w, HARBOR, &site, renamed.clone(), Some(before.version - 1)).await),
        Code::Aborted
    );

    let updated = update(&mut w, HARBOR, &site, renamed.clone(), Some(before.version))
        .await
        .unwrap();
    let shown = updated.spec.as_ref().unwrap();
    assert_eq!(shown.name, "Harbor House North");
    assert_eq!(shown.hours, renamed.hours);
    assert_eq!(beds(&updated).declared, 3, "capacity stays");
    assert_eq!(updated.version, before.version + 1);
    // The same again changes nothing.
    let again = update(&mut w, HARBOR, &site, renamed.clone(), None).await.unwrap();
    assert_eq!(again.version, updated.version);

    // An admin may, naming the organisation; a site keeps its organisation and region.
    let mut by_admin = renamed.clone();
    by_admin.org_id = cv::id_pb(HARBOR_ORG.as_uuid());
    by_admin.name = "Harbor House".into();
    update(&mut w, ADMIN, &site, by_admin.clone(), None).await.unwrap();
    let mut other_org = by_admin.clone();
    other_org.org_id = cv::id_pb(OTHER_ORG.as_uuid());
    let status = update(&mut w, ADMIN, &site, other_org, None).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("org"), "{}", status.message());
    let mut moved = renamed.clone();
    moved.location.as_mut().unwrap().region = "US-36-061".into();
    let status = update(&mut w, HARBOR, &site, moved, None).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("location.region"), "{}", status.message());
    let mut nameless = renamed;
    nameless.name.clear();
    let status = update(&mut w, HARBOR, &site, nameless, None).await.unwrap_err();
    assert!(status.message().contains("spec.name"), "{}", status.message());
}
