//! Where people and donations are: the coalition's places (picked from a
//! list), or typed coordinates with a region code.

use crate::html::esc;
use crate::i18n::{Lang, T};
use crate::Filled;
use refer_proto::common::v1 as pb;
use std::fmt::Write;

/// Where a person may be now: the coalition's places (name, point, region).
pub const PLACES: &[(&str, f64, f64, &str)] = &[
    ("Long Beach", 33.77, -118.19, "US-06-037"),
    ("Los Angeles, downtown", 34.05, -118.24, "US-06-037"),
    ("Pasadena", 34.15, -118.14, "US-06-037"),
    ("Santa Ana", 33.75, -117.87, "US-06-059"),
    ("Riverside", 33.95, -117.40, "US-06-065"),
];

/// The place fields of a form: a coalition place, or coordinates and a region.
pub fn place_fields(lang: Lang, f: &Filled) -> String {
    let l = |t: T| t.get(lang);
    let mut places: Vec<(&str, &str)> = vec![("", "—")];
    places.extend(PLACES.iter().map(|(name, ..)| (*name, *name)));
    let mut out = crate::html::select("place", l(T::Place), &places, f.get("place"));
    let _ = write!(
        out,
        "<label for=\"coords\">{}</label><input id=\"coords\" name=\"coords\" inputmode=\"decimal\" placeholder=\"34.05,-118.24\" value=\"{}\">\
         <label for=\"region\">{}</label><input id=\"region\" name=\"region\" placeholder=\"US-06-037\" value=\"{}\">",
        l(T::Coordinates),
        esc(f.get("coords")),
        l(T::RegionCode),
        esc(f.get("region"))
    );
    out
}

/// The place the person is at: a coalition place, or typed coordinates.
pub fn location(f: &Filled) -> Result<pb::Location, &'static str> {
    if let Some((_, lat, lon, region)) = PLACES.iter().find(|(name, ..)| *name == f.get("place")) {
        return Ok(pb::Location {
            point: Some(pb::GeoPoint { lat: *lat, lon: *lon }),
            region: (*region).into(),
        });
    }
    let (lat, lon) = f
        .get("coords")
        .split_once(',')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
        .ok_or("coords")?;
    Ok(pb::Location {
        point: Some(pb::GeoPoint { lat, lon }),
        region: f.get("region").trim().to_owned(),
    })
}
