//! ARC evaluation with voting over augmentations, as the reference's `arc_eval.ipynb`.
//!
//! Every test example of the dataset is an augmented view of some task's test input. For each
//! view: crop the predicted 30x30 canvas to its grid (the reference's `crop`), undo the view's
//! dihedral transform and colour permutation, and cast a vote for that grid, weighted for
//! tie-breaking by the view's halting confidence `sigmoid(q_halt)`. Candidates are ranked by
//! vote count, then by mean confidence (the reference sorts on `[count, mean_q]`). A task counts
//! as solved at `k` when, for every one of its test inputs, the true output is among the top
//! `k` candidates: pass@1 and pass@2 (the ARC Prize allows two attempts). A submission in the
//! ARC Prize format (`{task: [{"attempt_1": grid, "attempt_2": grid}, ...]}`) is written from
//! the top two.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use hrm_data::arc::{read_test_puzzles, tokens_to_grid, ArcTask};
use hrm_data::{parse_identifier, read_identifiers, Dataset, Grid};

use super::outputs::SetOutputs;
use super::vote::rank_answers;
use crate::error::{Result, TrainError};

/// One candidate answer for one test input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// The grid, in the task's own orientation and colours.
    pub grid: Vec<Vec<u8>>,
    /// Views that predicted it.
    pub votes: usize,
    /// Mean `sigmoid(q_halt)` of those views.
    pub mean_confidence: f64,
}

/// Ranks predictions `(grid, confidence)` of one test input: most votes first, ties by mean
/// confidence, then by first appearance ([`rank_answers`] on grids).
pub fn rank_candidates(predictions: impl IntoIterator<Item = (Grid, f64)>) -> Vec<Candidate> {
    rank_answers(predictions.into_iter().map(|(g, q)| (g.to_rows(), q)))
        .into_iter()
        .map(|r| Candidate {
            grid: r.answer,
            votes: r.votes,
            mean_confidence: r.mean_confidence,
        })
        .collect()
}

/// The outcome for one test input of a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestInputResult {
    /// Index of the test input in the task.
    pub test_index: usize,
    /// Views that voted.
    pub views: usize,
    /// The two best candidates.
    pub top: Vec<Candidate>,
    /// 1-based rank of the true output among all candidates, when known and present.
    pub correct_rank: Option<usize>,
}

/// The outcome for one task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskResult {
    /// Task id.
    pub task: String,
    /// Per test input.
    pub tests: Vec<TestInputResult>,
    /// Every test input right at the first attempt.
    pub pass_at_1: bool,
    /// Every test input right within two attempts.
    pub pass_at_2: bool,
}

/// ARC results over a test split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArcReport {
    /// Per task, sorted by id.
    pub tasks: Vec<TaskResult>,
    /// Share of tasks solved at one attempt.
    pub pass_at_1: f64,
    /// Share of tasks solved within two attempts.
    pub pass_at_2: f64,
    /// Test examples whose view could not be matched to a task's test input (counted once per
    /// run when several runs vote).
    pub unmatched_views: usize,
}

impl ArcReport {
    /// The submission in the ARC Prize format: per task, per test input, two attempts (an
    /// empty grid `[[0]]` when there is no candidate).
    pub fn submission(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for t in &self.tasks {
            let attempts: Vec<serde_json::Value> = t
                .tests
                .iter()
                .map(|r| {
                    let pick = |i: usize| {
                        r.top
                            .get(i)
                            .map_or(serde_json::json!([[0]]), |c| serde_json::json!(c.grid))
                    };
                    serde_json::json!({ "attempt_1": pick(0), "attempt_2": pick(1) })
                })
                .collect();
            out.insert(t.task.clone(), serde_json::Value::Array(attempts));
        }
        serde_json::Value::Object(out)
    }
}

impl ArcReport {
    /// Writes `submission.json` (the ARC Prize format) and `arc_results.json` (every task's
    /// ranked candidates) into `dir`, each atomically, and returns their paths.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the directory or file.
    pub fn write_files(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|source| TrainError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut paths = Vec::new();
        for (name, value) in [
            ("submission.json", self.submission()),
            (
                "arc_results.json",
                serde_json::to_value(self).unwrap_or_default(),
            ),
        ] {
            let path = dir.join(name);
            let text = serde_json::to_string_pretty(&value).unwrap_or_default();
            hrm_data::atomic::write_atomic(&path, text.as_bytes()).map_err(|source| {
                TrainError::Io {
                    path: path.clone(),
                    source,
                }
            })?;
            paths.push(path);
        }
        Ok(paths)
    }
}

/// Whether a dataset directory is an ARC dataset (it has the original test tasks).
pub fn is_arc_dataset(dir: &Path) -> bool {
    dir.join("test_puzzles.json").is_file()
}

