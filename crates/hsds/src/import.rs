//! Sites in from an HSDS file: every record checked, every problem named by
//! its place in the file, its field and the reason.

use crate::export::day_of;
use crate::terms::{self, Term};
use crate::{Available, Entry, Listing};
use refer_domain::eligibility::{Eligibility, ServiceArea};
use refer_domain::geo::{GeoPoint, RegionCode};
use refer_domain::kinds::ServiceKind;
use refer_domain::profile::{Accessibility, AgeBand, Gender, Language};
use refer_domain::provider::MAX_UNITS;
use refer_domain::time::{Hours, Weekday, WeeklySlot};
use refer_domain::Timestamp;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use uuid::Uuid;

/// The largest file an import reads: a coalition's whole directory is a
/// few megabytes; more is a mistake, refused before it is decoded.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

/// Why an import file was refused. Nothing of a refused file is written.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// Over [`MAX_BYTES`].
    TooLarge,
    NotUtf8 {
        offset: usize,
    },
    NotJson {
        line: usize,
        column: usize,
        reason: String,
    },
    /// Not a page of services (`{"contents": [...]}`) or an array of them.
    Shape(String),
    /// The records that cannot be imported, each with what is wrong.
    Records(Vec<Problem>),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => write!(f, "the file is over 16 MiB: an import takes at most {MAX_BYTES} bytes"),
            Self::NotUtf8 { offset } => write!(f, "the file is not UTF-8 text (byte {offset} is not)"),
            Self::NotJson { line, column, reason } => {
                write!(f, "the file is not JSON (line {line}, column {column}: {reason})")
            }
            Self::Shape(reason) => write!(f, "{reason}"),
            Self::Records(problems) => {
                let records: BTreeSet<usize> = problems.iter().map(|p| p.record).collect();
                write!(f, "{} record(s) cannot be imported:", records.len())?;
                for p in problems {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
        }
    }
}

/// What is wrong with one field of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The record's index in `contents` (or row among services.csv's).
    pub record: usize,
    /// Where the record is, as its reader sees the file: `contents[3]`, or
    /// `services.csv line 5` in the tabular form.
    pub place: String,
    /// The record's `id` when it has a usable one.
    pub id: Option<Uuid>,
    /// The field, as a path inside the record (`capacities[0].available`).
    pub field: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.place)?;
        if let Some(id) = self.id {
            write!(f, " (service {id})")?;
        }
        write!(f, ": {}: {}", self.field, self.reason)
    }
}

/// How far ahead of the importer's clock an `updated` may be (clocks
/// differ a little; a count "as of" next year would outrank every real one).
const AHEAD_MS: i64 = 3_600_000;

/// Reads an HSDS file's bytes: every record as an [`Entry`], or why the
/// file is refused (all of its problems, not the first). `now` is the
/// reader's clock, which no capacity's `updated` may be far ahead of.
pub fn read(bytes: &[u8], now: Timestamp) -> Result<Vec<Entry>, Refused> {
    match read_all(bytes, now)? {
        (entries, problems) if problems.is_empty() => Ok(entries),
        (_, problems) => Err(Refused::Records(problems)),
    }
}

/// [`read`], keeping the records that read well beside the problems of
/// the others (so that a caller can check those against more, and list
/// every problem at once).
pub fn read_all(bytes: &[u8], now: Timestamp) -> Result<(Vec<Entry>, Vec<Problem>), Refused> {
    read_page(&parse(bytes)?, now)
}

/// The file's JSON, or why it is none.
fn parse(bytes: &[u8]) -> Result<Value, Refused> {
    if bytes.len() > MAX_BYTES {
        return Err(Refused::TooLarge);
    }
    // A byte-order mark is no JSON, but editors write one: passed over.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| Refused::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| Refused::NotJson {
        line: e.line(),
        column: e.column(),
        reason: e.to_string().split(" at line").next().unwrap_or_default().to_owned(),
    })?;
    Ok(value)
}

