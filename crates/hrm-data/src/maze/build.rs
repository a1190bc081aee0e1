//! The maze dataset builder: generated or imported mazes, optional dihedral augmentation of the
//! training split, a test split kept apart from the training inputs, written atomically.
//!
//! Mirrors `dataset/build_maze_dataset.py` (`convert_subset`, the `aug` option): one set `all`
//! per split, every puzzle identifier 0, each maze one puzzle and one group (with `aug`, a group
//! of its 8 dihedral transforms, in transform-id order, for the training split). What differs
//! is described in the [module documentation](super).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;

use super::{
    encode_u8, generate_maze, read_maze_csv, GeneratedMaze, Maze, MazeCsvRow, MAZE_VOCAB_SIZE,
};
use crate::dihedral::Dihedral;
use crate::disjoint::{fingerprint, InputSet};
use crate::error::{DataError, Result};
use crate::format::{split_metadata, DatasetWriter, SetStats, BLANK_IDENTIFIER};
use crate::rng::{self, domain, DataRng};
use crate::summary::{BuildSummary, SplitSummary};

/// Options of [`build_maze`] (the flags of `hrm data build maze`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MazeOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Training mazes (generated, or rows kept from `train.csv`; 0 keeps every row).
    pub train: usize,
    /// Test mazes (generated, or rows kept from `test.csv`; 0 keeps every row).
    pub test: usize,
    /// Shortest path length, in steps, of generated mazes at least.
    pub min_path: usize,
    /// Add the 8 dihedral transforms of each training maze (the reference's `aug`).
    pub aug: bool,
    /// Seed of everything random.
    pub seed: u64,
    /// Side of generated mazes.
    pub size: usize,
    /// A directory with the reference's `train.csv` and `test.csv` to import instead.
    pub csv_dir: Option<PathBuf>,
}

impl MazeOptions {
    /// The defaults of `hrm data build maze`: 1000 train, 1000 test, min path 110, no
    /// augmentation, seed 0, 30x30.
    pub fn new(out: impl Into<PathBuf>) -> MazeOptions {
        MazeOptions {
            out: out.into(),
            train: 1000,
            test: 1000,
            min_path: 110,
            aug: false,
            seed: 0,
            size: 30,
            csv_dir: None,
        }
    }
}

/// Writes one split's mazes, each a group of 1 or 8 (dihedral) one-example puzzles. With
/// `inputs_seen`, the fingerprint of every input written is added to it.
fn write_maze_split(
    writer: &DatasetWriter,
    split: &str,
    pairs: &[(Maze, Maze)],
    aug: bool,
    mut inputs_seen: Option<&mut InputSet>,
) -> Result<SetStats> {
    let seq_len = pairs.first().map(|(m, _)| m.cells.len()).unwrap_or(0);
    let mut set = writer.set_writer(split, "all", seq_len.max(1))?;
    let transforms: &[Dihedral] = if aug {
        &Dihedral::ALL
    } else {
        &Dihedral::ALL[..1]
    };
    for (maze, solution) in pairs {
        for &t in transforms {
            let input = encode_u8(&maze.transform(t));
            if let Some(seen) = inputs_seen.as_deref_mut() {
                seen.insert_fingerprint(fingerprint(&input));
            }
            set.push_puzzle(0, &input, &encode_u8(&solution.transform(t)))?;
        }
        set.end_group();
    }
    set.finish()
}

fn take_rows(rows: Vec<MazeCsvRow>, keep: usize, rng: &mut DataRng) -> Vec<MazeCsvRow> {
    if keep == 0 || keep >= rows.len() {
        return rows;
    }
    let chosen = rng::sample_without_replacement(rng, rows.len(), keep);
    chosen.into_iter().map(|i| rows[i].clone()).collect()
}

