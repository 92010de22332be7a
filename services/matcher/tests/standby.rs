//! A standby matcher takes over when the active one dies (SIGKILL) or is
//! paused past its lease (SIGSTOP); a paused-then-resumed old leader makes
//! no decision and no duplicate. Real processes, a real nats-server.

mod common;

use common::{each_once, proposed, request, shelter, Matcher};
use refer_domain::sample::NIGHT;
use refer_service::testing::TestSetup;
use refer_testkit::NatsServer;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_standby_takes_over_from_a_killed_or_paused_matcher_and_the_old_one_decides_nothing_more() {
    let nats = NatsServer::start().await.unwrap();
    let setup = TestSetup::new(nats.access(), [], NIGHT);
    let store = setup.reader().await;
    let shelter = shelter(&store, 500).await;

    let mut a = Matcher::start(&setup, "matcher-a");
    let mut all = request(&store, 20, "a").await;
    proposed(&store, &all, "the first matcher").await;
    let b = Matcher::start(&setup, "matcher-b");
    tokio::time::sleep(Duration::from_millis(500)).await; // b is up, standing by

    // SIGKILL of the active matcher: the standby decides within the lease.
    a.signal("-KILL");
    let _ = a.0.wait();
    let killed = Instant::now();
    let after_kill = request(&store, 20, "b").await;
    proposed(&store, &after_kill, "after the kill").await;
    println!(
        "proposals resumed {:?} after SIGKILL of the active matcher",
        killed.elapsed()
    );
    all.extend(&after_kill);
    each_once(&store, shelter, &all).await;

    // SIGSTOP of the active matcher (b) past its lease; c takes over.
    let c = Matcher::start(&setup, "matcher-c");
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.signal("-STOP");
    let paused = Instant::now();
    let while_paused = request(&store, 20, "c").await;
    proposed(&store, &while_paused, "while the leader is paused").await;
    println!(
        "proposals resumed {:?} after SIGSTOP of the active matcher",
        paused.elapsed()
    );
    all.extend(&while_paused);
    // The old leader resumes: it must not decide again, nor double anything.
    b.signal("-CONT");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_resume = request(&store, 20, "d").await;
    proposed(&store, &after_resume, "after the old leader resumed").await;
    all.extend(&after_resume);
    tokio::time::sleep(Duration::from_secs(1)).await;
    each_once(&store, shelter, &all).await;
    drop(c);
}
