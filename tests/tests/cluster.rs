//! Faults under load on a real 3-node JetStream cluster (the stream and
//! buckets replicated 3 times), with two replicas of capacity, donations and
//! intake and two matchers (one standby), each a real process. A bounded
//! load of placement requests, capacity changes and answers runs through
//! clients that list both replicas and retry with the same idempotency key.
//! Each test reports how long its fault held things up; none asserts a
//! time. Each fails on any acknowledged command lost, any duplicate, any
//! need proposed to two sites at once, any capacity over-committed
//! (`audit`).

use refer_domain::ids::{HoldId, NeedId, ProviderId};
use refer_domain::need::{Need, NeedEvent, NeedStatus, Target};
use refer_domain::provider::{Provider, ProviderEvent};
use refer_domain::{Aggregate, Event, Timestamp};
use refer_eventstore::EventStore;
use refer_proto::capacity::v1 as cap;
use refer_proto::capacity::v1::capacity_client::CapacityClient;
use refer_proto::common::v1 as pb;
use refer_proto::donations::v1 as don;
use refer_proto::donations::v1::donations_client::DonationsClient;
use refer_proto::intake::v1 as intake;
use refer_proto::intake::v1::intake_client::IntakeClient;
use refer_proto::matcher::v1 as mpb;
use refer_proto::matcher::v1::matcher_client::MatcherClient;
use refer_service::testing::{authed, TestSetup};
use refer_service::Role;
use refer_testkit::NatsCluster;
use refer_tests::{
    business_org, business_token, person, provider_org, provider_token, site_spec, ADMIN, AGENCY, INTAKE,
};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use uuid::Uuid;

const SITES: usize = 3;
const BEDS: u32 = 15;
/// Longest a client keeps retrying one command before the test fails.
const GIVE_UP: Duration = Duration::from_secs(60);

/// One service process, killed when dropped.
struct Proc {
    service: &'static str,
    instance: String,
    port: u16,
    child: Option<Child>,
    /// How its certificate is verified (the test CA).
    tls: refer_service::tls::ClientTls,
}

/// The file that, created, makes the next matcher retrying a commit of
/// several proposals pause itself there (`refer_matcher::failpoint`).
fn pause_mid_retry(setup: &TestSetup) -> std::path::PathBuf {
    setup.dir.path().join("pause-mid-retry")
}

impl Proc {
    fn start(setup: &TestSetup, service: &'static str, instance: &str) -> Self {
        let mut proc = Self {
            service,
            instance: instance.to_owned(),
            port: 0,
            child: None,
            tls: setup.client_tls(),
        };
        proc.spawn(setup);
        proc
    }

    fn spawn(&mut self, setup: &TestSetup) {
        let (mut command, port, _) = setup.process(env!("CARGO_BIN_EXE_refer-node"), self.service, &self.instance);
        let log = std::fs::File::create(setup.dir.path().join(format!("{}.log", self.instance))).unwrap();
        command
            .arg(self.service)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .env("RUST_LOG", "info,h2=warn,hyper=warn,tower=warn,async_nats=warn");
        if self.service == "matcher" {
            command.env(refer_matcher::failpoint::PAUSE_MID_RETRY, pause_mid_retry(setup));
        }
        self.port = port;
        self.child = Some(command.spawn().expect("start refer-node"));
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Its address, its certificate verified against the test CA.
    fn endpoint(&self) -> Endpoint {
        self.tls.endpoint(&self.url(), "the test CA").unwrap()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is stopped (SIGSTOP), as `/proc` says.
    fn stopped(&self) -> bool {
        let pid = self.child.as_ref().expect("running").id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        matches!(state, Some('T' | 't'))
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let sent = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {signal} {pid}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal("-CONT");
        }
        self.kill();
    }
}

/// A channel over both replicas of a service: calls go to either, and a
/// client whose call failed retries it (same key) and lands on a live one.
fn balanced(a: &Proc, b: &Proc) -> Channel {
    let endpoint = |p: &Proc| p.endpoint().connect_timeout(Duration::from_millis(500));
    Channel::balance_list([endpoint(a), endpoint(b)].into_iter())
}

/// What the load got acknowledged.
#[derive(Default)]
struct Acked {
    /// Placement id and its one need, by request.
    placements: Vec<(String, NeedId)>,
    /// Capacity adjustments (+1 bed) acknowledged, by site.
    adjusted: BTreeMap<ProviderId, u32>,
    /// Referrals (holds) accepted, with their site.
    accepted: BTreeMap<HoldId, ProviderId>,
    /// The longest one command took, retries included, and which.
    slowest: (Duration, String),
}

impl Acked {
    fn took(&mut self, what: String, took: Duration) {
        if took > self.slowest.0 {
            self.slowest = (took, what);
        }
    }
}

struct World {
    cluster: NatsCluster,
    setup: TestSetup,
    store: EventStore,
    procs: BTreeMap<&'static str, Proc>,
    intake: IntakeClient<Channel>,
    capacity: CapacityClient<Channel>,
    donations: DonationsClient<Channel>,
    sites: Vec<ProviderId>,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<AtomicBool>,
    load: Vec<tokio::task::JoinHandle<()>>,
}

/// Whether a failed call may succeed if retried (the replica or the bus
/// was away, the call was cut, a race was lost). Never INTERNAL: a fault
/// is answered UNAVAILABLE (docs/api.md), and INTERNAL fails the test.
fn transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::DeadlineExceeded | Code::Aborted | Code::Cancelled
    )
}

