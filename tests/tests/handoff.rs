//! The warm hand-off, end to end: what each side learns at acceptance, that
//! sealed content is nowhere in clear (stream, key bucket, sled files, logs)
//! and unrecoverable once erased, that intake loses nothing with its data
//! directory, and that every new call is checked on the server.

use refer_domain::need::NeedEvent;
use refer_domain::placement::PlacementEvent;
use refer_domain::sealed::Sealed;
use refer_domain::standing::StandingEvent;
use refer_domain::Event;
use refer_proto::capacity::v1 as cap;
use refer_proto::common::v1 as pb;
use refer_proto::intake::v1 as intake;
use refer_proto::intake::v1::intake_client::IntakeClient;
use refer_service::testing::{authed, refused};
use refer_service::Clock;
use refer_tests::*;
use std::time::{Duration, Instant};
use tonic::Code;

const HOUR_SECS: i64 = 3600;

fn capture_logs() -> Log {
    Log::capture("debug,h2=info,tower=info,hyper=info,async_nats=info")
}

async fn set_contact(c: &Coalition, contact: &str) {
    let set = intake::SetHandoffContactRequest {
        idempotency_key: format!("contact-{}", contact.len()),
        contact: contact.into(),
    };
    c.intake.clone().set_handoff_contact(authed(INTAKE, set)).await.unwrap();
}

async fn set_site_handoff(c: &Coalition, i: usize, site: &str, instructions: &str) {
    let set = cap::SetSiteHandoffRequest {
        idempotency_key: format!("door-{}", &site[..8]),
        provider_id: site.into(),
        instructions: instructions.into(),
    };
    c.capacity
        .clone()
        .set_site_handoff(authed(&provider_token(i), set))
        .await
        .unwrap();
}

async fn request(c: &Coalition, case: &str, needs: &[pb::NeedKind]) -> intake::Placement {
    // The key must not carry the case reference: keys travel on the bus.
    let key = case
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    request_person(c, &format!("req-{key:x}"), person(case, needs)).await
}

