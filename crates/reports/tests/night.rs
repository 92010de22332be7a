//! A generated month of nights, written as the services write it (events on
//! the stream, in order), and its report checked against figures counted
//! straight from the plan that generated it, not from the events.

use proptest::prelude::*;
use refer_disclosure::{Shown, Table};
use refer_domain::event::{AggregateKind, AggregateRef, CommandMeta};
use refer_domain::events::need::{DeclineReason, NeedEvent, Proposal, Target};
use refer_domain::events::provider::ProviderEvent;
use refer_domain::ids::{CorrelationId, EventId, HoldId, OrgId, PlacementId, ProviderId};
use refer_domain::kinds::{NeedKind, ServiceKind};
use refer_domain::profile::AgeBand;
use refer_domain::{sample, Envelope, Event, Timestamp};
use refer_reports::{Ledger, Period, Scope};

/// 2026-12-01T00:00Z, and the month before it.
const DECEMBER: i64 = 1_796_083_200_000;
const MINUTE: i64 = 60_000;
const REGIONS: [&str; 3] = ["US-06-037", "US-06-059", "US-06-065"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Placed,
    Declined,
    Expired,
    Cancelled,
    Waitlisted,
    Open,
}

/// One need of the plan.
#[derive(Clone, Debug)]
struct Planned {
    kind: NeedKind,
    region: &'static str,
    juvenile: bool,
    /// Minutes after the month's start (negative: the month before).
    requested: i64,
    /// Minutes to the proposal, and from it to the answer.
    to_proposal: i64,
    to_answer: i64,
    site: usize,
    agency: usize,
    outcome: Outcome,
}

fn planned() -> impl Strategy<Value = Planned> {
    (
        0usize..3,
        0usize..3,
        any::<bool>(),
        // some answered after December's end
        -2_000i64..44_600,
        1i64..30,
        1i64..120,
        0usize..4,
        0usize..2,
        prop_oneof![
            3 => Just(Outcome::Placed),
            1 => Just(Outcome::Declined),
            1 => Just(Outcome::Expired),
            1 => Just(Outcome::Cancelled),
            1 => Just(Outcome::Waitlisted),
            1 => Just(Outcome::Open),
        ],
    )
        .prop_map(
            |(k, r, juvenile, requested, to_proposal, to_answer, site, agency, outcome)| Planned {
                kind: [NeedKind::Shelter, NeedKind::Counseling, NeedKind::Medical][k],
                region: REGIONS[r],
                juvenile,
                requested,
                to_proposal,
                to_answer,
                site,
                agency,
                outcome,
            },
        )
}

fn org(n: usize) -> OrgId {
    OrgId::from_u128(1_000 + n as u128)
}

fn site(n: usize) -> ProviderId {
    ProviderId::from_u128(2_000 + n as u128)
}

