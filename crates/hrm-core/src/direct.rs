//! What the trainer needs from a model without ACT (the GRU and Transformer baselines): one
//! forward from tokens to per-position logits, no carry, no Q head.

use tch::Tensor;

use crate::params::ModelParams;
use crate::recurrent::{CoreDims, CoreInput, Mode};

/// The output of a direct (single-step) model.
#[derive(Debug)]
pub struct DirectOutput {
    /// `[b, S, V]`.
    pub logits: Tensor,
    /// In training with a puzzle embedding: the `[b, Dp]` leaf whose gradient the sign-SGD reads.
    pub puzzle_emb_local: Option<Tensor>,
}

/// A model that maps a batch to logits in one step.
pub trait DirectModel {
    /// Sizes (`halt_max_steps` is 1 and the halting fields are unused).
    fn dims(&self) -> CoreDims;

    /// The parameters.
    fn params(&self) -> &ModelParams;

    /// The forward pass.
    fn forward(&self, input: &CoreInput, mode: Mode) -> DirectOutput;
}
