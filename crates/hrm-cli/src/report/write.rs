//! The second half of `hrm eval`'s report: summaries, charts, the failure gallery and
//! `metrics.json`, each file written atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use hrm_data::render::render_example;
use hrm_data::{Canvas, Rgb, TaskKind};
use hrm_train::checkpoint::LoadedModel;
use hrm_train::{Result, TrainError};

use super::compute::{breakdown, summarise, Evaluated};
use super::*;
use crate::plot::{Histogram, LineChart, Series};
use hrm_train::rollout::steps::SweepPoint;

/// Writes the report files of `ev` into `opts.out_dir` and returns what was found and written.
///
/// # Errors
/// I/O errors naming the file.
pub(super) fn write_files(
    loaded: &LoadedModel,
    data_dir: &Path,
    opts: &ReportOptions,
    ev: Evaluated,
) -> Result<Report> {
    let Evaluated {
        kind,
        halt_max_steps,
        step_cap,
        reference,
        arc: arc_report,
        arc_learned,
        results,
        failures,
        timing,
        sweep,
        vote,
    } = ev;
    let max_steps = step_cap;
    std::fs::create_dir_all(&opts.out_dir).map_err(|source| TrainError::Io {
        path: opts.out_dir.clone(),
        source,
    })?;
    let mut files = Vec::new();
    if let Some(voted) = &arc_report {
        files.extend(voted.write_files(&opts.out_dir)?);
    }
    let learned = summarise(&results, |r| (r.exact_learned, r.token_accuracy, r.steps));
    let at_max = summarise(&results, |r| (r.exact_max, r.token_accuracy_max, max_steps));
    let mut counts: BTreeMap<usize, u64> = (1..=max_steps).map(|k| (k, 0)).collect();
    for r in &results {
        *counts.entry(r.steps).or_insert(0) += 1;
    }
    let steps_histogram: Vec<(usize, u64)> = counts.into_iter().collect();
    let hist_path = opts.out_dir.join("steps_histogram.png");
    Histogram {
        title: format!(
            "ACT steps used, learned halting ({} examples)",
            results.len()
        ),
        x_label: "ACT steps".into(),
        bins: steps_histogram
            .iter()
            .map(|&(k, n)| (k as i64, n))
            .collect(),
    }
    .render(640, 420)
    .save_png(&hist_path)?;
    files.push(hist_path);

    let breakdown = breakdown(kind, &results);
    if let Some(b) = &breakdown {
        let stem = format!("accuracy_by_{}", b.by);
        files.push(write_json(&opts.out_dir.join(format!("{stem}.json")), b)?);
        let png = opts.out_dir.join(format!("{stem}.png"));
        breakdown_chart(b).save_png(&png, 720, 440)?;
        files.push(png);
    }

    if let Some(points) = &sweep {
        let json = serde_json::json!({
            "halt_max_steps": halt_max_steps,
            "examples": results.len(),
            "points": points,
        });
        files.push(write_json(&opts.out_dir.join("steps_sweep.json"), &json)?);
        let png = opts.out_dir.join("steps_sweep.png");
        sweep_chart(points, halt_max_steps).save_png(&png, 720, 440)?;
        files.push(png);
    }

    let gallery = opts.out_dir.join("failures.png");
    gallery_canvas(kind, &failures, results.len()).save_png(&gallery)?;
    files.push(gallery);

    let n_failures = results.iter().filter(|r| !r.exact_learned).count();
    let metrics = serde_json::json!({
        "checkpoint": loaded.checkpoint.display().to_string(),
        "step": loaded.step,
        "arch": loaded.config.arch.name(),
        "data": data_dir.display().to_string(),
        "split": opts.split,
        "task": kind.name(),
        "examples": results.len(),
        "halt_max_steps": halt_max_steps,
        "step_cap": step_cap,
        "sets": reference.sets,
        "overall": reference.overall,
        "learned_halting": learned,
        "max_steps": at_max,
        "timing": timing,
        "steps_sweep": sweep,
        "vote": vote,
        "steps_histogram": steps_histogram
            .iter()
            .map(|&(k, n)| serde_json::json!({ "steps": k, "count": n }))
            .collect::<Vec<_>>(),
        "failures": n_failures,
        "arc": arc_report.as_ref().map(|a| serde_json::json!({
            "pass_at_1": a.pass_at_1,
            "pass_at_2": a.pass_at_2,
            "tasks": a.tasks.len(),
            "unmatched_views": a.unmatched_views,
        })),
        "arc_learned": arc_learned.as_ref().map(|a| serde_json::json!({
            "pass_at_1": a.pass_at_1,
            "pass_at_2": a.pass_at_2,
        })),
    });
    let metrics_path = write_json(&opts.out_dir.join("metrics.json"), &metrics)?;
    files.insert(0, metrics_path);

    Ok(Report {
        task: kind,
        examples: results.len(),
        halt_max_steps,
        step_cap,
        reference,
        learned,
        at_max,
        timing,
        steps_histogram,
        breakdown,
        arc: arc_report,
        arc_learned,
        sweep,
        vote,
        failures: n_failures,
        files,
    })
}

