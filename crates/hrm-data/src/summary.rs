//! What a builder reports: counts per split and set, the encoding, the time taken, notes.
//!
//! The reference prints progress bars and a puzzle count (`build_arc_dataset.py`'s
//! "Total puzzles"); this is the structured equivalent the `hrm data build` command prints.

use std::path::PathBuf;
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
    /// Anything worth knowing: ratings, augmentation shortfalls, substitutions.
    pub notes: Vec<String>,
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
