//! Where people and donations are, by name: the coalition's places and
//! counties, searched as the person types (a list the browser offers), or
//! the phone's current location. Never coordinates or a region code to type.

use crate::html::esc;
use crate::i18n::{Lang, T};
use crate::Filled;
use refer_proto::common::v1 as pb;
use std::fmt::Write;

/// The coalition's counties: region code, English name, Spanish name.
pub const COUNTIES: &[(&str, &str, &str)] = &[
    ("US-06-037", "Los Angeles County", "condado de Los Ángeles"),
    ("US-06-059", "Orange County", "condado de Orange"),
    ("US-06-065", "Riverside County", "condado de Riverside"),
];

/// The coalition's places: name, point, county (its region code). A
/// county by itself is a place too, at its seat.
pub const PLACES: &[(&str, f64, f64, &str)] = &[
    ("Long Beach", 33.77, -118.19, "US-06-037"),
    ("Los Angeles, downtown", 34.05, -118.24, "US-06-037"),
    ("Pasadena", 34.15, -118.14, "US-06-037"),
    ("Santa Ana", 33.75, -117.87, "US-06-059"),
    ("Anaheim", 33.84, -117.91, "US-06-059"),
    ("Riverside", 33.95, -117.40, "US-06-065"),
    ("Palm Springs", 33.83, -116.55, "US-06-065"),
];

/// What the place field says when the phone's location was taken.
fn here(lang: Lang) -> &'static str {
    T::CurrentLocation.get(lang)
}

/// A county's name in `lang`.
pub fn county_name(code: &str, lang: Lang) -> Option<&'static str> {
    COUNTIES
        .iter()
        .find(|(c, ..)| *c == code)
        .map(|(_, en, es)| match lang {
            Lang::En => *en,
            Lang::Es => *es,
        })
}

/// A region by name in `lang`: its county's, or the code of a region the
/// coalition's list does not name.
pub fn region_name(code: &str, lang: Lang) -> String {
    county_name(code, lang).map_or_else(|| code.to_owned(), str::to_owned)
}

