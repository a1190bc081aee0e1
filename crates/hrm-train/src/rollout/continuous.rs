//! Continuous batching for ACT inference with learned halting: a batch of slots, each working
//! on one puzzle; a puzzle that halts under the learned rule leaves its slot at once and the
//! next puzzle of the queue takes it, until every puzzle is done.
//!
//! The reference (and [`super::rollout`]) runs a batch until its slowest row halts, so with
//! learned halting most of the compute goes to rows that have already answered. Here the
//! compute spent is the sum of the steps each puzzle needs, plus a partly filled batch while
//! the queue drains.
//!
//! The slot reset is the ACT wrapper's own: [`hrm_act::act_step`] resets the rows of the carry
//! marked `halted` (their `z_H`, `z_L` to the initial states, their step count to 0) and gives
//! them the new batch's row, exactly as training hands halted rows new puzzles. This module only
//! decides which rows are halted (the learned rule, or the step cap) and which puzzle comes
//! next; when the queue is empty, finished rows are dropped from the carry so the tail of the
//! run does not compute empty slots.
//!
//! Each puzzle gets the answer a one-puzzle rollout with the same halting gives: the same
//! tokens and step count, since rows never interact; its Q logits agree up to the rounding of
//! kernels run on batches of different sizes.

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use hrm_act::{act_step, ActBatch, ActCarry, IGNORE_LABEL_ID};
use hrm_core::{InnerCarry, Mode, RecurrentCore};

use super::{learned_rule_halts, synchronize, HaltMode, RolloutOptions, RowResult, SolveRun};
use crate::error::{Result, TrainError};

/// One slot of the batch: the puzzle it works on and what has been recorded of it so far.
struct Slot {
    /// The puzzle's index in the input.
    puzzle: usize,
    /// ACT steps taken on this puzzle.
    steps: usize,
    /// Q-halt logit of every step taken.
    q_halt: Vec<f32>,
    /// Q-continue logit of every step taken.
    q_continue: Vec<f32>,
    /// For traced puzzles: the prediction after every step.
    trace: Option<Vec<Vec<i32>>>,
}