/// Builds a maze dataset in the reference's layout at `opts.out` (atomically).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use hrm_data::maze::{build_maze, MazeOptions};
/// let opts = MazeOptions { train: 2, test: 1, min_path: 10, size: 9, aug: true, ..MazeOptions::new(dir.path().join("maze")) };
/// let summary = build_maze(&opts).unwrap();
/// assert_eq!(summary.examples("train"), 2 * 8);
/// assert_eq!(summary.seq_len, 81);
/// ```
///
/// # Errors
/// [`DataError::Generation`] if mazes with such long paths cannot be found for the side; CSV
/// errors as [`read_maze_csv`]; I/O errors naming the file. On any error nothing is left at
/// `opts.out`.
pub fn build_maze(opts: &MazeOptions) -> Result<BuildSummary> {
    let start = Instant::now();
    let writer = DatasetWriter::create(&opts.out)?;
    let mut splits = Vec::new();
    let mut notes = Vec::new();
    let mut seq_len = opts.size * opts.size;
    let task;
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    // Every training input (with its dihedral transforms under --aug), to keep test apart.
    let mut train_inputs = InputSet::with_capacity(opts.train * if opts.aug { 8 } else { 1 });
    for (split, count) in [("train", opts.train), ("test", opts.test)] {
        let is_train = split == "train";
        let aug = opts.aug && is_train;
        let pairs: Vec<(Maze, Maze)> = if let Some(dir) = &opts.csv_dir {
            let path = dir.join(format!("{split}.csv"));
            let rows = read_maze_csv(&path)?;
            let mut rng = rng::stream(opts.seed, domain::MAZE_CSV, u64::from(split == "test"));
            let rows = take_rows(rows, count, &mut rng);
            if let Some(r) = rows.first() {
                seq_len = r.maze.cells.len();
            }
            if !is_train && !rows.is_empty() {
                let shared = rows
                    .iter()
                    .filter(|r| train_inputs.contains(&encode_u8(&r.maze)))
                    .count();
                notes.push(format!(
                    "{shared} of {} test rows are among the {} distinct training inputs{}; \
                     imported rows are kept, not dropped",
                    rows.len(),
                    train_inputs.len(),
                    if opts.aug {
                        " (with their 8 transforms)"
                    } else {
                        ""
                    }
                ));
            }
            rows.into_iter().map(|r| (r.maze, r.solution)).collect()
        } else {
            let dom = if split == "train" {
                domain::MAZE_TRAIN
            } else {
                domain::MAZE_TEST
            };
            let first: Vec<GeneratedMaze> = (0..count)
                .into_par_iter()
                .map(|i| {
                    generate_maze(
                        &mut rng::stream(opts.seed, dom, i as u64),
                        opts.size,
                        opts.min_path,
                    )
                })
                .collect::<Result<_>>()?;
            let mut mazes = Vec::with_capacity(count);
            let (mut in_train, mut duplicates) = (0usize, 0usize);
            for (i, mut g) in first.into_iter().enumerate() {
                let mut retry = 0u64;
                loop {
                    if !is_train && train_inputs.contains(&encode_u8(&g.maze)) {
                        in_train += 1;
                    } else if seen.insert(g.maze.cells.clone()) {
                        break;
                    } else {
                        duplicates += 1;
                    }
                    retry += 1;
                    if retry > 1000 {
                        return Err(DataError::Generation {
                            reason: format!(
                                "could not find {count} distinct {0}x{0} mazes{1} (too few \
                                 exist with a path of {2} steps; ask for fewer)",
                                opts.size,
                                if is_train {
                                    ""
                                } else {
                                    " that are not among the training inputs"
                                },
                                opts.min_path
                            ),
                        });
                    }
                    g = generate_maze(
                        &mut rng::stream(opts.seed, dom, i as u64 | (retry << 32)),
                        opts.size,
                        opts.min_path,
                    )?;
                }
                mazes.push(g);
            }
            if let (Some(lo), Some(hi)) = (
                mazes.iter().map(|g| g.path_length).min(),
                mazes.iter().map(|g| g.path_length).max(),
            ) {
                let mean =
                    mazes.iter().map(|g| g.path_length as f64).sum::<f64>() / mazes.len() as f64;
                notes.push(format!(
                    "{split} mazes: shortest path {lo}-{hi} steps (mean {mean:.1})"
                ));
            }
            if !is_train && count > 0 {
                notes.push(format!(
                    "test split kept apart from train: {in_train} test draws equal to one of \
                     the {} distinct training inputs{} and {duplicates} duplicate draws were \
                     redrawn; no test maze is a training input",
                    train_inputs.len(),
                    if opts.aug {
                        " (with their 8 transforms)"
                    } else {
                        ""
                    }
                ));
            } else if duplicates > 0 {
                notes.push(format!(
                    "{split} mazes: {duplicates} duplicate draws redrawn"
                ));
            }
            mazes.into_iter().map(|g| (g.maze, g.solution)).collect()
        };
        let stats = write_maze_split(
            &writer,
            split,
            &pairs,
            aug,
            is_train.then_some(&mut train_inputs),
        )?;
        writer.write_metadata(
            split,
            &split_metadata(std::slice::from_ref(&stats), MAZE_VOCAB_SIZE, seq_len, 1),
        )?;
        splits.push(SplitSummary {
            split: split.to_string(),
            sets: vec![stats],
        });
    }
    if let Some(dir) = &opts.csv_dir {
        task = format!("maze from {}", dir.display());
    } else {
        task = format!(
            "maze {0}x{0} (min path {1}{2})",
            opts.size,
            opts.min_path,
            if opts.aug {
                ", 8 dihedral augmentations"
            } else {
                ""
            }
        );
    }
    writer.write_identifiers(&[BLANK_IDENTIFIER.to_string()])?;
    let out = writer.commit()?;
    Ok(BuildSummary {
        out,
        task,
        splits,
        seq_len,
        vocab_size: MAZE_VOCAB_SIZE,
        num_puzzle_identifiers: 1,
        elapsed: start.elapsed(),
        notes,
    })
}