/// [`read_all`] of a page already decoded (the JSON form, or the page the
/// tabular form makes).
pub(crate) fn read_page(value: &Value, now: Timestamp) -> Result<(Vec<Entry>, Vec<Problem>), Refused> {
    let records = match value {
        Value::Array(items) => items,
        Value::Object(page) => match page.get("contents") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(Refused::Shape(
                    "the file's object has no `contents` array (an HSDS page of services)".into(),
                ))
            }
        },
        _ => {
            return Err(Refused::Shape(
                "the file must be an HSDS page of services ({\"contents\": [...]}) or an array of services".into(),
            ))
        }
    };
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    let mut org_names: BTreeMap<Uuid, (String, usize)> = BTreeMap::new();
    for (index, record) in records.iter().enumerate() {
        let mut r = Record {
            index,
            id: None,
            now,
            problems: &mut problems,
        };
        let Some(entry) = r.entry(record) else { continue };
        let id = entry.listing.site;
        if let Some(first) = seen.insert(id, index) {
            r.problem("id", format!("repeats the id of contents[{first}]"));
            continue;
        }
        let l = &entry.listing;
        match org_names.get(&l.org) {
            Some((name, first)) if *name != l.org_name => {
                r.problem(
                    "organization.name",
                    format!("{:?} differs from {name:?}, its name in contents[{first}]", l.org_name),
                );
                continue;
            }
            Some(_) => {}
            None => {
                org_names.insert(l.org, (l.org_name.clone(), index));
            }
        }
        entries.push(entry);
    }
    Ok((entries, problems))
}

/// One record being read, collecting its problems.
struct Record<'a> {
    index: usize,
    id: Option<Uuid>,
    now: Timestamp,
    problems: &'a mut Vec<Problem>,
}

