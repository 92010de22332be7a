//! A coalition's figures over a period (docs/reports.md): folded from the
//! stream's events in order ([`Ledger::apply`]), so rebuilt from nothing by
//! reading the stream again, and published only through
//! `refer_disclosure::publish`.
//!
//! The ledger keeps, per need, only what a figure counts (kind, coarse
//! origin region, the profile's bands, when it was requested, proposed,
//! answered) and never a sealed item: no figure can carry more.

use refer_disclosure::{Figure, Published, ShapeError, Table};
use refer_domain::events::need::{DeclineReason, NeedEvent, NeedStatus, Target};
use refer_domain::events::{donation::DonationEvent, provider::ProviderEvent};
use refer_domain::ids::OrgId;
use refer_domain::kinds::{NeedKind, ResourceKind};
use refer_domain::profile::{Accessibility, AgeBand, Gender};
use refer_domain::{Envelope, Event, Timestamp};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

mod period;
pub use period::{Period, PeriodError};
/// The disclosure step every published figure goes through.
pub use refer_disclosure as disclosure;

/// What one need contributes to figures.
#[derive(Clone, Debug)]
struct NeedRecord {
    agency: OrgId,
    kind: NeedKind,
    region: String,
    age_band: AgeBand,
    gender: Gender,
    languages: BTreeSet<String>,
    accessibility: BTreeSet<Accessibility>,
    requested_at: Timestamp,
    /// Every status it took, in order.
    statuses: Vec<(Timestamp, NeedStatus)>,
    first_proposed_at: Option<Timestamp>,
    accepted: Option<(Timestamp, Target)>,
    /// Everyone it was proposed to.
    offered_to: BTreeSet<Target>,
    /// Each decline: when, why, and by which site or donation.
    declines: Vec<(Timestamp, DeclineReason, Target)>,
}

impl NeedRecord {
    /// Its status at the end of `period` (its last before `period.end`).
    fn status_by(&self, period: &Period) -> NeedStatus {
        self.statuses
            .iter()
            .take_while(|(at, _)| *at < period.end)
            .last()
            .map_or(NeedStatus::Requested, |(_, s)| *s)
    }
}

/// Every figure's raw material, folded from the stream.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    needs: BTreeMap<Uuid, NeedRecord>,
    /// Each site's or donation's partner organisation.
    partners: BTreeMap<Target, OrgId>,
    donations: BTreeMap<Uuid, (OrgId, ResourceKind)>,
    /// (when, organisation, is a business) for each partner's own act:
    /// partners active.
    acts: Vec<(Timestamp, OrgId, bool)>,
    /// (when, donation) of each donation offered, and of each used.
    offered: Vec<(Timestamp, Uuid)>,
    used: Vec<(Timestamp, Uuid)>,
}

impl Ledger {
    /// Folds one event (in stream order).
    pub fn apply(&mut self, envelope: &Envelope) {
        let id = envelope.aggregate.id;
        let at = envelope.occurred_at;
        match &envelope.event {
            Event::Need(event) => self.apply_need(id, at, event),
            Event::Provider(event) => {
                let site = Target::Provider(refer_domain::ids::ProviderId::from_uuid(id));
                if let ProviderEvent::Registered(profile) = event {
                    self.partners.insert(site, profile.org);
                }
                // A partner's own acts (not the matcher's holds on it).
                let own = matches!(
                    event,
                    ProviderEvent::Registered(_)
                        | ProviderEvent::ProfileUpdated(_)
                        | ProviderEvent::CapacitySet { .. }
                        | ProviderEvent::CapacityAdjusted { .. }
                        | ProviderEvent::CapacitySetAt { .. }
                        | ProviderEvent::CapacityAdjustedAt { .. }
                        | ProviderEvent::Suspended
                        | ProviderEvent::Resumed
                );
                if let (true, Some(org)) = (own, self.partners.get(&site)) {
                    self.acts.push((at, *org, false));
                }
            }
            Event::Donation(event) => {
                let donation = Target::Donation(refer_domain::ids::DonationId::from_uuid(id));
                match event {
                    DonationEvent::Registered(offer) | DonationEvent::RegisteredAt { offer, .. } => {
                        self.partners.insert(donation, offer.org);
                        self.donations.insert(id, (offer.org, offer.kind));
                        self.offered.push((at, id));
                        self.acts.push((at, offer.org, true));
                    }
                    DonationEvent::Withdrawn => {
                        if let Some((org, _)) = self.donations.get(&id) {
                            self.acts.push((at, *org, true));
                        }
                    }
                    DonationEvent::HoldConfirmed { .. } => self.used.push((at, id)),
                    DonationEvent::HoldPlaced { .. } | DonationEvent::HoldReleased { .. } => {}
                }
            }
            Event::Placement(_) | Event::Standing(_) => {}
        }
    }

