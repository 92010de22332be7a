//! HSDS both ways, as another system would see it: exports checked against
//! the project's own HSDS schema by a JSON Schema validator, read back to
//! the same directory; bad files refused with every problem named.

use refer_domain::eligibility::{Eligibility, ServiceArea};
use refer_domain::geo::RegionCode;
use refer_domain::kinds::ServiceKind;
use refer_domain::profile::{Accessibility, AgeBand, Gender, Language};
use refer_domain::time::{Hours, Weekday, WeeklySlot};
use refer_domain::Timestamp;
use refer_hsds::{export, read, Available, Listing, Refused, MAX_BYTES};
use serde_json::{json, Value};
use uuid::Uuid;

const NIGHT: Timestamp = Timestamp::from_millis(1_764_122_400_000); // 2025-11-26T02:00:00Z
/// The reader's clock: a year after the night.
const NOW: Timestamp = Timestamp::from_millis(1_764_122_400_000 + 365 * 86_400_000);

fn schema() -> jsonschema::Validator {
    let text = include_str!("../schema/hsds-3.1.json");
    let schema: Value = serde_json::from_str(text).expect("the schema is JSON");
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles")
}

fn errors(document: &Value) -> Vec<String> {
    let validator = schema();
    validator
        .iter_errors(document)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn region(code: &str) -> RegionCode {
    RegionCode::new(code).unwrap()
}

fn languages(codes: &[&str]) -> std::collections::BTreeSet<Language> {
    codes.iter().map(|c| Language::new(*c).unwrap()).collect()
}

/// Sites covering each shape a listing takes: 24/7 and weekly hours past
/// midnight with an offset, anywhere, regions and a radius, suspended,
/// capacity declared and not.
fn directory() -> Vec<Listing> {
    let org = Uuid::from_u128(0xA1);
    vec![
        Listing {
            site: Uuid::from_u128(0x11),
            org,
            org_name: "Harbor House Inc.".into(),
            name: "Harbor House".into(),
            services: [ServiceKind::ShelterBed, ServiceKind::Counseling].into(),
            eligibility: Eligibility {
                age_bands: [AgeBand::Adult].into(),
                genders: [Gender::Female].into(),
                languages: languages(&["en", "es"]),
                accessibility: [Accessibility::Wheelchair].into(),
                service_area: ServiceArea::Anywhere,
            },
            hours: Hours::Always,
            region: region("US-06-037"),
            suspended: false,
            capacity: vec![
                Available {
                    service: ServiceKind::ShelterBed,
                    free: 3,
                    as_of: NIGHT,
                },
                Available {
                    service: ServiceKind::Counseling,
                    free: 0,
                    as_of: Timestamp::from_millis(NIGHT.millis() - 3 * 86_400_000 + 123),
                },
            ],
        },
        Listing {
            site: Uuid::from_u128(0x12),
            org,
            org_name: "Harbor House Inc.".into(),
            name: "Night Light".into(),
            services: [ServiceKind::ShelterBed].into(),
            eligibility: Eligibility {
                age_bands: [AgeBand::Juvenile].into(),
                genders: [Gender::Female, Gender::NonBinary].into(),
                languages: languages(&["tgl"]),
                accessibility: Default::default(),
                service_area: ServiceArea::Regions([region("US-06-037"), region("US-06-059")].into()),
            },
            hours: Hours::Weekly {
                utc_offset_minutes: -480,
                slots: vec![
                    WeeklySlot {
                        day: Weekday::Fri,
                        open: 18 * 60,
                        close: 8 * 60,
                    },
                    WeeklySlot {
                        day: Weekday::Sat,
                        open: 0,
                        close: 1440,
                    },
                ],
            },
            region: region("US-06-037"),
            suspended: true,
            capacity: vec![],
        },
        Listing {
            site: Uuid::from_u128(0x13),
            org: Uuid::from_u128(0xA2),
            org_name: "Justice Legal Aid".into(),
            name: "Justice Legal Aid, east office".into(),
            services: [ServiceKind::Legal, ServiceKind::Medical].into(),
            eligibility: Eligibility {
                age_bands: [AgeBand::Adult, AgeBand::Juvenile].into(),
                genders: [Gender::Female, Gender::Male, Gender::NonBinary].into(),
                languages: languages(&["en"]),
                accessibility: [Accessibility::SignLanguage, Accessibility::ServiceAnimal].into(),
                service_area: ServiceArea::RadiusKm(40),
            },
            hours: Hours::Weekly {
                utc_offset_minutes: 330,
                slots: vec![WeeklySlot {
                    day: Weekday::Mon,
                    open: 9 * 60 + 30,
                    close: 17 * 60,
                }],
            },
            region: region("IN-MH"),
            suspended: false,
            capacity: vec![Available {
                service: ServiceKind::Legal,
                free: 12,
                as_of: NIGHT,
            }],
        },
    ]
}

#[test]
fn an_export_validates_against_the_hsds_schema() {
    let exported = export(&directory());
    assert_eq!(errors(&exported), Vec::<String>::new());
    assert_eq!(exported["total_items"], 3);
    let first = &exported["contents"][0];
    assert_eq!(first["status"], "active");
    assert_eq!(first["organization"]["name"], "Harbor House Inc.");
    assert_eq!(first["capacities"][0]["unit"]["name"], "bed");
    assert_eq!(first["capacities"][0]["available"], 3);
    assert_eq!(first["capacities"][0]["updated"], "2025-11-26T02:00:00.000Z");
    assert_eq!(exported["contents"][1]["status"], "temporarily closed");
    assert_eq!(exported["contents"][1]["maximum_age"], 17);
    assert_eq!(exported["contents"][1]["schedules"][0]["opens_at"], "18:00-08:00");
    assert_eq!(exported["contents"][1]["schedules"][0]["timezone"], -8.0);
}

#[test]
fn the_schema_refuses_what_hsds_refuses() {
    // The validator is not a rubber stamp: each break of the reference's
    // rules in an export is caught.
    let exported = export(&directory());
    type Break = (&'static str, fn(&mut Value));
    let breaks: [Break; 5] = [
        ("a service without status", |d| {
            d["contents"][0].as_object_mut().unwrap().remove("status");
        }),
        ("a capacity without updated", |d| {
            d["contents"][0]["capacities"][0]
                .as_object_mut()
                .unwrap()
                .remove("updated");
        }),
        ("an updated that is no date-time", |d| {
            d["contents"][0]["capacities"][0]["updated"] = json!("last Monday")
        }),
        ("a status HSDS does not know", |d| {
            d["contents"][0]["status"] = json!("open")
        }),
        ("an id that is no UUID", |d| d["contents"][0]["id"] = json!("site-1")),
    ];
    for (what, break_it) in breaks {
        let mut broken = exported.clone();
        break_it(&mut broken);
        assert!(!errors(&broken).is_empty(), "{what} passed the schema");
    }
}

#[test]
fn an_export_never_carries_a_location() {
    let text = serde_json::to_string(&export(&directory())).unwrap();
    for word in ["latitude", "longitude", "location", "address", "point"] {
        assert!(!text.contains(word), "the export mentions {word}: {text}");
    }
}

#[test]
fn an_export_read_back_is_the_same_directory() {
    let directory = directory();
    let text = serde_json::to_vec(&export(&directory)).unwrap();
    let entries = read(&text, NOW).expect("an export reads back");
    let mut read_back: Vec<Listing> = entries.iter().map(|e| e.listing.clone()).collect();
    read_back.sort_by_key(|l| l.site);
    assert_eq!(read_back, directory);
    assert!(entries.iter().all(|e| e.point.is_none()));
    // And exports again to the very same bytes.
    assert_eq!(serde_json::to_vec(&export(&read_back)).unwrap(), text);
}

#[test]
fn a_plain_hsds_record_from_another_system_reads() {
    // No Refer terms: kinds from the units counted, region from the one
    // service area, ages from HSDS's, every gender, a location given.
    let file = json!([{
        "id": "7b0f3c1e-8d7a-4e41-a9a2-0c1f2b3d4e5f",
        "name": "Eastside Clinic",
        "status": "active",
        "minimum_age": 18,
        "organization": { "id": "0a3c4d5e-6f70-4182-9394-a5b6c7d8e9f0", "name": "Eastside Health", "description": "" },
        "languages": [{ "id": "1c2d3e4f-5061-4728-8394-a5b6c7d8e9f1", "code": "es" }],
        "service_areas": [{ "id": "2c2d3e4f-5061-4728-8394-a5b6c7d8e9f1", "name": "US-06-037" }],
        "capacities": [{ "id": "3c2d3e4f-5061-4728-8394-a5b6c7d8e9f1", "unit": { "id": "4c2d3e4f-5061-4728-8394-a5b6c7d8e9f1", "name": "Medical visit" },
                         "available": 8, "updated": "2026-01-30T09:15:00-08:00" }],
        "schedules": [{ "id": "5c2d3e4f-5061-4728-8394-a5b6c7d8e9f1", "freq": "WEEKLY", "byday": "MO,TU,WE", "opens_at": "08:00", "closes_at": "20:00", "timezone": -8 }],
        "service_at_locations": [{ "id": "6c2d3e4f-5061-4728-8394-a5b6c7d8e9f1", "location": { "id": "7c2d3e4f-5061-4728-8394-a5b6c7d8e9f1", "location_type": "physical", "latitude": 34.021, "longitude": -118.154 } }]
    }]);
    let entries = read(&serde_json::to_vec(&file).unwrap(), NOW).expect("reads");
    let l = &entries[0].listing;
    assert_eq!(l.services, [ServiceKind::Medical].into());
    assert_eq!(l.region.as_str(), "US-06-037");
    assert_eq!(l.eligibility.age_bands, [AgeBand::Adult].into());
    assert_eq!(l.eligibility.genders.len(), 3);
    assert_eq!(
        l.eligibility.service_area,
        ServiceArea::Regions([region("US-06-037")].into())
    );
    assert_eq!(l.capacity[0].free, 8);
    assert_eq!(l.capacity[0].as_of, Timestamp::from_millis(1_769_793_300_000));
    match &l.hours {
        Hours::Weekly {
            utc_offset_minutes,
            slots,
        } => {
            assert_eq!(*utc_offset_minutes, -480);
            assert_eq!(slots.len(), 3);
        }
        Hours::Always => panic!("three weekdays read as always"),
    }
    let point = entries[0].point.expect("the location is read");
    assert_eq!((point.lat(), point.lon()), (34.02, -118.15));
}

fn refused(bytes: &[u8]) -> Refused {
    read(bytes, NOW).expect_err("the file is refused")
}

fn problems(file: Value) -> Vec<String> {
    match refused(&serde_json::to_vec(&file).unwrap()) {
        Refused::Records(problems) => problems.iter().map(|p| p.to_string()).collect(),
        other => panic!("refused as a whole, not by record: {other}"),
    }
}

#[test]
fn wrong_types_are_named_by_record_and_field() {
    let mut file = export(&directory());
    file["contents"][0]["capacities"][0]["available"] = json!("3");
    file["contents"][1]["languages"] = json!("en");
    file["contents"][2]["status"] = json!(true);
    let found = problems(file);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("contents[0] (service 00000000-0000-0000-0000-000000000011): capacities[0].available: must be a number, not a string"), "{found:#?}");
    assert!(
        found[1].contains("contents[1]") && found[1].contains("languages: must be an array, not a string"),
        "{found:#?}"
    );
    assert!(
        found[2].contains("contents[2]") && found[2].contains("status: must be a string, not a boolean"),
        "{found:#?}"
    );
}

#[test]
fn missing_and_repeated_ids_are_refused() {
    let mut file = export(&directory());
    file["contents"][0].as_object_mut().unwrap().remove("id");
    file["contents"][1]["organization"]
        .as_object_mut()
        .unwrap()
        .remove("id");
    file["contents"][2]["id"] = file["contents"][1]["id"].clone();
    let found = problems(file);
    assert!(
        found.iter().any(|p| p.starts_with("contents[0]: id: is missing")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("contents[1]") && p.contains("organization.id: is missing")),
        "{found:#?}"
    );
    // contents[1] was refused, so [2] repeats no id that was kept... but
    // the id it carries is read: a repeat of a good record is named.
    let mut file = export(&directory());
    file["contents"][2]["id"] = file["contents"][0]["id"].clone();
    let found = problems(file);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("contents[2]") && found[0].contains("id: repeats the id of contents[0]"),
        "{found:#?}"
    );
}

