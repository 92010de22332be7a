//! The donations service through its gRPC API, against a real nats-server.

use refer_domain::donation::{Donation, DonationCommand};
use refer_domain::ids::{CorrelationId, HoldId, NeedId, OrgId};
use refer_domain::sample::{self, NIGHT};
use refer_domain::{CommandMeta, IdempotencyKey};
use refer_proto::common::v1 as common;
use refer_proto::donations::v1 as pb;
use refer_proto::donations::v1::donations_client::DonationsClient;
use refer_service::convert as cv;
use refer_service::testing::{authed, refused, Solo};
use refer_service::Role;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;
use uuid::Uuid;

const HOTEL: &str = "token-seaside-hotel";
const RENTALS: &str = "token-car-rentals";
const SHELTER: &str = "token-shelter";
const ADMIN: &str = "token-admin";
const HOTEL_ORG: OrgId = OrgId::from_u128(0x1);
const RENTALS_ORG: OrgId = OrgId::from_u128(0x2);

type World = Solo<DonationsClient<Channel>>;

async fn world() -> World {
    Solo::start(
        refer_donations::SERVICE,
        [
            (HOTEL, Role::Business, HOTEL_ORG, "hotel"),
            (RENTALS, Role::Business, RENTALS_ORG, "rentals"),
            (SHELTER, Role::Provider, OrgId::from_u128(0x3), "shelter"),
            (ADMIN, Role::Admin, OrgId::from_u128(0x4), "admin"),
        ],
        DonationsClient::new,
    )
    .await
}

fn rooms() -> pb::DonationSpec {
    let o = sample::hotel_rooms(HOTEL_ORG);
    pb::DonationSpec {
        org_id: String::new(),
        kind: cv::resource_kind_pb(o.kind),
        quantity: o.quantity,
        window: Some(cv::time_window_pb(&o.window)),
        location: Some(cv::location_pb(&o.location)),
        max_units_per_need: 3,
        eligibility: Some(cv::eligibility_pb(&o.eligibility)),
    }
}

async fn donate(w: &mut World, token: &str, spec: pb::DonationSpec) -> Result<pb::Donation, tonic::Status> {
    let id = Uuid::new_v4().to_string();
    let request = pb::RegisterDonationRequest {
        idempotency_key: format!("don-{}", &id[..8]),
        donation_id: id,
        spec: Some(spec),
    };
    w.client
        .register_donation(authed(token, request))
        .await
        .map(|r| r.into_inner())
}

