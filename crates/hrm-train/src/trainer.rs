//! The training loop, `launch` and `train_batch` of the reference's `pretrain.py`, with what the
//! reference lacks: resume, checkpoints of the whole state, a step budget and a clean stop.
//!
//! Semantics kept from the reference: the ACT carry persists across batches (halted rows take
//! new examples, running rows keep theirs); one optimiser step per ACT call; the loss is scaled
//! by `1 / global_batch_size`; the learning rate of both optimisers follows the warm-up + cosine
//! schedule over `epochs * total_groups * mean_puzzle_examples / global_batch_size` steps;
//! evaluation every `eval_interval` epochs with full rollouts.
//!
//! What clusters do to runs is handled here: a stop request ([`StopSignal`], SIGINT / SIGTERM
//! in the `hrm` command) finishes the step and writes a checkpoint, a second one abandons the
//! run without writing anything; `--resume` continues from the newest checkpoint that verifies
//! ([`checkpoint::newest_verified`]) and cuts `metrics.jsonl` back to its step; a step whose
//! loss or gradient norm is not finite stops the run, or is skipped (`on_nonfinite`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tch::{Device, Tensor};

use hrm_act::{ActBatch, ActCarry, LossHead, MetricValues};
use hrm_data::{total_train_steps, Dataset, Prefetch, SamplerState, TrainSampler};

use crate::arch::{build_model, ArchModel};
use crate::checkpoint::{self, Checkpoint, CheckpointState, CHECKPOINT_FORMAT};
use crate::config::{OnNonFinite, TrainConfig};
use crate::device::default_forward_dtype;
use crate::distributed::DataParallel;
use crate::error::{Result, TrainError};
use crate::eval::arc::is_arc_dataset;
use crate::eval::{add_arc_voting, evaluate_sharded, EvalReport, EvalSettings};
use crate::graphed::GraphedTrainStep;
use crate::observer::{NoObserver, RunStart, StepEvent, TrainObserver};
use crate::optim::{AdamAtan2, AdamAtan2Config, Ema, SignSgdConfig};
use crate::run_dir::{MetricsLine, RunDir};
use crate::schedule::CosineSchedule;
use crate::seeded;
use crate::train_step::{
    act_train_step, direct_train_step, NonFinite, Optimizers, PuzzleOptimizer, StepOutcome,
    StepRates,
};

/// Under `on_nonfinite = "skip"`, a run that skips this many steps in a row stops with
/// [`TrainError::Diverged`]: its weights no longer give finite values, and skipping more would
/// only spend the budget.
pub const MAX_CONSECUTIVE_SKIPS: u64 = 20;

/// How far a stop request has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopLevel {
    /// No request: keep training.
    Run,
    /// Finish the current step, write a checkpoint, return.
    Stop,
    /// Return after the current step without writing anything more.
    Abandon,
}

/// A stop request shared between the trainer and whoever asks it to stop (a signal handler, a
/// controlling thread). Clones share the request. It only rises: `Run` -> `Stop` -> `Abandon`.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicU8>);

impl StopSignal {
    /// A signal with no request.
    pub fn new() -> Self {
        StopSignal::default()
    }

    /// The current level.
    pub fn level(&self) -> StopLevel {
        match self.0.load(Ordering::SeqCst) {
            0 => StopLevel::Run,
            1 => StopLevel::Stop,
            _ => StopLevel::Abandon,
        }
    }

    /// Asks the run to stop with a checkpoint (no effect once abandoned).
    pub fn request_stop(&self) {
        let _ = self
            .0
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Asks the run to stop without writing a checkpoint.
    pub fn abandon(&self) {
        self.0.store(2, Ordering::SeqCst);
    }

    /// One more request, as a repeated Ctrl-C: the first asks for a stop with a checkpoint,
    /// the next for abandoning. Returns the level now in force.
    pub fn escalate(&self) -> StopLevel {
        let before = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| Some((v + 1).min(2)))
            .unwrap_or(2);
        if before == 0 {
            StopLevel::Stop
        } else {
            StopLevel::Abandon
        }
    }
}

