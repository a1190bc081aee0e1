//! The Sudoku dataset builder (the CSV import it uses is in `csv.rs` beside it).
//!
//! Mirrors `dataset/build_sudoku_dataset.py` (`convert_subset`, `preprocess_data`): one set
//! `all` per split; in `train` each source puzzle makes a group of `1 + aug` puzzles (the
//! original, then `aug` random augmentations), each puzzle one example, every puzzle identifier
//! 0; `test` has the source puzzles only; `seq_len` 81 (36 for 6x6, 16 for 4x4), `vocab_size`
//! 11, `identifiers.json` is `["<blank>"]`. Puzzles come from the generator ([`super::generate_puzzle`]) or from
//! `train.csv` / `test.csv` in the reference's layout (`source,question,answer,rating`), as the
//! reference reads them from the hub; `train` / `test` then subsample rows (seeded), like the
//! reference's `subsample_size`.
//!
//! What differs: every CSV row is checked (length, characters, the answer obeys the rules and
//! agrees with the givens, the puzzle has exactly one solution) and a bad row is an error naming
//! the file and line; generation and augmentation run on rayon with one seeded stream per
//! puzzle, so the output is the same byte for byte for a seed. A generated test puzzle never
//! equals a training input, original or augmented: the training inputs' fingerprints are kept
//! and a test puzzle found among them is redrawn (deterministically; the notes count them).
//! Imported CSV rows are never dropped; the notes count the test rows found among the training
//! inputs instead. For 4x4 and 6x6 boards the notes also count the test puzzles that are
//! equivalent to a training puzzle under the augmentation group ([`super::canonical_form`]).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;

use super::csv::load_csv;
use super::{
    canonical_form, check_side, encode_board_u8, extreme_min_guesses, generate_puzzle, Board,
    Difficulty, GeneratedPuzzle, SudokuAugmentation, SUDOKU_VOCAB_SIZE,
};
use crate::disjoint::{fingerprint, InputSet};
use crate::error::{DataError, Result};
use crate::format::{split_metadata, DatasetWriter, SetStats, BLANK_IDENTIFIER};
use crate::limits::{
    check_not_empty, wide, BuildEstimate, Bytes, MachineLimits, FINGERPRINT_BYTES, INDEX_BYTES,
    SET_OVERHEAD_BYTES,
};
use crate::rng::{self, domain};
use crate::summary::{stale_note, BuildSummary, SplitSummary};

/// Options of [`build_sudoku`] (the flags of `hrm data build sudoku`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SudokuOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Training puzzles (generated, or rows kept from `train.csv`; 0 keeps every row).
    pub train: usize,
    /// Test puzzles (generated, or rows kept from `test.csv`; 0 keeps every row).
    pub test: usize,
    /// Augmentations per training puzzle.
    pub aug: usize,
    /// Difficulty of generated puzzles (ignored with `csv_dir`).
    pub difficulty: Difficulty,
    /// Seed of everything random.
    pub seed: u64,
    /// A directory with the reference's `train.csv` and `test.csv` to import instead of
    /// generating.
    pub csv_dir: Option<PathBuf>,
    /// Board side: 9, or 6 (boxes of 2 rows x 3 columns) or 4 for CPU experiments.
    pub size: usize,
    /// Build even if a split comes out empty (`train` or `test` 0 when generating, a CSV
    /// without rows); otherwise that is refused.
    pub allow_empty: bool,
}

impl SudokuOptions {
    /// The defaults of `hrm data build sudoku`: 1000 train, 1000 test, 1000 augmentations,
    /// extreme, seed 0, 9x9, empty splits refused.
    pub fn new(out: impl Into<PathBuf>) -> SudokuOptions {
        SudokuOptions {
            out: out.into(),
            train: 1000,
            test: 1000,
            aug: 1000,
            difficulty: Difficulty::Extreme,
            seed: 0,
            csv_dir: None,
            size: 9,
            allow_empty: false,
        }
    }
}

/// What [`generate_split`] drew again.
#[derive(Debug, Default, Clone, Copy)]
struct Redraws {
    /// Draws equal to a puzzle already taken (this split or an earlier one).
    duplicates: usize,
    /// Draws equal to a training input, original or augmented.
    in_train: usize,
}

