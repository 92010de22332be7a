//! The hard constraints, fast. Every site a need could use is compiled once
//! (eligibility as bit masks, languages and regions as small integers, the
//! location as a unit vector), so one need is checked against thousands of
//! sites in microseconds. The rules are the domain's: a site passes here
//! exactly when `Eligibility::admits`, `Constraints::allows_site`, the
//! opening hours and the free units all say yes (tested against them).

use refer_domain::eligibility::{Eligibility, ServiceArea};
use refer_domain::geo::{chord2, chord_km, Location, EARTH_RADIUS_KM};
use refer_domain::kinds::{NeedKind, ResourceKind, ServiceKind};
use refer_domain::need::Target;
use refer_domain::profile::{Accessibility, AgeBand, Gender, Language};
use refer_domain::request::NeedSpec;
use refer_domain::time::{Hours, TimeWindow};
use refer_domain::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a site offers, and when it takes referrals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Offer {
    /// One service of a provider partner, during its opening hours.
    Service { service: ServiceKind, hours: Hours },
    /// A donated resource, within its window.
    Resource {
        kind: ResourceKind,
        window: TimeWindow,
        max_units_per_need: Option<u32>,
    },
}

impl Offer {
    pub fn serves(&self, need: NeedKind) -> bool {
        match self {
            Offer::Service { service, .. } => need.provider_service() == Some(*service),
            Offer::Resource { kind, .. } => need.served_by_resource(*kind),
        }
    }

    /// Whether the site takes referrals at `now` (its hours or window).
    pub fn open_at(&self, now: Timestamp) -> bool {
        match self {
            Offer::Service { hours, .. } => hours.is_open(now),
            Offer::Resource { window, .. } => window.contains(now),
        }
    }
}

/// One place needs can go: one service of one provider, or one donation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    pub target: Target,
    pub offer: Offer,
    pub location: Location,
    pub eligibility: Eligibility,
}

/// "At most `km` kilometres" as a bound on the squared chord. Only points in
/// a thin band around the bound pay for the exact kilometres, so the answer
/// is always the same as `GeoPoint::distance_km(..) <= km`.
#[derive(Clone, Copy, Debug)]
struct Within {
    km: u32,
    surely: f64,
    never: f64,
}

impl Within {
    fn new(km: u32) -> Self {
        let half_angle = (f64::from(km) / (2.0 * EARTH_RADIUS_KM)).min(std::f64::consts::FRAC_PI_2);
        let bound = 4.0 * half_angle.sin().powi(2);
        Self {
            km,
            surely: bound * (1.0 - 1e-9),
            never: bound * (1.0 + 1e-9),
        }
    }

    fn admits(&self, chord2: f64) -> bool {
        chord2 <= self.surely || (chord2 <= self.never && chord_km(chord2) <= self.km)
    }
}

/// A set of interned languages: a bit per language for the first 256 seen,
/// a short list beyond that.
#[derive(Clone, Debug, Default)]
struct Languages {
    bits: [u64; 4],
    more: Vec<u32>,
}

impl Languages {
    fn insert(&mut self, id: u32) {
        match self.bits.get_mut(id as usize / 64) {
            Some(word) => *word |= 1 << (id % 64),
            None => self.more.push(id),
        }
    }

    fn meets(&self, other: &Languages) -> bool {
        self.bits.iter().zip(&other.bits).any(|(a, b)| a & b != 0) || self.more.iter().any(|id| other.more.contains(id))
    }
}

#[derive(Clone, Debug)]
enum Area {
    Anywhere,
    Regions(Vec<u32>),
    Within(Within),
}

#[derive(Clone, Debug)]
struct Compiled {
    ages: u8,
    genders: u8,
    accessibility: u8,
    languages: Languages,
    area: Area,
    region: u32,
    unit: [f64; 3],
    max_units_per_need: u32,
}

fn age_bit(band: AgeBand) -> u8 {
    match band {
        AgeBand::Juvenile => 1,
        AgeBand::Adult => 2,
    }
}

fn gender_bit(gender: Gender) -> u8 {
    match gender {
        Gender::Female => 1,
        Gender::Male => 2,
        Gender::NonBinary => 4,
    }
}

fn accessibility_bit(need: Accessibility) -> u8 {
    match need {
        Accessibility::Wheelchair => 1,
        Accessibility::SignLanguage => 2,
        Accessibility::VisualImpairment => 4,
        Accessibility::ServiceAnimal => 8,
    }
}

/// Sites of one kind bucketed by whole degrees of latitude and longitude,
/// so a need with a distance limit only looks at the cells it can reach.
#[derive(Clone, Debug, Default)]
struct Grid {
    all: Vec<u32>,
    cells: HashMap<(i32, i32), Vec<u32>>,
}

impl Grid {
    fn cell(lat: f64, lon: f64) -> (i32, i32) {
        (lat.floor() as i32, lon.floor() as i32)
    }

    fn push(&mut self, index: u32, lat: f64, lon: f64) {
        self.all.push(index);
        self.cells.entry(Self::cell(lat, lon)).or_default().push(index);
    }

