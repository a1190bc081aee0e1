//! Evaluation reports: what `hrm eval` writes about a trained model on a dataset split.
//!
//! The passes over the split:
//! 1. [`hrm_train::eval::evaluate`], the reference's evaluation (`evaluate` in `pretrain.py`):
//!    every example for `halt_max_steps` ACT steps, the reference's metrics per set; for ARC
//!    datasets also the voting of [`hrm_train::eval::arc`] (pass@1, pass@2, the submission).
//!    Its predictions are the all-steps answers of the report (bit for bit the reference's).
//! 2. Learned halting ([`crate::solve::solve_rows`], continuous batching unless asked
//!    otherwise) with every step's Q values: the histogram of ACT steps used, exactness under
//!    learned halting, accuracy by difficulty (blanks of a Sudoku, shortest-path length of a
//!    maze), the failure gallery and, for ARC, the voting of the learned answers. With a test-
//!    time step cap other than `halt_max_steps` (`--max-steps`), an all-steps rollout to that
//!    cap gives the all-steps answers instead of pass 1.
//! 3. Optional: accuracy against step caps ([`hrm_train::rollout::steps`], `--steps-sweep`),
//!    and voting over augmented views and several runs ([`hrm_train::eval::vote`], `--vote`).
//!
//! [`bench_halting`] (`hrm eval --bench-halting`) times the halting schemes instead.
//!
//! Files written into the output directory (default `RUN/report/`):
//! - `metrics.json`: per-set and overall reference metrics, learned-halting and all-steps
//!   results with their timing, the steps histogram, the sweep and the vote when asked for, and
//!   for ARC pass@1 and pass@2;
//! - `steps_histogram.png`: ACT steps used under learned halting;
//! - `accuracy_by_blanks.{json,png}` (Sudoku) or `accuracy_by_path_length.{json,png}` (maze);
//! - `steps_sweep.{json,png}` with `--steps-sweep`: exactness against the step cap;
//! - `failures.png`: a gallery of the first few examples answered wrongly under learned
//!   halting, each as input, label and prediction;
//! - ARC only: `submission.json` (ARC Prize format) and `arc_results.json`.

mod bench;
mod compute;
mod write;

pub use bench::{bench_halting, HaltingBench};
pub use compute::{PassTiming, VoteSummary};

use std::path::{Path, PathBuf};

use serde::Serialize;
use tch::Device;

use hrm_data::{Dataset, TaskKind};

use hrm_train::arch::ArchModel;
use hrm_train::checkpoint::LoadedModel;
use hrm_train::eval::arc::{is_arc_dataset, ArcReport};
use hrm_train::eval::EvalReport;
use hrm_train::rollout::steps::SweepPoint;
use hrm_train::rollout::{Batching, HaltMode};
use hrm_train::run_dir::write_atomic;
use hrm_train::{Result, TrainError};

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
    /// Examples per batch (slots of the continuous learned-halting pass).
    pub batch_size: usize,
    /// Failures drawn in the gallery.
    pub gallery: usize,
    /// Where to run.
    pub device: Device,
    /// The step cap of learned halting and of the max-step answers (`None`: the trained
    /// `halt_max_steps`; the reference evaluation always runs `halt_max_steps`).
    pub max_steps: Option<usize>,
    /// How the learned-halting pass batches its rows.
    pub batching: Batching,
    /// Step caps at which to measure accuracy (empty: no sweep).
    pub steps_sweep: Vec<usize>,
    /// Views per example for voting (1 with one run: no voting).
    pub vote: usize,
    /// Seed of the voting views' augmentations.
    pub vote_seed: u64,
    /// Halting of the voting views' rollouts.
    pub vote_halt: HaltMode,
}

