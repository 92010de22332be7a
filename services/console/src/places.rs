//! Where people and donations are, by name: the coalition's places and
//! counties, searched as the person types (a list the browser offers), or
//! the phone's current location. Never coordinates or a region code to type.

use crate::html::esc;
use crate::i18n::{Lang, T};
use crate::languages::fold;
use crate::Filled;
use refer_proto::common::v1 as pb;
use std::fmt::Write;

/// The coalition's counties and places, as the console offers them: its
/// own (`places_file`, read and checked at start) or, without one, the
/// demo coalition's around Los Angeles (`Places::demo`).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Places {
    #[serde(rename = "county", default)]
    counties: Vec<County>,
    #[serde(rename = "place", default)]
    places: Vec<Place>,
}

/// A county (a region of the coalition): its region code and its names.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct County {
    region: String,
    name: String,
    /// Its Spanish name (the English one when not given).
    name_es: Option<String>,
}

/// A place people are found at: its name, its point, its county.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Place {
    name: String,
    lat: f64,
    lon: f64,
    region: String,
}

impl Places {
    /// The demo coalition's (docs/examples/places.toml holds the same).
    pub fn demo() -> Self {
        let county = |region: &str, name: &str, es: &str| County {
            region: region.into(),
            name: name.into(),
            name_es: Some(es.into()),
        };
        let place = |name: &str, lat, lon, region: &str| Place {
            name: name.into(),
            lat,
            lon,
            region: region.into(),
        };
        Self {
            counties: vec![
                county("US-06-037", "Los Angeles County", "condado de Los Ángeles"),
                county("US-06-059", "Orange County", "condado de Orange"),
                county("US-06-065", "Riverside County", "condado de Riverside"),
            ],
            places: vec![
                place("Long Beach", 33.77, -118.19, "US-06-037"),
                place("Los Angeles, downtown", 34.05, -118.24, "US-06-037"),
                place("Pasadena", 34.15, -118.14, "US-06-037"),
                place("Santa Ana", 33.75, -117.87, "US-06-059"),
                place("Anaheim", 33.84, -117.91, "US-06-059"),
                place("Riverside", 33.95, -117.40, "US-06-065"),
                place("Palm Springs", 33.83, -116.55, "US-06-065"),
            ],
        }
    }

    /// Reads a places file (TOML: `[[county]]` and `[[place]]` tables),
    /// refusing one a form could not use, with what is wrong named.
    pub fn read(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("places_file {}: {e}", path.display()))?;
        let places: Self =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("places_file {} is not valid: {e}", path.display()))?;
        places
            .check()
            .map_err(|e| anyhow::anyhow!("places_file {}: {e}", path.display()))?;
        Ok(places)
    }

    fn check(&self) -> Result<(), String> {
        if self.places.is_empty() {
            return Err("lists no place: at least one [[place]] is needed".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in self.counties.iter().enumerate() {
            let region_ok = (2..=16).contains(&c.region.len())
                && c.region
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
            if !region_ok {
                return Err(format!(
                    "county {} region {:?} must be a code like US-06-037",
                    i + 1,
                    c.region
                ));
            }
            if c.name.trim().is_empty() || self.counties[..i].iter().any(|o| o.region == c.region) {
                return Err(format!(
                    "county {} ({}) needs a name and a region of its own",
                    i + 1,
                    c.region
                ));
            }
            names.insert(fold(&c.name));
        }
        for (i, p) in self.places.iter().enumerate() {
            let what = format!("place {} ({:?})", i + 1, p.name);
            if p.name.trim().is_empty() || !names.insert(fold(&p.name)) {
                return Err(format!("{what} needs a name no other place or county has"));
            }
            if !(p.lat.is_finite()
                && p.lon.is_finite()
                && (-90.0..=90.0).contains(&p.lat)
                && (-180.0..=180.0).contains(&p.lon))
            {
                return Err(format!("{what}: lat must be -90 to 90 and lon -180 to 180"));
            }
            if !self.counties.iter().any(|c| c.region == p.region) {
                return Err(format!("{what}: region {:?} is no county of the file", p.region));
            }
        }
        Ok(())
    }
}

/// The places of this console's coalition, set once at launch.
static PLACES: std::sync::RwLock<Option<std::sync::Arc<Places>>> = std::sync::RwLock::new(None);

/// Offers `places` on every form from now on.
pub fn set_places(places: Places) {
    *PLACES.write().expect("the places lock is never poisoned") = Some(std::sync::Arc::new(places));
}

fn places() -> std::sync::Arc<Places> {
    PLACES
        .read()
        .expect("the places lock is never poisoned")
        .clone()
        .unwrap_or_else(|| std::sync::Arc::new(Places::demo()))
}

/// What the place field says when the phone's location was taken.
fn here(lang: Lang) -> &'static str {
    T::CurrentLocation.get(lang)
}

