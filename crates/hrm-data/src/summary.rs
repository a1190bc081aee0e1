//! What a builder reports: counts per split and set, the encoding, the time taken, notes.
//!
//! The reference prints progress bars and a puzzle count (`build_arc_dataset.py`'s
//! "Total puzzles"); this is the structured equivalent the `hrm data build` command prints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::format::SetStats;

/// Counts of one split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitSummary {
    /// `train` or `test`.
    pub split: String,
    /// Each set's counts.
    pub sets: Vec<SetStats>,
}

/// The result of a dataset build.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildSummary {
    /// Where the dataset was written.
    pub out: PathBuf,
    /// What was built, e.g. `sudoku 9x9 (extreme)`.
    pub task: String,
    /// Per split counts.
    pub splits: Vec<SplitSummary>,
    /// Tokens per example.
    pub seq_len: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Puzzle identifiers, the blank one included.
    pub num_puzzle_identifiers: usize,
    /// Wall-clock time of the build.
    pub elapsed: Duration,
    /// Anything worth knowing: ratings, augmentation shortfalls, substitutions, stale
    /// temporary directories removed.
    pub notes: Vec<String>,
    /// Hidden temporary directories of earlier, interrupted builds of the same destination
    /// that this build removed (see [`crate::DatasetWriter::create`]).
    pub stale_removed: Vec<PathBuf>,
}

impl BuildSummary {
    /// Examples of `split`, summed over its sets.
    pub fn examples(&self, split: &str) -> usize {
        self.splits
            .iter()
            .filter(|s| s.split == split)
            .flat_map(|s| &s.sets)
            .map(|s| s.examples)
            .sum()
    }
}

/// The note saying which stale temporary directories a build removed; `None` if none.
pub(crate) fn stale_note(removed: &[PathBuf]) -> Option<String> {
    if removed.is_empty() {
        return None;
    }
    let names: Vec<String> = removed
        .iter()
        .map(|p| {
            p.file_name()
                .map(Path::new)
                .unwrap_or(p)
                .display()
                .to_string()
        })
        .collect();
    Some(format!(
        "removed {} stale temporary director{} of earlier interrupted builds: {}",
        removed.len(),
        if removed.len() == 1 { "y" } else { "ies" },
        names.join(", ")
    ))
}

impl std::fmt::Display for BuildSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "built {} in {}", self.task, self.out.display())?;
        for split in &self.splits {
            for set in &split.sets {
                writeln!(
                    f,
                    "  {:5} {:>8}: {:>10} examples, {:>9} puzzles, {:>7} groups",
                    split.split, set.name, set.examples, set.puzzles, set.groups
                )?;
            }
        }
        writeln!(
            f,
            "  seq_len {}, vocab_size {}, puzzle identifiers {}",
            self.seq_len, self.vocab_size, self.num_puzzle_identifiers
        )?;
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        write!(f, "  time {:.2} s", self.elapsed.as_secs_f64())
    }
}
