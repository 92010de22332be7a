//! Two small SVG line charts (no plotting dependency): latency
//! distributions and throughput over time.

use std::fmt::Write;

pub struct Series {
    pub name: String,
    /// (x, y) points in data units.
    pub points: Vec<(f64, f64)>,
}

const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];

/// A line chart with linear axes (`log_x`: the x axis in log10).
pub fn chart(title: &str, x_label: &str, y_label: &str, series: &[Series], log_x: bool) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 420.0, 70.0, 20.0, 40.0, 50.0);
    let fx = |x: f64| if log_x { x.max(1e-3).log10() } else { x };
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(x, y)| (fx(*x), *y)))
        .collect();
    let (x0, x1) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| {
        (a.min(*x), b.max(*x))
    });
    let y1 = all.iter().fold(0.0f64, |m, (_, y)| m.max(*y)) * 1.05;
    let (x0, x1) = if x0.is_finite() && x1 > x0 {
        (x0, x1)
    } else {
        (0.0, 1.0)
    };
    let y1 = if y1 > 0.0 { y1 } else { 1.0 };
    let px = |x: f64| left + (fx(x) - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| h - bottom - y / y1 * (h - top - bottom);

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{title}</text>
<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">{x_label}</text>
<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{y_label}</text>
"#,
        w / 2.0,
        h - bottom,
        w - right,
        h - bottom,
        h - bottom,
        (left + w - right) / 2.0,
        h - 12.0,
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0,
    );
    for i in 0..=5 {
        let y = y1 * f64::from(i) / 5.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{py}" x2="{}" y2="{py}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            w - right,
            left - 6.0,
            py(y) + 4.0,
            short(y),
            py = py(y)
        );
        let x = x0 + (x1 - x0) * f64::from(i) / 5.0;
        let label = if log_x { 10f64.powf(x) } else { x };
        let xp = left + (x - x0) / (x1 - x0) * (w - left - right);
        let _ = writeln!(
            svg,
            r#"<text x="{xp}" y="{}" text-anchor="middle">{}</text>"#,
            h - bottom + 16.0,
            short(label)
        );
    }
    for (k, s) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{}"/>"#,
            points.join(" ")
        );
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="12" height="3" fill="{colour}"/><text x="{}" y="{}">{}</text>"#,
            left + 12.0,
            top + 8.0 + 16.0 * k as f64,
            left + 30.0,
            top + 12.0 + 16.0 * k as f64,
            s.name
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A latency distribution as a CDF: x = latency (ms), y = share at or below (%).
pub fn cdf(name: &str, sorted_micros: &[u64]) -> Series {
    let n = sorted_micros.len().max(1) as f64;
    let step = (sorted_micros.len() / 400).max(1);
    let mut points: Vec<(f64, f64)> = sorted_micros
        .iter()
        .enumerate()
        .step_by(step)
        .map(|(i, us)| (*us as f64 / 1000.0, 100.0 * (i + 1) as f64 / n))
        .collect();
    if let Some(last) = sorted_micros.last() {
        points.push((*last as f64 / 1000.0, 100.0));
    }
    Series {
        name: name.to_owned(),
        points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_one_line_per_series_and_its_legend() {
        let s = chart("t", "x", "y", &[cdf("a", &[1000, 2000, 3000]), cdf("b", &[500])], true);
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(s.contains(">a</text>") && s.contains(">b</text>"));
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
    }
}