impl Record<'_> {
    fn problem(&mut self, field: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            record: self.index,
            place: format!("contents[{}]", self.index),
            id: self.id,
            field: field.to_owned(),
            reason: reason.into(),
        });
    }

    /// The record as an entry, or `None` with its problems recorded.
    fn entry(&mut self, record: &Value) -> Option<Entry> {
        let before = self.problems.len();
        let Some(s) = record.as_object() else {
            self.problem("", "must be an object (an HSDS service)");
            return None;
        };
        let site = self.uuid(s, "id", "id");
        self.id = site;
        let name = self.text(s, "name", "name");
        let suspended = self.status(s);
        let (org, org_name) = self.organization(s);
        let attributes = self.attributes(s);
        let capacity = self.capacities(s);
        let services = self.services(&attributes, &capacity);
        let eligibility = self.eligibility(s, &attributes);
        let region = self.region(s, &attributes);
        let hours = self.hours(s);
        let point = self.point(s);
        if let (Some(e), Some(region)) = (&eligibility, &region) {
            let areas = area_names(s);
            if matches!(e.service_area, ServiceArea::RadiusKm(_)) && areas.iter().any(|a| *a != region.as_str()) {
                self.problem(
                    "service_areas",
                    format!(
                        "name regions beside {}: a site takes people from within a radius or from regions, not both",
                        terms::RADIUS_KM
                    ),
                );
            }
        }
        if self.problems.len() > before {
            return None;
        }
        let (Some(site), Some(name), Some(suspended), Some(org), Some(org_name)) =
            (site, name, suspended, org, org_name)
        else {
            return None;
        };
        let (Some(services), Some(eligibility), Some(region), Some(hours), Some(capacity), Some(point)) =
            (services, eligibility, region, hours, capacity, point)
        else {
            return None;
        };
        let listing = Listing {
            site,
            org,
            org_name,
            name,
            services,
            eligibility,
            hours,
            region,
            suspended,
            capacity,
        };
        // The domain's own rules, the same a registration meets.
        if let Err(e) = listing.eligibility.validate("eligibility") {
            self.problem("eligibility", e.to_string());
            return None;
        }
        if let Err(e) = listing.hours.validate("schedules") {
            self.problem("schedules", e.to_string());
            return None;
        }
        Some(Entry {
            index: self.index,
            place: format!("contents[{}]", self.index),
            listing,
            point,
        })
    }

    fn uuid(&mut self, o: &Map<String, Value>, key: &str, field: &str) -> Option<Uuid> {
        match o.get(key) {
            None | Some(Value::Null) => {
                self.problem(field, "is missing (a UUID is required)");
                None
            }
            Some(Value::String(s)) => match Uuid::parse_str(s) {
                Ok(id) => Some(id),
                Err(_) => {
                    self.problem(field, format!("{s:?} is not a UUID"));
                    None
                }
            },
            Some(other) => {
                self.problem(field, format!("must be a string (a UUID), not {}", kind(other)));
                None
            }
        }
    }

    /// A required text of 1 to 120 printable characters.
    fn text(&mut self, o: &Map<String, Value>, key: &str, field: &str) -> Option<String> {
        match o.get(key) {
            None | Some(Value::Null) => {
                self.problem(field, "is missing");
                None
            }
            Some(Value::String(s)) => {
                let s = s.trim();
                let n = s.chars().count();
                if n == 0 || n > 120 || s.chars().any(char::is_control) {
                    self.problem(field, "must be 1 to 120 printable characters");
                    None
                } else {
                    Some(s.to_owned())
                }
            }
            Some(other) => {
                self.problem(field, format!("must be a string, not {}", kind(other)));
                None
            }
        }
    }

    fn optional_text<'v>(&mut self, o: &'v Map<String, Value>, key: &str, field: &str) -> Option<&'v str> {
        match o.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                self.problem(field, format!("must be a string, not {}", kind(other)));
                None
            }
        }
    }

    fn array<'v>(&mut self, o: &'v Map<String, Value>, key: &str) -> &'v [Value] {
        match o.get(key) {
            None | Some(Value::Null) => &[],
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.problem(key, format!("must be an array, not {}", kind(other)));
                &[]
            }
        }
    }

    /// The objects of array `key`, each with its path.
    fn objects<'v>(&mut self, o: &'v Map<String, Value>, key: &str) -> Vec<(String, &'v Map<String, Value>)> {
        let mut out = Vec::new();
        for (i, item) in self.array(o, key).iter().enumerate() {
            let path = format!("{key}[{i}]");
            match item.as_object() {
                Some(object) => out.push((path, object)),
                None => self.problem(&path, format!("must be an object, not {}", kind(item))),
            }
        }
        out
    }

    /// `Some(suspended)`: active takes referrals; inactive, temporarily
    /// closed and defunct do not.
    fn status(&mut self, s: &Map<String, Value>) -> Option<bool> {
        match s.get("status") {
            Some(Value::String(v)) => match v.as_str() {
                "active" => Some(false),
                "inactive" | "temporarily closed" | "defunct" => Some(true),
                other => {
                    self.problem(
                        "status",
                        format!("{other:?} is not one of active, inactive, defunct, temporarily closed"),
                    );
                    None
                }
            },
            None | Some(Value::Null) => {
                self.problem("status", "is missing");
                None
            }
            Some(other) => {
                self.problem("status", format!("must be a string, not {}", kind(other)));
                None
            }
        }
    }

    fn organization(&mut self, s: &Map<String, Value>) -> (Option<Uuid>, Option<String>) {
        match s.get("organization") {
            Some(Value::Object(o)) => {
                let id = self.uuid(o, "id", "organization.id");
                if let (Some(id), Some(Value::String(other))) = (id, s.get("organization_id")) {
                    if Uuid::parse_str(other).ok() != Some(id) {
                        self.problem("organization_id", "differs from organization.id");
                    }
                }
                (id, self.text(o, "name", "organization.name"))
            }
            None | Some(Value::Null) => {
                self.problem(
                    "organization",
                    "is missing (the organisation running the site, with its id and name)",
                );
                (None, None)
            }
            Some(other) => {
                self.problem("organization", format!("must be an object, not {}", kind(other)));
                (None, None)
            }
        }
    }

    /// Refer's attributes by link type, each value with its path; others
    /// (other taxonomies) are left alone.
    fn attributes(&mut self, s: &Map<String, Value>) -> BTreeMap<String, Vec<(String, String)>> {
        let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (path, a) in self.objects(s, "attributes") {
            let Some(link_type) = self.optional_text(a, "link_type", &format!("{path}.link_type")) else {
                continue;
            };
            if !link_type.starts_with("refer_") {
                continue;
            }
            let value_path = format!("{path}.value");
            if let Some(value) = self.optional_text(a, "value", &value_path) {
                out.entry(link_type.to_owned())
                    .or_default()
                    .push((value_path, value.to_owned()));
            } else {
                self.problem(&value_path, "is missing (a Refer attribute's code)");
            }
        }
        out
    }

    /// The codes of one kind of Refer attribute, each parsed.
    fn terms<T: Term + Ord>(
        &mut self,
        attributes: &BTreeMap<String, Vec<(String, String)>>,
        link_type: &str,
    ) -> BTreeSet<T> {
        let mut out = BTreeSet::new();
        for (path, code) in attributes.get(link_type).into_iter().flatten() {
            match T::parse(code) {
                Some(t) => {
                    out.insert(t);
                }
                None => self.problem(path, format!("{code:?} is not one of {}", T::codes())),
            }
        }
        out
    }

    /// Free units per service with their `updated`; `None` if any is bad.
    fn capacities(&mut self, s: &Map<String, Value>) -> Option<Vec<Available>> {
        let before = self.problems.len();
        let mut out: Vec<Available> = Vec::new();
        for (path, c) in self.objects(s, "capacities") {
            let unit = match c.get("unit") {
                Some(Value::Object(u)) => self.optional_text(u, "name", &format!("{path}.unit.name")),
                None | Some(Value::Null) => {
                    self.problem(&format!("{path}.unit"), "is missing");
                    None
                }
                Some(other) => {
                    self.problem(
                        &format!("{path}.unit"),
                        format!("must be an object, not {}", kind(other)),
                    );
                    None
                }
            };
            let service = unit.and_then(|u| {
                let kind = terms::kind_of_unit(u);
                if kind.is_none() {
                    let units: Vec<&str> = ServiceKind::ALL.iter().map(|k| terms::unit(*k)).collect();
                    self.problem(
                        &format!("{path}.unit.name"),
                        format!("{u:?} is not a unit Refer counts ({})", units.join(", ")),
                    );
                }
                kind
            });
            let free = match c.get("available") {
                // JSON has no integers apart: 4.0 and 1e2 are whole too.
                Some(Value::Number(n)) => match n.as_f64() {
                    Some(v) if v.fract() == 0.0 && (0.0..=f64::from(MAX_UNITS)).contains(&v) => Some(v as u32),
                    _ => {
                        self.problem(
                            &format!("{path}.available"),
                            format!("{n} is not a whole number from 0 to {MAX_UNITS}"),
                        );
                        None
                    }
                },
                None | Some(Value::Null) => {
                    self.problem(&format!("{path}.available"), "is missing");
                    None
                }
                Some(other) => {
                    self.problem(
                        &format!("{path}.available"),
                        format!("must be a number, not {}", kind(other)),
                    );
                    None
                }
            };
            let as_of = match c.get("updated") {
                Some(Value::String(t)) => match t.parse::<jiff::Timestamp>() {
                    Ok(at) if at.as_millisecond() > self.now.millis() + AHEAD_MS => {
                        self.problem(&format!("{path}.updated"), format!("{t:?} is in the future"));
                        None
                    }
                    Ok(at) => Some(Timestamp::from_millis(at.as_millisecond())),
                    Err(_) => {
                        self.problem(
                            &format!("{path}.updated"),
                            format!("{t:?} is not an RFC 3339 date-time"),
                        );
                        None
                    }
                },
                None | Some(Value::Null) => {
                    self.problem(&format!("{path}.updated"), "is missing (HSDS requires it)");
                    None
                }
                Some(other) => {
                    self.problem(
                        &format!("{path}.updated"),
                        format!("must be a string (a date-time), not {}", kind(other)),
                    );
                    None
                }
            };
            if let (Some(service), Some(free), Some(as_of)) = (service, free, as_of) {
                if out.iter().any(|a| a.service == service) {
                    self.problem(
                        &path,
                        format!("a second capacity counted in {:?}", terms::unit(service)),
                    );
                } else {
                    out.push(Available { service, free, as_of });
                }
            }
        }
        (self.problems.len() == before).then_some(out)
    }

    /// The kinds of service: Refer's attributes, else the units counted.
    fn services(
        &mut self,
        attributes: &BTreeMap<String, Vec<(String, String)>>,
        capacity: &Option<Vec<Available>>,
    ) -> Option<BTreeSet<ServiceKind>> {
        let mut kinds: BTreeSet<ServiceKind> = self.terms(attributes, terms::SERVICE_KIND);
        if attributes.contains_key(terms::SERVICE_KIND) {
            if let Some(capacity) = capacity {
                for a in capacity.iter().filter(|a| !kinds.contains(&a.service)) {
                    self.problem(
                        "capacities",
                        format!("counts {:?}, a service the site does not offer", terms::unit(a.service)),
                    );
                }
            }
        } else {
            kinds.extend(capacity.iter().flatten().map(|a| a.service));
        }
        if kinds.is_empty() {
            self.problem(
                "attributes",
                format!(
                    "no kind of service: an attribute with link_type {} ({}), or a capacity counted in one of its units",
                    terms::SERVICE_KIND,
                    ServiceKind::codes()
                ),
            );
            return None;
        }
        Some(kinds)
    }

    fn eligibility(
        &mut self,
        s: &Map<String, Value>,
        attributes: &BTreeMap<String, Vec<(String, String)>>,
    ) -> Option<Eligibility> {
        let before = self.problems.len();
        let mut age_bands: BTreeSet<AgeBand> = self.terms(attributes, terms::AGE_BAND);
        if !attributes.contains_key(terms::AGE_BAND) {
            // From HSDS's ages when Refer's terms are absent.
            let min = self.age(s, "minimum_age");
            let max = self.age(s, "maximum_age");
            if max.is_none_or(|m| m >= 18.0) {
                age_bands.insert(AgeBand::Adult);
            }
            if min.is_none_or(|m| m < 18.0) {
                age_bands.insert(AgeBand::Juvenile);
            }
        }
        let mut genders: BTreeSet<Gender> = self.terms(attributes, terms::GENDER);
        if !attributes.contains_key(terms::GENDER) {
            genders.extend(Gender::ALL.iter().copied());
        }
        let accessibility: BTreeSet<Accessibility> = self.terms(attributes, terms::ACCESSIBILITY);
        let mut languages = BTreeSet::new();
        for (path, l) in self.objects(s, "languages") {
            let field = format!("{path}.code");
            match l.get("code") {
                Some(Value::String(code)) => match Language::new(code) {
                    Ok(lang) => {
                        languages.insert(lang);
                    }
                    Err(_) => self.problem(
                        &field,
                        format!("{code:?} is not an ISO 639 code (2 or 3 lower-case letters)"),
                    ),
                },
                None | Some(Value::Null) => self.problem(&field, "is missing (Refer matches languages by code)"),
                Some(other) => self.problem(&field, format!("must be a string, not {}", kind(other))),
            }
        }
        if languages.len() > refer_domain::eligibility::MAX_LANGUAGES {
            self.problem(
                "languages",
                format!(
                    "{} languages: a site lists at most {}",
                    languages.len(),
                    refer_domain::eligibility::MAX_LANGUAGES
                ),
            );
        }
        let service_area = self.service_area(s, attributes);
        if let Some(ServiceArea::Regions(regions)) = &service_area {
            if regions.len() > refer_domain::eligibility::MAX_REGIONS {
                self.problem(
                    "service_areas",
                    format!(
                        "{} regions: a site takes people from at most {}",
                        regions.len(),
                        refer_domain::eligibility::MAX_REGIONS
                    ),
                );
            }
        }
        if self.problems.len() > before {
            return None;
        }
        Some(Eligibility {
            age_bands,
            genders,
            languages,
            accessibility,
            service_area: service_area?,
        })
    }

    fn age(&mut self, s: &Map<String, Value>, key: &str) -> Option<f64> {
        match s.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64().filter(|v| (0.0..=150.0).contains(v)).or_else(|| {
                self.problem(key, format!("{n} is not an age from 0 to 150"));
                None
            }),
            Some(other) => {
                self.problem(key, format!("must be a number, not {}", kind(other)));
                None
            }
        }
    }

    fn service_area(
        &mut self,
        s: &Map<String, Value>,
        attributes: &BTreeMap<String, Vec<(String, String)>>,
    ) -> Option<ServiceArea> {
        if let Some((path, km)) = self.single(attributes, terms::RADIUS_KM) {
            return match km.parse::<u32>() {
                Ok(km) if km > 0 => Some(ServiceArea::RadiusKm(km)),
                _ => {
                    self.problem(&path, format!("{km:?} is not a whole number of km above 0"));
                    None
                }
            };
        }
        let mut regions = BTreeSet::new();
        for (path, a) in self.objects(s, "service_areas") {
            let field = format!("{path}.name");
            match self.optional_text(a, "name", &field) {
                Some(name) => match RegionCode::new(name) {
                    Ok(r) => {
                        regions.insert(r);
                    }
                    Err(_) => self.problem(
                        &field,
                        format!("{name:?} is not a region code (1-32 of A-Z, 0-9 and '-', e.g. US-06-037)"),
                    ),
                },
                None => self.problem(&field, "is missing (a region code)"),
            }
        }
        Some(if regions.is_empty() {
            ServiceArea::Anywhere
        } else {
            ServiceArea::Regions(regions)
        })
    }

    /// The one value of a Refer attribute that may appear once.
    fn single(
        &mut self,
        attributes: &BTreeMap<String, Vec<(String, String)>>,
        link_type: &str,
    ) -> Option<(String, String)> {
        let values = attributes.get(link_type)?;
        if values.len() > 1 {
            self.problem(&values[1].0, format!("a second {link_type} attribute"));
        }
        values.first().cloned()
    }

    /// The site's region: Refer's attribute, else the one service area.
    fn region(
        &mut self,
        s: &Map<String, Value>,
        attributes: &BTreeMap<String, Vec<(String, String)>>,
    ) -> Option<RegionCode> {
        if let Some((path, code)) = self.single(attributes, terms::REGION) {
            return RegionCode::new(&code).ok().or_else(|| {
                self.problem(
                    &path,
                    format!("{code:?} is not a region code (1-32 of A-Z, 0-9 and '-')"),
                );
                None
            });
        }
        match area_names(s).as_slice() {
            [one] if RegionCode::new(*one).is_ok() => RegionCode::new(*one).ok(),
            _ => {
                self.problem(
                    "attributes",
                    format!(
                        "no region for the site: an attribute with link_type {} (a region code such as US-06-037), or exactly one service area named by one",
                        terms::REGION
                    ),
                );
                None
            }
        }
    }

    /// When the site takes referrals; no schedule means at any hour.
    fn hours(&mut self, s: &Map<String, Value>) -> Option<Hours> {
        let before = self.problems.len();
        let mut offset: Option<(i16, String)> = None;
        let mut slots = Vec::new();
        for (path, sc) in self.objects(s, "schedules") {
            // Every field is checked before the schedule is passed over,
            // so that all of its problems are said at once.
            let mut fine = true;
            if let Some(freq) = self.optional_text(sc, "freq", &format!("{path}.freq")) {
                if freq != "WEEKLY" {
                    self.problem(
                        &format!("{path}.freq"),
                        format!("{freq:?}: Refer reads WEEKLY schedules only"),
                    );
                    fine = false;
                }
            }
            match sc.get("interval") {
                None | Some(Value::Null) => {}
                Some(Value::Number(n)) if n.as_f64() == Some(1.0) => {}
                Some(other) => {
                    self.problem(
                        &format!("{path}.interval"),
                        format!("{other}: Refer reads every-week schedules only"),
                    );
                    fine = false;
                }
            }
            let days: Option<Vec<Weekday>> = match self.optional_text(sc, "byday", &format!("{path}.byday")) {
                Some(days) => {
                    let parsed: Option<Vec<Weekday>> = days.split(',').map(|d| day_of(d.trim())).collect();
                    let parsed = parsed.filter(|d| !d.is_empty());
                    if parsed.is_none() {
                        self.problem(
                            &format!("{path}.byday"),
                            format!("{days:?} is not a list of MO, TU, WE, TH, FR, SA, SU"),
                        );
                    }
                    parsed
                }
                None => {
                    self.problem(&format!("{path}.byday"), "is missing (the days it opens)");
                    None
                }
            };
            let zone = match sc.get("timezone") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => {
                    let minutes = n
                        .as_f64()
                        .map(|h| h * 60.0)
                        .filter(|m| m.fract() == 0.0 && (-720.0..=840.0).contains(m));
                    if minutes.is_none() {
                        self.problem(
                            &format!("{path}.timezone"),
                            format!("{n} is not a UTC offset in hours from -12 to 14"),
                        );
                        fine = false;
                    }
                    minutes.map(|m| m as i16)
                }
                Some(other) => {
                    self.problem(
                        &format!("{path}.timezone"),
                        format!("must be a number, not {}", kind(other)),
                    );
                    fine = false;
                    None
                }
            };
            let open = self.clock(sc, "opens_at", &path);
            let close = self.clock(sc, "closes_at", &path);
            if open.is_some_and(|(open, _)| open >= 1440) {
                self.problem(&format!("{path}.opens_at"), "must be before 24:00");
                fine = false;
            }
            let (true, Some(days), Some((open, open_zone)), Some((close, close_zone))) = (fine, days, open, close)
            else {
                continue;
            };
            let zones: BTreeSet<i16> = [zone, open_zone, close_zone].into_iter().flatten().collect();
            let here = match zones.len() {
                0 => 0, // HSDS: UTC when no offset is given.
                1 => *zones.first().unwrap_or(&0),
                _ => {
                    self.problem(&path, "its timezone, opens_at and closes_at give different UTC offsets");
                    continue;
                }
            };
            match &offset {
                Some((o, first)) if *o != here => {
                    self.problem(
                        &path,
                        format!("a UTC offset other than {first}'s: a site keeps one offset"),
                    );
                    continue;
                }
                Some(_) => {}
                None => offset = Some((here, path.clone())),
            }
            for day in days {
                slots.push(WeeklySlot { day, open, close });
            }
        }
        if slots.len() > refer_domain::time::MAX_SLOTS {
            self.problem(
                "schedules",
                format!(
                    "{} weekly openings (a day of byday is one): a site has at most {}",
                    slots.len(),
                    refer_domain::time::MAX_SLOTS
                ),
            );
        }
        if self.problems.len() > before {
            return None;
        }
        let always = slots.len() == 7
            && Weekday::ALL
                .iter()
                .all(|d| slots.iter().any(|s| s.day == *d && s.open == 0 && s.close == 1440));
        Some(if slots.is_empty() || always {
            Hours::Always
        } else {
            Hours::Weekly {
                utc_offset_minutes: offset.map_or(0, |(o, _)| o),
                slots,
            }
        })
    }

    /// `HH:MM[:SS]` with an optional `Z` or `±HH:MM`: minutes after
    /// midnight and the offset in minutes.
    fn clock(&mut self, sc: &Map<String, Value>, key: &str, path: &str) -> Option<(u16, Option<i16>)> {
        let field = format!("{path}.{key}");
        let Some(text) = self.optional_text(sc, key, &field) else {
            self.problem(&field, "is missing");
            return None;
        };
        let parsed = parse_clock(text);
        if parsed.is_none() {
            self.problem(
                &field,
                format!("{text:?} is not a time HH:MM, with Z or an offset such as -08:00"),
            );
        }
        parsed
    }

    /// The site's location, when the file gives one.
    fn point(&mut self, s: &Map<String, Value>) -> Option<Option<GeoPoint>> {
        let before = self.problems.len();
        let mut points = Vec::new();
        for (path, sal) in self.objects(s, "service_at_locations") {
            let Some(location) = sal.get("location") else { continue };
            let Some(location) = location.as_object() else {
                self.problem(
                    &format!("{path}.location"),
                    format!("must be an object, not {}", kind(location)),
                );
                continue;
            };
            let lat = self.coordinate(location, "latitude", &path);
            let lon = self.coordinate(location, "longitude", &path);
            match (lat, lon) {
                (Some(lat), Some(lon)) => match GeoPoint::new(lat, lon) {
                    Ok(p) => points.push((path, p)),
                    Err(e) => self.problem(&format!("{path}.location"), e.to_string()),
                },
                (None, None) => {}
                _ => self.problem(&format!("{path}.location"), "needs both latitude and longitude"),
            }
        }
        if points.len() > 1 {
            self.problem(&points[1].0, "a second location: a Refer site is one place");
        }
        (self.problems.len() == before).then(|| points.first().map(|(_, p)| *p))
    }

    fn coordinate(&mut self, location: &Map<String, Value>, key: &str, path: &str) -> Option<f64> {
        match location.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(other) => {
                self.problem(
                    &format!("{path}.location.{key}"),
                    format!("must be a number, not {}", kind(other)),
                );
                None
            }
        }
    }
}