impl ReportOptions {
    /// The defaults of `hrm eval`: split `test`, batches of 256, 6 failures, the trained step
    /// cap, continuous batching, no sweep and no voting.
    pub fn new(out_dir: impl Into<PathBuf>, device: Device) -> ReportOptions {
        ReportOptions {
            out_dir: out_dir.into(),
            split: "test".into(),
            batch_size: 256,
            gallery: 6,
            device,
            max_steps: None,
            batching: Batching::Continuous,
            steps_sweep: Vec::new(),
            vote: 1,
            vote_seed: 0,
            vote_halt: HaltMode::Learned,
        }
    }
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
    /// The trained `halt_max_steps` (the reference evaluation's steps).
    pub halt_max_steps: usize,
    /// The step cap of learned halting and of `at_max`.
    pub step_cap: usize,
    /// The reference's evaluation.
    pub reference: EvalReport,
    /// Under learned halting (capped at `step_cap`).
    pub learned: HaltingSummary,
    /// After `step_cap` steps.
    pub at_max: HaltingSummary,
    /// Time and compute of the learned-halting and max-step passes.
    pub timing: PassTiming,
    /// `(steps, examples)` for steps `1..=step_cap`, under learned halting.
    pub steps_histogram: Vec<(usize, u64)>,
    /// Accuracy by difficulty (Sudoku and mazes).
    pub breakdown: Option<Breakdown>,
    /// ARC voting results of the reference evaluation.
    pub arc: Option<ArcReport>,
    /// ARC voting over the answers of learned halting.
    pub arc_learned: Option<ArcReport>,
    /// Accuracy against test-time steps.
    pub sweep: Option<Vec<SweepPoint>>,
    /// Voting over augmentations and runs.
    pub vote: Option<VoteSummary>,
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
            self.halt_max_steps,
            crate::progress::format_eval(&self.reference)
        ));
        for (set, m) in &self.reference.sets {
            s.push_str(&format!(
                "    set {set}: exact {:.4} accuracy {:.4} ({} examples)\n",
                m.get("exact_accuracy"),
                m.get("accuracy"),
                m.get("count")
            ));
        }
        let per_second = |n: usize, secs: f64| n as f64 / secs.max(1e-12);
        s.push_str(&format!(
            "  learned halting (at most {} steps, {} batching): exact {:.4}, token accuracy {:.4}, mean steps {:.2}, {:.1} puzzles/s\n",
            self.step_cap,
            self.timing.learned_batching,
            self.learned.exact_accuracy,
            self.learned.token_accuracy,
            self.learned.mean_steps,
            per_second(self.examples, self.timing.learned_seconds)
        ));
        s.push_str(&format!(
            "  all {} steps{}: exact {:.4}, token accuracy {:.4}, {:.1} puzzles/s\n",
            self.step_cap,
            if self.step_cap == self.halt_max_steps {
                " (the reference evaluation, losses included)"
            } else {
                ""
            },
            self.at_max.exact_accuracy,
            self.at_max.token_accuracy,
            per_second(self.examples, self.timing.max_seconds)
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
        if let Some(a) = &self.arc_learned {
            s.push_str(&format!(
                "  ARC, learned halting: pass@1 {:.4}, pass@2 {:.4}\n",
                a.pass_at_1, a.pass_at_2
            ));
        }
        if let Some(points) = &self.sweep {
            s.push_str("  exact by step cap (max | learned, mean steps):");
            for p in points {
                s.push_str(&format!(
                    " {}: {:.3} | {:.3}, {:.2};",
                    p.steps, p.exact_max, p.exact_learned, p.mean_steps_learned
                ));
            }
            s.push('\n');
        }
        if let Some(v) = &self.vote {
            s.push_str(&format!(
                "  voting ({} views x {} run(s), halting {}): pass@1 {:.4}, pass@2 {:.4} (one view: {:.4}), mean steps {:.2}\n",
                v.views,
                v.runs.len(),
                v.halt,
                v.pass_at_1,
                v.pass_at_2,
                v.single_view_exact,
                v.mean_steps
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
/// Evaluates `runs[0]` on split `opts.split` of `data_dir` and writes the report files; the
/// other runs only take part in the vote.
///
/// # Errors
/// [`TrainError::Dataset`] for a missing or unfit split, [`TrainError::Config`] for no run, the
/// evaluation's errors, and I/O errors naming the file.
pub fn write_report(
    runs: &[&LoadedModel],
    data_dir: &Path,
    opts: &ReportOptions,
) -> Result<Report> {
    let evaluated = compute::evaluate_split(runs, data_dir, opts)?;
    write::write_files(runs[0], data_dir, opts, evaluated)
}

#[cfg(test)]
mod tests {
    use super::compute::{breakdown, difficulty};
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
