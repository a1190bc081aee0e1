//! `hrm solve sudoku|maze --vote K` and several `--run`s: every puzzle is answered under K
//! views (the puzzle and K-1 random augmentations, [`hrm_train::eval::vote::draw_views`]) by
//! every model, each answer is mapped back to the puzzle's frame, and the answers are ranked by
//! votes, ties by mean `sigmoid(q_halt)` ([`hrm_train::eval::vote::vote_rows`]). The top two
//! are the two attempts, each checked by the puzzle's rules: pass@1 when the first is right,
//! pass@2 when one of the two is.

use tch::Device;

use hrm_data::maze::{check_path, Maze, MazeVerdict};
use hrm_data::sudoku::{check_solution, Board, SudokuVerdict};
use hrm_data::TaskKind;

use super::maze::{decode_lenient as decode_maze, encode_mazes, MazePuzzle};
use super::model_task;
use super::sudoku::{decode_lenient as decode_sudoku, encode_puzzles, SudokuPuzzle};
use hrm_train::arch::ArchModel;
use hrm_train::eval::vote::{draw_views, vote_rows, Ranked, VoteRun, VotedPuzzle};
use hrm_train::rollout::RolloutOptions;
use hrm_train::{Result, TrainError};

/// How many views, drawn how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoteOptions {
    /// Views per puzzle and model (the puzzle itself and `views - 1` augmentations).
    pub views: usize,
    /// Seed of the augmentation draws (puzzle `i` uses stream `i`).
    pub seed: u64,
}

/// One attempt: a ranked answer, decoded and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt<T, V> {
    /// The answer in the puzzle's frame.
    pub answer: T,
    /// Predicted tokens that were not valid squares or digits.
    pub invalid_tokens: usize,
    /// The rules' verdict.
    pub verdict: V,
    /// Views that gave this answer.
    pub votes: usize,
    /// Their mean `sigmoid(q_halt)`.
    pub mean_confidence: f64,
}

/// The vote on one puzzle.
#[derive(Debug, Clone, PartialEq)]
pub struct Voted<P, T, V> {
    /// The puzzle.
    pub puzzle: P,
    /// The top two answers (fewer when fewer are distinct), best first.
    pub attempts: Vec<Attempt<T, V>>,
    /// Distinct answers among all views.
    pub candidates: usize,
    /// Views run (per model times models).
    pub views: usize,
    /// Mean ACT steps per view.
    pub mean_steps: f64,
}

/// A voted Sudoku.
pub type SudokuVote = Voted<SudokuPuzzle, Board, SudokuVerdict>;
/// A voted maze.
pub type MazeVote = Voted<MazePuzzle, Maze, MazeVerdict>;

impl SudokuVote {
    /// Whether the first (`k = 1`) or one of the first two (`k = 2`) attempts solves it.
    pub fn pass_at(&self, k: usize) -> bool {
        self.attempts.iter().take(k).any(|a| a.verdict.solved())
    }

    /// One machine-readable object.
    pub fn to_json(&self) -> serde_json::Value {
        let attempts: Vec<serde_json::Value> = self
            .attempts
            .iter()
            .map(|a| {
                serde_json::json!({
                    "solution": a.answer.to_line(),
                    "solved": a.verdict.solved(),
                    "invalid_tokens": a.invalid_tokens,
                    "votes": a.votes,
                    "mean_confidence": a.mean_confidence,
                })
            })
            .collect();
        serde_json::json!({
            "task": "sudoku",
            "source": self.puzzle.source,
            "puzzle": self.puzzle.board.to_line(),
            "views": self.views,
            "candidates": self.candidates,
            "attempts": attempts,
            "pass_at_1": self.pass_at(1),
            "pass_at_2": self.pass_at(2),
            "mean_steps": self.mean_steps,
        })
    }
}

impl MazeVote {
    /// Whether the first (`k = 1`) or one of the first two (`k = 2`) attempts is a valid
    /// shortest path.
    pub fn pass_at(&self, k: usize) -> bool {
        self.attempts.iter().take(k).any(|a| a.verdict.shortest)
    }

    /// One machine-readable object.
    pub fn to_json(&self) -> serde_json::Value {
        let attempts: Vec<serde_json::Value> = self
            .attempts
            .iter()
            .map(|a| {
                let lines: Vec<String> = a.answer.to_text().lines().map(String::from).collect();
                serde_json::json!({
                    "prediction": lines,
                    "valid_path": a.verdict.valid_path,
                    "shortest": a.verdict.shortest,
                    "invalid_tokens": a.invalid_tokens,
                    "votes": a.votes,
                    "mean_confidence": a.mean_confidence,
                })
            })
            .collect();
        serde_json::json!({
            "task": "maze",
            "source": self.puzzle.source.display().to_string(),
            "views": self.views,
            "candidates": self.candidates,
            "attempts": attempts,
            "pass_at_1": self.pass_at(1),
            "pass_at_2": self.pass_at(2),
            "mean_steps": self.mean_steps,
        })
    }
}