#[test]
fn bad_values_name_what_is_allowed() {
    let mut file = export(&directory());
    file["contents"][0]["capacities"][0]["available"] = json!(2.5);
    file["contents"][0]["languages"][0]["code"] = json!("English");
    file["contents"][0]["attributes"][0]["value"] = json!("hotel");
    file["contents"][1]["schedules"][0]["byday"] = json!("Friday");
    file["contents"][2]["capacities"][0]["updated"] = json!("yesterday");
    let found = problems(file).join("\n");
    for expected in [
        "capacities[0].available: 2.5 is not a whole number from 0 to",
        "languages[0].code: \"English\" is not an ISO 639 code",
        "attributes[0].value: \"hotel\" is not one of shelter_bed, counseling, medical, legal",
        "schedules[0].byday: \"Friday\" is not a list of MO, TU",
        "capacities[0].updated: \"yesterday\" is not an RFC 3339 date-time",
    ] {
        assert!(found.contains(expected), "missing {expected:?} in\n{found}");
    }
}

#[test]
fn a_file_that_is_no_hsds_is_refused_whole() {
    let huge = vec![b' '; MAX_BYTES + 1];
    assert_eq!(refused(&huge), Refused::TooLarge);
    assert!(refused(&huge).to_string().contains("at most 16777216 bytes"));
    let mut latin1 = br#"[{"name": "Caf"#.to_vec();
    latin1.push(0xE9);
    latin1.extend_from_slice(br#""}]"#);
    assert_eq!(refused(&latin1), Refused::NotUtf8 { offset: 14 });
    assert!(matches!(refused(b"[{\"id\": }]"), Refused::NotJson { line: 1, .. }));
    assert!(matches!(refused(b"{\"services\": []}"), Refused::Shape(_)));
    assert!(matches!(refused(b"42"), Refused::Shape(_)));
}

#[test]
fn every_problem_of_a_schedule_is_said_at_once() {
    let mut file = export(&directory());
    file["contents"][1]["schedules"][0]["byday"] = json!("XX");
    file["contents"][1]["schedules"][0]["opens_at"] = json!("25:00Z");
    file["contents"][1]["schedules"][0]["timezone"] = json!("PST");
    let found = problems(file).join("\n");
    for expected in [
        "schedules[0].byday: \"XX\" is not a list",
        "schedules[0].opens_at: \"25:00Z\" is not a time",
        "schedules[0].timezone: must be a number, not a string",
    ] {
        assert!(found.contains(expected), "missing {expected:?} in\n{found}");
    }
}

#[test]
fn whole_numbers_written_as_decimals_and_a_byte_order_mark_read() {
    let mut file = export(&directory());
    file["contents"][0]["capacities"][0]["available"] = json!(4.0);
    file["contents"][2]["capacities"][0]["available"] = json!(1e2);
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(serde_json::to_vec(&file).unwrap());
    let entries = read(&bytes, NOW).expect("reads");
    assert_eq!(entries[0].listing.capacity[0].free, 4);
    assert_eq!(entries[2].listing.capacity[0].free, 100);
    let mut file = export(&directory());
    file["contents"][0]["capacities"][0]["available"] = json!(-1);
    assert!(problems(file)[0].contains("capacities[0].available: -1 is not a whole number"));
}

#[test]
fn a_count_from_the_future_is_refused() {
    // It would outrank every real count for as long as the future lasts.
    let mut file = export(&directory());
    file["contents"][0]["capacities"][0]["updated"] = json!("2100-01-01T00:00:00Z");
    let found = problems(file);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("capacities[0].updated: \"2100-01-01T00:00:00Z\" is in the future"),
        "{found:#?}"
    );
}

#[test]
fn a_radius_and_regions_together_are_refused_and_limits_named_in_hsds_terms() {
    let mut file = export(&directory());
    // Site 3 takes people within 40 km; a second area names a region too.
    file["contents"][2]["service_areas"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "id": "3c2d3e4f-5061-4728-8394-a5b6c7d8e9f1", "name": "US-06-059" }));
    let languages: Vec<Value> = (0..33)
        .map(|i: u8| {
            let letter = (b'a' + i % 26) as char;
            let code = if i < 26 {
                format!("x{letter}")
            } else {
                format!("xa{letter}")
            };
            json!({ "id": Uuid::from_u128(900 + u128::from(i)).to_string(), "code": code })
        })
        .collect();
    file["contents"][0]["languages"] = Value::Array(languages);
    let found = problems(file).join("\n");
    assert!(
        found.contains("contents[2]") && found.contains("service_areas: name regions beside refer_radius_km"),
        "{found}"
    );
    assert!(
        found.contains("contents[0]") && found.contains("languages: 33 languages: a site lists at most 32"),
        "{found}"
    );
}
