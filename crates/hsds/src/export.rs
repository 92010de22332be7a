//! The directory out: a page of HSDS services, one per site, never a location.

use crate::terms::{self, Term};
use crate::{nested_id, Listing};
use refer_domain::eligibility::ServiceArea;
use refer_domain::profile::AgeBand;
use refer_domain::time::{Hours, Weekday};
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// Names what is shared by every site (a unit, a taxonomy term), so that
/// its id is the same in every export.
const REFER: Uuid = Uuid::from_u128(0x5d0b_6f3e_2c1a_4e7b_9a41_8f2d_c3e6_b705);

/// The listings as one HSDS `service_list` page, ordered by site id.
pub fn export(listings: &[Listing]) -> Value {
    let mut listings: Vec<&Listing> = listings.iter().collect();
    listings.sort_by_key(|l| l.site);
    let contents: Vec<Value> = listings.into_iter().map(service).collect();
    json!({
        "total_items": contents.len(),
        "total_pages": 1,
        "page_number": 1,
        "size": contents.len(),
        "first_page": true,
        "last_page": true,
        "empty": contents.is_empty(),
        "contents": contents,
    })
}

fn service(l: &Listing) -> Value {
    let site = l.site;
    let e = &l.eligibility;
    let kinds: Vec<&str> = l.services.iter().map(|k| k.name()).collect();
    let mut s = Map::new();
    s.insert("id".into(), json!(site));
    s.insert("organization_id".into(), json!(l.org));
    s.insert("name".into(), json!(l.name));
    s.insert(
        "description".into(),
        json!(format!("{}, by referral through the coalition.", kinds.join(", "))),
    );
    s.insert(
        "status".into(),
        json!(if l.suspended { "temporarily closed" } else { "active" }),
    );
    s.insert("eligibility_description".into(), json!(eligibility_text(l)));
    // Ages as HSDS has them, for systems that read no Refer terms.
    if e.age_bands.len() == 1 {
        match e.age_bands.first() {
            Some(AgeBand::Juvenile) => s.insert("maximum_age".into(), json!(17)),
            Some(AgeBand::Adult) => s.insert("minimum_age".into(), json!(18)),
            None => None,
        };
    }
    s.insert(
        "organization".into(),
        json!({
            "id": l.org,
            "name": l.org_name,
            "description": "A partner organisation of the coalition.",
        }),
    );
    s.insert(
        "languages".into(),
        Value::Array(
            e.languages
                .iter()
                .map(|lang| {
                    json!({
                        "id": nested_id(site, &format!("language/{}", lang.as_str())),
                        "service_id": site,
                        "code": lang.as_str(),
                    })
                })
                .collect(),
        ),
    );
    s.insert("service_areas".into(), Value::Array(areas(l)));
    s.insert("schedules".into(), Value::Array(schedules(site, &l.hours)));
    s.insert(
        "capacities".into(),
        Value::Array(
            l.capacity
                .iter()
                .map(|a| {
                    let unit = terms::unit(a.service);
                    let unit_id = Uuid::new_v5(&REFER, format!("unit/{unit}").as_bytes());
                    json!({
                        "id": nested_id(site, &format!("capacity/{}", a.service.code())),
                        "service_id": site,
                        "unit": { "id": unit_id, "name": unit },
                        "unit_id": unit_id,
                        "available": a.free,
                        "description": format!("{} free", a.service.name()),
                        "updated": updated(a.as_of),
                    })
                })
                .collect(),
        ),
    );
    s.insert("attributes".into(), Value::Array(attributes(l)));
    Value::Object(s)
}

/// An instant as HSDS writes it: RFC 3339, UTC, to the millisecond.
fn updated(at: refer_domain::Timestamp) -> String {
    match jiff::Timestamp::from_millisecond(at.millis()) {
        Ok(t) => format!("{t:.3}"),
        // Timestamps come from the domain's range (2000 to 2200).
        Err(_) => unreachable!("a domain timestamp is within jiff's range"),
    }
}

fn eligibility_text(l: &Listing) -> String {
    let e = &l.eligibility;
    let mut parts = vec![
        e.age_bands.iter().map(|a| a.name()).collect::<Vec<_>>().join(" and "),
        e.genders.iter().map(|g| g.name()).collect::<Vec<_>>().join(", "),
    ];
    if !e.accessibility.is_empty() {
        parts.push(e.accessibility.iter().map(|a| a.name()).collect::<Vec<_>>().join(", "));
    }
    parts.retain(|p| !p.is_empty());
    parts.join("; ") + "."
}