/// Every name a place can be picked by, as the list offers it: each place
/// with its county ("Long Beach, Los Angeles County"), then each county.
fn choices(lang: Lang) -> Vec<(String, f64, f64, &'static str)> {
    let mut out: Vec<(String, f64, f64, &'static str)> = PLACES
        .iter()
        .map(|(name, lat, lon, region)| {
            let county = county_name(region, lang).unwrap_or(region);
            (format!("{name}, {county}"), *lat, *lon, *region)
        })
        .collect();
    for (code, ..) in COUNTIES {
        // A county's seat: its first place.
        if let Some((_, lat, lon, _)) = PLACES.iter().find(|p| p.3 == *code) {
            out.push((county_name(code, lang).unwrap_or(code).to_owned(), *lat, *lon, *code));
        }
    }
    out
}

/// The place fields of a form: a place typed or picked by name from the
/// coalition's list, or the phone's current location (`console.js` fills
/// `coords` and says so in the field).
pub fn place_fields(lang: Lang, f: &Filled) -> String {
    let l = |t: T| t.get(lang);
    let mut out = format!(
        "<label for=\"place\">{}</label><input id=\"place\" name=\"place\" list=\"places\" autocomplete=\"off\" \
         placeholder=\"{}\" value=\"{}\"><datalist id=\"places\">",
        l(T::Place),
        l(T::PlaceHint),
        esc(f.get("place"))
    );
    for (name, ..) in choices(lang) {
        let _ = write!(out, "<option value=\"{}\">", esc(&name));
    }
    let _ = write!(
        out,
        "</datalist><input type=\"hidden\" id=\"coords\" name=\"coords\" value=\"{}\">\
         <button type=\"button\" class=\"quiet\" id=\"use-location\" data-here=\"{}\" hidden>{}</button>",
        esc(f.get("coords")),
        esc(here(lang)),
        l(T::UseMyLocation)
    );
    out
}

/// Checkboxes of the coalition's counties by name, as `field`.
pub fn county_fields(field: &str, legend: &str, lang: Lang, f: &Filled) -> String {
    let options: Vec<(&str, &str)> = COUNTIES
        .iter()
        .map(|(code, ..)| (*code, county_name(code, lang).unwrap_or(code)))
        .collect();
    crate::html::checkboxes(field, legend, &options, f, &[])
}

/// The counties ticked in `county_fields`, as region codes.
pub fn counties(field: &str, f: &Filled) -> Vec<String> {
    COUNTIES
        .iter()
        .filter(|(code, ..)| f.has(field, code))
        .map(|(code, ..)| (*code).to_owned())
        .collect()
}

/// Why no place could be read from the form.
#[derive(Debug, PartialEq)]
pub enum NoPlace {
    /// Nothing typed or picked.
    Missing,
    /// A name that is none of the coalition's places, as typed.
    Unknown(String),
}

impl NoPlace {
    /// What the person is told, in `lang`, naming the field.
    pub fn say(&self, lang: Lang, field: &str) -> String {
        match self {
            NoPlace::Missing => format!("{field}: {}", T::PlaceMissing.get(lang)),
            NoPlace::Unknown(typed) => format!("{field}: {}", T::PlaceUnknown.get(lang).replace("{}", typed)),
        }
    }
}

/// The place the form names: the phone's location (its county that of the
/// nearest coalition place), or a place or county picked or typed by name
/// in either language (any case, accents optional).
pub fn location(f: &Filled) -> Result<pb::Location, NoPlace> {
    let typed = f.get("place").trim();
    let coords = f.get("coords").split_once(',').and_then(|(a, b)| {
        let (lat, lon): (f64, f64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
    });
    let is_here = [Lang::En, Lang::Es].iter().any(|l| typed == here(*l));
    if let (Some((lat, lon)), true) = (coords, is_here) {
        let nearest = PLACES
            .iter()
            .min_by(|a, b| {
                let d = |p: &(&str, f64, f64, &str)| (p.1 - lat).powi(2) + (p.2 - lon).powi(2);
                d(a).total_cmp(&d(b))
            })
            .expect("the coalition has places");
        return Ok(pb::Location {
            point: Some(pb::GeoPoint { lat, lon }),
            region: nearest.3.into(),
        });
    }
    if typed.is_empty() {
        return Err(NoPlace::Missing);
    }
    let key = fold(typed);
    let found = [Lang::En, Lang::Es]
        .iter()
        .flat_map(|l| choices(*l))
        .find(|(name, ..)| fold(name) == key || fold(name.split(',').next().unwrap_or("")) == key);
    match found {
        Some((_, lat, lon, region)) => Ok(pb::Location {
            point: Some(pb::GeoPoint { lat, lon }),
            region: region.into(),
        }),
        None => Err(NoPlace::Unknown(typed.to_owned())),
    }
}

/// Lower case, without accents: how a name typed on a phone is compared.
fn fold(name: &str) -> String {
    crate::languages::fold(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(pairs: &[(&str, &str)]) -> Filled {
        Filled(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    fn at(f: &Filled) -> (f64, f64, String) {
        let l = location(f).unwrap();
        let p = l.point.unwrap();
        (p.lat, p.lon, l.region)
    }

    /// A place is found by its name alone, by the list's wording, or by its
    /// county, in either language, whatever the case and accents.
    #[test]
    fn a_place_is_picked_or_typed_by_name() {
        let long_beach = (33.77, -118.19, "US-06-037".to_owned());
        assert_eq!(at(&filled(&[("place", "Long Beach, Los Angeles County")])), long_beach);
        assert_eq!(at(&filled(&[("place", " long beach ")])), long_beach);
        assert_eq!(
            at(&filled(&[("place", "Long Beach, condado de Los Ángeles")])),
            long_beach
        );
        assert_eq!(at(&filled(&[("place", "condado de los angeles")])).2, "US-06-037");
        assert_eq!(at(&filled(&[("place", "Orange County")])).2, "US-06-059");
    }

    /// The phone's location is used as it is, in the county of the nearest
    /// coalition place; coordinates typed without it are not a place.
    #[test]
    fn the_current_location_is_the_phones() {
        let f = filled(&[("place", here(Lang::Es)), ("coords", "33.80,-117.90")]);
        assert_eq!(at(&f), (33.80, -117.90, "US-06-059".to_owned()));
        let typed = filled(&[("place", ""), ("coords", "33.80,-117.90")]);
        assert_eq!(location(&typed).unwrap_err(), NoPlace::Missing);
        let out_of_range = filled(&[("place", here(Lang::En)), ("coords", "133.8,-117.9")]);
        assert_eq!(
            location(&out_of_range).unwrap_err(),
            NoPlace::Unknown(here(Lang::En).to_owned())
        );
    }

    /// Nothing typed, or a name that is no place, is the error, as typed.
    #[test]
    fn no_place_or_an_unknown_one_is_refused() {
        assert_eq!(location(&filled(&[])).unwrap_err(), NoPlace::Missing);
        assert_eq!(
            location(&filled(&[("place", "Springfield")])).unwrap_err(),
            NoPlace::Unknown("Springfield".into())
        );
        let said = NoPlace::Unknown("Springfield".into()).say(Lang::En, "Where they are now");
        assert!(said.starts_with("Where they are now: “Springfield”"), "{said}");
    }
}
