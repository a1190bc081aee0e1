//! Size options checked against what the machine can hold, empty splits refused unless asked
//! for, and the temporary directories of earlier interrupted builds removed: every refusal
//! comes before anything is allocated or written, states the estimate and the limit, and leaves
//! nothing behind.

use std::path::Path;

use hrm_data::arc::{build_arc, ArcOptions, ArcSets, MAX_ARC_AUGMENTATIONS};
use hrm_data::limits::Resource;
use hrm_data::maze::{build_maze, MazeOptions, MAX_MAZE_SIZE};
use hrm_data::sudoku::{build_sudoku, Difficulty, SudokuOptions};
use hrm_data::{DataError, Dataset};

/// Names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts a memory refusal naming `option`, whose message states the estimate and the limit.
fn assert_too_large(err: &DataError, want_option: &str) {
    match err {
        DataError::TooLarge {
            option,
            resource,
            needed,
            limit,
            limit_source,
            ..
        } => {
            assert_eq!(*option, want_option, "{err}");
            assert_eq!(*resource, Resource::Memory, "{err}");
            assert!(needed > limit, "{err}");
            let text = err.to_string();
            assert!(
                text.contains(&format!("({needed} bytes) of memory")),
                "{text}"
            );
            assert!(
                text.contains(&format!("({limit} bytes) {limit_source}")),
                "{text}"
            );
        }
        other => panic!("expected TooLarge, got {other}"),
    }
}

fn sudoku(dir: &Path) -> SudokuOptions {
    SudokuOptions {
        train: 3,
        test: 2,
        aug: 2,
        size: 4,
        difficulty: Difficulty::Easy,
        ..SudokuOptions::new(dir.join("sudoku"))
    }
}

#[test]
fn absurd_sudoku_sizes_are_refused_with_the_estimate() {
    let dir = tempfile::tempdir().unwrap();
    // The issue's case: 10^12 augmentations (about 39 TB of fingerprints alone).
    let opts = SudokuOptions {
        aug: 1_000_000_000_000,
        ..SudokuOptions::new(dir.path().join("sudoku"))
    };
    let err = build_sudoku(&opts).unwrap_err();
    assert_too_large(&err, "aug");
    assert!(
        err.to_string().starts_with(
            "option `aug`: sudoku 9x9 with 1000 train puzzles x (1 + 1000000000000 \
             augmentations) and 1000 test puzzles would need about "
        ),
        "{err}"
    );
    // Overflowing counts saturate instead of wrapping or panicking.
    let err = build_sudoku(&SudokuOptions {
        aug: usize::MAX,
        train: usize::MAX,
        ..opts.clone()
    })
    .unwrap_err();
    assert!(
        matches!(&err, DataError::TooLarge { needed, .. } if *needed == u64::MAX),
        "{err}"
    );
    assert!(err.to_string().contains("more than 16 EiB"), "{err}");
    let err = build_sudoku(&SudokuOptions {
        aug: 0,
        train: 10_000_000_000_000,
        ..opts.clone()
    })
    .unwrap_err();
    assert_too_large(&err, "train");
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn absurd_maze_sizes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("maze");
    // The issue's case: a 100000x100000 maze.
    let err = build_maze(&MazeOptions {
        size: 100_000,
        ..MazeOptions::new(&out)
    })
    .unwrap_err();
    assert!(
        matches!(&err, DataError::Option { option: "size", .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "option `size`: a maze side must be 2 to {MAX_MAZE_SIZE}, not 100000"
        )),
        "{err}"
    );
    let err = build_maze(&MazeOptions {
        size: 1,
        ..MazeOptions::new(&out)
    })
    .unwrap_err();
    assert!(err.to_string().contains("not 1 "), "{err}");
    let err = build_maze(&MazeOptions {
        size: 9,
        min_path: 81,
        ..MazeOptions::new(&out)
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "option `min-path`: a 9x9 maze has 81 squares, so no path in it has 81 steps"
    );
    let err = build_maze(&MazeOptions {
        train: 100_000_000_000_000,
        aug: true,
        ..MazeOptions::new(&out)
    })
    .unwrap_err();
    assert_too_large(&err, "train");
    assert!(
        err.to_string()
            .contains("100000000000000 train mazes x 8 transforms and 1000 test mazes"),
        "{err}"
    );
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn absurd_arc_augmentation_counts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("tasks");
    std::fs::create_dir(&from).unwrap();
    // More augmentations than distinct ones exist (the issue's 10^12 grew without end).
    let opts = ArcOptions {
        from: Some(from.clone()),
        aug: 1_000_000_000_000,
        ..ArcOptions::new(dir.path().join("arc"))
    };
    let err = build_arc(&opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "option `aug`: 1000000000000 augmentations per task cannot be distinct: a task has \
             at most {MAX_ARC_AUGMENTATIONS} (8 dihedral transforms x 9! colour permutations, \
             less the original)"
        )
    );
    // Possible per task, too much for 20000 tasks: about 3 TB of identifiers in memory.
    let task =
        r#"{"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3, 4]]}]}"#;
    let combined: Vec<String> = (0..20_000)
        .map(|i| format!("\"t{i:05}\": {task}"))
        .collect();
    let file = dir.path().join("many_challenges.json");
    std::fs::write(&file, format!("{{{}}}", combined.join(", "))).unwrap();
    let err = build_arc(&ArcOptions {
        from: Some(file.clone()),
        aug: MAX_ARC_AUGMENTATIONS,
        ..opts
    })
    .unwrap_err();
    assert_too_large(&err, "aug");
    assert!(
        err.to_string().contains(&format!(
            "20000 ARC tasks from {} with 1 + {MAX_ARC_AUGMENTATIONS} augmentations each",
            file.display()
        )),
        "{err}"
    );
    assert_eq!(entries(dir.path()), ["many_challenges.json", "tasks"]);
}

