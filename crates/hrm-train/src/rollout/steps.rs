//! Accuracy against test-time steps: one lockstep rollout to the largest step count wanted,
//! scoring every row against its labels after every step, from which the accuracy at any
//! smaller cap follows, for both halting modes.
//!
//! A rollout capped at `N` steps makes exactly the first `N` ACT calls of a rollout capped at
//! `M > N` (the carry never looks ahead), so one pass gives the whole curve: under
//! [`HaltMode::Max`] the answer at cap `N` is the prediction after step `N`; under
//! [`HaltMode::Learned`] it is the prediction at the first step where the learned rule fires,
//! or after step `N` when it has not fired by then. Steps past the trained `halt_max_steps` are
//! test-time compute the model never trained for (TRM reports Sudoku accuracy rising with it).

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use hrm_act::{act_step, ActBatch, ActCarry, IGNORE_LABEL_ID};
use hrm_core::{HaltRule, Mode};

use super::{learned_rule_halts, HaltMode};
use crate::arch::ArchModel;
use crate::error::{Result, TrainError};

/// One row's score after every step.
#[derive(Debug, Clone, PartialEq)]
pub struct RowSteps {
    /// Whether the prediction after step `k + 1` was exact.
    pub exact: Vec<bool>,
    /// Share of scored tokens right after step `k + 1`.
    pub token_accuracy: Vec<f32>,
    /// Q-halt logit of step `k + 1` (empty for models without a Q head).
    pub q_halt_logits: Vec<f32>,
    /// Q-continue logit of step `k + 1` (empty for models without a Q head).
    pub q_continue_logits: Vec<f32>,
}

impl RowSteps {
    /// The step (1-based) whose answer counts under `halt` with cap `cap`.
    pub fn answer_step(&self, halt: HaltMode, rule: HaltRule, cap: usize) -> usize {
        let run = self.exact.len().min(cap).max(1);
        match halt {
            HaltMode::Max => run,
            HaltMode::Learned => self
                .q_halt_logits
                .iter()
                .zip(&self.q_continue_logits)
                .take(run)
                .position(|(&h, &c)| learned_rule_halts(rule, h, c))
                .map_or(run, |k| k + 1),
        }
    }
}

/// Accuracy at one step cap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepPoint {
    /// The step cap.
    pub steps: usize,
    /// Share exact after `steps` steps ([`HaltMode::Max`]).
    pub exact_max: f64,
    /// Share of scored tokens right after `steps` steps.
    pub token_accuracy_max: f64,
    /// Share exact under learned halting capped at `steps`.
    pub exact_learned: f64,
    /// Share of scored tokens right under learned halting capped at `steps`.
    pub token_accuracy_learned: f64,
    /// Mean steps used under learned halting capped at `steps`.
    pub mean_steps_learned: f64,
}

/// The sweep's points for `caps` over scored rows.
pub fn sweep_points(rows: &[RowSteps], rule: HaltRule, caps: &[usize]) -> Vec<SweepPoint> {
    let n = rows.len().max(1) as f64;
    caps.iter()
        .map(|&cap| {
            let mut p = SweepPoint {
                steps: cap,
                exact_max: 0.0,
                token_accuracy_max: 0.0,
                exact_learned: 0.0,
                token_accuracy_learned: 0.0,
                mean_steps_learned: 0.0,
            };
            for r in rows {
                let m = r.answer_step(HaltMode::Max, rule, cap) - 1;
                let l = r.answer_step(HaltMode::Learned, rule, cap) - 1;
                p.exact_max += f64::from(u8::from(r.exact[m]));
                p.token_accuracy_max += f64::from(r.token_accuracy[m]);
                p.exact_learned += f64::from(u8::from(r.exact[l]));
                p.token_accuracy_learned += f64::from(r.token_accuracy[l]);
                p.mean_steps_learned += (l + 1) as f64;
            }
            p.exact_max /= n;
            p.token_accuracy_max /= n;
            p.exact_learned /= n;
            p.token_accuracy_learned /= n;
            p.mean_steps_learned /= n;
            p
        })
        .collect()
}

/// Rows with their labels, host-side.
#[derive(Debug, Clone, Copy)]
pub struct LabelledRows<'a> {
    /// `[n * S]` input tokens.
    pub inputs: &'a [i32],
    /// `[n * S]` label tokens.
    pub labels: &'a [i32],
    /// `[n]` puzzle identifiers.
    pub puzzle_identifiers: &'a [i32],
    /// A label value that is not scored besides -100 (the dataset's `ignore_label_id`).
    pub ignore: Option<i32>,
}

