//! A dataset written by hrm-data loads in NumPy the way the reference's `puzzle_dataset.py`
//! loads it (`np.load(..., mmap_mode="r")`, the metadata fields, the index arrays), with the
//! same meaning as hrm-data gives it.
//!
//! Needs a Python with NumPy: `$HRM_PYTHON`, else `python3`. Without one the test prints that it
//! was skipped (it cannot check anything then) and returns.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use hrm_data::arc::{build_arc, ArcOptions};
use hrm_data::sudoku::{build_sudoku, Difficulty, SudokuOptions};
use hrm_data::Dataset;

/// Loads a dataset like the reference does and prints what it finds as JSON.
const SCRIPT: &str = r#"
import json, os, sys
import numpy as np
root = sys.argv[1]
out = {"identifiers": json.load(open(os.path.join(root, "identifiers.json")))[:3]}
for split in ("train", "test"):
    meta = json.load(open(os.path.join(root, split, "dataset.json")))
    for key, kind in [("pad_id", int), ("blank_identifier_id", int), ("vocab_size", int), ("seq_len", int),
                      ("num_puzzle_identifiers", int), ("total_groups", int), ("mean_puzzle_examples", float), ("sets", list)]:
        assert isinstance(meta[key], kind), (key, meta[key])
    assert meta["ignore_label_id"] is None or isinstance(meta["ignore_label_id"], int)
    groups = examples = puzzles = 0
    sets = {}
    for name in meta["sets"]:
        a = {f: np.load(os.path.join(root, split, f"{name}__{f}.npy"), mmap_mode="r" if f in ("inputs", "labels") else None)
             for f in ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")}
        n, seq = a["inputs"].shape
        assert seq == meta["seq_len"] and a["labels"].shape == (n, seq)
        assert a["puzzle_indices"][0] == 0 and a["puzzle_indices"][-1] == n
        assert np.all(np.diff(a["puzzle_indices"]) >= 0) and np.all(np.diff(a["group_indices"]) > 0)
        assert a["group_indices"][-1] == a["puzzle_identifiers"].size == a["puzzle_indices"].size - 1
        assert a["puzzle_identifiers"].max(initial=0) < meta["num_puzzle_identifiers"]
        assert a["inputs"].max(initial=0) < meta["vocab_size"] and a["labels"].max(initial=0) < meta["vocab_size"]
        groups += a["group_indices"].size - 1
        puzzles += a["puzzle_identifiers"].size
        examples += n
        sets[name] = {"examples": int(n), "dtype": str(a["inputs"].dtype),
                      "first_input": a["inputs"][0].astype(np.int32).tolist() if n else [],
                      "last_label": a["labels"][-1].astype(np.int32).tolist() if n else [],
                      "identifiers": a["puzzle_identifiers"].astype(int).tolist()[:5]}
    assert groups == meta["total_groups"], (groups, meta["total_groups"])
    if puzzles:
        assert abs(examples / puzzles - meta["mean_puzzle_examples"]) < 1e-9
    out[split] = {"meta": meta, "sets": sets}
print(json.dumps(out))
"#;

fn python() -> Option<String> {
    let candidates: Vec<String> = std::env::var("HRM_PYTHON")
        .into_iter()
        .chain(["python3".to_string()])
        .collect();
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn check(py: &str, dir: &Path) {
    let out = Command::new(py)
        .arg("-c")
        .arg(SCRIPT)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "numpy could not load {}:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for split in ["train", "test"] {
        let ds = Dataset::open(dir, split).unwrap();
        let meta = serde_json::to_value(ds.metadata()).unwrap();
        assert_eq!(
            v[split]["meta"], meta,
            "{split}/dataset.json reads the same"
        );
        for set in ds.sets() {
            let py = &v[split]["sets"][set.name()];
            assert_eq!(py["examples"], set.num_examples());
            assert_eq!(py["dtype"], "uint8");
            if set.num_examples() > 0 {
                let (first, _) = set.example(0).unwrap();
                let (_, last) = set.example(set.num_examples() - 1).unwrap();
                assert_eq!(py["first_input"], serde_json::json!(first));
                assert_eq!(py["last_label"], serde_json::json!(last));
            }
            let idents: Vec<i32> = set.puzzle_identifiers().iter().take(5).copied().collect();
            assert_eq!(py["identifiers"], serde_json::json!(idents));
        }
    }
}

#[test]
fn numpy_loads_hrm_data_datasets() {
    let Some(py) = python() else {
        // Written to the real stderr (not the captured `eprintln!`), so a normal `cargo test` run
        // shows that this check did not happen.
        let _ = writeln!(std::io::stderr(), "SKIPPED numpy_loads_hrm_data_datasets: no Python with NumPy (set HRM_PYTHON); nothing was checked");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sudoku = SudokuOptions {
        train: 3,
        test: 2,
        aug: 2,
        difficulty: Difficulty::Medium,
        ..SudokuOptions::new(dir.path().join("sudoku"))
    };
    build_sudoku(&sudoku).unwrap();
    check(&py, &sudoku.out);
    let tasks = dir.path().join("tasks");
    std::fs::create_dir(&tasks).unwrap();
    std::fs::write(tasks.join("t1.json"), r#"{"train": [{"input": [[1, 2], [3, 0]], "output": [[4]]}], "test": [{"input": [[5, 6]], "output": [[7], [8]]}]}"#).unwrap();
    let arc = ArcOptions {
        from: Some(tasks),
        aug: 4,
        ..ArcOptions::new(dir.path().join("arc"))
    };
    build_arc(&arc).unwrap();
    check(&py, &arc.out);
    let _ = writeln!(
        std::io::stderr(),
        "numpy_loads_hrm_data_datasets: checked with {py}"
    );
}
