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
    encode_u8, generate_maze, read_maze_csv, GeneratedMaze, Maze, MazeCsvRow, MAX_MAZE_SIZE,
    MAZE_VOCAB_SIZE,
};
use crate::dihedral::Dihedral;
use crate::disjoint::{fingerprint, InputSet};
use crate::error::{DataError, Result};
use crate::format::{split_metadata, DatasetWriter, SetStats, BLANK_IDENTIFIER};
use crate::limits::{
    check_not_empty, wide, BuildEstimate, Bytes, MachineLimits, FINGERPRINT_BYTES, INDEX_BYTES,
    SET_OVERHEAD_BYTES,
};
use crate::rng::{self, domain, DataRng};
use crate::summary::{stale_note, BuildSummary, SplitSummary};

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
    /// Build even if a split comes out empty (`train` or `test` 0 when generating, a CSV
    /// without rows); otherwise that is refused.
    pub allow_empty: bool,
}

impl MazeOptions {
    /// The defaults of `hrm data build maze`: 1000 train, 1000 test, min path 110, no
    /// augmentation, seed 0, 30x30, empty splits refused.
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
            allow_empty: false,
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

/// Checks the side and the path length of generated mazes (also the side stands in for the
/// sequence length of an empty imported split).
fn check_size(opts: &MazeOptions) -> Result<()> {
    if !(2..=MAX_MAZE_SIZE).contains(&opts.size) {
        return Err(DataError::option(
            "size",
            format!(
                "a maze side must be 2 to {MAX_MAZE_SIZE}, not {0} (the model reads the maze as \
                 one sequence of side x side tokens: {MAX_MAZE_SIZE}x{MAX_MAZE_SIZE} is already \
                 {1} tokens, the reference's 30x30 is 900)",
                opts.size,
                MAX_MAZE_SIZE * MAX_MAZE_SIZE
            ),
        ));
    }
    let squares = opts.size * opts.size;
    if opts.csv_dir.is_none() && opts.min_path >= squares {
        return Err(DataError::option(
            "min-path",
            format!(
                "a {0}x{0} maze has {squares} squares, so no path in it has {1} steps",
                opts.size, opts.min_path
            ),
        ));
    }
    Ok(())
}

/// What a build of `train` and `test` mazes of `seq` squares (`source` says generated or from
/// which CSV files) holds in memory and writes, estimated before anything is allocated.
fn estimate(
    opts: &MazeOptions,
    train: usize,
    test: usize,
    seq: usize,
    source: &str,
) -> BuildEstimate {
    let seq = wide(seq);
    let per_group = if opts.aug { 8u8 } else { 1 };
    let train_examples = Bytes::of(wide(train)).times(per_group);
    let examples = train_examples.plus(Bytes::of(wide(test)));
    let mazes = Bytes::of(wide(train) + wide(test));
    // Disk: a byte per square of inputs and labels, an identifier and an index per example (one
    // puzzle each), an index per group, headers and JSON.
    let disk = examples
        .times(2 * seq + 8)
        .plus(mazes.times(4u8))
        .plus(Bytes::of(2 * SET_OVERHEAD_BYTES));
    // Memory: every maze and its solution (kept for the duplicate check and the writing), the
    // fingerprint of every training input, the training set's index arrays.
    let memory = mazes
        .times(4 * seq + 256)
        .plus(train_examples.times(FINGERPRINT_BYTES + INDEX_BYTES));
    BuildEstimate {
        option: if Bytes::of(wide(test)) > train_examples {
            "test"
        } else {
            "train"
        },
        what: format!(
            "{train} train mazes{} and {test} test mazes of {seq} squares {source}",
            if opts.aug { " x 8 transforms" } else { "" }
        ),
        memory: memory.get(),
        disk: disk.get(),
        largest_set: train_examples.max(Bytes::of(wide(test))).get(),
    }
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
/// Before generating or writing anything, the build's memory and disk needs are estimated
/// and checked against the machine ([`MachineLimits::probe`]); hidden temporary directories of
/// earlier interrupted builds of `opts.out` are removed ([`BuildSummary::stale_removed`]).
///
/// # Errors
/// [`DataError::Option`] for a side outside 2 to [`MAX_MAZE_SIZE`], a `min_path` no maze of
/// the side can have, or an empty split without `allow_empty`; [`DataError::TooLarge`] stating
/// the estimate and the limit when the build would not fit; [`DataError::Generation`] if
/// mazes with such long paths cannot be found for the side; CSV errors as [`read_maze_csv`];
/// I/O errors naming the file. On any error nothing is left at `opts.out`.
pub fn build_maze(opts: &MazeOptions) -> Result<BuildSummary> {
    let start = Instant::now();
    check_size(opts)?;
    if opts.csv_dir.is_none() {
        check_not_empty(
            "train",
            "with 0 train mazes, the train split",
            opts.train,
            opts.allow_empty,
        )?;
        check_not_empty(
            "test",
            "with 0 test mazes, the test split",
            opts.test,
            opts.allow_empty,
        )?;
    }
    let writer = DatasetWriter::create(&opts.out)?;
    let limits = MachineLimits::probe(writer.root());
    let mut seq_len = opts.size * opts.size;
    // The rows of both CSV files, read (every row checked) and subsampled before anything is
    // written, so the estimate counts the rows kept.
    let mut imported: Vec<Vec<MazeCsvRow>> = Vec::new();
    if let Some(dir) = &opts.csv_dir {
        for (split, count) in [("train", opts.train), ("test", opts.test)] {
            let path = dir.join(format!("{split}.csv"));
            let rows = read_maze_csv(&path)?;
            let mut rng = rng::stream(opts.seed, domain::MAZE_CSV, u64::from(split == "test"));
            let rows = take_rows(rows, count, &mut rng);
            let what = format!("with no rows in {}, the {split} split", path.display());
            check_not_empty(split, &what, rows.len(), opts.allow_empty)?;
            imported.push(rows);
        }
        let seq = imported
            .iter()
            .flatten()
            .map(|r| r.maze.cells.len())
            .max()
            .unwrap_or(seq_len);
        let from = format!("from {}", dir.display());
        estimate(opts, imported[0].len(), imported[1].len(), seq, &from).check(&limits)?;
    } else {
        estimate(opts, opts.train, opts.test, seq_len, "(generated)").check(&limits)?;
    }
    let mut splits = Vec::new();
    let mut notes = Vec::new();
    let task;
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    // Every training input (with its dihedral transforms under --aug), to keep test apart.
    let train_count = imported.first().map_or(opts.train, Vec::len);
    let mut train_inputs = InputSet::with_capacity(train_count * if opts.aug { 8 } else { 1 });
    for (index, (split, count)) in [("train", opts.train), ("test", opts.test)]
        .into_iter()
        .enumerate()
    {
        let is_train = split == "train";
        let aug = opts.aug && is_train;
        let pairs: Vec<(Maze, Maze)> = if opts.csv_dir.is_some() {
            let rows = std::mem::take(&mut imported[index]);
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
    let stale_removed = writer.stale_removed().to_vec();
    notes.extend(stale_note(&stale_removed));
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
        stale_removed,
    })
}
