//! The one error type of hrm-data.
//!
//! Every variant carries the facts a user needs to fix the input: the file, the field or line,
//! the task id, and what was expected against what was found. There is no reference
//! counterpart: the reference's builders stop on a bare `assert`.

use std::path::{Path, PathBuf};

use crate::limits::{bytes_text, Resource};

/// Everything that can go wrong while reading, validating, building or sampling a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    // ---- Files ----
    /// An I/O error on a named file or directory. (The underlying error is part of the message,
    /// not a separate `source()`, so error chains print it once.)
    #[error("{path}: {error}")]
    Io {
        /// The file or directory being read or written.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// An I/O error where no single path applies (a pipe, a thread).
    #[error(transparent)]
    IoOther(#[from] std::io::Error),
    /// A JSON file that does not parse, or does not have the expected structure.
    #[error("{path}: invalid JSON: {error}")]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The parser's error, with line and column.
        error: serde_json::Error,
    },
    /// A JSON error where no file is involved (serialising to memory).
    #[error(transparent)]
    JsonOther(#[from] serde_json::Error),
    /// A `.npy` file whose header or size cannot be used.
    #[error("{path}: invalid .npy file: {reason}")]
    Npy {
        /// The `.npy` file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The destination of a build exists and does not look like a dataset, so it is not replaced.
    #[error("{path}: exists and is not an hrm dataset (no identifiers.json or */dataset.json); refusing to replace it")]
    DestinationNotDataset {
        /// The destination directory.
        path: PathBuf,
    },

    // ---- Dataset format ----
    /// An array or metadata field that disagrees with the rest of the dataset.
    #[error("{path}: field `{field}`: expected {expected}, found {found}")]
    Field {
        /// The file holding the field (`dataset.json` or a `.npy` file).
        path: PathBuf,
        /// The metadata field or array name, e.g. `seq_len` or `puzzle_indices`.
        field: String,
        /// What the rest of the dataset requires.
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// A set name that is not in the dataset.
    #[error("dataset {dir} split `{split}`: no set named `{set}` (sets: {available:?})")]
    UnknownSet {
        /// The dataset directory.
        dir: PathBuf,
        /// The split.
        split: String,
        /// The set asked for.
        set: String,
        /// The sets the split has.
        available: Vec<String>,
    },
    /// An example, puzzle or row index past the end.
    #[error("{what} index {index} out of range (there are {len})")]
    IndexOutOfRange {
        /// What is indexed (`example of set all`, `prediction row`).
        what: String,
        /// The index asked for.
        index: usize,
        /// How many there are.
        len: usize,
    },

    // ---- Input files (CSV, JSON tasks, text grids) ----
    /// A CSV or text file line that cannot be used.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// A character outside the alphabet in a text grid.
    #[error("{path}:{line}:{column}: {reason}")]
    Char {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong there.
        reason: String,
    },
    /// An ARC task that is invalid.
    #[error("{path}: task `{task}`: {reason}")]
    Task {
        /// The file the task came from.
        path: PathBuf,
        /// The task id.
        task: String,
        /// What is wrong (grid size, colour, ragged rows, missing solution).
        reason: String,
    },

    // ---- Puzzles given as strings (hrm solve) ----
    /// A puzzle string of the wrong length.
    #[error("puzzle has {found} cells, expected {expected}")]
    PuzzleLength {
        /// Accepted lengths, e.g. `81 (9x9) or 16 (4x4)`.
        expected: String,
        /// Cells found (after removing whitespace).
        found: usize,
    },
    /// A puzzle character outside the alphabet.
    #[error(
        "puzzle character {found:?} at position {position} (1-based) is not one of {alphabet}"
    )]
    PuzzleChar {
        /// 1-based position among the cells.
        position: usize,
        /// The character.
        found: char,
        /// The accepted characters.
        alphabet: String,
    },
    /// A digit repeated in a row, column or box of a Sudoku.
    #[error("digit {digit} appears twice in {unit}")]
    PuzzleConflict {
        /// The digit.
        digit: u8,
        /// The unit, e.g. `row 3` or `box 5` (1-based).
        unit: String,
    },
    /// A model token that is not part of the task's vocabulary.
    #[error("token {token} at position {position} (0-based) is not one of {expected}")]
    Token {
        /// 0-based position in the sequence.
        position: usize,
        /// The token.
        token: i64,
        /// The accepted tokens.
        expected: String,
    },
    /// A Sudoku with no solution or more than one.
    #[error("puzzle has {solutions} solutions, expected exactly 1")]
    NotUnique {
        /// `0`, or `2` standing for "two or more".
        solutions: usize,
    },

    // ---- Options and sampling ----
    /// A builder or sampler option that cannot work.
    #[error("option `{option}`: {reason}")]
    Option {
        /// The option name, as on the command line.
        option: &'static str,
        /// Why it cannot work.
        reason: String,
    },
    /// A build that would need more memory or disk space than the machine has, refused before
    /// anything is allocated or written.
    #[error(
        "option `{option}`: {what} would need about {} of {resource}, more than the {} \
         {limit_source}; ask for less",
        bytes_text(*needed),
        bytes_text(*limit)
    )]
    TooLarge {
        /// The option most responsible, as on the command line (`aug`, `train`, `size`).
        option: &'static str,
        /// What was asked for, in words.
        what: String,
        /// Memory or disk space.
        resource: Resource,
        /// The estimated bytes.
        needed: u64,
        /// The bytes the machine has.
        limit: u64,
        /// Where the limit comes from (`available now (MemAvailable in /proc/meminfo)`).
        limit_source: String,
    },
    /// A generator that could not produce what was asked within its attempt budget.
    #[error("generation failed: {reason}")]
    Generation {
        /// What could not be generated.
        reason: String,
    },
}

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl AsRef<Path>, error: std::io::Error) -> Self {
        DataError::Io {
            path: path.as_ref().to_path_buf(),
            error,
        }
    }

    /// Wraps a JSON error with the file it concerns.
    pub fn json(path: impl AsRef<Path>, error: serde_json::Error) -> Self {
        DataError::Json {
            path: path.as_ref().to_path_buf(),
            error,
        }
    }

    /// A field mismatch in `path`.
    pub fn field(
        path: impl AsRef<Path>,
        field: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        DataError::Field {
            path: path.as_ref().to_path_buf(),
            field: field.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// A bad line in `path` (1-based `line`).
    pub fn line(path: impl AsRef<Path>, line: usize, reason: impl Into<String>) -> Self {
        DataError::Line {
            path: path.as_ref().to_path_buf(),
            line,
            reason: reason.into(),
        }
    }

    /// An invalid ARC task.
    pub fn task(
        path: impl AsRef<Path>,
        task: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        DataError::Task {
            path: path.as_ref().to_path_buf(),
            task: task.into(),
            reason: reason.into(),
        }
    }

    /// An option that cannot work.
    pub fn option(option: &'static str, reason: impl Into<String>) -> Self {
        DataError::Option {
            option,
            reason: reason.into(),
        }
    }
}

/// `Result` with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;
