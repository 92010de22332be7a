//! Promises about sealed items, attacked through the published API: a
//! replaced hand-off leaves one live item however many replace it at once;
//! hand-off ids are answered canonically; text from a browser's textarea
//! (CRLF) is accepted; a hand-off given after `ForgetPlacement` never
//! reaches the agency; a retried placement request leaves no stray key.

use refer_domain::sample;
use refer_proto::capacity::v1 as cap;
use refer_proto::common::v1 as pb;
use refer_proto::donations::v1 as don;
use refer_proto::intake::v1 as intake;
use refer_service::convert::id_pb;
use refer_service::testing::authed;
use refer_tests::*;
use uuid::Uuid;

/// The live items of `kind` in the sealed-key buckets (every sealing
/// service's): those whose key is still there (an erased item's key is
/// deleted).
async fn live_items(c: &Coalition, kind: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let js = async_nats::jetstream::new(c.nats.connect().await);
    let mut live = Vec::new();
    for (sealer, _) in refer_service::provision::SEALERS {
        let bucket = js
            .get_key_value(refer_sealed::bucket_for("REFER", sealer))
            .await
            .unwrap();
        let keys: Vec<String> = bucket.keys().await.unwrap().try_collect().await.unwrap();
        for key in keys.into_iter().filter(|k| k.starts_with(&format!("dek.{kind}."))) {
            if bucket.get(&key).await.unwrap().is_some_and(|v| !v.is_empty()) {
                live.push(key);
            }
        }
    }
    live
}

const WRITERS: usize = 6;

