//! Places, kept coarse on purpose: a shelter's exact address is confidential, so
//! the system only ever knows a point rounded to 0.01 degree (about 1 km) and a
//! region (county) code.

use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A point rounded to hundredths of a degree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GeoPoint {
    lat_centi: i32,
    lon_centi: i32,
}

impl GeoPoint {
    /// Rounds `lat`, `lon` (degrees) to the coarse grid.
    pub fn new(lat: f64, lon: f64) -> Result<Self, DomainError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(DomainError::invalid("lat", "must be between -90 and 90"));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(DomainError::invalid("lon", "must be between -180 and 180"));
        }
        Ok(Self {
            lat_centi: (lat * 100.0).round() as i32,
            lon_centi: (lon * 100.0).round() as i32,
        })
    }

    /// Checks a point that arrived from the wire (already coarse).
    pub fn validate(&self, field: &str) -> Result<(), DomainError> {
        if !(-9_000..=9_000).contains(&self.lat_centi) || !(-18_000..=18_000).contains(&self.lon_centi) {
            return Err(DomainError::invalid(field, "coordinates out of range"));
        }
        Ok(())
    }

    pub fn lat(&self) -> f64 {
        f64::from(self.lat_centi) / 100.0
    }
    pub fn lon(&self) -> f64 {
        f64::from(self.lon_centi) / 100.0
    }

    /// Great-circle distance in whole kilometres, rounded up so a "within
    /// 50 km" rule is never loosened by rounding.
    pub fn distance_km(&self, other: &GeoPoint) -> u32 {
        chord_km(chord2(&self.unit_vector(), &other.unit_vector()))
    }

    /// The point on the unit sphere. The matching engine keeps these so it
    /// can compare distances with a few multiplications; `distance_km` goes
    /// through the same numbers, so both always agree.
    pub fn unit_vector(&self) -> [f64; 3] {
        let (lat, lon) = (self.lat().to_radians(), self.lon().to_radians());
        [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
    }
}

/// Mean earth radius used for every distance.
pub const EARTH_RADIUS_KM: f64 = 6371.0;

/// The squared chord between two unit vectors; grows with the distance.
pub fn chord2(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    let (x, y, z) = (a[0] - b[0], a[1] - b[1], a[2] - b[2]);
    x * x + y * y + z * z
}

/// Whole kilometres (rounded up) along the great circle for a squared chord.
pub fn chord_km(chord2: f64) -> u32 {
    let km = 2.0 * EARTH_RADIUS_KM * (chord2.sqrt() / 2.0).min(1.0).asin();
    km.ceil() as u32
}

/// A region code, typically a county (for example `US-06-037`). Upper-case
/// letters, digits and dashes, 1 to 32 characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RegionCode(String);

impl RegionCode {
    pub fn new(code: impl Into<String>) -> Result<Self, DomainError> {
        let code = Self(code.into());
        code.validate("region")?;
        Ok(code)
    }
    pub fn validate(&self, field: &str) -> Result<(), DomainError> {
        let ok = (1..=32).contains(&self.0.len())
            && self
                .0
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(())
        } else {
            Err(DomainError::invalid(
                field,
                "must be 1-32 characters of A-Z, 0-9 and '-'",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where something is: a coarse point and its region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub point: GeoPoint,
    pub region: RegionCode,
}

impl Location {
    pub fn validate(&self, field: &str) -> Result<(), DomainError> {
        self.point.validate(&format!("{field}.point"))?;
        self.region.validate(&format!("{field}.region"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_rounded_to_about_a_kilometre() {
        let p = GeoPoint::new(34.052_235, -118.243_683).unwrap();
        assert_eq!((p.lat(), p.lon()), (34.05, -118.24));
    }

    #[test]
    fn distance_between_los_angeles_and_san_diego_is_about_180_km() {
        let la = GeoPoint::new(34.05, -118.24).unwrap();
        let sd = GeoPoint::new(32.72, -117.16).unwrap();
        let d = la.distance_km(&sd);
        assert!((175..=185).contains(&d), "{d}");
        assert_eq!(la.distance_km(&la), 0);
        assert_eq!(d, sd.distance_km(&la));
    }

    #[test]
    fn bad_coordinates_and_regions_are_rejected_with_the_field() {
        assert_eq!(GeoPoint::new(91.0, 0.0).unwrap_err().field(), Some("lat"));
        assert_eq!(GeoPoint::new(0.0, f64::NAN).unwrap_err().field(), Some("lon"));
        assert!(RegionCode::new("us-06").is_err());
        assert!(RegionCode::new("").is_err());
        assert!(RegionCode::new("US-06-037").is_ok());
    }
}
