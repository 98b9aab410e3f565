//! A run's result: figures, latency summaries, the per-second timeline and
//! the checks the run makes of itself; printed as a table, written as JSON
//! and as an HTML page (see `html`).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::histogram::LatencySummary;
use super::recorder::Point;

#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub scenario: String,
    pub target: String,
    /// Unix ms at the start of the run.
    pub started_at: i64,
    pub interrupted: bool,
    pub parameters: serde_json::Value,
    pub figures: Vec<Figure>,
    /// Send (scheduled) to delivery, every member's session.
    pub latency: Option<LatencySummary>,
    /// Send to ack at the sender.
    pub ack_latency: Option<LatencySummary>,
    pub checks: Vec<Check>,
    pub timeline: Vec<Point>,
}

impl Report {
    pub fn new(scenario: &str, target: &str, parameters: serde_json::Value) -> Report {
        Report {
            scenario: scenario.into(),
            target: target.into(),
            started_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            interrupted: false,
            parameters,
            figures: Vec::new(),
            latency: None,
            ack_latency: None,
            checks: Vec::new(),
            timeline: Vec::new(),
        }
    }

    pub fn figure(&mut self, name: &str, value: f64, unit: &str) {
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit: unit.into(),
        });
    }

    pub fn check(&mut self, name: &str, passed: bool, detail: String) {
        self.checks.push(Check {
            name: name.into(),
            passed,
            detail,
        });
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn value(&self, name: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value)
    }

    /// The summary printed at the end of a run.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = self
            .figures
            .iter()
            .map(|f| (f.name.clone(), format!("{} {}", number(f.value), f.unit)))
            .collect();
        for (label, l) in [
            ("latency", &self.latency),
            ("ack latency", &self.ack_latency),
        ] {
            if let Some(l) = l {
                rows.push((
                    format!("{label} (ms)"),
                    format!(
                        "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  (n = {})",
                        l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.count
                    ),
                ));
            }
        }
        for c in &self.checks {
            let mark = if c.passed { "ok" } else { "FAILED" };
            rows.push((
                format!("check: {}", c.name),
                format!("{mark}  {}", c.detail),
            ));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = format!(
            "\n{} against {}{}\n",
            self.scenario,
            self.target,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        );
        out.push_str(&format!("{}\n", "-".repeat(width + 40)));
        for (k, v) in rows {
            out.push_str(&format!("{k:<width$}  {v}\n"));
        }
        out.push_str(if self.passed() {
            "result: passed"
        } else {
            "result: FAILED"
        });
        out
    }

    /// Writes `<scenario>-<time>.json` and `.html` under `dir`.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), std::io::Error> {
        std::fs::create_dir_all(dir)?;
        let stem = format!("{}-{}", self.scenario, self.started_at);
        let json = dir.join(format!("{stem}.json"));
        let html = dir.join(format!("{stem}.html"));
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&json, text)?;
        std::fs::write(&html, super::html::page(self))?;
        Ok((json, html))
    }
}

/// Thousands separated, at most two decimals.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let rounded = (v * 100.0).round() / 100.0;
    let whole = rounded.trunc().abs() as u64;
    let mut digits = whole.to_string();
    let mut grouped = String::new();
    while digits.len() > 3 {
        let tail = digits.split_off(digits.len() - 3);
        grouped = format!(",{tail}{grouped}");
    }
    let frac = (rounded.fract().abs() * 100.0).round() as u64;
    let sign = if rounded < 0.0 { "-" } else { "" };
    if frac == 0 {
        format!("{sign}{digits}{grouped}")
    } else {
        format!("{sign}{digits}{grouped}.{frac:02}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_read_well() {
        assert_eq!(super::number(1234567.0), "1,234,567");
        assert_eq!(super::number(12.5), "12.50");
        assert_eq!(super::number(-1000.25), "-1,000.25");
        assert_eq!(super::number(0.0), "0");
    }
}
