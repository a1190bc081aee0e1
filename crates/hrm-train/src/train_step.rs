//! One training step, `train_batch` in the reference's `pretrain.py`: one ACT call on the batch
//! from the persistent carry, the loss head, a backward pass of `loss / global_batch_size`, then
//! the sparse sign-SGD on the puzzle rows the batch used and AdamATan2 on the network, both at
//! the learning rate the schedule gives for this step.

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

/// One training step of an ACT model. `carry` is the carry the previous step returned (`None`
/// at the start of a run); the new one is returned with the step's metrics (raw batch sums).
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
) -> Result<(ActCarry, Metrics)> {
    let carry = carry.unwrap_or_else(|| ActCarry::initial(core, batch));
    let (carry, out) = act_step(core, &carry, batch, Mode::Train);
    let step = head.act(&carry, &out);
    backward_and_update(
        &step.loss,
        out.puzzle_emb_local.as_ref(),
        &carry.current_data.puzzle_identifiers,
        opt,
        rates,
        global_batch_size,
    )?;
    Ok((carry, step.metrics))
}

/// `(loss / global_batch_size).backward()`, then the sign-SGD on the puzzle rows of `ids` (when
/// the model has a puzzle embedding) and AdamATan2, in the reference's order.
fn backward_and_update(
    loss: &Tensor,
    puzzle_local: Option<&Tensor>,
    ids: &Tensor,
    opt: &mut Optimizers,
    rates: StepRates,
    global_batch_size: usize,
) -> Result<()> {
    (loss * (1.0 / global_batch_size as f64)).backward();
    if let Some(dp) = &opt.parallel {
        dp.all_reduce_gradients(opt.adam.params())?;
    }
    if let (Some(puzzle), Some(local)) = (&opt.puzzle, puzzle_local) {
        let grad = local.grad();
        match (&opt.parallel, grad.defined()) {
            (Some(dp), _) => {
                // Every rank takes part in the gather, with zeros where it has no gradient.
                let grad = if grad.defined() {
                    grad
                } else {
                    local.zeros_like()
                };
                let (grads, all_ids) = dp.gather_puzzle_gradients(&grad, ids)?;
                sign_sgd_step(
                    &puzzle.table,
                    &grads,
                    &all_ids,
                    rates.puzzle_emb_lr,
                    puzzle.cfg,
                )?;
            }
            (None, true) => {
                sign_sgd_step(&puzzle.table, &grad, ids, rates.puzzle_emb_lr, puzzle.cfg)?;
            }
            (None, false) => {}
        }
    }
    opt.adam.step(rates.lr);
    opt.adam.zero_grad();
    Ok(())
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
/// sign-SGD (if the model has a puzzle embedding) and AdamATan2.
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
) -> Result<Metrics> {
    let (step, out) = direct_loss(model, batch, head, Mode::Train);
    backward_and_update(
        &step.loss,
        out.puzzle_emb_local.as_ref(),
        &batch.puzzle_identifiers,
        opt,
        rates,
        global_batch_size,
    )?;
    Ok(step.metrics)
}
