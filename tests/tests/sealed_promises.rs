//! Promises about sealed items, attacked through the published API: a
//! replaced hand-off leaves one live item however many replace it at once;
//! hand-off ids are answered canonically; text from a browser's textarea
//! (CRLF) is accepted; a hand-off given after `ForgetPlacement` never
//! reaches the agency.

use refer_domain::sample;
use refer_proto::capacity::v1 as cap;
use refer_proto::common::v1 as pb;
use refer_proto::donations::v1 as don;
use refer_proto::intake::v1 as intake;
use refer_service::convert::{self as cv, id_pb};
use refer_service::testing::authed;
use refer_tests::*;
use uuid::Uuid;

/// The live items of `kind` in the sealed-key bucket: those whose key is
/// still there (an erased item's key is purged).
async fn live_items(c: &Coalition, kind: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let js = async_nats::jetstream::new(c.nats.connect().await);
    let bucket = js.get_key_value("REFER_SEALED").await.unwrap();
    let keys: Vec<String> = bucket.keys().await.unwrap().try_collect().await.unwrap();
    let mut live = Vec::new();
    for key in keys.into_iter().filter(|k| k.starts_with(&format!("dek.{kind}."))) {
        if bucket.get(&key).await.unwrap().is_some_and(|v| !v.is_empty()) {
            live.push(key);
        }
    }
    live
}

async fn donation(c: &Coalition, i: usize) -> String {
    let rooms = sample::hotel_rooms(business_org(i));
    let register = don::RegisterDonationRequest {
        idempotency_key: format!("rooms-{i}"),
        donation_id: id_pb(Uuid::new_v4()),
        spec: Some(don::DonationSpec {
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

const WRITERS: usize = 6;

#[tokio::test]
async fn concurrent_replacements_of_a_standing_hand_off_leave_exactly_one_live_item() {
    let c = Coalition::start(1, 1).await;
    let shelter = site(&c, 0, &[pb::ServiceKind::ShelterBed], 2).await;
    let rooms = donation(&c, 0).await;
    for round in 0..2 {
        let contacts = (0..WRITERS).map(|w| {
            let mut client = c.intake.clone();
            async move {
                let set = intake::SetHandoffContactRequest {
                    idempotency_key: format!("contact-{round}-{w}"),
                    contact: format!("night desk {round}-{w}"),
                };
                client.set_handoff_contact(authed(INTAKE, set)).await.unwrap();
            }
        });
        let sites = (0..WRITERS).map(|w| {
            let mut client = c.capacity.clone();
            let shelter = shelter.clone();
            async move {
                let set = cap::SetSiteHandoffRequest {
                    idempotency_key: format!("door-{round}-{w}"),
                    provider_id: shelter,
                    instructions: format!("side door {round}-{w}"),
                };
                client.set_site_handoff(authed(&provider_token(0), set)).await.unwrap();
            }
        });
        let donations = (0..WRITERS).map(|w| {
            let mut client = c.donations.clone();
            let rooms = rooms.clone();
            async move {
                let set = don::SetDonationHandoffRequest {
                    idempotency_key: format!("desk-{round}-{w}"),
                    donation_id: rooms,
                    instructions: format!("front desk {round}-{w}"),
                };
                client
                    .set_donation_handoff(authed(&business_token(0), set))
                    .await
                    .unwrap();
            }
        });
        tokio::join!(
            futures::future::join_all(contacts),
            futures::future::join_all(sites),
            futures::future::join_all(donations),
        );
        // One contact, one site default, one donation hand-off: three texts
        // are current, so three keys may live, and no more.
        let live = live_items(&c, "standing").await;
        assert_eq!(
            live.len(),
            3,
            "round {round}: {WRITERS} concurrent replacements of each of 3 hand-offs left {} live items",
            live.len()
        );
    }
    // The one left is the one shown.
    let contact = c
        .intake
        .clone()
        .get_handoff_contact(authed(INTAKE, intake::GetHandoffContactRequest {}))
        .await
        .unwrap()
        .into_inner()
        .contact;
    assert!(contact.starts_with("night desk 1-"), "{contact}");
}
