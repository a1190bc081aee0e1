//! Solving one ARC task: its test inputs under the augmentations the model was trained with,
//! each view answered by the model, the answers mapped back (crop, undo colours and dihedral
//! transform) and voted on, as the reference's `arc_eval.ipynb` and TRM's `evaluators/arc.py`
//! do for a whole test split ([`hrm_train::eval::arc`]). Several models trained on the same
//! dataset can vote together ([`solve_arc_task_runs`]).
//!
//! The views come from [`task_test_batch`]: every name in the training dataset's
//! `identifiers.json` that belongs to the task gives one view with that puzzle identifier, so
//! the model sees the puzzle embedding it learned. HRM's ARC models learn one embedding per
//! augmented puzzle and have no embedding for a task they never saw: such a task falls back to
//! the 8 dihedral views with the blank identifier 0, and [`ArcAnswer::known_to_model`] says so.

use std::path::{Path, PathBuf};

use tch::Device;

use hrm_data::arc::{task_test_batch, tokens_to_grid, ArcTask, TestView, ARC_SEQ_LEN};
use hrm_data::{parse_identifier, read_identifiers, Grid, TaskKind};

use super::check_task;
use hrm_train::arch::ArchModel;
use hrm_train::eval::arc::{rank_candidates, Candidate};
use hrm_train::rollout::{sigmoid, solve_rows, RolloutOptions, RowResult, SolveRun};
use hrm_train::{Result, TrainError};

/// The dataset's puzzle names the views need, and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ArcIdentifiers {
    /// The dataset directory.
    pub dataset: PathBuf,
    /// `identifiers.json`: index = puzzle identifier.
    pub names: Vec<String>,
}

/// Reads `identifiers.json` of the dataset a model was trained on, and checks it fits the
/// model's puzzle table.
///
/// # Errors
/// [`TrainError::Dataset`] when the file cannot be read (saying that the views need it and how
/// to point at the dataset) or has more names than the model has puzzle identifiers (it
/// belongs to another dataset).
pub fn read_arc_identifiers(dataset: &Path, model: &ArchModel) -> Result<ArcIdentifiers> {
    let names = read_identifiers(dataset).map_err(|e| TrainError::Dataset {
        path: dataset.to_path_buf(),
        reason: format!(
            "{e}; the augmented views of an ARC task need the puzzle identifiers of the dataset \
             the model was trained on (pass --data DIR when the run's data_path has moved)"
        ),
    })?;
    let n = model.dims().num_puzzle_identifiers.max(1) as usize;
    if names.len() > n {
        return Err(TrainError::Dataset {
            path: dataset.to_path_buf(),
            reason: format!(
                "identifiers.json has {} names but the model has {n} puzzle identifiers: \
                 it is not the dataset the model was trained on",
                names.len()
            ),
        });
    }
    Ok(ArcIdentifiers {
        dataset: dataset.to_path_buf(),
        names,
    })
}

/// The outcome for one test input.
#[derive(Debug, Clone, PartialEq)]
pub struct ArcTestAnswer {
    /// Index of the test input in the task.
    pub test_index: usize,
    /// Views that were run.
    pub views: usize,
    /// Views whose prediction crops to a grid (the others cannot vote).
    pub voting_views: usize,
    /// Candidates, best first (all of them; the top two are the attempts).
    pub candidates: Vec<Candidate>,
    /// The known solution, if the task file has one.
    pub expected: Option<Grid>,
}

impl ArcTestAnswer {
    /// For each of the top two candidates, whether it equals the known solution (`None` when
    /// the solution is unknown).
    pub fn top_correct(&self) -> Option<Vec<bool>> {
        let truth = self.expected.as_ref()?.to_rows();
        Some(
            self.candidates
                .iter()
                .take(2)
                .map(|c| c.grid == truth)
                .collect(),
        )
    }
}

/// The model's answer to one task.
#[derive(Debug, Clone, PartialEq)]
pub struct ArcAnswer {
    /// The task id.
    pub task: String,
    /// Whether the dataset's identifiers name this task (otherwise the blank identifier and the
    /// 8 dihedral views were used).
    pub known_to_model: bool,
    /// Per test input.
    pub tests: Vec<ArcTestAnswer>,
    /// Per view, what it is (repeated for each model when several voted).
    pub views: Vec<TestView>,
    /// Per view, the model's result (in the view's orientation and colours); with several
    /// models, all views of the first model, then all of the second, and so on.
    pub rows: Vec<RowResult>,
    /// Models that voted.
    pub models: usize,
    /// `[views * 900]` input tokens of the views.
    pub inputs: Vec<i32>,
    /// `[views * 900]` label tokens of the views (the augmented known output, -100 where not
    /// scored or unknown).
    pub labels: Vec<i32>,
    /// Wall seconds over all batches.
    pub seconds: f64,
}

impl ArcAnswer {
    /// The input tokens of view `i` of the first model (empty past its last view).
    pub fn view_input(&self, i: usize) -> &[i32] {
        self.inputs
            .get(i * ARC_SEQ_LEN..(i + 1) * ARC_SEQ_LEN)
            .unwrap_or(&[])
    }

