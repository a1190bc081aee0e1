//! Inference rollouts that record every ACT step: the Q-halt and Q-continue logits of each
//! row at each step, the step at which each row halts under the learned rule, the prediction at
//! that step and at the last step run, and (for chosen rows) the prediction after every step.
//!
//! The reference's evaluation (`evaluate` in `pretrain.py`, [`crate::eval::evaluate`] here)
//! always runs `halt_max_steps` ACT steps and keeps only the last one. A model used as a tool
//! halts when its Q head says so: the training rule of the model's [`HaltRule`] (`q_halt >
//! q_continue` for HRM, `q_halt > 0` for TRM's default), without exploration, applied per row at
//! inference, with a step cap (the HRM paper, section 2.3, "inference-time scaling"; the cap is
//! `halt_max_steps` unless [`RolloutOptions::max_steps`] raises or lowers it). [`HaltMode::Max`]
//! always runs the cap, as the reference's evaluation does, and still records where the learned
//! rule would have stopped. Baselines without ACT ([`ArchModel::Direct`]) answer in one step and
//! have no Q values.
//!
//! Two ways to batch rows ([`Batching`]):
//! - [`Batching::Lockstep`] ([`rollout`]): the rows of a batch start together and the batch
//!   keeps stepping until every row has halted; a halted row's answer is frozen at its halting
//!   step. Always used for [`HaltMode::Max`], where every row runs the same steps, so that it
//!   stays the reference's evaluation to the bit.
//! - [`Batching::Continuous`] ([`continuous`], the default for [`HaltMode::Learned`]): a row
//!   that halts leaves the batch at once and the next puzzle takes its slot, its carry reset by
//!   the ACT wrapper's own reset of halted rows ([`hrm_act::act_step`]). No row waits for a
//!   slower one, so the compute spent is the sum of the steps each puzzle needs.
//!
//! Both give every row the answer it would get alone (rows never interact): the same tokens and
//! step counts, and Q logits equal up to the rounding of batched kernels.
//!
//! [`steps`] scores every step of a rollout against labels, for accuracy-against-steps curves.

pub mod continuous;
pub mod steps;

use std::collections::BTreeMap;
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use hrm_act::{act_step, ActBatch, ActCarry, IGNORE_LABEL_ID};
use hrm_core::{CoreDims, HaltRule, Mode};

use crate::arch::ArchModel;
use crate::error::{Result, TrainError};

/// When a row stops computing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HaltMode {
    /// Halt when the Q head says so (the model's [`HaltRule`], no exploration), at the latest
    /// after `halt_max_steps`.
    #[default]
    Learned,
    /// Always run `halt_max_steps` ACT steps (the reference's evaluation).
    Max,
}

impl HaltMode {
    /// `learned` or `max`.
    pub fn name(self) -> &'static str {
        match self {
            HaltMode::Learned => "learned",
            HaltMode::Max => "max",
        }
    }
}

impl std::fmt::Display for HaltMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for HaltMode {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "learned" => Ok(HaltMode::Learned),
            "max" => Ok(HaltMode::Max),
            other => Err(TrainError::Config {
                key: "halt".into(),
                reason: format!("`{other}` is not one of learned, max"),
            }),
        }
    }
}

/// The logistic function, for turning Q logits into probabilities.
pub fn sigmoid(x: f32) -> f64 {
    1.0 / (1.0 + (-f64::from(x)).exp())
}

/// Whether the learned rule halts on these Q logits.
pub fn learned_rule_halts(rule: HaltRule, q_halt: f32, q_continue: f32) -> bool {
    match rule {
        HaltRule::QHaltAboveContinue => q_halt > q_continue,
        HaltRule::QHaltPositive => q_halt > 0.0,
    }
}

/// What one rollout keeps of one row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowResult {
    /// The answer under the rollout's [`HaltMode`]: the prediction at the learned halting step
    /// ([`HaltMode::Learned`]) or after `halt_max_steps` ([`HaltMode::Max`]); `S` tokens.
    pub prediction: Vec<i32>,
    /// The prediction at the learned halting step (equal to `prediction` under
    /// [`HaltMode::Learned`]).
    pub learned_prediction: Vec<i32>,
    /// ACT steps the answer used (1-based).
    pub halt_step: usize,
    /// The step at which the learned rule halts (or `halt_max_steps`), in either mode.
    pub learned_halt_step: usize,
    /// Q-halt logit of every step run, `[steps]` (empty for models without a Q head).
    pub q_halt_logits: Vec<f32>,
    /// Q-continue logit of every step run, `[steps]` (empty for models without a Q head).
    pub q_continue_logits: Vec<f32>,
    /// For traced rows: the prediction after every step run, `[steps][S]`.
    pub step_predictions: Option<Vec<Vec<i32>>>,
}

