//! Evaluation reports: what `hrm eval` writes about a trained model on a dataset split.
//!
//! Two passes over the split:
//! 1. [`crate::eval::evaluate`], the reference's evaluation (`evaluate` in `pretrain.py`):
//!    every example for `halt_max_steps` ACT steps, the reference's metrics per set; for ARC
//!    datasets also the voting of [`crate::arc_eval`] (pass@1, pass@2, the submission).
//! 2. Our own rollout ([`crate::solve::solve_rows`]) with every step's Q values, which gives per
//!    example the step at which the learned halting rule stops and the answer there: the
//!    histogram of ACT steps used, exactness under learned halting and after all steps, and
//!    accuracy by difficulty (blanks of a Sudoku, shortest-path length of a maze).
//!
//! Files written into the output directory (default `RUN/report/`):
//! - `metrics.json`: per-set and overall reference metrics, learned-halting results, the
//!   steps histogram and, for ARC, pass@1 and pass@2;
//! - `steps_histogram.png`: ACT steps used under learned halting;
//! - `accuracy_by_blanks.{json,png}` (Sudoku) or `accuracy_by_path_length.{json,png}` (maze);
//! - `failures.png`: a gallery of the first few examples answered wrongly under learned
//!   halting, each as input, label and prediction;
//! - ARC only: `submission.json` (ARC Prize format) and `arc_results.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tch::Device;

use hrm_act::LossHead;
use hrm_data::render::render_example;
use hrm_data::sudoku::BLANK_TOKEN;
use hrm_data::{Canvas, Dataset, Rgb, TaskKind};

use crate::arc_eval::{evaluate_arc, is_arc_dataset, ArcReport};
use crate::arch::ArchModel;
use crate::checkpoint::LoadedModel;
use crate::error::{Result, TrainError};
use crate::eval::{evaluate, EvalReport};
use crate::plot::{Histogram, LineChart, Series};
use crate::run_dir::write_atomic;
use crate::solve::{is_exact, solve_rows, token_accuracy, HaltMode, RolloutOptions};

/// The token of a maze path square (`o`).
const MAZE_PATH_TOKEN: i32 = 5;
/// Buckets at most this many distinct difficulty values one by one; more are grouped.
const MAX_SINGLE_BUCKETS: usize = 20;
/// Groups of difficulty values when there are too many distinct ones.
const GROUPED_BUCKETS: usize = 12;

/// How to write a report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Where the files go (created if needed).
    pub out_dir: PathBuf,
    /// The split to evaluate (`test`).
    pub split: String,
    /// Examples per batch.
    pub batch_size: usize,
    /// Failures drawn in the gallery.
    pub gallery: usize,
    /// Where to run.
    pub device: Device,
}

/// Exactness, token accuracy and steps under one halting mode.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HaltingSummary {
    /// Examples.
    pub count: usize,
    /// Share answered exactly.
    pub exact_accuracy: f64,
    /// Share of scored tokens right.
    pub token_accuracy: f64,
    /// Mean ACT steps used.
    pub mean_steps: f64,
}

/// Results of a group of examples of similar difficulty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Smallest difficulty value in the group.
    pub lo: usize,
    /// Largest difficulty value in the group.
    pub hi: usize,
    /// Examples.
    pub count: usize,
    /// Share exact under learned halting.
    pub exact_learned: f64,
    /// Share exact after `halt_max_steps` steps.
    pub exact_max: f64,
    /// Share of scored tokens right under learned halting.
    pub token_accuracy: f64,
    /// Mean ACT steps under learned halting.
    pub mean_steps: f64,
}

/// Accuracy by difficulty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    /// `blanks` (Sudoku: blank cells of the input) or `path_length` (maze: steps of the
    /// labelled shortest path).
    pub by: String,
    /// Groups, easiest first.
    pub buckets: Vec<Bucket>,
}

/// One example's result in the second pass.
#[derive(Debug, Clone)]
struct ExampleResult {
    steps: usize,
    exact_learned: bool,
    exact_max: bool,
    token_accuracy: f64,
    token_accuracy_max: f64,
    difficulty: Option<usize>,
}

/// A failure kept for the gallery.
#[derive(Debug, Clone)]
struct Failure {
    set: String,
    index: usize,
    input: Vec<i32>,
    label: Vec<i32>,
    prediction: Vec<i32>,
    steps: usize,
    q_halt: f64,
}