/// Generates `count` puzzles for one split, distinct from each other and from `seen`, and (with
/// `train_inputs`) never equal to a training input. A rejected draw `i` is replaced by a draw
/// from stream `i | retry << 32`, so the result depends on the seed only.
fn generate_split(
    opts: &SudokuOptions,
    count: usize,
    dom: u64,
    seen: &mut HashSet<Vec<u8>>,
    train_inputs: Option<&InputSet>,
) -> Result<(Vec<GeneratedPuzzle>, Redraws)> {
    let first: Vec<GeneratedPuzzle> = (0..count)
        .into_par_iter()
        .map(|i| {
            generate_puzzle(
                &mut rng::stream(opts.seed, dom, i as u64),
                opts.size,
                opts.difficulty,
            )
        })
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(count);
    let mut redraws = Redraws::default();
    for (i, mut g) in first.into_iter().enumerate() {
        let mut retry = 0u64;
        loop {
            if train_inputs.is_some_and(|t| t.contains(&encode_board_u8(&g.puzzle))) {
                redraws.in_train += 1;
            } else if seen.insert(g.puzzle.cells().to_vec()) {
                break;
            } else {
                redraws.duplicates += 1;
            }
            retry += 1;
            if retry > 10_000 {
                let what = if train_inputs.is_some() {
                    " that are not among the training inputs"
                } else {
                    ""
                };
                return Err(DataError::Generation {
                    reason: format!(
                        "could not find {count} distinct {0}x{0} {1} puzzles{what} \
                         (too few exist; ask for fewer puzzles or augmentations)",
                        opts.size, opts.difficulty
                    ),
                });
            }
            g = generate_puzzle(
                &mut rng::stream(opts.seed, dom, i as u64 | (retry << 32)),
                opts.size,
                opts.difficulty,
            )?;
        }
        out.push(g);
    }
    Ok((out, redraws))
}

/// Writes one split: each source puzzle a group of `1 + aug` one-example puzzles. With
/// `inputs_seen`, the fingerprint of every input written is added to it.
fn write_split(
    writer: &DatasetWriter,
    split: &str,
    pairs: &[(Board, Board)],
    aug: usize,
    seed: u64,
    seq_len: usize,
    mut inputs_seen: Option<&mut InputSet>,
) -> Result<SetStats> {
    let mut set = writer.set_writer(split, "all", seq_len)?;
    let collect = inputs_seen.is_some();
    for (c, chunk) in pairs.chunks(WRITE_CHUNK).enumerate() {
        let groups: Vec<(Vec<u8>, Vec<u8>, Vec<u64>)> = chunk
            .par_iter()
            .enumerate()
            .map(|(k, (puzzle, solution))| {
                let mut rng = rng::stream(seed, domain::SUDOKU_AUG, (c * WRITE_CHUNK + k) as u64);
                let mut inputs = Vec::with_capacity((1 + aug) * seq_len);
                let mut labels = Vec::with_capacity((1 + aug) * seq_len);
                inputs.extend(encode_board_u8(puzzle));
                labels.extend(encode_board_u8(solution));
                for _ in 0..aug {
                    let a = SudokuAugmentation::random(&mut rng, puzzle.size());
                    inputs.extend(encode_board_u8(&a.apply(puzzle)));
                    labels.extend(encode_board_u8(&a.apply(solution)));
                }
                let prints = if collect {
                    inputs.chunks_exact(seq_len).map(fingerprint).collect()
                } else {
                    Vec::new()
                };
                (inputs, labels, prints)
            })
            .collect();
        for (inputs, labels, prints) in groups {
            if let Some(seen) = inputs_seen.as_deref_mut() {
                prints.into_iter().for_each(|f| seen.insert_fingerprint(f));
            }
            for (i, l) in inputs
                .chunks_exact(seq_len)
                .zip(labels.chunks_exact(seq_len))
            {
                set.push_puzzle(0, i, l)?;
            }
            set.end_group();
        }
    }
    set.finish()
}

