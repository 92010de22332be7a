//! A whole coalition for end-to-end tests: a private nats-server and the four
//! services, each started through the path its `main` takes (`TestApp`:
//! configuration file, token file, metrics listener, port 0, its own data
//! directory), sharing one controllable clock. The tests live in `tests/tests/`.
#![forbid(unsafe_code)]

use refer_domain::ids::OrgId;
use refer_domain::sample::NIGHT;
use refer_eventstore::EventStore;
use refer_proto::capacity::v1 as cap;
use refer_proto::capacity::v1::capacity_client::CapacityClient;
use refer_proto::donations::v1::donations_client::DonationsClient;
use refer_proto::intake::v1::intake_client::IntakeClient;
use refer_service::testing::authed;
use refer_service::testing::{TestApp, TestSetup};
use refer_service::{ManualClock, Role};
use refer_testkit::NatsServer;
use tokio_stream::StreamExt;
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
        let nats = NatsServer::start().await.unwrap();
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
        let setup = TestSetup::new(nats.url(), tokens, NIGHT);
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
            nats,
            setup,
            store,
            apps,
        }
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

/// Provider `i` accepts every referral `site` gets, as it comes (until the
/// test ends).
pub fn accept_every_referral(c: &Coalition, i: usize, site: String) {
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
                    handoff: "Side door; the duty worker meets you, 555-0100".into(),
                };
                let _ = client.accept_referral(authed(&token, accept)).await;
            }
        }
    });
}
