//! Matching split by region: two partitions with disjoint regions run at
//! once, each with a standby; each decides only about its own region, and a
//! kill in one leaves the other deciding. Real processes, a real nats-server.

mod common;

use common::{each_once, proposed, request_from, shelter_at, Matcher};
use refer_domain::ids::{NeedId, OrgId, ProviderId};
use refer_domain::need::{Need, Target};
use refer_domain::sample::{self, NIGHT};
use refer_eventstore::EventStore;
use refer_proto::matcher::v1 as pb;
use refer_proto::matcher::v1::matcher_client::MatcherClient;
use refer_service::testing::authed;
use refer_service::testing::TestSetup;
use refer_service::Role;
use refer_testkit::NatsServer;
use std::time::{Duration, Instant};

const ADMIN: &str = "token-admin";
const SOUTH: &str = "US-06-037";
const NORTH: &str = "US-06-075";

/// The status a matcher reports, once it answers.
async fn status(setup: &TestSetup, port: u16) -> pb::Status {
    let started = Instant::now();
    loop {
        if let Ok(channel) = setup.endpoint(port).connect().await {
            let mut client = MatcherClient::new(channel);
            if let Ok(status) = client.get_status(authed(ADMIN, pb::GetStatusRequest {})).await {
                return status.into_inner();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "matcher on {port} never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every need of `needs` went to `shelter`.
async fn all_at(store: &EventStore, needs: &[NeedId], shelter: ProviderId) {
    for n in needs {
        let need = store.load::<Need>(n.as_uuid()).await.unwrap().state;
        let target = need.proposal.map(|p| p.target);
        assert_eq!(target, Some(Target::Provider(shelter)), "need {n}");
    }
}

#[tokio::test]
async fn two_partitions_decide_at_once_each_for_its_own_regions_each_with_a_standby() {
    let nats = NatsServer::start().await.unwrap();
    let setup = TestSetup::new(
        nats.access(),
        [(ADMIN, Role::Admin, OrgId::from_u128(9), "admin")],
        NIGHT,
    );
    let store = setup.reader().await;
    let south_site = shelter_at(&store, 100, sample::location(34.05, -118.24, SOUTH)).await;
    let north_site = shelter_at(&store, 100, sample::location(37.77, -122.42, NORTH)).await;
    let south_people = sample::location(33.77, -118.19, SOUTH);
    let north_people = sample::location(37.70, -122.40, NORTH);

    let (mut south_a, south_a_port) = Matcher::start_in(&setup, "south-a", "south", SOUTH);
    let (north_a, north_a_port) = Matcher::start_in(&setup, "north-a", "north", NORTH);
    let mut south = request_from(&store, 10, "s", south_people.clone()).await;
    let mut north = request_from(&store, 10, "n", north_people.clone()).await;
    proposed(&store, &south, "the south's needs").await;
    proposed(&store, &north, "the north's needs").await;
    all_at(&store, &south, south_site).await;
    all_at(&store, &north, north_site).await;

    // A standby for each; each matcher reports its own partition only.
    let (_south_b, south_b_port) = Matcher::start_in(&setup, "south-b", "south", SOUTH);
    let (_north_b, north_b_port) = Matcher::start_in(&setup, "north-b", "north", NORTH);
    for (port, partition, region, leading) in [
        (south_a_port, "south", SOUTH, true),
        (north_a_port, "north", NORTH, true),
        (south_b_port, "south", SOUTH, false),
        (north_b_port, "north", NORTH, false),
    ] {
        let mut s = status(&setup, port).await;
        let started = Instant::now();
        while s.pending_referrals < 10 && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            s = status(&setup, port).await; // a standby catching up
        }
        assert_eq!(
            (s.partition.as_str(), s.regions.clone(), s.leading),
            (partition, vec![region.to_owned()], leading),
            "matcher on {port}"
        );
        assert_eq!(
            (s.providers, s.pending_referrals),
            (1, 10),
            "matcher on {port} keeps its own region only"
        );
    }

    // SIGKILL of the south's active matcher: the south's standby decides;
    // the north never stopped.
    south_a.kill().unwrap();
    let killed = Instant::now();
    let south_more = request_from(&store, 10, "s2", south_people).await;
    let north_more = request_from(&store, 10, "n2", north_people).await;
    let north_took = proposed(&store, &north_more, "the north's needs after the south's kill").await;
    proposed(&store, &south_more, "the south's needs after its kill").await;
    println!(
        "south: proposals resumed {:?} after SIGKILL of its active matcher; north: {north_took:?} for its new needs",
        killed.elapsed()
    );
    assert!(
        status(&setup, south_b_port).await.leading,
        "the south's standby decides"
    );
    assert!(
        status(&setup, north_a_port).await.leading,
        "the north's matcher still decides"
    );
    south.extend(&south_more);
    north.extend(&north_more);
    all_at(&store, &south, south_site).await;
    all_at(&store, &north, north_site).await;
    each_once(&store, south_site, &south).await;
    each_once(&store, north_site, &north).await;
    drop(north_a);
}
