//! Conversions between the wire contracts and the domain. Input conversions
//! validate and name the offending field (`spec.eligibility.languages`);
//! the domain then checks its own rules with the same field names.

use refer_domain::eligibility::{Eligibility, ServiceArea};
use refer_domain::geo::{GeoPoint, Location, RegionCode};
use refer_domain::ids::OrgId;
use refer_domain::kinds::{NeedKind, ResourceKind, ServiceKind};
use refer_domain::need::{DeclineReason, Target};
use refer_domain::profile::{Accessibility, AgeBand, Gender, Language, Profile};
use refer_domain::provider::ProviderProfile;
use refer_domain::request::{Constraints, Urgency};
use refer_domain::time::{Hours, TimeWindow, Timestamp, Weekday, WeeklySlot};
use refer_domain::{DomainError, IdempotencyKey};
use refer_proto::capacity::v1 as cap;
use refer_proto::common::v1 as pb;
use std::collections::BTreeSet;
use tonic::Status;
use uuid::Uuid;

/// Every conversion between a wire enum and a domain enum: `$from` reads
/// the wire value (INVALID_ARGUMENT naming the field for an unknown or
/// unspecified one), `$to` writes it. Domain values the wire shows as
/// another (a status clients do not see) follow `shown as`.
#[macro_export]
macro_rules! enum_map {
    ($from:ident, $to:ident, $pb:ty, $dom:ty, { $($p:ident <=> $d:ident),* $(,)? }
     $(shown as { $($d2:ident => $p2:ident),* $(,)? })?) => {
        pub fn $from(value: i32, field: &str) -> Result<$dom, ::tonic::Status> {
            match <$pb>::try_from(value) {
                $(Ok(<$pb>::$p) => Ok(<$dom>::$d),)*
                _ => Err($crate::wire::invalid(field, format!("{value} is not a valid {}", stringify!($dom)))),
            }
        }
        pub fn $to(value: $dom) -> i32 {
            match value {
                $(<$dom>::$d => <$pb>::$p as i32,)*
                $($(<$dom>::$d2 => <$pb>::$p2 as i32,)*)?
            }
        }
    };
}

enum_map!(service_kind, service_kind_pb, pb::ServiceKind, ServiceKind, {
    ShelterBed <=> ShelterBed, Counseling <=> Counseling, Medical <=> Medical, Legal <=> Legal,
});
enum_map!(resource_kind, resource_kind_pb, pb::ResourceKind, ResourceKind, {
    HotelRoomNight <=> HotelRoomNight, Vehicle <=> Vehicle, RentalCar <=> RentalCar, AudioVisual <=> AudioVisual,
});
enum_map!(need_kind, need_kind_pb, pb::NeedKind, NeedKind, {
    Shelter <=> Shelter, Counseling <=> Counseling, Medical <=> Medical, Legal <=> Legal,
    Transport <=> Transport, AudioVisual <=> AudioVisual,
});
enum_map!(age_band, age_band_pb, pb::AgeBand, AgeBand, { Juvenile <=> Juvenile, Adult <=> Adult });
enum_map!(gender, gender_pb, pb::Gender, Gender, { Female <=> Female, Male <=> Male, NonBinary <=> NonBinary });
enum_map!(accessibility, accessibility_pb, pb::Accessibility, Accessibility, {
    Wheelchair <=> Wheelchair, SignLanguage <=> SignLanguage, VisualImpairment <=> VisualImpairment,
    ServiceAnimal <=> ServiceAnimal,
});
enum_map!(decline_reason, decline_reason_pb, pb::DeclineReason, DeclineReason, {
    NoCapacity <=> NoCapacity, NotEligible <=> NotEligible, SafetyConcern <=> SafetyConcern, Other <=> Other,
});
enum_map!(urgency, urgency_pb, pb::Urgency, Urgency, { Immediate <=> Immediate, Soon <=> Soon, Routine <=> Routine });
enum_map!(weekday, weekday_pb, pb::Weekday, Weekday, {
    Monday <=> Mon, Tuesday <=> Tue, Wednesday <=> Wed, Thursday <=> Thu, Friday <=> Fri,
    Saturday <=> Sat, Sunday <=> Sun,
});