    fn apply_need(&mut self, id: Uuid, at: Timestamp, event: &NeedEvent) {
        if let NeedEvent::Requested(request) = event {
            let profile = &request.spec.profile;
            self.needs.insert(
                id,
                NeedRecord {
                    agency: request.agency,
                    kind: request.spec.kind,
                    region: request.spec.constraints.origin.region.as_str().to_owned(),
                    age_band: profile.age_band,
                    gender: profile.gender,
                    languages: profile.languages.iter().map(|l| l.as_str().to_owned()).collect(),
                    accessibility: profile.accessibility.clone(),
                    requested_at: at,
                    statuses: Vec::new(),
                    first_proposed_at: None,
                    accepted: None,
                    offered_to: BTreeSet::new(),
                    declines: Vec::new(),
                },
            );
        }
        let Some(need) = self.needs.get_mut(&id) else { return };
        match event {
            NeedEvent::Proposed(p) => {
                need.first_proposed_at.get_or_insert(at);
                need.offered_to.insert(p.target);
            }
            NeedEvent::Accepted(p) => need.accepted = Some((at, p.target)),
            NeedEvent::Declined { reason, proposal } => need.declines.push((at, *reason, proposal.target)),
            _ => {}
        }
        if let Some(status) = event.status_after() {
            need.statuses.push((at, status));
        }
    }

