//! The rules of a placement's file and of standing hand-offs (given / when / then).

use refer_domain::ids::{NeedId, OrgId, ProviderId};
use refer_domain::kinds::NeedKind;
use refer_domain::need::{Need, NeedCommand, NeedEvent, NeedStatus};
use refer_domain::placement::{
    Consent, ErasureReason, NeedClock, Placement, PlacementCommand, PlacementEvent, PlacementFile, SealedPart,
    DEFAULT_LONGEST_CONSENT_MS,
};
use refer_domain::sample::NIGHT;
use refer_domain::sealed::Sealed;
use refer_domain::spec::given;
use refer_domain::standing::{Owner, Standing, StandingCommand, StandingEvent};
use refer_domain::{Aggregate, DomainError};

const BED: NeedId = NeedId::from_u128(1);
const CARE: NeedId = NeedId::from_u128(2);
const HOUR: i64 = 3_600_000;

fn sealed(item: &str) -> Sealed {
    Sealed {
        item: item.into(),
        nonce: [7; 24],
        ciphertext: vec![1, 2, 3],
    }
}

fn file() -> PlacementFile {
    PlacementFile {
        agency: OrgId::from_u128(9),
        group: None,
        needs: vec![(BED, NeedKind::Shelter), (CARE, NeedKind::Medical)],
        requested_at: NIGHT,
        case_reference: Some(sealed("case")),
    }
}

fn consent(hours: i64) -> Consent {
    Consent {
        shares: "first name to ask for at the door".into(),
        given_at: NIGHT,
        until: NIGHT.plus_secs(hours * 3600),
    }
}

fn share(hours: i64) -> PlacementCommand {
    PlacementCommand::ShareNote {
        need: BED,
        consent: consent(hours),
        note: sealed("note"),
        longest_ms: DEFAULT_LONGEST_CONSENT_MS,
    }
}

fn shared(hours: i64) -> PlacementEvent {
    PlacementEvent::NoteShared {
        need: BED,
        consent: consent(hours),
        note: sealed("note"),
    }
}

#[test]
fn a_placement_is_recorded_once() {
    given::<Placement>([])
        .when(&PlacementCommand::Record(file()), NIGHT)
        .then_expect([PlacementEvent::Recorded(file())]);
    given::<Placement>([PlacementEvent::Recorded(file())])
        .when(&PlacementCommand::Record(file()), NIGHT)
        .then_error(DomainError::AlreadyRegistered);
}

#[test]
fn a_note_needs_a_consent_that_ends_within_the_coalitions_limit() {
    let recorded = || given::<Placement>([PlacementEvent::Recorded(file())]);
    let noted = recorded().when(&share(24), NIGHT).then_expect([shared(24)]);
    assert!(noted.notes.contains_key(&BED));
    recorded().when(&share(73), NIGHT).then_invalid("consent.until_ms");
    recorded().when(&share(0), NIGHT).then_invalid("consent.until_ms");
    let mut vague = share(24);
    if let PlacementCommand::ShareNote { consent, .. } = &mut vague {
        consent.shares = "  ".into();
    }
    recorded().when(&vague, NIGHT).then_invalid("consent.shares");
    let mut elsewhere = share(24);
    if let PlacementCommand::ShareNote { need, .. } = &mut elsewhere {
        *need = NeedId::from_u128(77);
    }
    recorded().when(&elsewhere, NIGHT).then_invalid("need_id");
    given::<Placement>([PlacementEvent::Recorded(file()), shared(24)])
        .when(&share(24), NIGHT)
        .then_error(DomainError::NoteAlreadyShared);
}

#[test]
fn an_erasure_records_only_what_was_still_there_and_a_second_one_records_nothing() {
    let erase = |parts: Vec<SealedPart>| PlacementCommand::Erase {
        parts,
        reason: ErasureReason::Requested,
    };
    let all = vec![SealedPart::CaseReference, SealedPart::Note(BED), SealedPart::Note(CARE)];
    let forgotten = given::<Placement>([PlacementEvent::Recorded(file()), shared(24)])
        .when(&erase(all.clone()), NIGHT)
        .then_expect([PlacementEvent::Erased {
            parts: vec![SealedPart::CaseReference, SealedPart::Note(BED)],
            reason: ErasureReason::Requested,
        }]);
    assert_eq!(forgotten.file.as_ref().unwrap().case_reference, None);
    assert!(forgotten.notes.is_empty());
    let history = [
        PlacementEvent::Recorded(file()),
        shared(24),
        PlacementEvent::Erased {
            parts: vec![SealedPart::CaseReference, SealedPart::Note(BED)],
            reason: ErasureReason::Requested,
        },
    ];
    given::<Placement>(history).when(&erase(all), NIGHT).then_expect([]);
}

