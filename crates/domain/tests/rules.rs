//! The rules of each aggregate, one example at a time (given / when / then).

use refer_domain::donation::{Donation, DonationCommand, DonationEvent};
use refer_domain::ids::{DonationId, HoldId, NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{DeclineReason, Need, NeedCommand, NeedEvent, NeedStatus, Proposal, Target};
use refer_domain::provider::{HoldRequest, Provider, ProviderCommand, ProviderEvent, ReleaseReason};
use refer_domain::sample::{self, NIGHT};
use refer_domain::spec::given;
use refer_domain::DomainError;

const BED: ServiceKind = ServiceKind::ShelterBed;
const HOLD: HoldId = HoldId::from_u128(7);
const NEED: NeedId = NeedId::from_u128(8);

fn registered_provider(beds: u32) -> Vec<ProviderEvent> {
    vec![
        ProviderEvent::Registered(Box::new(sample::shelter(OrgId::from_u128(1)))),
        ProviderEvent::CapacitySet {
            service: BED,
            declared: beds,
        },
    ]
}

fn place(units: u32, minutes: i64) -> ProviderCommand {
    ProviderCommand::PlaceHold {
        hold: HOLD,
        need: NEED,
        service: BED,
        units,
        expires_at: NIGHT.plus_secs(minutes * 60),
    }
}

#[test]
fn a_hold_takes_free_beds_and_acceptance_consumes_them() {
    let held = given::<Provider>(registered_provider(3))
        .when(&place(2, 15), NIGHT)
        .then_expect([ProviderEvent::HoldPlaced {
            hold: HOLD,
            need: NEED,
            service: BED,
            units: 2,
            expires_at: NIGHT.plus_secs(900),
        }]);
    assert_eq!(held.units(BED).free(), 1);
    let mut history = registered_provider(3);
    history.push(ProviderEvent::HoldPlaced {
        hold: HOLD,
        need: NEED,
        service: BED,
        units: 2,
        expires_at: NIGHT.plus_secs(900),
    });
    let accepted = given::<Provider>(history)
        .when(&ProviderCommand::ConfirmHold { hold: HOLD }, NIGHT.plus_secs(60))
        .then_expect([ProviderEvent::HoldConfirmed { hold: HOLD }]);
    let units = accepted.units(BED);
    assert_eq!((units.declared, units.held, units.placed, units.free()), (1, 0, 2, 1));
}

fn request(hold: u128, units: u32) -> HoldRequest {
    HoldRequest {
        hold: HoldId::from_u128(hold),
        need: NeedId::from_u128(100 + hold),
        service: BED,
        units,
        expires_at: NIGHT.plus_secs(900),
    }
}

fn placed(hold: u128, units: u32) -> ProviderEvent {
    ProviderEvent::HoldPlaced {
        hold: HoldId::from_u128(hold),
        need: NeedId::from_u128(100 + hold),
        service: BED,
        units,
        expires_at: NIGHT.plus_secs(900),
    }
}

#[test]
fn holds_placed_together_are_all_placed_or_none() {
    let both = ProviderCommand::PlaceHolds(vec![request(1, 1), request(2, 2)]);
    let held = given::<Provider>(registered_provider(3))
        .when(&both, NIGHT)
        .then_expect([placed(1, 1), placed(2, 2)]);
    assert_eq!(held.units(BED).free(), 0);
    // Two beds free: the second hold does not fit, so neither is placed.
    given::<Provider>(registered_provider(2))
        .when(&both, NIGHT)
        .then_error(DomainError::InsufficientCapacity { requested: 2, free: 1 });
    // Carried out again after a crash: the hold already placed is skipped.
    let mut history = registered_provider(3);
    history.push(placed(1, 1));
    given::<Provider>(history)
        .when(&both, NIGHT)
        .then_expect([placed(2, 2)]);
}

#[test]
fn a_hold_never_exceeds_free_capacity() {
    given::<Provider>(registered_provider(1))
        .when(&place(2, 15), NIGHT)
        .then_error(DomainError::InsufficientCapacity { requested: 2, free: 1 });
}

#[test]
fn capacity_cannot_drop_below_what_is_held() {
    let mut history = registered_provider(2);
    history.push(ProviderEvent::HoldPlaced {
        hold: HOLD,
        need: NEED,
        service: BED,
        units: 2,
        expires_at: NIGHT.plus_secs(900),
    });
    given::<Provider>(history.clone())
        .when(
            &ProviderCommand::SetCapacity {
                service: BED,
                declared: 1,
            },
            NIGHT,
        )
        .then_error(DomainError::CapacityBelowHeld { declared: 1, held: 2 });
    given::<Provider>(history)
        .when(
            &ProviderCommand::AdjustCapacity {
                service: BED,
                delta: -1,
            },
            NIGHT,
        )
        .then_error(DomainError::CapacityBelowHeld { declared: 1, held: 2 });
}

#[test]
fn a_suspended_provider_gets_no_new_holds_and_unoffered_services_are_refused() {
    let mut history = registered_provider(5);
    history.push(ProviderEvent::Suspended);
    given::<Provider>(history)
        .when(&place(1, 15), NIGHT)
        .then_error(DomainError::Suspended);
    given::<Provider>(registered_provider(5))
        .when(
            &ProviderCommand::SetCapacity {
                service: ServiceKind::Legal,
                declared: 1,
            },
            NIGHT,
        )
        .then_error(DomainError::ServiceNotOffered(ServiceKind::Legal));
}

#[test]
fn a_hold_accepted_in_time_is_confirmed_even_when_settled_late() {
    let mut history = registered_provider(1);
    history.push(ProviderEvent::HoldPlaced {
        hold: HOLD,
        need: NEED,
        service: BED,
        units: 1,
        expires_at: NIGHT.plus_secs(900),
    });
    given::<Provider>(history.clone())
        .when(&ProviderCommand::ConfirmHold { hold: HOLD }, NIGHT.plus_secs(1800))
        .then_expect([ProviderEvent::HoldConfirmed { hold: HOLD }]);
    history.push(ProviderEvent::HoldReleased {
        hold: HOLD,
        reason: ReleaseReason::Expired,
    });
    given::<Provider>(history)
        .when(&ProviderCommand::ConfirmHold { hold: HOLD }, NIGHT.plus_secs(60))
        .then_error(DomainError::UnknownHold);
}

#[test]
fn registration_is_validated_field_by_field() {
    let mut profile = sample::shelter(OrgId::from_u128(1));
    profile.name = String::new();
    given::<Provider>([])
        .when(&ProviderCommand::Register(Box::new(profile)), NIGHT)
        .then_invalid("name");
    let mut profile = sample::shelter(OrgId::from_u128(1));
    profile.eligibility.languages.clear();
    given::<Provider>([])
        .when(&ProviderCommand::Register(Box::new(profile)), NIGHT)
        .then_invalid("eligibility.languages");
    given::<Provider>([])
        .when(&place(1, 15), NIGHT)
        .then_error(DomainError::NotRegistered);
}

#[test]
fn donations_are_held_only_inside_their_window_and_per_need_limit() {
    let offer = sample::hotel_rooms(OrgId::from_u128(2));
    let end = offer.window.end;
    let history = vec![DonationEvent::Registered(offer.clone())];
    let hold = |units, expires_at| DonationCommand::PlaceHold {
        hold: HOLD,
        need: NEED,
        units,
        expires_at,
    };
    given::<Donation>(history.clone())
        .when(
            &hold(1, offer.window.start.plus_secs(60)),
            offer.window.start.plus_secs(-1),
        )
        .then_error(DomainError::OutsideWindow);
    given::<Donation>(history.clone())
        .when(&hold(1, end.plus_secs(1)), end.plus_secs(-60))
        .then_error(DomainError::OutsideWindow);
    given::<Donation>(history.clone())
        .when(&hold(4, NIGHT.plus_secs(900)), NIGHT)
        .then_error(DomainError::OverPerNeedLimit { max: 3 });
    let state = given::<Donation>(history)
        .when(&hold(3, NIGHT.plus_secs(900)), NIGHT)
        .then_expect([DonationEvent::HoldPlaced {
            hold: HOLD,
            need: NEED,
            units: 3,
            expires_at: NIGHT.plus_secs(900),
        }]);
    assert_eq!(state.free(), 7);
}

#[test]
fn a_hold_lasts_the_answer_time_and_never_outlives_its_donation_window() {
    use refer_domain::need::{hold_expiry, HOLD_SECS};
    let offer = sample::hotel_rooms(OrgId::from_u128(2));
    let end = offer.window.end;
    // At a provider: the answer time.
    assert_eq!(hold_expiry(NIGHT, None), NIGHT.plus_secs(HOLD_SECS));
    // At a donation ending in five minutes: the window's end, which the
    // donation accepts.
    let late = end.plus_secs(-300);
    assert_eq!(hold_expiry(late, Some(end)), end);
    given::<Donation>(vec![DonationEvent::Registered(offer)])
        .when(
            &DonationCommand::PlaceHold {
                hold: HOLD,
                need: NEED,
                units: 1,
                expires_at: hold_expiry(late, Some(end)),
            },
            late,
        )
        .then_expect([DonationEvent::HoldPlaced {
            hold: HOLD,
            need: NEED,
            units: 1,
            expires_at: end,
        }]);
}

#[test]
fn withdrawing_a_donation_releases_its_pending_holds() {
    let offer = sample::hotel_rooms(OrgId::from_u128(2));
    let history = vec![
        DonationEvent::Registered(offer),
        DonationEvent::HoldPlaced {
            hold: HOLD,
            need: NEED,
            units: 1,
            expires_at: NIGHT.plus_secs(900),
        },
    ];
    let state = given::<Donation>(history)
        .when(&DonationCommand::Withdraw, NIGHT)
        .then_expect([
            DonationEvent::Withdrawn,
            DonationEvent::HoldReleased {
                hold: HOLD,
                reason: ReleaseReason::Withdrawn,
            },
        ]);
    assert_eq!((state.free(), state.held), (0, 0));
}

fn requested() -> Vec<NeedEvent> {
    vec![NeedEvent::Requested(sample::shelter_need(
        OrgId::from_u128(3),
        PlacementId::from_u128(4),
        None,
    ))]
}

fn proposal(target: Target) -> Proposal {
    Proposal {
        target,
        hold: HOLD,
        deadline: NIGHT.plus_secs(900),
    }
}

#[test]
fn a_declined_need_is_never_proposed_to_the_same_provider_again() {
    let shelter = Target::Provider(ProviderId::from_u128(5));
    let mut history = requested();
    history.push(NeedEvent::Proposed(proposal(shelter)));
    let declined = given::<Need>(history.clone())
        .when(
            &NeedCommand::Decline {
                by: shelter,
                reason: DeclineReason::NoCapacity,
            },
            NIGHT,
        )
        .then_expect([NeedEvent::Declined {
            proposal: proposal(shelter),
            reason: DeclineReason::NoCapacity,
        }]);
    assert_eq!(declined.status, NeedStatus::Declined);
    history.push(NeedEvent::Declined {
        proposal: proposal(shelter),
        reason: DeclineReason::NoCapacity,
    });
    given::<Need>(history.clone())
        .when(&NeedCommand::Propose(proposal(shelter)), NIGHT)
        .then_error(DomainError::TargetExcluded);
    let hotel = Target::Donation(DonationId::from_u128(6));
    given::<Need>(history)
        .when(&NeedCommand::Propose(proposal(hotel)), NIGHT)
        .then_expect([NeedEvent::Proposed(proposal(hotel))]);
}

#[test]
fn only_the_target_may_answer_and_expiry_waits_for_the_deadline() {
    let shelter = Target::Provider(ProviderId::from_u128(5));
    let other = Target::Provider(ProviderId::from_u128(9));
    let mut history = requested();
    history.push(NeedEvent::Proposed(proposal(shelter)));
    given::<Need>(history.clone())
        .when(&NeedCommand::Accept { by: other }, NIGHT)
        .then_error(DomainError::WrongTarget);
    given::<Need>(history.clone())
        .when(&NeedCommand::Expire, NIGHT.plus_secs(899))
        .then_error(DomainError::HoldNotExpired);
    given::<Need>(history.clone())
        .when(&NeedCommand::Expire, NIGHT.plus_secs(900))
        .then_expect([NeedEvent::Expired(proposal(shelter))]);
    given::<Need>(history)
        .when(&NeedCommand::Cancel, NIGHT)
        .then_expect([NeedEvent::Cancelled {
            pending: Some(proposal(shelter)),
        }]);
}

#[test]
fn final_states_stay_final() {
    let mut history = requested();
    history.push(NeedEvent::Cancelled { pending: None });
    for command in [
        NeedCommand::Cancel,
        NeedCommand::Waitlist,
        NeedCommand::Fulfil,
        NeedCommand::Expire,
    ] {
        let err = given::<Need>(history.clone()).when(&command, NIGHT);
        err.then_error(DomainError::InvalidTransition {
            from: NeedStatus::Cancelled,
            action: match command {
                NeedCommand::Cancel => "cancel",
                NeedCommand::Waitlist => "waitlist",
                NeedCommand::Fulfil => "fulfil",
                _ => "expire",
            },
        });
    }
}

#[test]
fn a_need_request_names_its_invalid_field() {
    let mut request = sample::shelter_need(OrgId::from_u128(3), PlacementId::from_u128(4), None);
    request.spec.profile.party_size = 0;
    given::<Need>([])
        .when(&NeedCommand::Request(request), NIGHT)
        .then_invalid("spec.profile.party_size");
}

#[test]
fn a_need_held_back_keeps_when_its_wait_ends_and_is_waitlisted_plainly_after() {
    let until = NIGHT.plus_secs(2 * 3600);
    // Given a requested need, when the matcher holds it back for the urgent,
    // then it is waitlisted with the instant its wait ends.
    let held = given::<Need>(requested())
        .when(&NeedCommand::waitlist(Some(until)), NIGHT)
        .then_expect([NeedEvent::HeldBack { until }]);
    assert_eq!((held.status, held.held_until), (NeedStatus::Waitlisted, Some(until)));
    let mut history = requested();
    history.push(NeedEvent::HeldBack { until });
    // The same wait again is no change; a wait ending in the past, no wait.
    given::<Need>(history.clone())
        .when(&NeedCommand::HoldBack { until }, NIGHT)
        .then_error(DomainError::InvalidTransition {
            from: NeedStatus::Waitlisted,
            action: "hold back",
        });
    given::<Need>(requested())
        .when(&NeedCommand::HoldBack { until: NIGHT }, NIGHT)
        .then_invalid("until");
    // When its wait ends with nothing free, it waits plainly for a unit:
    // a step of its own, and no longer held.
    let waiting = given::<Need>(history)
        .when(&NeedCommand::waitlist(None), until)
        .then_expect([NeedEvent::Waitlisted]);
    assert_eq!((waiting.status, waiting.held_until), (NeedStatus::Waitlisted, None));
    assert_ne!(waiting.step(), held.step());
    // A plainly waitlisted need is not waitlisted again.
    let mut plain = requested();
    plain.push(NeedEvent::Waitlisted);
    given::<Need>(plain)
        .when(&NeedCommand::Waitlist, NIGHT)
        .then_error(DomainError::InvalidTransition {
            from: NeedStatus::Waitlisted,
            action: "waitlist",
        });
}

#[test]
fn a_site_updates_its_profile_but_keeps_its_organisation_and_region() {
    let mut renamed = sample::shelter(OrgId::from_u128(1));
    renamed.name = "Harbor House North".into();
    renamed.services.insert(ServiceKind::Legal);
    let updated = given::<Provider>(registered_provider(3))
        .when(&ProviderCommand::UpdateProfile(Box::new(renamed.clone())), NIGHT)
        .then_expect([ProviderEvent::ProfileUpdated(Box::new(renamed.clone()))]);
    assert_eq!(updated.profile.as_ref(), Some(&renamed));
    assert_eq!(updated.units(BED).declared, 3, "capacity stays");

    // The same profile again: nothing.
    given::<Provider>(registered_provider(3))
        .when(
            &ProviderCommand::UpdateProfile(Box::new(sample::shelter(OrgId::from_u128(1)))),
            NIGHT,
        )
        .then_expect([]);

    let mut moved = renamed.clone();
    moved.org = OrgId::from_u128(2);
    given::<Provider>(registered_provider(3))
        .when(&ProviderCommand::UpdateProfile(Box::new(moved)), NIGHT)
        .then_error(DomainError::invalid("org", "a site stays with its organisation"));
    let mut elsewhere = renamed.clone();
    elsewhere.location = sample::location(40.0, -74.0, "US-36-061");
    given::<Provider>(registered_provider(3))
        .when(&ProviderCommand::UpdateProfile(Box::new(elsewhere)), NIGHT)
        .then_error(DomainError::invalid(
            "location.region",
            "a site keeps its region (register a new site for another)",
        ));
    let mut nameless = renamed;
    nameless.name.clear();
    given::<Provider>(registered_provider(3))
        .when(&ProviderCommand::UpdateProfile(Box::new(nameless)), NIGHT)
        .then_error(DomainError::invalid("name", "must be 1 to 120 printable characters"));
    given::<Provider>(vec![])
        .when(
            &ProviderCommand::UpdateProfile(Box::new(sample::shelter(OrgId::from_u128(1)))),
            NIGHT,
        )
        .then_error(DomainError::NotRegistered);
}

#[test]
fn a_service_with_units_held_cannot_be_dropped() {
    let mut history = registered_provider(3);
    history.push(ProviderEvent::HoldPlaced {
        hold: HOLD,
        need: NEED,
        service: BED,
        units: 1,
        expires_at: NIGHT.plus_secs(900),
    });
    let mut no_beds = sample::shelter(OrgId::from_u128(1));
    no_beds.services.remove(&BED);
    given::<Provider>(history)
        .when(&ProviderCommand::UpdateProfile(Box::new(no_beds.clone())), NIGHT)
        .then_error(DomainError::ServiceInUse(BED));
    // Without a hold, it can.
    given::<Provider>(registered_provider(3))
        .when(&ProviderCommand::UpdateProfile(Box::new(no_beds.clone())), NIGHT)
        .then_expect([ProviderEvent::ProfileUpdated(Box::new(no_beds))]);
}
