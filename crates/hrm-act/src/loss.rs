//! The loss functions and the loss head, `ACTLossHead`, `stablemax_cross_entropy` and
//! `softmax_cross_entropy` in the reference's `models/losses.py`.
//!
//! * Stablemax (Prieto et al. 2025, "Grokking at the edge of numerical stability") replaces
//!   `exp` by `s(x) = x + 1` for `x >= 0` and `1 / (1 - x)` for `x < 0`; computed in float64.
//! * The LM loss is a **sum over rows of per-row mean token losses** (labels of -100 ignored), the
//!   Q losses are binary cross-entropies **summed** over rows; the total is
//!   `lm + q_loss_weight * (q_halt + q_continue)` in float64. The trainer scales it by
//!   `1 / global_batch_size` before the backward pass.

use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use crate::act::{ActCarry, ActOutput};
use crate::batch::IGNORE_LABEL_ID;
use crate::error::ActError;
use crate::inputs::LossInputs;
use crate::metrics::Metrics;

/// Which token loss to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// Stablemax cross-entropy in float64 (the reference's choice for HRM).
    StablemaxCrossEntropy,
    /// Softmax cross-entropy in float32.
    SoftmaxCrossEntropy,
}

impl std::str::FromStr for LossType {
    type Err = ActError;
    fn from_str(s: &str) -> Result<Self, ActError> {
        match s {
            "stablemax_cross_entropy" => Ok(LossType::StablemaxCrossEntropy),
            "softmax_cross_entropy" => Ok(LossType::SoftmaxCrossEntropy),
            other => Err(ActError::UnknownLoss(other.to_string())),
        }
    }
}

/// `s(x)`: `1 / (1 - x + 1e-30)` for `x < 0`, else `x + 1`.
fn stablemax_s(x: &Tensor) -> Tensor {
    // `(1 - x) + 1e-30` in this order, as the reference: folding the constants into one would
    // round the 1e-30 away and turn x = 1 into a division by zero in the unused branch, whose
    // gradient (0 * inf) would then poison the backward pass with NaN.
    let negative = ((x.neg() + 1.0) + 1e-30).reciprocal();
    negative.where_self(&x.lt(0.0), &(x + 1.0))
}

/// Per-element stablemax cross-entropy in float64, 0 where the label is -100.
///
/// # Shapes
/// `logits: [..., V]`, `labels: [...]` (int) -> `[...]` float64.
pub fn stablemax_cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    let x = logits.to_kind(Kind::Double);
    let s = stablemax_s(&x);
    let logprobs = (&s / s.sum_dim_intlist(-1, true, Kind::Double)).log();
    gather_label(&logprobs, labels)
}

/// Per-element softmax cross-entropy in float32, 0 where the label is -100.
///
/// # Shapes
/// `logits: [..., V]`, `labels: [...]` (int) -> `[...]` float32.
pub fn softmax_cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    let v = logits.size().last().copied().unwrap_or(1);
    let flat = logits.to_kind(Kind::Float).reshape([-1, v]);
    flat.cross_entropy_loss::<Tensor>(
        &labels.to_kind(Kind::Int64).reshape([-1]),
        None,
        Reduction::None,
        IGNORE_LABEL_ID,
        0.0,
    )
    .view_(labels.size())
}

/// `-logprobs[label]`, 0 where ignored.
fn gather_label(logprobs: &Tensor, labels: &Tensor) -> Tensor {
    let valid = labels.ne(IGNORE_LABEL_ID);
    let safe = labels
        .zeros_like()
        .where_self(&valid.logical_not(), labels)
        .to_kind(Kind::Int64);
    let picked = logprobs
        .gather(-1, &safe.unsqueeze(-1), false)
        .squeeze_dim(-1);
    picked
        .zeros_like()
        .where_self(&valid.logical_not(), &picked)
        .neg()
}

impl LossType {
    /// The per-element loss of this type.
    pub fn per_token(self, logits: &Tensor, labels: &Tensor) -> Tensor {
        match self {
            LossType::StablemaxCrossEntropy => stablemax_cross_entropy(logits, labels),
            LossType::SoftmaxCrossEntropy => softmax_cross_entropy(logits, labels),
        }
    }
}

/// `sum(max(x, 0) - x*y + log(1 + exp(-|x|)))`, float32.
pub fn bce_with_logits_sum(logits: &Tensor, targets: &Tensor) -> Tensor {
    logits.binary_cross_entropy_with_logits::<Tensor>(
        &targets.to_kind(logits.kind()),
        None,
        None,
        Reduction::Sum,
    )
}