#[tokio::test]
async fn concurrent_replacements_of_a_standing_hand_off_leave_exactly_one_live_item() {
    let c = Coalition::start(1, 1).await;
    let shelter = site(&c, 0, &[pb::ServiceKind::ShelterBed], 2).await;
    let rooms = hotel_rooms(&c, 0).await;
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

#[tokio::test]
async fn a_retried_replacement_erases_what_its_first_attempt_replaced() {
    use refer_domain::standing::{Owner, Standing, StandingCommand};
    let c = Coalition::start(0, 0).await;
    let set = |key: &str, contact: &str| intake::SetHandoffContactRequest {
        idempotency_key: key.into(),
        contact: contact.into(),
    };
    c.intake
        .clone()
        .set_handoff_contact(authed(INTAKE, set("first", "night desk 1")))
        .await
        .unwrap();
    // A replacement committed under key "second" whose service stopped
    // before erasing what it replaced (written here as intake would).
    let js = async_nats::jetstream::new(c.nats.connect().await);
    let kek = refer_sealed::Kek::load(&c.setup.kek_file()).unwrap();
    let vault = refer_sealed::Vault::open(&js, "REFER_DATA_KEYS_INTAKE", kek, vec![])
        .await
        .unwrap();
    let purpose = refer_service::sealing::purpose::agency_contact(AGENCY);
    let sealed = vault.seal_text("standing", "night desk 2", &purpose).await.unwrap();
    let meta = refer_domain::CommandMeta {
        occurred_at: sample::NIGHT,
        correlation_id: refer_domain::ids::CorrelationId::from_uuid(Uuid::new_v4()),
        causation_id: None,
        idempotency_key: Some(refer_domain::IdempotencyKey::new("second").unwrap()),
    };
    let command = StandingCommand::Set {
        owner: Owner::Agency(AGENCY),
        text: sealed,
    };
    c.store
        .execute::<Standing>(Owner::Agency(AGENCY).id(), &command, &meta, None)
        .await
        .unwrap();
    assert_eq!(
        live_items(&c, "standing").await.len(),
        2,
        "the crash left the replaced key"
    );
    // The client retries.
    c.intake
        .clone()
        .set_handoff_contact(authed(INTAKE, set("second", "night desk 2")))
        .await
        .unwrap();
    assert_eq!(live_items(&c, "standing").await.len(), 1);
    let shown = c
        .intake
        .clone()
        .get_handoff_contact(authed(INTAKE, intake::GetHandoffContactRequest {}))
        .await
        .unwrap()
        .into_inner()
        .contact;
    assert_eq!(shown, "night desk 2");
}

const CASE: &str = "PLANT7-CASE-ortiz";
const CONTACT: &str = "PLANT7-CONTACT night desk 555-0199";
const DOOR: &str = "PLANT7-DOOR clinic side entrance";
const HANDOFF: &str = "PLANT7-HANDOFF room 4, Dr Lee";
const NOTE: &str = "PLANT7-NOTE ask for Rosa";
const DESK: &str = "PLANT7-DESK front desk, code 4411";
const ADMIN_DOOR: &str = "PLANT7-ADMIN-DOOR set by the coalition";
const ADMIN_DESK: &str = "PLANT7-ADMIN-DESK set by the coalition";
const PLANTED: [&str; 8] = [CASE, CONTACT, DOOR, HANDOFF, NOTE, DESK, ADMIN_DOOR, ADMIN_DESK];

/// A person needing a bed (a donated hotel room is the only one) and
/// medical care (the clinic of provider 0, which accepts with [`HANDOFF`]),
/// with a consented [`NOTE`], once both are handed off; and the clinic.
struct Flow {
    placement: intake::Placement,
    clinic: String,
    rooms: String,
}

async fn full_flow(c: &Coalition) -> Flow {
    let set = intake::SetHandoffContactRequest {
        idempotency_key: "contact".into(),
        contact: CONTACT.into(),
    };
    c.intake.clone().set_handoff_contact(authed(INTAKE, set)).await.unwrap();
    let clinic = site(c, 0, &[pb::ServiceKind::Medical], 2).await;
    let set = cap::SetSiteHandoffRequest {
        idempotency_key: "door".into(),
        provider_id: clinic.clone(),
        instructions: DOOR.into(),
    };
    c.capacity
        .clone()
        .set_site_handoff(authed(&provider_token(0), set))
        .await
        .unwrap();
    let rooms = hotel_rooms(c, 0).await;
    let set = don::SetDonationHandoffRequest {
        idempotency_key: "desk".into(),
        donation_id: rooms.clone(),
        instructions: DESK.into(),
    };
    c.donations
        .clone()
        .set_donation_handoff(authed(&business_token(0), set))
        .await
        .unwrap();
    let request = intake::RequestPlacementRequest {
        idempotency_key: "person-1".into(),
        person: Some(person(CASE, &[pb::NeedKind::Shelter, pb::NeedKind::Medical])),
    };
    let placement = c
        .intake
        .clone()
        .request_placement(authed(INTAKE, request))
        .await
        .unwrap()
        .into_inner();
    let medical = placement
        .needs
        .iter()
        .find(|n| n.kind == pb::NeedKind::Medical as i32)
        .unwrap()
        .need_id
        .clone();
    let share = intake::ShareNoteRequest {
        idempotency_key: "note".into(),
        placement_id: placement.placement_id.clone(),
        need_id: medical,
        note: NOTE.into(),
        consent: Some(intake::Consent {
            shares: "first name to ask for at the door".into(),
            until_ms: sample::NIGHT.plus_secs(24 * 3600).millis(),
            given_at_ms: 0,
        }),
    };
    c.intake.clone().share_note(authed(INTAKE, share)).await.unwrap();
    accept_every_referral_with(c, 0, clinic.clone(), HANDOFF);
    let placement = placement_until(&c.intake, &placement.placement_id, "both needs handed off", |p| {
        p.needs
            .iter()
            .all(|n| n.handoff.as_ref().is_some_and(|h| !h.instructions.is_empty()))
    })
    .await;
    let texts: Vec<&str> = placement
        .needs
        .iter()
        .map(|n| n.handoff.as_ref().unwrap().instructions.as_str())
        .collect();
    assert!(texts.contains(&DESK) && texts.contains(&HANDOFF), "{texts:?}");
    assert_eq!(
        (placement.case_reference.as_str(), placement.notes[0].text.as_str()),
        (CASE, NOTE)
    );
    // The clinic sees the agency's side.
    let seen = referrals(c, 0, &clinic, false).await;
    let shared = seen[0].handoff.as_ref().expect("accepted: the agency's side");
    assert_eq!(
        (
            shared.agency_contact.as_str(),
            shared.note.as_str(),
            shared.instructions.as_str()
        ),
        (CONTACT, NOTE, HANDOFF)
    );
    Flow {
        placement,
        clinic,
        rooms,
    }
}

fn assert_nothing_sealed(rpc: &str, answer: &impl std::fmt::Debug) {
    let text = format!("{answer:?}");
    for planted in PLANTED {
        assert!(!text.contains(planted), "the admin's {rpc} shows {planted:?}: {text}");
    }
}

fn list_reads() -> pb::ListSealedReadsRequest {
    pb::ListSealedReadsRequest {
        page_size: 500,
        page_token: String::new(),
    }
}

#[tokio::test]
async fn an_admin_is_shown_no_hand_off_contact_or_note_by_any_rpc() {
    use refer_proto::matcher::v1 as matcher;
    use tokio_stream::StreamExt;
    let c = Coalition::start(1, 1).await;
    let flow = full_flow(&c).await;
    let (mut capacity, mut donations, mut intake_client) = (c.capacity.clone(), c.donations.clone(), c.intake.clone());

    // Capacity: every read and every answer of the admin.
    let list = cap::ListReferralsRequest {
        provider_id: flow.clinic.clone(),
        pending_only: false,
        page_size: 0,
        page_token: String::new(),
    };
    let listed = capacity.list_referrals(authed(ADMIN, list)).await.unwrap().into_inner();
    assert_eq!(listed.referrals.len(), 1, "the admin sees the referral");
    assert_eq!(listed.referrals[0].status, cap::ReferralStatus::Accepted as i32);
    assert_nothing_sealed("ListReferrals", &listed);
    let referral = listed.referrals[0].referral_id.clone();
    let get = cap::GetReferralRequest {
        provider_id: flow.clinic.clone(),
        referral_id: referral.clone(),
    };
    assert_nothing_sealed("GetReferral", &capacity.get_referral(authed(ADMIN, get)).await.unwrap());
    // An answer again (the same key as the provider's: a retry, refused or answered).
    let accept = cap::AcceptReferralRequest {
        idempotency_key: format!("admin-accept-{referral}"),
        provider_id: flow.clinic.clone(),
        referral_id: referral.clone(),
        handoff: String::new(),
    };
    assert_nothing_sealed("AcceptReferral", &capacity.accept_referral(authed(ADMIN, accept)).await);
    let watch = cap::WatchReferralsRequest {
        provider_id: flow.clinic.clone(),
        after_position: 0,
    };
    let mut watched = capacity
        .watch_referrals(authed(ADMIN, watch))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), watched.next()).await;
    assert_nothing_sealed("WatchReferrals", &first);
    let get = cap::GetProviderRequest {
        provider_id: flow.clinic.clone(),
    };
    assert_nothing_sealed("GetProvider", &capacity.get_provider(authed(ADMIN, get)).await);
    let list = cap::ListProvidersRequest::default();
    assert_nothing_sealed("ListProviders", &capacity.list_providers(authed(ADMIN, list)).await);
    let set = cap::SetSiteHandoffRequest {
        idempotency_key: "admin-door".into(),
        provider_id: flow.clinic.clone(),
        instructions: ADMIN_DOOR.into(),
    };
    assert_nothing_sealed(
        "SetSiteHandoff",
        &capacity.set_site_handoff(authed(ADMIN, set)).await.unwrap(),
    );
    assert_nothing_sealed(
        "ListSealedReads",
        &capacity.list_sealed_reads(authed(ADMIN, list_reads())).await,
    );

    // Donations.
    let get = don::GetDonationRequest {
        donation_id: flow.rooms.clone(),
    };
    assert_nothing_sealed("GetDonation", &donations.get_donation(authed(ADMIN, get)).await);
    let list = don::ListDonationsRequest::default();
    assert_nothing_sealed("ListDonations", &donations.list_donations(authed(ADMIN, list)).await);
    let set = don::SetDonationHandoffRequest {
        idempotency_key: "admin-desk".into(),
        donation_id: flow.rooms.clone(),
        instructions: ADMIN_DESK.into(),
    };
    assert_nothing_sealed(
        "SetDonationHandoff",
        &donations.set_donation_handoff(authed(ADMIN, set)).await.unwrap(),
    );
    assert_nothing_sealed(
        "ListSealedReads",
        &donations.list_sealed_reads(authed(ADMIN, list_reads())).await,
    );

    // Matcher.
    let mut status = refer_proto::matcher::v1::matcher_client::MatcherClient::new(c.channel(3));
    assert_nothing_sealed(
        "GetStatus",
        &status.get_status(authed(ADMIN, matcher::GetStatusRequest {})).await,
    );

    // Intake: the admin may only forget; the answer shows statuses and erasures.
    let get = intake::GetPlacementRequest {
        placement_id: flow.placement.placement_id.clone(),
    };
    assert_eq!(
        intake_client
            .get_placement(authed(ADMIN, get))
            .await
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );
    assert_nothing_sealed(
        "ListSealedReads",
        &intake_client.list_sealed_reads(authed(ADMIN, list_reads())).await,
    );
    let forget = intake::ForgetPlacementRequest {
        idempotency_key: "admin-forget".into(),
        placement_id: flow.placement.placement_id.clone(),
    };
    let forgotten = intake_client
        .forget_placement(authed(ADMIN, forget))
        .await
        .unwrap()
        .into_inner();
    assert_nothing_sealed("ForgetPlacement", &forgotten);
    assert!(forgotten.case_reference_erased);
    assert!(forgotten
        .needs
        .iter()
        .all(|n| n.status == intake::NeedStatus::Accepted as i32));
}

