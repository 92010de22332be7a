//! Faults answered as docs/api.md and docs/operations.md promise, tried as
//! an adversary would, on real processes over real gRPC and NATS:
//!
//! * a replica restarted with its data directory deleted is asked for
//!   every object the moment its health check says SERVING: it must find
//!   each one (before that it answers NOT_SERVING and UNAVAILABLE);
//! * while the node leading the stream is killed on a 3-node cluster and
//!   the others elect a new leader, every command answers OK or
//!   UNAVAILABLE (the code docs/api.md tells clients to retry), never
//!   INTERNAL, and no service panics.

use refer_proto::capacity::v1 as cap;
use refer_proto::capacity::v1::capacity_client::CapacityClient;
use refer_proto::common::v1 as pb;
use refer_proto::donations::v1 as don;
use refer_proto::donations::v1::donations_client::DonationsClient;
use refer_proto::intake::v1 as intake;
use refer_proto::intake::v1::intake_client::IntakeClient;
use refer_service::convert::{self as cv, id_pb};
use refer_service::testing::{authed, TestSetup};
use refer_service::Role;
use refer_testkit::{NatsCluster, NatsServer};
use refer_tests::{
    business_org, business_token, person, provider_org, provider_token, site_spec, ADMIN, AGENCY, INTAKE,
};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use uuid::Uuid;

/// Longest the test waits for something that must happen.
const PATIENCE: Duration = Duration::from_secs(90);

