//! The run's figures as data, and the guard against regression: each run
//! writes them as JSON beside the plots, and `--compare` reads the last
//! recorded run and prints every figure's change. Machines and moments
//! differ, so a figure is compared as a ratio to its same-run raw JetStream
//! baseline where it has one (a latency to the time of one durable publish,
//! a rate to raw atomic-batched publishing, a replay to a raw replay): what
//! the disk gives both runs cancels out. Nothing here fails a run; the
//! comparison is a report a person reads.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Which way is better for a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub value: f64,
    pub unit: String,
    pub better: Better,
    /// The name of the same run's raw figure this one is relative to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
}

/// Every figure of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// `full` or `smoke`: only runs of one size compare.
    pub mode: String,
    pub seed: u64,
    pub machine: String,
    pub commit: String,
    pub figures: BTreeMap<String, Figure>,
}

/// How much worse than the last run a figure may get before it is flagged.
pub const FLAG_WORSE: f64 = 1.25;

impl Figures {
    pub fn add(&mut self, name: &str, value: f64, unit: &str, better: Better, baseline: Option<&str>) {
        if !value.is_finite() {
            return; // nothing measured (e.g. no sample): nothing to compare
        }
        self.figures.insert(
            name.to_owned(),
            Figure {
                value,
                unit: unit.to_owned(),
                better,
                baseline: baseline.map(str::to_owned),
            },
        );
    }

    /// `name`'s value as a ratio to its same-run baseline (or its value).
    fn normalised(&self, name: &str) -> Option<f64> {
        let figure = self.figures.get(name)?;
        match &figure.baseline {
            None => Some(figure.value),
            Some(base) => {
                let base = self.figures.get(base)?.value;
                (base > 0.0).then(|| figure.value / base)
            }
        }
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")?;
        Ok(())
    }

    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// One figure beside the last run's.
#[derive(Debug, PartialEq)]
pub struct Change {
    pub name: String,
    pub last: f64,
    pub now: f64,
    pub unit: String,
    /// How many times worse than last time, relative to each run's own
    /// baseline (above 1: worse; below 1: better).
    pub worse_by: f64,
    pub relative_to: Option<String>,
}

impl Change {
    /// Worse by more than [`FLAG_WORSE`] relative to its baseline. A raw
    /// figure (no baseline) is the machine's, not Refer's: never flagged.
    pub fn flagged(&self) -> bool {
        self.relative_to.is_some() && self.worse_by > FLAG_WORSE
    }

    pub fn describe(&self) -> String {
        let direction = if self.worse_by >= 1.0 {
            format!("{:.0}% worse", (self.worse_by - 1.0) * 100.0)
        } else {
            format!("{:.0}% better", (1.0 / self.worse_by - 1.0) * 100.0)
        };
        let against = match &self.relative_to {
            Some(base) => format!(" relative to {base}"),
            None => String::new(),
        };
        let flag = if self.flagged() { "!! " } else { "   " };
        let raw_change = (self.now / self.last - 1.0) * 100.0;
        format!(
            "{flag}{}: {:.2} -> {:.2} {} ({raw_change:+.0}%), {direction}{against}",
            self.name, self.last, self.now, self.unit
        )
    }
}

/// Every figure both runs have, compared relative to each run's baseline.
pub fn compare(last: &Figures, now: &Figures) -> Vec<Change> {
    let mut changes = Vec::new();
    for (name, figure) in &now.figures {
        let (Some(before), Some(after)) = (last.normalised(name), now.normalised(name)) else {
            continue;
        };
        if before <= 0.0 || after <= 0.0 {
            continue;
        }
        let worse_by = match figure.better {
            Better::Lower => after / before,
            Better::Higher => before / after,
        };
        changes.push(Change {
            name: name.clone(),
            last: last.figures[name].value,
            now: figure.value,
            unit: figure.unit.clone(),
            worse_by,
            relative_to: figure.baseline.clone(),
        });
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(raw_ms: f64, p99_ms: f64, rate: f64, raw_rate: f64) -> Figures {
        let mut f = Figures::default();
        f.add("raw_publish_ms", raw_ms, "ms", Better::Lower, None);
        f.add("p99_ms", p99_ms, "ms", Better::Lower, Some("raw_publish_ms"));
        f.add("raw_atomic_per_s", raw_rate, "/s", Better::Higher, None);
        f.add("updates_per_s", rate, "/s", Better::Higher, Some("raw_atomic_per_s"));
        f
    }

    #[test]
    fn a_slower_disk_alone_flags_nothing() {
        // Given the same code on a disk twice as slow,
        let last = run(1.0, 10.0, 1000.0, 10_000.0);
        let now = run(2.0, 20.0, 500.0, 5_000.0);
        // then every figure is unchanged relative to its baseline.
        let changes = compare(&last, &now);
        assert!(changes.iter().all(|c| !c.flagged()), "{changes:?}");
        let p99 = changes.iter().find(|c| c.name == "p99_ms").unwrap();
        assert!((p99.worse_by - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_hundredfold_latency_regression_is_flagged_and_a_gain_is_not() {
        // Given the same disk, a p99 100 times worse and updates twice as fast,
        let last = run(1.0, 10.0, 1000.0, 10_000.0);
        let now = run(1.0, 1000.0, 2000.0, 10_000.0);
        let changes = compare(&last, &now);
        let p99 = changes.iter().find(|c| c.name == "p99_ms").unwrap();
        assert!(p99.flagged() && (p99.worse_by - 100.0).abs() < 1e-9, "{p99:?}");
        assert!(p99.describe().starts_with("!! p99_ms"), "{}", p99.describe());
        let updates = changes.iter().find(|c| c.name == "updates_per_s").unwrap();
        assert!(!updates.flagged() && updates.worse_by < 1.0, "{updates:?}");
        assert!(updates.describe().contains("100% better"), "{}", updates.describe());
    }

    #[test]
    fn a_rate_a_quarter_lower_is_flagged_past_the_threshold_only() {
        let last = run(1.0, 10.0, 1000.0, 10_000.0);
        let slightly = compare(&last, &run(1.0, 10.0, 850.0, 10_000.0));
        assert!(!slightly.iter().any(Change::flagged), "15% slower is within noise");
        let much = compare(&last, &run(1.0, 10.0, 700.0, 10_000.0));
        assert!(much.iter().any(|c| c.name == "updates_per_s" && c.flagged()));
    }

    #[test]
    fn figures_round_trip_through_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("figures.json");
        let f = run(1.0, 10.0, 1000.0, 10_000.0);
        f.write(&path).unwrap();
        assert_eq!(Figures::read(&path).unwrap(), f);
    }
}