/// What [`write_report`] found and wrote.
#[derive(Debug, Clone)]
pub struct Report {
    /// What the dataset's tokens encode.
    pub task: TaskKind,
    /// Examples evaluated.
    pub examples: usize,
    /// The reference's evaluation.
    pub reference: EvalReport,
    /// Under learned halting.
    pub learned: HaltingSummary,
    /// After `halt_max_steps` steps (from the second pass).
    pub at_max: HaltingSummary,
    /// `(steps, examples)` for steps `1..=halt_max_steps`, under learned halting.
    pub steps_histogram: Vec<(usize, u64)>,
    /// Accuracy by difficulty (Sudoku and mazes).
    pub breakdown: Option<Breakdown>,
    /// ARC voting results.
    pub arc: Option<ArcReport>,
    /// Examples answered wrongly under learned halting.
    pub failures: usize,
    /// Files written.
    pub files: Vec<PathBuf>,
}

impl Report {
    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let mut s = format!("{} examples ({})\n", self.examples, self.task.name());
        s.push_str(&format!(
            "  reference evaluation (all {} steps): {}\n",
            self.steps_histogram.len(),
            crate::trainer::format_eval(&self.reference)
        ));
        for (set, m) in &self.reference.sets {
            s.push_str(&format!(
                "    set {set}: exact {:.4} accuracy {:.4} ({} examples)\n",
                m.get("exact_accuracy"),
                m.get("accuracy"),
                m.get("count")
            ));
        }
        s.push_str(&format!(
            "  learned halting: exact {:.4}, token accuracy {:.4}, mean steps {:.2}\n",
            self.learned.exact_accuracy, self.learned.token_accuracy, self.learned.mean_steps
        ));
        let hist: Vec<String> = self
            .steps_histogram
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect();
        s.push_str(&format!(
            "  steps used (steps:examples): {}\n",
            hist.join(" ")
        ));
        if let Some(b) = &self.breakdown {
            let parts: Vec<String> = b
                .buckets
                .iter()
                .map(|k| {
                    let range = if k.lo == k.hi {
                        k.lo.to_string()
                    } else {
                        format!("{}-{}", k.lo, k.hi)
                    };
                    format!("{range}: {:.2} ({})", k.exact_learned, k.count)
                })
                .collect();
            s.push_str(&format!(
                "  exact by {} (learned halting): {}\n",
                b.by,
                parts.join(", ")
            ));
        }
        if let Some(a) = &self.arc {
            s.push_str(&format!(
                "  ARC: pass@1 {:.4}, pass@2 {:.4} over {} tasks\n",
                a.pass_at_1,
                a.pass_at_2,
                a.tasks.len()
            ));
        }
        s.push_str(&format!(
            "  {} wrong under learned halting; files:\n",
            self.failures
        ));
        for f in &self.files {
            s.push_str(&format!("    {}\n", f.display()));
        }
        s
    }
}

/// Checks that a dataset split fits the model's sizes.
///
/// # Errors
/// [`TrainError::Dataset`] naming the field that differs.
pub fn check_dataset_fits(ds: &Dataset, model: &ArchModel) -> Result<()> {
    let meta = ds.metadata();
    let dims = model.dims();
    let bad = |reason: String| {
        Err(TrainError::Dataset {
            path: ds.dir().to_path_buf(),
            reason,
        })
    };
    if meta.seq_len as i64 != dims.seq_len {
        return bad(format!(
            "seq_len is {} but the model takes {} tokens",
            meta.seq_len, dims.seq_len
        ));
    }
    if meta.vocab_size as i64 != dims.vocab_size {
        return bad(format!(
            "vocab_size is {} but the model's is {}",
            meta.vocab_size, dims.vocab_size
        ));
    }
    if meta.num_puzzle_identifiers as i64 > dims.num_puzzle_identifiers.max(1) {
        return bad(format!(
            "num_puzzle_identifiers is {} but the model has {}",
            meta.num_puzzle_identifiers, dims.num_puzzle_identifiers
        ));
    }
    Ok(())
}

