//! A whole coalition for end-to-end tests: a private nats-server and the four
//! services, each started through the path its `main` takes (`TestApp`:
//! configuration file, token file, metrics listener, port 0, its own data
//! directory), sharing one controllable clock. The tests live in `tests/tests/`.
#![forbid(unsafe_code)]

use refer_domain::ids::{OrgId, PlacementId};
use refer_domain::sample::{self, NIGHT};
use refer_eventstore::EventStore;
use refer_proto::capacity::v1 as cap;
use refer_proto::capacity::v1::capacity_client::CapacityClient;
use refer_proto::common::v1 as pb;
use refer_proto::donations::v1::donations_client::DonationsClient;
use refer_proto::intake::v1 as intake;
use refer_proto::intake::v1::intake_client::IntakeClient;
use refer_service::convert::{self as cv, id_pb};
use refer_service::testing::authed;
use refer_service::testing::{TestApp, TestSetup};
use refer_service::{ManualClock, Role};
use refer_testkit::NatsServer;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Status};
use uuid::Uuid;

pub const ADMIN: &str = "admin-token";
pub const INTAKE: &str = "intake-token";
pub const AGENCY: OrgId = OrgId::from_u128(0xA6E0);
/// Staff of a second agency, who must see nothing of the first one's.
pub const OTHER_INTAKE: &str = "other-intake-token";
pub const OTHER_AGENCY: OrgId = OrgId::from_u128(0xA6E1);

/// The token of provider partner `i` (each runs its own organisation).
pub fn provider_token(i: usize) -> String {
    format!("provider-{i}-token")
}
pub fn provider_org(i: usize) -> OrgId {
    OrgId::from_u128(0x1000 + i as u128)
}
pub fn business_token(i: usize) -> String {
    format!("business-{i}-token")
}
pub fn business_org(i: usize) -> OrgId {
    OrgId::from_u128(0x2000 + i as u128)
}

pub struct Coalition {
    /// The NATS server, or the first node of a cluster.
    pub nats: NatsServer,
    /// The other two nodes when it runs on a 3-node cluster.
    pub peers: Vec<NatsServer>,
    pub setup: TestSetup,
    /// A reader's view of the stream (for assertions only).
    pub store: EventStore,
    pub clock: ManualClock,
    pub capacity: CapacityClient<Channel>,
    pub donations: DonationsClient<Channel>,
    pub intake: IntakeClient<Channel>,
    /// capacity, donations, intake, matcher.
    pub apps: Vec<TestApp>,
}

impl Coalition {
    pub async fn start(providers: usize, businesses: usize) -> Self {
        Self::start_ticking(providers, businesses, 50).await
    }

    /// [`Coalition::start`], with the services' background work (the
    /// matcher's deadlines, intake's erasure sweep) every `tick_ms`.
    pub async fn start_ticking(providers: usize, businesses: usize, tick_ms: u64) -> Self {
        Self::start_on(vec![NatsServer::start().await.unwrap()], providers, businesses, tick_ms).await
    }

    /// The same on a 3-node JetStream cluster, the stream and buckets
    /// replicated on all three (as compose deploys it).
    pub async fn start_on_cluster(providers: usize, businesses: usize) -> Self {
        let nodes = refer_testkit::NatsCluster::start().await.unwrap().into_nodes();
        Self::start_on(nodes, providers, businesses, 50).await
    }

    /// The same on a cluster whose store is not encrypted at rest: for
    /// attackers who read the nodes' files holding every key the operator
    /// holds, the store's key included.
    pub async fn start_on_unencrypted_cluster(providers: usize, businesses: usize) -> Self {
        let options = refer_testkit::ServerOptions::unencrypted();
        let nodes = refer_testkit::NatsCluster::start_with(options)
            .await
            .unwrap()
            .into_nodes();
        Self::start_on(nodes, providers, businesses, 50).await
    }

