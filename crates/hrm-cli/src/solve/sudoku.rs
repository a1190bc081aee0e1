//! Solving Sudoku puzzles given as strings: parse (with hrm-data's precise errors), check the
//! model fits, encode as the reference's `build_sudoku_dataset.py` does (`1` blank, `d + 1`
//! digit `d`), run in batches, decode and check the answer against the rules and the givens.
//!
//! The puzzle identifier is 0 (`<blank>`), the only one a Sudoku dataset has.

use std::path::Path;

use tch::Device;

use hrm_data::sudoku::{check_solution, encode_board, parse_puzzle, Board, SudokuVerdict};
use hrm_data::{DataError, TaskKind};

use super::{check_task, model_task};
use hrm_train::arch::ArchModel;
use hrm_train::rollout::{solve_rows, RolloutOptions, RowResult, SolveRun};
use hrm_train::{Result, TrainError};

/// A puzzle with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SudokuPuzzle {
    /// `argument`, or `FILE:LINE`.
    pub source: String,
    /// The board (0 for blanks).
    pub board: Board,
}

/// Parses a puzzle given on the command line.
///
/// # Errors
/// [`TrainError::Data`] with hrm-data's precise error: [`DataError::PuzzleLength`],
/// [`DataError::PuzzleChar`] (the 1-based position and the character) or
/// [`DataError::PuzzleConflict`] (the digit and the row, column or box).
pub fn parse_argument(text: &str) -> Result<SudokuPuzzle> {
    Ok(SudokuPuzzle {
        source: "argument".into(),
        board: parse_puzzle(text)?,
    })
}

/// Reads a file of puzzles, one per line; blank lines and lines starting with `#` are skipped.
///
/// # Errors
/// [`DataError::Io`] naming the file; [`DataError::Line`] naming the file and line with what
/// is wrong with the puzzle there (the message of [`parse_puzzle`]'s error); a file with no
/// puzzle is a [`DataError::Line`] too.
pub fn read_puzzle_file(path: &Path) -> Result<Vec<SudokuPuzzle>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let board = parse_puzzle(t).map_err(|e| DataError::line(path, line_no, e.to_string()))?;
        out.push(SudokuPuzzle {
            source: format!("{}:{line_no}", path.display()),
            board,
        });
    }
    if out.is_empty() {
        return Err(DataError::line(path, 1, "no puzzle in the file").into());
    }
    Ok(out)
}

/// The model's answer to one puzzle.
#[derive(Debug, Clone, PartialEq)]
pub struct SudokuAnswer {
    /// The puzzle.
    pub puzzle: SudokuPuzzle,
    /// The predicted board; cells whose token is not a digit are blank (see `invalid_tokens`).
    pub solution: Board,
    /// Predicted tokens that are not a digit of this board size.
    pub invalid_tokens: usize,
    /// Rules, givens, completeness.
    pub verdict: SudokuVerdict,
    /// Steps and Q values.
    pub row: RowResult,
    /// Wall seconds of the batch the puzzle ran in.
    pub batch_seconds: f64,
    /// Puzzles in that batch.
    pub batch_size: usize,
}

impl SudokuAnswer {
    /// One machine-readable object: the puzzle and solution as 81, 36 or 16 characters (`.` for
    /// a blank), the verdict, the steps and per-step Q probabilities, the batch time.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "task": "sudoku",
            "source": self.puzzle.source,
            "puzzle": self.puzzle.board.to_line(),
            "solution": self.solution.to_line(),
            "solved": self.verdict.solved(),
            "valid_rules": self.verdict.valid_rules,
            "agrees_with_givens": self.verdict.agrees_with_givens,
            "complete": self.verdict.complete,
            "invalid_tokens": self.invalid_tokens,
            "steps": self.row.halt_step,
            "learned_halt_step": self.row.learned_halt_step,
            "q_halt": self.row.q_halt_probs(),
            "q_continue": self.row.q_continue_probs(),
            "batch_ms": self.batch_seconds * 1e3,
            "batch_size": self.batch_size,
        })
    }
}

/// Decodes predicted tokens leniently: digit tokens `2..=size + 1` become digits, anything else
/// a blank. Returns the board and the number of non-digit tokens.
pub fn decode_lenient(tokens: &[i32], size: usize) -> Result<(Board, usize)> {
    let mut invalid = 0;
    let cells = tokens
        .iter()
        .map(|&t| {
            if (2..=size as i32 + 1).contains(&t) {
                (t - 1) as u8
            } else {
                invalid += 1;
                0
            }
        })
        .collect();
    Ok((Board::new(size, cells)?, invalid))
}

/// The model input of puzzles: `[n * S]` tokens and `[n]` identifiers (all 0).
///
/// # Errors
/// [`TrainError::Config`] when the model was not trained on Sudoku of the puzzles' size
/// (naming the first puzzle that does not fit).
pub fn encode_puzzles(model: &ArchModel, puzzles: &[SudokuPuzzle]) -> Result<(Vec<i32>, Vec<i32>)> {
    let dims = model.dims();
    let mut inputs = Vec::with_capacity(puzzles.len() * dims.seq_len.max(0) as usize);
    for p in puzzles {
        check_task(
            &dims,
            TaskKind::Sudoku {
                size: p.board.size(),
            },
        )
        .map_err(|e| match e {
            TrainError::Config { key, reason } => TrainError::Config {
                key,
                reason: format!("the puzzle ({}): {reason}", p.source),
            },
            other => other,
        })?;
        inputs.extend(encode_board(&p.board));
    }
    Ok((inputs, vec![0; puzzles.len()]))
}

