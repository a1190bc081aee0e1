//! Progress reporting for training runs: the library prints nothing, it tells an observer.
//!
//! [`crate::trainer::train_with`] calls a [`TrainObserver`] when the run starts (fresh or
//! resumed, with the checkpoints a resume passed over and what it cut from `metrics.jsonl`),
//! after every step (with the reduced metrics on logging steps), for every step skipped as not
//! finite, after every evaluation and at the end. The `hrm` command implements it with a progress bar and the
//! training-curve PNG, as burn-train reports through its renderer trait; a library user can
//! pass [`NoObserver`] or their own.

use std::path::Path;

use hrm_act::MetricValues;

use crate::checkpoint::SkippedCheckpoint;
use crate::eval::EvalReport;
use crate::run_dir::MetricsCut;
use crate::train_step::NonFinite;
use crate::trainer::TrainSummary;

/// Where a run starts.
#[derive(Debug, Clone)]
pub struct RunStart<'a> {
    /// The run directory.
    pub run_dir: &'a Path,
    /// Steps the schedule spans.
    pub total_steps: u64,
    /// The step the run starts after (0 for a fresh run).
    pub step: u64,
    /// The checkpoint a resumed run continues from.
    pub resumed_from: Option<&'a Path>,
    /// Trainable parameters of the model.
    pub num_parameters: i64,
    /// Checkpoints newer than `resumed_from` that failed verification, newest first; each was
    /// renamed to `corrupt-step_<N>`.
    pub skipped_checkpoints: &'a [SkippedCheckpoint],
    /// What was cut from `metrics.jsonl` so that it ends at `step`: lines of later steps (left
    /// by a run killed after its last checkpoint) and a torn last line.
    pub metrics_cut: &'a MetricsCut,
}

/// One finished training step.
#[derive(Debug, Clone, Copy)]
pub struct StepEvent<'a> {
    /// Steps done, this one included.
    pub step: u64,
    /// Steps the schedule spans.
    pub total_steps: u64,
    /// The learning rate of the step.
    pub lr: f64,
    /// On logging steps, the metrics reduced over the interval since the last log line.
    pub logged: Option<&'a MetricValues>,
}

/// Receives a run's progress. Every method has an empty default.
pub trait TrainObserver {
    /// The run is set up and about to take its first step.
    fn on_start(&mut self, _start: &RunStart<'_>) {}
    /// A step finished.
    fn on_step(&mut self, _event: &StepEvent<'_>) {}
    /// Step `step` had a non-finite loss or gradient norm and was skipped (no update) under
    /// `on_nonfinite = "skip"`.
    fn on_skipped_step(&mut self, _step: u64, _what: &NonFinite) {}
    /// An evaluation finished after `step` steps.
    fn on_eval(&mut self, _step: u64, _report: &EvalReport) {}
    /// The run finished or stopped; `run_dir` holds its metrics and checkpoints.
    fn on_end(&mut self, _run_dir: &Path, _summary: &TrainSummary) {}
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl TrainObserver for NoObserver {}