fn rating_note(split: &str, puzzles: &[GeneratedPuzzle]) -> Option<String> {
    if puzzles.is_empty() {
        return None;
    }
    let givens: Vec<usize> = puzzles.iter().map(|g| g.rating.givens).collect();
    let guesses: Vec<u64> = puzzles.iter().map(|g| g.rating.guesses).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Some(format!(
        "{split} puzzles: givens {}-{} (mean {:.1}), solver guesses {}-{} (mean {:.1}), {} needing search",
        givens.iter().min()?,
        givens.iter().max()?,
        mean(&givens.iter().map(|&g| g as f64).collect::<Vec<_>>()),
        guesses.iter().min()?,
        guesses.iter().max()?,
        mean(&guesses.iter().map(|&g| g as f64).collect::<Vec<_>>()),
        guesses.iter().filter(|&&g| g > 0).count(),
    ))
}

/// For 4x4 and 6x6 boards: how many test puzzles are equivalent under the augmentation group
/// to a training puzzle (equal canonical forms, [`canonical_form`]); `None` for 9x9 or an
/// empty split.
fn equivalence_note(train: &[Board], test: &[Board]) -> Option<String> {
    let size = train.first()?.size();
    test.first()?;
    canonical_form(&train[0])?;
    let canon = |boards: &[Board]| -> Vec<Board> {
        boards
            .par_iter()
            .map(|b| canonical_form(b).expect("4x4 or 6x6"))
            .collect()
    };
    let train_classes: HashSet<Board> = canon(train).into_iter().collect();
    let test_canon = canon(test);
    let shared = test_canon
        .iter()
        .filter(|c| train_classes.contains(c))
        .count();
    let test_classes: HashSet<&Board> = test_canon.iter().collect();
    let group = if size == 4 {
        "digits, bands, rows, stacks, columns, transpose: 3072 maps"
    } else {
        "digits, bands, rows, stacks, columns, no transpose: 2488320 maps"
    };
    Some(format!(
        "augmentation classes ({group}): {} among the {} train puzzles, {} among the {} test \
         puzzles; {shared} of {} test puzzles are equivalent to a training puzzle",
        train_classes.len(),
        train.len(),
        test_classes.len(),
        test.len(),
        test.len()
    ))
}

/// Source puzzles written per parallel chunk by [`write_split`].
const WRITE_CHUNK: usize = 64;

/// What a build of `train` and `test` source puzzles (`source` says generated or from which
/// CSV files) holds in memory and writes, estimated before anything is allocated.
fn estimate(opts: &SudokuOptions, train: usize, test: usize, source: &str) -> BuildEstimate {
    let seq = wide(opts.size * opts.size);
    // Examples per training group: the original and its augmentations.
    let per_group = Bytes::of(wide(opts.aug)).plus(Bytes::of(1u8));
    let train_examples = per_group.times(wide(train));
    let examples = train_examples.plus(Bytes::of(wide(test)));
    let sources = Bytes::of(wide(train) + wide(test));
    // Disk: a byte per token of inputs and labels, an identifier and an index per example (one
    // puzzle each), an index per group (one per source puzzle), headers and JSON.
    let disk = examples
        .times(2 * seq + 8)
        .plus(sources.times(4u8))
        .plus(Bytes::of(2 * SET_OVERHEAD_BYTES));
    // Memory: every source puzzle and its solution (generated, kept for the duplicate and
    // equivalence checks), the fingerprint of every training input, the training set's index
    // arrays, and one chunk of groups encoded in parallel.
    let memory = sources
        .times(4 * seq + 256)
        .plus(train_examples.times(FINGERPRINT_BYTES + INDEX_BYTES))
        .plus(
            per_group
                .times(wide(train.min(WRITE_CHUNK)))
                .times(2 * seq + 8),
        );
    let option = if Bytes::of(wide(test)) > train_examples {
        "test"
    } else if opts.aug >= train {
        "aug"
    } else {
        "train"
    };
    BuildEstimate {
        option,
        what: format!(
            "sudoku {0}x{0} {source}with {train} train puzzles x (1 + {1} augmentations) and \
             {test} test puzzles",
            opts.size, opts.aug
        ),
        memory: memory.get(),
        disk: disk.get(),
        largest_set: train_examples.max(Bytes::of(wide(test))).get(),
    }
}