/// One call of `$method` on a clone of `$client`, as `$token`, with a copy
/// of `$request`: what `retried` runs again.
macro_rules! call {
    ($client:expr, $method:ident, $token:expr, $request:expr) => {{
        let mut client = $client.clone();
        let request = authed($token, $request.clone());
        async move { client.$method(request).await.map(tonic::Response::into_inner) }
    }};
}

/// Sends a command and stops waiting for it after 30 ms, as a client
/// whose answer was lost does: the command may have landed, or not; the
/// retry that follows (same key) must apply it once either way.
async fn cut_short<T>(call: impl std::future::Future<Output = Result<T, Status>>) {
    let _ = tokio::time::timeout(Duration::from_millis(30), call).await;
}

/// Runs `call` until it answers, retrying what is transient (each try at
/// most 3 s); returns the answer and how long it took. `Err` is a refusal
/// that no retry changes.
async fn retried<T, F, Fut>(what: &str, mut call: F) -> (Result<T, Status>, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let started = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(3), call()).await {
            Ok(Ok(answer)) => return (Ok(answer), started.elapsed()),
            Ok(Err(status)) if !transient(&status) => return (Err(status), started.elapsed()),
            Ok(Err(_)) | Err(_) => {}
        }
        assert!(started.elapsed() < GIVE_UP, "{what}: no answer for {GIVE_UP:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl World {
    async fn start() -> Self {
        let cluster = NatsCluster::start().await.expect("a 3-node cluster");
        let tokens: Vec<String> = (0..SITES).map(provider_token).collect();
        let business = business_token(0);
        let mut all = vec![
            (ADMIN, Role::Admin, refer_domain::ids::OrgId::from_u128(0xAD), "admin"),
            (INTAKE, Role::Intake, AGENCY, "intake"),
            (&business, Role::Business, business_org(0), "business"),
        ];
        all.extend(
            tokens
                .iter()
                .enumerate()
                .map(|(i, t)| (t.as_str(), Role::Provider, provider_org(i), "provider")),
        );
        let setup = TestSetup::new(cluster.access(), all, refer_domain::sample::NIGHT)
            .stream_replicas(3)
            .tick_ms(200);
        let store = setup.reader().await;
        let mut procs = BTreeMap::new();
        for (name, service) in [
            ("capacity-a", "capacity"),
            ("capacity-b", "capacity"),
            ("donations-a", "donations"),
            ("donations-b", "donations"),
            ("intake-a", "intake"),
            ("intake-b", "intake"),
            ("matcher-a", "matcher"),
        ] {
            procs.insert(name, Proc::start(&setup, service, name));
        }
        let intake = IntakeClient::new(balanced(&procs["intake-a"], &procs["intake-b"]));
        let capacity = CapacityClient::new(balanced(&procs["capacity-a"], &procs["capacity-b"]));
        let donations = DonationsClient::new(balanced(&procs["donations-a"], &procs["donations-b"]));
        let mut world = Self {
            cluster,
            setup,
            store,
            procs,
            intake,
            capacity,
            donations,
            sites: Vec::new(),
            acked: Arc::default(),
            stop: Arc::default(),
            load: Vec::new(),
        };
        world.register_sites().await;
        // The first matcher leads; the standby starts once it does.
        let first = world.procs["matcher-a"].port;
        world.until_leading(first).await;
        let standby = Proc::start(&world.setup, "matcher", "matcher-b");
        world.procs.insert("matcher-b", standby);
        world
    }

    async fn register_sites(&mut self) {
        for i in 0..SITES {
            let id = Uuid::new_v4();
            let token = provider_token(i);
            let client = self.capacity.clone();
            let register = cap::RegisterProviderRequest {
                idempotency_key: format!("reg-{id}"),
                provider_id: id.to_string(),
                spec: Some(site_spec(&[pb::ServiceKind::ShelterBed])),
            };
            let (done, _) = retried("register a site", || call!(client, register_provider, &token, register)).await;
            done.expect("registered");
            let set = cap::SetCapacityRequest {
                idempotency_key: format!("beds-{id}"),
                provider_id: id.to_string(),
                service: pb::ServiceKind::ShelterBed as i32,
                declared: BEDS,
                expected_version: None,
            };
            let (done, _) = retried("set capacity", || call!(client, set_capacity, &token, set)).await;
            done.expect("capacity set");
            self.sites.push(ProviderId::from_uuid(id));
        }
    }

    async fn status(&self, port: u16) -> Option<mpb::Status> {
        let mut client = MatcherClient::new(self.setup.endpoint(port).connect().await.ok()?);
        let answer = tokio::time::timeout(
            Duration::from_secs(2),
            client.get_status(authed(ADMIN, mpb::GetStatusRequest {})),
        )
        .await;
        answer.ok()?.ok().map(|s| s.into_inner())
    }

    /// Waits until the matcher on `port` holds the lease.
    async fn until_leading(&self, port: u16) -> Duration {
        let started = Instant::now();
        while !self.status(port).await.is_some_and(|s| s.leading) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "matcher on {port} never led"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        started.elapsed()
    }

    /// The load: a placement request every 250 ms, a bed added at a site
    /// every 400 ms, and each site answering its referrals (accepting, one
    /// in four declined) every 300 ms; each command retried with its key.
    fn start_load(&mut self) {
        let (stop, acked) = (self.stop.clone(), self.acked.clone());
        let client = self.intake.clone();
        self.load.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let mut someone = person(&format!("CASE-{i}"), &[pb::NeedKind::Shelter]);
                someone.constraints.as_mut().unwrap().needed_by_ms = None;
                let request = intake::RequestPlacementRequest {
                    idempotency_key: format!("place-{i}"),
                    person: Some(someone),
                };
                let what = format!("placement {i}");
                if i.is_multiple_of(3) {
                    cut_short(call!(client, request_placement, INTAKE, request)).await;
                }
                let (answer, took) = retried(&what, || call!(client, request_placement, INTAKE, request)).await;
                let placement = answer.unwrap_or_else(|e| panic!("{what} refused: {e:?}"));
                let need = NeedId::from_uuid(placement.needs[0].need_id.parse().unwrap());
                {
                    let mut acked = acked.lock().unwrap();
                    acked.placements.push((placement.placement_id, need));
                    acked.took(what, took);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }));
        let (stop, acked, sites) = (self.stop.clone(), self.acked.clone(), self.sites.clone());
        let client = self.capacity.clone();
        self.load.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let (site, token) = (sites[i % SITES], provider_token(i % SITES));
                let adjust = cap::AdjustCapacityRequest {
                    idempotency_key: format!("bed-{i}"),
                    provider_id: site.to_string(),
                    service: pb::ServiceKind::ShelterBed as i32,
                    delta: 1,
                };
                let what = format!("adjustment {i}");
                if i.is_multiple_of(3) {
                    cut_short(call!(client, adjust_capacity, &token, adjust)).await;
                }
                let (answer, took) = retried(&what, || call!(client, adjust_capacity, &token, adjust)).await;
                answer.unwrap_or_else(|e| panic!("{what} refused: {e:?}"));
                {
                    let mut acked = acked.lock().unwrap();
                    *acked.adjusted.entry(site).or_default() += 1;
                    acked.took(what, took);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        }));
        for (i, site) in self.sites.clone().into_iter().enumerate() {
            let (stop, acked) = (self.stop.clone(), self.acked.clone());
            let client = self.capacity.clone();
            self.load.push(tokio::spawn(async move {
                let token = provider_token(i);
                let mut answered = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let list = cap::ListReferralsRequest {
                        provider_id: site.to_string(),
                        pending_only: true,
                        page_size: 0,
                        page_token: String::new(),
                    };
                    let (listed, _) = retried("list referrals", || call!(client, list_referrals, &token, list)).await;
                    for referral in listed.expect("listed").referrals {
                        answered += 1;
                        let what = format!("answer to {}", referral.referral_id);
                        let hold = HoldId::from_uuid(referral.referral_id.parse().unwrap());
                        if answered.is_multiple_of(4) {
                            let decline = cap::DeclineReferralRequest {
                                idempotency_key: format!("decline-{}", referral.referral_id),
                                provider_id: site.to_string(),
                                referral_id: referral.referral_id.clone(),
                                reason: refer_proto::common::v1::DeclineReason::NoCapacity as i32,
                            };
                            let (answer, took) =
                                retried(&what, || call!(client, decline_referral, &token, decline)).await;
                            if answer.is_ok() {
                                acked.lock().unwrap().took(what, took);
                            }
                        } else {
                            let accept = cap::AcceptReferralRequest {
                                idempotency_key: format!("accept-{}", referral.referral_id),
                                provider_id: site.to_string(),
                                referral_id: referral.referral_id.clone(),
                                handoff: "Side door, ring twice".into(),
                            };
                            let (answer, took) =
                                retried(&what, || call!(client, accept_referral, &token, accept)).await;
                            // A referral that moved on meanwhile is refused; nothing to check.
                            if answer.is_ok() {
                                let mut acked = acked.lock().unwrap();
                                acked.accepted.insert(hold, site);
                                acked.took(what, took);
                            };
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }));
        }
    }

    /// The stream's replication, as its leader reports it.
    async fn replication(&self) -> async_nats::jetstream::stream::ClusterInfo {
        let mut stream = self
            .store
            .jetstream()
            .get_stream(&self.store.settings().name)
            .await
            .unwrap();
        stream
            .info()
            .await
            .unwrap()
            .cluster
            .clone()
            .expect("a clustered stream")
    }

    /// What node `i` leads: the stream, each key-value bucket, durable
    /// consumers (each an own Raft group, whose writes or deliveries wait
    /// for an election when its leader dies).
    async fn led_by(&self, i: usize) -> String {
        use futures::StreamExt;
        let node = format!("refer-test-{}", self.cluster.node(i).addr().port());
        let js = self.store.jetstream();
        // The stream and every bucket (each a stream of its own).
        let streams: Vec<String> = js.stream_names().filter_map(|n| async move { n.ok() }).collect().await;
        let mut led = Vec::new();
        for stream in streams {
            let Ok(mut handle) = self.store.jetstream().get_stream(&stream).await else {
                continue;
            };
            let info = handle.info().await.unwrap().clone();
            if info.cluster.and_then(|c| c.leader).as_deref() == Some(node.as_str()) {
                led.push(stream.clone());
            }
            let mut consumers = handle.consumers();
            let mut count = 0;
            while let Some(Ok(consumer)) = consumers.next().await {
                count += usize::from(consumer.cluster.and_then(|c| c.leader).as_deref() == Some(node.as_str()));
            }
            if count > 0 {
                led.push(format!("{count} consumers of {stream}"));
            }
        }
        if led.is_empty() {
            "nothing".into()
        } else {
            led.join(", ")
        }
    }

    /// Which node leads the stream.
    async fn stream_leader(&self) -> usize {
        let leader = self.replication().await.leader.expect("the stream has a leader");
        (0..3)
            .find(|i| leader == format!("refer-test-{}", self.cluster.node(*i).addr().port()))
            .expect("the leader is one of the nodes")
    }

    /// Waits until the stream has a leader and both other replicas are
    /// current again; returns how long that took.
    async fn healed(&self) -> Duration {
        let started = Instant::now();
        loop {
            let replication = self.replication().await;
            if replication.leader.is_some()
                && replication.replicas.len() == 2
                && replication.replicas.iter().all(|r| r.current && !r.offline)
            {
                return started.elapsed();
            }
            assert!(started.elapsed() < GIVE_UP, "the stream never healed: {replication:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The end of every service process's log (info and above, calls
    /// left out), for a failure's message.
    fn service_logs(&self) -> String {
        let mut logs = String::new();
        for name in self.procs.keys() {
            let log = std::fs::read_to_string(self.setup.dir.path().join(format!("{name}.log"))).unwrap_or_default();
            // Colours, calls and backtrace frames left out: what is left
            // is the service's own account (a panic's message included).
            let log = strip_colours(&log);
            let tail: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains("rpc{") && !l.starts_with(' '))
                .rev()
                .take(25)
                .collect();
            logs += &format!(
                "--- {name} ---\n{}\n",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        logs
    }

    /// Placements acknowledged so far.
    fn placed(&self) -> usize {
        self.acked.lock().unwrap().placements.len()
    }

    /// Waits until `more` placements were acknowledged after now.
    async fn until_placed(&self, more: usize) {
        let target = self.placed() + more;
        let started = Instant::now();
        while self.placed() < target {
            assert!(
                started.elapsed() < GIVE_UP,
                "the load stalled at {} placements",
                self.placed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How long until a need requested from now on is decided (proposed or
    /// waitlisted): how long matching was held up.
    async fn until_matching(&self) -> Duration {
        let started = Instant::now();
        let from = self.placed();
        loop {
            let need = self.acked.lock().unwrap().placements.get(from).map(|(_, need)| *need);
            if let Some(need) = need {
                let status = self.store.load::<Need>(need.as_uuid()).await.map(|l| l.state.status);
                if matches!(
                    status,
                    Ok(NeedStatus::Proposed | NeedStatus::Accepted | NeedStatus::Waitlisted)
                ) {
                    return started.elapsed();
                }
            }
            assert!(
                started.elapsed() < GIVE_UP,
                "no need decided for {GIVE_UP:?} ({} placements acknowledged, {from} before; the first need after: {need:?})\n{}",
                self.placed(),
                self.service_logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Suspends (or resumes) every site, as its provider does.
    async fn suspend_sites(&self, round: &str, suspend: bool) {
        for (i, site) in self.sites.iter().enumerate() {
            let (token, client) = (provider_token(i), self.capacity.clone());
            let key = format!("{}-{round}-{i}", if suspend { "suspend" } else { "resume" });
            let what = format!("{key} of {site}");
            let answer = if suspend {
                let request = cap::SuspendProviderRequest {
                    idempotency_key: key,
                    provider_id: site.to_string(),
                };
                retried(&what, || call!(client, suspend_provider, &token, request))
                    .await
                    .0
            } else {
                let request = cap::ResumeProviderRequest {
                    idempotency_key: key,
                    provider_id: site.to_string(),
                };
                retried(&what, || call!(client, resume_provider, &token, request))
                    .await
                    .0
            };
            answer.unwrap_or_else(|e| panic!("{what} refused: {e:?}"));
        }
    }

    /// Arms the pause mid-retry, then makes the leader propose several
    /// needs at once to a site whose last state it wrote is stale: every
    /// site is suspended while requests wait, then resumed (one plan
    /// proposes the waiting needs together; the first try of their commit
    /// decides on the leader's snapshot of the site, made before the
    /// suspension, and loses the race). Repeats until the matcher `name`
    /// has paused itself; returns the moment it was seen paused, by the
    /// wall clock the services read.
    async fn until_paused_mid_retry(&self, name: &str) -> Timestamp {
        std::fs::write(pause_mid_retry(&self.setup), b"").unwrap();
        let started = Instant::now();
        let mut round = 0;
        while !self.procs[name].stopped() {
            assert!(
                started.elapsed() < GIVE_UP,
                "{name} never retried a commit of several proposals"
            );
            round += 1;
            let round = format!("{name}-{round}");
            self.suspend_sites(&round, true).await;
            self.until_placed(3).await;
            self.suspend_sites(&round, false).await;
            let resumed = Instant::now();
            while !self.procs[name].stopped() && resumed.elapsed() < Duration::from_secs(2) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        Timestamp(at.as_millis() as i64)
    }

    /// Waits until the matcher's lease has lapsed: its entry expired, no
    /// one holds it.
    async fn until_lease_lapsed(&self) {
        let bucket = format!("{}_LEASES", self.store.settings().name);
        let leases = self.store.jetstream().get_key_value(bucket).await.unwrap();
        let started = Instant::now();
        while leases.entry("matcher").await.ok().flatten().is_some() {
            assert!(started.elapsed() < GIVE_UP, "the lease never lapsed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the load and waits for its clients' last commands.
    async fn stop_load(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in std::mem::take(&mut self.load) {
            task.await.expect("the load ran without a failure");
        }
    }

    /// Waits until both replicas of intake list every acknowledged
    /// placement and both replicas of capacity list the same referrals;
    /// returns how long that took. Call with the load stopped.
    async fn replicas_agree(&self) -> Duration {
        let started = Instant::now();
        loop {
            let (a, b) = (
                placements(&self.procs["intake-a"]).await,
                placements(&self.procs["intake-b"]).await,
            );
            let (ra, rb) = (
                referrals(&self.procs["capacity-a"], &self.sites).await,
                referrals(&self.procs["capacity-b"], &self.sites).await,
            );
            let complete =
                |listed: &Option<Vec<intake::Placement>>| listed.as_ref().map(Vec::len) == Some(self.placed());
            if complete(&a) && a == b && ra.is_some() && ra == rb {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < GIVE_UP,
                "the replicas never listed the same, complete answers: intake-a {:?}, intake-b {:?} of {} \
                 placements; capacity-a {:?}, capacity-b {:?} referrals\n{}",
                a.as_ref().map(Vec::len),
                b.as_ref().map(Vec::len),
                self.placed(),
                ra.as_ref().map(Vec::len),
                rb.as_ref().map(Vec::len),
                self.service_logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until each live matcher's projection counts `needs` as the
    /// stream does (unplaced and accepted), once it has read to the end of
    /// the stream: a commit skipped by its consumer shows here.
    async fn matchers_in_step(&self, needs: &[NeedId]) {
        let started = Instant::now();
        loop {
            let (mut unplaced, mut accepted) = (0, 0);
            for need in needs {
                match self.store.load::<Need>(need.as_uuid()).await.unwrap().state.status {
                    NeedStatus::Accepted => accepted += 1,
                    NeedStatus::Cancelled | NeedStatus::Fulfilled => {}
                    _ => unplaced += 1,
                }
            }
            let last = self.store.last_sequence().await.unwrap();
            let mut behind = Vec::new();
            for name in ["matcher-a", "matcher-b"] {
                let Some(proc) = self.procs.get(name) else { continue };
                let Some(status) = self.status(proc.port).await else {
                    behind.push(format!("{name} does not answer"));
                    continue;
                };
                if status.checkpoint < last || (status.unplaced_needs, status.accepted_needs) != (unplaced, accepted) {
                    behind.push(format!(
                        "{name} at {} of {last}: {} unplaced, {} accepted",
                        status.checkpoint, status.unplaced_needs, status.accepted_needs
                    ));
                }
            }
            if behind.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < GIVE_UP,
                "a matcher's projection is out of step with the stream ({unplaced} unplaced, {accepted} accepted): \
                 {behind:?}\n{}",
                self.service_logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the load, waits until every acknowledged need is decided, and
    /// audits the whole stream.
    async fn finish(mut self) {
        self.stop_load().await;
        let needs: Vec<NeedId> = self.acked.lock().unwrap().placements.iter().map(|(_, n)| *n).collect();
        let started = Instant::now();
        loop {
            let mut open = Vec::new();
            for need in &needs {
                let status = self.store.load::<Need>(need.as_uuid()).await.unwrap().state.status;
                if !matches!(
                    status,
                    NeedStatus::Proposed | NeedStatus::Accepted | NeedStatus::Waitlisted
                ) {
                    open.push((*need, status));
                }
            }
            if open.is_empty() {
                break;
            }
            assert!(
                started.elapsed() < GIVE_UP,
                "needs never decided (lost by the matcher): {open:?}\n{}\n{}",
                self.service_logs(),
                self.cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.matchers_in_step(&needs).await;
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        audit(&self.store, &acked, &self.sites).await;
        println!(
            "load: {} placements, {} beds added, {} referrals accepted; slowest command {:?} ({})",
            acked.placements.len(),
            acked.adjusted.values().sum::<u32>(),
            acked.accepted.len(),
            acked.slowest.0,
            acked.slowest.1
        );
    }
}

/// `log` without its terminal colour codes.
fn strip_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // An escape runs to its final letter (`\x1b[2m`).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads the whole stream and fails on any acknowledged command lost, any
/// command applied twice, any need proposed to two sites at once, any hold
/// placed twice, without its proposal or without a key, any site holding
/// more than it declared.
async fn audit(store: &EventStore, acked: &Acked, sites: &[ProviderId]) {
    let last = store.last_sequence().await.unwrap();
    let commits = store.read_all(0, last).await.unwrap();
    let mut requested: BTreeMap<NeedId, u32> = BTreeMap::new();
    let mut proposed: BTreeMap<NeedId, u32> = BTreeMap::new();
    let mut placed: BTreeMap<HoldId, NeedId> = BTreeMap::new();
    let mut open: BTreeMap<NeedId, BTreeSet<HoldId>> = BTreeMap::new();
    let mut adjusted: BTreeMap<ProviderId, u32> = BTreeMap::new();
    let mut providers: BTreeMap<ProviderId, Provider> = BTreeMap::new();
    for commit in &commits {
        for envelope in &commit.events {
            let id = envelope.aggregate.id;
            match &envelope.event {
                Event::Need(NeedEvent::Requested(_)) => *requested.entry(NeedId::from_uuid(id)).or_default() += 1,
                Event::Need(NeedEvent::Proposed(_)) => *proposed.entry(NeedId::from_uuid(id)).or_default() += 1,
                Event::Provider(event) => {
                    let site = ProviderId::from_uuid(id);
                    match event {
                        ProviderEvent::HoldPlaced { hold, need, .. } => {
                            assert!(placed.insert(*hold, *need).is_none(), "hold {hold} placed twice");
                            assert!(
                                envelope.idempotency_key.is_some(),
                                "hold {hold} placed without an idempotency key"
                            );
                            let holds = open.entry(*need).or_default();
                            holds.insert(*hold);
                            assert!(holds.len() <= 1, "need {need} held at two sites at once: {holds:?}");
                        }
                        ProviderEvent::HoldReleased { hold, .. } | ProviderEvent::HoldConfirmed { hold } => {
                            if let Some(need) = placed.get(hold) {
                                open.entry(*need).or_default().remove(hold);
                            }
                        }
                        ProviderEvent::CapacityAdjusted { .. } | ProviderEvent::CapacityAdjustedAt { .. } => {
                            *adjusted.entry(site).or_default() += 1
                        }
                        _ => {}
                    }
                    let state = providers.remove(&site).unwrap_or_default().evolve(event);
                    let beds = state.units(refer_domain::kinds::ServiceKind::ShelterBed);
                    assert!(
                        beds.held <= beds.declared,
                        "site {site} over-committed: {} held of {}",
                        beds.held,
                        beds.declared
                    );
                    providers.insert(site, state);
                }
                _ => {}
            }
        }
    }
    // Every acknowledged request is on the stream, once, and nothing else is.
    for (placement, need) in &acked.placements {
        assert_eq!(
            requested.get(need),
            Some(&1),
            "placement {placement}: need {need} requested once"
        );
    }
    assert_eq!(
        requested.len(),
        acked.placements.len(),
        "no need the load did not request"
    );
    // Each proposal has its one hold, each hold its proposal (no proposal
    // doubled, no stray hold, no proposal without its hold).
    let mut holds: BTreeMap<NeedId, u32> = BTreeMap::new();
    for need in placed.values() {
        *holds.entry(*need).or_default() += 1;
    }
    for need in proposed.keys().chain(holds.keys()) {
        assert_eq!(
            proposed.get(need),
            holds.get(need),
            "need {need}: one proposal per hold"
        );
    }
    // Every acknowledged capacity change applied exactly once.
    for site in sites {
        assert_eq!(
            adjusted.get(site).copied().unwrap_or(0),
            acked.adjusted.get(site).copied().unwrap_or(0),
            "site {site}: every acknowledged bed added, once"
        );
    }
    // Every acknowledged acceptance stands.
    for (hold, site) in &acked.accepted {
        let need = placed[hold];
        let state = store.load::<Need>(need.as_uuid()).await.unwrap().state;
        assert_eq!(state.status, NeedStatus::Accepted, "need {need} accepted by {site}");
        assert_eq!(state.proposal.map(|p| p.target), Some(Target::Provider(*site)));
    }
}

#[tokio::test]
async fn the_active_matcher_killed_then_its_successor_paused_loses_and_doubles_nothing() {
    let mut w = World::start().await;
    w.start_load();
    w.until_placed(8).await;

    // SIGKILL of the active matcher: the standby decides.
    w.procs.get_mut("matcher-a").unwrap().kill();
    let resumed = w.until_matching().await;
    let standby = w.procs["matcher-b"].port;
    w.until_leading(standby).await;
    println!("SIGKILL of the active matcher: needs decided again after {resumed:?}");
    // The killed one comes back, as a standby.
    w.procs.get_mut("matcher-a").unwrap().spawn(&w.setup);
    w.until_placed(8).await;

    // SIGSTOP of the new leader past its lease, then SIGCONT.
    w.procs["matcher-b"].signal("-STOP");
    let resumed = w.until_matching().await;
    let first = w.procs["matcher-a"].port;
    w.until_leading(first).await;
    println!("SIGSTOP of the active matcher: needs decided again after {resumed:?}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    w.procs["matcher-b"].signal("-CONT");
    w.until_placed(8).await;
    // The resumed one stands down: never do both count themselves leading
    // (and the audit finds no decision doubled).
    let resumed = w.status(standby).await.expect("the resumed matcher answers");
    let holder = w.status(first).await.expect("the other matcher answers");
    assert!(!(resumed.leading && holder.leading), "two matchers lead at once");
    assert!(resumed.leading || holder.leading, "one matcher leads");
    w.finish().await;
}

/// Fails if a commit after stream sequence `after` carries a decision made
/// at or before `paused`: something a matcher decided before it was paused
/// and wrote after it woke, having lost its lease meanwhile.
async fn woke_deciding_nothing(store: &EventStore, after: u64, paused: Timestamp, who: &str) {
    let last = store.last_sequence().await.unwrap();
    let commits = store.read_all(after, last).await.unwrap();
    for commit in commits.iter().filter(|c| c.seq > after) {
        for envelope in &commit.events {
            assert!(
                envelope.occurred_at > paused,
                "{who}, paused at {paused:?} after it lost its lease, wrote {} on {} decided at {:?} \
                 (stream sequence {} after {after})",
                envelope.event_type,
                envelope.aggregate,
                envelope.occurred_at,
                commit.seq,
            );
        }
    }
}

/// The woken leader (issue 21): the active matcher is paused (SIGSTOP)
/// while it retries a commit of several proposals, just before its fence
/// is checked. First the standby takes over and decides, referrals are
/// answered, then the old one resumes; then the new leader is paused the
/// same way while the other stands still too, so nobody decides until it
/// resumes with its lease lapsed. Neither writes anything it decided
/// before its pause, and the audit finds every hold with its proposal and
/// key, none placed twice, nothing over-committed.
///
/// What each pause attacks (each guard removed once, checked): the second
/// fails as soon as the fence is skipped on retry; the first fails once
/// the fence, the decision's rule that a proposal made before places no
/// hold, and its per-hold key are all gone (issue 21's woken matcher).
#[tokio::test]
async fn a_leader_paused_mid_retry_of_a_multi_proposal_commit_wakes_up_deciding_nothing() {
    let mut w = World::start().await;
    w.start_load();
    w.until_placed(4).await;

    // The leader pauses mid-retry; the standby takes over and decides.
    let paused = w.until_paused_mid_retry("matcher-a").await;
    let standby = w.procs["matcher-b"].port;
    let took_over = w.until_leading(standby).await;
    let resumed = w.until_matching().await;
    println!("matcher-a paused mid-retry: matcher-b led after {took_over:?}, decided again after {resumed:?}");
    w.until_placed(8).await;
    let woke = w.store.last_sequence().await.unwrap();
    w.procs["matcher-a"].signal("-CONT");
    w.until_placed(8).await;
    woke_deciding_nothing(&w.store, woke, paused, "matcher-a").await;

    // The new leader pauses mid-retry while the old one stands still: no
    // one takes over, and it wakes with its lease lapsed.
    w.procs["matcher-a"].signal("-STOP");
    let paused = w.until_paused_mid_retry("matcher-b").await;
    w.until_lease_lapsed().await;
    let woke = w.store.last_sequence().await.unwrap();
    w.procs["matcher-b"].signal("-CONT");
    w.procs["matcher-a"].signal("-CONT");
    w.until_placed(8).await;
    let resumed = w.status(standby).await.expect("matcher-b answers");
    let other = w.status(w.procs["matcher-a"].port).await.expect("matcher-a answers");
    assert!(!(resumed.leading && other.leading), "two matchers lead at once");
    woke_deciding_nothing(&w.store, woke, paused, "matcher-b").await;
    w.finish().await;
}

#[tokio::test]
async fn a_nats_node_killed_and_restarted_loses_no_acknowledged_command_and_heals() {
    let mut w = World::start().await;
    w.start_load();
    w.until_placed(8).await;

    // SIGKILL of the node leading the stream: the worst one to lose.
    let node = w.stream_leader().await;
    let led = w.led_by(node).await;
    w.cluster.kill(node);
    let killed = Instant::now();
    let resumed = w.until_matching().await;
    w.until_placed(8).await;
    println!("SIGKILL of the stream's leader node (it led {led}): needs decided again after {resumed:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.cluster.restart(node).await.expect("the node restarts");
    let healed = w.healed().await;
    println!(
        "the restarted node was current {healed:?} after its restart ({:?} after the kill)",
        killed.elapsed()
    );
    w.until_placed(4).await;

    // SIGKILL of a node that does not lead the stream.
    let leader = w.stream_leader().await;
    let follower = (0..3).find(|i| *i != leader).expect("a follower");
    let led = w.led_by(follower).await;
    w.cluster.kill(follower);
    let resumed = w.until_matching().await;
    w.until_placed(4).await;
    println!("SIGKILL of a node following the stream (it led {led}): needs decided again after {resumed:?}");
    w.cluster.restart(follower).await.expect("the node restarts");
    w.healed().await;
    w.until_placed(4).await;
    w.finish().await;
}

#[tokio::test]
async fn the_stream_leader_node_paused_loses_nothing_and_every_replica_sees_everything() {
    let mut w = World::start().await;
    w.start_load();
    w.until_placed(8).await;

    // SIGSTOP of the node leading the stream: its sockets stay open and
    // silent, so clients, consumers and peers learn of it only from missed
    // heartbeats, not from a closed connection as after a kill.
    let node = w.stream_leader().await;
    let led = w.led_by(node).await;
    w.cluster.pause(node);
    let resumed = w.until_matching().await;
    w.until_placed(4).await;
    println!("SIGSTOP of the stream's leader node (it led {led}): needs decided again after {resumed:?}");
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(resumed)).await;
    w.cluster.resume(node);
    let healed = w.healed().await;
    println!("the woken node was current {healed:?} after SIGCONT");
    w.until_placed(4).await;

    // A new intake replica started from nothing just as the stream's
    // leader stalls again: it starts during the elections, waits for them
    // instead of exiting, and then serves everything.
    let node = w.stream_leader().await;
    w.cluster.pause(node);
    w.procs.insert("intake-c", Proc::start(&w.setup, "intake", "intake-c"));
    tokio::time::sleep(Duration::from_secs(12)).await;
    w.cluster.resume(node);
    w.healed().await;
    w.until_placed(4).await;
    w.stop_load().await;
    let agreed = w.replicas_agree().await;
    let started = Instant::now();
    loop {
        let (a, c) = (
            placements(&w.procs["intake-a"]).await,
            placements(&w.procs["intake-c"]).await,
        );
        if c.is_some() && a == c {
            break;
        }
        assert!(
            started.elapsed() < GIVE_UP,
            "intake-c, started during a stall, never listed what intake-a does\n{}",
            w.service_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("every replica answered the same, with every placement, {agreed:?} after the load stopped");
    w.finish().await;
}

#[tokio::test]
async fn replicas_killed_clients_carry_on_and_one_rebuilt_from_nothing_answers_the_same() {
    let mut w = World::start().await;
    w.start_load();
    w.until_placed(8).await;

    // SIGKILL of one replica of each service: the clients carry on.
    for name in ["capacity-a", "donations-a", "intake-a"] {
        w.procs.get_mut(name).unwrap().kill();
    }
    let killed = Instant::now();
    w.until_placed(8).await;
    println!(
        "one replica of each service killed: 8 more placements acknowledged in {:?}",
        killed.elapsed()
    );
    let donations = w.donations.clone();
    let business = business_token(0);
    let list = don::ListDonationsRequest::default();
    let (listed, took) = retried("list donations", || call!(donations, list_donations, &business, list)).await;
    listed.expect("donations answers on its other replica");
    println!("donations answered on its other replica within {took:?}");

    // intake-a and capacity-a come back with their data directories deleted.
    for name in ["intake-a", "capacity-a"] {
        std::fs::remove_dir_all(w.setup.dir.path().join(name)).unwrap();
        w.procs.get_mut(name).unwrap().spawn(&w.setup);
    }
    w.until_placed(4).await;
    w.stop_load().await;
    let same = w.replicas_agree().await;
    println!("the replicas rebuilt from nothing answered as their siblings {same:?} after the load stopped");
    w.finish().await;
}

/// Every placement one intake replica lists (all pages), as it answers.
async fn placements(replica: &Proc) -> Option<Vec<intake::Placement>> {
    let mut client = IntakeClient::new(replica.endpoint().connect().await.ok()?);
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = intake::ListPlacementsRequest {
            page_size: 100,
            page_token: token.clone(),
        };
        let page = client.list_placements(authed(INTAKE, page)).await.ok()?.into_inner();
        all.extend(page.placements);
        if page.next_page_token.is_empty() {
            return Some(all);
        }
        token = page.next_page_token;
    }
}

/// Every referral of every site, as one capacity replica answers.
async fn referrals(replica: &Proc, sites: &[ProviderId]) -> Option<Vec<cap::Referral>> {
    let mut client = CapacityClient::new(replica.endpoint().connect().await.ok()?);
    let mut all = Vec::new();
    for (i, site) in sites.iter().enumerate() {
        let mut token = String::new();
        loop {
            let list = cap::ListReferralsRequest {
                provider_id: site.to_string(),
                pending_only: false,
                page_size: 100,
                page_token: token.clone(),
            };
            let page = client
                .list_referrals(authed(&provider_token(i), list))
                .await
                .ok()?
                .into_inner();
            all.extend(page.referrals);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
    }
    Some(all)
}