/// Votes over the predictions of an evaluation of `test` (an ARC test split in `dataset_dir`).
///
/// # Errors
/// When `identifiers.json` or `test_puzzles.json` cannot be read, or the outputs do not cover
/// the split.
pub fn evaluate_arc(
    dataset_dir: &Path,
    test: &Dataset,
    outputs: &BTreeMap<String, SetOutputs>,
) -> Result<ArcReport> {
    evaluate_arc_runs(dataset_dir, test, &[outputs])
}

/// Votes over the predictions of several evaluations of `test` together (several models,
/// each over every view of the split): every view of every run casts a vote.
///
/// # Errors
/// As [`evaluate_arc`], for any of the runs' outputs.
pub fn evaluate_arc_runs(
    dataset_dir: &Path,
    test: &Dataset,
    runs: &[&BTreeMap<String, SetOutputs>],
) -> Result<ArcReport> {
    let names = read_identifiers(dataset_dir)?;
    let tasks: BTreeMap<String, ArcTask> = read_test_puzzles(dataset_dir)?;
    let mut votes: BTreeMap<(String, usize), Vec<(Grid, f64)>> = BTreeMap::new();
    let mut unmatched = 0;
    for outputs in runs {
        for set in test.sets() {
            let out = outputs
                .get(set.name())
                .ok_or_else(|| TrainError::Shape(format!("no outputs for set `{}`", set.name())))?;
            let s = out.seq_len;
            for i in 0..set.num_examples() {
                let id = set.puzzle_identifier_of_example(i)?;
                let Some((task_id, aug)) = names.get(id as usize).and_then(|n| parse_identifier(n))
                else {
                    unmatched += 1;
                    continue;
                };
                let Some(task) = tasks.get(&task_id) else {
                    unmatched += 1;
                    continue;
                };
                let (inputs, _) = set.example(i)?;
                let Some(view_input) = tokens_to_grid(&inputs).map(|g| aug.invert(&g)) else {
                    unmatched += 1;
                    continue;
                };
                let Some(test_index) = task.test.iter().position(|p| p.input == view_input) else {
                    unmatched += 1;
                    continue;
                };
                let confidence = 1.0 / (1.0 + (-f64::from(out.q_halt_logits[i])).exp());
                let entry = votes.entry((task_id, test_index)).or_default();
                if let Some(pred) = tokens_to_grid(&out.predictions[i * s..(i + 1) * s]) {
                    entry.push((aug.invert(&pred), confidence));
                }
            }
        }
    }
    let mut results = Vec::new();
    for (task_id, task) in &tasks {
        let mut tests = Vec::new();
        for (j, pair) in task.test.iter().enumerate() {
            let preds = votes.remove(&(task_id.clone(), j)).unwrap_or_default();
            let views = preds.len();
            let ranked = rank_candidates(preds);
            let correct_rank = pair.output.as_ref().and_then(|truth| {
                ranked
                    .iter()
                    .position(|c| c.grid == truth.to_rows())
                    .map(|r| r + 1)
            });
            tests.push(TestInputResult {
                test_index: j,
                views,
                top: ranked.into_iter().take(2).collect(),
                correct_rank,
            });
        }
        let within = |k: usize| tests.iter().all(|t| t.correct_rank.is_some_and(|r| r <= k));
        results.push(TaskResult {
            task: task_id.clone(),
            pass_at_1: within(1),
            pass_at_2: within(2),
            tests,
        });
    }
    let n = results.len().max(1) as f64;
    Ok(ArcReport {
        pass_at_1: results.iter().filter(|t| t.pass_at_1).count() as f64 / n,
        pass_at_2: results.iter().filter(|t| t.pass_at_2).count() as f64 / n,
        tasks: results,
        unmatched_views: unmatched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(cells: &[u8]) -> Grid {
        Grid::new(1, cells.len(), cells.to_vec()).expect("valid grid")
    }

    #[test]
    fn votes_rank_first_then_confidence_breaks_ties() {
        let ranked = rank_candidates(vec![
            (grid(&[1]), 0.2),
            (grid(&[2]), 0.9),
            (grid(&[1]), 0.4),
            (grid(&[3]), 0.95),
            (grid(&[2]), 0.1),
        ]);
        // [1] and [2] have two votes each; [1] has mean 0.3, [2] mean 0.5.
        assert_eq!(ranked[0].grid, vec![vec![2]]);
        assert_eq!(ranked[0].votes, 2);
        assert_eq!(ranked[1].grid, vec![vec![1]]);
        assert_eq!(ranked[2].grid, vec![vec![3]]);
        assert!((ranked[1].mean_confidence - 0.3).abs() < 1e-12);
    }
}
