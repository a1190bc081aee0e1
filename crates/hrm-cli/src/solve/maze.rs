//! Solving mazes given as `# SGo` text files: read (hrm-data's errors name line and column),
//! check the model fits (a square maze of the model's side), encode as the reference's
//! `build_maze_dataset.py` does (`#` 1, ` ` 2, `S` 3, `G` 4, `o` 5), run in batches, decode
//! and check the predicted path ([`check_path`]: a simple S-to-G path over open squares, and
//! whether it is a shortest one).
//!
//! A file that already marks a path with `o` is solved from the maze without it; the marked
//! path is then reported as the expected answer. The puzzle identifier is 0, as in the
//! reference's maze datasets.

use std::path::{Path, PathBuf};

use tch::Device;

use hrm_data::maze::{check_path, encode_maze, read_maze_file, Maze, MazeVerdict, CHARSET, PATH};
use hrm_data::TaskKind;

use super::check_task;
use hrm_train::arch::ArchModel;
use hrm_train::rollout::{solve_rows, RolloutOptions, RowResult, SolveRun};
use hrm_train::{Result, TrainError};

/// A maze with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MazePuzzle {
    /// The file.
    pub source: PathBuf,
    /// The maze without path marks (the model's input).
    pub maze: Maze,
    /// The file's own path marks, when it has some (an expected answer).
    pub given: Option<Maze>,
}

/// Reads a maze text file.
///
/// # Errors
/// hrm-data's errors for unreadable files, ragged rows, characters outside `# SGo` (line and
/// column), a missing or second S or G.
pub fn read_puzzle(path: &Path) -> Result<MazePuzzle> {
    let m = read_maze_file(path)?;
    let given = m.cells().contains(&PATH).then(|| m.clone());
    Ok(MazePuzzle {
        source: path.to_path_buf(),
        maze: m.without_path(),
        given,
    })
}

/// The model's answer to one maze.
#[derive(Debug, Clone, PartialEq)]
pub struct MazeAnswer {
    /// The maze.
    pub puzzle: MazePuzzle,
    /// The predicted grid; tokens outside `# SGo` are replaced by the input's square (see
    /// `invalid_tokens`).
    pub predicted: Maze,
    /// Predicted tokens outside `# SGo` (PAD).
    pub invalid_tokens: usize,
    /// Whether the path is valid and shortest.
    pub verdict: MazeVerdict,
    /// Whether the prediction equals the file's own path marks, when it has some.
    pub matches_given: Option<bool>,
    /// Steps and Q values.
    pub row: RowResult,
    /// Wall seconds of the batch the maze ran in.
    pub batch_seconds: f64,
}

impl MazeAnswer {
    /// One machine-readable object: the predicted grid as lines, the verdict, the steps and
    /// per-step Q probabilities.
    pub fn to_json(&self) -> serde_json::Value {
        let lines: Vec<String> = self.predicted.to_text().lines().map(String::from).collect();
        serde_json::json!({
            "task": "maze",
            "source": self.puzzle.source.display().to_string(),
            "prediction": lines,
            "valid_path": self.verdict.valid_path,
            "shortest": self.verdict.shortest,
            "path_length": self.verdict.length,
            "optimal_length": self.verdict.optimal_length,
            "matches_given": self.matches_given,
            "invalid_tokens": self.invalid_tokens,
            "steps": self.row.halt_step,
            "learned_halt_step": self.row.learned_halt_step,
            "q_halt": self.row.q_halt_probs(),
            "q_continue": self.row.q_continue_probs(),
            "batch_ms": self.batch_seconds * 1e3,
        })
    }
}

/// Decodes predicted tokens leniently: tokens 1-5 are `# SGo`; anything else takes the input's
/// square. Returns the grid and the number of replaced tokens.
///
/// # Errors
/// [`TrainError::Shape`] when `tokens` does not have one token per square.
pub fn decode_lenient(tokens: &[i32], input: &Maze) -> Result<(Maze, usize)> {
    if tokens.len() != input.cells().len() {
        return Err(TrainError::Shape(format!(
            "{} predicted tokens for a {}x{} maze",
            tokens.len(),
            input.height(),
            input.width()
        )));
    }
    let set = CHARSET.as_bytes();
    let mut invalid = 0;
    let cells = tokens
        .iter()
        .zip(input.cells())
        .map(|(&t, &c)| match t {
            1..=5 => set[t as usize - 1],
            _ => {
                invalid += 1;
                c
            }
        })
        .collect();
    Ok((Maze::new(input.height(), input.width(), cells)?, invalid))
}

/// The model input of mazes: `[n * S]` tokens.
///
/// # Errors
/// [`TrainError::Config`] when the model was not trained on mazes of this side (naming the
/// file).
pub fn encode_mazes(model: &ArchModel, puzzles: &[MazePuzzle]) -> Result<Vec<i32>> {
    let dims = model.dims();
    let mut inputs = Vec::new();
    for p in puzzles {
        let (h, w) = (p.maze.height(), p.maze.width());
        let fits = if h == w {
            check_task(&dims, TaskKind::Maze { side: h })
        } else {
            Err(TrainError::Config {
                key: "seq_len".into(),
                reason: format!("the maze is {h}x{w}; models are trained on square mazes"),
            })
        };
        fits.map_err(|e| match e {
            TrainError::Config { key, reason } => TrainError::Config {
                key,
                reason: format!("{}: {reason}", p.source.display()),
            },
            other => other,
        })?;
        inputs.extend(encode_maze(&p.maze));
    }
    Ok(inputs)
}

/// Solves mazes with at most `batch_size` computed together.
///
/// # Errors
/// As [`encode_mazes`], and the errors of [`solve_rows`].
pub fn solve_mazes(
    model: &ArchModel,
    puzzles: &[MazePuzzle],
    batch_size: usize,
    opts: &RolloutOptions,
    device: Device,
) -> Result<(Vec<MazeAnswer>, SolveRun)> {
    let inputs = encode_mazes(model, puzzles)?;
    let ids = vec![0; puzzles.len()];
    let run = solve_rows(model, &inputs, &ids, batch_size, opts, device)?;
    let mut answers = Vec::with_capacity(puzzles.len());
    for (i, (p, row)) in puzzles.iter().zip(&run.rows).enumerate() {
        let (predicted, invalid_tokens) = decode_lenient(&row.prediction, &p.maze)?;
        answers.push(MazeAnswer {
            verdict: check_path(&p.maze, &predicted),
            matches_given: p.given.as_ref().map(|g| *g == predicted),
            puzzle: p.clone(),
            predicted,
            invalid_tokens,
            row: row.clone(),
            batch_seconds: run.batch_seconds[run.batch_of(i)],
        });
    }
    Ok((answers, run))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_decoding_keeps_the_input_square() {
        let m = hrm_data::maze::parse_maze("#S#\n# G\n", Path::new("m")).expect("maze");
        let mut t = encode_maze(&m);
        t[4] = 5; // the open square becomes path
        t[0] = 0; // PAD where the wall is
        let (p, invalid) = decode_lenient(&t, &m).expect("decode");
        assert_eq!(invalid, 1);
        assert_eq!(p.to_line(), "#S##oG");
        assert!(check_path(&m, &p).valid_path);
    }
}