/// Evaluates `loaded` on split `opts.split` of `data_dir` and writes the report files.
///
/// # Errors
/// [`TrainError::Dataset`] for a missing or unfit split, the evaluation's errors, and I/O
/// errors naming the file.
pub fn write_report(loaded: &LoadedModel, data_dir: &Path, opts: &ReportOptions) -> Result<Report> {
    let model = &loaded.model;
    let device = opts.device;
    let ds = Dataset::open(data_dir, &opts.split).map_err(|e| TrainError::Dataset {
        path: data_dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    check_dataset_fits(&ds, model)?;
    let meta = ds.metadata().clone();
    let kind = TaskKind::detect(&meta);
    let dims = model.dims();
    let max_steps = dims.halt_max_steps.max(1) as usize;
    std::fs::create_dir_all(&opts.out_dir).map_err(|source| TrainError::Io {
        path: opts.out_dir.clone(),
        source,
    })?;
    let mut files = Vec::new();

    // Pass 1: the reference's evaluation (and ARC voting).
    let head = LossHead {
        loss_type: loaded.config.loss.loss_type,
        q_loss_weight: loaded.config.loss.q_loss_weight,
    };
    let arc = is_arc_dataset(data_dir);
    let mut reference = evaluate(model, &ds, &head, opts.batch_size, device, arc)?;
    let mut arc_report = None;
    if let (true, Some(outputs)) = (arc, &reference.outputs) {
        let r = evaluate_arc(data_dir, &ds, outputs)?;
        reference
            .overall
            .0
            .insert("arc_pass_at_1".into(), r.pass_at_1);
        reference
            .overall
            .0
            .insert("arc_pass_at_2".into(), r.pass_at_2);
        files.push(write_json(
            &opts.out_dir.join("submission.json"),
            &r.submission(),
        )?);
        files.push(write_json(&opts.out_dir.join("arc_results.json"), &r)?);
        arc_report = Some(r);
    }
    reference.outputs = None;

    // Pass 2: learned halting, per example.
    let mut results: Vec<ExampleResult> = Vec::with_capacity(ds.num_examples());
    let mut failures: Vec<Failure> = Vec::new();
    let ignore = meta.ignore_label_id;
    let s = meta.seq_len;
    let rollout = RolloutOptions {
        halt: HaltMode::Max,
        trace_rows: Vec::new(),
    };
    for set in ds.sets() {
        let n = set.num_examples();
        let mut start = 0;
        while start < n {
            let end = (start + opts.batch_size.max(1)).min(n);
            let mut inputs = Vec::with_capacity((end - start) * s);
            let mut labels = Vec::with_capacity((end - start) * s);
            let mut ids = Vec::with_capacity(end - start);
            for i in start..end {
                let (x, y) = set.example(i)?;
                inputs.extend(x);
                labels.extend(y);
                ids.push(set.puzzle_identifier_of_example(i)?);
            }
            let run = solve_rows(model, &inputs, &ids, end - start, &rollout, device)?;
            for (k, row) in run.rows.iter().enumerate() {
                let x = &inputs[k * s..(k + 1) * s];
                let y = &labels[k * s..(k + 1) * s];
                let exact_learned = is_exact(&row.learned_prediction, y, ignore);
                results.push(ExampleResult {
                    steps: row.learned_halt_step,
                    exact_learned,
                    exact_max: is_exact(&row.prediction, y, ignore),
                    token_accuracy: token_accuracy(&row.learned_prediction, y, ignore),
                    token_accuracy_max: token_accuracy(&row.prediction, y, ignore),
                    difficulty: difficulty(kind, x, y),
                });
                if !exact_learned && failures.len() < opts.gallery {
                    let q = row
                        .q_halt_logits
                        .get(row.learned_halt_step - 1)
                        .map_or(0.5, |&q| crate::solve::sigmoid(q));
                    failures.push(Failure {
                        set: set.name().to_string(),
                        index: start + k,
                        input: x.to_vec(),
                        label: y
                            .iter()
                            .map(|&l| if Some(l) == ignore || l < 0 { 0 } else { l })
                            .collect(),
                        prediction: row.learned_prediction.clone(),
                        steps: row.learned_halt_step,
                        q_halt: q,
                    });
                }
            }
            start = end;
        }
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
        "halt_max_steps": max_steps,
        "sets": reference.sets,
        "overall": reference.overall,
        "learned_halting": learned,
        "max_steps": at_max,
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
    });
    let metrics_path = write_json(&opts.out_dir.join("metrics.json"), &metrics)?;
    files.insert(0, metrics_path);

    Ok(Report {
        task: kind,
        examples: results.len(),
        reference,
        learned,
        at_max,
        steps_histogram,
        breakdown,
        arc: arc_report,
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

/// The difficulty of an example: blanks of a Sudoku input, steps of a maze's labelled path.
fn difficulty(kind: TaskKind, input: &[i32], label: &[i32]) -> Option<usize> {
    match kind {
        TaskKind::Sudoku { .. } => Some(input.iter().filter(|&&t| t == BLANK_TOKEN).count()),
        TaskKind::Maze { .. } => Some(label.iter().filter(|&&t| t == MAZE_PATH_TOKEN).count() + 1),
        _ => None,
    }
}

/// Means over examples of what `pick` gives: (exact, token accuracy, steps).
fn summarise(
    results: &[ExampleResult],
    pick: impl Fn(&ExampleResult) -> (bool, f64, usize),
) -> HaltingSummary {
    let n = results.len().max(1) as f64;
    let picked: Vec<(bool, f64, usize)> = results.iter().map(pick).collect();
    HaltingSummary {
        count: results.len(),
        exact_accuracy: picked.iter().filter(|p| p.0).count() as f64 / n,
        token_accuracy: picked.iter().map(|p| p.1).sum::<f64>() / n,
        mean_steps: picked.iter().map(|p| p.2 as f64).sum::<f64>() / n,
    }
}

/// Groups examples by difficulty: one group per value when there are few distinct values,
/// otherwise about [`GROUPED_BUCKETS`] groups of equal width.
fn breakdown(kind: TaskKind, results: &[ExampleResult]) -> Option<Breakdown> {
    let by = match kind {
        TaskKind::Sudoku { .. } => "blanks",
        TaskKind::Maze { .. } => "path_length",
        _ => return None,
    };
    let values: Vec<usize> = results.iter().filter_map(|r| r.difficulty).collect();
    let (lo, hi) = (*values.iter().min()?, *values.iter().max()?);
    let mut distinct = values.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let width = if distinct.len() <= MAX_SINGLE_BUCKETS {
        1
    } else {
        (hi - lo + 1).div_ceil(GROUPED_BUCKETS)
    };
    let mut groups: BTreeMap<usize, Vec<&ExampleResult>> = BTreeMap::new();
    for r in results {
        if let Some(d) = r.difficulty {
            groups.entry((d - lo) / width).or_default().push(r);
        }
    }
    let buckets = groups
        .into_iter()
        .map(|(g, rs)| {
            let n = rs.len() as f64;
            let share =
                |f: &dyn Fn(&ExampleResult) -> bool| rs.iter().filter(|r| f(r)).count() as f64 / n;
            Bucket {
                lo: lo + g * width,
                hi: lo + (g + 1) * width - 1,
                count: rs.len(),
                exact_learned: share(&|r| r.exact_learned),
                exact_max: share(&|r| r.exact_max),
                token_accuracy: rs.iter().map(|r| r.token_accuracy).sum::<f64>() / n,
                mean_steps: rs.iter().map(|r| r.steps as f64).sum::<f64>() / n,
            }
        })
        .collect();
    Some(Breakdown {
        by: by.to_string(),
        buckets,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn result(d: usize, exact: bool, steps: usize) -> ExampleResult {
        ExampleResult {
            steps,
            exact_learned: exact,
            exact_max: true,
            token_accuracy: if exact { 1.0 } else { 0.5 },
            token_accuracy_max: 1.0,
            difficulty: Some(d),
        }
    }

    #[test]
    fn few_difficulties_get_one_bucket_each_many_are_grouped() {
        let rs = vec![result(3, true, 1), result(3, false, 2), result(5, true, 1)];
        let b = breakdown(TaskKind::Sudoku { size: 4 }, &rs).expect("sudoku");
        assert_eq!(b.by, "blanks");
        assert_eq!(b.buckets.len(), 2);
        assert_eq!(
            (b.buckets[0].lo, b.buckets[0].hi, b.buckets[0].count),
            (3, 3, 2)
        );
        assert!((b.buckets[0].exact_learned - 0.5).abs() < 1e-12);
        assert!((b.buckets[0].mean_steps - 1.5).abs() < 1e-12);
        let many: Vec<ExampleResult> = (100..160).map(|d| result(d, d % 2 == 0, 1)).collect();
        let b = breakdown(TaskKind::Maze { side: 30 }, &many).expect("maze");
        assert_eq!(b.by, "path_length");
        assert!(b.buckets.len() <= GROUPED_BUCKETS, "{}", b.buckets.len());
        assert_eq!(b.buckets.iter().map(|k| k.count).sum::<usize>(), 60);
        assert!(breakdown(TaskKind::Arc, &many).is_none());
    }

    #[test]
    fn difficulty_counts_blanks_and_path_squares() {
        assert_eq!(
            difficulty(TaskKind::Sudoku { size: 4 }, &[1, 2, 1, 3], &[2, 2, 2, 3]),
            Some(2)
        );
        // S o o G: three steps.
        assert_eq!(
            difficulty(TaskKind::Maze { side: 2 }, &[3, 2, 2, 4], &[3, 5, 5, 4]),
            Some(3)
        );
    }
}
