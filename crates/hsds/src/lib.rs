//! Refer's directory in Open Referral's Human Services Data Specification
//! (HSDS 3.1), both ways: the non-confidential directory out as a page of
//! HSDS services ([`export`]), and partners' sites in from one ([`read`]).
//!
//! One Refer site is one HSDS `service`: its organisation nested, the
//! people it takes (`languages`, ages, and Refer's own terms as
//! `attributes`), where they may come from (`service_areas`), when it takes
//! referrals (`schedules`) and what is free with its "as of"
//! (`capacities`, HSDS `service_capacity`). A site's location is
//! confidential and never leaves: an export carries no `location`, only
//! service areas (docs/hsds.md has the whole mapping). An import takes a
//! location for a site new to Refer (`service_at_locations[].location`),
//! since matching needs one. The tabular form (a CSV file per table) is
//! read into the same page and checked by the same reader ([`read_tables`]).

mod export;
mod import;
mod tabular;
pub mod terms;

pub use export::export;
pub use import::{read, read_all, Problem, Refused, MAX_BYTES};
pub use tabular::{read_tables, TABLES};

use refer_domain::eligibility::Eligibility;
use refer_domain::geo::{GeoPoint, RegionCode};
use refer_domain::kinds::ServiceKind;
use refer_domain::time::Hours;
use refer_domain::Timestamp;
use std::collections::BTreeSet;
use uuid::Uuid;

/// A site as the directory lists it: everything but its location.
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    /// The site's id (the HSDS service's).
    pub site: Uuid,
    pub org: Uuid,
    /// The organisation's name in the partner registry.
    pub org_name: String,
    pub name: String,
    pub services: BTreeSet<ServiceKind>,
    pub eligibility: Eligibility,
    pub hours: Hours,
    /// The site's region (county): coarse, and already what its service
    /// area says when it takes people from nearby.
    pub region: RegionCode,
    /// Suspended: takes no new referrals.
    pub suspended: bool,
    /// What is free now, per service declared at least once.
    pub capacity: Vec<Available>,
}

/// Free units of one service, as of when the provider declared them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Available {
    pub service: ServiceKind,
    pub free: u32,
    pub as_of: Timestamp,
}

/// One site read from an HSDS file, checked: a listing, and the location
/// when the file gives one.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Its index in the file's `contents` (or among services.csv's rows).
    pub index: usize,
    /// Where it is, as its reader sees the file (`contents[3]`, or
    /// `services.csv line 5`).
    pub place: String,
    pub listing: Listing,
    pub point: Option<GeoPoint>,
}

/// The id of an object nested in a site's service (an area, a schedule, a
/// capacity): derived from the site and what the object is, so that every
/// export of the same directory names it the same.
fn nested_id(site: Uuid, what: &str) -> Uuid {
    Uuid::new_v5(&site, what.as_bytes())
}
