//! HSDS's tabular form (a CSV file per table), as a 211 system would hand
//! it over: it reads to the very sites its JSON form reads to, and a bad
//! table or row is refused with its file, line and field.

use refer_domain::Timestamp;
use refer_hsds::{read_all, read_tables, Refused};
use std::collections::BTreeMap;
use std::path::Path;

/// 2026-12-04: after the example's `updated` times.
const NOW: Timestamp = Timestamp::from_millis(1_796_342_400_000);

fn tables(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn example() -> BTreeMap<String, Vec<u8>> {
    tables(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/partners-tabular"))
}

fn problems(files: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let (_, problems) = read_tables(files, NOW).expect("read by record");
    problems.iter().map(ToString::to_string).collect()
}

fn refused(files: &BTreeMap<String, Vec<u8>>) -> String {
    match read_tables(files, NOW) {
        Err(e) => e.to_string(),
        Ok((_, problems)) => panic!("read, with {problems:?}"),
    }
}

#[test]
fn the_example_s_tables_read_to_the_sites_its_json_reads_to() {
    let json =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/partners.hsds.json")).unwrap();
    let (from_json, problems) = read_all(&json, NOW).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let (from_tables, problems) = read_tables(&example(), NOW).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(from_tables.len(), 9);
    for (t, j) in from_tables.iter().zip(&from_json) {
        assert_eq!(t.listing, j.listing);
        assert_eq!(t.point, j.point);
    }
    assert_eq!(from_tables[0].place, "services.csv line 2");
}

/// A table of the example with `edit` applied to its text.
fn with(table: &str, edit: impl Fn(&str) -> String) -> BTreeMap<String, Vec<u8>> {
    let mut files = example();
    let text = String::from_utf8(files[table].clone()).unwrap();
    files.insert(table.to_owned(), edit(&text).into_bytes());
    files
}

#[test]
fn a_bad_cell_is_named_by_its_file_line_and_field() {
    // Harbor House's beds (service_capacity.csv line 2): no number.
    let files = with("service_capacity.csv", |t| {
        t.replacen(",3,2026-11-01", ",three,2026-11-01", 1)
    });
    let found = problems(&files);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("services.csv line 2 (service 9516d78b-5844-52d1-a7cc-d5cdebb48b6d): service_capacity.csv line 2, available: must be a number, not a string"),
        "{found:?}"
    );
    // A language that is no code, and a status that is none: both said.
    let mut files = with("languages.csv", |t| t.replacen(",es\n", ",Spanish\n", 1));
    let services = String::from_utf8(files["services.csv"].clone()).unwrap();
    files.insert(
        "services.csv".into(),
        services
            .replacen("Safe Haven,active", "Safe Haven,open", 1)
            .into_bytes(),
    );
    let found = problems(&files);
    assert!(
        found
            .iter()
            .any(|p| p.contains("languages.csv line") && p.contains("code: \"Spanish\" is not an ISO 639 code")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("services.csv line 3") && p.contains("status: \"open\" is not one of")),
        "{found:?}"
    );
}

#[test]
fn a_repeated_service_refuses_the_tables_naming_both_lines() {
    let files = with("services.csv", |t| {
        let second = t.lines().nth(1).unwrap().to_owned();
        format!("{t}{second}\n")
    });
    let said = refused(&files);
    assert!(
        said.contains("services.csv line 11: id") && said.contains("repeats the id of services.csv line 2"),
        "{said}"
    );
}

#[test]
fn rows_that_link_to_nothing_refuse_the_tables_whole() {
    let ghost = "00000000-0000-0000-0000-0000000000aa";
    let files = with("languages.csv", |t| {
        format!("{t}1b000000-0000-0000-0000-000000000001,{ghost},fr\n")
    });
    let said = refused(&files);
    assert!(
        said.contains("languages.csv line") && said.contains(ghost) && said.contains("services.csv"),
        "{said}"
    );
    let files = with("service_capacity.csv", |t| {
        t.replacen("b3869a01-bbc5-5724-93b7-5ade0f3ce82b", ghost, 1)
    });
    let said = refused(&files);
    assert!(said.contains("unit_id") && said.contains("units.csv"), "{said}");
    let files = with("services.csv", |t| {
        t.replacen("90b79b9f-0219-545a-bc1a-ac26214aac9d", ghost, 1)
    });
    let said = refused(&files);
    assert!(said.contains("services.csv line 2: organization_id"), "{said}");
}

#[test]
fn tables_that_cannot_be_read_are_refused_whole() {
    let mut files = example();
    files.remove("services.csv");
    assert!(refused(&files).contains("no services.csv"));
    let mut files = example();
    files.insert("languages.csv".into(), b"id,service_id,code\n\xff\xfe,x,es\n".to_vec());
    let said = refused(&files);
    assert!(said.contains("languages.csv is not UTF-8"), "{said}");
    let files = with("units.csv", |t| format!("{t}\"unterminated,quote\n"));
    let said = refused(&files);
    assert!(said.contains("units.csv"), "{said}");
    let mut files = example();
    files.insert("phones.csv".into(), vec![b'x'; refer_hsds::MAX_BYTES]);
    assert!(matches!(read_tables(&files, NOW), Err(Refused::TooLarge)));
    // Another HSDS table Refer does not read is passed over.
    let mut files = example();
    files.insert("phones.csv".into(), b"id,number\n1,555-0100\n".to_vec());
    assert_eq!(read_tables(&files, NOW).unwrap().0.len(), 9);
}

#[test]
fn a_plain_record_from_another_system_reads_from_its_tables() {
    // No Refer terms: kinds from the units counted, region from the one
    // service area, ages from HSDS's, hours from a weekly schedule, the
    // place through service_at_location.csv (the singular name).
    let files: BTreeMap<String, Vec<u8>> = [
        ("services.csv", "id,organization_id,name,status,minimum_age\n7b0f3c1e-8d7a-4e41-a9a2-0c1f2b3d4e5f,0a3c4d5e-6f70-4182-9394-a5b6c7d8e9f0,Eastside Clinic,active,18\n"),
        ("organizations.csv", "id,name,description\n0a3c4d5e-6f70-4182-9394-a5b6c7d8e9f0,Eastside Health,\n"),
        ("languages.csv", "id,service_id,code\n1c2d3e4f-5061-4728-8394-a5b6c7d8e9f1,7b0f3c1e-8d7a-4e41-a9a2-0c1f2b3d4e5f,es\n"),
        ("service_areas.csv", "id,service_id,name\n2c2d3e4f-5061-4728-8394-a5b6c7d8e9f1,7b0f3c1e-8d7a-4e41-a9a2-0c1f2b3d4e5f,US-06-037\n"),
        ("units.csv", "id,name,scheme,identifier,uri\n4c2d3e4f-5061-4728-8394-a5b6c7d8e9f1,Medical visit,,,\n"),
        ("service_capacity.csv", "id,service_id,unit_id,available,maximum,description,updated\n3c2d3e4f-5061-4728-8394-a5b6c7d8e9f1,7b0f3c1e-8d7a-4e41-a9a2-0c1f2b3d4e5f,4c2d3e4f-5061-4728-8394-a5b6c7d8e9f1,8,,,2026-01-30T09:15:00-08:00\n"),
        ("schedules.csv", "id,service_id,freq,byday,opens_at,closes_at,timezone\n5c2d3e4f-5061-4728-8394-a5b6c7d8e9f1,7b0f3c1e-8d7a-4e41-a9a2-0c1f2b3d4e5f,WEEKLY,\"MO,TU,WE\",08:00,20:00,-8\n"),
        ("service_at_location.csv", "id,service_id,location_id\n6c2d3e4f-5061-4728-8394-a5b6c7d8e9f1,7b0f3c1e-8d7a-4e41-a9a2-0c1f2b3d4e5f,7c2d3e4f-5061-4728-8394-a5b6c7d8e9f1\n"),
        ("locations.csv", "id,location_type,latitude,longitude\n7c2d3e4f-5061-4728-8394-a5b6c7d8e9f1,physical,34.021,-118.154\n"),
    ]
    .into_iter()
    .map(|(name, text)| (name.to_owned(), text.as_bytes().to_vec()))
    .collect();
    let (entries, problems) = read_tables(&files, NOW).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let l = &entries[0].listing;
    assert_eq!(l.services, [refer_domain::kinds::ServiceKind::Medical].into());
    assert_eq!(l.region.as_str(), "US-06-037");
    assert_eq!(l.eligibility.age_bands, [refer_domain::profile::AgeBand::Adult].into());
    assert_eq!(l.capacity[0].free, 8);
    match &l.hours {
        refer_domain::time::Hours::Weekly {
            utc_offset_minutes,
            slots,
        } => assert_eq!((*utc_offset_minutes, slots.len()), (-480, 3)),
        refer_domain::time::Hours::Always => panic!("three weekdays read as always"),
    }
    let point = entries[0].point.expect("the location is read");
    assert_eq!((point.lat(), point.lon()), (34.02, -118.15));
}