/// A county's name in `lang`.
fn county_name(all: &Places, code: &str, lang: Lang) -> Option<String> {
    all.counties
        .iter()
        .find(|c| c.region == code)
        .map(|c| match (lang, &c.name_es) {
            (Lang::Es, Some(es)) => es.clone(),
            _ => c.name.clone(),
        })
}

/// A region by name in `lang`: its county's, or the code of a region the
/// coalition's list does not name.
pub fn region_name(code: &str, lang: Lang) -> String {
    county_name(&places(), code, lang).unwrap_or_else(|| code.to_owned())
}

/// Every name a place can be picked by, as the list offers it: each place
/// with its county ("Long Beach, Los Angeles County"), then each county (at
/// its first place).
fn choices(all: &Places, lang: Lang) -> Vec<(String, f64, f64, String)> {
    let mut out: Vec<(String, f64, f64, String)> = all
        .places
        .iter()
        .map(|p| {
            let county = county_name(all, &p.region, lang).unwrap_or_else(|| p.region.clone());
            (format!("{}, {county}", p.name), p.lat, p.lon, p.region.clone())
        })
        .collect();
    for c in &all.counties {
        if let Some(p) = all.places.iter().find(|p| p.region == c.region) {
            let name = county_name(all, &c.region, lang).unwrap_or_else(|| c.region.clone());
            out.push((name, p.lat, p.lon, c.region.clone()));
        }
    }
    out
}

/// The place fields of a form: a place typed or picked by name from the
/// coalition's list, or the phone's current location (`console.js` fills
/// `coords` and says so in the field).
pub(crate) fn place_fields(lang: Lang, f: &Filled) -> String {
    let l = |t: T| t.get(lang);
    let mut out = format!(
        "<label for=\"place\">{}</label><input id=\"place\" name=\"place\" list=\"places\" autocomplete=\"off\" \
         placeholder=\"{}\" value=\"{}\"><datalist id=\"places\">",
        l(T::Place),
        l(T::PlaceHint),
        esc(f.get("place"))
    );
    for (name, ..) in choices(&places(), lang) {
        let _ = write!(out, "<option value=\"{}\">", esc(&name));
    }
    let _ = write!(
        out,
        "</datalist><input type=\"hidden\" id=\"coords\" name=\"coords\" value=\"{}\">\
         <button type=\"button\" class=\"quiet\" id=\"use-location\" data-here=\"{}\" \
         data-refused=\"{}\" hidden>{}</button><p id=\"location-status\" role=\"status\"></p>",
        esc(f.get("coords")),
        esc(here(lang)),
        esc(l(T::LocationRefused)),
        l(T::UseMyLocation)
    );
    out
}

/// Checkboxes of the coalition's counties by name, as `field`.
pub(crate) fn county_fields(field: &str, legend: &str, lang: Lang, f: &Filled) -> String {
    let all = places();
    let named: Vec<(&str, String)> = all
        .counties
        .iter()
        .map(|c| {
            (
                c.region.as_str(),
                county_name(&all, &c.region, lang).unwrap_or_default(),
            )
        })
        .collect();
    let options: Vec<(&str, &str)> = named.iter().map(|(c, n)| (*c, n.as_str())).collect();
    crate::html::checkboxes(field, legend, &options, f, &[])
}