async fn reads_of(c: &Coalition, token: &str, service: usize) -> Vec<pb::SealedRead> {
    use refer_proto::capacity::v1::capacity_client::CapacityClient;
    use refer_proto::donations::v1::donations_client::DonationsClient;
    use refer_proto::intake::v1::intake_client::IntakeClient;
    let mut all = Vec::new();
    let mut token_page = String::new();
    loop {
        let request = pb::ListSealedReadsRequest {
            page_size: 3,
            page_token: token_page.clone(),
        };
        let page = match service {
            0 => {
                CapacityClient::new(c.channel(0))
                    .list_sealed_reads(authed(token, request))
                    .await
            }
            1 => {
                DonationsClient::new(c.channel(1))
                    .list_sealed_reads(authed(token, request))
                    .await
            }
            _ => {
                IntakeClient::new(c.channel(2))
                    .list_sealed_reads(authed(token, request))
                    .await
            }
        }
        .unwrap()
        .into_inner();
        assert!(page.reads.len() <= 3);
        all.extend(page.reads);
        if page.next_page_token.is_empty() {
            return all;
        }
        token_page = page.next_page_token;
    }
}

fn has(
    reads: &[pb::SealedRead],
    kind: &str,
    reader: refer_domain::ids::OrgId,
    owner: refer_domain::ids::OrgId,
) -> bool {
    reads.iter().any(|r| {
        r.kind == kind && r.reader_org_id == id_pb(reader.as_uuid()) && r.owner_org_id == id_pb(owner.as_uuid())
    })
}