impl RowResult {
    /// `sigmoid(q_halt)` of steps `1..=halt_step` (empty without a Q head).
    pub fn q_halt_probs(&self) -> Vec<f64> {
        self.q_halt_logits
            .iter()
            .take(self.halt_step)
            .map(|&q| sigmoid(q))
            .collect()
    }

    /// `sigmoid(q_continue)` of steps `1..=halt_step` (empty without a Q head).
    pub fn q_continue_probs(&self) -> Vec<f64> {
        self.q_continue_logits
            .iter()
            .take(self.halt_step)
            .map(|&q| sigmoid(q))
            .collect()
    }

    /// The Q-halt logit at the answer's step; 0 (probability one half) without a Q head, as
    /// [`crate::eval::evaluate`] reports for such models.
    pub fn q_halt_at_answer(&self) -> f32 {
        self.q_halt_logits
            .get(self.halt_step.saturating_sub(1))
            .copied()
            .unwrap_or(0.0)
    }
}

/// How the rows of a learned-halting rollout share the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Batching {
    /// A halted row leaves the batch and the next puzzle takes its slot ([`continuous`]).
    #[default]
    Continuous,
    /// The rows of a batch start together and the batch runs until its slowest row halts
    /// ([`rollout`]).
    Lockstep,
}

impl Batching {
    /// `continuous` or `lockstep`.
    pub fn name(self) -> &'static str {
        match self {
            Batching::Continuous => "continuous",
            Batching::Lockstep => "lockstep",
        }
    }
}

impl std::fmt::Display for Batching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Batching {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "continuous" => Ok(Batching::Continuous),
            "lockstep" => Ok(Batching::Lockstep),
            other => Err(TrainError::Config {
                key: "batching".into(),
                reason: format!("`{other}` is not one of continuous, lockstep"),
            }),
        }
    }
}

/// How to run rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutOptions {
    /// When rows stop.
    pub halt: HaltMode,
    /// Rows (global indices over everything solved) whose every step's prediction is kept.
    pub trace_rows: Vec<usize>,
    /// The step cap (test-time steps); `None` is the model's `halt_max_steps`. It may exceed
    /// `halt_max_steps`: the model then runs past the steps it was trained for. Ignored by
    /// models without ACT.
    pub max_steps: Option<usize>,
    /// How learned-halting rows share a batch ([`HaltMode::Max`] always runs in lockstep).
    pub batching: Batching,
}

impl RolloutOptions {
    /// The step cap for a model of `dims`: [`RolloutOptions::max_steps`] or `halt_max_steps`.
    ///
    /// # Errors
    /// [`TrainError::Config`] (key `max_steps`) for a cap of 0.
    pub fn step_cap(&self, dims: &CoreDims) -> Result<usize> {
        match self.max_steps {
            Some(0) => Err(TrainError::Config {
                key: "max_steps".into(),
                reason: "the step cap must be at least 1".into(),
            }),
            Some(n) => Ok(n),
            None => Ok(dims.halt_max_steps.max(1) as usize),
        }
    }

    /// Whether these options run through [`continuous::solve_continuous`] for `model`.
    pub fn is_continuous(&self, model: &ArchModel) -> bool {
        self.halt == HaltMode::Learned
            && self.batching == Batching::Continuous
            && matches!(model, ArchModel::Recurrent(_))
    }
}

/// The result of solving many rows.
#[derive(Debug, Clone, PartialEq)]
pub struct SolveRun {
    /// One result per input row, in input order.
    pub rows: Vec<RowResult>,
    /// Wall seconds of each batch (device synchronised), in order. A continuous run is one
    /// batch of all its rows.
    pub batch_seconds: Vec<f64>,
    /// Rows per batch, in order.
    pub batch_sizes: Vec<usize>,
    /// ACT calls (model forwards) made.
    pub calls: usize,
    /// Rows computed over all calls (a batch of 8 rows stepped 4 times is 32): the compute
    /// spent, including rows that had halted but waited for their batch.
    pub row_steps: usize,
}

impl SolveRun {
    /// Wall seconds over all batches.
    pub fn total_seconds(&self) -> f64 {
        self.batch_seconds.iter().sum()
    }

    /// Rows solved per second over all batches.
    pub fn rows_per_second(&self) -> f64 {
        self.rows.len() as f64 / self.total_seconds().max(1e-12)
    }