/// Writes pretty JSON atomically and returns the path.
fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<PathBuf> {
    let text = serde_json::to_string_pretty(value).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, text.as_bytes())?;
    Ok(path.to_path_buf())
}

fn breakdown_chart(b: &Breakdown) -> LineChart {
    let mid = |k: &Bucket| (k.lo + k.hi) as f64 / 2.0;
    let series = |name: &str, f: &dyn Fn(&Bucket) -> f64| Series {
        name: name.into(),
        points: b.buckets.iter().map(|k| (mid(k), f(k))).collect(),
    };
    let label = if b.by == "blanks" {
        "blank cells"
    } else {
        "shortest path length"
    };
    LineChart {
        title: format!("accuracy by {label}"),
        x_label: label.into(),
        y_label: "share".into(),
        series: vec![
            series("exact, learned halting", &|k| k.exact_learned),
            series("exact, all steps", &|k| k.exact_max),
            series("token accuracy", &|k| k.token_accuracy),
        ],
        y_range: Some((0.0, 1.0)),
    }
}

/// Exactness against the step cap, for both halting modes, with the trained cap in the title.
fn sweep_chart(points: &[SweepPoint], halt_max_steps: usize) -> LineChart {
    let series = |name: &str, f: &dyn Fn(&SweepPoint) -> f64| Series {
        name: name.into(),
        points: points.iter().map(|p| (p.steps as f64, f(p))).collect(),
    };
    LineChart {
        title: format!("accuracy by step cap (trained: {halt_max_steps} steps)"),
        x_label: "step cap (ACT steps)".into(),
        y_label: "share".into(),
        series: vec![
            series("exact, all steps", &|p| p.exact_max),
            series("exact, learned halting", &|p| p.exact_learned),
            series("token accuracy, all steps", &|p| p.token_accuracy_max),
        ],
        y_range: Some((0.0, 1.0)),
    }
}

/// The failures stacked vertically, each under a caption; a single line when there is none.
fn gallery_canvas(kind: TaskKind, failures: &[Failure], examples: usize) -> Canvas {
    let margin = 12usize;
    if failures.is_empty() {
        let text = format!("no failures among {examples} examples");
        let mut c = Canvas::new(
            Canvas::text_width(&text, 2) + 2 * margin,
            Canvas::text_height(&text, 2) + 2 * margin,
            Rgb::WHITE,
        );
        c.draw_text(margin as i64, margin as i64, &text, 2, Rgb::BLACK);
        return c;
    }
    let pictures: Vec<(String, Canvas)> = failures
        .iter()
        .map(|f| {
            let wrong = f
                .prediction
                .iter()
                .zip(&f.label)
                .filter(|(p, l)| p != l)
                .count();
            (
                format!(
                    "set {} example {}: {} steps, q_halt {:.3}, {wrong} tokens differ",
                    f.set, f.index, f.steps, f.q_halt
                ),
                render_example(kind, &f.input, &f.label, Some(&f.prediction)),
            )
        })
        .collect();
    let caption_h = Canvas::text_height("A", 1) + 6;
    let width = pictures
        .iter()
        .map(|(t, c)| c.width().max(Canvas::text_width(t, 1)))
        .max()
        .unwrap_or(1)
        + 2 * margin;
    let height = pictures
        .iter()
        .map(|(_, c)| c.height() + caption_h + margin)
        .sum::<usize>()
        + margin;
    let mut out = Canvas::new(width, height, Rgb::WHITE);
    let mut y = margin;
    for (text, c) in &pictures {
        out.draw_text(margin as i64, y as i64, text, 1, Rgb::BLACK);
        out.blit(c, margin as i64, (y + caption_h) as i64);
        y += c.height() + caption_h + margin;
        out.fill_rect(
            0,
            y as i64 - margin as i64 / 2,
            width as i64,
            1,
            Rgb::LIGHT_GREY,
        );
    }
    out
}
