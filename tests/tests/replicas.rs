//! Two replicas of a service serve at once: each keeps its own read model
//! from its own durable consumer (named per replica), so each sees every
//! change, and one restarting does not disturb the other.

use refer_proto::capacity::v1 as cap;
use refer_proto::capacity::v1::capacity_client::CapacityClient;
use refer_proto::common::v1 as pb;
use refer_proto::intake::v1 as intake;
use refer_proto::intake::v1::intake_client::IntakeClient;
use refer_service::testing::{authed, TestApp};
use refer_tests::*;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

async fn pending(client: &CapacityClient<Channel>, site: &str) -> usize {
    let list = cap::ListReferralsRequest {
        provider_id: site.into(),
        pending_only: true,
        page_size: 0,
        page_token: String::new(),
    };
    client
        .clone()
        .list_referrals(authed(&provider_token(0), list))
        .await
        .unwrap()
        .into_inner()
        .referrals
        .len()
}

async fn until_pending(client: &CapacityClient<Channel>, site: &str, count: usize, what: &str) {
    let started = Instant::now();
    while pending(client, site).await != count {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: not {count} pending"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn listed(client: &IntakeClient<Channel>) -> usize {
    let list = intake::ListPlacementsRequest {
        page_size: 100,
        page_token: String::new(),
    };
    client
        .clone()
        .list_placements(authed(INTAKE, list))
        .await
        .unwrap()
        .into_inner()
        .placements
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_each_see_every_change_and_one_restarting_does_not_disturb_the_other() {
    let mut c = Coalition::start(1, 0).await;
    let capacity_b = TestApp::spawn_named(refer_capacity::SERVICE, &c.setup, "capacity-b").await;
    let intake_b = TestApp::spawn_named(refer_intake::SERVICE, &c.setup, "intake-b").await;
    let capacity = [c.capacity.clone(), CapacityClient::new(capacity_b.channel())];
    let intakes = [c.intake.clone(), IntakeClient::new(intake_b.channel())];
    let site = site(&c, 0, &[pb::ServiceKind::ShelterBed], 10).await;

    // Commands go to either replica; both read models see all of them.
    for i in 0..6 {
        let request = intake::RequestPlacementRequest {
            idempotency_key: format!("replica-{i}"),
            person: Some(person(&format!("R-{i}"), &[pb::NeedKind::Shelter])),
        };
        intakes[i % 2]
            .clone()
            .request_placement(authed(INTAKE, request))
            .await
            .unwrap();
    }
    for (i, client) in capacity.iter().enumerate() {
        until_pending(client, &site, 6, &format!("capacity replica {i}")).await;
    }
    for client in &intakes {
        assert_eq!(listed(client).await, 6, "each intake replica lists every placement");
    }

    // A watch on replica B carries on while replica A restarts.
    let watch = cap::WatchReferralsRequest {
        provider_id: site.clone(),
        after_position: 0,
    };
    let mut changes = capacity[1]
        .clone()
        .watch_referrals(authed(&provider_token(0), watch))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..6 {
        changes.next().await.unwrap().unwrap();
    }
    c.apps[0].restart().await;
    let restarted = CapacityClient::new(c.apps[0].channel());
    let request = intake::RequestPlacementRequest {
        idempotency_key: "replica-after".into(),
        person: Some(person("R-after", &[pb::NeedKind::Shelter])),
    };
    intakes[1]
        .clone()
        .request_placement(authed(INTAKE, request))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(20), changes.next())
        .await
        .expect("replica B's watch went on")
        .unwrap()
        .unwrap();
    assert_eq!(next.status, cap::ReferralStatus::Pending as i32);
    // The restarted replica caught up, and both agree.
    until_pending(&restarted, &site, 7, "the restarted replica").await;
    until_pending(&capacity[1], &site, 7, "replica B").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_names_one_request_whichever_replica_it_reaches() {
    let c = Coalition::start(1, 0).await;
    let capacity_b = TestApp::spawn_named(refer_capacity::SERVICE, &c.setup, "capacity-b").await;
    let site = site(&c, 0, &[pb::ServiceKind::ShelterBed], 3).await;
    let adjust = |delta| cap::AdjustCapacityRequest {
        idempotency_key: "one-more-bed".into(),
        provider_id: site.clone(),
        service: pb::ServiceKind::ShelterBed as i32,
        delta,
    };
    let token = provider_token(0);
    let (mut a, mut b) = (c.capacity.clone(), CapacityClient::new(capacity_b.channel()));
    let first = a.adjust_capacity(authed(&token, adjust(1))).await.unwrap().into_inner();
    // Another request under the same key, on the other replica: refused.
    assert_invalid(b.adjust_capacity(authed(&token, adjust(5))).await, "idempotency_key");
    // The same request again, on the other replica: the first one's answer.
    let retry = b.adjust_capacity(authed(&token, adjust(1))).await.unwrap().into_inner();
    assert_eq!(retry.version, first.version, "applied once");
    let beds = |p: &cap::Provider| p.capacity.iter().map(|s| s.declared).sum::<u32>();
    assert_eq!((beds(&first), beds(&retry)), (4, 4), "3 beds, one more, once");
    // And on the first replica, a third request under it is refused too.
    assert_invalid(a.adjust_capacity(authed(&token, adjust(-1))).await, "idempotency_key");
}