/// Solves `n` puzzles (`inputs` `[n * S]`, `puzzle_identifiers` `[n]`, already checked to be
/// `n * S` long by the caller) with `slots` rows computed together, each halting under the
/// learned rule (or at [`RolloutOptions::step_cap`]).
///
/// Under [`HaltMode::Max`] every puzzle runs the cap, so this is a lockstep run in waves (the
/// reference's evaluation is [`super::rollout`]); `learned_halt_step` is still recorded, but
/// `learned_prediction` is then the final prediction, since no step but the last is kept.
///
/// The result is one "batch" of all `n` rows whose time is the whole run's.
///
/// # Errors
/// [`TrainError::Shape`] for zero slots, [`TrainError::Config`] for a step cap of 0, the range
/// errors of [`ActBatch::from_host`] for tokens or identifiers the model cannot take (checked
/// on the host as each puzzle enters the batch), and errors reading results back.
pub fn solve_continuous(
    core: &dyn RecurrentCore,
    inputs: &[i32],
    puzzle_identifiers: &[i32],
    slots: usize,
    opts: &RolloutOptions,
    device: Device,
) -> Result<SolveRun> {
    let _guard = tch::no_grad_guard();
    let dims = core.dims();
    let s = dims.seq_len as usize;
    let n = puzzle_identifiers.len();
    if slots == 0 {
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
    let mut results: Vec<Option<RowResult>> = vec![None; n];
    let mut run = SolveRun {
        rows: Vec::new(),
        batch_seconds: Vec::new(),
        batch_sizes: Vec::new(),
        calls: 0,
        row_steps: 0,
    };
    synchronize(device);
    let t0 = Instant::now();

    // The first puzzles fill the slots; the initial carry is all halted, so the first call
    // resets every row and takes them.
    let first = slots.min(n);
    let mut queue = first..n;
    let mut active: Vec<Slot> = (0..first).map(|p| new_slot(p, opts)).collect();
    let mut fresh = if first > 0 {
        rows_batch(inputs, puzzle_identifiers, 0..first, &dims, device)?
    } else {
        empty_batch(&dims, device)
    };
    let mut carry = ActCarry::initial(core, &fresh);

    while !active.is_empty() {
        let (next, out) = act_step(core, &carry, &fresh, Mode::Eval);
        carry = next;
        run.calls += 1;
        run.row_steps += active.len();
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
        let pred = out.logits.argmax(-1, false); // [b, S]
        let mut done: Vec<usize> = Vec::new();
        for (r, slot) in active.iter_mut().enumerate() {
            slot.steps += 1;
            slot.q_halt.push(qh[r]);
            slot.q_continue.push(qc[r]);
            if let Some(steps) = slot.trace.as_mut() {
                steps.push(to_host_tokens(&pred.get(r as i64))?);
            }
            let learned = learned_rule_halts(dims.halt_rule, qh[r], qc[r]);
            if slot.steps >= cap || (opts.halt == HaltMode::Learned && learned) {
                done.push(r);
            }
        }
        if done.is_empty() {
            // Nobody leaves: the same rows run on with their own data.
            carry.halted = carry.halted.zeros_like();
            fresh = same_rows(&carry.current_data);
            continue;
        }

        // The answers of the rows that halted, read back in one transfer.
        let idx = index_tensor(&done, device);
        let answers = to_host_tokens(&pred.index_select(0, &idx))?; // [done * S]
        for (k, &r) in done.iter().enumerate() {
            let slot = &mut active[r];
            let prediction = answers[k * s..(k + 1) * s].to_vec();
            results[slot.puzzle] = Some(RowResult {
                learned_prediction: prediction.clone(),
                prediction,
                halt_step: slot.steps,
                learned_halt_step: first_learned_step(slot, dims.halt_rule, cap),
                q_halt_logits: std::mem::take(&mut slot.q_halt),
                q_continue_logits: std::mem::take(&mut slot.q_continue),
                step_predictions: slot.trace.take(),
            });
        }

        // Halted rows take the next puzzles; the rest of them leave the batch.
        let mut refill: Vec<(usize, usize)> = Vec::new(); // (row before compaction, puzzle)
        let mut keep: Vec<usize> = Vec::with_capacity(active.len());
        let mut is_done = vec![false; active.len()];
        for &r in &done {
            is_done[r] = true;
        }
        for (r, &finished) in is_done.iter().enumerate() {
            if !finished {
                keep.push(r);
            } else if let Some(p) = queue.next() {
                refill.push((r, p));
                keep.push(r);
            }
        }
        if keep.len() < active.len() {
            let kept = index_tensor(&keep, device);
            carry = select_rows(&carry, &kept);
            let mut old: Vec<Option<Slot>> = active.into_iter().map(Some).collect();
            active = keep.iter().filter_map(|&r| old[r].take()).collect();
        }
        if active.is_empty() {
            break;
        }
        // Rows are now numbered after compaction: `keep[new] == old`.
        let position = |old_row: usize| keep.binary_search(&old_row).unwrap_or(old_row);
        let mut reset = vec![false; active.len()];
        let mut rows = Vec::with_capacity(refill.len());
        let mut puzzles = Vec::with_capacity(refill.len());
        for &(r, p) in &refill {
            let row = position(r);
            reset[row] = true;
            rows.push(row);
            puzzles.push(p);
            active[row] = new_slot(p, opts);
        }
        // `halted` is what the wrapper reads to reset rows: exactly the refilled ones.
        carry.halted = Tensor::from_slice(&reset).to_device(device);
        fresh = if rows.is_empty() {
            same_rows(&carry.current_data)
        } else {
            let incoming = rows_batch(inputs, puzzle_identifiers, puzzles, &dims, device)?;
            let at = index_tensor(&rows, device);
            let cur = &carry.current_data;
            ActBatch {
                inputs: cur.inputs.index_copy(0, &at, &incoming.inputs),
                labels: cur.labels.index_copy(0, &at, &incoming.labels),
                puzzle_identifiers: cur.puzzle_identifiers.index_copy(
                    0,
                    &at,
                    &incoming.puzzle_identifiers,
                ),
            }
        };
    }
    synchronize(device);
    run.batch_seconds.push(t0.elapsed().as_secs_f64());
    run.batch_sizes.push(n);
    run.rows = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| TrainError::Shape(format!("puzzle {i} was never answered"))))
        .collect::<Result<_>>()?;
    Ok(run)
}

fn new_slot(puzzle: usize, opts: &RolloutOptions) -> Slot {
    Slot {
        puzzle,
        steps: 0,
        q_halt: Vec::new(),
        q_continue: Vec::new(),
        trace: opts.trace_rows.contains(&puzzle).then(Vec::new),
    }
}

/// The step at which the learned rule fires on a finished slot's Q logits (or the cap).
fn first_learned_step(slot: &Slot, rule: hrm_core::HaltRule, cap: usize) -> usize {
    slot.q_halt
        .iter()
        .zip(&slot.q_continue)
        .position(|(&h, &c)| learned_rule_halts(rule, h, c))
        .map_or(cap.min(slot.steps), |k| k + 1)
}