/// The plan as the stream holds it: sites first, then every event in time order.
fn events(plan: &[Planned]) -> Vec<Envelope> {
    let mut timed: Vec<(i64, AggregateRef, Event)> = Vec::new();
    for s in 0..4 {
        let mut profile = sample::shelter(org(10 + s));
        profile.services = [ServiceKind::ShelterBed, ServiceKind::Counseling, ServiceKind::Medical].into();
        timed.push((
            DECEMBER - 100 * 24 * 60 * MINUTE,
            AggregateRef {
                kind: AggregateKind::Provider,
                id: site(s).as_uuid(),
            },
            Event::Provider(ProviderEvent::Registered(Box::new(profile))),
        ));
    }
    for (n, need) in plan.iter().enumerate() {
        let id = AggregateRef {
            kind: AggregateKind::Need,
            id: uuid::Uuid::from_u128(5_000 + n as u128),
        };
        let at = DECEMBER + need.requested * MINUTE;
        let mut request = sample::shelter_need(org(need.agency), PlacementId::from_u128(n as u128), None);
        request.spec.kind = need.kind;
        request.spec.constraints.origin.region = refer_domain::geo::RegionCode::new(need.region).unwrap();
        if need.juvenile {
            request.spec.profile.age_band = AgeBand::Juvenile;
        }
        timed.push((at, id, Event::Need(NeedEvent::Requested(request))));
        if need.outcome == Outcome::Open {
            continue;
        }
        let proposed = at + need.to_proposal * MINUTE;
        let answered = proposed + need.to_answer * MINUTE;
        let proposal = Proposal {
            target: Target::Provider(site(need.site)),
            hold: HoldId::from_u128(n as u128),
            deadline: Timestamp::from_millis(answered + 60 * MINUTE),
        };
        let answer = match need.outcome {
            Outcome::Placed => NeedEvent::Accepted(proposal),
            Outcome::Declined => NeedEvent::Declined {
                proposal,
                reason: DeclineReason::NoCapacity,
            },
            Outcome::Expired => NeedEvent::Expired(proposal),
            Outcome::Cancelled => NeedEvent::Cancelled {
                pending: Some(proposal),
            },
            Outcome::Waitlisted => NeedEvent::Expired(proposal),
            Outcome::Open => unreachable!(),
        };
        timed.push((proposed, id, Event::Need(NeedEvent::Proposed(proposal))));
        timed.push((answered, id, Event::Need(answer)));
        if need.outcome == Outcome::Waitlisted {
            timed.push((answered + MINUTE, id, Event::Need(NeedEvent::Waitlisted)));
        }
    }
    timed.sort_by_key(|(at, ..)| *at);
    timed
        .into_iter()
        .enumerate()
        .map(|(n, (at, aggregate, event))| {
            let meta = CommandMeta {
                occurred_at: Timestamp::from_millis(at),
                correlation_id: CorrelationId::from_u128(n as u128),
                causation_id: None,
                idempotency_key: None,
            };
            Envelope::new(EventId::from_u128(n as u128), aggregate, &meta, event)
        })
        .collect()
}

fn cell(table: &Table, row: &str, column: &str) -> u64 {
    let i = table.rows.iter().position(|r| r == row).unwrap();
    table
        .columns
        .iter()
        .position(|c| c == column)
        .map_or(0, |j| table.cells[i][j].count)
}

fn table<'a>(tables: &'a [Table], title: &str) -> &'a Table {
    tables.iter().find(|t| t.title == title).unwrap()
}

fn kind_label(kind: NeedKind) -> &'static str {
    match kind {
        NeedKind::Shelter => "shelter",
        NeedKind::Counseling => "counseling",
        NeedKind::Medical => "medical",
        _ => unreachable!(),
    }
}

