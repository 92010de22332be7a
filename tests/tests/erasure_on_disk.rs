//! Erasure attacked from the disk: an adversary keeps a copy of every NATS
//! node's store directory and holds the key-encryption key, and tries to
//! read back what Refer erased. The promise (docs/privacy.md): once the
//! Raft logs have compacted (within `ERASURE_BOUND` of the erasure) no copy
//! of an erased item's data key is left on any node; a backup taken before
//! the erasure keeps it only until the KEK that wrapped it is rotated away.

use refer_domain::need::NeedEvent;
use refer_domain::placement::PlacementEvent;
use refer_domain::standing::StandingEvent;
use refer_domain::Event;
use refer_proto::capacity::v1 as cap;
use refer_proto::common::v1 as pb;
use refer_proto::intake::v1 as intake;
use refer_service::testing::authed;
use refer_testkit::forensic::{copy_dir, recover};
use refer_tests::*;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The documented bound: nats-server snapshots a replicated stream's Raft
/// log every two minutes, and the log's older entries go with it.
const ERASURE_BOUND: Duration = Duration::from_secs(5 * 60);

/// The name of every item sealed on the stream so far.
async fn sealed_items(c: &Coalition) -> BTreeSet<String> {
    let last = c.store.last_sequence().await.unwrap();
    let commits = c.store.read_all(0, last).await.unwrap();
    let mut items = BTreeSet::new();
    for e in commits.iter().flat_map(|x| &x.events) {
        match &e.event {
            Event::Need(NeedEvent::HandedOff(s)) => items.insert(s.item.clone()),
            Event::Placement(PlacementEvent::Recorded(f)) => match &f.case_reference {
                Some(s) => items.insert(s.item.clone()),
                None => false,
            },
            Event::Placement(PlacementEvent::NoteShared { note, .. }) => items.insert(note.item.clone()),
            Event::Standing(StandingEvent::Set { text, .. }) => items.insert(text.item.clone()),
            _ => false,
        };
    }
    items
}

/// A copy of every node's store directory, as an attacker or a backup keeps it.
fn copy_of_every_node(c: &Coalition, into: &std::path::Path) -> Vec<PathBuf> {
    c.store_dirs().iter().map(|d| copy_dir(d, into).unwrap()).collect()
}

fn kek_bytes(path: &std::path::Path) -> [u8; 32] {
    let hex = std::fs::read_to_string(path).unwrap();
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex.trim()[2 * i..2 * i + 2], 16).unwrap();
    }
    key
}

