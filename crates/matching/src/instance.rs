//! A problem instance as data: what `refer solve` reads (JSON, documented in
//! docs/matching.md) and the quality report generates.

use crate::assign::{assign, max_placeable, measure, Earlier, Metrics, Mode, Request, Standing, Stock};
use crate::catalog::{Catalog, Offer, Site};
use refer_domain::donation::{DonationEvent, DonationOffer};
use refer_domain::eligibility::Eligibility;
use refer_domain::geo::Location;
use refer_domain::ids::{DonationId, NeedId, OrgId, PlacementId, ProviderId};
use refer_domain::kinds::{ResourceKind, ServiceKind};
use refer_domain::need::{GroupMembership, Target};
use refer_domain::provider::{ProviderEvent, ProviderProfile, MAX_UNITS};
use refer_domain::request::NeedSpec;
use refer_domain::time::{Hours, TimeWindow};
use refer_domain::{DomainError, Freshness, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Everything the engine decides on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// The instant of matching (ms since the Unix epoch): opening hours and
    /// donation windows are checked at this instant.
    pub now: Timestamp,
    /// How long declared capacity stays fresh (seconds; the coalition's
    /// limit, 24 hours when absent): the matcher prefers fresh capacity to
    /// stale at equal priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fresh_for_secs: Option<i64>,
    #[serde(default)]
    pub providers: Vec<ProviderSite>,
    #[serde(default)]
    pub donations: Vec<DonatedResource>,
    /// In arrival order (what the greedy rule follows).
    pub needs: Vec<OpenNeed>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSite {
    pub id: ProviderId,
    pub location: Location,
    pub hours: Hours,
    pub eligibility: Eligibility,
    /// Free units per service offered here.
    pub free: BTreeMap<ServiceKind, u32>,
    /// When the provider declared each service's capacity (ms since the
    /// Unix epoch). A service without one is of unknown age: stale.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub as_of: BTreeMap<ServiceKind, Timestamp>,
}

impl ProviderSite {
    /// The site as the events that make it: registered as `name` of `org`,
    /// each capacity declared when the file says (of unknown age without).
    pub fn events(&self, org: OrgId, name: String) -> Vec<ProviderEvent> {
        let profile = ProviderProfile {
            org,
            name,
            services: self.free.keys().copied().collect(),
            eligibility: self.eligibility.clone(),
            location: self.location.clone(),
            hours: self.hours.clone(),
        };
        let mut events = vec![ProviderEvent::Registered(Box::new(profile))];
        for (service, declared) in &self.free {
            events.push(match self.as_of.get(service) {
                Some(at) => ProviderEvent::CapacitySetAt {
                    service: *service,
                    declared: *declared,
                    at: *at,
                },
                None => ProviderEvent::CapacitySet {
                    service: *service,
                    declared: *declared,
                },
            });
        }
        events
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DonatedResource {
    pub id: DonationId,
    pub kind: ResourceKind,
    pub location: Location,
    pub window: TimeWindow,
    #[serde(default)]
    pub max_units_per_need: Option<u32>,
    pub eligibility: Eligibility,
    pub free: u32,
}

impl DonatedResource {
    /// The donation as the event that registers it for `org`.
    pub fn event(&self, org: OrgId) -> DonationEvent {
        DonationEvent::Registered(DonationOffer {
            org,
            kind: self.kind,
            quantity: self.free,
            window: self.window,
            location: self.location.clone(),
            max_units_per_need: self.max_units_per_need,
            eligibility: self.eligibility.clone(),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenNeed {
    pub id: NeedId,
    /// The person's bundle: needs with the same placement are one person's.
    pub placement: PlacementId,
    #[serde(default)]
    pub group: Option<GroupMembership>,
    pub spec: NeedSpec,
    /// Targets it may not go to (declined before).
    #[serde(default)]
    pub exclude: Vec<Target>,
    /// What decisions before this batch left: the person's bed already
    /// placed, group mates already placed (see `Earlier`).
    #[serde(default, skip_serializing_if = "Earlier::is_empty")]
    pub earlier: Earlier,
    /// `now` (default), `held_back` (a soon or routine need that may wait
    /// for the urgent needs expected) or `forecast` (an urgent need
    /// expected): the policy that protects the urgent (docs/matching.md).
    #[serde(default, skip_serializing_if = "is_now")]
    pub standing: Standing,
}

fn is_now(standing: &Standing) -> bool {
    *standing == Standing::Now
}

/// Where each need goes, and how good that is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Solution {
    pub mode: Mode,
    pub placements: Vec<Placement>,
    pub metrics: Metrics,
    /// An upper bound on the needs that could be placed at all, any tier
    /// (maximum flow, parties counted as one unit; exact without parties).
    pub max_placeable: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub need: NeedId,
    /// `None`: waitlisted.
    pub target: Option<Target>,
    /// The distance that counts: from the person to a bed, from their bed to the rest.
    pub km: Option<u32>,
}

fn unique<T: Ord>(ids: impl Iterator<Item = T>, field: &str) -> Result<(), DomainError> {
    let mut seen = BTreeSet::new();
    for (i, id) in ids.enumerate() {
        if !seen.insert(id) {
            return Err(DomainError::invalid(
                format!("{field}[{i}].id"),
                "repeats an earlier id",
            ));
        }
    }
    Ok(())
}

fn units(free: u32, field: String) -> Result<(), DomainError> {
    if free > MAX_UNITS {
        return Err(DomainError::invalid(field, format!("must be at most {MAX_UNITS}")));
    }
    Ok(())
}

impl Instance {
    /// Checks every field, naming the first bad one (`needs[3].spec.profile.languages`).
    pub fn validate(&self) -> Result<(), DomainError> {
        unique(self.providers.iter().map(|p| p.id), "providers")?;
        unique(self.donations.iter().map(|d| d.id), "donations")?;
        unique(self.needs.iter().map(|n| n.id), "needs")?;
        self.freshness()?;
        for (i, p) in self.providers.iter().enumerate() {
            let field = format!("providers[{i}]");
            p.location.validate(&format!("{field}.location"))?;
            p.hours.validate(&format!("{field}.hours"))?;
            p.eligibility.validate(&format!("{field}.eligibility"))?;
            for (service, free) in &p.free {
                units(*free, format!("{field}.free.{service:?}"))?;
            }
            if let Some(service) = p.as_of.keys().find(|s| !p.free.contains_key(s)) {
                return Err(DomainError::invalid(
                    format!("{field}.as_of.{service:?}"),
                    "names a service without free units",
                ));
            }
        }
        for (i, d) in self.donations.iter().enumerate() {
            let field = format!("donations[{i}]");
            d.location.validate(&format!("{field}.location"))?;
            d.window.validate(&format!("{field}.window"))?;
            d.eligibility.validate(&format!("{field}.eligibility"))?;
            units(d.free, format!("{field}.free"))?;
        }
        for (i, n) in self.needs.iter().enumerate() {
            n.spec.validate(&format!("needs[{i}].spec"))?;
            if let Some(bed) = &n.earlier.bed {
                bed.validate(&format!("needs[{i}].earlier.bed"))?;
            }
        }
        Ok(())
    }

    /// The coalition's freshness limit the file states (24 hours by default).
    pub fn freshness(&self) -> Result<Freshness, DomainError> {
        match self.fresh_for_secs {
            None => Ok(Freshness::default()),
            Some(secs) => Freshness::new(secs).map_err(|_| {
                DomainError::invalid(
                    "fresh_for_secs",
                    "must be between 60 and 31622400 (one minute to 366 days)",
                )
            }),
        }
    }

    /// Whether each catalog site's units are stale at `now` (donations
    /// never are: an offer's window says when it holds).
    pub fn stale(&self) -> Vec<bool> {
        let freshness = self.freshness().unwrap_or_default();
        let mut stale = Vec::new();
        for p in &self.providers {
            for service in p.free.keys() {
                stale.push(freshness.is_stale(p.as_of.get(service).copied(), self.now));
            }
        }
        stale.extend(self.donations.iter().map(|_| false));
        stale
    }

    /// The sites (one per provider service, one per donation) and their free units.
    pub fn catalog(&self) -> (Catalog, Vec<u32>) {
        let mut sites = Vec::new();
        let mut free = Vec::new();
        for p in &self.providers {
            for (service, units) in &p.free {
                sites.push(Site {
                    target: Target::Provider(p.id),
                    offer: Offer::Service {
                        service: *service,
                        hours: p.hours.clone(),
                    },
                    location: p.location.clone(),
                    eligibility: p.eligibility.clone(),
                });
                free.push(*units);
            }
        }
        for d in &self.donations {
            sites.push(Site {
                target: Target::Donation(d.id),
                offer: Offer::Resource {
                    kind: d.kind,
                    window: d.window,
                    max_units_per_need: d.max_units_per_need,
                },
                location: d.location.clone(),
                eligibility: d.eligibility.clone(),
            });
            free.push(d.free);
        }
        (Catalog::new(sites), free)
    }

    pub fn requests(&self) -> Vec<Request<'_>> {
        self.needs
            .iter()
            .map(|n| Request {
                standing: n.standing,
                spec: &n.spec,
                person: n.placement,
                group: n.group,
                exclude: n.exclude.clone(),
                earlier: n.earlier.clone(),
            })
            .collect()
    }

    /// Solves the instance (call `validate` first on untrusted input).
    pub fn solve(&self, mode: Mode) -> Solution {
        let (catalog, free) = self.catalog();
        let stale = self.stale();
        let stock = Stock {
            free: &|s| free[s],
            stale: &|s| stale[s],
        };
        let requests = self.requests();
        let choices = assign(&catalog, stock, self.now, &requests, mode);
        let placements = self
            .needs
            .iter()
            .zip(&choices)
            .map(|(n, c)| Placement {
                need: n.id,
                target: c.map(|(site, _)| catalog.site(site).target),
                km: c.map(|(_, km)| km),
            })
            .collect();
        Solution {
            mode,
            placements,
            metrics: measure(&catalog, &free, &|s| stale[s], self.now, &requests, &choices),
            max_placeable: max_placeable(&catalog, &free, self.now, &requests),
        }
    }
}
