//! What the ACT wrapper needs from a recurrent reasoning core: the contract HRM and TRM both
//! implement, so `hrm-act` runs either without knowing which.

use tch::{Device, Kind, Tensor};

use crate::carry::InnerCarry;
use crate::error::{CoreError, Result};
use crate::params::ModelParams;
use crate::rope::Rope;

/// Training or evaluation. In training the puzzle embedding hands out a gradient-receiving copy
/// of its rows; nothing else differs (there is no dropout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Training forward.
    Train,
    /// Evaluation forward.
    Eval,
}

/// How an ACT wrapper halts in training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltRule {
    /// HRM (and TRM with `no_ACT_continue = false`): halt when `q_halt > q_continue`, and learn
    /// `q_continue` from a bootstrapped target computed by a second forward.
    QHaltAboveContinue,
    /// TRM's default: halt when `q_halt > 0`; no second forward and no continue target.
    QHaltPositive,
}

/// Sizes and settings of a core that its callers need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoreDims {
    /// Tokens per example `S`.
    pub seq_len: i64,
    /// Vocabulary `V`.
    pub vocab_size: i64,
    /// Hidden width `H`.
    pub hidden_size: i64,
    /// Puzzle positions `P`.
    pub puzzle_emb_len: i64,
    /// Width of the puzzle embedding `Dp` (0: none).
    pub puzzle_emb_ndim: i64,
    /// Rows of the puzzle table.
    pub num_puzzle_identifiers: i64,
    /// Maximum ACT steps.
    pub halt_max_steps: i64,
    /// Exploration probability in training.
    pub halt_exploration_prob: f64,
    /// Training halting rule.
    pub halt_rule: HaltRule,
    /// The forward dtype.
    pub forward_kind: Kind,
}

impl CoreDims {
    /// `T = S + P`.
    pub fn total_seq_len(&self) -> i64 {
        self.seq_len + self.puzzle_emb_len
    }
}

/// The data a core reads: token ids and puzzle identifiers, on the model's device, int64.
#[derive(Debug)]
pub struct CoreInput {
    /// `[b, S]` token ids in `[0, V)`.
    pub inputs: Tensor,
    /// `[b]` puzzle identifiers in `[0, Nid)`.
    pub puzzle_identifiers: Tensor,
}

impl CoreInput {
    /// Builds an input from host data, checking every value on the host first (an out-of-range
    /// id on CUDA would be a device-side assert that poisons the context).
    ///
    /// # Errors
    /// [`CoreError::Shape`] when `inputs` is not `batch * S` long or the identifiers not `batch`
    /// long, [`CoreError::InputRange`] for a token outside `[0, V)` or an identifier outside
    /// `[0, Nid)`.
    pub fn from_host(
        inputs: &[i32],
        puzzle_identifiers: &[i32],
        dims: &CoreDims,
        device: Device,
    ) -> Result<Self> {
        let b = puzzle_identifiers.len() as i64;
        if inputs.len() as i64 != b * dims.seq_len {
            return Err(CoreError::Shape {
                name: "inputs".into(),
                expected: vec![b, dims.seq_len],
                found: vec![inputs.len() as i64],
            });
        }
        if let Some((i, t)) = inputs
            .iter()
            .enumerate()
            .find(|(_, &t)| t < 0 || i64::from(t) >= dims.vocab_size)
        {
            return Err(CoreError::InputRange {
                name: "inputs",
                reason: format!(
                    "token {t} at flat position {i} is outside [0, {})",
                    dims.vocab_size
                ),
            });
        }
        let max_id = dims.num_puzzle_identifiers.max(1);
        if let Some((i, p)) = puzzle_identifiers
            .iter()
            .enumerate()
            .find(|(_, &p)| p < 0 || i64::from(p) >= max_id)
        {
            return Err(CoreError::InputRange {
                name: "puzzle_identifiers",
                reason: format!("identifier {p} of row {i} is outside [0, {max_id})"),
            });
        }
        Ok(CoreInput {
            inputs: Tensor::from_slice(inputs)
                .view([b, dims.seq_len])
                .to_device(device)
                .to_kind(Kind::Int64),
            puzzle_identifiers: Tensor::from_slice(puzzle_identifiers)
                .to_device(device)
                .to_kind(Kind::Int64),
        })
    }

    /// Batch size.
    pub fn batch_size(&self) -> i64 {
        self.puzzle_identifiers.size()[0]
    }
}

/// What one inner forward (one ACT step of the core) returns.
#[derive(Debug)]
pub struct CoreOutput {
    /// The new carry, detached.
    pub carry: InnerCarry,
    /// `[b, S, V]` in the forward dtype (puzzle positions dropped).
    pub logits: Tensor,
    /// `[b]` float32, from position 0.
    pub q_halt: Tensor,
    /// `[b]` float32, from position 0.
    pub q_continue: Tensor,
    /// In training with a puzzle embedding: the `[b, Dp]` leaf whose gradient the sign-SGD reads.
    pub puzzle_emb_local: Option<Tensor>,
}

/// A recurrent reasoning core that an ACT wrapper can drive (HRM's inner model, TRM's).
pub trait RecurrentCore {
    /// Sizes and settings.
    fn dims(&self) -> CoreDims;

    /// The parameters (for optimisers, checkpoints and weight files).
    fn params(&self) -> &ModelParams;

    /// A carry for `batch` rows whose content does not matter (every row is reset on the first
    /// ACT call because the initial carry is all halted).
    fn empty_carry(&self, batch: i64) -> InnerCarry;

    /// Replaces the rows where `reset` (`[b]` bool) is true by the initial states.
    fn reset_carry(&self, reset: &Tensor, carry: &InnerCarry) -> InnerCarry;

    /// One ACT step of the core: the recursion from `carry` on `input`, gradient only through
    /// the model's differentiated updates.
    fn forward(&self, carry: &InnerCarry, input: &CoreInput, mode: Mode) -> CoreOutput;

    /// The scaled input embedding `x`, `[b, T, H]`, and in training the puzzle-embedding leaf.
    fn input_embeddings(&self, input: &CoreInput, mode: Mode) -> (Tensor, Option<Tensor>);

    /// The RoPE tables, for models that use them.
    fn rope(&self) -> Option<&Rope> {
        None
    }
}
