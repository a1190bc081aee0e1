//! The training loop, `launch` and `train_batch` of the reference's `pretrain.py`, with what the
//! reference lacks: resume, checkpoints of the whole state, a step budget and a clean stop.
//!
//! Semantics kept from the reference: the ACT carry persists across batches (halted rows take
//! new examples, running rows keep theirs); one optimiser step per ACT call; the loss is scaled
//! by `1 / global_batch_size`; the learning rate of both optimisers follows the warm-up + cosine
//! schedule over `epochs * total_groups * mean_puzzle_examples / global_batch_size` steps;
//! evaluation every `eval_interval` epochs with full rollouts.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use hrm_act::{ActBatch, ActCarry, LossHead, MetricValues};
use hrm_core::InnerCarry;
use hrm_data::{total_train_steps, Dataset, Prefetch, SamplerState, TrainSampler};

use crate::arc_eval::{evaluate_arc, is_arc_dataset};
use crate::arch::{build_model, ArchModel};
use crate::checkpoint::{self, Checkpoint, CheckpointState, CHECKPOINT_FORMAT};
use crate::config::TrainConfig;
use crate::device::default_forward_dtype;
use crate::error::{Result, TrainError};
use crate::eval::{evaluate, EvalReport};
use crate::optim::{AdamAtan2, AdamAtan2Config, Ema, SignSgdConfig};
use crate::run_dir::{write_atomic, MetricsLine, RunDir};
use crate::schedule::CosineSchedule;
use crate::step::{act_train_step, direct_train_step, Optimizers, PuzzleOptimizer, StepRates};

/// How to run a training job.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The configuration.
    pub config: TrainConfig,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Where to train.
    pub device: Device,
    /// Continue from the run directory's latest checkpoint.
    pub resume: bool,
    /// Draw a progress bar on the terminal.
    pub progress: bool,
    /// Set from outside (Ctrl-C) to stop after the current step with a checkpoint.
    pub stop: Option<Arc<AtomicBool>>,
    /// Stop (with a checkpoint, as on Ctrl-C) once this many steps are done; the schedule
    /// still spans the whole run, so `--resume` continues it unchanged.
    pub stop_at_step: Option<u64>,
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Steps taken (including those before a resume).
    pub steps: u64,
    /// Steps the schedule spans.
    pub total_steps: u64,
    /// Whether the run stopped early on request.
    pub interrupted: bool,
    /// Seconds spent in training steps (this process and resumed ones).
    pub train_seconds: f64,
    /// Training examples per second over this process's steps.
    pub samples_per_sec: f64,
    /// The last logged training metrics.
    pub last_train: Option<MetricValues>,
    /// The last evaluation.
    pub last_eval: Option<EvalReport>,
    /// The last checkpoint written.
    pub checkpoint: Option<PathBuf>,
    /// Trainable parameters of the model.
    pub num_parameters: i64,
}

/// Converts a sampler batch into a device batch, checking every value on the host.
///
/// # Errors
/// When a value is out of the model's range.
pub fn to_act_batch(
    batch: &hrm_data::Batch,
    dims: &hrm_core::CoreDims,
    device: Device,
) -> Result<ActBatch> {
    let inputs = batch.inputs.as_standard_layout();
    let labels = batch.labels.as_standard_layout();
    let ids = batch.puzzle_identifiers.as_standard_layout();
    let slice = |s: Option<&[i32]>| s.map(<[i32]>::to_vec).unwrap_or_default();
    Ok(ActBatch::from_host(
        &slice(inputs.as_slice()),
        &slice(labels.as_slice()),
        &slice(ids.as_slice()),
        dims,
        device,
    )?)
}

/// Running sums of training metrics between two log lines.
#[derive(Default)]
struct Interval {
    sums: MetricValues,
    steps: u64,
    started: Option<Instant>,
}

