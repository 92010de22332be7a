//! HSDS's tabular form: one CSV file per table (`services.csv`,
//! `organizations.csv`, ...; the columns are the objects' fields, a row's
//! `service_id` links it to its service), as Open Referral's tabular
//! examples lay them out. The tables are joined into the page of services
//! the JSON form is, and that page is read by the same reader, so both
//! forms meet the same checks; every problem is then named by file and line.

use crate::import::read_page;
use crate::{Entry, Problem, Refused};
use refer_domain::Timestamp;
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;

/// The tables Refer reads; other HSDS tables (phones, contacts, ...) are
/// passed over, as the JSON form's other fields are.
pub const TABLES: [&str; 10] = [
    "services",
    "organizations",
    "languages",
    "service_capacity",
    "units",
    "attributes",
    "schedules",
    "service_areas",
    "service_at_locations",
    "locations",
];

/// Columns that hold numbers in the JSON form. A cell that is no number
/// stays text, and the reader says which field must be a number.
const NUMBERS: [&str; 7] = [
    "available",
    "minimum_age",
    "maximum_age",
    "interval",
    "timezone",
    "latitude",
    "longitude",
];

/// One table's rows: (line in its file, column -> non-empty value).
type Rows = Vec<(u64, Map<String, Value>)>;

/// Reads the tabular form: `files` maps each file's name (`services.csv`)
/// to its bytes. Every record as an [`Entry`] beside the problems of the
/// others, as [`crate::read_all`] does; refused whole when a table cannot
/// be read, a row links to nothing, or two services share an id.
pub fn read_tables(files: &BTreeMap<String, Vec<u8>>, now: Timestamp) -> Result<(Vec<Entry>, Vec<Problem>), Refused> {
    let total: usize = files.values().map(Vec::len).sum();
    if total > crate::MAX_BYTES {
        return Err(Refused::TooLarge);
    }
    let mut tables: BTreeMap<&str, Rows> = BTreeMap::new();
    for table in TABLES {
        let name = format!("{table}.csv");
        if let Some(bytes) = files.get(&name) {
            tables.insert(table, rows(&name, bytes)?);
        }
    }
    // The singular name some publishers use for the link table.
    if !tables.contains_key("service_at_locations") {
        if let Some(bytes) = files.get("service_at_location.csv") {
            tables.insert("service_at_locations", rows("service_at_location.csv", bytes)?);
        }
    }
    for required in ["services", "organizations"] {
        if !tables.contains_key(required) {
            return Err(Refused::Shape(format!(
                "no {required}.csv: the tabular form needs services.csv and organizations.csv"
            )));
        }
    }
    let mut join = Join::default();
    let page = join.page(&tables);
    if !join.unlinked.is_empty() {
        return Err(Refused::Shape(format!(
            "{} row(s) cannot be joined to the others:\n  {}",
            join.unlinked.len(),
            join.unlinked.join("\n  ")
        )));
    }
    let (mut entries, mut problems) = read_page(&page, now)?;
    for entry in &mut entries {
        entry.place = join.place(entry.index);
    }
    for problem in &mut problems {
        join.rename(problem);
    }
    Ok((entries, problems))
}

/// A table's rows, or why it cannot be read.
fn rows(name: &str, bytes: &[u8]) -> Result<Rows, Refused> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(Refused::Shape(format!(
            "{name} is not UTF-8 text (byte {} is not)",
            e.valid_up_to()
        )));
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(bytes);
    let unreadable = |e: csv::Error| {
        let line = e.position().map_or(String::new(), |p| format!(" line {}", p.line()));
        Refused::Shape(format!("{name}{line} is not CSV: {e}"))
    };
    let headers: Vec<String> = reader
        .headers()
        .map_err(unreadable)?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(unreadable)?;
        let line = record.position().map_or(0, |p| p.line());
        let mut row = Map::new();
        for (column, cell) in headers.iter().zip(record.iter()) {
            if cell.is_empty() {
                continue;
            }
            let value = match number(cell.trim()) {
                Some(n) if NUMBERS.contains(&column.as_str()) => Value::Number(n),
                _ => Value::String(cell.to_owned()),
            };
            row.insert(column.clone(), value);
        }
        out.push((line, row));
    }
    Ok(out)
}

/// A cell as JSON would write it: whole numbers whole (`-1`, not `-1.0`).
fn number(cell: &str) -> Option<Number> {
    match cell.parse::<i64>() {
        Ok(n) => Some(Number::from(n)),
        Err(_) => cell.parse::<f64>().ok().and_then(Number::from_f64),
    }
}

/// The tables joined into services, remembering where each part came from.
#[derive(Default)]
struct Join {
    /// services.csv's line of each record.
    lines: Vec<u64>,
    /// (record, the array and its index there) -> "file line n".
    parts: BTreeMap<(usize, String), String>,
    /// Rows whose link names nothing, or whose id repeats.
    unlinked: Vec<String>,
}

