//! The comparison's report: the markdown table, the learning-curve chart, and the files
//! `comparison.md`, `comparison.json` and `comparison.png`.

use std::collections::BTreeMap;
use std::path::Path;

use hrm_train::{Result, TrainError};

use super::*;
use crate::plot::{LineChart, Series};

pub(super) fn width_fields(model: &toml::Table) -> BTreeMap<String, String> {
    SHAPE_KEYS
        .into_iter()
        .filter_map(|k| model.get(k).map(|v| (k.to_string(), v.to_string())))
        .collect()
}

pub(super) fn width_summary(model: &toml::Table) -> String {
    width_fields(model)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The model keys a report shows.
const SHAPE_KEYS: [&str; 10] = [
    "hidden_size",
    "expansion",
    "num_heads",
    "H_layers",
    "L_layers",
    "num_layers",
    "H_cycles",
    "L_cycles",
    "halt_max_steps",
    "puzzle_emb_ndim",
];

/// `1 051 650` -> `1.05M`, `82 000` -> `82.0k`.
fn human(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// `m:ss` for a duration in seconds.
fn minutes(seconds: f64) -> String {
    let s = seconds.round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// The results as a markdown table.
pub fn markdown_table(c: &Comparison) -> String {
    let mut out = String::from(
        "| architecture | parameters | training time | train samples/s | held-out token accuracy | exact accuracy | mean ACT steps |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &c.results {
        let steps = if r.halt_max_steps > 1 {
            format!("{:.2} (max {})", r.mean_act_steps, r.halt_max_steps)
        } else {
            "1 (no ACT)".into()
        };
        out.push_str(&format!(
            "| {} | {} ({}) | {} | {:.1} | {:.4} | {:.4} | {} |\n",
            r.arch,
            r.parameters,
            human(r.parameters as f64),
            minutes(r.train_seconds),
            r.samples_per_sec,
            r.token_accuracy,
            r.exact_accuracy,
            steps
        ));
    }
    out
}

/// The chart: held-out exact accuracy against training examples seen, one line per
/// architecture.
pub fn chart(c: &Comparison) -> LineChart {
    LineChart {
        title: format!(
            "held-out exact accuracy, {} params each",
            human(c.target_params as f64)
        ),
        x_label: "training examples seen".into(),
        y_label: "exact accuracy".into(),
        series: c
            .results
            .iter()
            .map(|r| Series {
                name: format!("{} ({})", r.arch, human(r.parameters as f64)),
                points: r
                    .curve
                    .iter()
                    .map(|p| (p.examples as f64, p.exact_accuracy))
                    .collect(),
            })
            .collect(),
        // Headroom above 1 keeps the legend (top right, inside the plot) off the lines.
        y_range: Some((0.0, 1.2)),
    }
}

/// The whole `comparison.md`.
pub fn markdown_report(c: &Comparison) -> String {
    let mut md = String::from("# Architecture comparison\n\n");
    if !c.command.is_empty() {
        md.push_str(&format!("Command: `{}`\n\n", c.command));
    }
    md.push_str(&format!(
        "- data: {}\n- budget: {} training examples per architecture (batch {}, seed {}), on {}\n\
         - parameter target: {} trainable dense parameters (within {:.0} %; the sparse puzzle \
         table is not counted)\n- wall time: {} for all runs\n\n",
        c.data_summary,
        c.examples,
        c.batch_size,
        c.seed,
        c.device,
        c.target_params,
        PARAM_TOLERANCE * 100.0,
        minutes(c.wall_seconds)
    ));
    md.push_str(&markdown_table(c));
    md.push_str(
        "\nTraining time counts the training steps only; evaluation and checkpoints are in the \
         wall time. Mean ACT steps is the mean number of ACT steps at halting over the last \
         training interval; evaluation always runs the maximum, as the reference does.\n\n",
    );
    md.push_str(
        "![held-out exact accuracy against training examples](comparison.png)\n\n## Models\n\n",
    );
    for r in &c.results {
        let fields: Vec<String> = r.model.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        md.push_str(&format!(
            "- **{}**: {} (run directory `{}`, wall {})\n",
            r.arch,
            fields.join(", "),
            r.run_dir.display(),
            minutes(r.wall_seconds)
        ));
    }
    md.push_str("\n## Learning curves (held-out exact accuracy)\n\n| examples |");
    for r in &c.results {
        md.push_str(&format!(" {} |", r.arch));
    }
    md.push_str("\n|---:|");
    md.push_str(&"---:|".repeat(c.results.len()));
    md.push('\n');
    let mut xs: Vec<u64> = c
        .results
        .iter()
        .flat_map(|r| r.curve.iter().map(|p| p.examples))
        .collect();
    xs.sort_unstable();
    xs.dedup();
    for x in xs {
        md.push_str(&format!("| {x} |"));
        for r in &c.results {
            match r.curve.iter().find(|p| p.examples == x) {
                Some(p) => md.push_str(&format!(" {:.4} |", p.exact_accuracy)),
                None => md.push_str(" |"),
            }
        }
        md.push('\n');
    }
    md
}

/// Writes `comparison.md`, `comparison.json` and `comparison.png` into `dir`.
///
/// # Errors
/// [`TrainError::Io`] when a file cannot be written.
pub fn write_report(c: &Comparison, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| TrainError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    hrm_train::run_dir::write_atomic(&dir.join("comparison.md"), markdown_report(c).as_bytes())?;
    let json_path = dir.join("comparison.json");
    let json = serde_json::to_string_pretty(c).map_err(|source| TrainError::Json {
        path: json_path.clone(),
        source,
    })?;
    hrm_train::run_dir::write_atomic(&json_path, json.as_bytes())?;
    chart(c).save_png(&dir.join("comparison.png"), 800, 500)
}
