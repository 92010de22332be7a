//! Prometheus metrics for Refer's services, in the text exposition format.
//!
//! Deliberately small: a process-wide registry of counters, gauges and
//! histograms keyed by name and labels. Labels name RPC methods, status
//! codes, consumers and aggregate kinds; never a person, a case or an id.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds (seconds) of histogram buckets: 0.5 ms to 5 s.
const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Registry {
    help: BTreeMap<&'static str, (&'static str, &'static str)>,
    counters: BTreeMap<(&'static str, String), f64>,
    gauges: BTreeMap<(&'static str, String), f64>,
    histograms: BTreeMap<(&'static str, String), Histogram>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = write!(out, "{k}=\"{v}\"");
    }
    out
}

/// Adds `by` to a counter.
pub fn count(name: &'static str, help: &'static str, pairs: &[(&str, &str)], by: f64) {
    let mut r = registry().lock().expect("metrics lock");
    r.help.entry(name).or_insert(("counter", help));
    *r.counters.entry((name, labels(pairs))).or_default() += by;
}

/// Sets a gauge.
pub fn set(name: &'static str, help: &'static str, pairs: &[(&str, &str)], value: f64) {
    let mut r = registry().lock().expect("metrics lock");
    r.help.entry(name).or_insert(("gauge", help));
    r.gauges.insert((name, labels(pairs)), value);
}

/// Records one duration in a histogram.
pub fn observe(name: &'static str, help: &'static str, pairs: &[(&str, &str)], duration: Duration) {
    let seconds = duration.as_secs_f64();
    let mut r = registry().lock().expect("metrics lock");
    r.help.entry(name).or_insert(("histogram", help));
    let h = r.histograms.entry((name, labels(pairs))).or_default();
    for (i, bound) in BUCKETS.iter().enumerate() {
        if seconds <= *bound {
            h.counts[i] += 1;
        }
    }
    h.sum += seconds;
    h.count += 1;
}

/// Everything, in the Prometheus text format.
pub fn render() -> String {
    let r = registry().lock().expect("metrics lock");
    let mut out = String::new();
    for (name, (kind, help)) in &r.help {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        match *kind {
            "counter" => {
                for ((_, l), v) in r
                    .counters
                    .range((*name, String::new())..)
                    .take_while(|((n, _), _)| n == name)
                {
                    let _ = writeln!(out, "{name}{} {v}", braces(l));
                }
            }
            "gauge" => {
                for ((_, l), v) in r
                    .gauges
                    .range((*name, String::new())..)
                    .take_while(|((n, _), _)| n == name)
                {
                    let _ = writeln!(out, "{name}{} {v}", braces(l));
                }
            }
            _ => {
                for ((_, l), h) in r
                    .histograms
                    .range((*name, String::new())..)
                    .take_while(|((n, _), _)| n == name)
                {
                    let sep = if l.is_empty() { "" } else { "," };
                    for (bound, c) in BUCKETS.iter().zip(h.counts) {
                        let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"{bound}\"}} {c}");
                    }
                    let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"+Inf\"}} {}", h.count);
                    let _ = writeln!(out, "{name}_sum{} {}", braces(l), h.sum);
                    let _ = writeln!(out, "{name}_count{} {}", braces(l), h.count);
                }
            }
        }
    }
    out
}

/// Serves `GET /metrics` on `listener` (plain HTTP/1.1, one response per connection).
pub async fn serve(listener: tokio::net::TcpListener) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(answer(socket));
    }
}

/// Answers one connection (plain TCP or TLS): `GET /metrics`, or 404.
pub async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut socket: S) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 1024];
    let n = match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await {
        Ok(Ok(n)) => n,
        _ => return,
    };
    let head = String::from_utf8_lossy(&buf[..n]);
    let (status, body) = if head.starts_with("GET /metrics") {
        ("200 OK", render())
    } else {
        ("404 Not Found", "only GET /metrics is served here\n".to_owned())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_the_text_format() {
        count(
            "test_requests_total",
            "Requests.",
            &[("method", "/a.B/C"), ("code", "0")],
            1.0,
        );
        count(
            "test_requests_total",
            "Requests.",
            &[("method", "/a.B/C"), ("code", "0")],
            2.0,
        );
        set("test_lag", "Lag.", &[("consumer", "matcher")], 7.0);
        observe("test_seconds", "Time.", &[], Duration::from_millis(3));
        let text = render();
        assert!(text.contains("# TYPE test_requests_total counter"), "{text}");
        assert!(
            text.contains("test_requests_total{method=\"/a.B/C\",code=\"0\"} 3"),
            "{text}"
        );
        assert!(text.contains("test_lag{consumer=\"matcher\"} 7"), "{text}");
        assert!(text.contains("test_seconds_bucket{le=\"0.0025\"} 0"), "{text}");
        assert!(text.contains("test_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("test_seconds_count 1"), "{text}");
    }
}