#[test]
fn empty_splits_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let base = sudoku(dir.path());
    let err = build_sudoku(&SudokuOptions {
        train: 0,
        ..base.clone()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "option `train`: with 0 train puzzles, the train split would be empty (set \
         `allow_empty` to build it anyway)"
    );
    let err = build_sudoku(&SudokuOptions {
        test: 0,
        ..base.clone()
    })
    .unwrap_err();
    assert!(
        matches!(&err, DataError::Option { option: "test", .. }),
        "{err}"
    );
    assert!(!base.out.exists());
    // Asked for: built, with an empty test split that opens.
    let summary = build_sudoku(&SudokuOptions {
        test: 0,
        allow_empty: true,
        ..base.clone()
    })
    .unwrap();
    assert_eq!(
        (summary.examples("train"), summary.examples("test")),
        (9, 0)
    );
    assert_eq!(Dataset::open(&base.out, "test").unwrap().num_examples(), 0);

    // A CSV with a header and no rows.
    let csv = dir.path().join("csv");
    std::fs::create_dir(&csv).unwrap();
    std::fs::write(csv.join("train.csv"), "source,question,answer,rating\n").unwrap();
    std::fs::write(csv.join("test.csv"), "source,question,answer,rating\n").unwrap();
    let err = build_sudoku(&SudokuOptions {
        csv_dir: Some(csv.clone()),
        ..base.clone()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "option `train`: with no rows in {}, the train split would be empty (set \
             `allow_empty` to build it anyway)",
            csv.join("train.csv").display()
        )
    );

    let maze = MazeOptions {
        train: 2,
        test: 0,
        size: 7,
        min_path: 4,
        ..MazeOptions::new(dir.path().join("maze"))
    };
    let err = build_maze(&maze).unwrap_err();
    assert_eq!(
        err.to_string(),
        "option `test`: with 0 test mazes, the test split would be empty (set `allow_empty` \
         to build it anyway)"
    );
    let err = build_maze(&MazeOptions {
        csv_dir: Some(csv.clone()),
        ..maze.clone()
    })
    .unwrap_err();
    assert!(err.to_string().contains("with no rows in"), "{err}");
    build_maze(&MazeOptions {
        allow_empty: true,
        ..maze
    })
    .unwrap();

    // ARC: no tasks at all, and a collection without test-set tasks.
    let tasks = dir.path().join("no-tasks");
    std::fs::create_dir(&tasks).unwrap();
    let arc = ArcOptions {
        from: Some(tasks.clone()),
        aug: 2,
        ..ArcOptions::new(dir.path().join("arc"))
    };
    let err = build_arc(&arc).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "option `from`: with no tasks from {}, the train split would be empty (set \
             `allow_empty` to build it anyway)",
            tasks.display()
        )
    );
    let arc_dir = dir.path().join("arc-data");
    std::fs::create_dir(&arc_dir).unwrap();
    let task = r#"{"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]], "output": [[4]]}]}"#;
    for (subset, body) in [
        ("training", format!("{{\"a1\": {task}}}")),
        ("evaluation", "{}".to_string()),
        ("concept", "{}".to_string()),
    ] {
        std::fs::write(
            arc_dir.join(format!("arc-agi_{subset}_challenges.json")),
            body,
        )
        .unwrap();
    }
    let sets = ArcOptions {
        from: None,
        sets: ArcSets::Arc1,
        arc_dir: arc_dir.clone(),
        ..arc
    };
    let err = build_arc(&sets).unwrap_err();
    assert!(
        matches!(
            &err,
            DataError::Option {
                option: "arc-dir",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("with no test-set task of arc1 in"),
        "{err}"
    );
    assert!(!sets.out.exists());
    let summary = build_arc(&ArcOptions {
        allow_empty: true,
        ..sets
    })
    .unwrap();
    assert_eq!(summary.examples("test"), 0);
}

#[test]
fn stale_temporaries_of_killed_builds_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = sudoku(dir.path());
    // No process has id 4000000000 (Linux's pid_max is at most 2^22).
    let dead = ".sudoku.tmp-4000000000-0-123";
    let dead_old = ".sudoku.old-4000000000-1-456";
    let own = format!(".sudoku.tmp-{}-999-0", std::process::id());
    let foreign = ".sudoku.tmp-not-ours";
    let other_dataset = ".other.tmp-4000000000-0-1";
    for d in [dead, dead_old, &own, foreign, other_dataset] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
        std::fs::write(dir.path().join(d).join("all__inputs.npy"), b"partial").unwrap();
    }
    let summary = build_sudoku(&opts).unwrap();
    if !Path::new("/proc/self").exists() {
        // Where it cannot be told whether the process runs, nothing is removed.
        assert!(summary.stale_removed.is_empty());
        return;
    }
    // The dead build's directory goes; the `.old-` one stays while the destination is missing
    // (it could have been the only copy of a dataset); this process's, foreign names and other
    // destinations' stay.
    assert_eq!(summary.stale_removed, vec![dir.path().join(dead)]);
    assert!(
        summary.notes.iter().any(|n| n
            == &format!(
                "removed 1 stale temporary directory of earlier interrupted builds: {dead}"
            )),
        "{:?}",
        summary.notes
    );
    assert!(summary.to_string().contains("note: removed 1 stale"));
    let mut want = vec![dead_old, own.as_str(), foreign, other_dataset, "sudoku"];
    want.sort();
    assert_eq!(entries(dir.path()), want);
    // With the destination in place, the dead commit's `.old-` directory goes too.
    let summary = build_sudoku(&opts).unwrap();
    assert_eq!(summary.stale_removed, vec![dir.path().join(dead_old)]);
    assert!(!dir.path().join(dead_old).exists());
    assert!(dir.path().join(&own).exists());
}