    /// The cells within `km` of (`lat`, `lon`), or `None` when that is
    /// most of the map anyway (no limit, near a pole, across the date line).
    /// On a sphere, points within angle `t` of latitude `p` lie within `t` of
    /// its latitude and `asin(sin t / cos p)` of its longitude.
    fn reach(&self, lat: f64, lon: f64, km: Option<u32>) -> Option<Vec<&[u32]>> {
        let angle = f64::from(km?) / EARTH_RADIUS_KM;
        let ratio = angle.sin() / lat.to_radians().cos();
        if angle >= std::f64::consts::FRAC_PI_2 || !(0.0..0.99).contains(&ratio) {
            return None;
        }
        // A margin well beyond rounding, far below a cell.
        let dlat = angle.to_degrees() + 0.01;
        let dlon = ratio.asin().to_degrees() + 0.01;
        let (south, north) = ((lat - dlat).floor() as i32, (lat + dlat).floor() as i32);
        let (west, east) = ((lon - dlon).floor() as i32, (lon + dlon).floor() as i32);
        if west < -180 || east >= 180 || (north - south + 1) * (east - west + 1) > self.cells.len() as i32 * 4 {
            return None;
        }
        let mut reached = Vec::new();
        for row in south..=north {
            for col in west..=east {
                if let Some(sites) = self.cells.get(&(row, col)) {
                    reached.push(sites.as_slice());
                }
            }
        }
        Some(reached)
    }
}

/// What a person needs, or a site offers, as one bit each.
fn accessibility_mask(set: &std::collections::BTreeSet<Accessibility>) -> u8 {
    set.iter().map(|a| accessibility_bit(*a)).fold(0, |a, b| a | b)
}

/// Every site, compiled for fast checks, indexed by the need kind it serves.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    sites: Vec<Site>,
    compiled: Vec<Compiled>,
    by_kind: HashMap<NeedKind, Grid>,
    /// A target's sites (a provider has one per service it offers).
    by_target: HashMap<Target, Vec<usize>>,
    languages: HashMap<Language, u32>,
    regions: HashMap<String, u32>,
}

/// A need, compiled against one catalog.
#[derive(Clone, Debug)]
pub struct Query {
    kind: NeedKind,
    units: u32,
    age: u8,
    gender: u8,
    accessibility: u8,
    languages: Languages,
    /// `None` when no site lists the origin's region.
    origin_region: Option<u32>,
    unit: [f64; 3],
    /// The origin in degrees, for the grid.
    origin: (f64, f64),
    within: Option<Within>,
    avoid: Vec<u32>,
    exclude: Vec<Target>,
}

impl Query {
    pub fn units(&self) -> u32 {
        self.units
    }

    pub fn kind(&self) -> NeedKind {
        self.kind
    }
}

impl Catalog {
    pub fn new(sites: impl IntoIterator<Item = Site>) -> Self {
        let mut catalog = Catalog::default();
        for site in sites {
            catalog.add(site);
        }
        catalog
    }

    fn intern_region(&mut self, code: &str) -> u32 {
        let next = self.regions.len() as u32;
        *self.regions.entry(code.to_owned()).or_insert(next)
    }

    /// Adds a site at the end (also after the catalog was built: a new
    /// registration).
    pub fn add(&mut self, site: Site) {
        let e = &site.eligibility;
        let mut languages = Languages::default();
        for language in &e.languages {
            let next = self.languages.len() as u32;
            languages.insert(*self.languages.entry(language.clone()).or_insert(next));
        }
        let area = match &e.service_area {
            ServiceArea::Anywhere => Area::Anywhere,
            ServiceArea::Regions(regions) => {
                let codes: Vec<String> = regions.iter().map(|r| r.as_str().to_owned()).collect();
                Area::Regions(codes.iter().map(|c| self.intern_region(c)).collect())
            }
            ServiceArea::RadiusKm(km) => Area::Within(Within::new(*km)),
        };
        let compiled = Compiled {
            ages: e.age_bands.iter().map(|b| age_bit(*b)).fold(0, |a, b| a | b),
            genders: e.genders.iter().map(|g| gender_bit(*g)).fold(0, |a, b| a | b),
            accessibility: accessibility_mask(&e.accessibility),
            languages,
            area,
            region: self.intern_region(site.location.region.as_str()),
            unit: site.location.point.unit_vector(),
            max_units_per_need: match site.offer {
                Offer::Resource {
                    max_units_per_need: Some(max),
                    ..
                } => max,
                _ => u32::MAX,
            },
        };
        let index = self.sites.len() as u32;
        let (lat, lon) = (site.location.point.lat(), site.location.point.lon());
        for kind in NeedKind::ALL {
            if site.offer.serves(kind) {
                self.by_kind.entry(kind).or_default().push(index, lat, lon);
            }
        }
        self.by_target.entry(site.target).or_default().push(index as usize);
        self.sites.push(site);
        self.compiled.push(compiled);
    }

