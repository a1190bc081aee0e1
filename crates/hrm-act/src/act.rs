//! The ACT wrapper, `HierarchicalReasoningModel_ACTV1` in the reference's
//! `models/hrm/hrm_act_v1.py` (and TRM's twin): adaptive computation time with Q-learned halting
//! (the HRM paper, section 2.3).
//!
//! One call `(carry, batch) -> (carry', outputs)`:
//! 1. rows that halted last call are reset (`z_H`, `z_L` to their initial vectors, `steps` to 0)
//!    and take the new batch's row; running rows keep their state **and their old data**;
//! 2. one forward of the core;
//! 3. `steps += 1`; a row halts at `halt_max_steps`;
//! 4. in training only: also when the Q head says so (the core's [`HaltRule`]), subject to a
//!    random minimum step count drawn with probability `halt_exploration_prob`; and, for
//!    [`HaltRule::QHaltAboveContinue`], the bootstrapped target of the continue logit from a
//!    second, gradient-free forward from the new carry.
//!
//! Evaluation never halts early: every row runs `halt_max_steps` steps.

use tch::{Kind, Tensor};

use hrm_core::{HaltRule, InnerCarry, Mode, RecurrentCore};

use crate::batch::ActBatch;
use crate::loss::{LossHead, StepLoss};

/// The state carried from one ACT call to the next.
#[derive(Debug)]
pub struct ActCarry {
    /// The core's recurrent state, detached.
    pub inner: InnerCarry,
    /// `[b]` int32: steps taken by each row's current example.
    pub steps: Tensor,
    /// `[b]` bool: rows whose example is finished (they take new data on the next call).
    pub halted: Tensor,
    /// The example each row is working on.
    pub current_data: ActBatch,
}

impl ActCarry {
    /// The initial carry for batches shaped like `batch`: every row halted, so the first call
    /// resets all of them and takes the batch.
    pub fn initial(core: &dyn RecurrentCore, batch: &ActBatch) -> Self {
        let b = batch.batch_size();
        let device = batch.inputs.device();
        ActCarry {
            inner: core.empty_carry(b),
            steps: Tensor::zeros([b], (Kind::Int, device)),
            halted: Tensor::ones([b], (Kind::Bool, device)),
            current_data: ActBatch {
                inputs: batch.inputs.zeros_like(),
                labels: batch.labels.zeros_like(),
                puzzle_identifiers: batch.puzzle_identifiers.zeros_like(),
            },
        }
    }

    /// An independent copy (new storage).
    pub fn copy(&self) -> Self {
        ActCarry {
            inner: self.inner.copy(),
            steps: self.steps.copy(),
            halted: self.halted.copy(),
            current_data: self.current_data.copy(),
        }
    }

    /// Overwrites every tensor of this carry in place with `other`'s values, keeping their
    /// storage: how a step captured in a CUDA graph carries its state from one replay to the
    /// next.
    ///
    /// # Errors
    /// [`crate::ActError::BatchShape`] when the carries are for batches of other shapes.
    pub fn copy_from(&mut self, other: &ActCarry) -> crate::error::Result<()> {
        self.current_data.copy_from(&other.current_data)?;
        self.inner.copy_from(&other.inner);
        self.steps.copy_(&other.steps);
        self.halted.copy_(&other.halted);
        Ok(())
    }

    /// True when every row has halted (`all_finish` in the reference). Reads one value back
    /// from the device.
    pub fn all_halted(&self) -> bool {
        self.halted.all().int64_value(&[]) != 0
    }
}

/// What one ACT call produces besides the carry.
#[derive(Debug)]
pub struct ActOutput {
    /// `[b, S, V]` in the forward dtype.
    pub logits: Tensor,
    /// `[b]` float32.
    pub q_halt_logits: Tensor,
    /// `[b]` float32.
    pub q_continue_logits: Tensor,
    /// `[b]` float32, training with [`HaltRule::QHaltAboveContinue`] only: the bootstrapped
    /// target `sigmoid(is_last ? q_halt' : max(q_halt', q_continue'))`.
    pub target_q_continue: Option<Tensor>,
    /// Training with a puzzle embedding: the `[b, Dp]` leaf whose gradient the sign-SGD reads.
    pub puzzle_emb_local: Option<Tensor>,
}