/// The names of a service's areas (what of them is text).
fn area_names(s: &Map<String, Value>) -> Vec<&str> {
    match s.get("service_areas") {
        Some(Value::Array(a)) => a.iter().filter_map(|a| a.get("name")?.as_str()).collect(),
        _ => vec![],
    }
}

fn parse_clock(text: &str) -> Option<(u16, Option<i16>)> {
    let (time, zone) = match text.find(['Z', '+', '-']) {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    };
    let parts: Vec<&str> = time.split(':').collect();
    let (h, m) = match parts.as_slice() {
        [h, m] | [h, m, "00"] => (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?),
        _ => return None,
    };
    if parts.iter().any(|p| p.len() != 2) || m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    let offset = match zone {
        None => None,
        Some("Z") => Some(0),
        Some(z) => {
            let sign: i16 = if z.starts_with('-') { -1 } else { 1 };
            let (zh, zm) = z[1..].split_once(':')?;
            if zh.len() != 2 || zm.len() != 2 {
                return None;
            }
            let minutes = zh.parse::<i16>().ok()? * 60 + zm.parse::<i16>().ok()?;
            Some(sign * minutes)
        }
    };
    Some((h * 60 + m, offset))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::parse_clock;

    #[test]
    fn clocks_read_with_and_without_an_offset() {
        assert_eq!(parse_clock("09:30"), Some((570, None)));
        assert_eq!(parse_clock("09:30:00"), Some((570, None)));
        assert_eq!(parse_clock("24:00Z"), Some((1440, Some(0))));
        assert_eq!(parse_clock("18:00-08:00"), Some((1080, Some(-480))));
        assert_eq!(parse_clock("06:00+05:30"), Some((360, Some(330))));
        assert_eq!(parse_clock("24:30"), None);
        assert_eq!(parse_clock("9:30"), None);
        assert_eq!(parse_clock("09:60"), None);
        assert_eq!(parse_clock("noon"), None);
    }
}
