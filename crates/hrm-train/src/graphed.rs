//! ACT steps captured in CUDA graphs ([`hrm_core::cuda_graph`]): the forward and backward of a
//! training step, and a whole evaluation rollout, each recorded once and then replayed.
//!
//! Why: at the tiny and small presets an eager ACT step on a fast GPU is bound by launching its
//! thousands of small kernels; a replay launches them as one graph.
//!
//! What is captured, and what stays eager:
//! - [`GraphedTrainStep`]: the ACT call with its Q-target pass, the loss head and the backward
//!   pass of `loss / global_batch_size`, with the carry kept in the graph's own tensors (the
//!   captured step ends by copying the new carry over the old one). The gradients are zeroed in
//!   place at the start of the step. What follows the backward pass stays eager, as in
//!   [`crate::train_step`]: the finite check (a read-back), the gradient all-reduce of a
//!   data-parallel run, sign-SGD (its row selection has a data-dependent shape) and AdamATan2
//!   (its learning rate changes every step).
//! - [`GraphedEvalRollout`]: `halt_max_steps` evaluation ACT calls from a fresh carry under
//!   `no_grad`, with the last call's loss head.
//!
//! Numerics are those of the eager step: the same kernels run, in the same order. The random
//! halting exploration draws from libtorch's generator at every replay, as the eager step does
//! (the draws themselves differ from an eager run's).

use tch::Tensor;

use hrm_act::{act_step, eval_rollout, ActBatch, ActCarry, LossHead, Metrics};
use hrm_core::cuda_graph::CudaGraph;
use hrm_core::{Mode, RecurrentCore};

use crate::error::Result;
use crate::optim::AdamAtan2;
use crate::train_step::{update_after_backward, Optimizers, StepOutcome, StepRates};

/// Eager steps run before each capture: the first makes the gradients (so that the captured
/// backward accumulates into them in place) and the per-stream state of cuBLAS; the second
/// runs with all of that in place, as the captured one will.
const WARMUP_STEPS: usize = 2;

/// The forward and backward of an ACT training step, captured in a CUDA graph; the carry lives
/// in the graph's tensors from one step to the next.
#[derive(Debug)]
pub struct GraphedTrainStep {
    graph: FedGraph,
    /// The persistent carry: read by the step, overwritten with the new carry at its end.
    carry: ActCarry,
    /// Output: `loss / global_batch_size`, what the backward pass started from.
    scaled_loss: Tensor,
    /// Output: the step's metrics (raw batch sums).
    metrics: Metrics,
    /// Output: the puzzle-embedding leaf whose gradient the sign-SGD reads, when the model has
    /// one.
    puzzle_local: Option<Tensor>,
    /// Output: the puzzle identifiers of the rows the step worked on.
    puzzle_ids: Tensor,
}

impl GraphedTrainStep {
    /// Captures the training step of `core` for batches shaped like `batch`, starting from
    /// `carry` (`None`: the initial carry, every row halted). The warm-up steps run the step
    /// eagerly without updating the weights; the carry is restored afterwards, so the first
    /// replay continues from `carry`.
    ///
    /// # Errors
    /// [`hrm_core::CoreError::CudaGraph`] (wrapped) when the device cannot capture or the step
    /// cannot be captured.
    pub fn capture(
        core: &dyn RecurrentCore,
        head: &LossHead,
        adam: &mut AdamAtan2,
        batch: &ActBatch,
        carry: Option<&ActCarry>,
        global_batch_size: usize,
    ) -> Result<Self> {
        let device = batch.inputs.device();
        hrm_core::cuda_graph::check_device(device)?;
        let static_batch = batch.copy();
        let mut state = match carry {
            Some(c) => c.copy(),
            None => ActCarry::initial(core, batch),
        };
        let start = state.copy();
        let scale = 1.0 / global_batch_size as f64;
        // The step reads `state` and ends by overwriting it with the new carry (so each replay
        // advances it); the write goes through `target`, whose tensors share `state`'s storage.
        let mut target = shallow(&state);
        let (graph, outputs) = CudaGraph::capture(device, WARMUP_STEPS, || {
            adam.zero_grad();
            let (next, out) = act_step(core, &state, &static_batch, Mode::Train);
            let loss = head.act(&next, &out);
            let scaled = &loss.loss * scale;
            scaled.backward();
            let outputs = (
                scaled.detach(),
                loss.metrics,
                out.puzzle_emb_local,
                next.current_data.puzzle_identifiers.shallow_clone(),
            );
            target.copy_from(&next).map(|()| outputs)
        })?;
        let (scaled_loss, metrics, puzzle_local, puzzle_ids) = outputs?;
        state.copy_from(&start)?;
        adam.zero_grad();
        Ok(GraphedTrainStep {
            graph: FedGraph {
                graph,
                batch: static_batch,
            },
            carry: state,
            scaled_loss,
            metrics,
            puzzle_local,
            puzzle_ids,
        })
    }

