//! Inference helpers: one task's test inputs as a model batch of its augmented views, and a
//! predicted token grid mapped back to its task and un-augmented.
//!
//! Mirrors what the reference's evaluator (`evaluators/arc.py`, `ARC.update_batch`) does with
//! each prediction: look up the puzzle name of the row's identifier, split off the augmentation
//! (`inverse_aug`), crop the predicted canvas (`_crop`) and undo the augmentation, so that
//! predictions of all augmented views of a test input can vote. The batch side has no
//! reference counterpart: the reference evaluates only on a prebuilt test split.

use ndarray::{Array1, Array2};

use super::load::ArcTask;
use super::{grid_to_tokens_at, parse_identifier, tokens_to_grid, Augmentation, Grid, ARC_SEQ_LEN};
use crate::dihedral::Dihedral;
use crate::sampler::{Batch, IGNORE_LABEL_ID};

/// What one row of an [`ArcTaskBatch`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestView {
    /// Which test pair of the task (0-based).
    pub test_index: usize,
    /// The augmentation applied to its input (undo it on the prediction).
    pub augmentation: Augmentation,
    /// The row's puzzle identifier.
    pub puzzle_identifier: i32,
}

/// A task's test inputs under several augmentations, ready for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ArcTaskBatch {
    /// One row per view, no padding; `example_indices[i] == Some(i)` points into `views`.
    /// Labels are the augmented known outputs (PAD as -100), or all -100 when unknown.
    pub batch: Batch,
    /// What each row is.
    pub views: Vec<TestView>,
}

/// Builds the batch of a task's augmented test views. Every puzzle name in `identifiers`
/// (a dataset's `identifiers.json`) that belongs to this task gives one view per test input,
/// with that identifier, so a model trained on the dataset sees the puzzle embeddings it
/// learned. A task the dataset does not know gets the 8 dihedral transforms (colours kept)
/// with the blank identifier 0.
pub fn task_test_batch(task: &ArcTask, identifiers: &[String]) -> ArcTaskBatch {
    let mut augs: Vec<(Augmentation, i32)> = identifiers
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            parse_identifier(name)
                .filter(|(t, _)| *t == task.id)
                .map(|(_, a)| (a, i as i32))
        })
        .collect();
    if augs.is_empty() {
        augs = Dihedral::ALL
            .iter()
            .map(|&t| {
                (
                    Augmentation {
                        transform: t,
                        ..Augmentation::identity()
                    },
                    0,
                )
            })
            .collect();
    }
    let mut views = Vec::new();
    for (k, _) in task.test.iter().enumerate() {
        for &(augmentation, puzzle_identifier) in &augs {
            views.push(TestView {
                test_index: k,
                augmentation,
                puzzle_identifier,
            });
        }
    }
    let b = views.len();
    let mut inputs = Array2::zeros((b, ARC_SEQ_LEN));
    let mut labels = Array2::from_elem((b, ARC_SEQ_LEN), IGNORE_LABEL_ID);
    for (row, v) in views.iter().enumerate() {
        let pair = &task.test[v.test_index];
        let tokens = grid_to_tokens_at(&v.augmentation.apply(&pair.input), 0, 0);
        inputs
            .row_mut(row)
            .iter_mut()
            .zip(&tokens)
            .for_each(|(d, &t)| *d = i32::from(t));
        if let Some(out) = &pair.output {
            let tokens = grid_to_tokens_at(&v.augmentation.apply(out), 0, 0);
            labels
                .row_mut(row)
                .iter_mut()
                .zip(&tokens)
                .for_each(|(d, &t)| {
                    *d = if t == 0 {
                        IGNORE_LABEL_ID
                    } else {
                        i32::from(t)
                    }
                });
        }
    }
    let batch = Batch {
        set: "all".to_string(),
        inputs,
        labels,
        puzzle_identifiers: Array1::from_iter(views.iter().map(|v| v.puzzle_identifier)),
        effective_batch_size: b,
        example_indices: (0..b).map(Some).collect(),
    };
    ArcTaskBatch { batch, views }
}

/// Maps a predicted token canvas back to its task: the task id and the predicted grid with
/// the puzzle's augmentation undone. `None` for the blank name or a prediction with no grid.
pub fn prediction_to_task_grid(name: &str, tokens: &[i32]) -> Option<(String, Grid)> {
    let (task, aug) = parse_identifier(name)?;
    let grid = tokens_to_grid(tokens)?;
    Some((task, aug.invert(&grid)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arc::{build_arc, read_test_puzzles, ArcOptions};
    use crate::format::read_identifiers;

    #[test]
    fn views_of_a_built_task_undo_to_the_solution() {
        let dir = tempfile::tempdir().unwrap();
        let from = crate::arc::build::small_task_dir(dir.path());
        let opts = ArcOptions {
            from: Some(from),
            aug: 3,
            ..ArcOptions::new(dir.path().join("arc"))
        };
        build_arc(&opts).unwrap();
        let names = read_identifiers(&opts.out).unwrap();
        let tasks = read_test_puzzles(&opts.out).unwrap();
        let task = &tasks["bbb"];
        let tb = task_test_batch(task, &names);
        assert_eq!(
            tb.views.len(),
            2 * 4,
            "2 test inputs x (original + 3 augmentations)"
        );
        assert_eq!(tb.batch.inputs.dim(), (8, 900));
        for (row, v) in tb.views.iter().enumerate() {
            assert_eq!(
                names[v.puzzle_identifier as usize].split("|||").next(),
                Some("bbb")
            );
            // A perfect prediction is the label; mapped back it is the task's solution.
            let label: Vec<i32> = tb
                .batch
                .labels
                .row(row)
                .iter()
                .map(|&t| if t == IGNORE_LABEL_ID { 0 } else { t })
                .collect();
            let (id, grid) =
                prediction_to_task_grid(&names[v.puzzle_identifier as usize], &label).unwrap();
            assert_eq!(id, "bbb");
            assert_eq!(Some(&grid), task.test[v.test_index].output.as_ref());
        }
        // An unknown task falls back to the 8 transforms with the blank identifier.
        let tb = task_test_batch(task, &["<blank>".to_string()]);
        assert_eq!(tb.views.len(), 16);
        assert!(tb.batch.puzzle_identifiers.iter().all(|&i| i == 0));
        assert_eq!(prediction_to_task_grid("<blank>", &label_of(&tb, 0)), None);
    }

    fn label_of(tb: &ArcTaskBatch, row: usize) -> Vec<i32> {
        tb.batch.labels.row(row).to_vec()
    }
}