/// Nearest-rank percentile, as docs/reports.md defines it.
fn nearest_rank(mut values: Vec<i64>, p: f64) -> Option<i64> {
    values.sort();
    let rank = ((p / 100.0) * values.len() as f64).ceil().max(1.0) as usize;
    values.get(rank - 1).copied()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn december_s_figures_are_the_plan_s(plan in proptest::collection::vec(planned(), 0..60)) {
        let mut ledger = Ledger::default();
        for envelope in events(&plan) {
            ledger.apply(&envelope);
        }
        let report = ledger.report(&Period::months("2026-12", "2026-12").unwrap(), Scope::Coalition);
        // The plan's December: requested from its first minute (November's are out).
        let december: Vec<&Planned> = plan.iter().filter(|p| p.requested >= 0 && p.requested < 31 * 24 * 60).collect();
        // Some answers fall after December: the need's outcome is then what it was at December's end.
        let end = 31 * 24 * 60;
        let outcome_by_end = |p: &Planned| {
            let proposed = p.requested + p.to_proposal;
            let answered = proposed + p.to_answer;
            match p.outcome {
                Outcome::Open => "open",
                _ if answered >= end => "open",
                Outcome::Placed => "placed",
                Outcome::Declined => "declined",
                Outcome::Expired => "expired",
                Outcome::Cancelled => "cancelled",
                Outcome::Waitlisted if answered + 1 >= end => "expired",
                Outcome::Waitlisted => "waitlisted",
            }
        };
        let outcomes = table(&report.tables, "needs by kind and outcome");
        for kind in [NeedKind::Shelter, NeedKind::Counseling, NeedKind::Medical] {
            for outcome in ["placed", "waitlisted", "declined", "expired", "cancelled", "open"] {
                let expected = december.iter().filter(|p| p.kind == kind && outcome_by_end(p) == outcome).count() as u64;
                prop_assert_eq!(cell(outcomes, kind_label(kind), outcome), expected, "{:?} {}", kind, outcome);
            }
        }
        let unmet = |p: &&&Planned| !matches!(outcome_by_end(p), "placed" | "cancelled");
        if let Some(by_region) = report.tables.iter().find(|t| t.title == "unmet need by kind and region") {
            for kind in [NeedKind::Shelter, NeedKind::Counseling, NeedKind::Medical] {
                for region in REGIONS {
                    let expected = december.iter().filter(|p| p.kind == kind && p.region == region).filter(unmet).count() as u64;
                    prop_assert_eq!(cell(by_region, kind_label(kind), region), expected);
                }
            }
        } else {
            prop_assert_eq!(december.iter().filter(unmet).count(), 0);
        }
        if let Some(by_age) = report.tables.iter().find(|t| t.title == "unmet need by kind and age band") {
            let juveniles = december.iter().filter(|p| p.juvenile).filter(unmet).count() as u64;
            let counted: u64 = ["shelter", "counseling", "medical"].iter().map(|k| cell(by_age, k, "juvenile")).sum();
            prop_assert_eq!(counted, juveniles);
        }
        let to_acceptance: Vec<i64> = december
            .iter()
            .filter(|p| p.outcome == Outcome::Placed && p.requested + p.to_proposal + p.to_answer < end)
            .map(|p| p.to_proposal + p.to_answer)
            .collect();
        let delay = report.times.iter().find(|d| d.name == "request to acceptance").unwrap();
        prop_assert_eq!(delay.needs, to_acceptance.len() as u64);
        prop_assert_eq!(delay.median_minutes, nearest_rank(to_acceptance.clone(), 50.0));
        prop_assert_eq!(delay.p90_minutes, nearest_rank(to_acceptance, 90.0));
        // Month by month over November and December, December's delays
        // are the plan's December ones.
        let both = ledger.report(&Period::months("2026-11", "2026-12").unwrap(), Scope::Coalition);
        let months: Vec<&str> = both.months.iter().map(|m| m.month.as_str()).collect();
        prop_assert_eq!(months, vec!["2026-11", "2026-12"]);
        prop_assert_eq!(&both.months[1].times[1], delay);

        // Published, nothing under 5 shows, and the needs table's shown
        // counts are still the plan's.
        let published = report.publish().unwrap();
        for t in &published.tables {
            for shown in t.cells.iter().flatten().chain(&t.row_totals).chain(&t.column_totals).chain([&t.total]) {
                if let Shown::Count(n) = shown {
                    prop_assert!(*n >= 5);
                }
            }
        }
        let shown_needs = &published.tables[0];
        if let Shown::Count(n) = shown_needs.total {
            prop_assert_eq!(n, december.len() as u64);
        }
        if delay.needs < 5 {
            prop_assert_eq!(published.times[1].median_minutes, None);
            prop_assert_eq!(published.months[0].times[1].median_minutes, None);
        }
    }
}