/// One service process (`refer-node <service>`), killed when dropped.
struct Proc {
    service: &'static str,
    instance: String,
    port: u16,
    child: Option<Child>,
    /// How its certificate is verified (the test CA).
    tls: refer_service::tls::ClientTls,
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
        let log = std::fs::File::create(self.log_path(setup)).unwrap();
        command.arg(self.service).stderr(log).env("RUST_LOG", "warn");
        self.port = port;
        self.child = Some(command.spawn().expect("start refer-node"));
    }

    fn log_path(&self, setup: &TestSetup) -> std::path::PathBuf {
        setup.dir.path().join(format!("{}.log", self.instance))
    }

    fn channel(&self) -> Channel {
        self.tls
            .endpoint(&format!("https://127.0.0.1:{}", self.port), "the test CA")
            .unwrap()
            .connect_lazy()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its health check's answer, if any.
    async fn health(&self) -> Option<ServingStatus> {
        let mut client = HealthClient::new(self.channel());
        let asked = client.check(HealthCheckRequest { service: String::new() });
        let answer = tokio::time::timeout(Duration::from_secs(2), asked).await.ok()?.ok()?;
        ServingStatus::try_from(answer.into_inner().status).ok()
    }

    /// Polls its health check until it says SERVING (failing if the
    /// process exits first); says whether it said NOT_SERVING before.
    async fn until_serving(&mut self, setup: &TestSetup) -> bool {
        let started = Instant::now();
        let mut not_serving = false;
        loop {
            match self.health().await {
                Some(ServingStatus::Serving) => return not_serving,
                Some(ServingStatus::NotServing) => not_serving = true,
                _ => {}
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                let log = std::fs::read_to_string(self.log_path(setup)).unwrap_or_default();
                panic!("{} exited ({status}) instead of serving:\n{log}", self.instance);
            }
            assert!(started.elapsed() < PATIENCE, "{} never served", self.instance);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Whether the process is still running (it did not panic or exit).
    fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tokens() -> Vec<(String, Role, refer_domain::ids::OrgId, &'static str)> {
    vec![
        (
            ADMIN.into(),
            Role::Admin,
            refer_domain::ids::OrgId::from_u128(0xAD),
            "admin",
        ),
        (INTAKE.into(), Role::Intake, AGENCY, "intake"),
        (provider_token(0), Role::Provider, provider_org(0), "provider"),
        (business_token(0), Role::Business, business_org(0), "business"),
    ]
}

fn setup(bus: refer_testkit::BusAccess) -> TestSetup {
    let tokens = tokens();
    TestSetup::new(
        bus,
        tokens.iter().map(|(t, r, o, n)| (t.as_str(), *r, *o, *n)),
        refer_domain::sample::NIGHT,
    )
}

fn rooms() -> don::DonationSpec {
    let rooms = refer_domain::sample::hotel_rooms(business_org(0));
    don::DonationSpec {
        org_id: String::new(),
        kind: cv::resource_kind_pb(rooms.kind),
        quantity: rooms.quantity,
        window: Some(pb::TimeWindow {
            start_ms: rooms.window.start.millis(),
            end_ms: rooms.window.end.millis(),
        }),
        location: Some(cv::location_pb(&rooms.location)),
        max_units_per_need: 0,
        eligibility: Some(cv::eligibility_pb(&rooms.eligibility)),
    }
}

/// Every placement, site and donation one replica of each lists (all
/// pages), by id.
async fn listed(intake: &Proc, capacity: &Proc, donations: &Proc) -> [BTreeSet<String>; 3] {
    let mut placements = BTreeSet::new();
    let mut client = IntakeClient::new(intake.channel());
    let mut token = String::new();
    loop {
        let page = intake::ListPlacementsRequest {
            page_size: 500,
            page_token: token,
        };
        let page = client.list_placements(authed(INTAKE, page)).await.unwrap().into_inner();
        placements.extend(page.placements.into_iter().map(|p| p.placement_id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let mut sites = BTreeSet::new();
    let mut client = CapacityClient::new(capacity.channel());
    let mut token = String::new();
    loop {
        let page = cap::ListProvidersRequest {
            page_size: 500,
            page_token: token,
        };
        let page = client
            .list_providers(authed(&provider_token(0), page))
            .await
            .unwrap()
            .into_inner();
        sites.extend(page.providers.into_iter().map(|p| p.provider_id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let mut offers = BTreeSet::new();
    let mut client = DonationsClient::new(donations.channel());
    let mut token = String::new();
    loop {
        let page = don::ListDonationsRequest {
            page_size: 500,
            page_token: token,
        };
        let page = client
            .list_donations(authed(&business_token(0), page))
            .await
            .unwrap()
            .into_inner();
        offers.extend(page.donations.into_iter().map(|d| d.donation_id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    [placements, sites, offers]
}

#[tokio::test]
async fn replicas_wiped_and_restarted_find_every_object_as_soon_as_they_say_serving() {
    let server = NatsServer::start().await.unwrap();
    let setup = setup(server.access());
    let mut intake_a = Proc::start(&setup, "intake", "intake-a");
    let mut capacity_a = Proc::start(&setup, "capacity", "capacity-a");
    let mut donations_a = Proc::start(&setup, "donations", "donations-a");
    for proc in [&mut intake_a, &mut capacity_a, &mut donations_a] {
        proc.until_serving(&setup).await;
    }

    // Enough on the stream that folding it takes a while: 400 placements
    // of two needs each, 60 sites, 60 donations.
    let mut client = IntakeClient::new(intake_a.channel());
    for g in 0..4 {
        let people = (0..100)
            .map(|i| {
                person(
                    &format!("CASE-{g}-{i}"),
                    &[pb::NeedKind::Shelter, pb::NeedKind::Medical],
                )
            })
            .collect();
        let group = intake::RequestGroupRequest {
            idempotency_key: format!("group-{g}"),
            cohesion: intake::Cohesion::KeepTogether as i32,
            people,
        };
        client.request_group(authed(INTAKE, group)).await.unwrap();
    }
    let mut client = CapacityClient::new(capacity_a.channel());
    for i in 0..60 {
        let register = cap::RegisterProviderRequest {
            idempotency_key: format!("site-{i}"),
            provider_id: id_pb(Uuid::new_v4()),
            spec: Some(site_spec(&[pb::ServiceKind::ShelterBed])),
        };
        client
            .register_provider(authed(&provider_token(0), register))
            .await
            .unwrap();
    }
    let mut client = DonationsClient::new(donations_a.channel());
    for i in 0..60 {
        let register = don::RegisterDonationRequest {
            idempotency_key: format!("rooms-{i}"),
            donation_id: id_pb(Uuid::new_v4()),
            spec: Some(rooms()),
        };
        client
            .register_donation(authed(&business_token(0), register))
            .await
            .unwrap();
    }
    let before = listed(&intake_a, &capacity_a, &donations_a).await;
    assert_eq!(
        before.iter().map(BTreeSet::len).collect::<Vec<_>>(),
        [400, 60, 60],
        "everything listed before the fault"
    );

    // Each replica killed, its data directory deleted, started again.
    for proc in [&mut intake_a, &mut capacity_a, &mut donations_a] {
        proc.kill();
        std::fs::remove_dir_all(setup.dir.path().join(&proc.instance)).unwrap();
        proc.spawn(&setup);
    }
    // Asked for everything the moment each says SERVING.
    let mut said_not_serving = Vec::new();
    for proc in [&mut intake_a, &mut capacity_a, &mut donations_a] {
        if proc.until_serving(&setup).await {
            said_not_serving.push(proc.instance.clone());
        }
    }
    let after = listed(&intake_a, &capacity_a, &donations_a).await;
    for (kind, (before, after)) in ["placements", "sites", "donations"]
        .iter()
        .zip(before.iter().zip(&after))
    {
        let missing: Vec<_> = before.difference(after).collect();
        assert!(missing.is_empty(), "{} {kind} missing at SERVING", missing.len());
    }
    let mut client = IntakeClient::new(intake_a.channel());
    for id in &before[0] {
        let get = intake::GetPlacementRequest {
            placement_id: id.clone(),
        };
        client
            .get_placement(authed(INTAKE, get))
            .await
            .expect("each placement found");
    }
    let mut client = CapacityClient::new(capacity_a.channel());
    for id in &before[1] {
        let get = cap::GetProviderRequest {
            provider_id: id.clone(),
        };
        client
            .get_provider(authed(&provider_token(0), get))
            .await
            .expect("each site found");
    }
    let mut client = DonationsClient::new(donations_a.channel());
    for id in &before[2] {
        let get = don::GetDonationRequest {
            donation_id: id.clone(),
        };
        client
            .get_donation(authed(&business_token(0), get))
            .await
            .expect("each donation found");
    }
    println!("said NOT_SERVING while catching up: {said_not_serving:?}");
}

/// What the commands sent during the fault were answered, by command.
type Answers = Arc<Mutex<BTreeMap<&'static str, BTreeMap<String, usize>>>>;

/// Sends `call(i)` until `stop` from `LANES` lanes at once (lane `l` sends
/// i = l * 1_000_000, then + 1, ...), each once (no retry), and counts the
/// codes it was answered with.
fn keep_sending<F, Fut>(
    what: &'static str,
    stop: Arc<AtomicBool>,
    answers: Answers,
    call: F,
) -> Vec<tokio::task::JoinHandle<()>>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    let call = Arc::new(call);
    (0..LANES)
        .map(|lane| {
            let (stop, answers, call) = (stop.clone(), answers.clone(), call.clone());
            tokio::spawn(async move {
                let mut i = lane * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    // Longer than any bound a service promises (docs/api.md).
                    let answer = tokio::time::timeout(Duration::from_secs(30), call(i)).await;
                    let code = match answer {
                        Ok(Ok(())) => "Ok".to_owned(),
                        Ok(Err(status)) if status.code() == Code::Unavailable => "Unavailable".to_owned(),
                        Ok(Err(status)) => format!("{:?}: {}", status.code(), status.message()),
                        Err(_) => "no answer within 30 s".to_owned(),
                    };
                    *answers
                        .lock()
                        .unwrap()
                        .entry(what)
                        .or_default()
                        .entry(code)
                        .or_default() += 1;
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect()
}

/// How many of each command are under way at once: an election can be
/// short, and every command kind must meet it.
const LANES: usize = 3;

#[tokio::test]
async fn commands_while_the_stream_elects_a_new_leader_answer_ok_or_unavailable() {
    let mut cluster = NatsCluster::start().await.expect("a 3-node cluster");
    let mut setup = setup(cluster.access()).stream_replicas(3).tick_ms(200);
    // The reader creates the stream. The services connect to the two nodes
    // that do not lead it: when the leader dies they stay connected, and
    // meet the election itself rather than a lost connection.
    let reader = setup.reader().await;
    let first = stream_leader(&reader, &cluster).await;
    setup.nats_url = (0..3)
        .filter(|i| *i != first)
        .map(|i| cluster.node(i).url())
        .collect::<Vec<_>>()
        .join(",");
    let mut procs = vec![
        Proc::start(&setup, "intake", "intake-a"),
        Proc::start(&setup, "capacity", "capacity-a"),
        Proc::start(&setup, "donations", "donations-a"),
        Proc::start(&setup, "matcher", "matcher-a"),
    ];
    for proc in &mut procs {
        proc.until_serving(&setup).await;
    }
    let intake = IntakeClient::new(procs[0].channel());
    let capacity = CapacityClient::new(procs[1].channel());
    let donations = DonationsClient::new(procs[2].channel());
    let provider = provider_token(0);

    // A site with room, and needs accepted there, to fulfil during the fault.
    let site = id_pb(Uuid::new_v4());
    let register = cap::RegisterProviderRequest {
        idempotency_key: "site".into(),
        provider_id: site.clone(),
        spec: Some(site_spec(&[pb::ServiceKind::ShelterBed])),
    };
    capacity
        .clone()
        .register_provider(authed(&provider, register))
        .await
        .unwrap();
    let beds = cap::SetCapacityRequest {
        idempotency_key: "beds".into(),
        provider_id: site.clone(),
        service: pb::ServiceKind::ShelterBed as i32,
        declared: 1000,
        expected_version: None,
    };
    capacity.clone().set_capacity(authed(&provider, beds)).await.unwrap();
    let mut early = Vec::new();
    for i in 0..40 {
        let mut someone = person(&format!("EARLY-{i}"), &[pb::NeedKind::Shelter]);
        someone.constraints.as_mut().unwrap().needed_by_ms = None;
        let request = intake::RequestPlacementRequest {
            idempotency_key: format!("early-{i}"),
            person: Some(someone),
        };
        let placed = intake.clone().request_placement(authed(INTAKE, request)).await.unwrap();
        early.push(placed.into_inner().needs[0].need_id.clone());
    }
    // The only site fits them all: each is proposed there and accepted.
    let mut accepted = 0;
    let started = Instant::now();
    while accepted < early.len() {
        assert!(started.elapsed() < PATIENCE, "the early needs were never all proposed");
        let list = cap::ListReferralsRequest {
            provider_id: site.clone(),
            pending_only: true,
            page_size: 0,
            page_token: String::new(),
        };
        let listed = capacity.clone().list_referrals(authed(&provider, list)).await.unwrap();
        for referral in listed.into_inner().referrals {
            let accept = cap::AcceptReferralRequest {
                idempotency_key: format!("accept-{}", referral.referral_id),
                provider_id: site.clone(),
                referral_id: referral.referral_id.clone(),
                handoff: "Side door, ring twice".into(),
            };
            capacity
                .clone()
                .accept_referral(authed(&provider, accept))
                .await
                .unwrap();
            accepted += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let accepted = Arc::new(early);

    // The load: each command kind, one after the other, through the fault.
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Answers = Arc::default();
    let mut load = Vec::new();
    let client = intake.clone();
    load.extend(keep_sending(
        "RequestPlacement",
        stop.clone(),
        answers.clone(),
        move |i| {
            let mut client = client.clone();
            async move {
                let mut someone = person(&format!("CASE-{i}"), &[pb::NeedKind::Shelter]);
                someone.constraints.as_mut().unwrap().needed_by_ms = None;
                let request = intake::RequestPlacementRequest {
                    idempotency_key: format!("place-{i}"),
                    person: Some(someone),
                };
                client.request_placement(authed(INTAKE, request)).await.map(drop)
            }
        },
    ));
    let client = intake.clone();
    let needs = accepted.clone();
    load.extend(keep_sending("FulfilNeed", stop.clone(), answers.clone(), move |i| {
        let mut client = client.clone();
        // Each accepted need once per lane; past the last, the last again
        // (same key: a duplicate).
        let need = needs[(i % 1_000_000).min(needs.len() - 1)].clone();
        async move {
            let request = intake::FulfilNeedRequest {
                idempotency_key: format!("fulfil-{need}"),
                need_id: need,
            };
            client.fulfil_need(authed(INTAKE, request)).await.map(drop)
        }
    }));
    let (client, id, token) = (capacity.clone(), site.clone(), provider.clone());
    load.extend(keep_sending(
        "AdjustCapacity",
        stop.clone(),
        answers.clone(),
        move |i| {
            let (mut client, id, token) = (client.clone(), id.clone(), token.clone());
            async move {
                let request = cap::AdjustCapacityRequest {
                    idempotency_key: format!("adjust-{i}"),
                    provider_id: id,
                    service: pb::ServiceKind::ShelterBed as i32,
                    delta: 1,
                };
                client.adjust_capacity(authed(&token, request)).await.map(drop)
            }
        },
    ));
    let (client, id, token) = (capacity.clone(), site.clone(), provider.clone());
    load.extend(keep_sending("SetCapacity", stop.clone(), answers.clone(), move |i| {
        let (mut client, id, token) = (client.clone(), id.clone(), token.clone());
        async move {
            let request = cap::SetCapacityRequest {
                idempotency_key: format!("set-{i}"),
                provider_id: id,
                service: pb::ServiceKind::ShelterBed as i32,
                declared: 2000 + (i % 1_000_000) as u32,
                expected_version: None,
            };
            client.set_capacity(authed(&token, request)).await.map(drop)
        }
    }));
    let client = donations.clone();
    load.extend(keep_sending(
        "RegisterDonation",
        stop.clone(),
        answers.clone(),
        move |i| {
            let mut client = client.clone();
            async move {
                let request = don::RegisterDonationRequest {
                    idempotency_key: format!("rooms-{i}"),
                    donation_id: id_pb(Uuid::new_v4()),
                    spec: Some(rooms()),
                };
                client
                    .register_donation(authed(&business_token(0), request))
                    .await
                    .map(drop)
            }
        },
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Twice: SIGKILL of the node leading the stream, the others elect a
    // leader, the load recovers, the node comes back and catches up.
    let oks = |answers: &Answers| -> BTreeMap<&'static str, usize> {
        answers
            .lock()
            .unwrap()
            .iter()
            .map(|(what, codes)| (*what, codes.get("Ok").copied().unwrap_or(0)))
            .collect()
    };
    let mut elections = Vec::new();
    for _ in 0..2 {
        let leader = stream_leader(&reader, &cluster).await;
        cluster.kill(leader);
        let killed = Instant::now();
        loop {
            if let Some(now) = try_stream_leader(&reader, &cluster).await {
                if now != leader {
                    elections.push((leader, killed.elapsed()));
                    break;
                }
            }
            assert!(killed.elapsed() < PATIENCE, "no new stream leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The load carries on until every command kind has been answered
        // OK again after the election.
        let at_election = oks(&answers);
        loop {
            let now = oks(&answers);
            let recovered = now
                .iter()
                .all(|(what, n)| *n >= at_election.get(what).copied().unwrap_or(0) + 3);
            if now.len() == 5 && recovered {
                break;
            }
            assert!(
                killed.elapsed() < PATIENCE,
                "the load never recovered: {:?}",
                answers.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cluster.restart(leader).await.unwrap();
        until_healed(&reader).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let answers = answers.lock().unwrap().clone();
    println!("stream leader killed (node, new leader after): {elections:?}; answers: {answers:?}");
    for (what, codes) in &answers {
        for code in codes.keys() {
            assert!(
                code == "Ok" || code == "Unavailable",
                "{what} answered {code} during the election: {answers:?}"
            );
        }
    }
    for proc in &mut procs {
        assert!(proc.running(), "{} stopped during the election", proc.instance);
    }
}

/// The node leading the stream, if it has a leader now.
async fn try_stream_leader(reader: &refer_eventstore::EventStore, cluster: &NatsCluster) -> Option<usize> {
    let mut stream = reader.jetstream().get_stream(&reader.settings().name).await.ok()?;
    let info = tokio::time::timeout(Duration::from_secs(2), stream.info())
        .await
        .ok()?
        .ok()?;
    let leader = info.cluster.as_ref()?.leader.clone()?;
    (0..3).find(|i| leader == format!("refer-test-{}", cluster.node(*i).addr().port()))
}

/// Waits until the stream has a leader and both other copies are current.
async fn until_healed(reader: &refer_eventstore::EventStore) {
    let started = Instant::now();
    loop {
        if let Ok(mut stream) = reader.jetstream().get_stream(&reader.settings().name).await {
            if let Ok(Ok(info)) = tokio::time::timeout(Duration::from_secs(2), stream.info()).await {
                if let Some(cluster) = &info.cluster {
                    let current =
                        cluster.replicas.len() == 2 && cluster.replicas.iter().all(|r| r.current && !r.offline);
                    if cluster.leader.is_some() && current {
                        return;
                    }
                }
            }
        }
        assert!(started.elapsed() < PATIENCE, "the stream never healed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn stream_leader(reader: &refer_eventstore::EventStore, cluster: &NatsCluster) -> usize {
    let started = Instant::now();
    loop {
        if let Some(leader) = try_stream_leader(reader, cluster).await {
            return leader;
        }
        assert!(started.elapsed() < PATIENCE, "the stream has no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
