//! Evaluation, `evaluate` in the reference's `pretrain.py`: every example of the test split in
//! order (the last batch padded), each batch from a fresh carry, run until every row halts (in
//! evaluation that is always `halt_max_steps` ACT steps); the metrics of that last step are
//! summed over batches per set and divided by the summed `count`.
//!
//! Optionally keeps, per set and in example order, the predicted tokens, the Q-halt logit and
//! the steps of every example, for ARC voting, reports and galleries. On CUDA the rollouts of
//! an ACT model can run as one captured CUDA graph each ([`EvalSettings::cuda_graphs`]).

use std::collections::BTreeMap;

use tch::{Device, Kind, Tensor};

use hrm_act::{eval_rollout, ActBatch, LossHead, MetricValues};
use hrm_core::Mode;
use std::path::Path;

use hrm_data::{Dataset, EvalSampler};

use crate::arch::ArchModel;
use crate::distributed::DataParallel;
use crate::error::Result;
use crate::graphed::GraphedEvalRollout;
use crate::train_step::direct_loss;

pub mod arc;
pub mod outputs;
pub mod vote;

pub use arc::ArcReport;
pub use outputs::SetOutputs;

/// The result of one evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalReport {
    /// Per set, the reference's normalised metrics (`count` kept as is).
    pub sets: BTreeMap<String, MetricValues>,
    /// Over all sets together.
    pub overall: MetricValues,
    /// Per set, the kept outputs (when asked for).
    pub outputs: Option<BTreeMap<String, SetOutputs>>,
    /// ARC voting results, for ARC datasets.
    pub arc: Option<ArcReport>,
}

/// Evaluates `model` on every example of `dataset`.
///
/// # Errors
/// When a batch does not fit the model (values out of range) or the sampler fails.
pub fn evaluate(
    model: &ArchModel,
    dataset: &Dataset,
    head: &LossHead,
    global_batch_size: usize,
    device: Device,
    keep_outputs: bool,
) -> Result<EvalReport> {
    evaluate_sharded(
        model,
        dataset,
        head,
        global_batch_size,
        device,
        EvalSettings {
            keep_outputs,
            ..EvalSettings::default()
        },
    )
}

/// How [`evaluate_sharded`] runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalSettings<'a> {
    /// Keep, per set and in example order, every prediction, Q-halt logit and step count.
    pub keep_outputs: bool,
    /// In a data-parallel run, the ranks: each evaluates its rows of every global batch.
    pub parallel: Option<&'a DataParallel>,
    /// On CUDA, capture an ACT model's rollout in a CUDA graph at the first batch and replay it
    /// for every batch ([`crate::graphed::GraphedEvalRollout`]; every batch has one size, the
    /// last one is padded). Ignored for models without an ACT step.
    pub cuda_graphs: bool,
}

/// [`evaluate`] with [`EvalSettings`]: in a data-parallel run each rank evaluates its rows of
/// every global batch, and the metric sums and kept outputs are reduced so that every rank ends
/// with the whole report; on CUDA the rollouts may replay a CUDA graph.
///
/// # Errors
/// As [`evaluate`], failed collectives, and a rollout that cannot be captured.
pub fn evaluate_sharded(
    model: &ArchModel,
    dataset: &Dataset,
    head: &LossHead,
    global_batch_size: usize,
    device: Device,
    settings: EvalSettings<'_>,
) -> Result<EvalReport> {
    let EvalSettings {
        keep_outputs,
        parallel,
        cuda_graphs,
    } = settings;
    let _guard = tch::no_grad_guard();
    let dims = model.dims();
    let mut sums: BTreeMap<String, MetricValues> = BTreeMap::new();
    let mut outputs: BTreeMap<String, SetOutputs> = BTreeMap::new();
    let rows = match parallel {
        Some(dp) => Some(dp.local_rows(global_batch_size)?),
        None => None,
    };
    // With `cuda_graphs`, the rollout captured at the first batch.
    let mut graph: Option<GraphedEvalRollout> = None;
    for global in EvalSampler::new(dataset, global_batch_size)? {
        let batch = match &rows {
            Some(r) => global.rows(r.clone())?,
            None => global,
        };
        let act_batch = ActBatch::from_host(
            batch
                .inputs
                .as_slice()
                .unwrap_or(&batch.inputs.to_owned().into_raw_vec_and_offset().0),
            batch
                .labels
                .as_slice()
                .unwrap_or(&batch.labels.to_owned().into_raw_vec_and_offset().0),
            batch
                .puzzle_identifiers
                .as_slice()
                .unwrap_or(&batch.puzzle_identifiers.to_vec()),
            &dims,
            device,
        )?;
        let (metrics, logits, q_halt, labels) = match model {
            ArchModel::Recurrent(core) if cuda_graphs => {
                let mut rollout = match graph.take() {
                    Some(g) if g.batch_size() == act_batch.batch_size() => g,
                    _ => GraphedEvalRollout::capture(
                        core.as_ref(),
                        head,
                        &act_batch,
                        dims.halt_max_steps,
                    )?,
                };
                rollout.run(&act_batch)?;
                // Copies: the next replay rewrites the graph's outputs.
                let out = (
                    rollout.metrics().copy(),
                    rollout.logits().copy(),
                    rollout.q_halt_logits().copy(),
                    rollout.carry().current_data.labels.copy(),
                );
                graph = Some(rollout);
                out
            }
            ArchModel::Recurrent(core) => {
                let (carry, out, loss) =
                    eval_rollout(core.as_ref(), &act_batch, head, dims.halt_max_steps);
                (
                    loss.metrics,
                    out.logits,
                    out.q_halt_logits,
                    carry.current_data.labels,
                )
            }
            ArchModel::Direct(direct) => {
                let (loss, out) = direct_loss(direct.as_ref(), &act_batch, head, Mode::Eval);
                let q = Tensor::zeros([act_batch.batch_size()], (Kind::Float, device));
                (
                    loss.metrics,
                    out.logits,
                    q,
                    act_batch.labels.shallow_clone(),
                )
            }
        };
        sums.entry(batch.set.clone())
            .or_default()
            .accumulate(&metrics.to_host());
        if keep_outputs {
            keep(&mut outputs, &batch, dataset, &logits, &q_halt, &labels)?;
        }
    }
    if let Some(dp) = parallel {
        for m in sums.values_mut() {
            *m = dp.sum_metrics(m)?;
        }
        if keep_outputs {
            for out in outputs.values_mut() {
                reduce_outputs(dp, out, device)?;
            }
        }
    }
    let mut overall = MetricValues::default();
    for m in sums.values() {
        overall.accumulate(m);
    }
    Ok(EvalReport {
        sets: sums
            .iter()
            .map(|(k, v)| (k.clone(), v.reduce_eval()))
            .collect(),
        overall: overall.reduce_eval(),
        outputs: keep_outputs.then_some(outputs),
        arc: None,
    })
}