    /// Mean ACT steps of the answers (`halt_step`).
    pub fn mean_steps(&self) -> f64 {
        self.rows.iter().map(|r| r.halt_step as f64).sum::<f64>() / self.rows.len().max(1) as f64
    }

    /// The index of the batch that row `row` ran in.
    pub fn batch_of(&self, row: usize) -> usize {
        let mut end = 0;
        for (i, n) in self.batch_sizes.iter().enumerate() {
            end += n;
            if row < end {
                return i;
            }
        }
        self.batch_sizes.len().saturating_sub(1)
    }
}

/// Solves `n` rows (`inputs` is `[n * S]`, `puzzle_identifiers` `[n]`) with at most
/// `batch_size` rows computed together: continuously ([`continuous::solve_continuous`]) when
/// [`RolloutOptions::is_continuous`], else in lockstep batches of `batch_size` ([`rollout`]).
///
/// # Errors
/// [`TrainError::Shape`] for inputs that are not `n * S` long or a zero batch size,
/// [`TrainError::Config`] for a step cap of 0, and the range errors of
/// [`ActBatch::from_host`] for tokens or identifiers the model cannot take (checked on the
/// host before anything reaches the device).
pub fn solve_rows(
    model: &ArchModel,
    inputs: &[i32],
    puzzle_identifiers: &[i32],
    batch_size: usize,
    opts: &RolloutOptions,
    device: Device,
) -> Result<SolveRun> {
    let dims = model.dims();
    let s = dims.seq_len as usize;
    let n = puzzle_identifiers.len();
    if batch_size == 0 {
        return Err(TrainError::Shape(
            "the batch size must be at least 1".into(),
        ));
    }
    if inputs.len() != n * s {
        return Err(TrainError::Shape(format!(
            "{} input tokens for {n} rows of {s}",
            inputs.len()
        )));
    }
    let cap = opts.step_cap(&dims)?;
    if let (true, ArchModel::Recurrent(core)) = (opts.is_continuous(model), model) {
        return continuous::solve_continuous(
            core.as_ref(),
            inputs,
            puzzle_identifiers,
            batch_size,
            opts,
            device,
        );
    }
    let mut run = SolveRun {
        rows: Vec::with_capacity(n),
        batch_seconds: Vec::new(),
        batch_sizes: Vec::new(),
        calls: 0,
        row_steps: 0,
    };
    let mut start = 0;
    while start < n {
        let end = (start + batch_size).min(n);
        let traced: Vec<usize> = opts
            .trace_rows
            .iter()
            .filter(|&&r| (start..end).contains(&r))
            .map(|&r| r - start)
            .collect();
        let labels = vec![IGNORE_LABEL_ID as i32; (end - start) * s];
        let batch = ActBatch::from_host(
            &inputs[start * s..end * s],
            &labels,
            &puzzle_identifiers[start..end],
            &dims,
            device,
        )?;
        synchronize(device);
        let t0 = Instant::now();
        let rows = rollout(model, &batch, opts.halt, cap, &traced)?;
        synchronize(device);
        run.batch_seconds.push(t0.elapsed().as_secs_f64());
        run.batch_sizes.push(end - start);
        // Every row of a lockstep batch is computed until the batch's last halting step.
        let calls = rows
            .iter()
            .map(|r| r.q_halt_logits.len().max(1))
            .max()
            .unwrap_or(0);
        run.calls += calls;
        run.row_steps += calls * (end - start);
        run.rows.extend(rows);
        start = end;
    }
    Ok(run)
}