#[tokio::test]
async fn every_read_of_a_sealed_item_is_on_record_for_its_parties_and_the_admin_never_its_content() {
    let c = Coalition::start(1, 1).await;
    let flow = full_flow(&c).await;
    let (agency, provider, business) = (AGENCY, provider_org(0), business_org(0));
    let get = intake::GetHandoffContactRequest {};
    c.intake.clone().get_handoff_contact(authed(INTAKE, get)).await.unwrap();

    // The agency: its own reads, and the clinic's reads of its contact and note.
    let theirs = reads_of(&c, INTAKE, 2).await;
    for kind in ["case_reference", "note", "agency_contact"] {
        assert!(
            has(&theirs, kind, agency, agency),
            "the agency read its {kind}: {theirs:?}"
        );
    }
    assert!(
        has(&theirs, "handoff", agency, provider),
        "the agency read the clinic's hand-off"
    );
    assert!(has(&theirs, "donation_handoff", agency, business), "and the hotel's");
    assert!(
        has(&theirs, "agency_contact", provider, agency),
        "the clinic read the agency's contact"
    );
    assert!(has(&theirs, "note", provider, agency), "and its note");
    assert!(
        theirs.iter().all(|r| r.at_ms == sample::NIGHT.millis()),
        "when: the service's clock"
    );
    assert!(theirs
        .iter()
        .all(|r| r.reader_role == "intake" || r.reader_role == "provider"));
    let case = theirs.iter().find(|r| r.kind == "case_reference").unwrap();
    assert_eq!(
        case.of_id, flow.placement.placement_id,
        "which item: the placement's case reference"
    );
    assert!(case.item.starts_with("case."), "{}", case.item);

    // The clinic: its reads, and the agency's reads of its hand-off; not the case reference.
    let clinic = reads_of(&c, &provider_token(0), 0).await;
    assert!(has(&clinic, "agency_contact", provider, agency));
    assert!(has(&clinic, "handoff", agency, provider));
    assert!(!clinic
        .iter()
        .any(|r| r.kind == "case_reference" || r.kind == "donation_handoff"));
    // The hotel: when its hand-off was read, never by which agency (it
    // never learns who used its donation), and nothing else.
    let hotel = reads_of(&c, &business_token(0), 1).await;
    assert!(hotel.iter().all(|r| r.reader_org_id.is_empty()), "{hotel:?}");
    assert!(!format!("{hotel:?}").contains(&id_pb(agency.as_uuid())));
    assert!(
        !hotel.is_empty()
            && hotel
                .iter()
                .all(|r| r.kind == "donation_handoff" && r.owner_org_id == id_pb(business.as_uuid()))
    );
    // Another agency: nothing. Each service serves its own roles only.
    assert!(reads_of(&c, OTHER_INTAKE, 2).await.is_empty());
    use refer_proto::capacity::v1::capacity_client::CapacityClient;
    use refer_proto::intake::v1::intake_client::IntakeClient;
    let refused = IntakeClient::new(c.channel(2))
        .list_sealed_reads(authed(&provider_token(0), list_reads()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let refused = CapacityClient::new(c.channel(0))
        .list_sealed_reads(authed(INTAKE, list_reads()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let bad = pb::ListSealedReadsRequest {
        page_size: 0,
        page_token: "not-a-token".into(),
    };
    assert_invalid(
        IntakeClient::new(c.channel(2))
            .list_sealed_reads(authed(INTAKE, bad))
            .await,
        "page_token",
    );
    // The admin: every read, once, from any of the three services; no content anywhere.
    let admin = reads_of(&c, ADMIN, 2).await;
    assert_eq!(admin, reads_of(&c, ADMIN, 0).await);
    for (reader, owner, kind) in [
        (agency, agency, "case_reference"),
        (agency, provider, "handoff"),
        (agency, business, "donation_handoff"),
        (provider, agency, "agency_contact"),
        (provider, agency, "note"),
        (provider, provider, "handoff"),
    ] {
        assert!(has(&admin, kind, reader, owner), "admin sees {kind} read: {admin:?}");
    }
    let mut keys: Vec<_> = admin.iter().map(|r| (r.position, r.item.clone())).collect();
    keys.dedup();
    assert_eq!(keys.len(), admin.len(), "each read once");
    for list in [&theirs, &clinic, &hotel, &admin] {
        assert_nothing_sealed("read log", list);
    }

    // Cheap on the list paths: a page of referrals that opens the contact,
    // the note and the hand-off adds one record per organisation concerned
    // (the clinic's own, and the agency's), not one per item.
    let js = async_nats::jetstream::new(c.nats.connect().await);
    let messages = || {
        let js = js.clone();
        async move {
            js.get_stream("REFER_READS")
                .await
                .unwrap()
                .info()
                .await
                .unwrap()
                .state
                .messages
        }
    };
    let before = messages().await;
    let seen = referrals(&c, 0, &flow.clinic, false).await;
    assert_eq!(seen[0].handoff.as_ref().unwrap().note, NOTE);
    assert_eq!(messages().await - before, 2, "3 items read, 2 records written");
}

#[tokio::test]
async fn hand_off_ids_are_answered_canonically_and_textareas_line_breaks_are_accepted() {
    let c = Coalition::start(1, 1).await;
    let shelter = site(&c, 0, &[pb::ServiceKind::ShelterBed], 1).await;
    let rooms = hotel_rooms(&c, 0).await;
    let shouted = |id: &str| Uuid::parse_str(id).unwrap().hyphenated().to_string().to_uppercase();
    let set = cap::SetSiteHandoffRequest {
        idempotency_key: "door".into(),
        provider_id: shouted(&shelter),
        instructions: "Side door.\r\nRing twice; the duty worker meets you.\r\n".into(),
    };
    let answer = c
        .capacity
        .clone()
        .set_site_handoff(authed(&provider_token(0), set))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.provider_id, shelter, "32 lower-case hex digits");
    assert_eq!(
        answer.instructions,
        "Side door.\nRing twice; the duty worker meets you."
    );
    let set = don::SetDonationHandoffRequest {
        idempotency_key: "desk".into(),
        donation_id: shouted(&rooms),
        instructions: "Front desk\r\nask for the manager".into(),
    };
    let answer = c
        .donations
        .clone()
        .set_donation_handoff(authed(&business_token(0), set))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.donation_id, rooms);
    assert_eq!(answer.instructions, "Front desk\nask for the manager");
    let set = |key: &str, contact: &str| intake::SetHandoffContactRequest {
        idempotency_key: key.into(),
        contact: contact.into(),
    };
    c.intake
        .clone()
        .set_handoff_contact(authed(INTAKE, set("c1", "Night desk\r\n555-0142")))
        .await
        .unwrap();
    let shown = c
        .intake
        .clone()
        .get_handoff_contact(authed(INTAKE, intake::GetHandoffContactRequest {}))
        .await
        .unwrap()
        .into_inner()
        .contact;
    assert_eq!(shown, "Night desk\n555-0142");
    // Any other control character is still refused, a lone CR too.
    for (key, bad) in [
        ("c2", "Night desk\r555-0142"),
        ("c3", "Night\u{7} desk"),
        ("c4", "a\r\n\u{1b}b"),
    ] {
        assert_invalid(
            c.intake
                .clone()
                .set_handoff_contact(authed(INTAKE, set(key, bad)))
                .await,
            "contact",
        );
    }
}

/// A forgotten placement whose need a provider accepts afterwards, with
/// [`LATE`] as its hand-off; the referral's id.
async fn accepted_after_forget(c: &Coalition) -> (intake::Placement, String, String) {
    let shelter = site(c, 0, &[pb::ServiceKind::ShelterBed], 1).await;
    let request = intake::RequestPlacementRequest {
        idempotency_key: "person-late".into(),
        person: Some(person("PLANT7-CASE-late", &[pb::NeedKind::Shelter])),
    };
    let placement = c
        .intake
        .clone()
        .request_placement(authed(INTAKE, request))
        .await
        .unwrap()
        .into_inner();
    let referral = loop {
        if let Some(r) = referrals(c, 0, &shelter, true).await.pop() {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let forget = intake::ForgetPlacementRequest {
        idempotency_key: "forget".into(),
        placement_id: placement.placement_id.clone(),
    };
    c.intake.clone().forget_placement(authed(INTAKE, forget)).await.unwrap();
    let accept = cap::AcceptReferralRequest {
        idempotency_key: "accept".into(),
        provider_id: shelter.clone(),
        referral_id: referral.referral_id.clone(),
        handoff: LATE.into(),
    };
    c.capacity
        .clone()
        .accept_referral(authed(&provider_token(0), accept))
        .await
        .unwrap();
    (placement, shelter, referral.referral_id)
}

const LATE: &str = "PLANT7-LATE back gate, Ana meets you";

/// The agency's placement once its need shows a hand-off; never [`LATE`].
async fn late_handoff_as_the_agency_sees_it(c: &Coalition, placement: &str) -> intake::Placement {
    let started = std::time::Instant::now();
    loop {
        let get = intake::GetPlacementRequest {
            placement_id: placement.to_owned(),
        };
        let p = c
            .intake
            .clone()
            .get_placement(authed(INTAKE, get))
            .await
            .unwrap()
            .into_inner();
        assert!(
            !format!("{p:?}").contains(LATE),
            "the agency is shown the late hand-off: {p:?}"
        );
        if p.needs[0].handoff.is_some() {
            let list = intake::ListPlacementsRequest::default();
            let listed = c.intake.clone().list_placements(authed(INTAKE, list)).await.unwrap();
            assert!(!format!("{listed:?}").contains(LATE));
            return p;
        }
        assert!(started.elapsed().as_secs() < 10, "never accepted: {p:?}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_hand_off_given_after_forget_placement_is_never_shown_to_the_agency() {
    // No erasure sweep during the test: the views alone keep it hidden.
    let c = Coalition::start_ticking(1, 0, 60_000).await;
    let (placement, _, _) = accepted_after_forget(&c).await;
    let seen = late_handoff_as_the_agency_sees_it(&c, &placement.placement_id).await;
    let handoff = seen.needs[0].handoff.as_ref().unwrap();
    assert!(handoff.given && handoff.erased, "{handoff:?}");
}

#[tokio::test]
async fn a_hand_off_given_after_forget_placement_is_erased_for_good() {
    let c = Coalition::start(1, 0).await;
    let (placement, shelter, referral) = accepted_after_forget(&c).await;
    let seen = late_handoff_as_the_agency_sees_it(&c, &placement.placement_id).await;
    assert!(seen.needs[0].handoff.as_ref().unwrap().erased);
    // Its key is erased: the provider who wrote it no longer reads it either.
    let started = std::time::Instant::now();
    loop {
        let get = cap::GetReferralRequest {
            provider_id: shelter.clone(),
            referral_id: referral.clone(),
        };
        let r = c
            .capacity
            .clone()
            .get_referral(authed(&provider_token(0), get))
            .await
            .unwrap()
            .into_inner();
        if r.handoff.as_ref().is_some_and(|h| h.instructions.is_empty()) {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 10,
            "the late hand-off's key is still live: {r:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A retried request seals its people's case references again before it
/// learns that the first attempt recorded them: those keys wrap nothing
/// stored and must not outlive the answer (docs/privacy.md: no key
/// without the item it seals).
#[tokio::test]
async fn a_retried_placement_request_leaves_no_key_but_its_first_attempts() {
    let c = Coalition::start(0, 0).await;
    let group = intake::RequestGroupRequest {
        idempotency_key: "night-group-1".into(),
        cohesion: intake::Cohesion::KeepTogether as i32,
        people: vec![
            person("CASE-ONE", &[pb::NeedKind::Shelter]),
            person("CASE-TWO", &[pb::NeedKind::Shelter]),
        ],
    };
    let first = c
        .intake
        .clone()
        .request_group(authed(INTAKE, group.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(live_items(&c, "case").await.len(), 2);
    for _ in 0..3 {
        let again = c
            .intake
            .clone()
            .request_group(authed(INTAKE, group.clone()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again.group_id, first.group_id);
    }
    let one = intake::RequestPlacementRequest {
        idempotency_key: "night-person-1".into(),
        person: Some(person("CASE-THREE", &[pb::NeedKind::Shelter])),
    };
    for _ in 0..2 {
        c.intake
            .clone()
            .request_placement(authed(INTAKE, one.clone()))
            .await
            .unwrap();
    }
    assert_eq!(
        live_items(&c, "case").await.len(),
        3,
        "each person's case reference is sealed once; a retry's keys are erased"
    );
}

/// A retry answers with the current state (docs/api.md): a standing
/// hand-off replaced since the first attempt (by the partner, or by an
/// admin) is answered as it stands now, never as the retry says.
#[tokio::test]
async fn a_retried_hand_off_answers_with_the_text_in_force() {
    let c = Coalition::start(1, 0).await;
    let set = |key: &str, contact: &str| intake::SetHandoffContactRequest {
        idempotency_key: key.into(),
        contact: contact.into(),
    };
    let mut intake = c.intake.clone();
    for (key, contact) in [("k1", "CONTACT-A"), ("k2", "CONTACT-B")] {
        intake
            .set_handoff_contact(authed(INTAKE, set(key, contact)))
            .await
            .unwrap();
    }
    let retried = intake
        .set_handoff_contact(authed(INTAKE, set("k1", "CONTACT-A")))
        .await
        .unwrap();
    assert_eq!(retried.into_inner().contact, "CONTACT-B");

    let shelter = site(&c, 0, &[pb::ServiceKind::ShelterBed], 1).await;
    let door = |key: &str, text: &str| cap::SetSiteHandoffRequest {
        idempotency_key: key.into(),
        provider_id: shelter.clone(),
        instructions: text.into(),
    };
    let mut capacity = c.capacity.clone();
    let partner = provider_token(0);
    capacity
        .set_site_handoff(authed(&partner, door("s1", "SITE-A")))
        .await
        .unwrap();
    let by_admin = capacity
        .set_site_handoff(authed(ADMIN, door("s2", "SITE-B-admin")))
        .await
        .unwrap();
    assert_eq!(by_admin.into_inner().instructions, "", "an admin is never shown it");
    let retried = capacity
        .set_site_handoff(authed(&partner, door("s1", "SITE-A")))
        .await
        .unwrap();
    assert_eq!(retried.into_inner().instructions, "SITE-B-admin");
    let admin_retry = capacity
        .set_site_handoff(authed(ADMIN, door("s2", "SITE-B-admin")))
        .await
        .unwrap();
    assert_eq!(admin_retry.into_inner().instructions, "", "nor on a retry");
}