/// INVALID_ARGUMENT naming `field`.
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("invalid {field}: {reason}"))
}

/// A domain error as its status, in the domain's words.
pub fn domain_status(err: &DomainError) -> Status {
    use refer_domain::ErrorKind;
    let message = err.to_string();
    match err.kind() {
        ErrorKind::InvalidArgument => Status::invalid_argument(message),
        ErrorKind::FailedPrecondition => Status::failed_precondition(message),
        ErrorKind::NotFound => Status::not_found(message),
        ErrorKind::AlreadyExists => Status::already_exists(message),
    }
}

/// Turns a domain validation error into INVALID_ARGUMENT, prefixing its field.
pub fn domain_invalid(prefix: &str, err: DomainError) -> Status {
    match err {
        DomainError::Invalid { field, reason } if prefix.is_empty() => invalid(&field, reason),
        DomainError::Invalid { field, reason } => invalid(&format!("{prefix}.{field}"), reason),
        other => domain_status(&other),
    }
}

pub fn id(value: &str, field: &str) -> Result<Uuid, Status> {
    if value.is_empty() {
        return Err(invalid(field, "is required"));
    }
    Uuid::parse_str(value).map_err(|_| invalid(field, "must be a UUID"))
}

pub fn id_pb(id: Uuid) -> String {
    id.as_simple().to_string()
}

pub fn idempotency_key(value: &str) -> Result<IdempotencyKey, Status> {
    IdempotencyKey::new(value).map_err(|e| domain_invalid("", e))
}

fn required<'a, T>(value: Option<&'a T>, field: &str) -> Result<&'a T, Status> {
    value.ok_or_else(|| invalid(field, "is required"))
}

/// INVALID_ARGUMENT unless a repeated field holds at most `max` values:
/// checked before any value is converted.
pub fn at_most(len: usize, max: usize, field: &str) -> Result<(), Status> {
    if len > max {
        return Err(invalid(
            field,
            format!("holds {len} values; at most {max} are accepted"),
        ));
    }
    Ok(())
}

/// Converts a list (of at most `max` values), refusing duplicates; an
/// item's error names it (`languages[2]`).
fn set_of_at_most<V, T: Ord>(
    values: &[V],
    max: usize,
    field: &str,
    one: impl Fn(&V, &str) -> Result<T, Status>,
) -> Result<BTreeSet<T>, Status> {
    at_most(values.len(), max, field)?;
    let mut set = BTreeSet::new();
    for (i, v) in values.iter().enumerate() {
        let item = format!("{field}[{i}]");
        if !set.insert(one(v, &item)?) {
            return Err(invalid(&item, "repeats an earlier value"));
        }
    }
    Ok(set)
}

/// Converts a list of enum values, refusing duplicates (there are only so
/// many values, so only so many fit).
pub fn set_of<T: Ord>(
    values: &[i32],
    field: &str,
    one: impl Fn(i32, &str) -> Result<T, Status>,
) -> Result<BTreeSet<T>, Status> {
    set_of_at_most(values, 64, field, |v, f| one(*v, f))
}

pub fn languages(values: &[String], max: usize, field: &str) -> Result<BTreeSet<Language>, Status> {
    set_of_at_most(values, max, field, |v, f| {
        Language::new(v.clone()).map_err(|e| invalid(f, e.to_string()))
    })
}

fn regions(values: &[String], max: usize, field: &str) -> Result<BTreeSet<RegionCode>, Status> {
    set_of_at_most(values, max, field, |v, f| region(v, f))
}

/// The earliest and latest instants accepted anywhere (2000-01-01 and
/// 2200-01-01 UTC): a time outside them is a client's mistake.
pub const EARLIEST_MS: i64 = 946_684_800_000;
pub const LATEST_MS: i64 = 7_258_118_400_000;
/// The longest donation window: a year and a day.
pub const MAX_WINDOW_MS: i64 = 366 * 24 * 3600 * 1000;