/// Builds a Sudoku dataset in the reference's layout at `opts.out` (atomically).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use hrm_data::sudoku::{build_sudoku, Difficulty, SudokuOptions};
/// let opts = SudokuOptions { train: 3, test: 2, aug: 4, difficulty: Difficulty::Easy, size: 4,
///                            ..SudokuOptions::new(dir.path().join("sudoku")) };
/// let summary = build_sudoku(&opts).unwrap();
/// assert_eq!(summary.examples("train"), 3 * (1 + 4));
/// assert_eq!(summary.seq_len, 16);
/// let test = hrm_data::Dataset::open(&opts.out, "test").unwrap();
/// assert_eq!(test.num_examples(), 2);
/// ```
///
/// Before generating or writing anything, the build's memory and disk needs are estimated
/// and checked against the machine ([`MachineLimits::probe`]); hidden temporary directories of
/// earlier interrupted builds of `opts.out` are removed ([`BuildSummary::stale_removed`]).
///
/// # Errors
/// [`DataError::Option`] for a side other than 4, 6 or 9, or an empty split without
/// `allow_empty`; [`DataError::TooLarge`] stating the estimate and the limit when the build
/// would not fit; CSV errors as [`read_sudoku_csv`](super::read_sudoku_csv);
/// [`DataError::Generation`] if the generator gives up; I/O errors naming the file. On any
/// error nothing is left at `opts.out`.
pub fn build_sudoku(opts: &SudokuOptions) -> Result<BuildSummary> {
    let start = Instant::now();
    check_side(opts.size)?;
    if opts.csv_dir.is_none() {
        check_not_empty(
            "train",
            "with 0 train puzzles, the train split",
            opts.train,
            opts.allow_empty,
        )?;
        check_not_empty(
            "test",
            "with 0 test puzzles, the test split",
            opts.test,
            opts.allow_empty,
        )?;
    }
    let seq_len = opts.size * opts.size;
    let writer = DatasetWriter::create(&opts.out)?;
    let limits = MachineLimits::probe(writer.root());
    let mut notes = Vec::new();
    let mut stats = Vec::new();
    let task;
    // Every training input (originals and augmentations), to keep the test split apart.
    let mut train_inputs;
    // The source puzzles of each split, for the equivalence note.
    let mut sources: Vec<Vec<Board>> = Vec::new();
    if let Some(dir) = &opts.csv_dir {
        task = format!("sudoku {0}x{0} from {1}", opts.size, dir.display());
        // Both files are read (and every row checked) before anything is written, so the
        // estimate counts the rows kept.
        let mut loaded = Vec::new();
        for (split, keep, dom) in [
            ("train", opts.train, domain::SUDOKU_CSV),
            ("test", opts.test, domain::SUDOKU_CSV + 100),
        ] {
            let mut rng = rng::stream(opts.seed, dom, 0);
            let path = dir.join(format!("{split}.csv"));
            let rows = load_csv(&path, keep, opts.size, &mut rng)?;
            let what = format!("with no rows in {}, the {split} split", path.display());
            check_not_empty(split, &what, rows.len(), opts.allow_empty)?;
            let pairs: Vec<(Board, Board)> =
                rows.into_iter().map(|r| (r.puzzle, r.solution)).collect();
            loaded.push((split, pairs));
        }
        let from = format!("from {} ", dir.display());
        estimate(opts, loaded[0].1.len(), loaded[1].1.len(), &from).check(&limits)?;
        train_inputs =
            InputSet::with_capacity(loaded[0].1.len().saturating_mul(opts.aug.saturating_add(1)));
        for (split, pairs) in loaded {
            let is_train = split == "train";
            let aug = if is_train { opts.aug } else { 0 };
            let collect = is_train.then_some(&mut train_inputs);
            stats.push((
                split,
                write_split(&writer, split, &pairs, aug, opts.seed, seq_len, collect)?,
            ));
            if !is_train && !pairs.is_empty() {
                let shared = pairs
                    .iter()
                    .filter(|(p, _)| train_inputs.contains(&encode_board_u8(p)))
                    .count();
                notes.push(format!(
                    "{shared} of {} test rows are among the {} distinct training inputs \
                     (originals and augmentations); imported rows are kept, not dropped",
                    pairs.len(),
                    train_inputs.len()
                ));
            }
            sources.push(pairs.into_iter().map(|(p, _)| p).collect());
        }
        notes.push("difficulty ignored: puzzles come from the CSV files".to_string());
    } else {
        task = format!("sudoku {0}x{0} ({1})", opts.size, opts.difficulty);
        estimate(opts, opts.train, opts.test, "").check(&limits)?;
        train_inputs =
            InputSet::with_capacity(opts.train.saturating_mul(opts.aug.saturating_add(1)));
        if opts.difficulty == Difficulty::Extreme {
            match opts.size {
                4 => notes.push(
                    "4x4: singles solve every minimal puzzle, so extreme is the same as hard"
                        .to_string(),
                ),
                6 => notes.push(format!(
                    "6x6: extreme means a minimal puzzle that singles alone cannot solve (at \
                     least {} guess)",
                    extreme_min_guesses(6)
                )),
                _ => {}
            }
        }
        let mut seen = HashSet::new();
        for (split, count, dom) in [
            ("train", opts.train, domain::SUDOKU_TRAIN),
            ("test", opts.test, domain::SUDOKU_TEST),
        ] {
            let is_train = split == "train";
            let (puzzles, redraws) = generate_split(
                opts,
                count,
                dom,
                &mut seen,
                (!is_train).then_some(&train_inputs),
            )?;
            notes.extend(rating_note(split, &puzzles));
            if !is_train && count > 0 {
                notes.push(format!(
                    "test split kept apart from train: {} test draws equal to one of the {} \
                     distinct training inputs (originals and augmentations) and {} duplicate \
                     draws were redrawn; no test puzzle is a training input",
                    redraws.in_train,
                    train_inputs.len(),
                    redraws.duplicates
                ));
            } else if redraws.duplicates > 0 {
                notes.push(format!(
                    "{split} puzzles: {} duplicate draws redrawn",
                    redraws.duplicates
                ));
            }
            let pairs: Vec<(Board, Board)> = puzzles
                .into_iter()
                .map(|g| (g.puzzle, g.solution))
                .collect();
            let aug = if is_train { opts.aug } else { 0 };
            let collect = is_train.then_some(&mut train_inputs);
            stats.push((
                split,
                write_split(&writer, split, &pairs, aug, opts.seed, seq_len, collect)?,
            ));
            sources.push(pairs.into_iter().map(|(p, _)| p).collect());
        }
    }
    if let [train, test] = &sources[..] {
        notes.extend(equivalence_note(train, test));
    }
    let mut splits = Vec::new();
    for (split, s) in stats {
        writer.write_metadata(
            split,
            &split_metadata(std::slice::from_ref(&s), SUDOKU_VOCAB_SIZE, seq_len, 1),
        )?;
        splits.push(SplitSummary {
            split: split.to_string(),
            sets: vec![s],
        });
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
        vocab_size: SUDOKU_VOCAB_SIZE,
        num_puzzle_identifiers: 1,
        elapsed: start.elapsed(),
        notes,
        stale_removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Dataset;
    use crate::sudoku::fixtures::{write_csv, PUZZLE, SOLUTION};
    use crate::sudoku::{check_solution, decode_tokens, read_sudoku_csv};

    #[test]
    fn builds_from_csv_and_subsamples() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rng::stream(1, 2, 3);
        let rows: Vec<String> = (0..6)
            .map(|i| {
                let a = SudokuAugmentation::random(&mut rng, 9);
                let p = a.apply(&crate::sudoku::parse_puzzle(PUZZLE).unwrap());
                let s = a.apply(&crate::sudoku::parse_puzzle(SOLUTION).unwrap());
                format!("src{i},{},{},{i}", p.to_line(), s.to_line())
            })
            .collect();
        write_csv(dir.path(), "train.csv", &rows);
        write_csv(dir.path(), "test.csv", &rows[..2]);
        let opts = SudokuOptions {
            train: 4,
            test: 0,
            aug: 2,
            csv_dir: Some(dir.path().to_path_buf()),
            ..SudokuOptions::new(dir.path().join("out"))
        };
        let summary = build_sudoku(&opts).unwrap();
        assert_eq!(summary.examples("train"), 4 * 3);
        assert_eq!(summary.examples("test"), 2);
        let ds = Dataset::open(&opts.out, "train").unwrap();
        let set = ds.set("all").unwrap();
        assert_eq!((set.num_puzzles(), set.num_groups()), (12, 4));
        for i in 0..set.num_examples() {
            let (inp, lab) = set.example(i).unwrap();
            let p = decode_tokens(&inp, 9).unwrap();
            let s = decode_tokens(&lab, 9).unwrap();
            assert!(check_solution(&p, &s).solved());
            assert_eq!(p.unique_solution().unwrap(), s);
        }
    }

    const PUZZLE6: &str = "1.3....56......5.4.6...1.1.6.....3.2";
    const SOLUTION6: &str = "123456456123231564564231312645645312";

    #[test]
    fn six_by_six_csv_import_keeps_overlapping_test_rows_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = crate::sudoku::parse_puzzle(PUZZLE6).unwrap();
        let s = crate::sudoku::parse_puzzle(SOLUTION6).unwrap();
        let mut rng = rng::stream(2, 2, 2);
        let rows: Vec<String> = (0..4)
            .map(|i| {
                let a = SudokuAugmentation::random(&mut rng, 6);
                let (p, s) = (a.apply(&p), a.apply(&s));
                format!("src{i},{},{},{i}", p.to_line(), s.to_line())
            })
            .collect();
        write_csv(dir.path(), "train.csv", &rows[..3]);
        // One test row repeats a training row, one is new.
        write_csv(dir.path(), "test.csv", &[rows[0].clone(), rows[3].clone()]);
        let read = read_sudoku_csv(&dir.path().join("train.csv")).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(read[0].puzzle.size(), 6);
        let opts = SudokuOptions {
            train: 0,
            test: 0,
            aug: 0,
            size: 6,
            csv_dir: Some(dir.path().to_path_buf()),
            ..SudokuOptions::new(dir.path().join("out"))
        };
        let summary = build_sudoku(&opts).unwrap();
        assert_eq!((summary.seq_len, summary.examples("test")), (36, 2));
        assert!(
            summary
                .notes
                .iter()
                .any(|n| n.starts_with("1 of 2 test rows are among the 3 distinct training")),
            "{:?}",
            summary.notes
        );
        // All four rows are the same puzzle up to augmentation.
        assert!(
            summary
                .notes
                .iter()
                .any(|n| n.contains("2 of 2 test puzzles are equivalent to a training puzzle")),
            "{:?}",
            summary.notes
        );
        let ds = Dataset::open(&opts.out, "test").unwrap();
        let (inp, lab) = ds.set("all").unwrap().example(1).unwrap();
        let (p, s) = (
            decode_tokens(&inp, 6).unwrap(),
            decode_tokens(&lab, 6).unwrap(),
        );
        assert_eq!(p.unique_solution().unwrap(), s);
        // A 6x6 CSV row of the wrong length names the 6x6 length.
        write_csv(
            dir.path(),
            "bad.csv",
            &[
                rows[0].clone(),
                format!("x,{},{SOLUTION6},1", &PUZZLE6[1..]),
            ],
        );
        let err = read_sudoku_csv(&dir.path().join("bad.csv")).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("bad.csv:3: question has 35 characters, expected 36 (a 6x6 board)"),
            "{err}"
        );
        // A 9x9 build of 6x6 rows names the 9x9 length.
        let err = build_sudoku(&SudokuOptions {
            size: 9,
            ..opts.clone()
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("expected 81 (a 9x9 board)"),
            "{err}"
        );
        let err = build_sudoku(&SudokuOptions { size: 5, ..opts }).unwrap_err();
        assert_eq!(
            err.to_string(),
            "option `size`: Sudoku side must be 4, 6 or 9, not 5"
        );
    }

    #[test]
    fn failing_test_csv_leaves_no_dataset() {
        let dir = tempfile::tempdir().unwrap();
        write_csv(
            dir.path(),
            "train.csv",
            &[format!("a,{PUZZLE},{SOLUTION},1")],
        );
        write_csv(
            dir.path(),
            "test.csv",
            &[
                format!("a,{PUZZLE},{SOLUTION},1"),
                format!("b,{PUZZLE}1,{SOLUTION},1"),
            ],
        );
        let out = dir.path().join("out");
        let opts = SudokuOptions {
            train: 0,
            test: 0,
            aug: 3,
            csv_dir: Some(dir.path().to_path_buf()),
            ..SudokuOptions::new(&out)
        };
        let err = build_sudoku(&opts).unwrap_err();
        assert!(
            matches!(&err, DataError::Line { line: 3, path, .. } if path.ends_with("test.csv")),
            "{err}"
        );
        assert!(
            !out.exists(),
            "the train split was written before the failure, but nothing may remain"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "only the two CSVs remain: {names:?}");
    }
}
