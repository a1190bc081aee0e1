//! Random models and batches for speed measurements, shared by `hrm bench` and the criterion
//! benches in `benches/`, so both time exactly the same work.
//!
//! A [`BenchSetup`] holds a freshly initialised HRM of one preset ([`BenchPreset`]: tiny, small
//! or paper, with the batch size each is benchmarked at), a random Sudoku-shaped batch (81
//! tokens, vocabulary 11, puzzle identifier 0), the loss head and both optimisers. Its methods
//! run one training step as `pretrain.py`'s `train_batch` does ([`BenchSetup::train_step`]), the
//! same without the optimisers ([`BenchSetup::train_step_no_optim`], the variant compared with
//! the reference, whose AdamATan2 is CUDA-only) and an evaluation rollout of `halt_max_steps`
//! ACT steps under `no_grad` ([`BenchSetup::eval_rollout`]). On CUDA the same steps can be
//! captured in CUDA graphs ([`BenchSetup::capture_train_step`], [`BenchSetup::capture_eval`],
//! see [`crate::graphed`]), and [`BenchSetup::graph_check`] compares a replay with the eager
//! step. Nothing here but the check reads the host or synchronises the device: callers time
//! around [`synchronize`].

use std::fmt;
use std::str::FromStr;

use tch::{Device, Kind, Tensor};

use hrm_act::{act_step, eval_rollout, ActBatch, ActCarry, LossHead};
use hrm_core::{ForwardDtype, Hrm, HrmConfig, Mode, RecurrentCore};

use crate::error::{Result, TrainError};
use crate::graphed::{GraphedEvalRollout, GraphedTrainStep};
use crate::optim::{AdamAtan2, AdamAtan2Config, SignSgdConfig};
use crate::train_step::{act_train_step, Optimizers, PuzzleOptimizer, StepRates};

/// The three benchmarked model sizes (all: sequence 81, vocabulary 11, RoPE, a puzzle
/// embedding as wide as the hidden state, 2x2 cycles, 16 ACT steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BenchPreset {
    /// Hidden 128, 4 heads, 2+2 layers, batch 64.
    Tiny,
    /// Hidden 256, 4 heads, 4+4 layers, batch 32.
    Small,
    /// Hidden 512, 8 heads, 4+4 layers, batch 16 (the reference's Sudoku model).
    Paper,
}

impl BenchPreset {
    /// Every preset, smallest first.
    pub const ALL: [BenchPreset; 3] = [BenchPreset::Tiny, BenchPreset::Small, BenchPreset::Paper];

    /// `tiny`, `small` or `paper`.
    pub fn name(self) -> &'static str {
        match self {
            BenchPreset::Tiny => "tiny",
            BenchPreset::Small => "small",
            BenchPreset::Paper => "paper",
        }
    }

    /// The model configuration in float32 (see [`BenchSetup::new`] for other dtypes).
    pub fn config(self) -> HrmConfig {
        match self {
            BenchPreset::Tiny => HrmConfig::tiny(),
            BenchPreset::Small => HrmConfig::small(),
            BenchPreset::Paper => HrmConfig::paper(),
        }
    }

    /// The batch size this preset is benchmarked at.
    pub fn batch_size(self) -> i64 {
        match self {
            BenchPreset::Tiny => 64,
            BenchPreset::Small => 32,
            BenchPreset::Paper => 16,
        }
    }
}

impl fmt::Display for BenchPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BenchPreset {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self> {
        BenchPreset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| TrainError::Config {
                key: "config".into(),
                reason: format!("`{s}` is not one of tiny, small, paper"),
            })
    }
}

/// Waits for every queued kernel of `device` (a no-op on the CPU, where libtorch runs
/// synchronously).
pub fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Learning rates used by the timed steps (their values do not change the cost).
const BENCH_RATES: StepRates = StepRates {
    lr: 1e-4,
    puzzle_emb_lr: 1e-2,
};