/// For an ARC dataset (one with `test_puzzles.json`) whose evaluation kept its outputs: votes
/// over the augmented views ([`arc::evaluate_arc`]), adds `arc_pass_at_1` and `arc_pass_at_2`
/// to the overall metrics and stores the voting in [`EvalReport::arc`]. Does nothing for other
/// datasets.
///
/// # Errors
/// As [`arc::evaluate_arc`].
pub fn add_arc_voting(report: &mut EvalReport, dataset_dir: &Path, test: &Dataset) -> Result<()> {
    let (true, Some(outputs)) = (arc::is_arc_dataset(dataset_dir), &report.outputs) else {
        return Ok(());
    };
    let voted = arc::evaluate_arc(dataset_dir, test, outputs)?;
    report
        .overall
        .0
        .insert("arc_pass_at_1".into(), voted.pass_at_1);
    report
        .overall
        .0
        .insert("arc_pass_at_2".into(), voted.pass_at_2);
    report.arc = Some(voted);
    Ok(())
}

/// Sums each rank's share of `out` (the rows of other ranks are zero here) so that every rank
/// holds every example's outputs.
fn reduce_outputs(dp: &DataParallel, out: &mut SetOutputs, device: Device) -> Result<()> {
    let mut predictions = Tensor::from_slice(&out.predictions).to_device(device);
    let mut q = Tensor::from_slice(&out.q_halt_logits).to_device(device);
    let exact: Vec<i32> = out.exact.iter().map(|&e| i32::from(e)).collect();
    let mut exact = Tensor::from_slice(&exact).to_device(device);
    for t in [&mut predictions, &mut q, &mut exact] {
        dp.group().all_reduce(t)?;
    }
    out.predictions = Vec::try_from(predictions.to_device(Device::Cpu))?;
    out.q_halt_logits = Vec::try_from(q.to_device(Device::Cpu))?;
    let exact: Vec<i32> = Vec::try_from(exact.to_device(Device::Cpu))?;
    out.exact = exact.into_iter().map(|e| e > 0).collect();
    Ok(())
}

fn keep(
    outputs: &mut BTreeMap<String, SetOutputs>,
    batch: &hrm_data::Batch,
    dataset: &Dataset,
    logits: &Tensor,
    q_halt: &Tensor,
    labels: &Tensor,
) -> Result<()> {
    let set = dataset.set(&batch.set)?;
    let seq_len = dataset.metadata().seq_len;
    let n = set.num_examples();
    let entry = outputs
        .entry(batch.set.clone())
        .or_insert_with(|| SetOutputs {
            seq_len,
            predictions: vec![0; n * seq_len],
            q_halt_logits: vec![0.0; n],
            exact: vec![false; n],
        });
    let pred = logits.argmax(-1, false); // [b, S]
    let mask = labels.ne(hrm_act::IGNORE_LABEL_ID);
    let exact = pred
        .eq_tensor(labels)
        .logical_or(&mask.logical_not())
        .all_dim(-1, false); // [b]
    let pred: Vec<i32> =
        Vec::try_from(pred.to_kind(Kind::Int).to_device(Device::Cpu).reshape([-1]))?;
    let q: Vec<f32> = Vec::try_from(q_halt.to_kind(Kind::Float).to_device(Device::Cpu))?;
    let exact: Vec<bool> = Vec::try_from(exact.to_device(Device::Cpu))?;
    for (row, example) in batch.example_indices.iter().enumerate() {
        if let Some(i) = *example {
            entry.predictions[i * seq_len..(i + 1) * seq_len]
                .copy_from_slice(&pred[row * seq_len..(row + 1) * seq_len]);
            entry.q_halt_logits[i] = q[row];
            entry.exact[i] = exact[row];
        }
    }
    Ok(())
}
