//! The first half of `hrm eval`'s report: run the model over the split and collect, per
//! example, what the reference's evaluation and our step-by-step rollout say.

use std::collections::BTreeMap;
use std::path::Path;

use hrm_act::LossHead;
use hrm_data::sudoku::BLANK_TOKEN;
use hrm_data::{Dataset, TaskKind};
use hrm_train::checkpoint::LoadedModel;
use hrm_train::eval::arc::ArcReport;
use hrm_train::eval::{add_arc_voting, evaluate, EvalReport};
use hrm_train::rollout::{is_exact, solve_rows, token_accuracy, HaltMode, RolloutOptions};
use hrm_train::{Result, TrainError};

use super::*;

/// What the model did on every example of a split, before anything is written.
pub(super) struct Evaluated {
    /// What the split's tokens encode.
    pub kind: TaskKind,
    /// ACT steps of the evaluation.
    pub max_steps: usize,
    /// The reference's evaluation (outputs dropped).
    pub reference: EvalReport,
    /// ARC voting, for ARC datasets.
    pub arc: Option<ArcReport>,
    /// One result per example, in split order.
    pub results: Vec<ExampleResult>,
    /// The first failures under learned halting, for the gallery.
    pub failures: Vec<Failure>,
}

/// Runs both passes over split `opts.split` of `data_dir`: the reference's evaluation (with
/// ARC voting) and the rollout with every step's Q values.
///
/// # Errors
/// [`TrainError::Dataset`] for a missing or unfit split, and the evaluation's errors.
pub(super) fn evaluate_split(
    loaded: &LoadedModel,
    data_dir: &Path,
    opts: &ReportOptions,
) -> Result<Evaluated> {
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

    // Pass 1: the reference's evaluation (and ARC voting).
    let head = LossHead {
        loss_type: loaded.config.loss.loss_type,
        q_loss_weight: loaded.config.loss.q_loss_weight,
    };
    let arc = is_arc_dataset(data_dir);
    let mut reference = evaluate(model, &ds, &head, opts.batch_size, device, arc)?;
    add_arc_voting(&mut reference, data_dir, &ds)?;
    let arc_report = reference.arc.take();
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

    Ok(Evaluated {
        kind,
        max_steps,
        reference,
        arc: arc_report,
        results,
        failures,
    })
}

/// The difficulty of an example: blanks of a Sudoku input, steps of a maze's labelled path.
pub(super) fn difficulty(kind: TaskKind, input: &[i32], label: &[i32]) -> Option<usize> {
    match kind {
        TaskKind::Sudoku { .. } => Some(input.iter().filter(|&&t| t == BLANK_TOKEN).count()),
        TaskKind::Maze { .. } => Some(label.iter().filter(|&&t| t == MAZE_PATH_TOKEN).count() + 1),
        _ => None,
    }
}

/// Means over examples of what `pick` gives: (exact, token accuracy, steps).
pub(super) fn summarise(
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
pub(super) fn breakdown(kind: TaskKind, results: &[ExampleResult]) -> Option<Breakdown> {
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
