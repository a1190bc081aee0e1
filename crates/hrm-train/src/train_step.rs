//! One training step, `train_batch` in the reference's `pretrain.py`: one ACT call on the batch
//! from the persistent carry, the loss head, a backward pass of `loss / global_batch_size`, then
//! the sparse sign-SGD on the puzzle rows the batch used and AdamATan2 on the network, both at
//! the learning rate the schedule gives for this step.
//!
//! Between the backward pass and the updates, the loss and the global gradient norm are read
//! back: when either is NaN or infinite, neither optimiser steps and the step reports what was
//! not finite ([`StepOutcome::non_finite`]); the trainer then stops or skips, as the config says.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use hrm_act::{act_step, ActBatch, ActCarry, LossHead, LossInputs, Metrics, StepLoss};
use hrm_core::{DirectModel, DirectOutput, Mode, RecurrentCore};

use crate::distributed::DataParallel;
use crate::error::Result;
use crate::optim::{sign_sgd_step, AdamAtan2, SignSgdConfig};

/// The sparse optimiser's table and settings.
#[derive(Debug)]
pub struct PuzzleOptimizer {
    /// The puzzle embedding table `[Nid, Dp]`.
    pub table: Tensor,
    /// Weight decay of the sign-SGD.
    pub cfg: SignSgdConfig,
}

/// Both optimisers of a run.
#[derive(Debug)]
pub struct Optimizers {
    /// AdamATan2 over the trainable network parameters.
    pub adam: AdamAtan2,
    /// Sign-SGD over the puzzle table, when the model has one.
    pub puzzle: Option<PuzzleOptimizer>,
    /// In a data-parallel run, the ranks whose gradients are combined between the backward
    /// pass and the updates ([`crate::distributed`]); `None` in a single process.
    pub parallel: Option<DataParallel>,
}

/// Learning rates of one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRates {
    /// For AdamATan2.
    pub lr: f64,
    /// For the puzzle embedding's sign-SGD.
    pub puzzle_emb_lr: f64,
}

/// A quantity of a training step that is checked for being finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// The step's loss (`loss / global_batch_size`, what the backward pass starts from).
    Loss,
    /// The L2 norm of every gradient of the step together (network parameters and the
    /// puzzle-embedding rows the batch used).
    GradNorm,
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Quantity::Loss => "loss",
            Quantity::GradNorm => "gradient norm",
        })
    }
}

/// What a step found not finite. Neither optimiser stepped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonFinite {
    /// The first quantity found not finite (the loss before the gradient norm).
    pub quantity: Quantity,
    /// Its value.
    pub value: f64,
}

/// What one training step did.
#[derive(Debug)]
pub struct StepOutcome {
    /// The step's metrics (raw batch sums).
    pub metrics: Metrics,
    /// `Some` when the loss or the gradient norm was not finite; the update was then not
    /// applied (the gradients are cleared).
    pub non_finite: Option<NonFinite>,
}

/// One training step of an ACT model. `carry` is the carry the previous step returned (`None`
/// at the start of a run); the new one is returned with the step's outcome.
///
/// # Errors
/// When the sign-SGD shapes do not fit (a model/optimiser mismatch).
pub fn act_train_step(
    core: &dyn RecurrentCore,
    carry: Option<ActCarry>,
    batch: &ActBatch,
    head: &LossHead,
    opt: &mut Optimizers,
    rates: StepRates,
    global_batch_size: usize,
) -> Result<(ActCarry, StepOutcome)> {
    let carry = carry.unwrap_or_else(|| ActCarry::initial(core, batch));
    let (carry, out) = act_step(core, &carry, batch, Mode::Train);
    let step = head.act(&carry, &out);
    let non_finite = backward_and_update(
        &step.loss,
        out.puzzle_emb_local.as_ref(),
        &carry.current_data.puzzle_identifiers,
        opt,
        rates,
        global_batch_size,
    )?;
    Ok((
        carry,
        StepOutcome {
            metrics: step.metrics,
            non_finite,
        },
    ))
}

/// `(loss / global_batch_size).backward()`, a check that the loss and the global gradient norm
/// are finite, then the sign-SGD on the puzzle rows of `ids` (when the model has a puzzle
/// embedding) and AdamATan2, in the reference's order. Returns what was not finite, in which
/// case nothing was updated.
fn backward_and_update(
    loss: &Tensor,
    puzzle_local: Option<&Tensor>,
    ids: &Tensor,
    opt: &mut Optimizers,
    rates: StepRates,
    global_batch_size: usize,
) -> Result<Option<NonFinite>> {
    let scaled = loss * (1.0 / global_batch_size as f64);
    scaled.backward();
    update_after_backward(&scaled, puzzle_local, ids, opt, rates)
}