/// The counties ticked in `county_fields`, as region codes.
pub(crate) fn counties(field: &str, f: &Filled) -> Vec<String> {
    places()
        .counties
        .iter()
        .filter(|c| f.has(field, &c.region))
        .map(|c| c.region.clone())
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
pub(crate) fn location(f: &Filled) -> Result<pb::Location, NoPlace> {
    let typed = f.get("place").trim();
    let coords = f.get("coords").split_once(',').and_then(|(a, b)| {
        let (lat, lon): (f64, f64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
    });
    let is_here = [Lang::En, Lang::Es].iter().any(|l| typed == here(*l));
    if let (Some((lat, lon)), true) = (coords, is_here) {
        let all = places();
        let nearest = all
            .places
            .iter()
            .min_by(|a, b| {
                let d = |p: &Place| (p.lat - lat).powi(2) + (p.lon - lon).powi(2);
                d(a).total_cmp(&d(b))
            })
            .expect("a coalition has places (checked at start)");
        return Ok(pb::Location {
            point: Some(pb::GeoPoint { lat, lon }),
            region: nearest.region.clone(),
        });
    }
    if typed.is_empty() {
        return Err(NoPlace::Missing);
    }
    let key = fold(typed);
    let all = places();
    let found = [Lang::En, Lang::Es]
        .iter()
        .flat_map(|l| choices(&all, *l))
        .find(|(name, ..)| fold(name) == key || fold(name.split(',').next().unwrap_or("")) == key);
    match found {
        Some((_, lat, lon, region)) => Ok(pb::Location {
            point: Some(pb::GeoPoint { lat, lon }),
            region,
        }),
        None => Err(NoPlace::Unknown(typed.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            at(&Filled::of(&[("place", "Long Beach, Los Angeles County")])),
            long_beach
        );
        assert_eq!(at(&Filled::of(&[("place", " long beach ")])), long_beach);
        assert_eq!(
            at(&Filled::of(&[("place", "Long Beach, condado de Los Ángeles")])),
            long_beach
        );
        assert_eq!(at(&Filled::of(&[("place", "condado de los angeles")])).2, "US-06-037");
        assert_eq!(at(&Filled::of(&[("place", "Orange County")])).2, "US-06-059");
    }

    /// The phone's location is used as it is, in the county of the nearest
    /// coalition place; coordinates typed without it are not a place.
    #[test]
    fn the_current_location_is_the_phones() {
        let f = Filled::of(&[("place", here(Lang::Es)), ("coords", "33.80,-117.90")]);
        assert_eq!(at(&f), (33.80, -117.90, "US-06-059".to_owned()));
        let typed = Filled::of(&[("place", ""), ("coords", "33.80,-117.90")]);
        assert_eq!(location(&typed).unwrap_err(), NoPlace::Missing);
        let out_of_range = Filled::of(&[("place", here(Lang::En)), ("coords", "133.8,-117.9")]);
        assert_eq!(
            location(&out_of_range).unwrap_err(),
            NoPlace::Unknown(here(Lang::En).to_owned())
        );
    }

    /// The example file is the demo coalition's; a file a form could not
    /// use is refused at start, saying what is wrong.
    #[test]
    fn a_coalition_names_its_own_places_in_a_file_checked_at_start() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/places.toml");
        assert_eq!(Places::read(&root).unwrap(), Places::demo());
        let dir = tempfile::tempdir().unwrap();
        let file = |text: &str| {
            let path = dir.path().join("places.toml");
            std::fs::write(&path, text).unwrap();
            Places::read(&path).map_err(|e| e.to_string())
        };
        let county = "[[county]]\nregion = \"US-48-201\"\nname = \"Harris County\"\n";
        let houston = "[[place]]\nname = \"Houston\"\nlat = 29.76\nlon = -95.37\nregion = \"US-48-201\"\n";
        assert!(file(&format!("{county}{houston}")).is_ok());
        let err = file(county).unwrap_err();
        assert!(err.contains("lists no place"), "{err}");
        let err = file(&format!("{county}{}", houston.replace("US-48-201\"", "US-48-999\""))).unwrap_err();
        assert!(
            err.contains("place 1 (\"Houston\"): region \"US-48-999\" is no county"),
            "{err}"
        );
        let err = file(&format!("{county}{}", houston.replace("29.76", "129.76"))).unwrap_err();
        assert!(err.contains("lat must be -90 to 90"), "{err}");
        let err = file(&format!("{county}{houston}{houston}")).unwrap_err();
        assert!(err.contains("place 2 (\"Houston\") needs a name no other"), "{err}");
        let err = file(&format!("{county}{houston}zip = 1\n")).unwrap_err();
        assert!(err.contains("is not valid"), "{err}");
    }

    /// Nothing typed, or a name that is no place, is the error, as typed.
    #[test]
    fn no_place_or_an_unknown_one_is_refused() {
        assert_eq!(location(&Filled::of(&[])).unwrap_err(), NoPlace::Missing);
        assert_eq!(
            location(&Filled::of(&[("place", "Springfield")])).unwrap_err(),
            NoPlace::Unknown("Springfield".into())
        );
        let said = NoPlace::Unknown("Springfield".into()).say(Lang::En, "Where they are now");
        assert!(said.starts_with("Where they are now: “Springfield”"), "{said}");
    }
}