/// The batch of puzzles `rows` (labels ignored: inference has none), checked on the host.
fn rows_batch(
    inputs: &[i32],
    ids: &[i32],
    rows: impl IntoIterator<Item = usize>,
    dims: &hrm_core::CoreDims,
    device: Device,
) -> Result<ActBatch> {
    let s = dims.seq_len as usize;
    let mut x = Vec::new();
    let mut id = Vec::new();
    for r in rows {
        x.extend_from_slice(&inputs[r * s..(r + 1) * s]);
        id.push(ids[r]);
    }
    let labels = vec![IGNORE_LABEL_ID as i32; x.len()];
    Ok(ActBatch::from_host(&x, &labels, &id, dims, device)?)
}

/// A batch of no rows (for an empty input).
fn empty_batch(dims: &hrm_core::CoreDims, device: Device) -> ActBatch {
    let z = Tensor::zeros([0, dims.seq_len], (Kind::Int64, device));
    ActBatch {
        inputs: z.shallow_clone(),
        labels: z,
        puzzle_identifiers: Tensor::zeros([0], (Kind::Int64, device)),
    }
}

/// The rows' own data as the next call's batch: with no row halted, nothing is taken from it.
fn same_rows(data: &ActBatch) -> ActBatch {
    ActBatch {
        inputs: data.inputs.shallow_clone(),
        labels: data.labels.shallow_clone(),
        puzzle_identifiers: data.puzzle_identifiers.shallow_clone(),
    }
}

/// The carry of rows `keep` (`[k]` int64), in that order.
fn select_rows(carry: &ActCarry, keep: &Tensor) -> ActCarry {
    let data = &carry.current_data;
    ActCarry {
        inner: InnerCarry {
            z_h: carry.inner.z_h.index_select(0, keep), // [k, T, H]
            z_l: carry.inner.z_l.index_select(0, keep),
        },
        steps: carry.steps.index_select(0, keep),
        halted: carry.halted.index_select(0, keep),
        current_data: ActBatch {
            inputs: data.inputs.index_select(0, keep),
            labels: data.labels.index_select(0, keep),
            puzzle_identifiers: data.puzzle_identifiers.index_select(0, keep),
        },
    }
}

fn index_tensor(rows: &[usize], device: Device) -> Tensor {
    let v: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    Tensor::from_slice(&v).to_device(device)
}

fn to_host_tokens(t: &Tensor) -> Result<Vec<i32>> {
    Ok(Vec::try_from(
        t.to_kind(Kind::Int).to_device(Device::Cpu).reshape([-1]),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchModel;
    use crate::rollout::{solve_rows, Batching};
    use hrm_core::{Hrm, HrmConfig};

    fn tiny_core(halt_max_steps: usize) -> Hrm {
        let mut cfg = HrmConfig::tiny();
        cfg.hidden_size = 32;
        cfg.num_heads = 2;
        cfg.puzzle_emb_ndim = 0;
        cfg.seq_len = 16;
        cfg.halt_max_steps = halt_max_steps;
        crate::seeded::with_seed(1, || Hrm::new(&cfg, Device::Cpu)).expect("model")
    }

    #[test]
    fn a_capped_run_takes_cap_steps_and_empty_inputs_give_nothing() {
        let core = tiny_core(2);
        let inputs: Vec<i32> = (0..7 * 16).map(|i| i * 7 % 10 + 1).collect();
        let ids = vec![0; 7];
        let opts = RolloutOptions {
            halt: HaltMode::Max,
            max_steps: Some(5),
            ..RolloutOptions::default()
        };
        let run = solve_continuous(&core, &inputs, &ids, 3, &opts, Device::Cpu).expect("run");
        assert!(run.rows.iter().all(|r| r.halt_step == 5));
        // Waves of 3, 3 and 1 puzzles, each 5 steps: the slots are refilled as they empty.
        assert_eq!(run.calls, 15);
        assert_eq!(run.row_steps, 35);
        let none = solve_continuous(&core, &[], &[], 3, &opts, Device::Cpu).expect("empty");
        assert!(none.rows.is_empty());
        let err = solve_continuous(&core, &inputs, &ids, 0, &opts, Device::Cpu);
        assert!(matches!(err, Err(TrainError::Shape(_))));
        let zero = RolloutOptions {
            max_steps: Some(0),
            ..RolloutOptions::default()
        };
        let err = solve_continuous(&core, &inputs, &ids, 3, &zero, Device::Cpu);
        assert!(matches!(err, Err(TrainError::Config { .. })));
        // A capped continuous run equals the lockstep run of the same cap, row by row.
        let model = ArchModel::Recurrent(Box::new(core));
        let lock = solve_rows(
            &model,
            &inputs,
            &ids,
            7,
            &RolloutOptions {
                batching: Batching::Lockstep,
                ..opts.clone()
            },
            Device::Cpu,
        )
        .expect("lockstep");
        for (a, b) in run.rows.iter().zip(&lock.rows) {
            assert_eq!(a.prediction, b.prediction);
            assert_eq!(a.learned_halt_step, b.learned_halt_step);
        }
    }
}