    /// The label tokens of view `i` of the first model (empty past its last view).
    pub fn view_label(&self, i: usize) -> &[i32] {
        self.labels
            .get(i * ARC_SEQ_LEN..(i + 1) * ARC_SEQ_LEN)
            .unwrap_or(&[])
    }

    /// One machine-readable object: per test input the top two candidates with votes and mean
    /// confidence, and whether each is correct when the solution is known.
    pub fn to_json(&self) -> serde_json::Value {
        let tests: Vec<serde_json::Value> = self
            .tests
            .iter()
            .map(|t| {
                serde_json::json!({
                    "test_index": t.test_index,
                    "views": t.views,
                    "voting_views": t.voting_views,
                    "candidates": t.candidates.len(),
                    "top": t.candidates.iter().take(2).collect::<Vec<_>>(),
                    "correct": t.top_correct(),
                    "solved": t.top_correct().map(|c| c.iter().any(|&x| x)),
                })
            })
            .collect();
        let steps: Vec<usize> = self.rows.iter().map(|r| r.halt_step).collect();
        serde_json::json!({
            "task": "arc",
            "id": self.task,
            "known_to_model": self.known_to_model,
            "models": self.models,
            "tests": tests,
            "mean_steps": steps.iter().sum::<usize>() as f64 / steps.len().max(1) as f64,
            "seconds": self.seconds,
        })
    }
}

/// Solves one task: every view in batches of at most `batch_size`, then the vote.
///
/// # Errors
/// [`TrainError::Config`] when the model is not an ARC model, [`TrainError::Dataset`] when
/// the task has no test input, and the errors of [`solve_rows`] (an identifier the model does
/// not have).
pub fn solve_arc_task(
    model: &ArchModel,
    task: &ArcTask,
    identifiers: &ArcIdentifiers,
    batch_size: usize,
    opts: &RolloutOptions,
    device: Device,
) -> Result<(ArcAnswer, SolveRun)> {
    let (answer, mut runs) =
        solve_arc_task_runs(&[model], task, identifiers, batch_size, opts, device)?;
    Ok((answer, runs.remove(0)))
}

/// Solves one task with several models trained on the same dataset (the same puzzle
/// identifiers): every model answers every view, and all their answers vote together.
///
/// # Errors
/// As [`solve_arc_task`] for each model; [`TrainError::Config`] for no model.
pub fn solve_arc_task_runs(
    models: &[&ArchModel],
    task: &ArcTask,
    identifiers: &ArcIdentifiers,
    batch_size: usize,
    opts: &RolloutOptions,
    device: Device,
) -> Result<(ArcAnswer, Vec<SolveRun>)> {
    if models.is_empty() {
        return Err(TrainError::Config {
            key: "run".into(),
            reason: "an ARC task needs at least one model".into(),
        });
    }
    for m in models {
        check_task(&m.dims(), TaskKind::Arc)?;
    }
    if task.test.is_empty() {
        return Err(TrainError::Dataset {
            path: task.source.clone(),
            reason: format!("task `{}` has no test input", task.id),
        });
    }
    let known_to_model = identifiers
        .names
        .iter()
        .any(|n| parse_identifier(n).is_some_and(|(t, _)| t == task.id));
    let tb = task_test_batch(task, &identifiers.names);
    let inputs = tb.batch.inputs.as_standard_layout();
    let inputs = inputs.as_slice().map(<[i32]>::to_vec).unwrap_or_default();
    let labels = tb.batch.labels.as_standard_layout();
    let labels = labels.as_slice().map(<[i32]>::to_vec).unwrap_or_default();
    let ids = tb.batch.puzzle_identifiers.to_vec();
    let runs = models
        .iter()
        .map(|m| solve_rows(m, &inputs, &ids, batch_size, opts, device))
        .collect::<Result<Vec<SolveRun>>>()?;
    let mut tests = Vec::new();
    for (k, pair) in task.test.iter().enumerate() {
        let mut preds = Vec::new();
        let mut views = 0;
        for run in &runs {
            for (view, row) in tb.views.iter().zip(&run.rows) {
                if view.test_index != k {
                    continue;
                }
                views += 1;
                if let Some(g) = tokens_to_grid(&row.prediction) {
                    preds.push((
                        view.augmentation.invert(&g),
                        sigmoid(row.q_halt_at_answer()),
                    ));
                }
            }
        }
        let voting_views = preds.len();
        tests.push(ArcTestAnswer {
            test_index: k,
            views,
            voting_views,
            candidates: rank_candidates(preds),
            expected: pair.output.clone(),
        });
    }
    let answer = ArcAnswer {
        task: task.id.clone(),
        known_to_model,
        tests,
        views: runs.iter().flat_map(|_| tb.views.iter().cloned()).collect(),
        rows: runs.iter().flat_map(|r| r.rows.iter().cloned()).collect(),
        models: models.len(),
        inputs,
        labels,
        seconds: runs.iter().map(SolveRun::total_seconds).sum(),
    };
    Ok((answer, runs))
}
