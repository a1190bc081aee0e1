//! The generated Sudoku datasets the zero-argument commands train on: `hrm train` without a
//! config (6x6) and `hrm compare` without `--data` (4x4). Built on first use, reused after.
//!
//! Both use the same recipe at a different board size: 2000 minimal ("hard") training puzzles
//! with 10 augmented copies each (22 000 examples), 500 test puzzles that are none of the
//! training inputs, seed 0. The builder writes to a temporary directory and renames it at the
//! end, so an interrupted build leaves nothing that looks finished.

use std::path::Path;

use hrm_data::sudoku::{build_sudoku, Difficulty, SudokuOptions};
use hrm_data::BuildSummary;

use hrm_train::Result;

/// Board side of `hrm train`'s embedded default (`configs/default.toml`).
pub const TRAIN_DEFAULT_SIZE: usize = 6;
/// Board side of `hrm compare`'s default dataset.
pub const COMPARE_DEFAULT_SIZE: usize = 4;

/// Whether `dir` already holds both splits of a dataset.
pub fn is_built(dir: &Path) -> bool {
    dir.join("train").join("dataset.json").is_file()
        && dir.join("test").join("dataset.json").is_file()
}

/// Builds the default Sudoku dataset of side `size` in `dir` unless it [`is_built`] there;
/// returns the build's summary when it built one.
///
/// # Errors
/// When the builder fails (an unsupported size, I/O).
pub fn ensure_sudoku(dir: &Path, size: usize) -> Result<Option<BuildSummary>> {
    if is_built(dir) {
        return Ok(None);
    }
    let mut opts = SudokuOptions::new(dir);
    opts.size = size;
    opts.train = 2000;
    opts.test = 500;
    opts.aug = 10;
    opts.difficulty = Difficulty::Hard;
    opts.seed = 0;
    Ok(Some(build_sudoku(&opts)?))
}
