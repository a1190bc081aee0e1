//! What a loss head reads from one step: logits, labels, halting state and the Q logits, as
//! borrowed views. Both the loss ([`crate::loss`]) and the metrics ([`crate::metrics`]) read it,
//! so it lives apart and neither of the two imports the other.

use tch::Tensor;

/// The parts of a step a loss head reads; ACT models fill all, baselines without a Q head leave
/// the Q fields empty.
#[derive(Debug)]
pub struct LossInputs<'a> {
    /// `[b, S, V]`.
    pub logits: &'a Tensor,
    /// `[b, S]`, -100 where ignored.
    pub labels: &'a Tensor,
    /// `[b]` bool: rows whose example finished this step (only those count in the metrics).
    pub halted: &'a Tensor,
    /// `[b]` int: steps taken.
    pub steps: &'a Tensor,
    /// `[b]` float32.
    pub q_halt_logits: Option<&'a Tensor>,
    /// `([b] q_continue logits, [b] targets)` when a continue target exists.
    pub q_continue: Option<(&'a Tensor, &'a Tensor)>,
}