/// Runs `rows` in lockstep batches of `batch_size` for `max_steps` steps each and scores every
/// step. Labels equal to `rows.ignore` or -100 are not scored; a row without scored tokens is
/// never exact, as in [`super::is_exact`]. Models without ACT answer once: their rows have one
/// step.
///
/// # Errors
/// [`TrainError::Shape`] for mismatched lengths or a zero batch size or step count, the range
/// errors of [`ActBatch::from_host`], errors reading results back.
pub fn score_steps(
    model: &ArchModel,
    rows: LabelledRows<'_>,
    batch_size: usize,
    max_steps: usize,
    device: Device,
) -> Result<Vec<RowSteps>> {
    let LabelledRows {
        inputs,
        labels,
        puzzle_identifiers,
        ignore,
    } = rows;
    let _guard = tch::no_grad_guard();
    let dims = model.dims();
    let s = dims.seq_len as usize;
    let n = puzzle_identifiers.len();
    if batch_size == 0 || max_steps == 0 {
        return Err(TrainError::Shape(
            "the batch size and the step count must be at least 1".into(),
        ));
    }
    if inputs.len() != n * s || labels.len() != n * s {
        return Err(TrainError::Shape(format!(
            "{} input and {} label tokens for {n} rows of {s}",
            inputs.len(),
            labels.len()
        )));
    }
    let labels: Vec<i32> = labels
        .iter()
        .map(|&l| {
            if Some(l) == ignore {
                IGNORE_LABEL_ID as i32
            } else {
                l
            }
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let end = (start + batch_size).min(n);
        let b = end - start;
        let batch = ActBatch::from_host(
            &inputs[start * s..end * s],
            &labels[start * s..end * s],
            &puzzle_identifiers[start..end],
            &dims,
            device,
        )?;
        let mut rows: Vec<RowSteps> = (0..b)
            .map(|_| RowSteps {
                exact: Vec::new(),
                token_accuracy: Vec::new(),
                q_halt_logits: Vec::new(),
                q_continue_logits: Vec::new(),
            })
            .collect();
        let mask = batch.labels.ne(IGNORE_LABEL_ID); // [b, S]
        let scored = mask.sum_dim_intlist(-1, false, Kind::Float); // [b]
        let score = |logits: &Tensor, rows: &mut [RowSteps]| -> Result<()> {
            let right = logits
                .argmax(-1, false)
                .eq_tensor(&batch.labels)
                .logical_and(&mask); // [b, S]
            let n_right = right.sum_dim_intlist(-1, false, Kind::Float); // [b]
            let exact = n_right.eq_tensor(&scored).logical_and(&scored.gt(0.0));
            let acc = &n_right / scored.clamp_min(1.0);
            let exact: Vec<bool> = Vec::try_from(exact.to_device(Device::Cpu))?;
            let acc: Vec<f32> = Vec::try_from(acc.to_device(Device::Cpu))?;
            for (r, row) in rows.iter_mut().enumerate() {
                row.exact.push(exact[r]);
                row.token_accuracy.push(acc[r]);
            }
            Ok(())
        };
        match model {
            ArchModel::Direct(direct) => {
                let o = direct.forward(&batch.core_input(), Mode::Eval);
                score(&o.logits, &mut rows)?;
            }
            ArchModel::Recurrent(core) => {
                let hms = dims.halt_max_steps.max(1) as usize;
                let mut carry = ActCarry::initial(core.as_ref(), &batch);
                for step in 1..=max_steps {
                    let (next, o) = act_step(core.as_ref(), &carry, &batch, Mode::Eval);
                    carry = next;
                    if step >= hms {
                        // Past the trained cap the rows run on instead of being reset.
                        carry.halted = carry.halted.zeros_like();
                    }
                    score(&o.logits, &mut rows)?;
                    let qh: Vec<f32> =
                        Vec::try_from(o.q_halt_logits.to_kind(Kind::Float).to_device(Device::Cpu))?;
                    let qc: Vec<f32> = Vec::try_from(
                        o.q_continue_logits
                            .to_kind(Kind::Float)
                            .to_device(Device::Cpu),
                    )?;
                    for (r, row) in rows.iter_mut().enumerate() {
                        row.q_halt_logits.push(qh[r]);
                        row.q_continue_logits.push(qc[r]);
                    }
                }
            }
        }
        out.extend(rows);
        start = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(exact: &[bool], qh: &[f32]) -> RowSteps {
        RowSteps {
            exact: exact.to_vec(),
            token_accuracy: exact.iter().map(|&e| if e { 1.0 } else { 0.5 }).collect(),
            q_halt_logits: qh.to_vec(),
            q_continue_logits: vec![0.0; qh.len()],
        }
    }

    #[test]
    fn the_curve_follows_the_cap_and_the_learned_rule() {
        // Row a: halts at step 2 (q_halt > q_continue), exact from step 3 on.
        // Row b: never halts by the rule, exact from step 2 on.
        let rows = vec![
            row(&[false, false, true, true], &[-1.0, 1.0, 1.0, 1.0]),
            row(&[false, true, true, true], &[-1.0, -1.0, -1.0, -1.0]),
        ];
        let rule = HaltRule::QHaltAboveContinue;
        let pts = sweep_points(&rows, rule, &[1, 2, 4]);
        assert_eq!(pts[0].exact_max, 0.0);
        assert_eq!(pts[1].exact_max, 0.5);
        assert_eq!(pts[2].exact_max, 1.0);
        // Learned: a answers at step 2 (wrong) whatever the cap >= 2; b at the cap.
        assert_eq!(pts[2].exact_learned, 0.5);
        assert_eq!(pts[2].mean_steps_learned, 3.0);
        assert_eq!(pts[0].mean_steps_learned, 1.0);
        assert!((pts[1].token_accuracy_learned - 0.75).abs() < 1e-9);
        assert_eq!(rows[0].answer_step(HaltMode::Learned, rule, 9), 2);
        assert_eq!(rows[0].answer_step(HaltMode::Max, rule, 9), 4);
    }
}