/// One placement with a case reference, a consented note and a hand-off,
/// accepted; returns it and the items it sealed.
async fn placed(c: &Coalition, site: &str, case: &str, key: &str) -> (intake::Placement, Vec<String>) {
    let before = sealed_items(c).await;
    let request = intake::RequestPlacementRequest {
        idempotency_key: format!("req-{key}"),
        person: Some(person(case, &[pb::NeedKind::Shelter])),
    };
    let p = c
        .intake
        .clone()
        .request_placement(authed(INTAKE, request))
        .await
        .unwrap()
        .into_inner();
    let share = intake::ShareNoteRequest {
        idempotency_key: format!("note-{key}"),
        placement_id: p.placement_id.clone(),
        need_id: p.needs[0].need_id.clone(),
        note: format!("ask for {key} at the door"),
        consent: Some(intake::Consent {
            shares: "first name to ask for at the door".into(),
            until_ms: refer_domain::sample::NIGHT.plus_secs(24 * 3600).millis(),
            given_at_ms: 0,
        }),
    };
    c.intake.clone().share_note(authed(INTAKE, share)).await.unwrap();
    let referral = loop {
        let pending = referrals(c, 0, site, true).await;
        if let Some(r) = pending.into_iter().next() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let accept = cap::AcceptReferralRequest {
        idempotency_key: format!("accept-{key}"),
        provider_id: site.into(),
        referral_id: referral.referral_id,
        handoff: format!("back gate for {key}"),
    };
    c.capacity
        .clone()
        .accept_referral(authed(&provider_token(0), accept))
        .await
        .unwrap();
    let p = placement_until(&c.intake, &p.placement_id, "handed off", |p| {
        p.needs[0].handoff.as_ref().is_some_and(|h| !h.instructions.is_empty()) && !p.notes.is_empty()
    })
    .await;
    let items: Vec<String> = sealed_items(c).await.difference(&before).cloned().collect();
    assert_eq!(items.len(), 3, "a case reference, a note and a hand-off: {items:?}");
    (p, items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_placement_cannot_be_read_back_from_every_nodes_disk_with_the_kek() {
    // The adversary holds the store's key (encryption at rest) like every
    // other key of the operator's: the store's bytes as they would decrypt them.
    let c = Coalition::start_on_unencrypted_cluster(1, 0).await;
    let kek = kek_bytes(&c.setup.kek_file());
    let set = intake::SetHandoffContactRequest {
        idempotency_key: "contact".into(),
        contact: "night desk 555-0142".into(),
    };
    c.intake.clone().set_handoff_contact(authed(INTAKE, set)).await.unwrap();
    let shelter = site(&c, 0, &[pb::ServiceKind::ShelterBed], 4).await;
    let (a, a_items) = placed(&c, &shelter, "ZQ8-CASE-ALPHA", "alpha").await;
    let (_b, b_items) = placed(&c, &shelter, "ZQ8-CASE-BRAVO", "bravo").await;

    let copies = tempfile::tempdir().unwrap();
    let backup = copy_of_every_node(&c, copies.path());
    let found = recover(&backup, kek, &a_items);
    assert_eq!(
        found.len(),
        3,
        "the attacker reads live items off the disk (else it proves nothing): {found:?}"
    );

    let forget = intake::ForgetPlacementRequest {
        idempotency_key: "forget-alpha".into(),
        placement_id: a.placement_id.clone(),
    };
    let forgotten = c
        .intake
        .clone()
        .forget_placement(authed(INTAKE, forget))
        .await
        .unwrap()
        .into_inner();
    assert!(forgotten.case_reference_erased);
    let erased_at = Instant::now();

    // Poll the disks until nothing erased is left, within the bound; the
    // live placement's items stay readable all along (the scan sees them).
    let cleared = loop {
        let scratch = tempfile::tempdir_in(copies.path()).unwrap();
        let now = copy_of_every_node(&c, scratch.path());
        let live = recover(&now, kek, &b_items);
        assert_eq!(live.len(), 3, "the live placement's keys are on disk: {live:?}");
        let left = recover(&now, kek, &a_items);
        if left.is_empty() {
            break erased_at.elapsed();
        }
        assert!(
            erased_at.elapsed() < ERASURE_BOUND,
            "erased keys still on disk {:?} after erasure: {left:?}",
            erased_at.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    println!("no copy of the erased keys on any node's disk {cleared:?} after erasure");

    // A backup taken before the erasure still holds them, until the KEK
    // that wrapped them is rotated away: then it is useless for them, and
    // the live items read under the new KEK.
    assert_eq!(recover(&backup, kek, &a_items).len(), 3, "the documented limit");
    let new = [0x5a; 32];
    let js = async_nats::jetstream::new(c.nats.connect().await);
    let old = refer_sealed::Kek::load(&c.setup.kek_file()).unwrap();
    // Every sealing service's bucket, as `refer admin rotate-kek` does.
    let mut rotated = 0;
    for (sealer, _) in refer_service::provision::SEALERS {
        let (current, previous) = (refer_sealed::Kek::from_bytes(new), vec![old.clone()]);
        let rotating = refer_sealed::Vault::open_for_stream(&js, "REFER", sealer, &[], current, previous)
            .await
            .unwrap();
        rotated += rotating.rotate().await.unwrap();
    }
    assert!(rotated >= 3);
    let after = copy_of_every_node(&c, copies.path());
    assert!(
        recover(&backup, new, &a_items).is_empty(),
        "the backup dies with its KEK"
    );
    assert_eq!(recover(&after, new, &b_items).len(), 3, "live items re-wrapped");
}
