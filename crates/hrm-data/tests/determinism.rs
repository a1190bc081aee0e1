//! Same seed, same bytes: every builder run twice into two directories gives identical files,
//! whatever rayon's scheduling; another seed gives different data.

use std::collections::BTreeMap;
use std::path::Path;

use hrm_data::arc::{build_arc, ArcOptions};
use hrm_data::maze::{build_maze, MazeOptions};
use hrm_data::sudoku::{build_sudoku, Difficulty, SudokuOptions};

/// Every file under `dir` (relative path -> bytes).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn assert_same(a: &Path, b: &Path) {
    let (sa, sb) = (snapshot(a), snapshot(b));
    assert_eq!(sa.keys().collect::<Vec<_>>(), sb.keys().collect::<Vec<_>>());
    assert!(
        sa.len() >= 11,
        "identifiers.json plus two splits of six files: {:?}",
        sa.keys()
    );
    for (name, bytes) in &sa {
        assert!(
            bytes == &sb[name],
            "{name} differs between two builds with the same seed"
        );
    }
}

fn differs(a: &Path, b: &Path) -> bool {
    let (sa, sb) = (snapshot(a), snapshot(b));
    sa.get("train/all__inputs.npy") != sb.get("train/all__inputs.npy")
}

#[test]
fn sudoku_same_seed_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let opts = |name: &str, seed| SudokuOptions {
        train: 3,
        test: 2,
        aug: 5,
        difficulty: Difficulty::Extreme,
        seed,
        ..SudokuOptions::new(dir.path().join(name))
    };
    build_sudoku(&opts("a", 7)).unwrap();
    // A different thread count must not change the bytes.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| build_sudoku(&opts("b", 7))).unwrap();
    assert_same(&dir.path().join("a"), &dir.path().join("b"));
    build_sudoku(&opts("c", 8)).unwrap();
    assert!(differs(&dir.path().join("a"), &dir.path().join("c")));
    let small = |name: &str| SudokuOptions {
        size: 4,
        difficulty: Difficulty::Easy,
        ..opts(name, 1)
    };
    build_sudoku(&small("d")).unwrap();
    build_sudoku(&small("e")).unwrap();
    assert_same(&dir.path().join("d"), &dir.path().join("e"));
}

#[test]
fn sudoku_6x6_same_seed_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // Enough puzzles that rayon splits the work and the test split's disjointness check runs.
    let opts = |name: &str, seed, difficulty| SudokuOptions {
        train: 40,
        test: 20,
        aug: 8,
        size: 6,
        difficulty,
        seed,
        ..SudokuOptions::new(dir.path().join(name))
    };
    for (k, difficulty) in Difficulty::ALL.into_iter().enumerate() {
        let (a, b) = (format!("a{k}"), format!("b{k}"));
        let summary = build_sudoku(&opts(&a, 7, difficulty)).unwrap();
        assert_eq!(summary.seq_len, 36);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let again = pool
            .install(|| build_sudoku(&opts(&b, 7, difficulty)))
            .unwrap();
        assert_same(&dir.path().join(&a), &dir.path().join(&b));
        assert_eq!(summary.notes, again.notes);
    }
    build_sudoku(&opts("c", 8, Difficulty::Hard)).unwrap();
    assert!(differs(&dir.path().join("a2"), &dir.path().join("c")));
}

#[test]
fn maze_same_seed_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let opts = |name: &str, seed| MazeOptions {
        train: 3,
        test: 2,
        min_path: 20,
        aug: true,
        seed,
        size: 12,
        csv_dir: None,
        allow_empty: false,
        out: dir.path().join(name),
    };
    build_maze(&opts("a", 3)).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| build_maze(&opts("b", 3))).unwrap();
    assert_same(&dir.path().join("a"), &dir.path().join("b"));
    build_maze(&opts("c", 4)).unwrap();
    assert!(differs(&dir.path().join("a"), &dir.path().join("c")));
}

#[test]
fn arc_same_seed_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = dir.path().join("tasks");
    std::fs::create_dir(&tasks).unwrap();
    let mut ids = Vec::new();
    // Twenty small tasks, so rayon really splits the work.
    for k in 0..20u8 {
        let c = |d: u8| (k + d) % 10;
        let text = format!(
            r#"{{"train": [{{"input": [[{}, 0], [0, {}]], "output": [[{}]]}}, {{"input": [[{}, {}, {}]], "output": [[0], [{}]]}}], "test": [{{"input": [[{}, {}]], "output": [[{}, 0]]}}]}}"#,
            c(1),
            c(2),
            c(3),
            c(4),
            c(5),
            c(6),
            c(7),
            c(8),
            c(9),
            c(1)
        );
        let id = format!("task{k:02}");
        std::fs::write(tasks.join(format!("{id}.json")), text).unwrap();
        ids.push(id);
    }
    let opts = |name: &str, seed| ArcOptions {
        from: Some(tasks.clone()),
        aug: 8,
        seed,
        ..ArcOptions::new(dir.path().join(name))
    };
    build_arc(&opts("a", 42)).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| build_arc(&opts("b", 42))).unwrap();
    assert_same(&dir.path().join("a"), &dir.path().join("b"));
    assert!(dir.path().join("a/test_puzzles.json").is_file());
    build_arc(&opts("c", 43)).unwrap();
    assert!(differs(&dir.path().join("a"), &dir.path().join("c")));
}