/// Waits for the device's queued work (a no-op on the CPU), so timings are honest.
pub fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// One lockstep rollout of `batch` from a fresh carry, at most `max_steps` ACT steps per row
/// (`halt_max_steps` in the reference's evaluation). `trace` lists rows (of this batch) whose
/// prediction after every step is kept.
///
/// With `max_steps == halt_max_steps` and [`HaltMode::Max`], every ACT call is the one
/// [`crate::eval::evaluate`] makes, so the predictions and Q logits are the same to the bit.
///
/// # Errors
/// When results cannot be read back from the device.
pub fn rollout(
    model: &ArchModel,
    batch: &ActBatch,
    halt: HaltMode,
    max_steps: usize,
    trace: &[usize],
) -> Result<Vec<RowResult>> {
    let _guard = tch::no_grad_guard();
    let dims = model.dims();
    let b = batch.batch_size() as usize;
    let s = dims.seq_len as usize;
    match model {
        ArchModel::Direct(direct) => {
            let out = direct.forward(&batch.core_input(), Mode::Eval);
            let pred = to_host_tokens(&out.logits.argmax(-1, false))?;
            Ok((0..b)
                .map(|r| {
                    let p = pred[r * s..(r + 1) * s].to_vec();
                    RowResult {
                        prediction: p.clone(),
                        learned_prediction: p.clone(),
                        halt_step: 1,
                        learned_halt_step: 1,
                        q_halt_logits: Vec::new(),
                        q_continue_logits: Vec::new(),
                        step_predictions: trace.contains(&r).then(|| vec![p]),
                    }
                })
                .collect())
        }
        ArchModel::Recurrent(core) => {
            let max_steps = max_steps.max(1);
            let mut carry = ActCarry::initial(core.as_ref(), batch);
            let mut learned_step: Vec<Option<usize>> = vec![None; b];
            let mut q_halt: Vec<Vec<f32>> = vec![Vec::new(); b];
            let mut q_cont: Vec<Vec<f32>> = vec![Vec::new(); b];
            let mut traces: BTreeMap<usize, Vec<Vec<i32>>> =
                trace.iter().map(|&r| (r, Vec::new())).collect();
            let mut learned_pred: Option<Tensor> = None;
            let mut last_pred: Option<Tensor> = None;
            for step in 1..=max_steps {
                let (next, out) = act_step(core.as_ref(), &carry, batch, Mode::Eval);
                carry = next;
                if step >= dims.halt_max_steps.max(1) as usize {
                    // The wrapper marks rows halted at `halt_max_steps`, which would reset them
                    // on the next call; past the trained cap they keep their state and run on.
                    // (At `halt_max_steps` itself this is after the last call: nothing changes.)
                    carry.halted = carry.halted.zeros_like();
                }
                let pred = out.logits.argmax(-1, false); // [b, S]
                let qh: Vec<f32> = Vec::try_from(
                    out.q_halt_logits
                        .to_kind(Kind::Float)
                        .to_device(Device::Cpu),
                )?;
                let qc: Vec<f32> = Vec::try_from(
                    out.q_continue_logits
                        .to_kind(Kind::Float)
                        .to_device(Device::Cpu),
                )?;
                let mut newly = vec![false; b];
                for r in 0..b {
                    q_halt[r].push(qh[r]);
                    q_cont[r].push(qc[r]);
                    if learned_step[r].is_none()
                        && (step == max_steps || learned_rule_halts(dims.halt_rule, qh[r], qc[r]))
                    {
                        learned_step[r] = Some(step);
                        newly[r] = true;
                    }
                }
                for (&r, steps) in traces.iter_mut() {
                    steps.push(to_host_tokens(&pred.get(r as i64))?);
                }
                let newly_t = Tensor::from_slice(&newly)
                    .to_device(pred.device())
                    .view([b as i64, 1]);
                learned_pred = Some(match learned_pred {
                    None => pred.shallow_clone(),
                    Some(prev) => pred.where_self(&newly_t, &prev),
                });
                last_pred = Some(pred);
                if halt == HaltMode::Learned && learned_step.iter().all(Option::is_some) {
                    break;
                }
            }
            let learned = match &learned_pred {
                Some(t) => to_host_tokens(t)?,
                None => vec![0; b * s],
            };
            let last = match &last_pred {
                Some(t) => to_host_tokens(t)?,
                None => vec![0; b * s],
            };
            Ok((0..b)
                .map(|r| {
                    let learned_halt_step = learned_step[r].unwrap_or(max_steps);
                    let lp = learned[r * s..(r + 1) * s].to_vec();
                    let (prediction, halt_step) = match halt {
                        HaltMode::Learned => (lp.clone(), learned_halt_step),
                        HaltMode::Max => (last[r * s..(r + 1) * s].to_vec(), max_steps),
                    };
                    RowResult {
                        prediction,
                        learned_prediction: lp,
                        halt_step,
                        learned_halt_step,
                        q_halt_logits: std::mem::take(&mut q_halt[r]),
                        q_continue_logits: std::mem::take(&mut q_cont[r]),
                        step_predictions: traces.remove(&r),
                    }
                })
                .collect())
        }
    }
}

/// A device tensor of token ids as host `i32`s, flattened.
fn to_host_tokens(t: &Tensor) -> Result<Vec<i32>> {
    Ok(Vec::try_from(
        t.to_kind(Kind::Int).to_device(Device::Cpu).reshape([-1]),
    )?)
}

