//! The on-disk dataset format: `dataset.json`, `<set>__<field>.npy`, `identifiers.json`.
//!
//! Mirrors the reference's `PuzzleDatasetMetadata` (`dataset/common.py`), the loader in
//! `puzzle_dataset.py` (`PuzzleDataset._load_metadata`, `_lazy_load_dataset`) and the writing
//! code at the end of each `dataset/build_*_dataset.py`. The layout is
//!
//! ```text
//! DIR/identifiers.json                     ["<blank>", "007bbfb7", ...]
//! DIR/test_puzzles.json                    (ARC only) the test tasks with their solutions
//! DIR/{train,test}/dataset.json            DatasetMetadata
//! DIR/{train,test}/<set>__inputs.npy       [N, seq_len] tokens (u8 as written by the reference)
//! DIR/{train,test}/<set>__labels.npy       [N, seq_len] tokens, ignore_label_id where no loss
//! DIR/{train,test}/<set>__puzzle_identifiers.npy  [P] i32, the identifier of each puzzle
//! DIR/{train,test}/<set>__puzzle_indices.npy      [P + 1] i32, first example of each puzzle
//! DIR/{train,test}/<set>__group_indices.npy       [G + 1] i32, first puzzle of each group
//! ```
//!
//! What differs: the reference trusts its files; [`Dataset::open`] validates every array
//! against the metadata and names the file and field of any mismatch. [`DatasetWriter`] writes
//! into a temporary sibling directory and renames it into place only when everything is written,
//! so a failed build leaves nothing at the destination. The metadata gains TRM's `total_puzzles`
//!
//! The code is cut by job: `read.rs` opens and validates a split ([`Dataset`]), `write.rs`
//! writes one atomically ([`DatasetWriter`], [`SetWriter`]) and `pyjson.rs` holds the
//! Python-style JSON writer ([`to_python_json`]).

mod pyjson;
mod read;
mod write;

pub use pyjson::to_python_json;
pub use read::{read_identifiers, read_metadata, Dataset, PuzzleSet, Validation};
pub use write::{split_metadata, DatasetWriter, SetStats, SetWriter};

use serde::{Deserialize, Serialize};

/// The five arrays of a set, in the reference's naming (`<set>__<field>.npy`).
pub const FIELDS: [&str; 5] = [
    "inputs",
    "labels",
    "puzzle_identifiers",
    "puzzle_indices",
    "group_indices",
];

/// The name of identifier 0, the padding identifier, in `identifiers.json`.
pub const BLANK_IDENTIFIER: &str = "<blank>";