    /// The figures of `period` for `scope`.
    pub fn report(&self, period: &Period, scope: Scope) -> Report {
        // An organisation's own work: the needs it requested, and the needs
        // placed with it (their outcome is its placement). A need it was
        // only offered is not in its report: it saw that need's referral,
        // no more, and what became of the person elsewhere is not its to
        // read. Its own declines count in the declines table.
        let ours = |target: &Target, org: OrgId| self.partners.get(target) == Some(&org);
        let in_scope = |need: &NeedRecord| match scope {
            Scope::Coalition => true,
            Scope::Organisation(org) => {
                need.agency == org
                    || need.accepted.is_some_and(|(_, t)| ours(&t, org))
                        && matches!(outcome_column(need.status_by(period)), PLACED | CANCELLED)
            }
        };
        let needs: Vec<&NeedRecord> = self
            .needs
            .values()
            .filter(|n| period.contains(n.requested_at) && in_scope(n))
            .collect();
        let provider_of = |target: &Target| {
            self.partners
                .get(target)
                .map(|org| org.as_uuid().as_u64_pair().0 ^ org.as_uuid().as_u64_pair().1)
        };
        let kinds: Vec<String> = NeedKind::ALL.iter().map(label).collect();

        // Outcomes: each need once, by its status at the period's end; the
        // placed column is drawn from the providers that accepted.
        let mut row = vec![Figure::count(0); OUTCOMES.len()];
        row[PLACED] = Figure::from_providers(0, []);
        let mut outcomes = vec![row; kinds.len()];
        for need in &needs {
            let column = outcome_column(need.status_by(period));
            let cell = &mut outcomes[kind_row(need.kind)][column];
            cell.count += 1;
            if let (PLACED, Some((_, target)), Some(providers)) = (column, need.accepted, &mut cell.providers) {
                providers.extend(provider_of(&target));
            }
        }
        let mut declines = vec![vec![Figure::count(0); REASONS.len()]; kinds.len()];
        let declined_here = |need: &NeedRecord, target: &Target| match scope {
            Scope::Coalition => true,
            Scope::Organisation(org) => need.agency == org || ours(target, org),
        };
        let offered_here = |need: &NeedRecord| match scope {
            Scope::Coalition => false,
            Scope::Organisation(org) => need.agency != org && need.offered_to.iter().any(|t| ours(t, org)),
        };
        let declines_of = self
            .needs
            .values()
            .filter(|n| period.contains(n.requested_at) && (in_scope(n) || offered_here(n)));
        for need in declines_of {
            for (at, reason, target) in &need.declines {
                if period.contains(*at) && declined_here(need, target) {
                    declines[kind_row(need.kind)][reason_column(*reason)].count += 1;
                }
            }
        }

        // Unmet: neither placed nor cancelled by the period's end. An
        // organisation sees the profile (region, gender, ...) of needs it
        // requested only: a site that was offered a need saw no more than
        // its referral, and its report shows no more.
        let requested_here = |n: &NeedRecord| match scope {
            Scope::Coalition => true,
            Scope::Organisation(org) => n.agency == org,
        };
        let unmet: Vec<&NeedRecord> = needs
            .iter()
            .copied()
            .filter(|n| requested_here(n) && !matches!(outcome_column(n.status_by(period)), PLACED | CANCELLED))
            .collect();
        let by = |name: &str, keys: &dyn Fn(&NeedRecord) -> Vec<String>| {
            let columns: BTreeSet<String> = unmet.iter().flat_map(|n| keys(n)).collect();
            let columns: Vec<String> = columns.into_iter().collect();
            let mut cells = vec![vec![Figure::count(0); columns.len()]; kinds.len()];
            for need in &unmet {
                for key in keys(need) {
                    let j = columns.binary_search(&key).expect("a column of its own");
                    cells[kind_row(need.kind)][j].count += 1;
                }
            }
            Table {
                title: format!("unmet need by kind and {name}"),
                rows: kinds.clone(),
                columns,
                cells,
            }
        };
        let mut tables = vec![
            Table {
                title: "needs by kind and outcome".into(),
                rows: kinds.clone(),
                columns: OUTCOMES.iter().map(|s| (*s).to_owned()).collect(),
                cells: outcomes,
            },
            Table {
                title: "declines by kind and reason".into(),
                rows: kinds.clone(),
                columns: REASONS.iter().map(label).collect(),
                cells: declines,
            },
            by("region", &|n| vec![n.region.clone()]),
            by("age band", &|n| vec![label(&n.age_band)]),
            by("gender", &|n| vec![label(&n.gender)]),
            // A person who speaks two languages counts in both columns.
            by("language", &|n| n.languages.iter().cloned().collect()),
            by("accessibility", &|n| n.accessibility.iter().map(label).collect()),
        ];

        // Donations offered and used in the period, drawn from businesses.
        let resources: Vec<ResourceKind> = ResourceKind::ALL.to_vec();
        let mut donations = vec![vec![Figure::from_providers(0, []); 2]; resources.len()];
        let own = |org: &OrgId| match scope {
            Scope::Coalition => true,
            Scope::Organisation(o) => o == *org,
        };
        for (column, list) in [&self.offered, &self.used].into_iter().enumerate() {
            for (at, id) in list {
                let Some((org, kind)) = self.donations.get(id) else {
                    continue;
                };
                if period.contains(*at) && own(org) {
                    let i = resources.iter().position(|r| r == kind).expect("every resource kind");
                    let cell = &mut donations[i][column];
                    cell.count += 1;
                    cell.providers
                        .get_or_insert_with(BTreeSet::new)
                        .extend(provider_of(&Target::Donation(
                            refer_domain::ids::DonationId::from_uuid(*id),
                        )));
                }
            }
        }
        tables.push(Table {
            title: "donations by kind, offered and used".into(),
            rows: resources.iter().map(label).collect(),
            columns: vec!["offered".into(), "used".into()],
            cells: donations,
        });

        let active = |business: bool| {
            self.acts
                .iter()
                .filter(|(at, org, b)| period.contains(*at) && *b == business && own(org))
                .map(|(_, org, _)| *org)
                .collect::<BTreeSet<_>>()
                .len() as u64
        };
        Report {
            period: period.clone(),
            scope,
            tables: tables.into_iter().filter(|t| !t.columns.is_empty()).collect(),
            times: delays(&needs, period, &self.partners),
            months: period
                .each_month()
                .iter()
                .map(|month| Month {
                    month: month.first_month(),
                    times: delays(
                        &needs
                            .iter()
                            .copied()
                            .filter(|n| month.contains(n.requested_at))
                            .collect::<Vec<_>>(),
                        month,
                        &self.partners,
                    ),
                })
                .collect(),
            providers_active: active(false),
            businesses_active: active(true),
        }
    }
}