/// Solves `puzzles` in batches of at most `batch_size`.
///
/// # Errors
/// As [`encode_puzzles`] and [`solve_rows`].
pub fn solve_sudoku(
    model: &ArchModel,
    puzzles: &[SudokuPuzzle],
    batch_size: usize,
    opts: &RolloutOptions,
    device: Device,
) -> Result<(Vec<SudokuAnswer>, SolveRun)> {
    let (inputs, ids) = encode_puzzles(model, puzzles)?;
    let run = solve_rows(model, &inputs, &ids, batch_size, opts, device)?;
    let size = match model_task(&model.dims()) {
        TaskKind::Sudoku { size } => size,
        other => {
            return Err(TrainError::Shape(format!(
                "not a Sudoku model: {}",
                other.name()
            )))
        }
    };
    let mut answers = Vec::with_capacity(puzzles.len());
    for (i, (p, row)) in puzzles.iter().zip(&run.rows).enumerate() {
        let (solution, invalid_tokens) = decode_lenient(&row.prediction, size)?;
        let batch = run.batch_of(i);
        answers.push(SudokuAnswer {
            verdict: check_solution(&p.board, &solution),
            puzzle: p.clone(),
            solution,
            invalid_tokens,
            row: row.clone(),
            batch_seconds: run.batch_seconds[batch],
            batch_size: run.batch_sizes[batch],
        });
    }
    Ok((answers, run))
}

/// Throughput of solving the same puzzles one at a time and `batch_size` at a time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Throughput {
    /// Puzzles per second with batches of one.
    pub single_per_second: f64,
    /// Puzzles solved one at a time.
    pub single_puzzles: usize,
    /// Puzzles per second with batches of `batch_size`.
    pub batched_per_second: f64,
    /// Puzzles solved in batches.
    pub batched_puzzles: usize,
    /// The batch size.
    pub batch_size: usize,
    /// Mean ACT steps per puzzle in the batched run.
    pub mean_steps: f64,
}

/// Measures [`Throughput`]: the puzzles are repeated to at least `max(single, batch_size)`;
/// one untimed warm-up batch, then the first `single` of them one by one, then all of them in
/// batches of `batch_size`.
///
/// # Errors
/// As [`solve_sudoku`]; [`TrainError::Shape`] for no puzzles.
pub fn measure_throughput(
    model: &ArchModel,
    puzzles: &[SudokuPuzzle],
    single: usize,
    batch_size: usize,
    opts: &RolloutOptions,
    device: Device,
) -> Result<Throughput> {
    if puzzles.is_empty() {
        return Err(TrainError::Shape("no puzzles to time".into()));
    }
    let opts = RolloutOptions {
        trace_rows: Vec::new(),
        ..opts.clone()
    };
    let many: Vec<SudokuPuzzle> = puzzles
        .iter()
        .cycle()
        .take(puzzles.len().max(batch_size).max(single))
        .cloned()
        .collect();
    // Warm-up: allocator, kernels, thread pools.
    solve_sudoku(
        model,
        &many[..batch_size.min(many.len())],
        batch_size,
        &opts,
        device,
    )?;
    let single_set = &many[..single.clamp(1, many.len())];
    let (_, one) = solve_sudoku(model, single_set, 1, &opts, device)?;
    let (answers, batched) = solve_sudoku(model, &many, batch_size, &opts, device)?;
    Ok(Throughput {
        single_per_second: one.rows_per_second(),
        single_puzzles: single_set.len(),
        batched_per_second: batched.rows_per_second(),
        batched_puzzles: many.len(),
        batch_size,
        mean_steps: answers.iter().map(|a| a.row.halt_step as f64).sum::<f64>()
            / answers.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_name_the_bad_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("p.txt");
        std::fs::write(&f, "# two puzzles\n1.3...1..1.....1\n\n11..............\n").expect("write");
        let err = read_puzzle_file(&f).expect_err("conflict on line 4");
        let msg = err.to_string();
        assert!(msg.ends_with(":4: digit 1 appears twice in row 1"), "{msg}");
        std::fs::write(&f, "1.3...1..1.....1\n").expect("write");
        let ok = read_puzzle_file(&f).expect("one puzzle");
        assert_eq!(ok.len(), 1);
        assert!(ok[0].source.ends_with("p.txt:1"));
    }

    #[test]
    fn lenient_decoding_blanks_non_digits() {
        let (b, invalid) =
            decode_lenient(&[2, 3, 4, 5, 0, 1, 9, 2, 2, 2, 2, 2, 2, 2, 2, 2], 4).expect("decode");
        assert_eq!(invalid, 3);
        assert_eq!(&b.cells()[..7], &[1, 2, 3, 4, 0, 0, 0]);
    }
}