#[test]
fn an_agency_s_report_counts_its_own_needs_and_the_needs_referred_to_a_partner_s_sites() {
    let plan: Vec<Planned> = (0..8)
        .map(|n| Planned {
            kind: NeedKind::Shelter,
            region: REGIONS[0],
            juvenile: false,
            requested: 100 + n,
            to_proposal: 5,
            to_answer: 5,
            site: (n % 4) as usize,
            agency: (n % 2) as usize,
            outcome: Outcome::Placed,
        })
        .collect();
    let mut ledger = Ledger::default();
    for envelope in events(&plan) {
        ledger.apply(&envelope);
    }
    let december = Period::months("2026-12", "2026-12").unwrap();
    let total = |scope| {
        let report = ledger.report(&december, scope);
        cell(table(&report.tables, "needs by kind and outcome"), "shelter", "placed")
    };
    assert_eq!(total(Scope::Coalition), 8);
    assert_eq!(
        total(Scope::Organisation(org(0))),
        4,
        "agency 0 requested every other need"
    );
    assert_eq!(
        total(Scope::Organisation(org(10))),
        2,
        "site 0 (partner 10) was offered two"
    );
    assert_eq!(total(Scope::Organisation(org(99))), 0);
    let report = ledger.report(&december, Scope::Coalition);
    assert_eq!(
        report.providers_active, 0,
        "no partner acted in December (they registered in August)"
    );
}

#[test]
fn a_site_s_report_holds_its_placements_and_declines_never_what_became_of_a_need_it_declined() {
    // Given two needs a site declined (then waitlisted, no other site) and
    // one it accepted, all requested by agency 0,
    let planned = |n: i64, outcome| Planned {
        kind: NeedKind::Shelter,
        region: REGIONS[1],
        juvenile: n == 0,
        requested: 100 + n,
        to_proposal: 5,
        to_answer: 5,
        site: 0,
        agency: 0,
        outcome,
    };
    let plan = vec![
        planned(0, Outcome::Declined),
        planned(1, Outcome::Declined),
        planned(2, Outcome::Placed),
    ];
    let mut ledger = Ledger::default();
    for envelope in events(&plan) {
        ledger.apply(&envelope);
    }
    let december = Period::months("2026-12", "2026-12").unwrap();
    // when the site's partner reads its report,
    let site = ledger.report(&december, Scope::Organisation(org(10)));
    // then it holds its placement and its two declines,
    let outcomes = table(&site.tables, "needs by kind and outcome");
    assert_eq!(cell(outcomes, "shelter", "placed"), 1);
    let declines = table(&site.tables, "declines by kind and reason");
    assert_eq!(declines.cells.iter().flatten().map(|f| f.count).sum::<u64>(), 2);
    // and nothing of the declined people: not their outcome, not their
    // region or age band (a referral showed neither).
    assert_eq!(
        outcomes.cells.iter().flatten().map(|f| f.count).sum::<u64>(),
        1,
        "{outcomes:?}"
    );
    assert!(
        !site.tables.iter().any(|t| t.title.starts_with("unmet need")),
        "the site reads the profile of people it declined: {:?}",
        site.tables
    );
    // The agency that requested them reads all of it.
    let agency = ledger.report(&december, Scope::Organisation(org(0)));
    let outcomes = table(&agency.tables, "needs by kind and outcome");
    assert_eq!(outcomes.cells.iter().flatten().map(|f| f.count).sum::<u64>(), 3);
    assert!(agency.tables.iter().any(|t| t.title == "unmet need by kind and region"));
    // And publishing a site's report (its tables linked) works.
    site.publish().unwrap();
    agency.publish().unwrap();
}