/// A random model, batch, loss head and optimisers for one preset on one device.
#[derive(Debug)]
pub struct BenchSetup {
    /// The preset.
    pub preset: BenchPreset,
    /// The model's configuration (the preset's, with the chosen forward dtype).
    pub config: HrmConfig,
    /// The model.
    pub model: Hrm,
    /// A random batch of [`BenchSetup::batch_size`] rows on the model's device.
    pub batch: ActBatch,
    /// The reference's loss head (stablemax, Q weight 0.5).
    pub head: LossHead,
    /// AdamATan2 over the network and sign-SGD over the puzzle table.
    pub optimizers: Optimizers,
    /// The carry training continues from (`None` before the first step).
    pub carry: Option<ActCarry>,
}

impl BenchSetup {
    /// Builds the model of `preset` in `dtype` on `device` with `seed`, and a random batch:
    /// tokens and labels uniform in `[1, 11)`, puzzle identifier 0 for every row.
    ///
    /// # Errors
    /// When the model or the optimiser cannot be built.
    pub fn new(
        preset: BenchPreset,
        dtype: ForwardDtype,
        device: Device,
        seed: i64,
    ) -> Result<Self> {
        Self::with_batch_size(preset, dtype, device, seed, preset.batch_size())
    }

    /// As [`BenchSetup::new`] with `batch_size` rows instead of the preset's own batch size:
    /// a GPU is measured at the batch it is trained with (the reference's Sudoku run uses 768),
    /// where the preset's small CPU batches only time kernel launches.
    ///
    /// # Errors
    /// When `batch_size` is not positive, or the model or the optimiser cannot be built.
    pub fn with_batch_size(
        preset: BenchPreset,
        dtype: ForwardDtype,
        device: Device,
        seed: i64,
        batch_size: i64,
    ) -> Result<Self> {
        if batch_size < 1 {
            return Err(TrainError::Config {
                key: "batch_size".into(),
                reason: format!("the bench batch size must be at least 1, got {batch_size}"),
            });
        }
        let mut config = preset.config();
        config.forward_dtype = dtype;
        let (b, s, v) = (batch_size, config.seq_len as i64, config.vocab_size as i64);
        let (model, batch) = crate::seeded::with_seed(seed, || -> Result<_> {
            let model = Hrm::new(&config, device)?;
            let batch = ActBatch {
                inputs: Tensor::randint_low(1, v, [b, s], (Kind::Int64, device)),
                labels: Tensor::randint_low(1, v, [b, s], (Kind::Int64, device)),
                puzzle_identifiers: Tensor::zeros([b], (Kind::Int64, device)),
            };
            Ok((model, batch))
        })?;
        let adam = AdamAtan2::new(model.params().trainable(), AdamAtan2Config::default())?;
        let puzzle = model.params().puzzle_table().map(|table| PuzzleOptimizer {
            table,
            cfg: SignSgdConfig { weight_decay: 0.1 },
        });
        Ok(BenchSetup {
            preset,
            config,
            model,
            batch,
            head: LossHead::default(),
            optimizers: Optimizers {
                adam,
                puzzle,
                parallel: None,
            },
            carry: None,
        })
    }

    /// Rows per step.
    pub fn batch_size(&self) -> i64 {
        self.batch.inputs.size()[0]
    }

    /// The model's device.
    pub fn device(&self) -> Device {
        self.model.params().device()
    }

    /// One full training step ([`act_train_step`]: the ACT call with its Q-target pass, the
    /// loss, the backward pass, sign-SGD and AdamATan2), continuing from the previous carry.
    ///
    /// # Errors
    /// As [`act_train_step`].
    pub fn train_step(&mut self) -> Result<()> {
        let global_batch_size = self.batch_size() as usize;
        let (carry, _metrics) = act_train_step(
            &self.model,
            self.carry.take(),
            &self.batch,
            &self.head,
            &mut self.optimizers,
            BENCH_RATES,
            global_batch_size,
        )?;
        self.carry = Some(carry);
        Ok(())
    }