/// Where people may come from; never where the site is.
fn areas(l: &Listing) -> Vec<Value> {
    let site = l.site;
    match &l.eligibility.service_area {
        ServiceArea::Anywhere => vec![],
        ServiceArea::Regions(regions) => regions
            .iter()
            .map(|r| {
                json!({
                    "id": nested_id(site, &format!("area/{}", r.as_str())),
                    "service_id": site,
                    "name": r.as_str(),
                    "description": format!("People from region {}.", r.as_str()),
                })
            })
            .collect(),
        ServiceArea::RadiusKm(km) => vec![json!({
            "id": nested_id(site, "area/radius"),
            "service_id": site,
            "name": l.region.as_str(),
            "description": format!("People within {km} km of the site, in or near region {}.", l.region.as_str()),
        })],
    }
}

const DAYS: [(Weekday, &str); 7] = [
    (Weekday::Mon, "MO"),
    (Weekday::Tue, "TU"),
    (Weekday::Wed, "WE"),
    (Weekday::Thu, "TH"),
    (Weekday::Fri, "FR"),
    (Weekday::Sat, "SA"),
    (Weekday::Sun, "SU"),
];

pub(crate) fn day_code(day: Weekday) -> &'static str {
    DAYS.iter().find(|(d, _)| *d == day).map_or("MO", |(_, c)| c)
}

pub(crate) fn day_of(code: &str) -> Option<Weekday> {
    DAYS.iter().find(|(_, c)| *c == code).map(|(d, _)| *d)
}

/// RFC 5545-style weekly openings, one per slot, in the site's local time
/// with its offset (HSDS `opens_at` carries it, `timezone` in hours).
fn schedules(site: Uuid, hours: &Hours) -> Vec<Value> {
    match hours {
        Hours::Always => vec![json!({
            "id": nested_id(site, "schedule/always"),
            "service_id": site,
            "freq": "WEEKLY",
            "byday": "MO,TU,WE,TH,FR,SA,SU",
            "opens_at": "00:00Z",
            "closes_at": "24:00Z",
            "timezone": 0,
            "description": "Takes referrals 24 hours a day, every day.",
        })],
        Hours::Weekly {
            utc_offset_minutes,
            slots,
        } => {
            let offset = offset_text(*utc_offset_minutes);
            slots
                .iter()
                .enumerate()
                .map(|(i, slot)| {
                    json!({
                        "id": nested_id(site, &format!("schedule/{i}")),
                        "service_id": site,
                        "freq": "WEEKLY",
                        "byday": day_code(slot.day),
                        "opens_at": format!("{}{offset}", clock(slot.open)),
                        "closes_at": format!("{}{offset}", clock(slot.close)),
                        "timezone": f64::from(*utc_offset_minutes) / 60.0,
                    })
                })
                .collect()
        }
    }
}

fn clock(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn offset_text(minutes: i16) -> String {
    if minutes == 0 {
        return "Z".into();
    }
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

fn attributes(l: &Listing) -> Vec<Value> {
    let e = &l.eligibility;
    let mut out = Vec::new();
    let mut term = |link_type: &str, code: &str, name: &str| {
        let term_id = Uuid::new_v5(&REFER, format!("{link_type}/{code}").as_bytes());
        out.push(json!({
            "id": nested_id(l.site, &format!("attribute/{link_type}/{code}")),
            "link_id": l.site,
            "link_type": link_type,
            "link_entity": "service",
            "taxonomy_term_id": term_id,
            "value": code,
            "taxonomy_term": {
                "id": term_id,
                "code": code,
                "name": name,
                "description": format!("{name} (Refer's {link_type} term)."),
                "taxonomy": terms::TAXONOMY,
            },
        }));
    };
    for k in &l.services {
        term(terms::SERVICE_KIND, k.code(), k.name());
    }
    for a in &e.age_bands {
        term(terms::AGE_BAND, a.code(), a.name());
    }
    for g in &e.genders {
        term(terms::GENDER, g.code(), g.name());
    }
    for a in &e.accessibility {
        term(terms::ACCESSIBILITY, a.code(), a.name());
    }
    let mut value = |link_type: &str, value: String, label: &str| {
        out.push(json!({
            "id": nested_id(l.site, &format!("attribute/{link_type}")),
            "link_id": l.site,
            "link_type": link_type,
            "link_entity": "service",
            "value": value,
            "label": label,
        }));
    };
    value(
        terms::REGION,
        l.region.as_str().to_owned(),
        "Region (county) of the site",
    );
    if let ServiceArea::RadiusKm(km) = e.service_area {
        value(
            terms::RADIUS_KM,
            km.to_string(),
            "Takes people from within this many km",
        );
    }
    out
}