/// The views of every puzzle for the models' task.
fn views_for(
    model: &ArchModel,
    n: usize,
    opts: VoteOptions,
) -> Result<Vec<Vec<hrm_train::eval::vote::TokenView>>> {
    let dims = model.dims();
    (0..n)
        .map(|p| {
            draw_views(
                model_task(&dims),
                dims.vocab_size as usize,
                opts.views,
                opts.seed,
                p as u64,
            )
        })
        .collect()
}

/// The first model, or an error when there is none.
fn first<'a>(models: &[&'a ArchModel]) -> Result<&'a ArchModel> {
    models.first().copied().ok_or_else(|| TrainError::Config {
        key: "run".into(),
        reason: "voting needs at least one model".into(),
    })
}

fn attempts<T, V>(
    voted: &VotedPuzzle,
    decode: impl Fn(&Ranked<Vec<i32>>) -> Result<Attempt<T, V>>,
) -> Result<Vec<Attempt<T, V>>> {
    voted.ranked.iter().take(2).map(decode).collect()
}

/// Votes on Sudoku puzzles with every model of `models` (all trained on this board size).
///
/// # Errors
/// As [`encode_puzzles`] (for each model), [`draw_views`] and [`vote_rows`].
pub fn vote_sudoku(
    models: &[&ArchModel],
    puzzles: &[SudokuPuzzle],
    vote: VoteOptions,
    batch_size: usize,
    opts: &RolloutOptions,
    device: Device,
) -> Result<(Vec<SudokuVote>, VoteRun)> {
    let model = first(models)?;
    let (inputs, ids) = encode_puzzles(model, puzzles)?;
    for m in &models[1..] {
        encode_puzzles(m, puzzles)?;
    }
    let size = match model_task(&model.dims()) {
        TaskKind::Sudoku { size } => size,
        other => {
            return Err(TrainError::Shape(format!(
                "not a Sudoku model: {}",
                other.name()
            )))
        }
    };
    let views = views_for(model, puzzles.len(), vote)?;
    let run = vote_rows(models, &inputs, &ids, &views, batch_size, opts, device)?;
    let mut out = Vec::with_capacity(puzzles.len());
    for (p, voted) in puzzles.iter().zip(&run.puzzles) {
        let attempts = attempts(voted, |r| {
            let (solution, invalid_tokens) = decode_sudoku(&r.answer, size)?;
            Ok(Attempt {
                verdict: check_solution(&p.board, &solution),
                answer: solution,
                invalid_tokens,
                votes: r.votes,
                mean_confidence: r.mean_confidence,
            })
        })?;
        out.push(Voted {
            puzzle: p.clone(),
            attempts,
            candidates: voted.ranked.len(),
            views: voted.views,
            mean_steps: voted.mean_steps(),
        });
    }
    Ok((out, run))
}

/// Votes on mazes with every model of `models` (all trained on mazes of this side).
///
/// # Errors
/// As [`encode_mazes`] (for each model), [`draw_views`] and [`vote_rows`].
pub fn vote_mazes(
    models: &[&ArchModel],
    puzzles: &[MazePuzzle],
    vote: VoteOptions,
    batch_size: usize,
    opts: &RolloutOptions,
    device: Device,
) -> Result<(Vec<MazeVote>, VoteRun)> {
    let model = first(models)?;
    let inputs = encode_mazes(model, puzzles)?;
    for m in &models[1..] {
        encode_mazes(m, puzzles)?;
    }
    let ids = vec![0; puzzles.len()];
    let views = views_for(model, puzzles.len(), vote)?;
    let run = vote_rows(models, &inputs, &ids, &views, batch_size, opts, device)?;
    let mut out = Vec::with_capacity(puzzles.len());
    for (p, voted) in puzzles.iter().zip(&run.puzzles) {
        let attempts = attempts(voted, |r| {
            let (predicted, invalid_tokens) = decode_maze(&r.answer, &p.maze)?;
            Ok(Attempt {
                verdict: check_path(&p.maze, &predicted),
                answer: predicted,
                invalid_tokens,
                votes: r.votes,
                mean_confidence: r.mean_confidence,
            })
        })?;
        out.push(Voted {
            puzzle: p.clone(),
            attempts,
            candidates: voted.ranked.len(),
            views: voted.views,
            mean_steps: voted.mean_steps(),
        });
    }
    Ok((out, run))
}