    /// The training step without the optimisers: the ACT call with its Q-target pass, the
    /// loss and `(loss / B).backward()`, then the gradients are cleared. This is the work the
    /// comparison with the reference times (its AdamATan2 runs only on CUDA).
    pub fn train_step_no_optim(&mut self) {
        let carry = self
            .carry
            .take()
            .unwrap_or_else(|| ActCarry::initial(&self.model, &self.batch));
        let (carry, out) = act_step(&self.model, &carry, &self.batch, Mode::Train);
        let step = self.head.act(&carry, &out);
        (step.loss * (1.0 / self.batch_size() as f64)).backward();
        self.optimizers.adam.zero_grad();
        self.carry = Some(carry);
    }

    /// The training step's forward and backward pass captured in a CUDA graph, continuing from
    /// the current carry (see [`GraphedTrainStep::capture`]).
    ///
    /// # Errors
    /// When the model's device cannot capture CUDA graphs, or the step cannot be captured.
    pub fn capture_train_step(&mut self) -> Result<GraphedTrainStep> {
        let global_batch_size = self.batch_size() as usize;
        GraphedTrainStep::capture(
            &self.model,
            &self.head,
            &mut self.optimizers.adam,
            &self.batch,
            self.carry.as_ref(),
            global_batch_size,
        )
    }

    /// [`BenchSetup::train_step`] through `graph`: a replay, then the eager updates.
    ///
    /// # Errors
    /// As [`GraphedTrainStep::step`].
    pub fn graphed_train_step(&mut self, graph: &mut GraphedTrainStep) -> Result<()> {
        graph.step(&self.batch, &mut self.optimizers, BENCH_RATES)?;
        Ok(())
    }

    /// [`BenchSetup::train_step_no_optim`] through `graph`: a replay only.
    ///
    /// # Errors
    /// As [`GraphedTrainStep::replay`].
    pub fn graphed_train_step_no_optim(&mut self, graph: &mut GraphedTrainStep) -> Result<()> {
        graph.replay(&self.batch)
    }

    /// The evaluation rollout captured in a CUDA graph.
    ///
    /// # Errors
    /// When the model's device cannot capture CUDA graphs, or the rollout cannot be captured.
    pub fn capture_eval(&self) -> Result<GraphedEvalRollout> {
        GraphedEvalRollout::capture(
            &self.model,
            &self.head,
            &self.batch,
            self.config.halt_max_steps as i64,
        )
    }

    /// Compares the captured steps with the eager ones on this setup's batch: the training
    /// step's loss and gradients from the same carry (they do not depend on the random halting
    /// exploration, which only decides the next carry), and the carry after an evaluation
    /// rollout. Leaves the weights, the gradients (cleared) and the carry as they were.
    ///
    /// # Errors
    /// When either graph cannot be captured or replayed.
    pub fn graph_check(&mut self) -> Result<GraphCheck> {
        let start = self.carry.as_ref().map_or_else(
            || ActCarry::initial(&self.model, &self.batch),
            ActCarry::copy,
        );
        let global_batch_size = self.batch_size() as usize;
        // Captured from the current carry, which `start` copies.
        let mut graph = self.capture_train_step()?;
        let adam = &mut self.optimizers.adam;
        adam.zero_grad();
        let (next, out) = act_step(&self.model, &start, &self.batch, Mode::Train);
        let eager_loss = self.head.act(&next, &out).loss * (1.0 / global_batch_size as f64);
        eager_loss.backward();
        let eager_grads: Vec<Tensor> = adam.grads().map(|g| g.copy()).collect();
        graph.replay(&self.batch)?;
        let graph_grads: Vec<Tensor> = adam.grads().collect();
        let train_loss_rel = relative_difference(
            &[eager_loss.detach()],
            &[graph.scaled_loss().shallow_clone()],
        );
        let train_grads_rel = relative_difference(&eager_grads, &graph_grads);
        adam.zero_grad();

        let eager = self.eval_rollout();
        let mut rollout = self.capture_eval()?;
        rollout.run(&self.batch)?;
        let graphed = rollout.carry();
        let eval_state_rel = relative_difference(
            &[eager.inner.z_h, eager.inner.z_l],
            &[
                graphed.inner.z_h.shallow_clone(),
                graphed.inner.z_l.shallow_clone(),
            ],
        );
        Ok(GraphCheck {
            train_loss_rel,
            train_grads_rel,
            eval_state_rel,
        })
    }

