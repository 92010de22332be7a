//! Command-line values and their wire forms.

use clap::ValueEnum;
use refer_proto::common::v1 as pb;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Service {
    Bed,
    Counseling,
    Medical,
    Legal,
}

impl Service {
    pub fn pb(self) -> i32 {
        (match self {
            Self::Bed => pb::ServiceKind::ShelterBed,
            Self::Counseling => pb::ServiceKind::Counseling,
            Self::Medical => pb::ServiceKind::Medical,
            Self::Legal => pb::ServiceKind::Legal,
        }) as i32
    }
}

pub fn service_name(v: i32) -> &'static str {
    match pb::ServiceKind::try_from(v) {
        Ok(pb::ServiceKind::ShelterBed) => "bed",
        Ok(pb::ServiceKind::Counseling) => "counseling",
        Ok(pb::ServiceKind::Medical) => "medical",
        Ok(pb::ServiceKind::Legal) => "legal",
        _ => "?",
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Need {
    Shelter,
    Counseling,
    Medical,
    Legal,
    Transport,
    AudioVisual,
}

impl Need {
    pub fn pb(self) -> i32 {
        (match self {
            Self::Shelter => pb::NeedKind::Shelter,
            Self::Counseling => pb::NeedKind::Counseling,
            Self::Medical => pb::NeedKind::Medical,
            Self::Legal => pb::NeedKind::Legal,
            Self::Transport => pb::NeedKind::Transport,
            Self::AudioVisual => pb::NeedKind::AudioVisual,
        }) as i32
    }
}

pub fn need_name(v: i32) -> &'static str {
    match pb::NeedKind::try_from(v) {
        Ok(pb::NeedKind::Shelter) => "shelter",
        Ok(pb::NeedKind::Counseling) => "counseling",
        Ok(pb::NeedKind::Medical) => "medical",
        Ok(pb::NeedKind::Legal) => "legal",
        Ok(pb::NeedKind::Transport) => "transport",
        Ok(pb::NeedKind::AudioVisual) => "audio-visual",
        _ => "?",
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Resource {
    HotelRoomNight,
    Vehicle,
    RentalCar,
    AudioVisual,
}

impl Resource {
    pub fn pb(self) -> i32 {
        (match self {
            Self::HotelRoomNight => pb::ResourceKind::HotelRoomNight,
            Self::Vehicle => pb::ResourceKind::Vehicle,
            Self::RentalCar => pb::ResourceKind::RentalCar,
            Self::AudioVisual => pb::ResourceKind::AudioVisual,
        }) as i32
    }
}

pub fn resource_name(v: i32) -> &'static str {
    match pb::ResourceKind::try_from(v) {
        Ok(pb::ResourceKind::HotelRoomNight) => "hotel-room-night",
        Ok(pb::ResourceKind::Vehicle) => "vehicle",
        Ok(pb::ResourceKind::RentalCar) => "rental-car",
        Ok(pb::ResourceKind::AudioVisual) => "audio-visual",
        _ => "?",
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Age {
    Juvenile,
    Adult,
}

impl Age {
    pub fn pb(self) -> i32 {
        (match self {
            Self::Juvenile => pb::AgeBand::Juvenile,
            Self::Adult => pb::AgeBand::Adult,
        }) as i32
    }
}

pub fn age_name(v: i32) -> &'static str {
    match pb::AgeBand::try_from(v) {
        Ok(pb::AgeBand::Juvenile) => "juvenile",
        Ok(pb::AgeBand::Adult) => "adult",
        _ => "?",
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Gender {
    Female,
    Male,
    NonBinary,
}

impl Gender {
    pub fn pb(self) -> i32 {
        (match self {
            Self::Female => pb::Gender::Female,
            Self::Male => pb::Gender::Male,
            Self::NonBinary => pb::Gender::NonBinary,
        }) as i32
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Urgency {
    Immediate,
    Soon,
    Routine,
}

impl Urgency {
    pub fn pb(self) -> i32 {
        (match self {
            Self::Immediate => pb::Urgency::Immediate,
            Self::Soon => pb::Urgency::Soon,
            Self::Routine => pb::Urgency::Routine,
        }) as i32
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Reason {
    NoCapacity,
    NotEligible,
    SafetyConcern,
    Other,
}

impl Reason {
    pub fn pb(self) -> i32 {
        use refer_proto::common::v1::DeclineReason as R;
        (match self {
            Self::NoCapacity => R::NoCapacity,
            Self::NotEligible => R::NotEligible,
            Self::SafetyConcern => R::SafetyConcern,
            Self::Other => R::Other,
        }) as i32
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Cohesion {
    Any,
    Together,
    Apart,
}

/// `LAT,LON` in degrees.
pub fn point(text: &str) -> Result<pb::GeoPoint, String> {
    let (lat, lon) = text
        .split_once(',')
        .ok_or("expected LAT,LON, for example 34.05,-118.24")?;
    let lat: f64 = lat.trim().parse().map_err(|_| format!("{lat:?} is not a latitude"))?;
    let lon: f64 = lon.trim().parse().map_err(|_| format!("{lon:?} is not a longitude"))?;
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err("latitude must be -90..90 and longitude -180..180".into());
    }
    Ok(pb::GeoPoint { lat, lon })
}

pub fn location(at: &pb::GeoPoint, region: &str) -> pb::Location {
    pb::Location {
        point: Some(*at),
        region: region.to_owned(),
    }
}

/// An instant: RFC 3339-like `YYYY-MM-DDTHH:MMZ`, or `+N` hours from now.
pub fn instant(text: &str) -> Result<i64, String> {
    if let Some(hours) = text.strip_prefix('+') {
        let hours: i64 = hours
            .trim_end_matches('h')
            .parse()
            .map_err(|_| format!("{text:?}: expected +HOURS, like +72"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?;
        return Ok(now.as_millis() as i64 + hours * 3_600_000);
    }
    let bad = || format!("{text:?}: expected YYYY-MM-DDTHH:MMZ (UTC) or +HOURS");
    let t = text.trim_end_matches('Z');
    let (date, clock) = t.split_once('T').ok_or_else(bad)?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (
        d.next().and_then(Result::ok).ok_or_else(bad)?,
        d.next().and_then(Result::ok).ok_or_else(bad)?,
        d.next().and_then(Result::ok).ok_or_else(bad)?,
    );
    let mut c = clock.split(':').map(|p| p.parse::<i64>());
    let (hh, mm) = (
        c.next().and_then(Result::ok).ok_or_else(bad)?,
        c.next().and_then(Result::ok).unwrap_or(0),
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || !(0..24).contains(&hh) || !(0..60).contains(&mm) {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + hh) * 60 + mm) * 60_000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn instants_and_points_parse() {
        assert_eq!(super::instant("2026-11-26T02:00Z").unwrap(), 1_795_658_400_000);
        assert!(super::instant("2026-13-01T00:00Z").is_err());
        assert!(super::instant("+72").unwrap() > 1_700_000_000_000);
        assert_eq!(super::point("34.05,-118.24").unwrap().lat, 34.05);
        assert!(super::point("34.05").is_err());
        assert!(super::point("95,0").is_err());
    }
}