/// Whether `prediction` equals `labels` at every scored position (`labels` as stored in a
/// dataset: positions equal to `ignore` or to -100 are not scored). Rows with no scored position
/// count as not exact, as in the reference's metrics.
pub fn is_exact(prediction: &[i32], labels: &[i32], ignore: Option<i32>) -> bool {
    let mut scored = 0;
    for (&p, &l) in prediction.iter().zip(labels) {
        if l == IGNORE_LABEL_ID as i32 || Some(l) == ignore {
            continue;
        }
        scored += 1;
        if p != l {
            return false;
        }
    }
    scored > 0
}

/// Share of scored positions predicted right (0 when none is scored).
pub fn token_accuracy(prediction: &[i32], labels: &[i32], ignore: Option<i32>) -> f64 {
    let (mut right, mut scored) = (0usize, 0usize);
    for (&p, &l) in prediction.iter().zip(labels) {
        if l == IGNORE_LABEL_ID as i32 || Some(l) == ignore {
            continue;
        }
        scored += 1;
        right += usize::from(p == l);
    }
    if scored == 0 {
        0.0
    } else {
        right as f64 / scored as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hrm_core::{Hrm, HrmConfig};

    fn tiny_model(halt_max_steps: usize) -> ArchModel {
        let mut cfg = HrmConfig::tiny();
        cfg.hidden_size = 32;
        cfg.num_heads = 2;
        cfg.puzzle_emb_ndim = 0;
        cfg.seq_len = 16;
        cfg.halt_max_steps = halt_max_steps;
        let core = crate::seeded::with_seed(0, || Hrm::new(&cfg, Device::Cpu)).expect("model");
        ArchModel::Recurrent(Box::new(core))
    }

    #[test]
    fn learned_halting_follows_the_q_rule_and_max_runs_every_step() {
        let model = tiny_model(3);
        let dims = model.dims();
        let inputs: Vec<i32> = (0..5 * 16).map(|i| i % 5 + 1).collect();
        let ids = vec![0; 5];
        let max = solve_rows(
            &model,
            &inputs,
            &ids,
            2,
            &RolloutOptions {
                halt: HaltMode::Max,
                trace_rows: vec![0, 3],
                ..RolloutOptions::default()
            },
            Device::Cpu,
        )
        .expect("max");
        assert_eq!(max.batch_sizes, vec![2, 2, 1]);
        assert_eq!(max.batch_of(4), 2);
        for (r, row) in max.rows.iter().enumerate() {
            assert_eq!(row.halt_step, 3);
            assert_eq!(row.q_halt_logits.len(), 3);
            // The learned step is the first where the rule fires, else the cap.
            let first = (0..3)
                .find(|&k| {
                    learned_rule_halts(
                        dims.halt_rule,
                        row.q_halt_logits[k],
                        row.q_continue_logits[k],
                    )
                })
                .map_or(3, |k| k + 1);
            assert_eq!(row.learned_halt_step, first, "row {r}");
            assert_eq!(row.step_predictions.is_some(), r == 0 || r == 3);
            if let Some(steps) = &row.step_predictions {
                assert_eq!(steps.len(), 3);
                assert_eq!(steps[2], row.prediction);
                assert_eq!(steps[row.learned_halt_step - 1], row.learned_prediction);
            }
        }
        let learned = solve_rows(
            &model,
            &inputs,
            &ids,
            5,
            &RolloutOptions::default(),
            Device::Cpu,
        )
        .expect("learned");
        for (a, b) in learned.rows.iter().zip(&max.rows) {
            assert_eq!(a.halt_step, b.learned_halt_step);
            assert_eq!(a.prediction, b.learned_prediction);
        }
    }

    #[test]
    fn bad_shapes_and_sizes_are_errors() {
        let model = tiny_model(2);
        let err = solve_rows(
            &model,
            &[1; 15],
            &[0],
            1,
            &RolloutOptions::default(),
            Device::Cpu,
        )
        .expect_err("short");
        assert!(matches!(err, TrainError::Shape(_)), "{err}");
        assert!("sometimes".parse::<HaltMode>().is_err());
        assert_eq!("max".parse::<HaltMode>().expect("max"), HaltMode::Max);
    }

    #[test]
    fn exactness_ignores_unscored_positions() {
        assert!(is_exact(&[1, 2, 3], &[1, -100, 3], None));
        assert!(is_exact(&[1, 2, 3], &[1, 0, 3], Some(0)));
        assert!(!is_exact(&[1, 2, 3], &[1, 2, 4], None));
        assert!(!is_exact(&[1], &[-100], None));
        assert!((token_accuracy(&[1, 2, 3, 4], &[1, 2, 0, 0], None) - 0.5).abs() < 1e-12);
    }
}