    /// One training step on `batch`: its rows are copied into the graph's batch, the graph
    /// replays the forward and backward pass, then the eager updates follow
    /// ([`crate::train_step`]'s finite check, sign-SGD and AdamATan2 at `rates`).
    ///
    /// # Errors
    /// When `batch` is shaped unlike the captured one, the replay fails, or the sign-SGD shapes
    /// do not fit.
    pub fn step(
        &mut self,
        batch: &ActBatch,
        opt: &mut Optimizers,
        rates: StepRates,
    ) -> Result<StepOutcome> {
        self.replay(batch)?;
        let non_finite = update_after_backward(
            &self.scaled_loss,
            self.puzzle_local.as_ref(),
            &self.puzzle_ids,
            opt,
            rates,
        )?;
        if non_finite.is_some() {
            // A hidden state that went non-finite must not reach the next batch.
            self.reset_carry();
        }
        Ok(StepOutcome {
            metrics: self.metrics.copy(),
            non_finite,
        })
    }

    /// Copies `batch` in and replays the forward and backward pass only: the gradients are
    /// left in the parameters' `.grad` (what the comparison with the reference times).
    ///
    /// # Errors
    /// When `batch` is shaped unlike the captured one, or the replay fails.
    pub fn replay(&mut self, batch: &ActBatch) -> Result<()> {
        self.graph.replay(batch)
    }

    /// `loss / global_batch_size` of the last replay.
    pub fn scaled_loss(&self) -> &Tensor {
        &self.scaled_loss
    }

    /// The carry the next replay starts from (the graph's own tensors: copy it to keep it).
    pub fn carry(&self) -> &ActCarry {
        &self.carry
    }

    /// Makes the next replay start as from the initial carry: every row halted, so every row
    /// is reset and takes the next batch's example.
    fn reset_carry(&mut self) {
        let _ = self.carry.halted.fill_(1);
        let _ = self.carry.steps.zero_();
    }
}

/// A captured graph and the batch tensors it reads, into which each call's batch is copied.
#[derive(Debug)]
struct FedGraph {
    graph: CudaGraph,
    batch: ActBatch,
}

impl FedGraph {
    /// Copies `batch` into the graph's batch, then replays the graph.
    fn replay(&mut self, batch: &ActBatch) -> Result<()> {
        self.batch.copy_from(batch)?;
        self.graph.replay()?;
        Ok(())
    }
}

/// A carry whose tensors share storage with `c`'s.
fn shallow(c: &ActCarry) -> ActCarry {
    ActCarry {
        inner: hrm_core::InnerCarry {
            z_h: c.inner.z_h.shallow_clone(),
            z_l: c.inner.z_l.shallow_clone(),
        },
        steps: c.steps.shallow_clone(),
        halted: c.halted.shallow_clone(),
        current_data: ActBatch {
            inputs: c.current_data.inputs.shallow_clone(),
            labels: c.current_data.labels.shallow_clone(),
            puzzle_identifiers: c.current_data.puzzle_identifiers.shallow_clone(),
        },
    }
}

/// An evaluation rollout (`halt_max_steps` ACT calls from a fresh carry, with the loss head of
/// the last), captured in a CUDA graph.
#[derive(Debug)]
pub struct GraphedEvalRollout {
    graph: FedGraph,
    /// Output: the carry after the last call.
    carry: ActCarry,
    /// Output: the last call's logits `[b, S, V]`.
    logits: Tensor,
    /// Output: the last call's Q-halt logits `[b]`.
    q_halt_logits: Tensor,
    /// Output: the last call's metrics.
    metrics: Metrics,
}

impl GraphedEvalRollout {
    /// Captures a rollout of `steps` ACT calls (an evaluation runs the model's
    /// `halt_max_steps`) of `core` for batches shaped like `batch`.
    ///
    /// # Errors
    /// [`hrm_core::CoreError::CudaGraph`] (wrapped) when the device cannot capture or the
    /// rollout cannot be captured; a config error when `steps` is below 1.
    pub fn capture(
        core: &dyn RecurrentCore,
        head: &LossHead,
        batch: &ActBatch,
        steps: i64,
    ) -> Result<Self> {
        if steps < 1 {
            return Err(crate::error::TrainError::Config {
                key: "halt_max_steps".into(),
                reason: format!("a rollout needs at least one ACT step, got {steps}"),
            });
        }
        let device = batch.inputs.device();
        hrm_core::cuda_graph::check_device(device)?;
        let static_batch = batch.copy();
        let (graph, (carry, (logits, q_halt_logits, metrics))) =
            CudaGraph::capture(device, WARMUP_STEPS, || {
                let (carry, out, loss) = eval_rollout(core, &static_batch, head, steps);
                (carry, (out.logits, out.q_halt_logits, loss.metrics))
            })?;
        Ok(GraphedEvalRollout {
            graph: FedGraph {
                graph,
                batch: static_batch,
            },
            carry,
            logits,
            q_halt_logits,
            metrics,
        })
    }

    /// Runs the rollout on `batch`; the results are read from [`Self::carry`],
    /// [`Self::logits`], [`Self::q_halt_logits`] and [`Self::metrics`] until the next call.
    ///
    /// # Errors
    /// When `batch` is shaped unlike the captured one, or the replay fails.
    pub fn run(&mut self, batch: &ActBatch) -> Result<()> {
        self.graph.replay(batch)
    }

    /// The carry after the last rollout.
    pub fn carry(&self) -> &ActCarry {
        &self.carry
    }

    /// The last ACT call's logits `[b, S, V]`.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }

    /// The last ACT call's Q-halt logits `[b]`.
    pub fn q_halt_logits(&self) -> &Tensor {
        &self.q_halt_logits
    }

    /// The batch size the rollout was captured for.
    pub fn batch_size(&self) -> i64 {
        self.graph.batch.batch_size()
    }

    /// The last ACT call's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