/// Trains as `opts` says and returns a summary.
///
/// # Errors
/// A missing or unfit dataset, an invalid model config, a checkpoint that cannot be resumed
/// (naming the differing keys), or I/O failures in the run directory.
pub fn train(opts: TrainOptions) -> Result<TrainSummary> {
    let cfg = &opts.config;
    let device = opts.device;
    let train_ds =
        Dataset::open(&cfg.data_path, "train").map_err(|e| dataset_error(&cfg.data_path, e))?;
    let test_ds = match Dataset::open(&cfg.data_path, "test") {
        Ok(ds) => Some(ds),
        Err(_) if !cfg.data_path.join("test").exists() => None,
        Err(e) => return Err(dataset_error(&cfg.data_path, e)),
    };
    let meta = train_ds.metadata().clone();
    let model_table = cfg.resolved_model(&meta, default_forward_dtype(device))?;

    tch::manual_seed(cfg.seed as i64);
    let model = build_model(cfg.arch, &model_table, device)?;
    let dims = model.dims();
    let params = model.params();
    let head = LossHead {
        loss_type: cfg.loss.loss_type,
        q_loss_weight: cfg.loss.q_loss_weight,
    };

    let epoch_steps = total_train_steps(&meta, cfg.epochs, cfg.global_batch_size);
    if epoch_steps == 0 {
        return Err(TrainError::Dataset {
            path: cfg.data_path.clone(),
            reason: format!(
                "{} epochs of {} groups give no full batch of {}",
                cfg.epochs, meta.total_groups, cfg.global_batch_size
            ),
        });
    }
    let total_steps = cfg.max_steps.map_or(epoch_steps, |m| m.min(epoch_steps));
    let schedule = CosineSchedule::new(cfg.lr, cfg.lr_warmup_steps, total_steps, cfg.lr_min_ratio)?;
    let puzzle_schedule = CosineSchedule::new(
        cfg.puzzle_emb_lr,
        cfg.lr_warmup_steps,
        total_steps,
        cfg.lr_min_ratio,
    )?;
    let eval_every = cfg
        .eval_interval
        .map(|i| ((epoch_steps as f64 * i as f64 / cfg.epochs as f64).floor() as u64).max(1));

    let mut opt = Optimizers {
        adam: AdamAtan2::new(
            params.trainable(),
            AdamAtan2Config {
                betas: (cfg.beta1, cfg.beta2),
                weight_decay: cfg.weight_decay,
            },
        )?,
        puzzle: params.puzzle_table().map(|table| PuzzleOptimizer {
            table,
            cfg: SignSgdConfig {
                weight_decay: cfg.puzzle_emb_weight_decay,
            },
        }),
    };
    let mut ema = if cfg.ema {
        Some(Ema::new(&params.trainable(), cfg.ema_rate)?)
    } else {
        None
    };

    // The run directory, and the state to continue from.
    let mut run = RunDir::open(&opts.run_dir)?;
    let ckpt_root = run.checkpoints();
    let mut step = 0u64;
    let mut prior_seconds = 0.0;
    let mut carry: Option<ActCarry> = None;
    let sampler = match (opts.resume, checkpoint::latest(&ckpt_root)?) {
        (true, Some(dir)) => {
            let ckpt = checkpoint::load(&dir)?;
            check_resumable(&ckpt.state, cfg, &model_table)?;
            restore(&ckpt, &model, &mut opt, ema.as_mut(), &mut carry, device)?;
            step = ckpt.state.step;
            prior_seconds = ckpt.state.train_seconds;
            eprintln!("[train] resumed from {} at step {step}", dir.display());
            TrainSampler::restore(&train_ds, &ckpt.state.sampler)?
        }
        (true, None) => {
            return Err(TrainError::Checkpoint(format!(
                "--resume: no checkpoint in {} (start without --resume)",
                ckpt_root.display()
            )))
        }
        (false, Some(_)) => {
            return Err(TrainError::Checkpoint(format!(
                "{} already holds checkpoints: pass --resume to continue that run, or choose another run directory",
                opts.run_dir.display()
            )))
        }
        (false, None) => TrainSampler::new(&train_ds, cfg.global_batch_size, cfg.seed)?,
    };
    let mut resolved = cfg.clone();
    resolved.model = model_table.clone();
    run.write_config(&resolved.to_toml_string())?;

    // Batches come from a background thread, each with the sampler position after it.
    let mut sampler = sampler;
    let batches = std::iter::from_fn(move || {
        let batch = sampler.next()?;
        Some((batch, sampler.state()))
    });
    let mut prefetch = Prefetch::new(batches, 4);

    let bar = progress_bar(opts.progress, total_steps, step);
    let mut steps_here = 0u64;
    let mut interval = Interval::default();
    let mut last_train = None;
    let mut last_eval = None;
    let mut last_eval_step = None;
    let mut last_checkpoint = None;
    let mut sampler_state: Option<SamplerState> = None;
    let mut interrupted = false;
    let mut train_seconds = 0.0;

    while step < total_steps {
        let requested = opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
        if requested || opts.stop_at_step.is_some_and(|s| step >= s) {
            interrupted = true;
            break;
        }
        let Some((batch, state_after)) = prefetch.next() else {
            return Err(TrainError::Dataset {
                path: cfg.data_path.clone(),
                reason: "the training sampler ran dry".into(),
            });
        };
        let t0 = Instant::now();
        step += 1;
        let rates = StepRates {
            lr: schedule.lr(step),
            puzzle_emb_lr: puzzle_schedule.lr(step),
        };
        let act_batch = to_act_batch(&batch, &dims, device)?;
        // Exploration draws from libtorch's generator: seed it per step so a resumed run draws
        // what an uninterrupted one would.
        tch::manual_seed((cfg.seed.wrapping_mul(1_000_003) ^ step) as i64);
        let metrics = match &model {
            ArchModel::Recurrent(core) => {
                let (next, m) = act_train_step(
                    core.as_ref(),
                    carry.take(),
                    &act_batch,
                    &head,
                    &mut opt,
                    rates,
                    cfg.global_batch_size,
                )?;
                carry = Some(next);
                m
            }
            ArchModel::Direct(direct) => direct_train_step(
                direct.as_ref(),
                &act_batch,
                &head,
                &mut opt,
                rates,
                cfg.global_batch_size,
            )?,
        };
        if let Some(ema) = ema.as_mut() {
            ema.update(&params.trainable());
        }
        sampler_state = Some(state_after);
        steps_here += 1;
        interval.started.get_or_insert(t0);
        interval.sums.accumulate(&metrics.to_host());
        interval.steps += 1;
        train_seconds += t0.elapsed().as_secs_f64();

        if step % cfg.log_interval == 0 || step == total_steps {
            let elapsed = interval
                .started
                .map_or(0.0, |s| s.elapsed().as_secs_f64())
                .max(1e-9);
            let reduced = reduce_interval(&interval, cfg.global_batch_size);
            let line = MetricsLine::Train {
                step,
                epoch: sampler_state.as_ref().map_or(0, |s| s.epoch),
                lr: rates.lr,
                samples_per_sec: (interval.steps as f64 * cfg.global_batch_size as f64) / elapsed,
                metrics: reduced.clone(),
            };
            run.log(&line)?;
            if let Some(bar) = &bar {
                bar.set_message(format!(
                    "loss {:.3} acc {:.3} exact {:.3}",
                    reduced.get("lm_loss"),
                    reduced.get("accuracy"),
                    reduced.get("exact_accuracy")
                ));
            }
            last_train = Some(reduced);
            interval = Interval::default();
        }
        if let Some(bar) = &bar {
            bar.set_position(step);
        }

        let eval_due = eval_every.is_some_and(|e| step % e == 0);
        if eval_due {
            let report = run_eval(
                &model,
                ema.as_ref(),
                &model_table,
                cfg,
                test_ds.as_ref(),
                &head,
                device,
                &mut run,
                step,
            )?;
            if let (Some(bar), Some(r)) = (&bar, &report) {
                bar.println(format!("[eval step {step}] {}", format_eval(r)));
            }
            last_eval = report.or(last_eval);
            last_eval_step = Some(step);
            if cfg.checkpoint_every_eval {
                let ck = build_checkpoint(
                    step,
                    total_steps,
                    prior_seconds + train_seconds,
                    sampler_state.as_ref(),
                    cfg,
                    &model_table,
                    &model,
                    &opt,
                    ema.as_ref(),
                    carry.as_ref(),
                )?;
                last_checkpoint = Some(checkpoint::save(&ckpt_root, &ck, cfg.keep_checkpoints)?);
            }
        }
    }
    drop(prefetch);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }

    if !interrupted && last_eval_step != Some(step) {
        let report = run_eval(
            &model,
            ema.as_ref(),
            &model_table,
            cfg,
            test_ds.as_ref(),
            &head,
            device,
            &mut run,
            step,
        )?;
        last_eval = report.or(last_eval);
    }
    if steps_here > 0 || last_checkpoint.is_none() {
        if let Some(state) = sampler_state.as_ref() {
            let ck = build_checkpoint(
                step,
                total_steps,
                prior_seconds + train_seconds,
                Some(state),
                cfg,
                &model_table,
                &model,
                &opt,
                ema.as_ref(),
                carry.as_ref(),
            )?;
            last_checkpoint = Some(checkpoint::save(&ckpt_root, &ck, cfg.keep_checkpoints)?);
        }
    }
    crate::plot::training_curves(run.path())?;
    Ok(TrainSummary {
        steps: step,
        total_steps,
        interrupted,
        train_seconds: prior_seconds + train_seconds,
        samples_per_sec: if train_seconds > 0.0 {
            steps_here as f64 * cfg.global_batch_size as f64 / train_seconds
        } else {
            0.0
        },
        last_train,
        last_eval,
        checkpoint: last_checkpoint,
        num_parameters: model.params().num_trainable(),
    })
}

