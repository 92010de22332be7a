//! Human-readable tables by default, JSON with `--json`.

use serde_json::Value;
use std::io::Write;

/// Writes a line to stdout; a closed pipe (`refer ... | head`) is not an error.
pub fn out(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Prints rows as an aligned table (human) or as a JSON array of objects.
pub fn table(json: bool, headers: &[&str], rows: Vec<Vec<String>>) {
    if json {
        let items: Vec<Value> = rows
            .into_iter()
            .map(|row| {
                let map = headers
                    .iter()
                    .map(|h| h.to_lowercase().replace(' ', "_"))
                    .zip(row.into_iter().map(Value::String));
                Value::Object(map.collect())
            })
            .collect();
        out(&serde_json::to_string_pretty(&Value::Array(items)).expect("json"));
        return;
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out(parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        line(row);
    }
}

/// Prints one record as `key: value` lines (human) or a JSON object.
pub fn record(json: bool, fields: Vec<(&str, String)>) {
    if json {
        let map = fields.into_iter().map(|(k, v)| (k.to_owned(), Value::String(v)));
        out(&serde_json::to_string_pretty(&Value::Object(map.collect())).expect("json"));
        return;
    }
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in fields {
        out(&format!("{k:>width$}: {v}"));
    }
}

pub fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}Z", rem / 3600, (rem % 3600) / 60)
}

/// `ms` in this machine's time zone (`TZ`, else the system's), with the
/// zone's abbreviation: what a person reads an "as of" in.
pub fn local_time(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(at) => at
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string(),
        Err(_) => time(ms),
    }
}

/// A capacity's "as of": local time and whether it is stale, or unknown.
pub fn as_of(ms: i64, stale: bool) -> String {
    match (ms, stale) {
        (0, _) => "unknown (stale)".to_owned(),
        (ms, true) => format!("{} (stale)", local_time(ms)),
        (ms, false) => local_time(ms),
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Prints a watch stream as it comes: one line per change (a JSON object with
/// `--json`). On a terminal a spinner on stderr shows that it is waiting.
pub async fn follow<T>(
    mut stream: tonic::Streaming<T>,
    json: bool,
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
    fail: impl Fn(tonic::Status) -> anyhow::Error,
    what: &str,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let tty = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(120));
    let (mut seen, mut frame) = (0u64, 0usize);
    loop {
        tokio::select! {
            item = stream.message() => {
                let Some(item) = item.map_err(&fail)? else { break };
                if tty {
                    eprint!("\r\x1b[K");
                }
                let cells = row(&item);
                if json {
                    let map: serde_json::Map<String, Value> =
                        headers.iter().map(|h| h.replace(' ', "_")).zip(cells.into_iter().map(Value::String)).collect();
                    out(&Value::Object(map).to_string());
                } else {
                    out(&cells.join("  "));
                }
                seen += 1;
            }
            _ = tick.tick(), if tty => {
                eprint!("\r{} watching {what}: {seen} change(s) so far (Ctrl-C to stop)", FRAMES[frame % FRAMES.len()]);
                frame += 1;
            }
        }
    }
    if tty {
        eprintln!();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_printed_in_utc() {
        assert_eq!(super::time(1_795_658_400_000), "2026-11-26 02:00Z");
        assert_eq!(super::time(0), "1970-01-01 00:00Z");
    }
}
