//! Solving puzzles with a trained model: the library side of `hrm solve`.
//!
//! A trained run (loaded with [`hrm_train::checkpoint::load_model`]) becomes a tool: give it a
//! Sudoku string, a maze text file or an ARC task and it answers, checks the answer against the
//! rules ([`hrm_data::sudoku::check_solution`], [`hrm_data::maze::check_path`], the known ARC
//! solution) and says how it got there: the ACT steps it used and the Q-halt probability
//! `sigmoid(q_halt)` after each step.
//!
//! - [`hrm_train::rollout`]: the inference rollout behind everything here, with
//!   learned or maximal halting ([`HaltMode`]) and a test-time step cap, every step's Q values
//!   and, for traced rows, every step's prediction; learned halting batches continuously (a
//!   halted puzzle's slot takes the next one, [`Batching`]), all through [`solve_rows`].
//! - [`sudoku`], [`maze`], [`arc`]: puzzles in, checked answers out.
//! - [`vote`]: Sudoku and mazes answered under several augmentations and models, voted.
//! - [`trace`]: one puzzle's predictions step by step, as a PNG strip and as JSON.
//!
//! There is no reference counterpart for solving single puzzles: the reference only evaluates
//! prebuilt test splits (`evaluate` in `pretrain.py`, `arc_eval.ipynb`). Encodings, halting
//! and ARC voting are the reference's; see each module.

pub mod arc;
pub mod maze;

pub mod sudoku;
pub mod trace;
pub mod vote;

pub use hrm_train::rollout::{
    is_exact, learned_rule_halts, rollout, sigmoid, solve_rows, synchronize, token_accuracy,
    Batching, HaltMode, RolloutOptions, RowResult, SolveRun,
};
pub use trace::{Trace, TraceStep};

use hrm_core::CoreDims;
use hrm_data::arc::{ARC_SEQ_LEN, ARC_VOCAB_SIZE};
use hrm_data::maze::MAZE_VOCAB_SIZE;
use hrm_data::sudoku::SUDOKU_VOCAB_SIZE;
use hrm_data::TaskKind;

use hrm_train::{Result, TrainError};

/// What a model's token sequences encode, told from its sizes by the rule of
/// [`TaskKind::detect`] ([`TaskKind::from_sizes`]: vocabulary 11 and 81, 36 or 16 tokens:
/// Sudoku 9x9, 6x6 or 4x4; 6 and a square: maze; 12 and 900: ARC).
pub fn model_task(dims: &CoreDims) -> TaskKind {
    TaskKind::from_sizes(
        dims.vocab_size.max(0) as usize,
        dims.seq_len.max(0) as usize,
    )
}

/// Sizes of a task kind as `(seq_len, vocab_size)`, for messages.
fn kind_sizes(kind: TaskKind) -> (usize, usize) {
    match kind {
        TaskKind::Sudoku { size } => (size * size, SUDOKU_VOCAB_SIZE),
        TaskKind::Maze { side } => (side * side, MAZE_VOCAB_SIZE),
        TaskKind::Arc => (ARC_SEQ_LEN, ARC_VOCAB_SIZE),
        TaskKind::Other { seq_len } => (seq_len, 0),
    }
}

/// Checks that the model was trained on puzzles of kind `wanted` (same sequence length and
/// vocabulary), so its answers mean something.
///
/// # Errors
/// [`TrainError::Config`] naming `vocab_size` or `seq_len` and both what the model was trained
/// on and what the puzzle needs.
pub fn check_task(dims: &CoreDims, wanted: TaskKind) -> Result<()> {
    let have = model_task(dims);
    if have == wanted {
        return Ok(());
    }
    let (s, v) = kind_sizes(wanted);
    let key = if dims.vocab_size as usize != v {
        "vocab_size"
    } else {
        "seq_len"
    };
    let trained = match have {
        TaskKind::Other { .. } => "an unknown kind of puzzle".to_string(),
        other => format!("{} puzzles", other.name()),
    };
    Err(TrainError::Config {
        key: key.into(),
        reason: format!(
            "the model was trained on {trained} (seq_len {}, vocab_size {}) and cannot solve a \
             {} (seq_len {s}, vocab_size {v}); use a run trained on that kind of puzzle",
            dims.seq_len,
            dims.vocab_size,
            wanted.name()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(seq_len: i64, vocab_size: i64) -> CoreDims {
        CoreDims {
            seq_len,
            vocab_size,
            hidden_size: 8,
            puzzle_emb_len: 0,
            puzzle_emb_ndim: 0,
            num_puzzle_identifiers: 1,
            halt_max_steps: 2,
            halt_exploration_prob: 0.0,
            halt_rule: hrm_core::HaltRule::QHaltAboveContinue,
            forward_kind: tch::Kind::Float,
        }
    }

    #[test]
    fn task_kinds_from_model_sizes() {
        assert_eq!(model_task(&dims(81, 11)), TaskKind::Sudoku { size: 9 });
        assert_eq!(model_task(&dims(36, 11)), TaskKind::Sudoku { size: 6 });
        assert!(check_task(&dims(36, 11), TaskKind::Sudoku { size: 6 }).is_ok());
        assert_eq!(model_task(&dims(900, 6)), TaskKind::Maze { side: 30 });
        assert_eq!(model_task(&dims(900, 12)), TaskKind::Arc);
        assert!(check_task(&dims(16, 11), TaskKind::Sudoku { size: 4 }).is_ok());
        let err = check_task(&dims(81, 11), TaskKind::Sudoku { size: 4 }).expect_err("size");
        let msg = err.to_string();
        assert!(
            msg.contains("seq_len") && msg.contains("sudoku 9x9") && msg.contains("sudoku 4x4"),
            "{msg}"
        );
        // A 4x4 maze has as many tokens as a 4x4 Sudoku; the vocabulary tells them apart.
        let err = check_task(&dims(16, 6), TaskKind::Sudoku { size: 4 }).expect_err("vocab");
        assert!(err.to_string().contains("vocab_size"), "{err}");
    }
}