#[test]
fn due_erasures_follow_consent_and_retention() {
    let placement = Placement::replay(&[PlacementEvent::Recorded(file()), shared(24)]);
    let open = [
        NeedClock {
            need: BED,
            final_at: None,
            handed_off: true,
        },
        NeedClock {
            need: CARE,
            final_at: None,
            handed_off: false,
        },
    ];
    assert_eq!(placement.due(&open, NIGHT.plus_secs(3600), 72 * HOUR), vec![]);
    // The consent ran out: the note goes, nothing else.
    assert_eq!(
        placement.due(&open, NIGHT.plus_secs(24 * 3600), 72 * HOUR),
        vec![(SealedPart::Note(BED), ErasureReason::ConsentExpired)]
    );
    // The bed was fulfilled 72 h ago: its hand-off goes; the care need is still open.
    let bed_done = [
        NeedClock {
            final_at: Some(NIGHT),
            ..open[0]
        },
        open[1],
    ];
    assert_eq!(
        placement.due(&bed_done, NIGHT.plus_secs(2 * 3600), HOUR),
        vec![(SealedPart::Handoff(BED), ErasureReason::Retention)]
    );
    // Every need final for the retention period: everything left goes.
    let all_done = [
        bed_done[0],
        NeedClock {
            final_at: Some(NIGHT.plus_secs(1800)),
            ..open[1]
        },
    ];
    assert_eq!(
        placement.due(&all_done, NIGHT.plus_secs(3600), HOUR),
        vec![(SealedPart::Handoff(BED), ErasureReason::Retention)],
        "the care need became final only 30 minutes ago"
    );
    assert_eq!(
        placement.due(&all_done, NIGHT.plus_secs(2 * 3600), HOUR),
        vec![
            (SealedPart::CaseReference, ErasureReason::Retention),
            (SealedPart::Note(BED), ErasureReason::Retention),
            (SealedPart::Handoff(BED), ErasureReason::Retention),
        ]
    );
}

#[test]
fn a_hand_off_follows_an_acceptance_only() {
    let need = |status: NeedStatus| Need {
        status,
        ..Default::default()
    };
    assert_eq!(
        need(NeedStatus::Accepted).decide(&NeedCommand::HandOff(sealed("h")), NIGHT),
        Ok(vec![NeedEvent::HandedOff(sealed("h"))])
    );
    assert!(matches!(
        need(NeedStatus::Proposed).decide(&NeedCommand::HandOff(sealed("h")), NIGHT),
        Err(DomainError::InvalidTransition { .. })
    ));
    let mut long = sealed("h");
    long.ciphertext = vec![0; 4096];
    assert!(matches!(
        need(NeedStatus::Accepted).decide(&NeedCommand::HandOff(long), NIGHT),
        Err(DomainError::Invalid { .. })
    ));
}

#[test]
fn a_standing_hand_off_belongs_to_one_owner() {
    let agency = Owner::Agency(OrgId::from_u128(9));
    let site = Owner::Site(ProviderId::from_u128(9));
    assert_ne!(agency.id(), site.id(), "an agency and a site never share a hand-off");
    let set = given::<Standing>([])
        .when(
            &StandingCommand::Set {
                owner: agency,
                text: sealed("c1"),
            },
            NIGHT,
        )
        .then_expect([StandingEvent::Set {
            owner: agency,
            text: sealed("c1"),
        }]);
    assert_eq!(set.text, Some(sealed("c1")));
    given::<Standing>([StandingEvent::Set {
        owner: agency,
        text: sealed("c1"),
    }])
    .when(
        &StandingCommand::Set {
            owner: site,
            text: sealed("c2"),
        },
        NIGHT,
    )
    .then_invalid("owner");
    given::<Standing>([StandingEvent::Cleared { owner: agency }])
        .when(&StandingCommand::Clear { owner: agency }, NIGHT)
        .then_expect([]);
}

#[test]
fn a_replacement_names_the_text_it_replaced_as_of_its_own_decision() {
    let agency = Owner::Agency(OrgId::from_u128(9));
    let set = |item: &str| StandingCommand::Set {
        owner: agency,
        text: sealed(item),
    };
    // Two writers read c1; the first replaced it with c2: the second,
    // decided again on what is current, replaces c2, not c1.
    let after = given::<Standing>([
        StandingEvent::Set {
            owner: agency,
            text: sealed("c1"),
        },
        StandingEvent::Replaced {
            owner: agency,
            text: sealed("c2"),
            replaced: sealed("c1"),
        },
    ])
    .when(&set("c3"), NIGHT)
    .then_expect([StandingEvent::Replaced {
        owner: agency,
        text: sealed("c3"),
        replaced: sealed("c2"),
    }]);
    assert_eq!(after.text, Some(sealed("c3")));
    // Nothing to replace after a clear; the same text again changes nothing.
    given::<Standing>([
        StandingEvent::Set {
            owner: agency,
            text: sealed("c1"),
        },
        StandingEvent::Cleared { owner: agency },
    ])
    .when(&set("c2"), NIGHT)
    .then_expect([StandingEvent::Set {
        owner: agency,
        text: sealed("c2"),
    }]);
    given::<Standing>([StandingEvent::Set {
        owner: agency,
        text: sealed("c1"),
    }])
    .when(&set("c1"), NIGHT)
    .then_expect([]);
}
