//! The console with two replicas of a service: calls go to the one that
//! answers when the other is gone.

use refer_console::config::Config;
use refer_console::Console;
use refer_proto::capacity::v1 as cap;
use refer_proto::common::v1 as pb;
use refer_service::testing::{authed, TestApp};
use refer_tests::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_listed_the_console_carries_on_when_one_is_gone() {
    let mut c = Coalition::start(1, 0).await;
    let replica = TestApp::spawn_named(refer_capacity::SERVICE, &c.setup, "capacity-b").await;
    let site = site(&c, 0, &[pb::ServiceKind::ShelterBed], 3).await;
    let urls = format!("{},{}", c.apps[0].url(), replica.url());
    let ca = c.setup.keys.ca_file().display().to_string();
    let config = Config::from_sources(None, |key| match key {
        "REFER_CAPACITY_URL" => Some(urls.clone()),
        "REFER_CA_FILE" => Some(ca.clone()),
        _ => None,
    })
    .unwrap();
    let console = Console::new(&config).unwrap();
    let list = || cap::ListProvidersRequest {
        page_size: 10,
        page_token: String::new(),
    };
    let listed = console
        .capacity_client()
        .list_providers(authed(&provider_token(0), list()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.providers[0].provider_id, site);

    c.apps[0].stop().await;
    // Every call now answers, from the replica left.
    let started = Instant::now();
    let mut answered = 0;
    while answered < 10 {
        match console
            .capacity_client()
            .list_providers(authed(&provider_token(0), list()))
            .await
        {
            Ok(_) => answered += 1,
            Err(err) => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "no replica answers: {err:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    println!(
        "10 calls answered by the replica left, {:?} after the other stopped",
        started.elapsed()
    );
}