#[test]
fn a_delay_drawn_from_fewer_than_three_partners_is_not_published() {
    let plan = |sites: usize| -> Vec<Planned> {
        (0..8)
            .map(|n| Planned {
                kind: NeedKind::Shelter,
                region: REGIONS[0],
                juvenile: false,
                requested: 100 + n,
                to_proposal: 5,
                to_answer: 7,
                site: n as usize % sites,
                agency: 0,
                outcome: Outcome::Placed,
            })
            .collect()
    };
    let december = Period::months("2026-12", "2026-12").unwrap();
    let published = |sites: usize| {
        let mut ledger = Ledger::default();
        for envelope in events(&plan(sites)) {
            ledger.apply(&envelope);
        }
        ledger.report(&december, Scope::Coalition).publish().unwrap()
    };
    // Eight needs, placed by two sites: how fast those two answer is theirs.
    let two = published(2);
    assert!(
        two.times
            .iter()
            .all(|d| d.median_minutes.is_none() && d.p90_minutes.is_none()),
        "{:?}",
        two.times
    );
    // By four sites: the coalition's figure.
    let four = published(4);
    assert_eq!(four.times[1].median_minutes, Some(12), "{:?}", four.times);
}

#[test]
fn donations_and_partners_count_in_the_month_they_act() {
    use refer_domain::events::donation::DonationEvent;
    use refer_domain::ids::DonationId;
    let at = |minutes: i64| Timestamp::from_millis(DECEMBER + minutes * MINUTE);
    let donation = |n: u128| AggregateRef {
        kind: AggregateKind::Donation,
        id: DonationId::from_u128(n).as_uuid(),
    };
    let provider = AggregateRef {
        kind: AggregateKind::Provider,
        id: site(0).as_uuid(),
    };
    let mut offer = sample::hotel_rooms(org(20));
    let timed = vec![
        (
            at(-100_000),
            provider,
            Event::Provider(ProviderEvent::Registered(Box::new(sample::shelter(org(10))))),
        ),
        // November: offered; December: another offered, and both used.
        (
            at(-50),
            donation(1),
            Event::Donation(DonationEvent::Registered(offer.clone())),
        ),
        (
            at(10),
            donation(2),
            Event::Donation(DonationEvent::Registered({
                offer.org = org(21);
                offer.clone()
            })),
        ),
        (
            at(20),
            donation(1),
            Event::Donation(DonationEvent::HoldConfirmed {
                hold: HoldId::from_u128(1),
            }),
        ),
        (
            at(30),
            donation(2),
            Event::Donation(DonationEvent::HoldConfirmed {
                hold: HoldId::from_u128(2),
            }),
        ),
        (
            at(40),
            provider,
            Event::Provider(ProviderEvent::CapacitySet {
                service: ServiceKind::ShelterBed,
                declared: 4,
            }),
        ),
        // January: used again, not December's.
        (
            at(31 * 24 * 60 + 5),
            donation(2),
            Event::Donation(DonationEvent::HoldConfirmed {
                hold: HoldId::from_u128(3),
            }),
        ),
    ];
    let mut ledger = Ledger::default();
    for (n, (when, aggregate, event)) in timed.into_iter().enumerate() {
        let meta = CommandMeta {
            occurred_at: when,
            correlation_id: CorrelationId::from_u128(n as u128),
            causation_id: None,
            idempotency_key: None,
        };
        ledger.apply(&Envelope::new(EventId::from_u128(n as u128), aggregate, &meta, event));
    }
    let report = ledger.report(&Period::months("2026-12", "2026-12").unwrap(), Scope::Coalition);
    let donations = table(&report.tables, "donations by kind, offered and used");
    assert_eq!(cell(donations, "hotel room night", "offered"), 1);
    assert_eq!(cell(donations, "hotel room night", "used"), 2);
    assert_eq!((report.providers_active, report.businesses_active), (1, 1));
    let november = ledger.report(&Period::months("2026-11", "2026-11").unwrap(), Scope::Coalition);
    let donations = table(&november.tables, "donations by kind, offered and used");
    assert_eq!(cell(donations, "hotel room night", "offered"), 1);
    assert_eq!(cell(donations, "hotel room night", "used"), 0);
    let theirs = ledger.report(
        &Period::months("2026-12", "2026-12").unwrap(),
        Scope::Organisation(org(21)),
    );
    let donations = table(&theirs.tables, "donations by kind, offered and used");
    assert_eq!(cell(donations, "hotel room night", "used"), 1, "business 21's own");
}