/// How long `needs` waited, over those that reached each step in `period`.
fn delays(needs: &[&NeedRecord], period: &Period, partners: &BTreeMap<Target, OrgId>) -> Vec<Delay> {
    // Each delay with the sites and donations it is drawn from: those the
    // needs were offered to (first proposal), those that accepted them.
    type Reached = fn(&NeedRecord) -> Option<(Timestamp, Vec<Target>)>;
    let delay = |name: &str, reached: Reached| {
        let mut minutes = Vec::new();
        let mut drawn_from: BTreeSet<&OrgId> = BTreeSet::new();
        for n in needs {
            let Some((at, targets)) = reached(n).filter(|(at, _)| period.contains(*at)) else {
                continue;
            };
            minutes.push((at.millis() - n.requested_at.millis()) / 60_000);
            drawn_from.extend(targets.iter().filter_map(|t| partners.get(t)));
        }
        minutes.sort_unstable();
        Delay {
            name: name.to_owned(),
            needs: minutes.len() as u64,
            providers: drawn_from.len(),
            median_minutes: percentile(&minutes, 50),
            p90_minutes: percentile(&minutes, 90),
        }
    };
    vec![
        delay("request to first proposal", |n| {
            Some((n.first_proposed_at?, n.offered_to.iter().copied().collect()))
        }),
        delay("request to acceptance", |n| n.accepted.map(|(at, t)| (at, vec![t]))),
    ]
}

/// Whose work a report covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Scope {
    /// Every organisation's (admins).
    Coalition,
    /// One organisation's own: needs it requested, needs placed with its
    /// sites or donations, its own declines; its own donations.
    Organisation(OrgId),
}

/// How long needs waited: over the needs that reached the step in the period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delay {
    pub name: String,
    pub needs: u64,
    /// The partner organisations it is drawn from (offered or accepting).
    pub providers: usize,
    pub median_minutes: Option<i64>,
    pub p90_minutes: Option<i64>,
}

/// The figures of one period, before publishing: for the coalition's own
/// eyes (admins), never to leave it as they are.
#[derive(Clone, Debug)]
pub struct Report {
    pub period: Period,
    pub scope: Scope,
    pub tables: Vec<Table>,
    pub times: Vec<Delay>,
    /// The same delays month by month, for the needs requested in each.
    pub months: Vec<Month>,
    pub providers_active: u64,
    pub businesses_active: u64,
}

/// One month's delays.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Month {
    pub month: String,
    pub times: Vec<Delay>,
}

/// A report as it may leave the coalition: every table through the
/// disclosure step; a delay over fewer than 5 needs, and a count of active
/// partners under 5, withheld; the period in months.
#[derive(Clone, Debug, Serialize)]
pub struct PublishedReport {
    pub from_month: String,
    pub to_month: String,
    pub tables: Vec<Published>,
    pub times: Vec<PublishedDelay>,
    pub months: Vec<PublishedMonth>,
    pub providers_active: refer_disclosure::Shown,
    pub businesses_active: refer_disclosure::Shown,
}