    /// An evaluation rollout: `halt_max_steps` ACT calls in evaluation mode from a fresh
    /// carry, each followed by the loss head (as the reference's evaluation loop), all under
    /// `no_grad`. Returns the final carry.
    pub fn eval_rollout(&self) -> ActCarry {
        let steps = self.config.halt_max_steps as i64;
        eval_rollout(&self.model, &self.batch, &self.head, steps).0
    }
}

/// How far the CUDA-graph replays of [`BenchSetup::graph_check`] are from the eager steps:
/// each is `max |eager - graphed| / max |eager|` over the tensors compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphCheck {
    /// The training step's `loss / global_batch_size`.
    pub train_loss_rel: f64,
    /// Every parameter gradient of the training step together.
    pub train_grads_rel: f64,
    /// `z_H` and `z_L` after an evaluation rollout.
    pub eval_state_rel: f64,
}

impl GraphCheck {
    /// The largest of the three differences.
    pub fn worst(&self) -> f64 {
        self.train_loss_rel
            .max(self.train_grads_rel)
            .max(self.eval_state_rel)
    }
}

/// `max |a - b| / max |a|` over paired tensors, in float64 (0 when `a` is all zeros and equals
/// `b`; infinite when the shapes differ).
fn relative_difference(a: &[Tensor], b: &[Tensor]) -> f64 {
    let _guard = tch::no_grad_guard();
    let mut diff = 0.0f64;
    let mut scale = 0.0f64;
    for (x, y) in a.iter().zip(b) {
        if x.size() != y.size() {
            return f64::INFINITY;
        }
        let (x, y) = (x.to_kind(Kind::Double), y.to_kind(Kind::Double));
        diff = diff.max((&x - &y).abs().max().double_value(&[]));
        scale = scale.max(x.abs().max().double_value(&[]));
    }
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    if scale > 0.0 {
        diff / scale
    } else if diff == 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chosen_batch_size_replaces_the_presets_and_zero_is_refused() {
        let mut setup = BenchSetup::with_batch_size(
            BenchPreset::Tiny,
            ForwardDtype::Float32,
            Device::Cpu,
            0,
            3,
        )
        .expect("bench setup");
        assert_eq!(setup.batch_size(), 3);
        assert_eq!(setup.batch.labels.size(), [3, setup.config.seq_len as i64]);
        setup.train_step().expect("a training step at batch 3");
        let zero = BenchSetup::with_batch_size(
            BenchPreset::Tiny,
            ForwardDtype::Float32,
            Device::Cpu,
            0,
            0,
        );
        assert!(matches!(zero, Err(TrainError::Config { ref key, .. }) if key == "batch_size"));
    }

    #[test]
    fn cuda_graphs_on_the_cpu_are_a_clear_error() {
        let mut setup = BenchSetup::with_batch_size(
            BenchPreset::Tiny,
            ForwardDtype::Float32,
            Device::Cpu,
            0,
            2,
        )
        .expect("bench setup");
        let err = setup
            .capture_train_step()
            .expect_err("no CUDA graphs on the CPU");
        assert!(err.to_string().contains("need a CUDA device"), "{err}");
        let err = setup.capture_eval().expect_err("no CUDA graphs on the CPU");
        assert!(err.to_string().contains("need a CUDA device"), "{err}");
        assert!(setup.graph_check().is_err());
        // Nothing ran: the setup still trains eagerly from the initial carry.
        assert!(setup.carry.is_none());
        setup.train_step().expect("an eager step after the refusal");
    }

    /// The captured training step and rollout agree with the eager ones, in float32 and
    /// bfloat16, and the graphed step trains. Needs a GPU: `scripts/gpu_check.py` runs it
    /// there (`--ignored`).
    #[test]
    #[ignore = "needs a CUDA GPU"]
    fn graph_replays_match_the_eager_steps_on_a_gpu() {
        assert!(
            hrm_core::cuda_graph::cuda_graphs_built(),
            "this build has no CUDA graphs"
        );
        assert!(tch::Cuda::is_available(), "no CUDA device");
        for (dtype, tol) in [
            (ForwardDtype::Float32, 1e-4),
            (ForwardDtype::Bfloat16, 2e-2),
        ] {
            let mut setup =
                BenchSetup::with_batch_size(BenchPreset::Tiny, dtype, Device::Cuda(0), 0, 8)
                    .expect("bench setup");
            setup.config.halt_max_steps = 3;
            setup.train_step().expect("eager step");
            let check = setup.graph_check().expect("graph check");
            assert!(check.worst() <= tol, "{dtype:?}: {check:?}");
            // Replays with the optimisers in between change the weights and keep the loss
            // finite; the carry advances (rows count their steps).
            let mut graph = setup.capture_train_step().expect("capture");
            let first = |s: &BenchSetup| s.model.params().trainable()[0].1.copy();
            let before = first(&setup);
            for _ in 0..3 {
                setup.graphed_train_step(&mut graph).expect("graphed step");
            }
            assert!(
                !before.equal(&first(&setup)),
                "{dtype:?}: the weights did not change"
            );
            assert!(graph.scaled_loss().double_value(&[]).is_finite());
            let steps = graph.carry().steps.max().int64_value(&[]);
            assert!(steps >= 1, "{dtype:?}: the carry did not advance");
        }
    }

    #[test]
    fn relative_difference_measures_the_worst_element() {
        let a = [
            Tensor::from_slice(&[1.0f32, -4.0]),
            Tensor::from_slice(&[2.0f32]),
        ];
        let b = [
            Tensor::from_slice(&[1.0f32, -4.0]),
            Tensor::from_slice(&[1.0f32]),
        ];
        assert!((relative_difference(&a, &b) - 0.25).abs() < 1e-12);
        assert_eq!(relative_difference(&a, &a), 0.0);
        let short = [Tensor::from_slice(&[1.0f32])];
        assert_eq!(relative_difference(&a[..1], &short), f64::INFINITY);
    }

    #[test]
    fn names_round_trip_and_unknown_ones_are_errors() {
        for p in BenchPreset::ALL {
            assert_eq!(p.name().parse::<BenchPreset>().expect("preset"), p);
        }
        assert!(matches!(
            "huge".parse::<BenchPreset>(),
            Err(TrainError::Config { .. })
        ));
    }

    #[test]
    fn a_tiny_setup_trains_and_rolls_out() {
        let mut setup = BenchSetup::new(BenchPreset::Tiny, ForwardDtype::Float32, Device::Cpu, 0)
            .expect("setup");
        // Fewer rows and ACT steps keep the test quick; the cost per step is what benches
        // measure.
        setup.config.halt_max_steps = 2;
        setup.batch = ActBatch {
            inputs: setup.batch.inputs.narrow(0, 0, 4),
            labels: setup.batch.labels.narrow(0, 0, 4),
            puzzle_identifiers: setup.batch.puzzle_identifiers.narrow(0, 0, 4),
        };
        setup.train_step().expect("step");
        setup.train_step_no_optim();
        let carry = setup.eval_rollout();
        assert_eq!(Vec::<i32>::try_from(carry.steps).expect("i32"), vec![2; 4]);
    }
}
