//! Partitions: matching split by region, for scale-out. A partition is a
//! set of regions; its matcher keeps only the providers, donations and needs
//! that lie in them, and decides only about those, under its own lease.
//!
//! Where an aggregate lies is fixed by its first event and never changes (a
//! site's location and a need's origin are set at registration and at
//! request): a provider or donation lies in its location's region, a need in
//! its origin's region. So a partition decides at the first event and later
//! events follow: an event of an aggregate this partition never admitted is
//! not its own. A need is offered only the sites of its own partition; one
//! whose constraints reach beyond it (a distance across the boundary, every
//! region but its own avoided) waits in its partition until a site there
//! fits. Intake keeps a group's people in one origin region
//! (`PlacementRequest::one_origin`), so a group is never split.

use refer_domain::donation::DonationEvent;
use refer_domain::geo::RegionCode;
use refer_domain::need::NeedEvent;
use refer_domain::provider::ProviderEvent;
use refer_domain::Event;
use std::collections::BTreeSet;

/// The lease of the matcher of the whole map (no partition).
const WHOLE_LEASE: &str = "matcher";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Partition {
    /// `None`: the whole map, every region (one matcher for everything).
    named: Option<(String, BTreeSet<RegionCode>)>,
}

/// Where an aggregate's first event says it lies.
enum Lies {
    In(RegionCode),
    /// Not a first event: the aggregate lies where its first event said.
    Known,
    /// Nothing the matcher folds (a placement's file, a standing hand-off).
    Elsewhere,
}

impl Partition {
    /// Every region: what a matcher with no partition configured matches.
    pub fn whole() -> Self {
        Self::default()
    }

    /// The partition `name` of `regions` (at least one).
    pub fn of(name: impl Into<String>, regions: BTreeSet<RegionCode>) -> Self {
        assert!(!regions.is_empty(), "a partition holds at least one region");
        Self {
            named: Some((name.into(), regions)),
        }
    }

    /// The partition's name (`None` for the whole map).
    pub fn name(&self) -> Option<&str> {
        self.named.as_ref().map(|(name, _)| name.as_str())
    }

    /// The partition's regions (`None` for the whole map).
    pub fn regions(&self) -> Option<&BTreeSet<RegionCode>> {
        self.named.as_ref().map(|(_, regions)| regions)
    }

    /// The lease its matchers share: one of them decides for it.
    pub fn lease(&self) -> String {
        match self.name() {
            None => WHOLE_LEASE.to_owned(),
            Some(name) => format!("{WHOLE_LEASE}-{name}"),
        }
    }

    pub fn holds(&self, region: &RegionCode) -> bool {
        self.regions().is_none_or(|regions| regions.contains(region))
    }

    /// Whether `event` is this partition's to fold. `known` says whether the
    /// partition admitted the aggregate's first event (asked only when
    /// that decides: never for the whole map).
    pub fn admits(&self, event: &Event, known: impl FnOnce() -> bool) -> bool {
        if self.named.is_none() {
            return true;
        }
        match lies(event) {
            Lies::In(region) => self.holds(&region),
            Lies::Known => known(),
            Lies::Elsewhere => false,
        }
    }
}

fn lies(event: &Event) -> Lies {
    match event {
        Event::Provider(ProviderEvent::Registered(profile)) => Lies::In(profile.location.region.clone()),
        Event::Donation(e @ (DonationEvent::Registered(_) | DonationEvent::RegisteredAt { .. })) => {
            Lies::In(e.offer().expect("a registration").location.region.clone())
        }
        Event::Need(NeedEvent::Requested(request)) => Lies::In(request.spec.constraints.origin.region.clone()),
        Event::Provider(_) | Event::Donation(_) | Event::Need(_) => Lies::Known,
        Event::Placement(_) | Event::Standing(_) => Lies::Elsewhere,
    }
}