    async fn start_on(mut nodes: Vec<NatsServer>, providers: usize, businesses: usize, tick_ms: u64) -> Self {
        let access = refer_testkit::BusAccess {
            urls: nodes.iter().map(NatsServer::url).collect::<Vec<_>>().join(","),
            keys: nodes[0].access().keys,
        };
        let provider_tokens: Vec<String> = (0..providers).map(provider_token).collect();
        let business_tokens: Vec<String> = (0..businesses).map(business_token).collect();
        let mut tokens = vec![
            (ADMIN, Role::Admin, OrgId::from_u128(0xAD), "admin"),
            (INTAKE, Role::Intake, AGENCY, "intake"),
            (OTHER_INTAKE, Role::Intake, OTHER_AGENCY, "other intake"),
        ];
        tokens.extend(
            provider_tokens
                .iter()
                .enumerate()
                .map(|(i, t)| (t.as_str(), Role::Provider, provider_org(i), "provider")),
        );
        tokens.extend(
            business_tokens
                .iter()
                .enumerate()
                .map(|(i, t)| (t.as_str(), Role::Business, business_org(i), "business")),
        );
        let setup = TestSetup::new(access, tokens, NIGHT)
            .stream_replicas(nodes.len())
            .tick_ms(tick_ms);
        let mut apps = Vec::new();
        for spec in [
            refer_capacity::SERVICE,
            refer_donations::SERVICE,
            refer_intake::SERVICE,
            refer_matcher::SERVICE,
        ] {
            apps.push(TestApp::spawn(spec, &setup).await);
        }
        let store = setup.reader().await;
        Self {
            capacity: CapacityClient::new(apps[0].channel()),
            donations: DonationsClient::new(apps[1].channel()),
            intake: IntakeClient::new(apps[2].channel()),
            clock: setup.clock.clone(),
            nats: nodes.remove(0),
            peers: nodes,
            setup,
            store,
            apps,
        }
    }

    /// Every NATS node's JetStream store directory.
    pub fn store_dirs(&self) -> Vec<std::path::PathBuf> {
        std::iter::once(&self.nats)
            .chain(&self.peers)
            .map(NatsServer::store_dir)
            .collect()
    }

    /// A channel to the service at `index` (capacity, donations, intake, matcher).
    pub fn channel(&self, index: usize) -> Channel {
        self.apps[index].channel()
    }

    /// `http://` addresses of capacity, donations, intake and matcher.
    pub fn urls(&self) -> [String; 4] {
        [0, 1, 2, 3].map(|i| self.apps[i].url())
    }
}

/// The hand-off `accept_every_referral` gives.
pub const SIDE_DOOR: &str = "Side door; the duty worker meets you, 555-0100";

/// Provider `i` accepts every referral `site` gets, as it comes (until the
/// test ends), with the hand-off [`SIDE_DOOR`].
pub fn accept_every_referral(c: &Coalition, i: usize, site: String) {
    accept_every_referral_with(c, i, site, SIDE_DOOR);
}

/// Provider `i` accepts every referral `site` gets with `handoff` (empty:
/// the site's default).
pub fn accept_every_referral_with(c: &Coalition, i: usize, site: String, handoff: &str) {
    let handoff = handoff.to_owned();
    let mut client = c.capacity.clone();
    let token = provider_token(i);
    tokio::spawn(async move {
        let watch = cap::WatchReferralsRequest {
            provider_id: site.clone(),
            after_position: 0,
        };
        let mut referrals = client
            .watch_referrals(authed(&token, watch))
            .await
            .unwrap()
            .into_inner();
        while let Some(Ok(referral)) = referrals.next().await {
            if referral.status == cap::ReferralStatus::Pending as i32 {
                let accept = cap::AcceptReferralRequest {
                    idempotency_key: format!("accept-{}", referral.referral_id),
                    provider_id: site.clone(),
                    referral_id: referral.referral_id,
                    handoff: handoff.clone(),
                };
                let _ = client.accept_referral(authed(&token, accept)).await;
            }
        }
    });
}

/// Business `i` donates the sample hotel rooms (near the sample person);
/// their donation id.
pub async fn hotel_rooms(c: &Coalition, i: usize) -> String {
    let rooms = sample::hotel_rooms(business_org(i));
    let register = refer_proto::donations::v1::RegisterDonationRequest {
        idempotency_key: format!("rooms-{i}"),
        donation_id: id_pb(Uuid::new_v4()),
        spec: Some(refer_proto::donations::v1::DonationSpec {
            org_id: String::new(),
            kind: cv::resource_kind_pb(rooms.kind),
            quantity: rooms.quantity,
            window: Some(cv::time_window_pb(&rooms.window)),
            location: Some(cv::location_pb(&rooms.location)),
            max_units_per_need: 0,
            eligibility: Some(cv::eligibility_pb(&rooms.eligibility)),
        }),
    };
    c.donations
        .clone()
        .register_donation(authed(&business_token(i), register))
        .await
        .unwrap()
        .into_inner()
        .donation_id
}

