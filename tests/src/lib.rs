//! A whole coalition for end-to-end tests: a private nats-server and the four
//! services, each with its own sled directory, served over real gRPC on free
//! ports, sharing one controllable clock. The tests live in `tests/tests/`.
#![forbid(unsafe_code)]

use refer_domain::ids::OrgId;
use refer_domain::sample::NIGHT;
use refer_eventstore::{EventStore, StreamSettings};
use refer_proto::capacity::v1::capacity_client::CapacityClient;
use refer_proto::donations::v1::donations_client::DonationsClient;
use refer_proto::intake::v1::intake_client::IntakeClient;
use refer_service::testing::Served;
use refer_service::{ManualClock, Role, TokenBook};
use refer_testkit::NatsServer;
use std::sync::Arc;
use std::time::Duration;
use tonic::service::Routes;
use tonic::transport::Channel;

pub const ADMIN: &str = "admin-token";
pub const INTAKE: &str = "intake-token";
pub const AGENCY: OrgId = OrgId::from_u128(0xA6E0);

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
    pub nats: NatsServer,
    pub dir: tempfile::TempDir,
    /// A reader's view of the stream (for assertions only).
    pub store: EventStore,
    pub clock: ManualClock,
    pub capacity: CapacityClient<Channel>,
    pub donations: DonationsClient<Channel>,
    pub intake: IntakeClient<Channel>,
    served: Vec<Served>,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Coalition {
    pub async fn start(providers: usize, businesses: usize) -> Self {
        let nats = NatsServer::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &'static str| {
            let path = dir.path().join(name);
            let nats = &nats;
            async move {
                let db = sled::open(path).unwrap();
                EventStore::open(nats.connect().await, StreamSettings::default(), db)
                    .await
                    .unwrap()
            }
        };
        let provider_tokens: Vec<String> = (0..providers).map(provider_token).collect();
        let business_tokens: Vec<String> = (0..businesses).map(business_token).collect();
        let mut tokens = vec![
            (ADMIN, Role::Admin, OrgId::from_u128(0xAD), "admin"),
            (INTAKE, Role::Intake, AGENCY, "intake"),
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
        let tokens = TokenBook::from_tokens(tokens);
        let clock = ManualClock::new(NIGHT);
        let shared: refer_service::SharedClock = Arc::new(clock.clone());
        let (stop, stopped) = tokio::sync::watch::channel(false);

        let (capacity, _) =
            refer_capacity::start(open("capacity").await, tokens.clone(), shared.clone(), stopped.clone())
                .await
                .unwrap();
        let (donations, _) =
            refer_donations::start(open("donations").await, tokens.clone(), shared.clone(), stopped.clone())
                .await
                .unwrap();
        let (intake, _) = refer_intake::start(open("intake").await, tokens.clone(), shared.clone(), stopped.clone())
            .await
            .unwrap();
        let (matcher, _) = refer_matcher::start(
            open("matcher").await,
            tokens.clone(),
            shared.clone(),
            stopped.clone(),
            Duration::from_millis(50),
        )
        .await
        .unwrap();
        let served = vec![
            Served::start(refer_capacity::SERVICE_NAME, Routes::new(capacity)).await,
            Served::start(refer_donations::SERVICE_NAME, Routes::new(donations)).await,
            Served::start(refer_intake::SERVICE_NAME, Routes::new(intake)).await,
            Served::start(refer_matcher::SERVICE_NAME, Routes::new(matcher)).await,
        ];
        let store = open("reader").await;
        Self {
            capacity: CapacityClient::new(served[0].channel()),
            donations: DonationsClient::new(served[1].channel()),
            intake: IntakeClient::new(served[2].channel()),
            nats,
            dir,
            store,
            clock,
            served,
            _stop: stop,
        }
    }

    /// A channel to the service at `index` (capacity, donations, intake, matcher).
    pub fn channel(&self, index: usize) -> Channel {
        self.served[index].channel()
    }

    /// `http://` addresses of capacity, donations, intake and matcher.
    pub fn urls(&self) -> [String; 4] {
        [0, 1, 2, 3].map(|i| format!("http://{}", self.served[i].addr))
    }
}