/// What follows the backward pass of a step: in a data-parallel run the gradient all-reduce,
/// then the finite check of `scaled` (the loss the backward pass started from) and the global
/// gradient norm, then sign-SGD on the puzzle rows of `ids` and AdamATan2, or, when something
/// was not finite, no update and cleared gradients. Shared by the eager steps and the step
/// captured in a CUDA graph ([`crate::graphed`]).
pub(crate) fn update_after_backward(
    scaled: &Tensor,
    puzzle_local: Option<&Tensor>,
    ids: &Tensor,
    opt: &mut Optimizers,
    rates: StepRates,
) -> Result<Option<NonFinite>> {
    if let Some(dp) = &opt.parallel {
        dp.all_reduce_gradients(opt.adam.params())?;
    }
    let local_grad = puzzle_local
        .filter(|_| opt.puzzle.is_some())
        .map(|local| match (local.grad(), &opt.parallel) {
            // Every rank takes part in the gather, with zeros where it has no gradient.
            (g, Some(_)) if !g.defined() => local.zeros_like(),
            (g, _) => g,
        })
        .filter(Tensor::defined);
    // In a data-parallel run, every rank's rows and identifiers, so all update alike.
    let (puzzle_grad, puzzle_ids) = match (&opt.parallel, local_grad) {
        (Some(dp), Some(g)) => {
            let (g, all_ids) = dp.gather_puzzle_gradients(&g, ids)?;
            (Some(g), all_ids)
        }
        (_, g) => (g, ids.shallow_clone()),
    };
    let mut non_finite = check_step(
        scaled,
        opt.adam
            .grads()
            .chain(puzzle_grad.as_ref().map(Tensor::shallow_clone)),
    );
    if let Some(dp) = &opt.parallel {
        // Ranks skip or stop together: another rank's non-finite loss counts here too.
        if dp.any(non_finite.is_some())? && non_finite.is_none() {
            non_finite = Some(NonFinite {
                quantity: Quantity::Loss,
                value: f64::NAN,
            });
        }
    }
    if non_finite.is_some() {
        opt.adam.zero_grad();
        return Ok(non_finite);
    }
    if let (Some(puzzle), Some(grad)) = (&opt.puzzle, puzzle_grad) {
        sign_sgd_step(
            &puzzle.table,
            &grad,
            &puzzle_ids,
            rates.puzzle_emb_lr,
            puzzle.cfg,
        )?;
    }
    opt.adam.step(rates.lr);
    opt.adam.zero_grad();
    Ok(None)
}

/// Reads the loss and the global L2 norm of `grads` back in one transfer and reports the first
/// that is not finite. The norms are taken in float64 so that large but finite gradients do not
/// overflow into a false alarm.
fn check_step(loss: &Tensor, grads: impl Iterator<Item = Tensor>) -> Option<NonFinite> {
    tch::no_grad(|| {
        let norms: Vec<Tensor> = grads
            .map(|g| g.norm_scalaropt_dtype(2.0, Kind::Double))
            .collect();
        let device = loss.device();
        let total = if norms.is_empty() {
            Tensor::zeros([], (Kind::Double, device))
        } else {
            Tensor::stack(&norms, 0).square().sum(Kind::Double).sqrt()
        };
        let both = Tensor::stack(&[loss.detach().to_kind(Kind::Double), total], 0); // [2]
        let values: Vec<f64> = Vec::try_from(both.to_device(tch::Device::Cpu)).unwrap_or_default();
        let (loss, norm) = (values.first().copied()?, values.get(1).copied()?);
        if !loss.is_finite() {
            Some(NonFinite {
                quantity: Quantity::Loss,
                value: loss,
            })
        } else if !norm.is_finite() {
            Some(NonFinite {
                quantity: Quantity::GradNorm,
                value: norm,
            })
        } else {
            None
        }
    })
}

/// Loss and metrics of a direct (single-step) model on a batch: every row counts as halted
/// after one step, and there is no Q head.
pub fn direct_loss(
    model: &dyn DirectModel,
    batch: &ActBatch,
    head: &LossHead,
    mode: Mode,
) -> (StepLoss, DirectOutput) {
    let out = model.forward(&batch.core_input(), mode);
    let b = batch.batch_size();
    let device = batch.inputs.device();
    let halted = Tensor::ones([b], (Kind::Bool, device));
    let steps = Tensor::ones([b], (Kind::Int, device));
    let step = head.compute(&LossInputs {
        logits: &out.logits,
        labels: &batch.labels,
        halted: &halted,
        steps: &steps,
        q_halt_logits: None,
        q_continue: None,
    });
    (step, out)
}

/// One training step of a direct model: forward, loss, backward of `loss / global_batch_size`,
/// the finite check, sign-SGD (if the model has a puzzle embedding) and AdamATan2.
///
/// # Errors
/// When the sign-SGD shapes do not fit.
pub fn direct_train_step(
    model: &dyn DirectModel,
    batch: &ActBatch,
    head: &LossHead,
    opt: &mut Optimizers,
    rates: StepRates,
    global_batch_size: usize,
) -> Result<StepOutcome> {
    let (step, out) = direct_loss(model, batch, head, Mode::Train);
    let non_finite = backward_and_update(
        &step.loss,
        out.puzzle_emb_local.as_ref(),
        &batch.puzzle_identifiers,
        opt,
        rates,
        global_batch_size,
    )?;
    Ok(StepOutcome {
        metrics: step.metrics,
        non_finite,
    })
}