    pub fn len(&self) -> usize {
        self.sites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    pub fn site(&self, index: usize) -> &Site {
        &self.sites[index]
    }

    /// The sites of `target`, in catalog order.
    pub fn sites_of(&self, target: Target) -> impl Iterator<Item = usize> + '_ {
        self.by_target.get(&target).into_iter().flatten().copied()
    }

    /// Whether site `index`, with `free()` units, may take the need now,
    /// and if so how far it is in km.
    pub fn option_at(&self, index: usize, query: &Query, now: Timestamp, free: impl FnOnce() -> u32) -> Option<u32> {
        if !self.sites[index].offer.serves(query.kind) {
            return None;
        }
        self.admits(index, query, now, free).map(chord_km)
    }

    /// Compiles a need; `exclude` lists targets it may not go to (declined
    /// before, or where a group member must be kept apart from).
    pub fn query(&self, spec: &NeedSpec, exclude: &[Target]) -> Query {
        let profile = &spec.profile;
        let mut languages = Languages::default();
        for language in &profile.languages {
            if let Some(id) = self.languages.get(language) {
                languages.insert(*id);
            }
        }
        let constraints = &spec.constraints;
        Query {
            kind: spec.kind,
            units: spec.units(),
            age: age_bit(profile.age_band),
            gender: gender_bit(profile.gender),
            accessibility: accessibility_mask(&profile.accessibility),
            languages,
            origin_region: self.regions.get(constraints.origin.region.as_str()).copied(),
            unit: constraints.origin.point.unit_vector(),
            origin: (constraints.origin.point.lat(), constraints.origin.point.lon()),
            within: constraints.max_distance_km.map(Within::new),
            avoid: constraints
                .avoid_regions
                .iter()
                .filter_map(|r| self.regions.get(r.as_str()).copied())
                .collect(),
            exclude: exclude.to_vec(),
        }
    }

    /// Whether site `index` may take the need, given `free()` units there:
    /// every hard constraint. Returns the squared chord to the origin. Free
    /// units are asked for last: they are looked up in the caller's state,
    /// and most sites fail a cheaper test first.
    fn admits(&self, index: usize, query: &Query, now: Timestamp, free: impl FnOnce() -> u32) -> Option<f64> {
        let c = &self.compiled[index];
        let cheap = query.units <= c.max_units_per_need
            && c.ages & query.age != 0
            && c.genders & query.gender != 0
            && query.accessibility & !c.accessibility == 0
            && c.languages.meets(&query.languages);
        if !cheap {
            return None;
        }
        let chord2 = chord2(&query.unit, &c.unit);
        let in_area = match &c.area {
            Area::Anywhere => true,
            Area::Regions(regions) => query.origin_region.is_some_and(|r| regions.contains(&r)),
            Area::Within(within) => within.admits(chord2),
        };
        let site = &self.sites[index];
        let fits = in_area
            && query.within.is_none_or(|w| w.admits(chord2))
            && !query.avoid.contains(&c.region)
            && !query.exclude.contains(&site.target)
            && site.offer.open_at(now)
            && free() >= query.units;
        fits.then_some(chord2)
    }

    /// Every site that may take the need, nearest first (ties: catalog
    /// order), with its distance in km. `free(i)` gives site `i`'s free units.
    pub fn options(&self, query: &Query, now: Timestamp, free: impl Fn(usize) -> u32) -> Vec<(usize, u32)> {
        let mut out: Vec<(usize, u32)> = self
            .candidates(query)
            .filter_map(|i| self.admits(i, query, now, || free(i)).map(|c| (i, chord_km(c))))
            .collect();
        out.sort_by_key(|(i, km)| (*km, *i));
        out
    }

    /// The online rule: the nearest site that may take the need (ties: the
    /// smaller distance before rounding, then catalog order), and its km.
    pub fn nearest(&self, query: &Query, now: Timestamp, free: impl Fn(usize) -> u32) -> Option<(usize, u32)> {
        let mut best: Option<(f64, usize)> = None;
        for i in self.candidates(query) {
            if let Some(c) = self.admits(i, query, now, || free(i)) {
                if best.is_none_or(|(b, bi)| c < b || (c == b && i < bi)) {
                    best = Some((c, i));
                }
            }
        }
        best.map(|(c, i)| (i, chord_km(c)))
    }

    /// Kilometres between two sites (a person's bundle: bed to clinic).
    pub fn km_between(&self, a: usize, b: usize) -> u32 {
        chord_km(chord2(&self.compiled[a].unit, &self.compiled[b].unit))
    }

    /// Sites of the need's kind that may be within its distance limit.
    fn candidates(&self, query: &Query) -> Box<dyn Iterator<Item = usize> + '_> {
        let Some(grid) = self.by_kind.get(&query.kind) else {
            return Box::new(std::iter::empty());
        };
        let limit = query.within.map(|w| w.km);
        match grid.reach(query.origin.0, query.origin.1, limit) {
            Some(cells) => Box::new(cells.into_iter().flatten().map(|i| *i as usize)),
            None => Box::new(grid.all.iter().map(|i| *i as usize)),
        }
    }
}