/// The loss of one step and its metrics.
#[derive(Debug)]
pub struct StepLoss {
    /// Float64 scalar with the graph (in training).
    pub loss: Tensor,
    /// The reference metrics (raw sums over the batch).
    pub metrics: Metrics,
}

/// `ACTLossHead`: the loss type and the weight of the Q losses (0.5 in the reference).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossHead {
    /// Token loss.
    pub loss_type: LossType,
    /// Weight of `q_halt_loss + q_continue_loss`.
    pub q_loss_weight: f64,
}

impl Default for LossHead {
    fn default() -> Self {
        LossHead {
            loss_type: LossType::StablemaxCrossEntropy,
            q_loss_weight: 0.5,
        }
    }
}

impl LossHead {
    /// Loss and metrics of an ACT step, from the carry it returned and its outputs.
    pub fn act(&self, carry: &ActCarry, out: &ActOutput) -> StepLoss {
        self.compute(&LossInputs {
            logits: &out.logits,
            labels: &carry.current_data.labels,
            halted: &carry.halted,
            steps: &carry.steps,
            q_halt_logits: Some(&out.q_halt_logits),
            q_continue: out
                .target_q_continue
                .as_ref()
                .map(|t| (&out.q_continue_logits, t)),
        })
    }

    /// Loss and metrics from their parts.
    pub fn compute(&self, x: &LossInputs<'_>) -> StepLoss {
        let (counts, seq_correct, metrics_base) = tch::no_grad(|| Metrics::token_stats(x));
        let divisor = counts.clamp_min(1).unsqueeze(-1); // [b, 1] int64
        let lm_loss = (self.loss_type.per_token(x.logits, x.labels) / &divisor).sum(Kind::Double);
        let mut q_halt_loss = None;
        let mut q_continue_loss = None;
        let total = match x.q_halt_logits {
            Some(q_halt) => {
                let halt = bce_with_logits_sum(q_halt, &seq_correct);
                let q_sum = match x.q_continue {
                    Some((q_cont, target)) => {
                        let cont = bce_with_logits_sum(q_cont, target);
                        q_continue_loss = Some(cont.detach());
                        &halt + cont
                    }
                    None => halt.shallow_clone(),
                };
                q_halt_loss = Some(halt.detach());
                // The bracket is summed in float32, then promoted to float64 with the LM loss.
                &lm_loss + q_sum * self.q_loss_weight
            }
            None => lm_loss.shallow_clone(),
        };
        let metrics = metrics_base.with_losses(lm_loss.detach(), q_halt_loss, q_continue_loss);
        StepLoss {
            loss: total,
            metrics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stablemax_of_equal_logits_is_log_v_and_ignores_minus_100() {
        let logits = Tensor::zeros([1, 2, 4], (Kind::Float, tch::Device::Cpu));
        let labels = Tensor::from_slice(&[2i64, -100]).view([1, 2]);
        let l: Vec<f64> =
            Vec::try_from(stablemax_cross_entropy(&logits, &labels).view([-1])).expect("f64");
        assert!((l[0] - 4f64.ln()).abs() < 1e-12);
        assert_eq!(l[1], 0.0);
    }

    #[test]
    fn stablemax_hand_computed() {
        // x = [1, -1]: s = [2, 0.5]; p(label 0) = 2 / 2.5 = 0.8.
        let logits = Tensor::from_slice(&[1.0f32, -1.0]).view([1, 2]);
        let labels = Tensor::from_slice(&[0i64]);
        let l = stablemax_cross_entropy(&logits, &labels).double_value(&[0]);
        assert!((l + 0.8f64.ln()).abs() < 1e-12, "{l}");
    }

    #[test]
    fn softmax_matches_log_softmax() {
        let logits = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).view([1, 3]);
        let labels = Tensor::from_slice(&[2i64]);
        let l = softmax_cross_entropy(&logits, &labels).double_value(&[0]);
        let expected = -(3.0f64 - (1f64.exp() + 2f64.exp() + 3f64.exp()).ln());
        assert!((l - expected).abs() < 1e-6);
    }

    #[test]
    fn bce_matches_formula() {
        let x = Tensor::from_slice(&[2.0f32, -1.0]);
        let y = Tensor::from_slice(&[1.0f32, 0.0]);
        let got = bce_with_logits_sum(&x, &y).double_value(&[]);
        let f = |x: f64, y: f64| x.max(0.0) - x * y + (1.0 + (-x.abs()).exp()).ln();
        assert!((got - (f(2.0, 1.0) + f(-1.0, 0.0))).abs() < 1e-6);
    }
}