fn dataset_error(path: &std::path::Path, e: hrm_data::DataError) -> TrainError {
    TrainError::Dataset {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Losses divided by `global_batch_size * steps`, the rest by the summed `count`.
fn reduce_interval(interval: &Interval, global_batch_size: usize) -> MetricValues {
    interval
        .sums
        .reduce_train(global_batch_size * interval.steps.max(1) as usize)
}

/// A one-line summary of an evaluation.
pub fn format_eval(r: &EvalReport) -> String {
    let o = &r.overall;
    format!(
        "exact {:.4} acc {:.4} q_halt_acc {:.3} steps {:.2} lm_loss {:.4} ({} examples)",
        o.get("exact_accuracy"),
        o.get("accuracy"),
        o.get("q_halt_accuracy"),
        o.get("steps"),
        o.get("lm_loss"),
        o.get("count")
    )
}

#[allow(clippy::too_many_arguments)]
fn run_eval(
    model: &ArchModel,
    ema: Option<&Ema>,
    model_table: &toml::Table,
    cfg: &TrainConfig,
    test_ds: Option<&Dataset>,
    head: &LossHead,
    device: Device,
    run: &mut RunDir,
    step: u64,
) -> Result<Option<EvalReport>> {
    let Some(ds) = test_ds else { return Ok(None) };
    let arc = is_arc_dataset(&cfg.data_path);
    let keep = cfg.eval_save_outputs || arc;
    let mut report = match ema {
        Some(ema) => {
            // Evaluate a copy whose trainable weights are the EMA shadow; buffers and the puzzle
            // table stay live, as in the reference.
            let copy = build_model(cfg.arch, model_table, device)?;
            copy.params().copy_from(model.params())?;
            tch::no_grad(|| -> Result<()> {
                for ((_, p), (_, s)) in copy.params().trainable().iter().zip(ema.shadow()) {
                    p.shallow_clone().f_copy_(s)?;
                }
                Ok(())
            })?;
            evaluate(&copy, ds, head, cfg.global_batch_size, device, keep)?
        }
        None => evaluate(model, ds, head, cfg.global_batch_size, device, keep)?,
    };
    let out_dir = run.path().join("eval").join(format!("step_{step:08}"));
    if let (true, Some(outputs)) = (arc, &report.outputs) {
        let arc_report = evaluate_arc(&cfg.data_path, ds, outputs)?;
        report
            .overall
            .0
            .insert("arc_pass_at_1".into(), arc_report.pass_at_1);
        report
            .overall
            .0
            .insert("arc_pass_at_2".into(), arc_report.pass_at_2);
        std::fs::create_dir_all(&out_dir).map_err(|source| TrainError::Io {
            path: out_dir.clone(),
            source,
        })?;
        write_atomic(
            &out_dir.join("submission.json"),
            pretty_json(&arc_report.submission()).as_bytes(),
        )?;
        write_atomic(
            &out_dir.join("arc_results.json"),
            pretty_json(&arc_report).as_bytes(),
        )?;
        report.arc = Some(arc_report);
    }
    run.log(&MetricsLine::Eval {
        step,
        sets: report.sets.clone(),
        overall: report.overall.clone(),
    })?;
    if cfg.eval_save_outputs {
        if let Some(outputs) = &report.outputs {
            crate::outputs::save(&out_dir, outputs)?;
        }
    }
    Ok(Some(report))
}

/// Pretty JSON of values that always serialise (plain data, no maps with non-string keys).
fn pretty_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Shallow handles of named tensors.
trait ShallowVec {
    fn to_vec_shallow(&self) -> Vec<(String, Tensor)>;
}

impl ShallowVec for [(String, Tensor)] {
    fn to_vec_shallow(&self) -> Vec<(String, Tensor)> {
        self.iter()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect()
    }
}

#[allow(clippy::too_many_arguments)]
fn build_checkpoint(
    step: u64,
    total_steps: u64,
    train_seconds: f64,
    sampler: Option<&SamplerState>,
    cfg: &TrainConfig,
    model_table: &toml::Table,
    model: &ArchModel,
    opt: &Optimizers,
    ema: Option<&Ema>,
    carry: Option<&ActCarry>,
) -> Result<Checkpoint> {
    let sampler = sampler
        .cloned()
        .ok_or_else(|| TrainError::Checkpoint("no batch consumed yet".into()))?;
    let mut optimizer = Vec::new();
    let mut adam_steps = std::collections::BTreeMap::new();
    for (name, st) in opt.adam.named_state() {
        optimizer.push((format!("adam.exp_avg.{name}"), st.exp_avg.shallow_clone()));
        optimizer.push((
            format!("adam.exp_avg_sq.{name}"),
            st.exp_avg_sq.shallow_clone(),
        ));
        adam_steps.insert(name.to_string(), st.step);
    }
    if let Some(ema) = ema {
        for (name, s) in ema.shadow() {
            optimizer.push((format!("ema.{name}"), s.shallow_clone()));
        }
    }
    if let Some(c) = carry {
        optimizer.push(("carry.z_h".into(), c.inner.z_h.shallow_clone()));
        optimizer.push(("carry.z_l".into(), c.inner.z_l.shallow_clone()));
        optimizer.push(("carry.steps".into(), c.steps.shallow_clone()));
        optimizer.push(("carry.halted".into(), c.halted.shallow_clone()));
        optimizer.push(("carry.inputs".into(), c.current_data.inputs.shallow_clone()));
        optimizer.push(("carry.labels".into(), c.current_data.labels.shallow_clone()));
        optimizer.push((
            "carry.puzzle_identifiers".into(),
            c.current_data.puzzle_identifiers.shallow_clone(),
        ));
    }
    Ok(Checkpoint {
        state: CheckpointState {
            format_version: CHECKPOINT_FORMAT,
            step,
            total_steps,
            sampler,
            adam_steps,
            config_toml: cfg.to_toml_string(),
            model: model_table.clone(),
            train_seconds,
        },
        model: model.params().all(),
        optimizer,
    })
}

/// Refuses a resume whose config changes the model's shapes, the architecture or the batch.
fn check_resumable(
    state: &CheckpointState,
    cfg: &TrainConfig,
    model_table: &toml::Table,
) -> Result<()> {
    let saved: TrainConfig = TrainConfig::from_toml_str(&state.config_toml, &[]).map_err(|e| {
        TrainError::Checkpoint(format!("the checkpoint's config cannot be read: {e}"))
    })?;
    let mut problems = Vec::new();
    if saved.arch != cfg.arch {
        problems.push(format!(
            "arch (checkpoint {}, config {})",
            saved.arch.name(),
            cfg.arch.name()
        ));
    }
    if saved.global_batch_size != cfg.global_batch_size {
        problems.push(format!(
            "global_batch_size (checkpoint {}, config {})",
            saved.global_batch_size, cfg.global_batch_size
        ));
    }
    problems.extend(
        checkpoint::model_differences(&state.model, model_table)
            .into_iter()
            .map(|d| format!("model.{d}")),
    );
    if !problems.is_empty() {
        return Err(TrainError::Checkpoint(format!(
            "cannot resume: the config differs from the checkpoint's in {}",
            problems.join(", ")
        )));
    }
    Ok(())
}

fn restore(
    ckpt: &Checkpoint,
    model: &ArchModel,
    opt: &mut Optimizers,
    ema: Option<&mut Ema>,
    carry: &mut Option<ActCarry>,
    device: Device,
) -> Result<()> {
    let weights: Vec<(String, Tensor)> = ckpt.model.to_vec_shallow();
    model.params().load_named(
        std::path::Path::new("checkpoint model.safetensors"),
        weights,
    )?;
    let find = |name: &str| {
        ckpt.optimizer
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.to_device(device))
    };
    let missing =
        |name: &str| TrainError::Checkpoint(format!("optimizer.safetensors lacks `{name}`"));
    for (name, _) in model.params().trainable() {
        let m = find(&format!("adam.exp_avg.{name}"))
            .ok_or_else(|| missing(&format!("adam.exp_avg.{name}")))?;
        let v = find(&format!("adam.exp_avg_sq.{name}"))
            .ok_or_else(|| missing(&format!("adam.exp_avg_sq.{name}")))?;
        let steps = ckpt.state.adam_steps.get(&name).copied().unwrap_or(0);
        opt.adam.set_state(&name, &m, &v, steps)?;
    }
    if let Some(ema) = ema {
        let shadow: Vec<(String, Tensor)> = model
            .params()
            .trainable()
            .into_iter()
            .map(|(name, _)| {
                find(&format!("ema.{name}"))
                    .map(|t| (name.clone(), t))
                    .ok_or_else(|| missing(&format!("ema.{name}")))
            })
            .collect::<Result<_>>()?;
        ema.set_shadow(&shadow)?;
    }
    if let (ArchModel::Recurrent(_), Some(z_h)) = (model, find("carry.z_h")) {
        let get = |n: &str| find(n).ok_or_else(|| missing(n));
        *carry = Some(ActCarry {
            inner: InnerCarry {
                z_h,
                z_l: get("carry.z_l")?,
            },
            steps: get("carry.steps")?.to_kind(Kind::Int),
            halted: get("carry.halted")?.to_kind(Kind::Bool),
            current_data: ActBatch {
                inputs: get("carry.inputs")?,
                labels: get("carry.labels")?,
                puzzle_identifiers: get("carry.puzzle_identifiers")?,
            },
        });
    }
    Ok(())
}

fn progress_bar(enabled: bool, total: u64, position: u64) -> Option<indicatif::ProgressBar> {
    if !enabled {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} step {pos}/{len} [{bar:30}] {per_sec} ETA {eta} | {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_position(position);
    Some(bar)
}