/// `dataset.json`: the reference's `PuzzleDatasetMetadata`, one per split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetMetadata {
    /// Token used to pad inputs (0 in every reference dataset).
    pub pad_id: i32,
    /// Label value that carries no loss; the samplers map it to -100. `None`: none.
    pub ignore_label_id: Option<i32>,
    /// Puzzle identifier of padding rows (0, named `<blank>` in `identifiers.json`).
    pub blank_identifier_id: i32,
    /// Number of distinct tokens; every input and label is below it.
    pub vocab_size: usize,
    /// Tokens per example.
    pub seq_len: usize,
    /// Number of puzzle identifiers, including the blank one.
    pub num_puzzle_identifiers: usize,
    /// Groups summed over the split's sets.
    pub total_groups: usize,
    /// Examples per puzzle, averaged over the split's puzzles.
    pub mean_puzzle_examples: f64,
    /// Puzzles summed over the split's sets (TRM's addition; absent in HRM datasets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_puzzles: Option<usize>,
    /// Set names; each has the five `<set>__<field>.npy` files.
    pub sets: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DataError;
    use crate::npy;
    use std::path::{Path, PathBuf};

    /// Writes a tiny two-set dataset by hand.
    fn write_tiny(dest: &Path) -> PathBuf {
        let w = DatasetWriter::create(dest).unwrap();
        let mut stats = Vec::new();
        for (set, offset) in [("a", 0u8), ("b", 1)] {
            let mut s = w.set_writer("train", set, 4).unwrap();
            s.push_puzzle(1, &[1, 2, 3, offset, 2, 2, 2, 2], &[0, 1, 1, 1, 3, 3, 3, 3])
                .unwrap();
            s.push_puzzle(2, &[3, 3, 3, 3], &[1, 0, 0, 0]).unwrap();
            s.end_group();
            s.push_puzzle(1, &[0, 0, 0, 0], &[2, 2, 2, 2]).unwrap();
            stats.push(s.finish().unwrap());
        }
        w.write_metadata("train", &split_metadata(&stats, 4, 4, 3))
            .unwrap();
        w.write_identifiers(&["<blank>".into(), "x".into(), "y".into()])
            .unwrap();
        w.commit().unwrap()
    }

    #[test]
    fn writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let dest = write_tiny(&dir.path().join("ds"));
        let ds = Dataset::open(&dest, "train").unwrap();
        let m = ds.metadata();
        assert_eq!(m.sets, vec!["a", "b"]);
        assert_eq!(m.total_groups, 4);
        assert_eq!(m.total_puzzles, Some(6));
        assert!((m.mean_puzzle_examples - 4.0 / 3.0).abs() < 1e-12);
        let b = ds.set("b").unwrap();
        assert_eq!(
            (b.num_examples(), b.num_puzzles(), b.num_groups()),
            (4, 3, 2)
        );
        assert_eq!(b.example(0).unwrap(), (vec![1, 2, 3, 1], vec![0, 1, 1, 1]));
        assert_eq!(ds.puzzle_identifier_of_example("b", 2).unwrap(), 2);
        assert_eq!(ds.puzzle_identifier_of_example("b", 3).unwrap(), 1);
        assert_eq!(b.group_indices(), &[0, 2, 3]);
        assert!(matches!(
            ds.example("b", 4),
            Err(DataError::IndexOutOfRange {
                index: 4,
                len: 4,
                ..
            })
        ));
        assert!(matches!(ds.set("c"), Err(DataError::UnknownSet { .. })));
        assert_eq!(read_identifiers(&dest).unwrap()[2], "y");
        // Python json.dump style.
        let text = std::fs::read_to_string(dest.join("train/dataset.json")).unwrap();
        assert!(text.starts_with("{\"pad_id\": 0, \"ignore_label_id\": 0, \"blank_identifier_id\": 0, \"vocab_size\": 4"), "{text}");
    }

    #[test]
    fn validation_names_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let dest = write_tiny(&dir.path().join("ds"));
        let meta_path = dest.join("train/dataset.json");
        let original = read_metadata(&meta_path).unwrap();
        let check = |edit: &dyn Fn(&mut DatasetMetadata), field: &str, file: &str| {
            let mut m = original.clone();
            edit(&mut m);
            std::fs::write(&meta_path, to_python_json(&m).unwrap()).unwrap();
            match Dataset::open(&dest, "train") {
                Err(DataError::Field { path, field: f, .. }) => {
                    assert_eq!(f, field);
                    assert!(path.ends_with(file), "{path:?} should end with {file}");
                }
                other => panic!("expected a Field error for {field}, got {other:?}"),
            }
        };
        check(&|m| m.vocab_size = 3, "inputs", "a__inputs.npy");
        check(&|m| m.seq_len = 5, "inputs", "a__inputs.npy");
        check(
            &|m| m.num_puzzle_identifiers = 2,
            "puzzle_identifiers",
            "a__puzzle_identifiers.npy",
        );
        check(&|m| m.total_groups = 5, "total_groups", "dataset.json");
        check(
            &|m| m.mean_puzzle_examples = 1.0,
            "mean_puzzle_examples",
            "dataset.json",
        );
        check(&|m| m.pad_id = 9, "pad_id", "dataset.json");
        std::fs::write(&meta_path, to_python_json(&original).unwrap()).unwrap();
        Dataset::open(&dest, "train").unwrap();

        // Labels outside the vocabulary (4 is not < vocab_size 4 and is not the ignore label).
        let labels = dest.join("train/b__labels.npy");
        npy::write_u8(
            &labels,
            &[4, 4],
            &[0, 1, 1, 1, 3, 3, 3, 3, 1, 0, 0, 4, 2, 2, 2, 2],
        )
        .unwrap();
        let err = Dataset::open(&dest, "train").unwrap_err();
        assert!(
            matches!(&err, DataError::Field { field, .. } if field == "labels"),
            "{err}"
        );
        assert!(
            err.to_string().contains("4 at example 2, position 3"),
            "{err}"
        );

        // Non-monotone puzzle indices.
        let pidx = dest.join("train/a__puzzle_indices.npy");
        npy::write_i32(&pidx, &[4], &[0, 3, 2, 4]).unwrap();
        let err = Dataset::open(&dest, "train").unwrap_err();
        assert!(
            matches!(&err, DataError::Field { field, path, .. } if field == "puzzle_indices" && path.ends_with("a__puzzle_indices.npy")),
            "{err}"
        );
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("ds");
        {
            let w = DatasetWriter::create(&dest).unwrap();
            let mut s = w.set_writer("train", "all", 2).unwrap();
            s.push_puzzle(0, &[1, 1], &[1, 1]).unwrap();
            // Dropped without commit, as on an error midway.
        }
        assert!(!dest.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temporary directory left behind"
        );
    }

    #[test]
    fn replaces_datasets_but_not_other_directories() {
        let dir = tempfile::tempdir().unwrap();
        let dest = write_tiny(&dir.path().join("ds"));
        write_tiny(&dest);
        Dataset::open(&dest, "train").unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let other = dir.path().join("home");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("notes.txt"), "keep").unwrap();
        assert!(matches!(
            DatasetWriter::create(&other),
            Err(DataError::DestinationNotDataset { .. })
        ));
    }
}