/// Why a run ended before the end of its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A stop request ([`StopLevel::Stop`]): the run wrote a checkpoint; `--resume` continues.
    Requested,
    /// [`TrainOptions::stop_at_step`] was reached: the run wrote a checkpoint.
    StepBudget,
    /// [`StopLevel::Abandon`]: nothing was written after the request.
    Abandoned,
}

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
    /// Raised from outside (Ctrl-C, SIGTERM) to stop after the current step, with a
    /// checkpoint ([`StopLevel::Stop`]) or without ([`StopLevel::Abandon`]).
    pub stop: Option<StopSignal>,
    /// Stop (with a checkpoint, as on Ctrl-C) once this many steps are done; the schedule
    /// still spans the whole run, so `--resume` continues it unchanged.
    pub stop_at_step: Option<u64>,
    /// The data-parallel ranks this process trains with (`None`: one process). Every rank
    /// calls [`train_with`] with the same config and run directory; rank 0 alone writes it.
    pub parallel: Option<DataParallel>,
}

impl TrainOptions {
    /// A fresh run of `config` in `run_dir` on `device`: no resume, no progress bar, no stop
    /// request; set the fields for anything else.
    pub fn new(config: TrainConfig, run_dir: impl Into<PathBuf>, device: Device) -> Self {
        TrainOptions {
            config,
            run_dir: run_dir.into(),
            device,
            resume: false,
            stop: None,
            stop_at_step: None,
            parallel: None,
        }
    }
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Steps taken (including those before a resume).
    pub steps: u64,
    /// Steps the schedule spans.
    pub total_steps: u64,
    /// Whether the run stopped before the end of its schedule (see `stopped`).
    pub interrupted: bool,
    /// Why it stopped early, if it did.
    pub stopped: Option<StopReason>,
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
    /// Seconds this process spent in data-parallel collectives (0 in a single process).
    pub communication_seconds: f64,
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

/// Everything a run holds while it trains: the model and its optimisers, the carry, the
/// position in the schedule, and where results go.
struct Session<'a> {
    cfg: &'a TrainConfig,
    device: Device,
    model: ArchModel,
    model_table: toml::Table,
    head: LossHead,
    opt: Optimizers,
    ema: Option<Ema>,
    test_ds: Option<Dataset>,
    run: RunDir,
    carry: Option<ActCarry>,
    step: u64,
    total_steps: u64,
    /// Sampler position after the last consumed batch (what a checkpoint records).
    sampler_state: Option<SamplerState>,
    /// Seconds in training steps, including those of the runs this one resumes.
    train_seconds: f64,
    /// The data-parallel ranks, if any.
    parallel: Option<DataParallel>,
    /// With `cuda_graphs`, the captured training step (made at the first step); it then holds
    /// the carry, and `carry` is `None`.
    graphed: Option<GraphedTrainStep>,
}