/// The referrals of `site` (for provider `i`) once `count` are pending.
async fn pending(c: &Coalition, i: usize, site: &str, count: usize) -> Vec<cap::Referral> {
    let started = Instant::now();
    loop {
        let found = referrals(c, i, site, true).await;
        if found.len() >= count {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{count} referrals did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn accept(
    c: &Coalition,
    i: usize,
    site: &str,
    referral: &str,
    handoff: &str,
) -> Result<cap::Referral, tonic::Status> {
    let accept = cap::AcceptReferralRequest {
        idempotency_key: format!("accept-{referral}"),
        provider_id: site.into(),
        referral_id: referral.into(),
        handoff: handoff.into(),
    };
    c.capacity
        .clone()
        .accept_referral(authed(&provider_token(i), accept))
        .await
        .map(|r| r.into_inner())
}

async fn get_referral(c: &Coalition, i: usize, site: &str, referral: &str) -> cap::Referral {
    let get = cap::GetReferralRequest {
        provider_id: site.into(),
        referral_id: referral.into(),
    };
    c.capacity
        .clone()
        .get_referral(authed(&provider_token(i), get))
        .await
        .unwrap()
        .into_inner()
}

fn share(placement: &intake::Placement, note: &str, until_ms: i64) -> intake::ShareNoteRequest {
    intake::ShareNoteRequest {
        idempotency_key: format!("note-{}-{until_ms}-{}", &placement.placement_id[..8], note.len()),
        placement_id: placement.placement_id.clone(),
        need_id: placement.needs[0].need_id.clone(),
        note: note.into(),
        consent: Some(intake::Consent {
            shares: "first name to ask for at the door".into(),
            until_ms,
            given_at_ms: 0,
        }),
    }
}

#[tokio::test]
async fn every_accepted_need_shows_intake_the_site_and_its_hand_off_and_the_provider_the_agencys_contact() {
    let c = Coalition::start(2, 0).await;
    let contact = "Task force night desk, 555-0142: ask for the on-call advocate";
    set_contact(&c, contact).await;
    let shelter = site(&c, 0, &[pb::ServiceKind::ShelterBed], 6).await;
    let clinic = site(&c, 1, &[pb::ServiceKind::Medical], 6).await;
    // The shelter registers its door once; the clinic says it at each acceptance.
    let door = "Harbor House: side door on Elm St, the duty worker meets you, 555-0110";
    set_site_handoff(&c, 0, &shelter, door).await;
    let front_desk = "St. Martin's: front desk, say Refer sent you, 555-0150";
    accept_every_referral_with(&c, 0, shelter.clone(), "");
    accept_every_referral_with(&c, 1, clinic.clone(), front_desk);

    let group = intake::RequestGroupRequest {
        idempotency_key: "night".into(),
        cohesion: 0,
        people: (0..5)
            .map(|i| person(&format!("NIGHT-{i}"), &[pb::NeedKind::Shelter, pb::NeedKind::Medical]))
            .collect(),
    };
    let group = c
        .intake
        .clone()
        .request_group(authed(INTAKE, group))
        .await
        .unwrap()
        .into_inner();
    for p in &group.people {
        let p = placement_until(
            &c.intake,
            &p.placement_id,
            "every need accepted with its hand-off",
            |p| {
                p.needs.iter().all(|n| {
                    n.status == intake::NeedStatus::Accepted as i32
                        && n.handoff.as_ref().is_some_and(|h| !h.instructions.is_empty())
                })
            },
        )
        .await;
        for need in &p.needs {
            let handoff = need.handoff.as_ref().unwrap();
            let expected = if need.kind == pb::NeedKind::Shelter as i32 {
                door
            } else {
                front_desk
            };
            assert_eq!(handoff.instructions, expected);
            assert_eq!(handoff.site_name, site_spec(&[]).name, "the site's display name");
            assert!(!handoff.erased);
        }
    }
    // Each accepting provider sees the agency's contact and its own hand-off.
    for (i, site, given) in [(0, &shelter, door), (1, &clinic, front_desk)] {
        let accepted = referrals(&c, i, site, false).await;
        assert_eq!(accepted.len(), 5);
        for r in accepted {
            assert_eq!(r.status, cap::ReferralStatus::Accepted as i32);
            let handoff = r.handoff.expect("the agency's hand-off after acceptance");
            assert_eq!(handoff.agency_contact, contact);
            assert_eq!(handoff.instructions, given);
            assert_eq!(handoff.note, "", "no note without consent");
        }
    }
}

/// Every place sealed content could leak to, raw: the stream's messages
/// (payloads and headers), the read log's, every message the key bucket's stream ever kept,
/// every file under the services' data directories, every log line.
async fn scan_for(c: &Coalition, log: &Log, planted: &[&str], when: &str) {
    let js = async_nats::jetstream::new(c.nats.connect().await);
    let mut places: Vec<(String, Vec<u8>)> = Vec::new();
    let keys = refer_service::provision::SEALERS
        .map(|(sealer, _)| format!("KV_{}", refer_sealed::bucket_for("REFER", sealer)));
    for stream_name in ["REFER", "REFER_READS"]
        .iter()
        .copied()
        .chain(keys.iter().map(String::as_str))
    {
        let mut stream = js.get_stream(stream_name).await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        for seq in 1..=last {
            // Purged or deleted revisions are gone from the server: fine.
            let Ok(message) = stream.get_raw_message(seq).await else {
                continue;
            };
            let mut bytes = message.payload.to_vec();
            for (name, values) in message.headers.iter() {
                bytes.extend_from_slice(name.to_string().as_bytes());
                for value in values {
                    bytes.extend_from_slice(value.as_str().as_bytes());
                }
            }
            places.push((format!("{stream_name} message {seq}"), bytes));
        }
    }
    let mut dirs = vec![c.setup.dir.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().is_some_and(|n| n != "kek.hex") {
                places.push((path.display().to_string(), std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    places.push(("the log".into(), log.bytes()));
    for app in &c.apps {
        places.push((format!("{} metrics", app.url()), app.metrics().await.into_bytes()));
    }
    assert!(places.len() > 20, "the scan found the stores ({} places)", places.len());
    for (place, bytes) in &places {
        for text in planted {
            assert!(!contains(bytes, text), "{when}: {text:?} in clear in {place}");
        }
    }
}

#[tokio::test]
async fn sealed_content_is_nowhere_in_clear_and_nothing_of_it_can_be_read_after_erasure() {
    let log = capture_logs();
    let c = Coalition::start(1, 0).await;
    const CASE_A: &str = "ZQ7-CASE-ALPHA-GARCIA";
    const CASE_B: &str = "ZQ7-CASE-BRAVO-NGUYEN";
    const CONTACT: &str = "ZQ7-CONTACT-night desk 555-0142";
    const DOOR: &str = "ZQ7-DOOR-side entrance on Elm";
    const HANDOFF: &str = "ZQ7-HANDOFF-back gate, Ana meets you";
    const NOTE: &str = "ZQ7-NOTE-ask for Maria";
    let planted = [CASE_A, CASE_B, CONTACT, DOOR, HANDOFF, NOTE];
    set_contact(&c, CONTACT).await;
    let shelter = site(&c, 0, &[pb::ServiceKind::ShelterBed], 4).await;
    set_site_handoff(&c, 0, &shelter, DOOR).await;

    // A: a note under consent before acceptance, an explicit hand-off.
    let a = request(&c, CASE_A, &[pb::NeedKind::Shelter]).await;
    let until = refer_domain::sample::NIGHT.plus_secs(24 * HOUR_SECS).millis();
    c.intake
        .clone()
        .share_note(authed(INTAKE, share(&a, NOTE, until)))
        .await
        .unwrap();
    let referral_a = pending(&c, 0, &shelter, 1).await.remove(0);
    assert_eq!(referral_a.handoff, None, "a provider deciding sees only the profile");
    let accepted = accept(&c, 0, &shelter, &referral_a.referral_id, HANDOFF).await.unwrap();
    let shared = accepted.handoff.expect("the agency's side, once accepted");
    assert_eq!((shared.agency_contact.as_str(), shared.note.as_str()), (CONTACT, NOTE));
    assert_eq!(shared.note_until_ms, until);
    assert_eq!(shared.instructions, HANDOFF);
    // B: the site's default hand-off.
    let b = request(&c, CASE_B, &[pb::NeedKind::Shelter]).await;
    let referral_b = pending(&c, 0, &shelter, 1).await.remove(0);
    accept(&c, 0, &shelter, &referral_b.referral_id, "").await.unwrap();
    let seen_a = placement_until(&c.intake, &a.placement_id, "A handed off", |p| {
        p.needs[0].handoff.as_ref().is_some_and(|h| !h.instructions.is_empty())
    })
    .await;
    assert_eq!(seen_a.case_reference, CASE_A);
    assert_eq!(seen_a.needs[0].handoff.as_ref().unwrap().instructions, HANDOFF);
    assert_eq!(seen_a.notes[0].text, NOTE);
    let seen_b = placement_until(&c.intake, &b.placement_id, "B handed off", |p| {
        p.needs[0].handoff.as_ref().is_some_and(|h| !h.instructions.is_empty())
    })
    .await;
    assert_eq!(seen_b.needs[0].handoff.as_ref().unwrap().instructions, DOOR);

    tokio::time::sleep(Duration::from_millis(300)).await;
    scan_for(&c, &log, &planted, "before erasure").await;

    // Erasure on demand (A), and after retention (B: fulfilled, 72 h pass).
    let forget = intake::ForgetPlacementRequest {
        idempotency_key: "forget-a".into(),
        placement_id: a.placement_id.clone(),
    };
    let forgotten = c
        .intake
        .clone()
        .forget_placement(authed(INTAKE, forget))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(forgotten.case_reference, "");
    assert!(forgotten.case_reference_erased);
    assert!(forgotten.notes.is_empty());
    assert!(
        forgotten.needs[0].handoff.as_ref().unwrap().erased,
        "the API says the hand-off was erased"
    );
    let mut erased: Vec<(String, String)> = forgotten
        .erasures
        .iter()
        .map(|e| (e.part.clone(), e.reason.clone()))
        .collect();
    erased.sort();
    assert_eq!(
        erased,
        [
            ("case_reference", "requested"),
            ("handoff", "requested"),
            ("note", "requested")
        ]
        .map(|(p, r)| (p.to_owned(), r.to_owned()))
    );
    let after = get_referral(&c, 0, &shelter, &referral_a.referral_id).await;
    let after = after.handoff.unwrap();
    assert_eq!((after.note.as_str(), after.instructions.as_str()), ("", ""));
    assert_eq!(
        after.agency_contact, CONTACT,
        "the agency's contact is staff's, not the person's"
    );

    let fulfil = intake::FulfilNeedRequest {
        idempotency_key: "fulfil-b".into(),
        need_id: b.needs[0].need_id.clone(),
    };
    c.intake.clone().fulfil_need(authed(INTAKE, fulfil)).await.unwrap();
    placement_until(&c.intake, &b.placement_id, "B fulfilled", |p| {
        p.needs[0].status == intake::NeedStatus::Fulfilled as i32
    })
    .await;
    c.clock.advance_secs(72 * HOUR_SECS + 60);
    let swept = placement_until(&c.intake, &b.placement_id, "B erased after retention", |p| {
        p.case_reference_erased && p.needs[0].handoff.as_ref().is_some_and(|h| h.erased)
    })
    .await;
    assert!(swept.erasures.iter().all(|e| e.reason == "retention"), "{swept:?}");

    // Nothing sealed for A or B opens any more, for anyone, the KEK's
    // holder included; the standing hand-offs, never erased, still do.
    let js = async_nats::jetstream::new(c.nats.connect().await);
    let kek = refer_sealed::Kek::load(&c.setup.kek_file()).unwrap();
    // Intake's store reads every bucket (its own, capacity's, donations').
    let vault = refer_sealed::Vault::open_for_stream(&js, "REFER", "intake", &["capacity", "donations"], kek, vec![])
        .await
        .unwrap();
    let commits = c
        .store
        .read_all(0, c.store.last_sequence().await.unwrap())
        .await
        .unwrap();
    let (mut gone, mut standing): (Vec<Sealed>, Vec<Sealed>) = (vec![], vec![]);
    for e in commits.iter().flat_map(|x| &x.events) {
        match &e.event {
            Event::Need(NeedEvent::HandedOff(s)) => gone.push(s.clone()),
            Event::Placement(PlacementEvent::Recorded(f)) => gone.extend(f.case_reference.clone()),
            Event::Placement(PlacementEvent::NoteShared { note, .. }) => gone.push(note.clone()),
            Event::Standing(StandingEvent::Set { text, .. }) => standing.push(text.clone()),
            _ => {}
        }
    }
    assert_eq!(
        (gone.len(), standing.len()),
        (5, 2),
        "2 case references, 1 note, 2 hand-offs; 2 standing"
    );
    for sealed in &gone {
        let opened = vault.open_sealed(sealed, b"any purpose").await;
        assert!(
            matches!(opened, Err(refer_sealed::SealError::Erased(_))),
            "{} still has its key: {opened:?}",
            sealed.item
        );
    }
    for sealed in &standing {
        assert!(
            !matches!(
                vault.open_sealed(sealed, b"x").await,
                Err(refer_sealed::SealError::Erased(_))
            ),
            "the check can tell a live key from an erased one"
        );
    }
    scan_for(&c, &log, &planted, "after erasure").await;
}

#[tokio::test]
async fn intake_losing_its_whole_data_directory_loses_no_case_reference() {
    let mut c = Coalition::start(0, 0).await;
    let mut cases = Vec::new();
    for i in 0..4 {
        let p = request(&c, &format!("LOST-{i}"), &[pb::NeedKind::Shelter, pb::NeedKind::Legal]).await;
        cases.push((p.placement_id, format!("LOST-{i}")));
    }
    let group = || intake::RequestGroupRequest {
        idempotency_key: "lost-group".into(),
        cohesion: intake::Cohesion::KeepTogether as i32,
        people: vec![
            person("LOST-G0", &[pb::NeedKind::Shelter]),
            person("LOST-G1", &[pb::NeedKind::Shelter]),
        ],
    };
    let first_group = c
        .intake
        .clone()
        .request_group(authed(INTAKE, group()))
        .await
        .unwrap()
        .into_inner();
    let group_id = first_group.group_id.clone();
    cases.extend(
        first_group
            .people
            .iter()
            .map(|p| (p.placement_id.clone(), p.case_reference.clone())),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requested_before = requested_needs(&c).await;

    let intake_app = &mut c.apps[2];
    intake_app.stop().await;
    std::fs::remove_dir_all(&intake_app.data_dir).unwrap();
    intake_app.restart().await;
    c.intake = IntakeClient::new(c.apps[2].channel());

    for (id, case) in &cases {
        let p = placement_until(&c.intake, id, "found again", |p| !p.needs.is_empty()).await;
        assert_eq!(&p.case_reference, case);
    }
    let list = intake::ListPlacementsRequest {
        page_size: 4,
        page_token: String::new(),
    };
    let first = c
        .intake
        .clone()
        .list_placements(authed(INTAKE, list))
        .await
        .unwrap()
        .into_inner();
    let second = intake::ListPlacementsRequest {
        page_size: 4,
        page_token: first.next_page_token.clone(),
    };
    let second = c
        .intake
        .clone()
        .list_placements(authed(INTAKE, second))
        .await
        .unwrap()
        .into_inner();
    let mut listed: Vec<(String, String)> = first
        .placements
        .iter()
        .chain(&second.placements)
        .map(|p| (p.placement_id.clone(), p.case_reference.clone()))
        .collect();
    listed.sort();
    let mut expected = cases.clone();
    expected.sort();
    assert_eq!(listed, expected, "every placement listed, in two pages");
    assert!(second.next_page_token.is_empty());
    // Retried requests (same keys) name the same placements and request nothing twice.
    let again = request(&c, "LOST-0", &[pb::NeedKind::Shelter, pb::NeedKind::Legal]).await;
    assert_eq!(again.placement_id, cases[0].0);
    let regrouped = c
        .intake
        .clone()
        .request_group(authed(INTAKE, group()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(regrouped.group_id, group_id);
    assert_eq!(
        regrouped.people.iter().map(|p| &p.placement_id).collect::<Vec<_>>(),
        cases[4..].iter().map(|(id, _)| id).collect::<Vec<_>>()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(requested_needs(&c).await, requested_before, "no need requested twice");
    assert_eq!(requested_before, 4 * 2 + 2);
}

async fn requested_needs(c: &Coalition) -> usize {
    let commits = c
        .store
        .read_all(0, c.store.last_sequence().await.unwrap())
        .await
        .unwrap();
    commits
        .iter()
        .flat_map(|x| &x.events)
        .filter(|e| matches!(e.event, Event::Need(NeedEvent::Requested(_))))
        .count()
}

#[tokio::test]
async fn who_sees_what_of_a_hand_off_is_decided_on_the_server() {
    let c = Coalition::start(2, 2).await;
    let shelter = site(&c, 0, &[pb::ServiceKind::ShelterBed], 2).await;
    let a = request(&c, "RULES-A", &[pb::NeedKind::Shelter]).await;
    let now = refer_domain::sample::NIGHT;
    let mut intake = c.intake.clone();

    // Nothing is shared without consent, nor beyond the coalition's limit.
    let mut no_consent = share(&a, "ask for Ana", now.plus_secs(HOUR_SECS).millis());
    no_consent.consent = None;
    let err = intake.share_note(authed(INTAKE, no_consent)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("consent"), "{err:?}");
    assert_invalid(
        intake
            .share_note(authed(
                INTAKE,
                share(&a, "ask for Ana", now.plus_secs(73 * HOUR_SECS).millis()),
            ))
            .await,
        "consent.until_ms",
    );
    assert_invalid(
        intake
            .share_note(authed(
                INTAKE,
                share(&a, &"x".repeat(1025), now.plus_secs(HOUR_SECS).millis()),
            ))
            .await,
        "note",
    );
    // Roles and organisations: checked on the server, another agency's
    // placement answers as an unknown one.
    let note = share(&a, "ask for Ana", now.plus_secs(HOUR_SECS).millis());
    assert_eq!(
        refused(intake.share_note(authed(&provider_token(0), note.clone())).await),
        Code::PermissionDenied
    );
    assert_eq!(
        refused(intake.share_note(authed(ADMIN, note.clone())).await),
        Code::PermissionDenied
    );
    assert_eq!(
        refused(intake.share_note(authed(OTHER_INTAKE, note.clone())).await),
        Code::NotFound
    );
    let forget = intake::ForgetPlacementRequest {
        idempotency_key: "forget".into(),
        placement_id: a.placement_id.clone(),
    };
    assert_eq!(
        refused(intake.forget_placement(authed(OTHER_INTAKE, forget.clone())).await),
        Code::NotFound
    );
    assert_eq!(
        refused(
            intake
                .forget_placement(authed(&provider_token(0), forget.clone()))
                .await
        ),
        Code::PermissionDenied
    );
    let contact = intake::SetHandoffContactRequest {
        idempotency_key: "c".into(),
        contact: "desk".into(),
    };
    assert_eq!(
        refused(intake.set_handoff_contact(authed(ADMIN, contact)).await),
        Code::PermissionDenied
    );
    let door = cap::SetSiteHandoffRequest {
        idempotency_key: "d".into(),
        provider_id: shelter.clone(),
        instructions: "side door".into(),
    };
    let mut capacity = c.capacity.clone();
    assert_eq!(
        refused(
            capacity
                .set_site_handoff(authed(&provider_token(1), door.clone()))
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        refused(capacity.set_site_handoff(authed(INTAKE, door)).await),
        Code::PermissionDenied
    );

    let revoke = intake::RevokeNoteRequest {
        idempotency_key: "revoke".into(),
        placement_id: a.placement_id.clone(),
        need_id: a.needs[0].need_id.clone(),
    };
    assert_eq!(
        refused(intake.revoke_note(authed(OTHER_INTAKE, revoke.clone())).await),
        Code::NotFound
    );
    assert_eq!(
        refused(intake.revoke_note(authed(&provider_token(0), revoke.clone())).await),
        Code::PermissionDenied
    );
    let get_contact = intake::GetHandoffContactRequest {};
    assert_eq!(
        refused(intake.get_handoff_contact(authed(ADMIN, get_contact)).await),
        Code::PermissionDenied
    );
    // A donation's hand-off is its business's to set.
    let rooms = refer_domain::sample::hotel_rooms(business_org(0));
    let register = refer_proto::donations::v1::RegisterDonationRequest {
        idempotency_key: "rooms".into(),
        donation_id: refer_service::convert::id_pb(uuid::Uuid::new_v4()),
        spec: Some(refer_proto::donations::v1::DonationSpec {
            org_id: String::new(),
            kind: refer_service::convert::resource_kind_pb(rooms.kind),
            quantity: rooms.quantity,
            window: Some(refer_service::convert::time_window_pb(&rooms.window)),
            location: Some(refer_service::convert::location_pb(&rooms.location)),
            max_units_per_need: 0,
            eligibility: Some(refer_service::convert::eligibility_pb(&rooms.eligibility)),
        }),
    };
    let mut donations = c.donations.clone();
    let rooms = donations
        .register_donation(authed(&business_token(0), register))
        .await
        .unwrap()
        .into_inner();
    let desk = refer_proto::donations::v1::SetDonationHandoffRequest {
        idempotency_key: "desk".into(),
        donation_id: rooms.donation_id.clone(),
        instructions: "front desk".into(),
    };
    assert_eq!(
        refused(
            donations
                .set_donation_handoff(authed(&business_token(1), desk.clone()))
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        refused(donations.set_donation_handoff(authed(INTAKE, desk.clone())).await),
        Code::PermissionDenied
    );
    donations
        .set_donation_handoff(authed(&business_token(0), desk))
        .await
        .unwrap();
    // It reads it back to edit; nobody else does (an admin is not shown it).
    let get = refer_proto::donations::v1::GetDonationHandoffRequest {
        donation_id: rooms.donation_id.clone(),
    };
    let read = |token: String| {
        let (mut donations, get) = (donations.clone(), get.clone());
        async move { donations.get_donation_handoff(authed(&token, get)).await }
    };
    assert_eq!(
        read(business_token(0)).await.unwrap().into_inner().instructions,
        "front desk"
    );
    assert_eq!(read(ADMIN.into()).await.unwrap().into_inner().instructions, "");
    assert_eq!(refused(read(business_token(1)).await), Code::NotFound);
    assert_eq!(refused(read(INTAKE.into()).await), Code::PermissionDenied);

    // The note is shared; the provider sees it only once it accepted.
    intake.share_note(authed(INTAKE, note)).await.unwrap();
    let referral = pending(&c, 0, &shelter, 1).await.remove(0);
    let get = cap::GetReferralRequest {
        provider_id: shelter.clone(),
        referral_id: referral.referral_id.clone(),
    };
    assert_eq!(get_referral(&c, 0, &shelter, &referral.referral_id).await.handoff, None);
    assert_eq!(
        refused(capacity.get_referral(authed(&provider_token(1), get.clone())).await),
        Code::NotFound
    );
    assert_eq!(
        refused(capacity.get_referral(authed(INTAKE, get)).await),
        Code::PermissionDenied
    );
    // No hand-off and no site default: refused, and the referral stays pending.
    let err = accept(&c, 0, &shelter, &referral.referral_id, "").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("handoff"), "{err:?}");
    assert_eq!(
        get_referral(&c, 0, &shelter, &referral.referral_id).await.status,
        cap::ReferralStatus::Pending as i32
    );
    assert_invalid(
        accept(&c, 0, &shelter, &referral.referral_id, &"x".repeat(1025)).await,
        "handoff",
    );
    accept(&c, 0, &shelter, &referral.referral_id, "back gate")
        .await
        .unwrap();
    assert_eq!(
        get_referral(&c, 0, &shelter, &referral.referral_id)
            .await
            .handoff
            .unwrap()
            .note,
        "ask for Ana"
    );
    // The consent runs out: the note is erased, the provider no longer sees it.
    c.clock.advance_secs(HOUR_SECS + 60);
    let expired = placement_until(&c.intake, &a.placement_id, "the note expired", |p| {
        p.erasures
            .iter()
            .any(|e| e.part == "note" && e.reason == "consent_expired")
    })
    .await;
    assert!(expired.notes.is_empty());
    assert_eq!(
        get_referral(&c, 0, &shelter, &referral.referral_id)
            .await
            .handoff
            .unwrap()
            .note,
        ""
    );
    // Shared again and revoked: erased at once.
    let mut again = share(&a, "ask for Ana", c.clock.now().plus_secs(HOUR_SECS).millis());
    again.idempotency_key = "note-again".into();
    intake.share_note(authed(INTAKE, again)).await.unwrap();
    assert_eq!(
        get_referral(&c, 0, &shelter, &referral.referral_id)
            .await
            .handoff
            .unwrap()
            .note,
        "ask for Ana"
    );
    let revoked = intake.revoke_note(authed(INTAKE, revoke)).await.unwrap().into_inner();
    assert!(revoked.notes.is_empty());
    assert!(revoked
        .erasures
        .iter()
        .any(|e| e.part == "note" && e.reason == "consent_revoked"));
    assert_eq!(
        get_referral(&c, 0, &shelter, &referral.referral_id)
            .await
            .handoff
            .unwrap()
            .note,
        ""
    );
    // An admin may forget any agency's placement.
    let forgotten = intake
        .forget_placement(authed(ADMIN, forget))
        .await
        .unwrap()
        .into_inner();
    assert!(forgotten.case_reference_erased);
}

/// A note refused for its consent (too long, already over, nothing said
/// of what is shared) leaves its key unbound: the agency corrects it and
/// sends it again under the same key; a retry is answered even once the
/// consent has ended. A note the placement's state refuses (its need has
/// one already) is FAILED_PRECONDITION and binds its key (docs/api.md);
/// what it says is checked first.
#[tokio::test]
async fn a_note_refused_for_its_consent_leaves_its_key_free() {
    let c = Coalition::start(0, 0).await;
    let a = request(&c, "KEY-FREE", &[pb::NeedKind::Shelter, pb::NeedKind::Medical]).await;
    let now = refer_domain::sample::NIGHT;
    let mut intake = c.intake.clone();
    let with = |key: &str, until_ms: i64, shares: &str| {
        let mut note = share(&a, "ask for Ana", until_ms);
        note.idempotency_key = key.into();
        note.consent.as_mut().unwrap().shares = shares.into();
        note
    };
    let said = "first name to ask for at the door";
    let hour = now.plus_secs(HOUR_SECS).millis();
    for (wrong, field) in [
        (
            with("the-one-key", now.plus_secs(500 * HOUR_SECS).millis(), said),
            "consent.until_ms",
        ),
        (with("the-one-key", now.millis() - 1_000, said), "consent.until_ms"),
        (with("the-one-key", hour, " "), "consent.shares"),
    ] {
        assert_invalid(intake.share_note(authed(INTAKE, wrong)).await, field);
    }
    let right = with("the-one-key", hour, said);
    let first = intake
        .share_note(authed(INTAKE, right.clone()))
        .await
        .unwrap()
        .into_inner();
    let again = intake.share_note(authed(INTAKE, right)).await.unwrap().into_inner();
    assert_eq!(first.notes.len(), again.notes.len(), "a retry shares nothing twice");
    // The need has its note: a consent that says nothing is named as such,
    // before the need's state is looked at.
    assert_invalid(
        intake.share_note(authed(INTAKE, with("second-key", hour, ""))).await,
        "consent.shares",
    );
    let second = intake.share_note(authed(INTAKE, with("second-key", hour, said))).await;
    assert_eq!(
        second.unwrap_err().code(),
        Code::FailedPrecondition,
        "a refusal by state"
    );
    let mut other_need = with("third-key", hour, said);
    other_need.need_id = a.needs[1].need_id.clone();
    intake.share_note(authed(INTAKE, other_need)).await.unwrap();

    // The consent has ended since: a retry of the note shared is answered
    // as the placement stands (the note erased), not refused for its dates.
    c.clock.advance_secs(HOUR_SECS + 60);
    let late = intake
        .share_note(authed(INTAKE, with("the-one-key", hour, said)))
        .await
        .expect("a retry is answered, whatever the time");
    assert_eq!(late.into_inner().placement_id, a.placement_id);
    // A new note with those dates is refused, its key still free.
    assert_invalid(
        intake.share_note(authed(INTAKE, with("fourth-key", hour, said))).await,
        "consent.until_ms",
    );
}
