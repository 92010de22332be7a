//! The domain's atomic decisions, given / when / then: given the
//! aggregates as their histories fold them (and which steps were carried
//! out before), when the decision is made, then the events of each.

use refer_domain::decision::{
    keys, Answer, AnswerAndSettle, AtProvider, AtomicDecision, Decided, Expire, Given, ProposeAtDonation,
    ProposeAtProviders,
};
use refer_domain::donation::{Donation, DonationEvent};
use refer_domain::ids::{DonationId, HoldId, NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{DeclineReason, Need, NeedEvent, NeedStatus, Proposal, Target};
use refer_domain::provider::{HoldRequest, Provider, ProviderEvent, ReleaseReason};
use refer_domain::sample::{self, NIGHT};
use refer_domain::{Aggregate, AggregateKind, AggregateRef, DomainError, Event, IdempotencyKey, Timestamp};

const BED: ServiceKind = ServiceKind::ShelterBed;
const SITE: ProviderId = ProviderId::from_u128(1);
const ROOMS: DonationId = DonationId::from_u128(2);

fn need(n: u128) -> NeedId {
    NeedId::from_u128(100 + n)
}

fn hold(n: u128) -> HoldId {
    HoldId::from_u128(200 + n)
}

fn deadline() -> Timestamp {
    NIGHT.plus_secs(900)
}

fn of<A: Aggregate>(id: uuid::Uuid) -> AggregateRef {
    AggregateRef { kind: A::KIND, id }
}

fn site(beds: u32) -> Vec<ProviderEvent> {
    vec![
        ProviderEvent::Registered(Box::new(sample::shelter(OrgId::from_u128(1)))),
        ProviderEvent::CapacitySet {
            service: BED,
            declared: beds,
        },
    ]
}

fn held(n: u128) -> ProviderEvent {
    ProviderEvent::HoldPlaced {
        hold: hold(n),
        need: need(n),
        service: BED,
        units: 1,
        expires_at: deadline(),
    }
}

fn requested() -> NeedEvent {
    NeedEvent::Requested(sample::shelter_need(
        OrgId::from_u128(9),
        PlacementId::from_u128(3),
        None,
    ))
}

fn proposal(n: u128, target: Target) -> Proposal {
    Proposal {
        target,
        hold: hold(n),
        deadline: deadline(),
    }
}

fn at_site(n: u128) -> Proposal {
    proposal(n, Target::Provider(SITE))
}

fn request_at_site(n: u128) -> AtProvider {
    AtProvider {
        provider: SITE,
        hold: HoldRequest {
            hold: hold(n),
            need: need(n),
            service: BED,
            units: 1,
            expires_at: deadline(),
        },
    }
}

/// The events decided for each aggregate, by kind and id.
fn events(decided: &Decided, aggregate: AggregateRef) -> Vec<Event> {
    decided.events_of(aggregate)
}

fn key_of(decided: &Decided, aggregate: AggregateRef) -> Option<IdempotencyKey> {
    decided
        .steps
        .iter()
        .find(|s| s.aggregate == aggregate && !s.events.is_empty())
        .map(|s| s.key.clone())
}

fn answer(answer: Answer) -> AnswerAndSettle {
    AnswerAndSettle {
        need: need(1),
        target: Target::Provider(SITE),
        hold: hold(1),
        answer,
        key: IdempotencyKey::new("answer-1").unwrap(),
    }
}

fn referred() -> Given {
    let mut history = site(2);
    history.push(held(1));
    Given::new()
        .with::<Provider>(SITE.as_uuid(), history)
        .with::<Need>(need(1).as_uuid(), [requested(), NeedEvent::Proposed(at_site(1))])
}

#[test]
fn answer_and_settle_accepts_on_the_need_and_confirms_the_hold_together() {
    let decided = answer(Answer::Accept { handoff: None })
        .decide(&referred(), NIGHT.plus_secs(60))
        .unwrap();
    assert_eq!(
        events(&decided, of::<Need>(need(1).as_uuid())),
        [Event::Need(NeedEvent::Accepted(at_site(1)))]
    );
    assert_eq!(
        events(&decided, of::<Provider>(SITE.as_uuid())),
        [Event::Provider(ProviderEvent::HoldConfirmed { hold: hold(1) })]
    );
    assert_eq!(
        key_of(&decided, of::<Provider>(SITE.as_uuid())),
        Some(keys::settle(hold(1)))
    );
}

#[test]
fn answer_and_settle_declines_and_releases_and_a_hold_already_gone_leaves_the_answer_alone() {
    let decline = answer(Answer::Decline(DeclineReason::NoCapacity));
    let decided = decline.decide(&referred(), NIGHT.plus_secs(60)).unwrap();
    assert_eq!(
        events(&decided, of::<Provider>(SITE.as_uuid())),
        [Event::Provider(ProviderEvent::HoldReleased {
            hold: hold(1),
            reason: ReleaseReason::Declined
        })]
    );
    // The matcher released the hold already: the answer goes alone.
    let gone = Given::new()
        .with::<Provider>(SITE.as_uuid(), site(2))
        .with::<Need>(need(1).as_uuid(), [requested(), NeedEvent::Proposed(at_site(1))]);
    let decided = decline.decide(&gone, NIGHT.plus_secs(60)).unwrap();
    assert_eq!(decided.steps.len(), 1);
    assert!(matches!(
        events(&decided, of::<Need>(need(1).as_uuid()))[..],
        [Event::Need(NeedEvent::Declined { .. })]
    ));
    // Answered before (its key applied): nothing is written again.
    let again = referred().done_before(of::<Need>(need(1).as_uuid()), IdempotencyKey::new("answer-1").unwrap());
    let decided = answer(Answer::Accept { handoff: None })
        .decide(&again, NIGHT.plus_secs(60))
        .unwrap();
    assert!(events(&decided, of::<Need>(need(1).as_uuid())).is_empty());
}

#[test]
fn answer_and_settle_at_a_donation_accepts_nothing_without_its_hold() {
    let donation = Target::Donation(ROOMS);
    let given = Given::new()
        .with::<Donation>(
            ROOMS.as_uuid(),
            [DonationEvent::Registered(sample::hotel_rooms(OrgId::from_u128(4)))],
        )
        .with::<Need>(
            need(1).as_uuid(),
            [requested(), NeedEvent::Proposed(proposal(1, donation))],
        );
    let accept = AnswerAndSettle {
        need: need(1),
        target: donation,
        hold: hold(1),
        answer: Answer::Accept { handoff: None },
        key: keys::accept(hold(1)),
    };
    assert_eq!(accept.decide(&given, NIGHT).unwrap_err(), DomainError::UnknownHold);
}

#[test]
fn propose_at_providers_places_each_hold_with_its_proposal_and_every_hold_has_a_key() {
    let given = Given::new()
        .with::<Provider>(SITE.as_uuid(), site(2))
        .with::<Need>(need(1).as_uuid(), [requested()])
        .with::<Need>(need(2).as_uuid(), [requested()]);
    let both = ProposeAtProviders {
        proposals: vec![request_at_site(1), request_at_site(2)],
    };
    let decided = both.decide(&given, NIGHT).unwrap();
    assert!(decided.refused.is_empty());
    assert_eq!(
        events(&decided, of::<Provider>(SITE.as_uuid())),
        [Event::Provider(held(1)), Event::Provider(held(2))]
    );
    for n in [1, 2] {
        assert_eq!(
            events(&decided, of::<Need>(need(n).as_uuid())),
            [Event::Need(NeedEvent::Proposed(at_site(n)))]
        );
        assert_eq!(
            key_of(&decided, of::<Need>(need(n).as_uuid())),
            Some(keys::propose(hold(n)))
        );
    }
    assert_eq!(
        key_of(&decided, of::<Provider>(SITE.as_uuid())),
        Some(keys::holds(&[hold(1), hold(2)]))
    );
    assert!(decided.steps.iter().all(|s| s.key.as_str().len() <= 64));
}

#[test]
fn propose_at_providers_leaves_out_a_proposal_without_room_or_whose_need_moved_on_with_its_hold() {
    // One bed for two proposals: the first goes ahead, the second is refused.
    let given = Given::new()
        .with::<Provider>(SITE.as_uuid(), site(1))
        .with::<Need>(need(1).as_uuid(), [requested()])
        .with::<Need>(need(2).as_uuid(), [requested()]);
    let both = ProposeAtProviders {
        proposals: vec![request_at_site(1), request_at_site(2)],
    };
    let decided = both.decide(&given, NIGHT).unwrap();
    assert_eq!(
        events(&decided, of::<Provider>(SITE.as_uuid())),
        [Event::Provider(held(1))]
    );
    assert_eq!(
        key_of(&decided, of::<Provider>(SITE.as_uuid())),
        Some(keys::hold(hold(1)))
    );
    assert!(events(&decided, of::<Need>(need(2).as_uuid())).is_empty());
    assert_eq!(
        decided.refused,
        [(1, DomainError::InsufficientCapacity { requested: 1, free: 0 })]
    );
    // The first need was cancelled meanwhile: its hold is not placed.
    let given = Given::new()
        .with::<Provider>(SITE.as_uuid(), site(2))
        .with::<Need>(need(1).as_uuid(), [requested(), NeedEvent::Cancelled { pending: None }])
        .with::<Need>(need(2).as_uuid(), [requested()]);
    let decided = both.decide(&given, NIGHT).unwrap();
    assert_eq!(
        events(&decided, of::<Provider>(SITE.as_uuid())),
        [Event::Provider(held(2))]
    );
    assert_eq!(decided.refused.len(), 1);
    assert_eq!(decided.refused[0].0, 0);
}

#[test]
fn propose_at_providers_made_before_places_no_hold_again_whatever_the_need_did_since() {
    // A matcher woken after losing its lease tries again the proposals the
    // new leader already made with the same derived hold ids, and that were
    // accepted or declined since (the holds confirmed or released).
    let mut history = site(2);
    history.extend([
        held(1),
        ProviderEvent::HoldConfirmed { hold: hold(1) },
        held(2),
        ProviderEvent::HoldReleased {
            hold: hold(2),
            reason: ReleaseReason::Declined,
        },
    ]);
    let given = Given::new()
        .with::<Provider>(SITE.as_uuid(), history)
        .with::<Need>(
            need(1).as_uuid(),
            [
                requested(),
                NeedEvent::Proposed(at_site(1)),
                NeedEvent::Accepted(at_site(1)),
            ],
        )
        .with::<Need>(
            need(2).as_uuid(),
            [
                requested(),
                NeedEvent::Proposed(at_site(2)),
                NeedEvent::Declined {
                    proposal: at_site(2),
                    reason: DeclineReason::Other,
                },
            ],
        )
        .done_before(of::<Need>(need(1).as_uuid()), keys::propose(hold(1)))
        .done_before(of::<Need>(need(2).as_uuid()), keys::propose(hold(2)));
    let stale = ProposeAtProviders {
        proposals: vec![request_at_site(1), request_at_site(2)],
    };
    let decided = stale.decide(&given, NIGHT.plus_secs(30)).unwrap();
    assert!(!decided.writes(), "nothing placed or proposed again: {decided:?}");
    assert!(decided.refused.is_empty());
}

#[test]
fn propose_at_providers_proposes_a_hold_placed_alone_before_and_never_places_an_ended_one_again() {
    // A matcher from before atomic commits placed the hold, then crashed.
    let mut history = site(2);
    history.push(held(1));
    let given = Given::new()
        .with::<Provider>(SITE.as_uuid(), history)
        .with::<Need>(need(1).as_uuid(), [requested()]);
    let one = ProposeAtProviders {
        proposals: vec![request_at_site(1)],
    };
    let decided = one.decide(&given, NIGHT).unwrap();
    assert!(events(&decided, of::<Provider>(SITE.as_uuid())).is_empty());
    assert_eq!(
        events(&decided, of::<Need>(need(1).as_uuid())),
        [Event::Need(NeedEvent::Proposed(at_site(1)))]
    );
    // Placed alone under its key and released since: never placed again.
    let mut history = site(2);
    history.extend([
        held(1),
        ProviderEvent::HoldReleased {
            hold: hold(1),
            reason: ReleaseReason::Cancelled,
        },
    ]);
    let given = Given::new()
        .with::<Provider>(SITE.as_uuid(), history)
        .with::<Need>(need(1).as_uuid(), [requested()])
        .done_before(of::<Provider>(SITE.as_uuid()), keys::hold(hold(1)));
    let decided = one.decide(&given, NIGHT).unwrap();
    assert!(!decided.writes());
    assert_eq!(decided.refused, [(0, DomainError::DuplicateHold)]);
}

fn rooms() -> Given {
    Given::new()
        .with::<Donation>(
            ROOMS.as_uuid(),
            [DonationEvent::Registered(sample::hotel_rooms(OrgId::from_u128(4)))],
        )
        .with::<Need>(need(1).as_uuid(), [requested()])
}

fn to_rooms() -> ProposeAtDonation {
    ProposeAtDonation {
        need: need(1),
        donation: ROOMS,
        hold: hold(1),
        units: 2,
        expires_at: deadline(),
    }
}

#[test]
fn propose_at_a_donation_holds_and_uses_the_units_and_proposes_and_accepts_the_need() {
    let decided = to_rooms().decide(&rooms(), NIGHT).unwrap();
    assert_eq!(
        events(&decided, of::<Donation>(ROOMS.as_uuid())),
        [
            Event::Donation(DonationEvent::HoldPlaced {
                hold: hold(1),
                need: need(1),
                units: 2,
                expires_at: deadline()
            }),
            Event::Donation(DonationEvent::HoldConfirmed { hold: hold(1) }),
        ]
    );
    let donation = Target::Donation(ROOMS);
    assert_eq!(
        events(&decided, of::<Need>(need(1).as_uuid())),
        [
            Event::Need(NeedEvent::Proposed(proposal(1, donation))),
            Event::Need(NeedEvent::Accepted(proposal(1, donation))),
        ]
    );
    assert_eq!(
        key_of(&decided, of::<Donation>(ROOMS.as_uuid())),
        Some(keys::hold(hold(1)))
    );
    let Some(refer_domain::decision::State::Donation(after)) = decided
        .steps
        .iter()
        .find(|s| s.aggregate.kind == AggregateKind::Donation)
        .map(|s| s.state.clone())
    else {
        panic!("a donation step")
    };
    assert_eq!((after.used, after.free()), (2, 8));
}

#[test]
fn propose_at_a_donation_made_before_takes_no_units_again() {
    let again = rooms().done_before(of::<Need>(need(1).as_uuid()), keys::propose(hold(1)));
    let decided = to_rooms().decide(&again, NIGHT).unwrap();
    assert!(!decided.writes());
}

#[test]
fn expire_expires_the_need_and_releases_its_hold_together_once_the_deadline_passed() {
    let expire = Expire {
        need: need(1),
        target: Target::Provider(SITE),
        hold: hold(1),
    };
    assert_eq!(
        expire.decide(&referred(), NIGHT.plus_secs(60)).unwrap_err(),
        DomainError::HoldNotExpired
    );
    let decided = expire.decide(&referred(), deadline()).unwrap();
    assert_eq!(
        events(&decided, of::<Need>(need(1).as_uuid())),
        [Event::Need(NeedEvent::Expired(at_site(1)))]
    );
    assert_eq!(
        events(&decided, of::<Provider>(SITE.as_uuid())),
        [Event::Provider(ProviderEvent::HoldReleased {
            hold: hold(1),
            reason: ReleaseReason::Expired
        })]
    );
    assert_eq!(
        key_of(&decided, of::<Need>(need(1).as_uuid())),
        Some(keys::expire(hold(1)))
    );
    // The hold is gone already: the need expires alone.
    let gone = Given::new()
        .with::<Provider>(SITE.as_uuid(), site(2))
        .with::<Need>(need(1).as_uuid(), [requested(), NeedEvent::Proposed(at_site(1))]);
    let decided = expire.decide(&gone, deadline()).unwrap();
    assert_eq!(decided.steps.len(), 1);
    let Some(refer_domain::decision::State::Need(after)) = decided.steps.first().map(|s| s.state.clone()) else {
        panic!("a need step")
    };
    assert_eq!(after.status, NeedStatus::Expired);
}

/// Two people of one group, a shelter bed each, under one request key.
fn two_people() -> refer_domain::decision::RequestPlacements {
    use refer_domain::decision::PersonRequest;
    use refer_domain::placement::PlacementFile;
    let agency = OrgId::from_u128(7);
    let people = (1..=2u128)
        .map(|n| {
            let placement = PlacementId::from_u128(300 + n);
            let request = sample::shelter_need(agency, placement, None);
            PersonRequest {
                placement,
                key: IdempotencyKey::new("group-1").unwrap(),
                file: PlacementFile {
                    agency,
                    group: None,
                    needs: vec![(need(n), request.spec.kind)],
                    requested_at: NIGHT,
                    case_reference: None,
                },
                needs: vec![(need(n), request)],
            }
        })
        .collect();
    refer_domain::decision::RequestPlacements { people }
}

#[test]
fn request_placements_records_every_file_and_requests_every_need_in_one_decision() {
    use refer_domain::placement::Placement;
    let group = two_people();
    let decided = group.decide(&Given::new(), NIGHT).unwrap();
    assert_eq!(decided.steps.len(), 4, "two files and two needs");
    for person in &group.people {
        assert_eq!(events(&decided, of::<Placement>(person.placement.as_uuid())).len(), 1);
        let need = person.needs[0].0;
        assert_eq!(events(&decided, of::<Need>(need.as_uuid())).len(), 1);
        assert_eq!(key_of(&decided, of::<Need>(need.as_uuid())), Some(keys::requested()));
    }
    assert!(group.creates(), "its aggregates are new: decided without a read");
}

#[test]
fn request_placements_carried_out_again_writes_nothing_and_keeps_the_recorded_files() {
    use refer_domain::placement::{Placement, PlacementEvent};
    let group = two_people();
    // The first person's file and need landed before (a retry).
    let first = &group.people[0];
    let given = Given::new()
        .with::<Placement>(
            first.placement.as_uuid(),
            [PlacementEvent::Recorded(first.file.clone())],
        )
        .done_before(of::<Placement>(first.placement.as_uuid()), first.key.clone())
        .with::<Need>(need(1).as_uuid(), [requested()])
        .done_before(of::<Need>(need(1).as_uuid()), keys::requested());
    let decided = group.decide(&given, NIGHT).unwrap();
    assert!(events(&decided, of::<Placement>(first.placement.as_uuid())).is_empty());
    assert!(events(&decided, of::<Need>(need(1).as_uuid())).is_empty());
    assert_eq!(
        events(&decided, of::<Need>(need(2).as_uuid())).len(),
        1,
        "the rest goes ahead"
    );

    // A file recorded under the key names other needs: refused, nothing written.
    let mut other = group.clone();
    other.people[0].file.needs = vec![(need(9), first.file.needs[0].1)];
    other.people[0].needs[0].0 = need(9);
    let refused = other.decide(&given, NIGHT).unwrap_err();
    assert!(
        matches!(refused, DomainError::Invalid { ref field, .. } if field == "needs"),
        "{refused:?}"
    );
}

#[test]
fn propose_at_providers_given_one_proposal_twice_makes_it_once() {
    // Planned twice (a failed decision planned again while its twin
    // waited): two commits of one need would refuse the whole batch.
    let given = Given::new()
        .with::<Provider>(SITE.as_uuid(), site(2))
        .with::<Need>(need(1).as_uuid(), [requested()])
        .with::<Need>(need(2).as_uuid(), [requested()]);
    let twice = ProposeAtProviders {
        proposals: vec![request_at_site(1), request_at_site(2), request_at_site(1)],
    };
    let decided = twice.decide(&given, NIGHT).unwrap();
    assert!(decided.refused.is_empty(), "{:?}", decided.refused);
    let mut aggregates: Vec<AggregateRef> = decided.steps.iter().map(|s| s.aggregate).collect();
    let steps = aggregates.len();
    aggregates.sort();
    aggregates.dedup();
    assert_eq!(aggregates.len(), steps, "one step per aggregate");
    assert_eq!(
        events(&decided, of::<Provider>(SITE.as_uuid())),
        [Event::Provider(held(1)), Event::Provider(held(2))]
    );
    assert_eq!(events(&decided, of::<Need>(need(1).as_uuid())).len(), 1);
}