impl Join {
    fn page(&mut self, tables: &BTreeMap<&str, Rows>) -> Value {
        let empty = Rows::new();
        let table = |name: &str| tables.get(name).unwrap_or(&empty);
        let text = |row: &Map<String, Value>, key: &str| row.get(key).and_then(Value::as_str).map(str::to_owned);
        let by_id = |name: &str| -> BTreeMap<String, &Map<String, Value>> {
            table(name)
                .iter()
                .filter_map(|(_, row)| Some((text(row, "id")?, row)))
                .collect()
        };
        let organizations = by_id("organizations");
        let units = by_id("units");
        let locations = by_id("locations");
        let mut services: Vec<Map<String, Value>> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        for (line, row) in table("services") {
            let mut service = row.clone();
            if let Some(org) = text(row, "organization_id") {
                match organizations.get(&org) {
                    Some(o) => {
                        service.insert("organization".into(), Value::Object((*o).clone()));
                    }
                    None => self.unlinked.push(format!(
                        "services.csv line {line}: organization_id {org:?} is in no row of organizations.csv"
                    )),
                }
            }
            // Child rows name their service by id: two services with one
            // id could not tell whose a row is.
            if let Some(id) = text(row, "id") {
                if let Some(first) = index.get(&id) {
                    self.unlinked.push(format!(
                        "services.csv line {line}: id {id:?} repeats the id of services.csv line {}",
                        self.lines[*first]
                    ));
                } else {
                    index.insert(id, services.len());
                }
            }
            self.lines.push(*line);
            services.push(service);
        }
        // Each child table: its rows under their service, in file order.
        let children: [(&str, &str, &str); 6] = [
            ("languages", "service_id", "languages"),
            ("service_capacity", "service_id", "capacities"),
            ("attributes", "link_id", "attributes"),
            ("schedules", "service_id", "schedules"),
            ("service_areas", "service_id", "service_areas"),
            ("service_at_locations", "service_id", "service_at_locations"),
        ];
        for (name, link, array) in children {
            for (line, row) in table(name) {
                // Attributes may describe other things (organisations,
                // locations): only a service's are Refer's.
                if name == "attributes" && text(row, "link_entity").is_some_and(|e| e != "service") {
                    continue;
                }
                let file = format!("{name}.csv line {line}");
                let Some(record) = text(row, link).and_then(|id| index.get(&id).copied()) else {
                    self.unlinked.push(format!(
                        "{file}: {link} {:?} is in no row of services.csv",
                        text(row, link).unwrap_or_default()
                    ));
                    continue;
                };
                let mut part = row.clone();
                match name {
                    "service_capacity" => match text(row, "unit_id").map(|u| (units.get(&u).copied(), u)) {
                        Some((Some(unit), _)) => {
                            part.insert("unit".into(), Value::Object(unit.clone()));
                        }
                        Some((None, u)) => {
                            self.unlinked
                                .push(format!("{file}: unit_id {u:?} is in no row of units.csv"));
                            continue;
                        }
                        None => {}
                    },
                    "service_at_locations" => match text(row, "location_id").map(|l| (locations.get(&l).copied(), l)) {
                        Some((Some(location), _)) => {
                            part.insert("location".into(), Value::Object(location.clone()));
                        }
                        Some((None, l)) => {
                            self.unlinked
                                .push(format!("{file}: location_id {l:?} is in no row of locations.csv"));
                            continue;
                        }
                        None => {}
                    },
                    _ => {}
                }
                let list = services[record]
                    .entry(array.to_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = list {
                    self.parts.insert((record, format!("{array}[{}]", items.len())), file);
                    items.push(Value::Object(part));
                }
            }
        }
        let mut page = Map::new();
        page.insert(
            "contents".into(),
            Value::Array(services.into_iter().map(Value::Object).collect()),
        );
        Value::Object(page)
    }

    fn place(&self, record: usize) -> String {
        format!("services.csv line {}", self.lines.get(record).copied().unwrap_or(0))
    }

    /// A problem named as the tables name it: the record by its line in
    /// services.csv, a nested part (`languages[1].code`) by its file and
    /// line, and any other record it mentions likewise.
    fn rename(&self, problem: &mut Problem) {
        problem.place = self.place(problem.record);
        let (head, rest) = match problem.field.split_once('.') {
            Some((head, rest)) => (head.to_owned(), Some(rest.to_owned())),
            None => (problem.field.clone(), None),
        };
        if let Some(file) = self.parts.get(&(problem.record, head)) {
            problem.field = match rest {
                Some(rest) => format!("{file}, {rest}"),
                None => file.clone(),
            };
        }
        for (record, line) in self.lines.iter().enumerate() {
            problem.reason = problem
                .reason
                .replace(&format!("contents[{record}]"), &format!("services.csv line {line}"));
        }
    }
}