pub fn timestamp(ms: i64, field: &str) -> Result<Timestamp, Status> {
    if !(EARLIEST_MS..=LATEST_MS).contains(&ms) {
        return Err(invalid(
            field,
            "must be epoch milliseconds between 2000-01-01 and 2200-01-01",
        ));
    }
    Ok(Timestamp::from_millis(ms))
}

pub fn region(value: &str, field: &str) -> Result<RegionCode, Status> {
    RegionCode::new(value).map_err(|_| invalid(field, "must be 1-32 characters of A-Z, 0-9 and '-'"))
}

pub fn location(value: Option<&pb::Location>, field: &str) -> Result<Location, Status> {
    let value = required(value, field)?;
    let point = required(value.point.as_ref(), &format!("{field}.point"))?;
    let point = GeoPoint::new(point.lat, point.lon).map_err(|e| domain_invalid(&format!("{field}.point"), e))?;
    Ok(Location {
        point,
        region: region(&value.region, &format!("{field}.region"))?,
    })
}

pub fn location_pb(value: &Location) -> pb::Location {
    pb::Location {
        point: Some(pb::GeoPoint {
            lat: value.point.lat(),
            lon: value.point.lon(),
        }),
        region: value.region.as_str().to_owned(),
    }
}

pub fn hours(value: Option<&pb::Hours>, field: &str) -> Result<Hours, Status> {
    let value = required(value, field)?;
    if value.always {
        return Ok(Hours::Always);
    }
    let offset = i16::try_from(value.utc_offset_minutes)
        .map_err(|_| invalid(&format!("{field}.utc_offset_minutes"), "out of range"))?;
    at_most(
        value.slots.len(),
        refer_domain::time::MAX_SLOTS,
        &format!("{field}.slots"),
    )?;
    let slots = value
        .slots
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            let f = format!("{field}.slots[{i}]");
            Ok(WeeklySlot {
                day: weekday(slot.day, &format!("{f}.day"))?,
                open: u16::try_from(slot.open_minute)
                    .map_err(|_| invalid(&format!("{f}.open_minute"), "out of range"))?,
                close: u16::try_from(slot.close_minute)
                    .map_err(|_| invalid(&format!("{f}.close_minute"), "out of range"))?,
            })
        })
        .collect::<Result<_, Status>>()?;
    let hours = Hours::Weekly {
        utc_offset_minutes: offset,
        slots,
    };
    hours.validate(field).map_err(|e| domain_invalid("", e))?;
    Ok(hours)
}

pub fn hours_pb(value: &Hours) -> pb::Hours {
    match value {
        Hours::Always => pb::Hours {
            always: true,
            ..Default::default()
        },
        Hours::Weekly {
            utc_offset_minutes,
            slots,
        } => pb::Hours {
            always: false,
            utc_offset_minutes: i32::from(*utc_offset_minutes),
            slots: slots
                .iter()
                .map(|s| pb::WeeklySlot {
                    day: weekday_pb(s.day),
                    open_minute: u32::from(s.open),
                    close_minute: u32::from(s.close),
                })
                .collect(),
        },
    }
}

pub fn eligibility(value: Option<&pb::Eligibility>, field: &str) -> Result<Eligibility, Status> {
    use pb::eligibility::ServiceArea as Area;
    let value = required(value, field)?;
    let service_area = match &value.service_area {
        None => ServiceArea::Anywhere,
        Some(Area::Regions(list)) => ServiceArea::Regions(regions(
            &list.regions,
            refer_domain::eligibility::MAX_REGIONS,
            &format!("{field}.regions.regions"),
        )?),
        Some(Area::RadiusKm(km)) => ServiceArea::RadiusKm(*km),
    };
    let eligibility = Eligibility {
        age_bands: set_of(&value.age_bands, &format!("{field}.age_bands"), age_band)?,
        genders: set_of(&value.genders, &format!("{field}.genders"), gender)?,
        languages: languages(
            &value.languages,
            refer_domain::eligibility::MAX_LANGUAGES,
            &format!("{field}.languages"),
        )?,
        accessibility: set_of(&value.accessibility, &format!("{field}.accessibility"), accessibility)?,
        service_area,
    };
    eligibility.validate(field).map_err(|e| domain_invalid("", e))?;
    Ok(eligibility)
}

