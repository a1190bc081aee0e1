//! Bad input gets an error naming the file, line or task, and a failed build leaves nothing at
//! its destination.

use std::path::Path;

use hrm_data::arc::{build_arc, ArcOptions};
use hrm_data::maze::{build_maze, MazeOptions};
use hrm_data::sudoku::{build_sudoku, SudokuOptions};
use hrm_data::DataError;

fn nothing_left(out: &Path) {
    assert!(
        !out.exists(),
        "{} exists after a failed build",
        out.display()
    );
    let parent = out.parent().unwrap();
    for e in std::fs::read_dir(parent).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.contains(".tmp-"),
            "temporary directory {name} left behind"
        );
    }
}

fn arc_error(task_json: &str) -> DataError {
    let dir = tempfile::tempdir().unwrap();
    let tasks = dir.path().join("tasks");
    std::fs::create_dir(&tasks).unwrap();
    std::fs::write(tasks.join("good.json"), r#"{"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]], "output": [[4]]}]}"#).unwrap();
    std::fs::write(tasks.join("bad1.json"), task_json).unwrap();
    let out = dir.path().join("arc");
    let err = build_arc(&ArcOptions {
        from: Some(tasks),
        aug: 2,
        ..ArcOptions::new(&out)
    })
    .unwrap_err();
    nothing_left(&out);
    err
}

#[test]
fn arc_errors_name_file_and_task() {
    let err =
        arc_error(r#"{"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]"#);
    assert!(
        matches!(&err, DataError::Json { path, .. } if path.ends_with("bad1.json")),
        "{err}"
    );
    let rows = vec!["[0]"; 31].join(", ");
    let err = arc_error(&format!(
        r#"{{"train": [{{"input": [{rows}], "output": [[2]]}}], "test": []}}"#
    ));
    assert!(
        err.to_string().contains(
            "bad1.json: task `bad1`: train pair 1 input: grid is 31x1, larger than 30x30"
        ),
        "{err}"
    );
    let err = arc_error(r#"{"train": [{"input": [[1, 12]], "output": [[2]]}], "test": []}"#);
    assert!(
        err.to_string().contains(
            "task `bad1`: train pair 1 input: colour 12 at row 1, column 2 is outside 0-9"
        ),
        "{err}"
    );
    let err = arc_error(r#"{"train": [{"input": [[1]], "output": [[2, 3], [4]]}], "test": []}"#);
    assert!(
        err.to_string()
            .contains("task `bad1`: train pair 1 output: ragged rows"),
        "{err}"
    );
}

#[test]
fn sudoku_csv_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = "x,53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79,534678912672195348198342567859761423426853791713924856961537284287419635345286179,1";
    let cases = [
        ("x,53..7....,534678912,1", "question has 9 characters, expected 81"),
        // One given cannot pin down a solution.
        ("x,5................................................................................,534678912672195348198342567859761423426853791713924856961537284287419635345286179,1", "ambiguous"),
    ];
    for (row, expected) in cases {
        std::fs::write(
            dir.path().join("train.csv"),
            format!("source,question,answer,rating\n{good}\n{row}\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("test.csv"),
            format!("source,question,answer,rating\n{good}\n"),
        )
        .unwrap();
        let out = dir.path().join("out");
        let err = build_sudoku(&SudokuOptions {
            train: 0,
            test: 0,
            aug: 1,
            csv_dir: Some(dir.path().to_path_buf()),
            ..SudokuOptions::new(&out)
        })
        .unwrap_err();
        match &err {
            DataError::Line { path, line, reason } => {
                assert!(path.ends_with("train.csv"));
                assert_eq!(*line, 3);
                assert!(reason.contains(expected), "{reason}");
            }
            other => panic!("expected a Line error, got {other}"),
        }
        nothing_left(&out);
    }
}

#[test]
fn maze_generation_failure_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("maze");
    // A 4x4 maze cannot have a 10-step path; the test split fails after the (empty, allowed)
    // train split was written.
    let err = build_maze(&MazeOptions {
        train: 0,
        test: 1,
        min_path: 10,
        size: 4,
        allow_empty: true,
        ..MazeOptions::new(&out)
    })
    .unwrap_err();
    assert!(matches!(err, DataError::Generation { .. }), "{err}");
    nothing_left(&out);
    let csv = dir.path().join("csv");
    std::fs::create_dir(&csv).unwrap();
    std::fs::write(
        csv.join("train.csv"),
        "source,question,answer,rating\nx,#S G,#SoG,1\n",
    )
    .unwrap();
    let err = build_maze(&MazeOptions {
        csv_dir: Some(csv),
        ..MazeOptions::new(&out)
    })
    .unwrap_err();
    assert!(matches!(&err, DataError::Line { line: 2, .. }), "{err}");
    nothing_left(&out);
}