impl Session<'_> {
    /// One optimisation step on `batch`. When the loss or the gradient norm is not finite no
    /// update is applied, the EMA is left alone and the carry restarts (a hidden state that went
    /// non-finite must not reach the next batch).
    fn train_step(&mut self, batch: &hrm_data::Batch, rates: StepRates) -> Result<StepOutcome> {
        let local;
        let batch = match &self.parallel {
            Some(dp) => {
                local = batch.rows(dp.local_rows(batch.len())?)?;
                &local
            }
            None => batch,
        };
        let act_batch = to_act_batch(batch, &self.model.dims(), self.device)?;
        // Exploration draws from libtorch's generator: seed it per step so a resumed run draws
        // what an uninterrupted one would.
        // `seed + rank`, as the reference seeds each rank.
        let rank = self.parallel.as_ref().map_or(0, DataParallel::rank) as u64;
        let seed = ((self.cfg.seed.wrapping_mul(1_000_003) ^ self.step).wrapping_add(rank)) as i64;
        let gbs = self.cfg.global_batch_size;
        if let (true, None, ArchModel::Recurrent(core)) =
            (self.cfg.cuda_graphs, &self.graphed, &self.model)
        {
            // Captured from the carry training continues from; its warm-up steps draw in a
            // seeded section of their own, so every replay below draws what it would in a
            // resumed run.
            let graph = seeded::with_seed(seed, || {
                GraphedTrainStep::capture(
                    core.as_ref(),
                    &self.head,
                    &mut self.opt.adam,
                    &act_batch,
                    self.carry.as_ref(),
                    gbs,
                )
            })?;
            self.graphed = Some(graph);
            self.carry = None;
        }
        let outcome = seeded::with_seed(seed, || match (&self.model, self.graphed.as_mut()) {
            (ArchModel::Recurrent(_), Some(graph)) => graph.step(&act_batch, &mut self.opt, rates),
            (ArchModel::Recurrent(core), None) => {
                let (next, outcome) = act_train_step(
                    core.as_ref(),
                    self.carry.take(),
                    &act_batch,
                    &self.head,
                    &mut self.opt,
                    rates,
                    gbs,
                )?;
                self.carry = Some(next);
                Ok(outcome)
            }
            (ArchModel::Direct(direct), _) => direct_train_step(
                direct.as_ref(),
                &act_batch,
                &self.head,
                &mut self.opt,
                rates,
                gbs,
            ),
        })?;
        if outcome.non_finite.is_some() {
            self.carry = None;
        } else if let Some(ema) = self.ema.as_mut() {
            ema.update(&self.model.params().trainable());
        }
        Ok(outcome)
    }

    /// Evaluates on the test split (if any), logs it, and for ARC votes and writes a submission.
    fn evaluate(&mut self) -> Result<Option<EvalReport>> {
        let Some(ds) = self.test_ds.as_ref() else {
            return Ok(None);
        };
        let cfg = self.cfg;
        let arc = is_arc_dataset(&cfg.data_path);
        let settings = EvalSettings {
            keep_outputs: cfg.eval_save_outputs || arc,
            parallel: self.parallel.as_ref(),
            cuda_graphs: cfg.cuda_graphs,
        };
        let mut report = match &self.ema {
            Some(ema) => {
                // Evaluate a copy whose trainable weights are the EMA shadow; buffers and the
                // puzzle table stay live, as in the reference.
                let copy = build_model(cfg.arch, &self.model_table, self.device)?;
                copy.params().copy_from(self.model.params())?;
                checkpoint::apply_shadow(&copy, ema.shadow())?;
                evaluate_sharded(
                    &copy,
                    ds,
                    &self.head,
                    cfg.global_batch_size,
                    self.device,
                    settings,
                )?
            }
            None => evaluate_sharded(
                &self.model,
                ds,
                &self.head,
                cfg.global_batch_size,
                self.device,
                settings,
            )?,
        };
        let out_dir = self
            .run
            .path()
            .join("eval")
            .join(format!("step_{:08}", self.step));
        add_arc_voting(&mut report, &cfg.data_path, ds)?;
        if !self.is_main() {
            return Ok(Some(report));
        }
        if let Some(voted) = &report.arc {
            voted.write_files(&out_dir)?;
        }
        self.log(&MetricsLine::Eval {
            step: self.step,
            sets: report.sets.clone(),
            overall: report.overall.clone(),
        })?;
        if cfg.eval_save_outputs {
            if let Some(outputs) = &report.outputs {
                crate::eval::outputs::save(&out_dir, outputs)?;
            }
        }
        Ok(Some(report))
    }

    /// Appends a line to `metrics.jsonl` (rank 0 only).
    fn log(&mut self, line: &MetricsLine) -> Result<()> {
        if self.is_main() {
            self.run.log(line)?;
        }
        Ok(())
    }

    /// Whether this process writes the run directory (rank 0, or the only process).
    fn is_main(&self) -> bool {
        self.parallel.as_ref().is_none_or(DataParallel::is_main)
    }

    /// Writes a checkpoint of the current state (none before the first consumed batch). In a
    /// data-parallel run every rank must call it: the carry is gathered into the global batch's
    /// layout, then rank 0 writes.
    fn save_checkpoint(&self) -> Result<Option<PathBuf>> {
        let Some(sampler) = self.sampler_state.clone() else {
            return Ok(None);
        };
        let gathered;
        let carry = self
            .graphed
            .as_ref()
            .map(GraphedTrainStep::carry)
            .or(self.carry.as_ref());
        let carry = match (&self.parallel, carry) {
            (Some(dp), Some(c)) => {
                gathered = crate::distributed::gather_carry(dp, c)?;
                Some(&gathered)
            }
            (_, c) => c,
        };
        if !self.is_main() {
            return Ok(None);
        }
        let (optimizer, adam_steps) =
            checkpoint::optimizer_tensors(&self.opt.adam, self.ema.as_ref(), carry);
        let ckpt = Checkpoint {
            state: CheckpointState {
                format_version: CHECKPOINT_FORMAT,
                step: self.step,
                total_steps: self.total_steps,
                sampler,
                adam_steps,
                config_toml: self.cfg.to_toml_string(),
                model: self.model_table.clone(),
                train_seconds: self.train_seconds,
                // Filled in by `checkpoint::save` from what it writes.
                files: Default::default(),
                linear_routes: checkpoint::PinnedRoute::current(),
            },
            model: self.model.params().all(),
            optimizer,
        };
        Ok(Some(checkpoint::save(
            &self.run.checkpoints(),
            &ckpt,
            self.cfg.keep_checkpoints,
        )?))
    }

    /// Continues from the verified checkpoint `ckpt`: weights, optimiser moments, EMA, carry,
    /// step and time.
    fn restore(&mut self, ckpt: &Checkpoint) -> Result<SamplerState> {
        check_resumable(&ckpt.state, self.cfg, &self.model_table)?;
        // Before any forward pass of this process: the routes the checkpointed process chose.
        checkpoint::PinnedRoute::pin_all(&ckpt.state.linear_routes);
        let device = self.device;
        let params = self.model.params();
        params.load_named(
            std::path::Path::new("checkpoint model.safetensors"),
            ckpt.model.to_vec_shallow(),
        )?;
        ckpt.restore_adam(&mut self.opt.adam, device)?;
        if let Some(ema) = self.ema.as_mut() {
            let names: Vec<String> = params.trainable().into_iter().map(|(n, _)| n).collect();
            let shadow = ckpt
                .ema_shadow(names.iter().map(String::as_str), device)?
                .ok_or_else(|| {
                    TrainError::Checkpoint("optimizer.safetensors holds no EMA shadow".into())
                })?;
            ema.set_shadow(&shadow)?;
        }
        if let ArchModel::Recurrent(_) = &self.model {
            self.carry = match (&self.parallel, ckpt.carry(device)?) {
                (Some(dp), Some(global)) => Some(crate::distributed::local_carry(dp, &global)?),
                (_, carry) => carry,
            };
        }
        self.step = ckpt.state.step;
        self.train_seconds = ckpt.state.train_seconds;
        Ok(ckpt.state.sampler.clone())
    }
}