pub fn eligibility_pb(value: &Eligibility) -> pb::Eligibility {
    use pb::eligibility::ServiceArea as Area;
    pb::Eligibility {
        age_bands: value.age_bands.iter().map(|v| age_band_pb(*v)).collect(),
        genders: value.genders.iter().map(|v| gender_pb(*v)).collect(),
        languages: value.languages.iter().map(|l| l.as_str().to_owned()).collect(),
        accessibility: value.accessibility.iter().map(|v| accessibility_pb(*v)).collect(),
        service_area: match &value.service_area {
            ServiceArea::Anywhere => None,
            ServiceArea::Regions(regions) => Some(Area::Regions(pb::RegionList {
                regions: regions.iter().map(|r| r.as_str().to_owned()).collect(),
            })),
            ServiceArea::RadiusKm(km) => Some(Area::RadiusKm(*km)),
        },
    }
}

/// A site's registration from the wire, for organisation `org`.
pub fn provider_profile(spec: &cap::ProviderSpec, org: OrgId) -> Result<ProviderProfile, Status> {
    let profile = ProviderProfile {
        org,
        name: spec.name.clone(),
        services: set_of(&spec.services, "spec.services", service_kind)?,
        eligibility: eligibility(spec.eligibility.as_ref(), "spec.eligibility")?,
        location: location(spec.location.as_ref(), "spec.location")?,
        hours: hours(spec.hours.as_ref(), "spec.hours")?,
    };
    profile.validate().map_err(|e| domain_invalid("spec", e))?;
    Ok(profile)
}

pub fn provider_spec_pb(p: &ProviderProfile) -> cap::ProviderSpec {
    cap::ProviderSpec {
        org_id: id_pb(p.org.as_uuid()),
        name: p.name.clone(),
        services: p.services.iter().map(|s| service_kind_pb(*s)).collect(),
        eligibility: Some(eligibility_pb(&p.eligibility)),
        location: Some(location_pb(&p.location)),
        hours: Some(hours_pb(&p.hours)),
    }
}

pub fn profile(value: Option<&pb::Profile>, field: &str) -> Result<Profile, Status> {
    let value = required(value, field)?;
    let profile = Profile {
        age_band: age_band(value.age_band, &format!("{field}.age_band"))?,
        gender: gender(value.gender, &format!("{field}.gender"))?,
        languages: languages(
            &value.languages,
            refer_domain::profile::MAX_LANGUAGES,
            &format!("{field}.languages"),
        )?,
        accessibility: set_of(&value.accessibility, &format!("{field}.accessibility"), accessibility)?,
        party_size: u16::try_from(value.party_size).unwrap_or(u16::MAX),
    };
    profile.validate(field).map_err(|e| domain_invalid("", e))?;
    Ok(profile)
}

pub fn profile_pb(value: &Profile) -> pb::Profile {
    pb::Profile {
        age_band: age_band_pb(value.age_band),
        gender: gender_pb(value.gender),
        languages: value.languages.iter().map(|l| l.as_str().to_owned()).collect(),
        accessibility: value.accessibility.iter().map(|v| accessibility_pb(*v)).collect(),
        party_size: u32::from(value.party_size),
    }
}

pub fn constraints(value: Option<&pb::Constraints>, field: &str) -> Result<Constraints, Status> {
    let value = required(value, field)?;
    let constraints = Constraints {
        origin: location(value.origin.as_ref(), &format!("{field}.origin"))?,
        max_distance_km: value.max_distance_km,
        avoid_regions: regions(
            &value.avoid_regions,
            refer_domain::request::MAX_AVOID_REGIONS,
            &format!("{field}.avoid_regions"),
        )?,
        needed_by: value
            .needed_by_ms
            .map(|ms| timestamp(ms, &format!("{field}.needed_by_ms")))
            .transpose()?,
    };
    constraints.validate(field).map_err(|e| domain_invalid("", e))?;
    Ok(constraints)
}

