//! Test splits never share an input with training splits: every generated test puzzle differs
//! from every training input, originals and augmentations, for 4x4, 6x6 and 9x9 Sudoku and for
//! mazes; the builds report how many draws they had to reject.

use std::collections::HashSet;
use std::path::Path;

use hrm_data::maze::{build_maze, MazeOptions};
use hrm_data::sudoku::{build_sudoku, Difficulty, SudokuOptions};
use hrm_data::{BuildSummary, Dataset};

/// Every input of `split` in the dataset at `dir`.
fn inputs(dir: &Path, split: &str) -> Vec<Vec<i32>> {
    let ds = Dataset::open(dir, split).unwrap();
    let set = ds.set("all").unwrap();
    (0..set.num_examples())
        .map(|i| set.example(i).unwrap().0.to_vec())
        .collect()
}

/// Asserts that no test input is a training input; returns the number of training inputs.
fn assert_disjoint(dir: &Path) -> usize {
    let train: HashSet<Vec<i32>> = inputs(dir, "train").into_iter().collect();
    let test = inputs(dir, "test");
    assert!(!test.is_empty());
    let shared = test.iter().filter(|t| train.contains(*t)).count();
    assert_eq!(shared, 0, "{shared} test inputs are training inputs");
    train.len()
}

/// The number in a note `... {prefix} N ...`.
fn rejected(summary: &BuildSummary, prefix: &str) -> usize {
    let note = summary
        .notes
        .iter()
        .find(|n| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("no note starting {prefix:?}: {:?}", summary.notes));
    note[prefix.len()..]
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no count in {note:?}"))
}

#[test]
fn sudoku_test_puzzles_are_never_training_inputs() {
    let dir = tempfile::tempdir().unwrap();
    // 4x4 minimal puzzles are few, so many test draws hit a training input and are redrawn;
    // 6x6 and 9x9 are checked the same way.
    for (size, difficulty, train, aug, test, min_rejected) in [
        (4, Difficulty::Hard, 300, 10, 100, 1),
        (6, Difficulty::Hard, 200, 10, 100, 0),
        (9, Difficulty::Medium, 20, 20, 10, 0),
    ] {
        let opts = SudokuOptions {
            train,
            test,
            aug,
            size,
            difficulty,
            seed: 3,
            ..SudokuOptions::new(dir.path().join(format!("s{size}")))
        };
        let summary = build_sudoku(&opts).unwrap();
        println!("{summary}");
        let distinct = assert_disjoint(&opts.out);
        let n = rejected(&summary, "test split kept apart from train:");
        assert!(n >= min_rejected, "{size}x{size}: {n} rejected");
        assert!(
            summary
                .notes
                .iter()
                .any(|note| note
                    .contains(&format!("one of the {distinct} distinct training inputs"))),
            "{:?}",
            summary.notes
        );
        // The equivalence classes are reported for 4x4 and 6x6 only.
        let classes = summary
            .notes
            .iter()
            .any(|n| n.starts_with("augmentation classes"));
        assert_eq!(classes, size != 9, "{:?}", summary.notes);
    }
}

#[test]
fn maze_test_mazes_are_never_training_inputs() {
    let dir = tempfile::tempdir().unwrap();
    // Small mazes with all 8 transforms in train: some test draws are training inputs.
    let opts = MazeOptions {
        train: 300,
        test: 100,
        min_path: 6,
        aug: true,
        seed: 1,
        size: 5,
        csv_dir: None,
        allow_empty: false,
        out: dir.path().join("maze"),
    };
    let summary = build_maze(&opts).unwrap();
    println!("{summary}");
    assert_disjoint(&opts.out);
    let n = rejected(&summary, "test split kept apart from train:");
    assert!(n > 0, "{:?}", summary.notes);
}
