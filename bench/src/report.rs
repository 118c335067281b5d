//! What a scenario found: a table on stdout, and the same as JSON under the output dir,
//! with the machine it ran on and each target met or missed.

use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value, json};

/// A target from docs/TARGETS.md and what was measured against it.
#[derive(Debug, Clone)]
pub struct Target {
    /// What is measured.
    pub what: String,
    /// The limit, as written.
    pub limit: String,
    /// The measured value, as shown.
    pub measured: String,
    /// Whether the measurement meets the limit.
    pub met: bool,
}

/// One scenario's results.
#[derive(Debug)]
pub struct Report {
    scenario: &'static str,
    columns: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
    targets: Vec<Target>,
    data: Map<String, Value>,
}

impl Report {
    /// An empty report with these table columns.
    pub fn new(scenario: &'static str, columns: &[&'static str]) -> Self {
        Self {
            scenario,
            columns: columns.to_vec(),
            rows: Vec::new(),
            notes: Vec::new(),
            targets: Vec::new(),
            data: Map::new(),
        }
    }

    /// Adds a table row (one cell per column).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    /// A line printed under the table.
    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }

    /// Records a target and whether it was met.
    pub fn target(&mut self, what: &str, limit: &str, measured: String, met: bool) {
        self.targets.push(Target {
            what: what.into(),
            limit: limit.into(),
            measured,
            met,
        });
    }

    /// Raw figures for the JSON file.
    pub fn data(&mut self, key: &str, value: Value) {
        self.data.insert(key.into(), value);
    }

    /// Prints the table, notes and targets.
    pub fn print(&self) {
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    let pad = w.saturating_sub(c.chars().count());
                    if i == 0 {
                        format!("{c}{}", " ".repeat(pad))
                    } else {
                        format!("{}{c}", " ".repeat(pad))
                    }
                })
                .collect();
            println!("  {}", padded.join("  "));
        };
        println!("\n== {} ==", self.scenario);
        line(
            &self
                .columns
                .iter()
                .map(|c| (*c).to_owned())
                .collect::<Vec<_>>(),
        );
        for row in &self.rows {
            line(row);
        }
        for note in &self.notes {
            println!("  {note}");
        }
        for t in &self.targets {
            println!(
                "  target {}: {} (limit {}) {}",
                t.what,
                t.measured,
                t.limit,
                if t.met { "MET" } else { "MISSED" }
            );
        }
    }

    /// Writes `<dir>/<scenario>.json`.
    pub fn write(&self, dir: &Path, run: &Value) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                Value::Object(
                    self.columns
                        .iter()
                        .zip(r)
                        .map(|(c, v)| ((*c).to_owned(), Value::String(v.clone())))
                        .collect(),
                )
            })
            .collect();
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(
                |t| json!({"what": t.what, "limit": t.limit, "measured": t.measured, "met": t.met}),
            )
            .collect();
        let out = json!({
            "scenario": self.scenario,
            "run": run,
            "rows": rows,
            "notes": self.notes,
            "targets": targets,
            "data": self.data,
        });
        let path = dir.join(format!("{}.json", self.scenario));
        let text = serde_json::to_string_pretty(&out).context("results as JSON")?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The machine and the command line, recorded with every result.
pub fn run_info(quick: bool) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|m| m.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "quick": quick,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu": model,
        "memory_gib": mem_kib.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}