#[derive(Clone, Debug, Serialize)]
pub struct PublishedMonth {
    pub month: String,
    pub times: Vec<PublishedDelay>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PublishedDelay {
    pub name: String,
    /// `None`: drawn from fewer than 5 needs.
    pub median_minutes: Option<i64>,
    pub p90_minutes: Option<i64>,
}

impl Report {
    pub fn publish(&self) -> Result<PublishedReport, ShapeError> {
        let small = |n: u64| {
            if n < refer_disclosure::SMALLEST_COUNT {
                refer_disclosure::Shown::UnderFive
            } else {
                refer_disclosure::Shown::Count(n)
            }
        };
        Ok(PublishedReport {
            from_month: self.period.first_month(),
            to_month: self.period.last_month(),
            tables: refer_disclosure::publish_linked(&self.tables, &links(&self.tables))?,
            times: publish_delays(&self.times),
            months: self
                .months
                .iter()
                .map(|m| PublishedMonth {
                    month: m.month.clone(),
                    times: publish_delays(&m.times),
                })
                .collect(),
            providers_active: small(self.providers_active),
            businesses_active: small(self.businesses_active),
        })
    }
}

/// A delay over fewer than 5 needs, or drawn from fewer than 3 partners,
/// is withheld.
fn publish_delays(times: &[Delay]) -> Vec<PublishedDelay> {
    times
        .iter()
        .map(|d| {
            // Rules 1 and 2: over 5 needs or more, drawn from 3 partners or more.
            let enough =
                d.needs >= refer_disclosure::SMALLEST_COUNT && d.providers >= refer_disclosure::FEWEST_PROVIDERS;
            PublishedDelay {
                name: d.name.clone(),
                median_minutes: d.median_minutes.filter(|_| enough),
                p90_minutes: d.p90_minutes.filter(|_| enough),
            }
        })
        .collect()
}

/// How the report's tables hold the same figures (docs/reports.md, "Safe
/// to publish"): the unmet breakdowns that count each need once (region,
/// age band, gender) share their totals, and the outcome table's unmet
/// columns add up to them (to zero, every reader knows, when nothing was
/// unmet and no breakdown is published). The language and accessibility
/// breakdowns count mentions: not the same figures.
fn links(tables: &[Table]) -> Vec<refer_disclosure::Link> {
    use refer_disclosure::Link;
    let find = |title: &str| tables.iter().position(|t| t.title == title);
    let once: Vec<usize> = ["region", "age band", "gender"]
        .iter()
        .filter_map(|by| find(&format!("unmet need by kind and {by}")))
        .collect();
    let mut links = vec![Link::SameRows(once.clone())];
    if let Some(outcomes) = find("needs by kind and outcome") {
        links.push(Link::Part {
            table: outcomes,
            columns: (0..OUTCOMES.len()).filter(|&c| c != PLACED && c != CANCELLED).collect(),
            of: once.first().copied(),
        });
    }
    links
}

const OUTCOMES: [&str; 6] = ["placed", "waitlisted", "declined", "expired", "cancelled", "open"];
const PLACED: usize = 0;
const CANCELLED: usize = 4;
const REASONS: [DeclineReason; 4] = [
    DeclineReason::NoCapacity,
    DeclineReason::NotEligible,
    DeclineReason::SafetyConcern,
    DeclineReason::Other,
];

fn outcome_column(status: NeedStatus) -> usize {
    use NeedStatus as S;
    match status {
        S::Accepted | S::Fulfilled => PLACED,
        S::Waitlisted => 1,
        S::Declined => 2,
        S::Expired => 3,
        S::Cancelled => CANCELLED,
        S::New | S::Requested | S::Proposed => 5,
    }
}

fn reason_column(reason: DeclineReason) -> usize {
    REASONS.iter().position(|r| *r == reason).expect("every reason")
}

fn kind_row(kind: NeedKind) -> usize {
    NeedKind::ALL.iter().position(|k| *k == kind).expect("every kind")
}

/// `HotelRoomNight` as "hotel room night".
fn label(value: &impl std::fmt::Debug) -> String {
    let name = format!("{value:?}");
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// The `p`th percentile of sorted `values` (nearest rank).
fn percentile(values: &[i64], p: usize) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let rank = (p * values.len()).div_ceil(100).max(1);
    Some(values[rank - 1])
}
