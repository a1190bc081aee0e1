//! `hrm eval --bench-halting`: puzzles per second of the three ways to answer a split, on the
//! same rows, batch size and device: learned halting with continuous batching, learned halting
//! in lockstep batches (each batch waits for its slowest row, as before continuous batching),
//! and every step (`halt_max_steps` or `--max-steps`, the reference's evaluation without its
//! loss computation), each with its mean ACT steps, the compute it spent and its accuracy.

use std::path::Path;

use serde::Serialize;
use tch::Device;

use hrm_data::Dataset;
use hrm_train::checkpoint::LoadedModel;
use hrm_train::rollout::{
    is_exact, solve_rows, token_accuracy, Batching, HaltMode, RolloutOptions, SolveRun,
};
use hrm_train::{Result, TrainError};

use super::check_dataset_fits;
use super::compute::read_set;

/// One way of answering, timed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HaltingBench {
    /// `learned, continuous`, `learned, lockstep` or `max`.
    pub mode: String,
    /// Puzzles answered per second (best of the repeats).
    pub puzzles_per_second: f64,
    /// Wall seconds of every repeat, in order.
    pub seconds: Vec<f64>,
    /// Mean ACT steps of the answers.
    pub mean_steps: f64,
    /// Rows computed over all ACT calls (compute spent, waiting rows included).
    pub row_steps: usize,
    /// ACT calls (model forwards).
    pub calls: usize,
    /// Share of puzzles answered exactly.
    pub exact_accuracy: f64,
    /// Share of scored tokens right.
    pub token_accuracy: f64,
}

/// Times the three ways of answering every example of split `split` of `data_dir`, `repeats`
/// times each after an untimed warm-up batch, with at most `batch_size` rows computed together
/// and step cap `max_steps` (`None`: `halt_max_steps`).
///
/// # Errors
/// [`TrainError::Dataset`] for a missing or unfit split, [`TrainError::Config`] for zero
/// repeats, and the rollouts' errors.
pub fn bench_halting(
    loaded: &LoadedModel,
    data_dir: &Path,
    split: &str,
    batch_size: usize,
    max_steps: Option<usize>,
    repeats: usize,
    device: Device,
) -> Result<Vec<HaltingBench>> {
    if repeats == 0 {
        return Err(TrainError::Config {
            key: "bench_repeats".into(),
            reason: "at least one repeat is needed".into(),
        });
    }
    let model = &loaded.model;
    let ds = Dataset::open(data_dir, split).map_err(|e| TrainError::Dataset {
        path: data_dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    check_dataset_fits(&ds, model)?;
    let ignore = ds.metadata().ignore_label_id;
    let s = ds.metadata().seq_len;
    let (mut inputs, mut labels, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for set in ds.sets() {
        let rows = read_set(set)?;
        inputs.extend(rows.inputs);
        labels.extend(rows.labels);
        ids.extend(rows.ids);
    }
    let n = ids.len();
    let modes = [
        (
            "learned, continuous",
            HaltMode::Learned,
            Batching::Continuous,
        ),
        ("learned, lockstep", HaltMode::Learned, Batching::Lockstep),
        ("max", HaltMode::Max, Batching::Lockstep),
    ];
    // Warm-up: allocator, kernels, thread pools.
    let warm = batch_size.min(n);
    solve_rows(
        model,
        &inputs[..warm * s],
        &ids[..warm],
        batch_size,
        &RolloutOptions {
            halt: HaltMode::Max,
            max_steps,
            ..RolloutOptions::default()
        },
        device,
    )?;
    // Repeats are interleaved (every mode once, then again), so a change in the machine's load
    // during the measurement spreads over all modes instead of favouring the first.
    let options: Vec<RolloutOptions> = modes
        .iter()
        .map(|&(_, halt, batching)| RolloutOptions {
            halt,
            trace_rows: Vec::new(),
            max_steps,
            batching,
        })
        .collect();
    let mut seconds: Vec<Vec<f64>> = vec![Vec::with_capacity(repeats); modes.len()];
    let mut last: Vec<Option<SolveRun>> = vec![None; modes.len()];
    for _ in 0..repeats {
        for (m, opts) in options.iter().enumerate() {
            let run = solve_rows(model, &inputs, &ids, batch_size, opts, device)?;
            seconds[m].push(run.total_seconds());
            last[m] = Some(run);
        }
    }
    let mut out = Vec::new();
    for (((name, _, _), seconds), run) in modes.iter().zip(seconds).zip(last) {
        let Some(run) = run else { continue };
        let (mut exact, mut tokens) = (0usize, 0.0f64);
        for (k, row) in run.rows.iter().enumerate() {
            let y = &labels[k * s..(k + 1) * s];
            exact += usize::from(is_exact(&row.prediction, y, ignore));
            tokens += token_accuracy(&row.prediction, y, ignore);
        }
        let best = seconds.iter().copied().fold(f64::INFINITY, f64::min);
        out.push(HaltingBench {
            mode: name.to_string(),
            puzzles_per_second: n as f64 / best.max(1e-12),
            seconds,
            mean_steps: run.mean_steps(),
            row_steps: run.row_steps,
            calls: run.calls,
            exact_accuracy: exact as f64 / n.max(1) as f64,
            token_accuracy: tokens / n.max(1) as f64,
        });
    }
    Ok(out)
}
