//! The event envelope on the wire: round trips, limits, and hostile bytes.

use proptest::prelude::*;
use refer_domain::event::{MAX_COMMIT_BYTES, SCHEMA_VERSION};
use refer_domain::ids::{CorrelationId, EventId, HoldId, NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{NeedEvent, Proposal, Target};
use refer_domain::provider::ProviderEvent;
use refer_domain::sample::{self, NIGHT};
use refer_domain::{
    decode_commit, encode_commit, AggregateKind, AggregateRef, CodecError, CommandMeta, Envelope, Event, IdempotencyKey,
};
use uuid::Uuid;

fn meta(key: Option<&str>) -> CommandMeta {
    CommandMeta {
        occurred_at: NIGHT,
        correlation_id: CorrelationId::from_u128(11),
        causation_id: Some(EventId::from_u128(12)),
        idempotency_key: key.map(|k| IdempotencyKey::new(k).unwrap()),
    }
}

fn provider_ref(id: u128) -> AggregateRef {
    AggregateRef {
        kind: AggregateKind::Provider,
        id: Uuid::from_u128(id),
    }
}

fn sample_events() -> Vec<(AggregateRef, Event)> {
    let need = AggregateRef {
        kind: AggregateKind::Need,
        id: Uuid::from_u128(2),
    };
    vec![
        (
            provider_ref(1),
            Event::Provider(ProviderEvent::Registered(Box::new(sample::shelter(OrgId::from_u128(
                1,
            ))))),
        ),
        (
            provider_ref(1),
            Event::Provider(ProviderEvent::CapacitySet {
                service: ServiceKind::ShelterBed,
                declared: 12,
            }),
        ),
        (
            provider_ref(1),
            Event::Provider(ProviderEvent::CapacitySetAt {
                service: ServiceKind::Counseling,
                declared: 2,
                at: NIGHT,
            }),
        ),
        (
            provider_ref(1),
            Event::Provider(ProviderEvent::ProfileUpdated(Box::new(sample::shelter(
                OrgId::from_u128(1),
            )))),
        ),
        (
            provider_ref(1),
            Event::Provider(ProviderEvent::HoldPlaced {
                hold: HoldId::from_u128(3),
                need: NeedId::from_u128(2),
                service: ServiceKind::ShelterBed,
                units: 1,
                expires_at: NIGHT.plus_secs(900),
            }),
        ),
        (
            need,
            Event::Need(NeedEvent::Requested(sample::shelter_need(
                OrgId::from_u128(4),
                PlacementId::from_u128(5),
                None,
            ))),
        ),
        (
            need,
            Event::Need(NeedEvent::Proposed(Proposal {
                target: Target::Provider(ProviderId::from_u128(1)),
                hold: HoldId::from_u128(3),
                deadline: NIGHT.plus_secs(900),
            })),
        ),
    ]
}

fn envelope(i: u128, aggregate: AggregateRef, event: Event) -> Envelope {
    Envelope::new(EventId::from_u128(100 + i), aggregate, &meta(Some("req-42")), event)
}

#[test]
fn every_sample_event_round_trips() {
    for (i, (aggregate, event)) in sample_events().into_iter().enumerate() {
        let commit = vec![envelope(i as u128, aggregate, event)];
        let bytes = encode_commit(&commit).unwrap();
        assert_eq!(decode_commit(&bytes).unwrap(), commit);
        assert_eq!(commit[0].schema_version, SCHEMA_VERSION);
    }
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let bytes = vec![0u8; MAX_COMMIT_BYTES + 1];
    assert_eq!(decode_commit(&bytes), Err(CodecError::TooLarge(MAX_COMMIT_BYTES + 1)));
}

#[test]
fn inconsistent_commits_are_refused_on_both_sides() {
    assert_eq!(encode_commit(&[]), Err(CodecError::Empty));
    let (need, event) = sample_events().pop().unwrap();
    let mut wrong_type = envelope(1, need, event.clone());
    wrong_type.event_type = "need.accepted".into();
    assert!(matches!(
        encode_commit(&[wrong_type]),
        Err(CodecError::TypeMismatch { .. })
    ));
    let misfiled = envelope(1, provider_ref(1), event.clone());
    assert!(matches!(
        encode_commit(&[misfiled]),
        Err(CodecError::WrongAggregate { .. })
    ));
    let mut newer = envelope(1, need, event);
    newer.schema_version = SCHEMA_VERSION + 1;
    assert_eq!(
        encode_commit(&[newer]),
        Err(CodecError::NewerSchema(SCHEMA_VERSION + 1))
    );
}

#[test]
fn trailing_bytes_are_refused() {
    let (aggregate, event) = sample_events().remove(1);
    let mut bytes = encode_commit(&[envelope(0, aggregate, event)]).unwrap();
    bytes.push(0);
    assert_eq!(decode_commit(&bytes), Err(CodecError::TrailingBytes(1)));
}

#[test]
fn a_typical_event_is_small() {
    let (aggregate, event) = sample_events().remove(2);
    let bytes = encode_commit(&[envelope(0, aggregate, event)]).unwrap();
    assert!(bytes.len() < 200, "{} bytes", bytes.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_bytes_give_an_error_or_a_valid_commit_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(events) = decode_commit(&bytes) {
            // Whatever decodes passed the consistency checks, so it re-encodes.
            prop_assert!(encode_commit(&events).is_ok());
        }
    }

    #[test]
    fn corrupted_commits_never_panic(
        pick in 0usize..5,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let (aggregate, event) = sample_events().remove(pick);
        let good = encode_commit(&[envelope(0, aggregate, event)]).unwrap();
        let mut bad = good.clone();
        for (at, byte) in flips {
            let i = at.index(bad.len());
            bad[i] ^= byte;
        }
        let _ = decode_commit(&bad);
        let _ = decode_commit(&good[..cut.index(good.len())]);
    }

    #[test]
    fn commits_of_many_events_round_trip(ids in prop::collection::vec(any::<u128>(), 1..40), declared in 0u32..1000) {
        let commit: Vec<_> = ids
            .iter()
            .map(|id| {
                Envelope::new(
                    EventId::from_u128(*id),
                    provider_ref(9),
                    &meta(None),
                    Event::Provider(ProviderEvent::CapacitySet { service: ServiceKind::Medical, declared }),
                )
            })
            .collect();
        let bytes = encode_commit(&commit).unwrap();
        prop_assert_eq!(decode_commit(&bytes).unwrap(), commit);
    }
}

#[test]
fn idempotency_keys_are_validated() {
    assert!(IdempotencyKey::new("op-night_0042").is_ok());
    assert_eq!(IdempotencyKey::new("").unwrap_err().field(), Some("idempotency_key"));
    assert!(IdempotencyKey::new("has space").is_err());
    assert!(IdempotencyKey::new("x".repeat(65)).is_err());
}

/// A commit as a newer Refer writes it: an envelope whose event is a
/// variant this reader does not know (tag 200), at `schema_version`.
fn from_a_newer_writer(schema_version: u16) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Later {
        event_id: EventId,
        aggregate: AggregateRef,
        event_type: String,
        schema_version: u16,
        occurred_at: refer_domain::Timestamp,
        correlation_id: CorrelationId,
        causation_id: Option<EventId>,
        idempotency_key: Option<IdempotencyKey>,
        event_tag: u32,
        event_payload: String,
    }
    #[derive(serde::Serialize)]
    enum Wire {
        V1(Vec<Later>),
    }
    let later = Later {
        event_id: EventId::from_u128(7),
        aggregate: provider_ref(1),
        event_type: "provider.moved".into(),
        schema_version,
        occurred_at: NIGHT,
        correlation_id: CorrelationId::from_u128(8),
        causation_id: None,
        idempotency_key: None,
        event_tag: 200,
        event_payload: "a shape this reader has never seen".into(),
    };
    postcard::to_stdvec(&Wire::V1(vec![later])).unwrap()
}

#[test]
fn a_newer_writers_event_is_told_apart_from_bytes_that_are_no_commit() {
    // Given a commit whose event variant this reader does not know,
    // when it says it was written at a newer schema version, then the
    // reader must stop there (skipping it would lose a real event) ...
    let newer = decode_commit(&from_a_newer_writer(SCHEMA_VERSION + 1)).unwrap_err();
    assert_eq!(newer, CodecError::NewerSchema(SCHEMA_VERSION + 1));
    assert!(newer.from_newer_writer());
    // ... and when it claims this reader's version, it is no commit Refer
    // wrote: quarantined, like any other garbage.
    let garbage = decode_commit(&from_a_newer_writer(SCHEMA_VERSION)).unwrap_err();
    assert!(matches!(garbage, CodecError::Malformed(_)), "{garbage:?}");
    assert!(!garbage.from_newer_writer());
    assert!(!decode_commit(b"\x00\x05garbage").unwrap_err().from_newer_writer());
}