/// Trains as `opts` says and returns a summary, reporting to nobody.
///
/// # Errors
/// As [`train_with`].
pub fn train(opts: TrainOptions) -> Result<TrainSummary> {
    train_with(opts, &mut NoObserver)
}

/// Trains as `opts` says, telling `observer` about the start, every step, every evaluation and
/// the end, and returns a summary.
///
/// # Errors
/// A missing or unfit dataset, an invalid model config, a checkpoint that cannot be resumed
/// (naming the differing keys), or I/O failures in the run directory.
pub fn train_with(opts: TrainOptions, observer: &mut dyn TrainObserver) -> Result<TrainSummary> {
    let cfg = &opts.config;
    let device = opts.device;
    let train_ds =
        Dataset::open(&cfg.data_path, "train").map_err(|e| dataset_error(&cfg.data_path, e))?;
    let test_ds = match Dataset::open(&cfg.data_path, "test") {
        Ok(ds) => Some(ds),
        Err(_) if !cfg.data_path.join("test").exists() => None,
        Err(e) => return Err(dataset_error(&cfg.data_path, e)),
    };
    if test_ds.as_ref().is_some_and(|ds| ds.num_examples() == 0) {
        return Err(TrainError::Dataset {
            path: cfg.data_path.clone(),
            reason: "the test split has no examples, so nothing can be evaluated; rebuild it \
                     with test examples, or remove its test/ directory to train without \
                     evaluation"
                .into(),
        });
    }
    let meta = train_ds.metadata().clone();
    let model_table = cfg.resolved_model(&meta, default_forward_dtype(device))?;

    let model = seeded::with_seed(cfg.seed as i64, || {
        build_model(cfg.arch, &model_table, device)
    })?;
    if let Some(dp) = &opts.parallel {
        // Every rank starts from rank 0's parameters, as the reference broadcasts them.
        dp.local_rows(cfg.global_batch_size)?;
        dp.broadcast_parameters(model.params())?;
    }
    if cfg.cuda_graphs {
        check_cuda_graphs(cfg, &model, device, opts.parallel.is_some())?;
    }
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

    let params = model.params();
    let opt = Optimizers {
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
        parallel: opts.parallel.clone(),
    };
    let ema = if cfg.ema {
        Some(Ema::new(&params.trainable(), cfg.ema_rate)?)
    } else {
        None
    };
    let mut s = Session {
        cfg,
        device,
        model,
        model_table,
        head: LossHead {
            loss_type: cfg.loss.loss_type,
            q_loss_weight: cfg.loss.q_loss_weight,
        },
        opt,
        ema,
        test_ds,
        run: RunDir::open(&opts.run_dir)?,
        carry: None,
        step: 0,
        total_steps,
        sampler_state: None,
        train_seconds: 0.0,
        parallel: opts.parallel.clone(),
        graphed: None,
    };

    // The state to continue from: the newest checkpoint that verifies (damaged newer ones are
    // moved aside and reported).
    let ckpt_root = s.run.checkpoints();
    let mut resumed_from = None;
    let mut skipped_checkpoints = Vec::new();
    let mut sampler = if opts.resume {
        // Rank 0 moves damaged checkpoints aside before the others look, so that no two
        // processes rename the same directory.
        if let Some(dp) = s.parallel.as_ref().filter(|dp| !dp.is_main()) {
            dp.group().barrier()?;
        }
        let newest = checkpoint::newest_verified(&ckpt_root);
        if let Some(dp) = s.parallel.as_ref().filter(|dp| dp.is_main()) {
            dp.group().barrier()?;
        }
        let Some(found) = newest? else {
            return Err(TrainError::Checkpoint(format!(
                "--resume: no checkpoint in {} (start without --resume)",
                ckpt_root.display()
            )));
        };
        let state = s.restore(&found.checkpoint)?;
        resumed_from = Some(found.dir);
        skipped_checkpoints = found.skipped;
        TrainSampler::restore(&train_ds, &state)?
    } else {
        if checkpoint::latest(&ckpt_root)?.is_some() {
            return Err(TrainError::Checkpoint(format!(
                "{} already holds checkpoints: pass --resume to continue that run, or choose another run directory",
                opts.run_dir.display()
            )));
        }
        TrainSampler::new(&train_ds, cfg.global_batch_size, cfg.seed)?
    };
    // Lines logged after the checkpoint (by a run killed before its next one) are logged again
    // by this run: cut them, and a line torn by the kill.
    let metrics_cut = if s.is_main() {
        s.run.cut_metrics(s.step)?
    } else {
        Default::default()
    };
    let mut resolved = cfg.clone();
    resolved.model = s.model_table.clone();
    if s.is_main() {
        s.run.write_config(&resolved.to_toml_string())?;
    }

    // Batches come from a background thread, each with the sampler position after it.
    let batches = std::iter::from_fn(move || {
        let batch = sampler.next()?;
        Some((batch, sampler.state()))
    });
    let mut prefetch = Prefetch::new(batches, 4);

    observer.on_start(&RunStart {
        run_dir: s.run.path(),
        total_steps,
        step: s.step,
        resumed_from: resumed_from.as_deref(),
        num_parameters: s.model.params().num_trainable(),
        skipped_checkpoints: &skipped_checkpoints,
        metrics_cut: &metrics_cut,
    });
    let prior_seconds = s.train_seconds;
    let mut steps_here = 0u64;
    let mut interval = Interval::default();
    let mut last_train = None;
    let mut last_eval = None;
    let mut last_eval_step = None;
    let mut last_checkpoint = None;
    let mut last_checkpoint_step = None;
    let mut stopped = None;
    let mut consecutive_skips = 0u64;
    let level = |opts: &TrainOptions| opts.stop.as_ref().map_or(StopLevel::Run, StopSignal::level);

    while s.step < total_steps {
        let mut wanted = level(&opts);
        if let Some(dp) = &s.parallel {
            // Every rank leaves at the same step, or the others would wait in a collective.
            if dp.any(wanted != StopLevel::Run)? && wanted == StopLevel::Run {
                wanted = StopLevel::Stop;
            }
        }
        match wanted {
            StopLevel::Run => {}
            StopLevel::Stop => {
                stopped = Some(StopReason::Requested);
                break;
            }
            StopLevel::Abandon => {
                stopped = Some(StopReason::Abandoned);
                break;
            }
        }
        if opts.stop_at_step.is_some_and(|at| s.step >= at) {
            stopped = Some(StopReason::StepBudget);
            break;
        }
        let Some((batch, state_after)) = prefetch.next() else {
            return Err(TrainError::Dataset {
                path: cfg.data_path.clone(),
                reason: "the training sampler ran dry".into(),
            });
        };
        let t0 = Instant::now();
        s.step += 1;
        let rates = StepRates {
            lr: schedule.lr(s.step),
            puzzle_emb_lr: puzzle_schedule.lr(s.step),
        };
        let outcome = s.train_step(&batch, rates)?;
        s.sampler_state = Some(state_after);
        steps_here += 1;
        if let Some(what) = outcome.non_finite {
            s.log(&MetricsLine::NonFinite {
                step: s.step,
                quantity: what.quantity,
                value: what.value,
                action: cfg.on_nonfinite,
            })?;
            match cfg.on_nonfinite {
                OnNonFinite::Stop => return Err(non_finite_error(s.step, what)),
                OnNonFinite::Skip => {
                    observer.on_skipped_step(s.step, &what);
                    consecutive_skips += 1;
                    if consecutive_skips >= MAX_CONSECUTIVE_SKIPS {
                        return Err(TrainError::Diverged {
                            step: s.step,
                            count: consecutive_skips,
                            quantity: what.quantity,
                        });
                    }
                }
            }
        } else {
            consecutive_skips = 0;
            interval.started.get_or_insert(t0);
            let values = match &s.parallel {
                Some(dp) => dp.sum_metrics(&outcome.metrics.to_host())?,
                None => outcome.metrics.to_host(),
            };
            interval.sums.accumulate(&values);
            interval.steps += 1;
        }
        s.train_seconds += t0.elapsed().as_secs_f64();

        let mut logged = None;
        if (s.step % cfg.log_interval == 0 || s.step == total_steps) && interval.steps > 0 {
            let elapsed = interval
                .started
                .map_or(0.0, |t| t.elapsed().as_secs_f64())
                .max(1e-9);
            let reduced = reduce_interval(&interval, cfg.global_batch_size);
            s.log(&MetricsLine::Train {
                step: s.step,
                epoch: s.sampler_state.as_ref().map_or(0, |st| st.epoch),
                lr: rates.lr,
                samples_per_sec: (interval.steps as f64 * cfg.global_batch_size as f64) / elapsed,
                metrics: reduced.clone(),
            })?;
            logged = Some(reduced);
            interval = Interval::default();
        }
        observer.on_step(&StepEvent {
            step: s.step,
            total_steps,
            lr: rates.lr,
            logged: logged.as_ref(),
        });
        last_train = logged.or(last_train);

        // A stop request skips the evaluation (a preempted job has seconds, not minutes) but
        // not the checkpoint below.
        if eval_every.is_some_and(|e| s.step % e == 0) && level(&opts) == StopLevel::Run {
            let report = s.evaluate()?;
            if let Some(r) = &report {
                observer.on_eval(s.step, r);
            }
            last_eval = report.or(last_eval);
            last_eval_step = Some(s.step);
            if cfg.checkpoint_every_eval && level(&opts) != StopLevel::Abandon {
                last_checkpoint = s.save_checkpoint()?.or(last_checkpoint);
                last_checkpoint_step = Some(s.step);
            }
        }
    }
    drop(prefetch);
    if stopped.is_none() && last_eval_step != Some(s.step) && level(&opts) == StopLevel::Run {
        let report = s.evaluate()?;
        if let Some(r) = &report {
            observer.on_eval(s.step, r);
        }
        last_eval = report.or(last_eval);
    }
    // After an abandon request nothing more is written, whenever it came.
    if level(&opts) == StopLevel::Abandon {
        stopped = Some(StopReason::Abandoned);
    } else if steps_here > 0 && last_checkpoint_step != Some(s.step) {
        last_checkpoint = s.save_checkpoint()?.or(last_checkpoint);
    }
    let here_seconds = s.train_seconds - prior_seconds;
    let summary = TrainSummary {
        steps: s.step,
        total_steps,
        interrupted: stopped.is_some(),
        stopped,
        train_seconds: s.train_seconds,
        samples_per_sec: if here_seconds > 0.0 {
            steps_here as f64 * cfg.global_batch_size as f64 / here_seconds
        } else {
            0.0
        },
        last_train,
        last_eval,
        checkpoint: last_checkpoint,
        num_parameters: s.model.params().num_trainable(),
        communication_seconds: s
            .parallel
            .as_ref()
            .map_or(0.0, DataParallel::communication_seconds),
    };
    observer.on_end(s.run.path(), &summary);
    Ok(summary)
}

fn non_finite_error(step: u64, what: NonFinite) -> TrainError {
    TrainError::NonFinite {
        step,
        quantity: what.quantity,
        value: what.value,
    }
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

/// Refuses a resume whose config changes the model's shapes, the architecture or the batch.
/// Refuses `cuda_graphs = true` where no step can be captured: a model without an ACT step, a
/// data-parallel run (not supported yet), a device that is not CUDA or a build without CUDA
/// graphs.
fn check_cuda_graphs(
    cfg: &TrainConfig,
    model: &ArchModel,
    device: Device,
    parallel: bool,
) -> Result<()> {
    let reason = match model {
        ArchModel::Direct(_) => Some(format!(
            "arch `{}` has no ACT step to capture; CUDA graphs apply to hrm and trm",
            cfg.arch.name()
        )),
        ArchModel::Recurrent(_) if parallel => {
            Some("CUDA graphs are not supported in data-parallel runs yet".to_string())
        }
        ArchModel::Recurrent(_) => hrm_core::cuda_graph::check_device(device)
            .err()
            .map(|e| e.to_string()),
    };
    match reason {
        Some(reason) => Err(TrainError::Config {
            key: "cuda_graphs".into(),
            reason,
        }),
        None => Ok(()),
    }
}

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