pub fn constraints_pb(value: &Constraints) -> pb::Constraints {
    pb::Constraints {
        origin: Some(location_pb(&value.origin)),
        max_distance_km: value.max_distance_km,
        avoid_regions: value.avoid_regions.iter().map(|r| r.as_str().to_owned()).collect(),
        needed_by_ms: value.needed_by.map(|t| t.millis()),
    }
}

pub fn time_window(value: Option<&pb::TimeWindow>, field: &str) -> Result<TimeWindow, Status> {
    let value = required(value, field)?;
    let start = timestamp(value.start_ms, &format!("{field}.start_ms"))?;
    let end = timestamp(value.end_ms, &format!("{field}.end_ms"))?;
    if end.millis() - start.millis() > MAX_WINDOW_MS {
        return Err(invalid(
            &format!("{field}.end_ms"),
            "must be at most 366 days after start_ms",
        ));
    }
    TimeWindow::new(start, end).map_err(|_| invalid(&format!("{field}.end_ms"), "must be after start_ms"))
}

pub fn time_window_pb(value: &TimeWindow) -> pb::TimeWindow {
    pb::TimeWindow {
        start_ms: value.start.millis(),
        end_ms: value.end.millis(),
    }
}

pub fn target_pb(value: &Target) -> pb::Target {
    use pb::target::Target as T;
    pb::Target {
        target: Some(match value {
            Target::Provider(id) => T::ProviderId(id_pb(id.as_uuid())),
            Target::Donation(id) => T::DonationId(id_pb(id.as_uuid())),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_unspecified_is_refused_with_the_field() {
        for kind in NeedKind::ALL {
            assert_eq!(need_kind(need_kind_pb(kind), "kind").unwrap(), kind);
        }
        let err = service_kind(0, "spec.services").unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("spec.services"));
    }

    #[test]
    fn nested_fields_are_named_in_errors() {
        let err = profile(
            Some(&pb::Profile {
                age_band: 2,
                gender: 1,
                languages: vec!["EN".into()],
                accessibility: vec![],
                party_size: 1,
            }),
            "person.profile",
        )
        .unwrap_err();
        assert!(err.message().contains("person.profile.languages"), "{}", err.message());
        let err = profile(
            Some(&pb::Profile {
                age_band: 2,
                gender: 1,
                languages: vec!["en".into()],
                accessibility: vec![],
                party_size: 0,
            }),
            "person.profile",
        )
        .unwrap_err();
        assert!(err.message().contains("person.profile.party_size"), "{}", err.message());
        let err = location(
            Some(&pb::Location {
                point: None,
                region: "US-06".into(),
            }),
            "spec.location",
        )
        .unwrap_err();
        assert!(err.message().contains("spec.location.point"), "{}", err.message());
    }

    #[test]
    fn domain_values_survive_the_wire() {
        let shelter = refer_domain::sample::shelter(refer_domain::ids::OrgId::from_u128(1));
        let e = eligibility(Some(&eligibility_pb(&shelter.eligibility)), "e").unwrap();
        assert_eq!(e, shelter.eligibility);
        assert_eq!(
            location(Some(&location_pb(&shelter.location)), "l").unwrap(),
            shelter.location
        );
        assert_eq!(hours(Some(&hours_pb(&shelter.hours)), "h").unwrap(), shelter.hours);
        let need = refer_domain::sample::shelter_need(
            refer_domain::ids::OrgId::from_u128(1),
            refer_domain::ids::PlacementId::from_u128(2),
            None,
        );
        assert_eq!(
            profile(Some(&profile_pb(&need.spec.profile)), "p").unwrap(),
            need.spec.profile
        );
        assert_eq!(
            constraints(Some(&constraints_pb(&need.spec.constraints)), "c").unwrap(),
            need.spec.constraints
        );
    }
}