/// A person with the sample profile and constraints, needing `needs`.
pub fn person(case: &str, needs: &[pb::NeedKind]) -> intake::PersonRequest {
    let need = sample::shelter_need(AGENCY, PlacementId::from_u128(1), None);
    intake::PersonRequest {
        case_reference: case.into(),
        profile: Some(cv::profile_pb(&need.spec.profile)),
        constraints: Some(cv::constraints_pb(&need.spec.constraints)),
        urgency: pb::Urgency::Immediate as i32,
        needs: needs.iter().map(|k| *k as i32).collect(),
    }
}

/// Intake requests a placement for `person` under `key` (never made of
/// the case reference: keys travel on the bus).
pub async fn request_person(c: &Coalition, key: &str, person: intake::PersonRequest) -> intake::Placement {
    let request = intake::RequestPlacementRequest {
        idempotency_key: key.into(),
        person: Some(person),
    };
    c.intake
        .clone()
        .request_placement(authed(INTAKE, request))
        .await
        .unwrap()
        .into_inner()
}

pub fn site_spec(services: &[pb::ServiceKind]) -> cap::ProviderSpec {
    let s = sample::shelter(OrgId::from_u128(0));
    cap::ProviderSpec {
        org_id: String::new(),
        name: s.name,
        services: services.iter().map(|k| *k as i32).collect(),
        eligibility: Some(cv::eligibility_pb(&s.eligibility)),
        location: Some(cv::location_pb(&s.location)),
        hours: Some(cv::hours_pb(&s.hours)),
    }
}

/// Provider `i` registers a site offering `services`, `units` of each.
pub async fn site(c: &Coalition, i: usize, services: &[pb::ServiceKind], units: u32) -> String {
    let id = id_pb(Uuid::new_v4());
    let token = provider_token(i);
    let mut client = c.capacity.clone();
    let register = cap::RegisterProviderRequest {
        idempotency_key: format!("reg-{id}"),
        provider_id: id.clone(),
        spec: Some(site_spec(services)),
    };
    client.register_provider(authed(&token, register)).await.unwrap();
    for service in services {
        let set = cap::SetCapacityRequest {
            idempotency_key: format!("cap-{}-{}", &id[..8], *service as i32),
            provider_id: id.clone(),
            service: *service as i32,
            declared: units,
            expected_version: None,
        };
        client.set_capacity(authed(&token, set)).await.unwrap();
    }
    id
}

/// Reads placement `id` through `client` until `done` holds (at most 30 s).
pub async fn placement_until(
    client: &IntakeClient<tonic::transport::Channel>,
    id: &str,
    what: &str,
    done: impl Fn(&intake::Placement) -> bool,
) -> intake::Placement {
    let started = Instant::now();
    loop {
        let get = intake::GetPlacementRequest {
            placement_id: id.to_owned(),
        };
        let p = client
            .clone()
            .get_placement(authed(INTAKE, get))
            .await
            .unwrap()
            .into_inner();
        if done(&p) {
            return p;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "timed out: {what}: {p:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// INVALID_ARGUMENT naming `field`.
pub fn assert_invalid(result: Result<impl std::fmt::Debug, Status>, field: &str) {
    let err = result.expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains(field), "names {field}: {}", err.message());
}

/// Every log line the services write in this test process (a test binary
/// installs it once, before starting anything).
#[derive(Clone, Default)]
pub struct Log(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// Captures every log line at `filter` (an `EnvFilter` directive).
    pub fn capture(filter: &str) -> Self {
        let log = Log::default();
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        log
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

/// Whether `needle` occurs in `haystack`, byte for byte.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The referrals of `site` as provider `i` lists them (one page).
pub async fn referrals(c: &Coalition, i: usize, site: &str, pending_only: bool) -> Vec<cap::Referral> {
    let list = cap::ListReferralsRequest {
        provider_id: site.into(),
        pending_only,
        page_size: 0,
        page_token: String::new(),
    };
    c.capacity
        .clone()
        .list_referrals(authed(&provider_token(i), list))
        .await
        .unwrap()
        .into_inner()
        .referrals
}
