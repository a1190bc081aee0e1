//! Datasets for Hierarchical Reasoning Models (HRM) and their successor TRM: Sudoku, Maze and
//! ARC builders, augmentation, the reference's on-disk format, sampling and rendering.
//!
//! This crate mirrors the data side of the reference implementation (sapientinc/HRM:
//! `dataset/build_*_dataset.py`, `dataset/common.py`, `puzzle_dataset.py`, and TRM's
//! `evaluators/arc.py`) and writes and reads exactly its layout, so datasets move between the
//! two implementations without conversion. It builds everything offline and deterministically
//! (the same seed gives the same bytes), in parallel with rayon, and does not depend on
//! libtorch. See `docs/data-format.md` for the layout, encodings and identifier format.
//!
//! - [`format`](mod@format): `dataset.json` ([`DatasetMetadata`]), validated memory-mapped reading
//!   ([`Dataset::open`]) and atomic writing ([`DatasetWriter`]); [`npy`] for the arrays.
//! - [`sampler`]: [`TrainSampler`] (seeded, restorable from a [`SamplerState`]),
//!   [`EvalSampler`], [`Prefetch`], [`total_train_steps`].
//! - [`sudoku`], [`maze`], [`arc`]: puzzles, solvers, generators, augmentations, CSV and JSON
//!   import, the builders ([`build_sudoku`], [`build_maze`], [`build_arc`]) and what
//!   `hrm solve` and the evaluator need.
//! - [`limits`]: what the machine can hold; every builder estimates its memory and disk needs
//!   from its options and refuses ([`DataError::TooLarge`]) before allocating anything.
//! - [`dihedral`]: the 8 symmetries of the square shared by mazes and ARC.
//! - [`text`]: terminal views of examples and [`TaskKind`] (what a dataset's tokens encode).
//! - `render` (feature `render`, on by default): an RGB `Canvas` with a bitmap font and PNG
//!   output, puzzle pictures; `show` for `hrm data show`. Turn the feature off
//!   (`default-features = false`) to build without drawing and without the `png` crate.
//!
//! Build a small dataset, open it and draw batches:
//!
//! ```
//! use hrm_data::sudoku::{build_sudoku, Difficulty, SudokuOptions};
//! use hrm_data::{Dataset, EvalSampler, TrainSampler, IGNORE_LABEL_ID};
//!
//! let dir = tempfile::tempdir()?;
//! let opts = SudokuOptions { train: 4, test: 3, aug: 7, difficulty: Difficulty::Medium, size: 4,
//!                            ..SudokuOptions::new(dir.path().join("sudoku-4x4")) };
//! let summary = build_sudoku(&opts)?;
//! assert_eq!(summary.examples("train"), 4 * (1 + 7));
//!
//! let train = Dataset::open(&opts.out, "train")?;
//! assert_eq!(train.metadata().seq_len, 16);
//! assert_eq!(train.metadata().vocab_size, 11);
//! // One puzzle per group per epoch: 4 groups fill one batch of 4, every epoch.
//! let batch = TrainSampler::new(&train, 4, 0)?.next().unwrap();
//! assert_eq!(batch.inputs.dim(), (4, 16));
//! assert!(batch.labels.iter().all(|&l| (2..=5).contains(&l))); // digits 1-4, no ignored cells
//!
//! let test = Dataset::open(&opts.out, "test")?;
//! let batches: Vec<_> = EvalSampler::new(&test, 2)?.collect();
//! assert_eq!(batches.len(), 2);
//! assert_eq!(batches[1].effective_batch_size, 1); // the last batch is padded
//! assert!(batches[1].labels.row(1).iter().all(|&l| l == IGNORE_LABEL_ID));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod arc;
pub mod atomic;
mod csv;
pub mod dihedral;
mod disjoint;
pub mod error;
pub mod format;
pub mod limits;
pub mod maze;
pub mod npy;
#[cfg(feature = "render")]
pub mod render;
pub mod rng;
pub mod sampler;
#[cfg(feature = "render")]
pub mod show;
pub mod sudoku;
pub mod summary;
pub mod text;

pub use arc::{build_arc, parse_identifier, ArcOptions, ArcSets, Augmentation, Grid};
pub use dihedral::Dihedral;
pub use error::{DataError, Result};
pub use format::{
    read_identifiers, read_metadata, Dataset, DatasetMetadata, DatasetWriter, PuzzleSet, SetWriter,
    Validation,
};
pub use maze::{build_maze, MazeOptions};
#[cfg(feature = "render")]
pub use render::{render_example, Canvas, Rgb};
pub use sampler::{
    total_train_steps, Batch, EvalSampler, Prefetch, SamplerState, TrainSampler, IGNORE_LABEL_ID,
};
#[cfg(feature = "render")]
pub use show::{show_example, ShowOptions, ShowReport};
pub use sudoku::{build_sudoku, Difficulty, SudokuOptions};
pub use summary::BuildSummary;
pub use text::{format_grid, TaskKind};