/// What the matcher and a provider's acceptance do to a donation: hold units, then use them.
async fn use_units(w: &World, donation: &str, units: u32) {
    let id: Uuid = donation.parse().unwrap();
    let hold = HoldId::from_uuid(Uuid::new_v4());
    let meta = |key: String| CommandMeta {
        occurred_at: NIGHT.plus_secs(60),
        correlation_id: CorrelationId::from_u128(9),
        causation_id: None,
        idempotency_key: Some(IdempotencyKey::new(key).unwrap()),
    };
    let place = DonationCommand::PlaceHold {
        hold,
        need: NeedId::from_uuid(Uuid::new_v4()),
        units,
        expires_at: NIGHT.plus_secs(900),
    };
    w.store
        .execute::<Donation>(id, &place, &meta(format!("h-{hold}")), None)
        .await
        .unwrap();
    w.store
        .execute::<Donation>(
            id,
            &DonationCommand::ConfirmHold { hold },
            &meta(format!("c-{hold}")),
            None,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_business_donates_sees_use_without_identity_and_withdraws() {
    let mut w = world().await;
    let d = donate(&mut w, HOTEL, rooms()).await.unwrap();
    assert_eq!((d.free, d.used, d.withdrawn), (10, 0, false));
    assert_eq!(d.spec.as_ref().unwrap().org_id, cv::id_pb(HOTEL_ORG.as_uuid()));

    let mut watch = w
        .client
        .watch_donations(authed(
            HOTEL,
            // The deprecated name still works for old clients.
            #[allow(deprecated)]
            pb::WatchDonationsRequest {
                after_version: d.version,
                after_position: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    use_units(&w, &d.donation_id, 2).await;
    let changed = loop {
        let next = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("a change")
            .unwrap()
            .unwrap();
        if next.used == 2 && !next.usage.is_empty() {
            break next;
        }
    };
    assert_eq!(
        changed.usage,
        vec![pb::Usage {
            at_ms: NIGHT.plus_secs(60).millis(),
            units: 2
        }]
    );
    assert_eq!(changed.free, 8);
    let got = w
        .client
        .get_donation(authed(
            HOTEL,
            pb::GetDonationRequest {
                donation_id: d.donation_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.usage, changed.usage,
        "when and how many; the message has no field for who"
    );

    let withdraw = pb::WithdrawDonationRequest {
        idempotency_key: "w1".into(),
        donation_id: d.donation_id.clone(),
    };
    let gone = w
        .client
        .withdraw_donation(authed(HOTEL, withdraw.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(gone.withdrawn);
    assert_eq!(gone.free, 0);
    let again = w
        .client
        .withdraw_donation(authed(HOTEL, withdraw))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.version, gone.version, "a retried withdrawal changes nothing");
}

#[tokio::test]
async fn bad_donations_name_the_field() {
    let mut w = world().await;
    let mut spec = rooms();
    spec.window = Some(common::TimeWindow {
        start_ms: NIGHT.millis(),
        end_ms: NIGHT.millis() - 1,
    });
    let err = donate(&mut w, HOTEL, spec).await.unwrap_err();
    assert!(
        err.code() == Code::InvalidArgument && err.message().contains("spec.window"),
        "{err:?}"
    );
    let mut spec = rooms();
    spec.kind = 0;
    assert!(donate(&mut w, HOTEL, spec)
        .await
        .unwrap_err()
        .message()
        .contains("spec.kind"));
    let mut spec = rooms();
    spec.quantity = 0;
    assert!(donate(&mut w, HOTEL, spec)
        .await
        .unwrap_err()
        .message()
        .contains("spec.quantity"));
    let mut spec = rooms();
    spec.location.as_mut().unwrap().region = "nowhere".into();
    assert!(donate(&mut w, HOTEL, spec)
        .await
        .unwrap_err()
        .message()
        .contains("spec.location.region"));
}

#[tokio::test]
async fn a_business_sees_and_changes_only_its_own_donations() {
    let mut w = world().await;
    let d = donate(&mut w, HOTEL, rooms()).await.unwrap();
    let get = pb::GetDonationRequest {
        donation_id: d.donation_id.clone(),
    };
    assert_eq!(
        refused(w.client.get_donation(tonic::Request::new(get.clone())).await),
        Code::Unauthenticated
    );
    assert_eq!(
        refused(w.client.get_donation(authed("bogus", get.clone())).await),
        Code::Unauthenticated
    );
    assert_eq!(
        refused(w.client.get_donation(authed(SHELTER, get.clone())).await),
        Code::PermissionDenied
    );
    assert_eq!(
        refused(w.client.get_donation(authed(RENTALS, get.clone())).await),
        Code::NotFound
    );
    let withdraw = pb::WithdrawDonationRequest {
        idempotency_key: "steal".into(),
        donation_id: d.donation_id.clone(),
    };
    assert_eq!(
        refused(w.client.withdraw_donation(authed(RENTALS, withdraw)).await),
        Code::NotFound
    );
    assert_eq!(
        refused(
            w.client
                .get_donation(authed(
                    HOTEL,
                    pb::GetDonationRequest {
                        donation_id: Uuid::new_v4().to_string()
                    }
                ))
                .await
        ),
        Code::NotFound
    );

    // An admin registers for a named business; listing shows each business its own.
    let mut car = rooms();
    car.kind = common::ResourceKind::RentalCar as i32;
    car.org_id = cv::id_pb(RENTALS_ORG.as_uuid());
    let c = donate(&mut w, ADMIN, car).await.unwrap();
    let mut listed = Vec::new();
    for _ in 0..200 {
        listed = w
            .client
            .list_donations(authed(RENTALS, pb::ListDonationsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .donations;
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        listed.iter().map(|d| d.donation_id.clone()).collect::<Vec<_>>(),
        vec![c.donation_id]
    );
    let all = w
        .client
        .list_donations(authed(
            ADMIN,
            pb::ListDonationsRequest {
                page_size: 1,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.donations.len(), 1);
    assert!(!all.next_page_token.is_empty(), "a second page exists");
}
