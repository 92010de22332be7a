//! Invariants over random command sequences (proptest). Each command is
//! decided against the current state; accepted events are folded in; the
//! invariants are checked after every step, whatever was accepted or refused.

use proptest::prelude::*;
use refer_domain::donation::{Donation, DonationCommand, DonationEvent};
use refer_domain::ids::{DonationId, HoldId, NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{DeclineReason, Need, NeedCommand, NeedEvent, NeedStatus, Proposal, Target};
use refer_domain::provider::{HoldRequest, Provider, ProviderCommand, ProviderEvent, ReleaseReason};
use refer_domain::sample::{self, NIGHT};
use refer_domain::{Aggregate, Timestamp};

const SERVICES: [ServiceKind; 3] = [ServiceKind::ShelterBed, ServiceKind::Counseling, ServiceKind::Legal];

fn reason() -> impl Strategy<Value = ReleaseReason> {
    prop_oneof![
        Just(ReleaseReason::Declined),
        Just(ReleaseReason::Expired),
        Just(ReleaseReason::Cancelled)
    ]
}

fn provider_command() -> impl Strategy<Value = ProviderCommand> {
    let service = prop::sample::select(SERVICES.to_vec());
    let hold = (0u128..6).prop_map(HoldId::from_u128);
    prop_oneof![
        (service.clone(), 0u32..8).prop_map(|(service, declared)| ProviderCommand::SetCapacity { service, declared }),
        (service.clone(), -6i32..6).prop_map(|(service, delta)| ProviderCommand::AdjustCapacity { service, delta }),
        Just(ProviderCommand::Suspend),
        Just(ProviderCommand::Resume),
        (hold.clone(), service, 0u32..5, -5i64..60).prop_map(|(hold, service, units, minutes)| {
            ProviderCommand::PlaceHold {
                hold,
                need: NeedId::from_u128(1),
                service,
                units,
                // Relative to the step's clock; made absolute when applied.
                expires_at: Timestamp(minutes),
            }
        }),
        (hold.clone(), reason()).prop_map(|(hold, reason)| ProviderCommand::ReleaseHold { hold, reason }),
        hold.clone().prop_map(|hold| ProviderCommand::ConfirmHold { hold }),
        // Several holds at once (the matcher's batch): all or none.
        prop::collection::vec((hold, service_kind(), 0u32..4, -5i64..60), 1..4).prop_map(|holds| {
            ProviderCommand::PlaceHolds(
                holds
                    .into_iter()
                    .map(|(hold, service, units, minutes)| HoldRequest {
                        hold,
                        need: NeedId::from_u128(1),
                        service,
                        units,
                        expires_at: Timestamp(minutes),
                    })
                    .collect(),
            )
        }),
    ]
}

fn service_kind() -> impl Strategy<Value = ServiceKind> {
    prop::sample::select(SERVICES.to_vec())
}

/// Turns a relative deadline (minutes) into an absolute one at `now`.
fn at(now: Timestamp, command: ProviderCommand) -> ProviderCommand {
    match command {
        ProviderCommand::PlaceHold {
            hold,
            need,
            service,
            units,
            expires_at,
        } => ProviderCommand::PlaceHold {
            hold,
            need,
            service,
            units,
            expires_at: now.plus_secs(expires_at.0 * 60),
        },
        ProviderCommand::PlaceHolds(holds) => ProviderCommand::PlaceHolds(
            holds
                .into_iter()
                .map(|h| HoldRequest {
                    expires_at: now.plus_secs(h.expires_at.0 * 60),
                    ..h
                })
                .collect(),
        ),
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn provider_capacity_is_never_negative_and_holds_fit_free_capacity(
        steps in prop::collection::vec((0i64..600, provider_command()), 1..60)
    ) {
        let mut state = Provider::default().evolve(&ProviderEvent::Registered(Box::new(sample::shelter(OrgId::from_u128(1)))));
        // The sample shelter offers beds and counseling; legal is refused.
        let mut now = NIGHT;
        let mut placed_total = 0u32;
        for (dt, command) in steps {
            now = now.plus_secs(dt);
            let command = at(now, command);
            let Ok(events) = state.decide(&command, now) else { continue };
            for event in &events {
                if let ProviderEvent::HoldPlaced { service, units, expires_at, .. } = event {
                    prop_assert!(*units <= state.units(*service).free(), "hold exceeds free capacity");
                    prop_assert!(*units > 0);
                    prop_assert!(*expires_at > now);
                    prop_assert!(!state.suspended);
                }
                if let ProviderEvent::HoldConfirmed { hold } = event {
                    prop_assert!(state.holds.contains_key(hold), "confirmed an unknown hold");
                }
                state = state.evolve(event);
            }
            prop_assert!(!state.capacity.contains_key(&ServiceKind::Legal), "unoffered service got capacity");
            for service in SERVICES {
                let units = state.units(service);
                prop_assert!(units.held <= units.declared, "free capacity negative: {units:?}");
                let held: u32 = state.holds.values().filter(|h| h.service == service).map(|h| h.units).sum();
                prop_assert_eq!(held, units.held);
            }
            let placed: u32 = state.capacity.values().map(|u| u.placed).sum();
            prop_assert!(placed >= placed_total, "placements went backwards");
            placed_total = placed;
        }
    }
}

fn donation_command() -> impl Strategy<Value = DonationCommand> {
    let hold = (0u128..6).prop_map(HoldId::from_u128);
    prop_oneof![
        8 => (hold.clone(), 0u32..5, -5i64..600).prop_map(|(hold, units, minutes)| DonationCommand::PlaceHold {
            hold, need: NeedId::from_u128(1), units, expires_at: Timestamp(minutes)
        }),
        3 => (hold.clone(), reason()).prop_map(|(hold, reason)| DonationCommand::ReleaseHold { hold, reason }),
        3 => hold.prop_map(|hold| DonationCommand::ConfirmHold { hold }),
        1 => Just(DonationCommand::Withdraw),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_donation_is_never_held_outside_its_window_nor_over_quantity(
        start_offset in -3i64..3,
        steps in prop::collection::vec((0i64..(36 * 3600), donation_command()), 1..60)
    ) {
        let mut offer = sample::hotel_rooms(OrgId::from_u128(2));
        offer.window.end = offer.window.start.plus_secs(2 * 24 * 3600);
        let window = offer.window;
        let mut state = Donation::default().evolve(&DonationEvent::Registered(offer.clone()));
        let mut now = window.start.plus_secs(start_offset * 3600);
        for (dt, command) in steps {
            now = now.plus_secs(dt);
            let command = match command {
                DonationCommand::PlaceHold { hold, need, units, expires_at } => DonationCommand::PlaceHold {
                    hold, need, units, expires_at: now.plus_secs(expires_at.0 * 60),
                },
                other => other,
            };
            let Ok(events) = state.decide(&command, now) else { continue };
            for event in &events {
                if let DonationEvent::HoldPlaced { units, expires_at, .. } = event {
                    prop_assert!(window.contains(now), "held outside the window");
                    prop_assert!(*expires_at <= window.end, "hold outlives the window");
                    prop_assert!(*units <= state.free());
                    prop_assert!(*units <= offer.max_units_per_need.unwrap());
                }
                state = state.evolve(event);
            }
            prop_assert!(state.held + state.used <= offer.quantity);
            prop_assert_eq!(state.held, state.holds.values().map(|h| h.units).sum::<u32>());
            if state.withdrawn {
                prop_assert_eq!(state.held, 0);
                prop_assert_eq!(state.free(), 0);
            }
        }
    }
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        (0u128..3).prop_map(|i| Target::Provider(ProviderId::from_u128(i))),
        (0u128..2).prop_map(|i| Target::Donation(DonationId::from_u128(i))),
    ]
}

fn need_command() -> impl Strategy<Value = NeedCommand> {
    let decline = prop_oneof![
        Just(DeclineReason::NoCapacity),
        Just(DeclineReason::NotEligible),
        Just(DeclineReason::SafetyConcern),
        Just(DeclineReason::Other)
    ];
    prop_oneof![
        4 => (target(), -2i64..30).prop_map(|(target, minutes)| NeedCommand::Propose(Proposal {
            target, hold: HoldId::from_u128((minutes + 10) as u128), deadline: Timestamp(minutes)
        })),
        2 => target().prop_map(|by| NeedCommand::Accept { by }),
        2 => (target(), decline).prop_map(|(by, reason)| NeedCommand::Decline { by, reason }),
        2 => Just(NeedCommand::Expire),
        1 => Just(NeedCommand::Waitlist),
        1 => (-2i64..240).prop_map(|minutes| NeedCommand::HoldBack { until: Timestamp(minutes) }),
        1 => Just(NeedCommand::Cancel),
        1 => Just(NeedCommand::Fulfil),
    ]
}

/// The lifecycle as a table: every (from, to) a need may take.
fn allowed(from: NeedStatus, to: NeedStatus) -> bool {
    use NeedStatus::*;
    match from {
        New => to == Requested,
        Requested | Declined | Expired => matches!(to, Proposed | Waitlisted | Cancelled),
        // Waitlisted again: held back, or no longer (`Need::held_until`).
        Waitlisted => matches!(to, Proposed | Waitlisted | Cancelled),
        Proposed => matches!(to, Accepted | Declined | Expired | Cancelled),
        Accepted => matches!(to, Fulfilled | Cancelled),
        Cancelled | Fulfilled => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn a_need_moves_only_along_its_lifecycle(
        steps in prop::collection::vec((0i64..900, need_command()), 1..40)
    ) {
        let request = sample::shelter_need(OrgId::from_u128(3), PlacementId::from_u128(4), None);
        let mut now = NIGHT;
        let first = Need::default().decide(&NeedCommand::Request(request), now).unwrap();
        let mut state = Need::replay(&first);
        for (dt, command) in steps {
            now = now.plus_secs(dt);
            let command = match command {
                NeedCommand::Propose(p) => NeedCommand::Propose(Proposal { deadline: now.plus_secs(p.deadline.0 * 60), ..p }),
                NeedCommand::HoldBack { until } => NeedCommand::HoldBack { until: now.plus_secs(until.0 * 60) },
                other => other,
            };
            let before = state.clone();
            let outcome = state.decide(&command, now);
            if before.status.is_final() {
                prop_assert!(outcome.is_err(), "a final need accepted {command:?}");
            }
            let Ok(events) = outcome else { continue };
            for event in &events {
                if let NeedEvent::Proposed(p) = event {
                    prop_assert!(!state.excluded.contains(&p.target), "re-proposed to an excluded target");
                }
                if let NeedEvent::Accepted(p) = event {
                    prop_assert!(now < p.deadline, "accepted after the deadline");
                }
                if let NeedEvent::Expired(p) = event {
                    prop_assert!(now >= p.deadline, "expired before the deadline");
                }
                let from = state.status;
                state = state.evolve(event);
                prop_assert!(allowed(from, state.status), "illegal transition {from:?} -> {:?}", state.status);
            }
            prop_assert_eq!(state.proposal.is_some(), matches!(state.status, NeedStatus::Proposed | NeedStatus::Accepted | NeedStatus::Fulfilled));
            prop_assert!(before.excluded.is_subset(&state.excluded), "exclusions are never forgotten");
            // A wait's end is kept exactly while held back, and only then,
            // and it is in the future; every change is a step of its own (a
            // waitlisting again included), which the matcher tells apart.
            let held = events.iter().find_map(|e| match e { NeedEvent::HeldBack { until } => Some(*until), _ => None });
            prop_assert_eq!(state.held_until, held);
            prop_assert!(held.is_none_or(|until| until > now), "held back until a past instant");
            prop_assert!(state.step() != before.step(), "a change that keeps the need's step: {:?}", command);
        }
    }
}