/// Runs one ACT call of `core` on `batch` from `carry`.
///
/// In [`Mode::Train`] the logits and Q logits carry the graph of the core's differentiated
/// updates; the carry never does.
pub fn act_step(
    core: &dyn RecurrentCore,
    carry: &ActCarry,
    batch: &ActBatch,
    mode: Mode,
) -> (ActCarry, ActOutput) {
    let dims = core.dims();
    let halted_before = &carry.halted;
    let inner = core.reset_carry(halted_before, &carry.inner);
    let steps = carry
        .steps
        .zeros_like()
        .where_self(halted_before, &carry.steps);
    let data = carry.current_data.merge_rows(halted_before, batch);

    let out = core.forward(&inner, &data.core_input(), mode);

    let _guard = tch::no_grad_guard();
    let steps = steps + 1;
    let is_last = steps.ge(dims.halt_max_steps);
    let mut halted = is_last.shallow_clone();
    let mut target = None;
    if mode == Mode::Train && dims.halt_max_steps > 1 {
        let wants_halt = match dims.halt_rule {
            HaltRule::QHaltAboveContinue => out.q_halt.gt_tensor(&out.q_continue),
            HaltRule::QHaltPositive => out.q_halt.gt(0.0),
        };
        halted = halted.logical_or(&wants_halt);
        if dims.halt_exploration_prob > 0.0 {
            // With probability p, a row must run at least U{2..K} steps before it may halt.
            let explore = out.q_halt.rand_like().lt(dims.halt_exploration_prob);
            let min_steps = steps.randint_like_low_dtype(2, dims.halt_max_steps + 1)
                * explore.to_kind(Kind::Int);
            halted = halted.logical_and(&steps.ge_tensor(&min_steps));
        }
        if dims.halt_rule == HaltRule::QHaltAboveContinue {
            // The continue value is bootstrapped from the next step's Q values, computed from the
            // new carry (not reset, even for rows that just halted) on the same data.
            let next = core.forward(&out.carry, &data.core_input(), Mode::Eval);
            let best = next.q_halt.maximum(&next.q_continue);
            target = Some(next.q_halt.where_self(&is_last, &best).sigmoid());
        }
    }
    let new_carry = ActCarry {
        inner: out.carry,
        steps,
        halted,
        current_data: data,
    };
    let output = ActOutput {
        logits: out.logits,
        q_halt_logits: out.q_halt,
        q_continue_logits: out.q_continue,
        target_q_continue: target,
        puzzle_emb_local: out.puzzle_emb_local,
    };
    (new_carry, output)
}

/// An evaluation rollout as the reference's evaluation loop runs one: `steps` ACT calls (at
/// least one) in [`Mode::Eval`] from a fresh carry, each followed by the loss head, all without
/// a graph. Evaluation never halts early, so `steps` is the model's `halt_max_steps`. Returns
/// the final carry, the last call's output and the loss head's result on it.
pub fn eval_rollout(
    core: &dyn RecurrentCore,
    batch: &ActBatch,
    head: &LossHead,
    steps: i64,
) -> (ActCarry, ActOutput, StepLoss) {
    let _guard = tch::no_grad_guard();
    let (mut carry, mut out) = act_step(core, &ActCarry::initial(core, batch), batch, Mode::Eval);
    let mut loss = head.act(&carry, &out);
    for _ in 1..steps {
        (carry, out) = act_step(core, &carry, batch, Mode::Eval);
        loss = head.act(&carry, &out);
    }
    (carry, out, loss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hrm_core::{Hrm, HrmConfig};

    #[test]
    fn copy_from_carries_every_tensor_over_in_place() {
        let mut cfg = HrmConfig::tiny();
        cfg.hidden_size = 32;
        cfg.num_heads = 2;
        cfg.puzzle_emb_ndim = 0;
        let model = Hrm::new(&cfg, tch::Device::Cpu).expect("model");
        let batch = ActBatch {
            inputs: Tensor::ones([2, 81], (Kind::Int64, tch::Device::Cpu)),
            labels: Tensor::ones([2, 81], (Kind::Int64, tch::Device::Cpu)),
            puzzle_identifiers: Tensor::zeros([2], (Kind::Int64, tch::Device::Cpu)),
        };
        let mut dst = ActCarry::initial(&model, &batch);
        let (next, _) = tch::no_grad(|| {
            act_step(
                &model,
                &ActCarry::initial(&model, &batch),
                &batch,
                Mode::Eval,
            )
        });
        let storage = dst.inner.z_h.data_ptr();
        dst.copy_from(&next).expect("same shapes");
        assert_eq!(dst.inner.z_h.data_ptr(), storage, "the storage is kept");
        assert!(dst.inner.z_h.equal(&next.inner.z_h));
        assert!(dst.inner.z_l.equal(&next.inner.z_l));
        assert!(dst.steps.equal(&next.steps));
        assert!(dst.halted.equal(&next.halted));
        assert!(dst.current_data.inputs.equal(&next.current_data.inputs));
        let copy = dst.copy();
        assert_ne!(copy.inner.z_l.data_ptr(), dst.inner.z_l.data_ptr());
        assert!(copy.inner.z_l.equal(&dst.inner.z_l));

        // Two evaluation calls by hand are what a two-step rollout runs.
        let (second, out) = tch::no_grad(|| act_step(&model, &next, &batch, Mode::Eval));
        let head = LossHead::default();
        let (carry, rolled, loss) = eval_rollout(&model, &batch, &head, 2);
        assert!(carry.inner.z_h.equal(&second.inner.z_h));
        assert!(rolled.logits.equal(&out.logits));
        assert_eq!(Vec::<i32>::try_from(carry.steps).expect("i32"), vec![2, 2]);
        assert!(loss
            .metrics
            .lm_loss
            .equal(&head.act(&second, &out).metrics.lm_loss));
    }
}
