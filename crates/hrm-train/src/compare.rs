//! `hrm compare`: train HRM, TRM and the two baselines (bidirectional GRU, plain Transformer) on
//! the same dataset, with matched parameter counts and the same example budget, then tabulate
//! and chart the results.
//!
//! The HRM paper (Wang et al. 2025, section 3) compares HRM with a Transformer of the same size
//! trained on the same data, and TRM's paper (Jolicoeur-Martineau 2025, section 5) compares HRM
//! and TRM at matched sizes; neither ships a script for it. This module is that script, on top
//! of the one training loop ([`crate::trainer::train`]): it only plans the runs and reads their
//! run directories.
//!
//! What is matched, and how:
//! - **data**: one dataset directory for every run (built with `hrm-data`'s Sudoku builder when
//!   none is given: 4x4 boards, small enough for a 2-core CPU);
//! - **parameters**: each architecture keeps a fixed shape (layers, heads, cycles) and its width
//!   (`hidden_size`, and the SwiGLU `expansion` where the 256-rounding of its inner width leaves a
//!   gap) is chosen so that the trainable dense parameters land within 10 % of the target. The
//!   sparse puzzle table, trained by its own sign-SGD, is not counted;
//! - **examples**: every run draws the same number of training examples from the sampler
//!   (`steps x global_batch_size`), with the same batch size, seed (so the same batch order),
//!   optimiser, learning-rate schedule and evaluation points. An ACT model keeps unhalted rows
//!   across steps (the reference's carry), so it meets fewer distinct examples per draw than a
//!   baseline does; draws, optimiser steps and evaluation points are what is equal.
//!
//! Outputs under the comparison directory: one run directory per architecture (`<out>/<arch>/`,
//! as `hrm train` writes it), `comparison.md` (the table and the settings), `comparison.json`
//! (the same numbers) and `comparison.png` (held-out exact accuracy against training examples
//! seen, one line per architecture).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::Device;

use hrm_core::config::swiglu_intermediate_size;
use hrm_core::{GruConfig, HrmConfig, ModelConfig, PosEncoding, TransformerConfig, TrmConfig};
use hrm_data::{Dataset, DatasetMetadata};

use crate::arch::build_model;
use crate::config::{Arch, TrainConfig};
use crate::default_data;
use crate::device::{default_forward_dtype, device_name};
use crate::error::{Result, TrainError};
use crate::plot::{LineChart, Series};
use crate::run_dir::{read_metrics, MetricsLine};
use crate::trainer::{train, TrainOptions};

/// Training examples drawn per architecture by default: 2000 steps of 64 (64 epochs of the
/// default data): 20 to 25 minutes for the four default runs on a 2-core CPU.
pub const DEFAULT_EXAMPLES: u64 = 128_000;
/// Target trainable parameters by default: the size of `configs/default.toml`'s HRM (hidden 128,
/// 2+2 layers), 1 051 650.
pub const DEFAULT_PARAMS: i64 = 1_050_000;
/// Batch size by default.
pub const DEFAULT_BATCH_SIZE: usize = 64;
/// Evaluations per run by default (plus one at the end when the last does not fall on it).
pub const DEFAULT_EVALS: u64 = 8;
/// The largest relative difference from the parameter target that a run may have.
pub const PARAM_TOLERANCE: f64 = 0.10;

/// How to run a comparison.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// The comparison directory (run directories, table, chart).
    pub out: PathBuf,
    /// Architectures, in table order.
    pub archs: Vec<Arch>,
    /// Training examples each run draws (`steps x batch_size`, rounded down to whole steps).
    pub examples: u64,
    /// Target trainable parameters of every model.
    pub target_params: i64,
    /// An existing dataset; `None` builds the default one under `<out>/data` (or reuses it).
    pub data: Option<PathBuf>,
    /// Where to train.
    pub device: Device,
    /// Seed of initialisation and data order, the same for every run.
    pub seed: u64,
    /// `global_batch_size` of every run.
    pub batch_size: usize,
    /// Evaluations per run.
    pub evals: u64,
    /// `key=value` overrides of every run's config (as `hrm train --set`); `arch:key=value`
    /// (e.g. `trm:model.L_cycles=6`) overrides only that architecture's.
    pub overrides: Vec<String>,
    /// Progress bars on the terminal.
    pub progress: bool,
    /// Set from outside (Ctrl-C) to stop the current run and the comparison.
    pub stop: Option<Arc<AtomicBool>>,
    /// The command line, for the report.
    pub command: String,
}

impl CompareOptions {
    /// The defaults (sized for a 2-core CPU: 20 to 25 minutes with one intra-op thread)
    /// writing to `out`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        CompareOptions {
            out: out.into(),
            archs: Arch::ALL.to_vec(),
            examples: DEFAULT_EXAMPLES,
            target_params: DEFAULT_PARAMS,
            data: None,
            device: Device::Cpu,
            seed: 0,
            batch_size: DEFAULT_BATCH_SIZE,
            evals: DEFAULT_EVALS,
            overrides: Vec::new(),
            progress: false,
            stop: None,
            command: String::new(),
        }
    }
}

/// One planned run: the config the trainer gets and its parameter count.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// The architecture.
    pub arch: Arch,
    /// The full training config (model table resolved, width chosen).
    pub config: TrainConfig,
    /// Trainable dense parameters of the model built from `config` (counted on a built model).
    pub parameters: i64,
}

/// One point of a learning curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Training examples drawn so far (`step x batch_size`).
    pub examples: u64,
    /// Held-out exact accuracy.
    pub exact_accuracy: f64,
    /// Held-out token accuracy.
    pub token_accuracy: f64,
}

/// What one architecture reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchResult {
    /// Config name of the architecture.
    pub arch: String,
    /// Trainable dense parameters.
    pub parameters: i64,
    /// The width settings chosen (`hidden_size`, `expansion`, depth keys).
    pub model: BTreeMap<String, String>,
    /// Seconds in training steps.
    pub train_seconds: f64,
    /// Seconds of the whole run (training, evaluations, checkpoints).
    pub wall_seconds: f64,
    /// Training examples per second over the training steps.
    pub samples_per_sec: f64,
    /// Held-out token accuracy at the end.
    pub token_accuracy: f64,
    /// Held-out exact (whole-puzzle) accuracy at the end.
    pub exact_accuracy: f64,
    /// Mean ACT steps at halting over the last training interval (1 for the baselines;
    /// evaluation always runs `halt_max_steps`).
    pub mean_act_steps: f64,
    /// ACT step limit (1 for the baselines).
    pub halt_max_steps: i64,
    /// Held-out accuracies at every evaluation.
    pub curve: Vec<CurvePoint>,
    /// The run directory.
    pub run_dir: PathBuf,
}

/// A finished comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The command line that ran it.
    pub command: String,
    /// The dataset directory.
    pub data_path: PathBuf,
    /// A one-line description of the dataset.
    pub data_summary: String,
    /// The device, in words.
    pub device: String,
    /// Examples drawn per run.
    pub examples: u64,
    /// Batch size of every run.
    pub batch_size: usize,
    /// Parameter target.
    pub target_params: i64,
    /// Seed of every run.
    pub seed: u64,
    /// Per architecture, in the requested order.
    pub results: Vec<ArchResult>,
    /// Seconds from the first run's start to the last run's end.
    pub wall_seconds: f64,
}

/// Parses a comma-separated list of architecture names (`hrm,trm,gru,transformer`).
///
/// # Errors
/// [`TrainError::Config`] (key `archs`) for an unknown or repeated name, listing the valid ones,
/// or an empty list.
pub fn parse_archs(list: &str) -> Result<Vec<Arch>> {
    let valid = Arch::ALL.map(Arch::name).join(", ");
    let mut archs = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(arch) = Arch::ALL.into_iter().find(|a| a.name() == name) else {
            return Err(TrainError::Config {
                key: "archs".into(),
                reason: format!("unknown architecture `{name}`; valid choices are {valid}"),
            });
        };
        if archs.contains(&arch) {
            return Err(TrainError::Config {
                key: "archs".into(),
                reason: format!("`{name}` is listed twice"),
            });
        }
        archs.push(arch);
    }
    if archs.is_empty() {
        return Err(TrainError::Config {
            key: "archs".into(),
            reason: format!("no architecture given; valid choices are {valid}"),
        });
    }
    Ok(archs)
}

/// The `[model]` table of an architecture's fixed shape, before its width is chosen: the
/// shapes of `configs/default.toml`'s HRM (2+2 layers, 4 heads, 2x2 cycles, 4 ACT steps) and
/// their counterparts (TRM: 2 layers, 3x2 cycles, as `TrmConfig::tiny`; Transformer: 2+2 = 4
/// blocks; GRU: 2 bidirectional layers).
pub fn preset_text(arch: Arch) -> &'static str {
    match arch {
        Arch::Hrm => {
            "H_cycles = 2\nL_cycles = 2\nH_layers = 2\nL_layers = 2\nhidden_size = 128\n\
             num_heads = 4\nexpansion = 4.0\npos_encodings = \"rope\"\npuzzle_emb_ndim = 0\n\
             halt_max_steps = 4\nhalt_exploration_prob = 0.1\n"
        }
        Arch::Trm => {
            "H_cycles = 3\nL_cycles = 2\nH_layers = 0\nL_layers = 2\nhidden_size = 128\n\
             num_heads = 4\nexpansion = 4.0\npos_encodings = \"rope\"\npuzzle_emb_ndim = 0\n\
             puzzle_emb_len = 0\nhalt_max_steps = 4\nhalt_exploration_prob = 0.1\n"
        }
        Arch::Gru => "hidden_size = 128\nnum_layers = 2\npuzzle_emb_ndim = 0\n",
        Arch::Transformer => {
            "H_layers = 2\nL_layers = 2\nhidden_size = 128\nnum_heads = 4\nexpansion = 4.0\n\
             pos_encodings = \"rope\"\npuzzle_emb_ndim = 0\n"
        }
    }
}

/// Trainable dense parameters of `arch` with the resolved model table `model`, from the
/// architecture's formula (no model is built; [`plan`] checks the count on a built model).
///
/// # Errors
/// When the table is not a valid config of `arch`.
pub fn count_params(arch: Arch, model: &toml::Table) -> Result<i64> {
    let json = serde_json::to_value(model)
        .map_err(|e| TrainError::Config {
            key: "model".into(),
            reason: e.to_string(),
        })?
        .to_string();
    let block = |h: usize, expansion: f64| -> i64 {
        let i = swiglu_intermediate_size(h, expansion) as i64;
        let h = h as i64;
        4 * h * h + 3 * i * h // qkv [3H, H] + o [H, H]; gate_up [2I, H] + down [H, I]
    };
    let learned = |pos: PosEncoding, t: usize, h: usize| -> i64 {
        if pos == PosEncoding::Learned {
            (t * h) as i64
        } else {
            0
        }
    };
    Ok(match arch {
        Arch::Hrm => {
            let c = HrmConfig::from_json_str(&json)?;
            let (h, v) = (c.hidden_size as i64, c.vocab_size as i64);
            2 * v * h
                + (2 * h + 2)
                + learned(c.pos_encodings, c.total_seq_len(), c.hidden_size)
                + (c.h_layers + c.l_layers) as i64 * block(c.hidden_size, c.expansion)
        }
        Arch::Trm => {
            let c = TrmConfig::from_json_str(&json)?;
            let (h, v) = (c.hidden_size as i64, c.vocab_size as i64);
            let mixer = match c.mlp_t_intermediate_size() {
                Some(it) => 3 * it as i64 * c.total_seq_len() as i64,
                None => 4 * h * h,
            };
            let mlp = 3 * swiglu_intermediate_size(c.hidden_size, c.expansion) as i64 * h;
            2 * v * h
                + (2 * h + 2)
                + learned(c.pos_encodings, c.total_seq_len(), c.hidden_size)
                + c.l_layers as i64 * (mixer + mlp)
        }
        Arch::Transformer => {
            let c = TransformerConfig::from_json_str(&json)?;
            let (h, v) = (c.hidden_size as i64, c.vocab_size as i64);
            2 * v * h
                + learned(c.pos_encodings, c.total_seq_len(), c.hidden_size)
                + c.depth() as i64 * block(c.hidden_size, c.expansion)
        }
        Arch::Gru => {
            let c = GruConfig::from_json_str(&json)?;
            let (h, v) = (c.hidden_size as i64, c.vocab_size as i64);
            let layer = |input: i64| 2 * (3 * h * input + 3 * h * h + 6 * h); // two directions
            v * h + layer(h) + (c.num_layers as i64 - 1) * layer(2 * h) + v * 2 * h
        }
    })
}

/// Sets `hidden_size` (and the puzzle width that follows it) in a model table.
fn set_width(arch: Arch, model: &mut toml::Table, hidden: usize, expansion: f64, puzzles: bool) {
    model.insert("hidden_size".into(), toml::Value::Integer(hidden as i64));
    if arch != Arch::Gru {
        model.insert("expansion".into(), toml::Value::Float(expansion));
    }
    // With puzzle identifiers, a puzzle embedding as wide as the hidden state (the reference's
    // `puzzle_emb_ndim: ${.hidden_size}`); TRM then uses its default 16 positions.
    let ndim = if puzzles { hidden as i64 } else { 0 };
    model.insert("puzzle_emb_ndim".into(), toml::Value::Integer(ndim));
    if arch == Arch::Trm {
        let len = if puzzles { 16 } else { 0 };
        model.insert("puzzle_emb_len".into(), toml::Value::Integer(len));
    }
}

/// Chooses the width of `arch` so that its trainable parameters are closest to `target`:
/// `hidden_size` in steps that keep the head dimension even (steps of 8 for the GRU), first with
/// the preset's SwiGLU expansion, then with 3 and 2 where the expansion's 256-rounding leaves
/// no width within 3 % of the target. Returns the table and its formula count.
///
/// # Errors
/// [`TrainError::Config`] (key `params`) when no width comes within [`PARAM_TOLERANCE`].
pub fn choose_width(
    arch: Arch,
    model: &toml::Table,
    target: i64,
    puzzles: bool,
) -> Result<(toml::Table, i64)> {
    let heads = model
        .get("num_heads")
        .and_then(toml::Value::as_integer)
        .unwrap_or(1)
        .max(1) as usize;
    let step = if arch == Arch::Gru { 8 } else { 2 * heads };
    let preset_expansion = model
        .get("expansion")
        .and_then(toml::Value::as_float)
        .unwrap_or(4.0);
    let expansions: Vec<f64> = if arch == Arch::Gru {
        vec![preset_expansion]
    } else {
        std::iter::once(preset_expansion)
            .chain([3.0, 2.0].into_iter().filter(|e| *e < preset_expansion))
            .collect()
    };
    let rel = |n: i64| (n - target).abs() as f64 / target.max(1) as f64;
    let mut best: Option<(toml::Table, i64)> = None;
    for expansion in expansions {
        let mut best_here: Option<(toml::Table, i64)> = None;
        let mut hidden = step;
        while hidden <= 65_536 {
            let mut table = model.clone();
            set_width(arch, &mut table, hidden, expansion, puzzles);
            let n = count_params(arch, &table)?;
            if best_here.as_ref().is_none_or(|(_, b)| rel(n) < rel(*b)) {
                best_here = Some((table, n));
            }
            if n > 2 * target {
                break;
            }
            hidden += step;
        }
        if let Some((table, n)) = best_here {
            let good = rel(n) <= 0.03;
            if best.as_ref().is_none_or(|(_, b)| rel(n) < rel(*b)) {
                best = Some((table, n));
            }
            if good {
                break;
            }
        }
    }
    match best {
        Some((table, n)) if rel(n) <= PARAM_TOLERANCE => Ok((table, n)),
        Some((_, n)) => Err(TrainError::Config {
            key: "params".into(),
            reason: format!(
                "`{}` cannot be sized within {:.0} % of {target} parameters (closest: {n})",
                arch.name(),
                PARAM_TOLERANCE * 100.0
            ),
        }),
        None => Err(TrainError::Config {
            key: "params".into(),
            reason: format!("no width for `{}`", arch.name()),
        }),
    }
}

/// The training settings every run shares (`configs/default.toml`'s optimiser and schedule),
/// with `arch`'s preset model table, then the user's overrides.
fn base_config(
    arch: Arch,
    data: &Path,
    opts: &CompareOptions,
    meta: &DatasetMetadata,
) -> Result<TrainConfig> {
    let per_epoch = (meta.total_groups as f64 * meta.mean_puzzle_examples).max(1.0);
    let max_steps = opts.examples / opts.batch_size.max(1) as u64;
    if max_steps == 0 {
        return Err(TrainError::Config {
            key: "examples".into(),
            reason: format!(
                "{} examples are less than one batch of {}",
                opts.examples, opts.batch_size
            ),
        });
    }
    // Enough epochs to hold the budget; evaluations every `epochs / evals` epochs.
    let epochs = ((max_steps * opts.batch_size as u64) as f64 / per_epoch)
        .ceil()
        .max(1.0) as u64;
    let eval_interval = (epochs / opts.evals.max(1)).max(1);
    let text = format!(
        "arch = \"{arch}\"\ndata_path = {data}\nglobal_batch_size = {batch}\nepochs = {epochs}\n\
         eval_interval = {eval_interval}\ncheckpoint_every_eval = false\nmax_steps = {max_steps}\n\
         lr = 1e-3\nlr_min_ratio = 0.1\nlr_warmup_steps = 100\nweight_decay = 0.1\n\
         puzzle_emb_lr = 1e-2\npuzzle_emb_weight_decay = 0.1\nseed = {seed}\nlog_interval = 20\n\
         [model]\n{model}",
        arch = arch.name(),
        data = toml::Value::String(data.display().to_string()),
        batch = opts.batch_size,
        seed = opts.seed,
        model = preset_text(arch),
    );
    TrainConfig::from_toml_str(&text, &overrides_for(arch, &opts.overrides))
}

/// The overrides that apply to `arch`: those without an architecture prefix, and those with
/// `arch:` (the prefix removed).
pub fn overrides_for(arch: Arch, overrides: &[String]) -> Vec<String> {
    overrides
        .iter()
        .filter_map(|o| {
            let (head, _) = o.split_once('=').unwrap_or((o.as_str(), ""));
            match head.split_once(':') {
                Some((prefix, _)) if Arch::ALL.iter().any(|a| a.name() == prefix.trim()) => {
                    (prefix.trim() == arch.name()).then(|| o[prefix.len() + 1..].to_string())
                }
                _ => Some(o.clone()),
            }
        })
        .collect()
}

/// Whether the user fixed `arch`'s width with `--set [arch:]model.hidden_size=...`.
fn width_fixed(arch: Arch, opts: &CompareOptions) -> bool {
    overrides_for(arch, &opts.overrides).iter().any(|o| {
        o.split('=')
            .next()
            .is_some_and(|k| k.trim() == "model.hidden_size")
    })
}

/// Plans every run: the configs, with widths chosen for the parameter target and each count
/// checked on a model built on the CPU.
///
/// # Errors
/// An unreadable dataset, an invalid override, or an architecture that cannot be sized within
/// [`PARAM_TOLERANCE`] of the target.
pub fn plan(opts: &CompareOptions, data: &Path) -> Result<Vec<PlannedRun>> {
    let train_ds = Dataset::open(data, "train").map_err(|e| TrainError::Dataset {
        path: data.to_path_buf(),
        reason: e.to_string(),
    })?;
    let meta = train_ds.metadata().clone();
    let puzzles = meta.num_puzzle_identifiers > 1;
    let mut runs = Vec::new();
    for &arch in &opts.archs {
        let mut cfg = base_config(arch, data, opts, &meta)?;
        let resolved = cfg.resolved_model(&meta, default_forward_dtype(opts.device))?;
        // A width given with --set model.hidden_size=... is kept; otherwise it is chosen.
        let (model, formula) = if width_fixed(arch, opts) {
            let n = count_params(arch, &resolved)?;
            (resolved, n)
        } else {
            choose_width(arch, &resolved, opts.target_params, puzzles)?
        };
        let built = {
            let _guard = tch::no_grad_guard();
            build_model(arch, &model, Device::Cpu)?
                .params()
                .num_trainable()
        };
        if built != formula {
            return Err(TrainError::Config {
                key: "params".into(),
                reason: format!(
                    "`{}`: the parameter formula gives {formula} but the built model has {built}",
                    arch.name()
                ),
            });
        }
        cfg.model = model;
        runs.push(PlannedRun {
            arch,
            config: cfg,
            parameters: built,
        });
    }
    let target = opts.target_params.max(1) as f64;
    // A width the user fixed is kept whatever its size; every chosen one is checked.
    for r in runs.iter().filter(|r| !width_fixed(r.arch, opts)) {
        let off = (r.parameters as f64 - target).abs() / target;
        if off > PARAM_TOLERANCE {
            return Err(TrainError::Config {
                key: "params".into(),
                reason: format!(
                    "`{}` has {} parameters, {:.1} % from the target",
                    r.arch.name(),
                    r.parameters,
                    off * 100.0
                ),
            });
        }
    }
    Ok(runs)
}

/// Runs the comparison: plans, trains each architecture in turn through
/// [`crate::trainer::train`], then writes `comparison.md`, `comparison.json` and
/// `comparison.png` under `opts.out`.
///
/// # Errors
/// A bad plan (see [`plan`]), a comparison directory that already holds a run of one of the
/// architectures, a dataset without a test split, a training failure or an interruption.
pub fn run_comparison(opts: &CompareOptions) -> Result<Comparison> {
    let data = match &opts.data {
        Some(d) => d.clone(),
        None => {
            let d = opts.out.join("data");
            default_data::ensure_sudoku(&d, default_data::COMPARE_DEFAULT_SIZE)?;
            d
        }
    };
    let test = Dataset::open(&data, "test").map_err(|e| TrainError::Dataset {
        path: data.clone(),
        reason: format!("a comparison needs a held-out `test` split: {e}"),
    })?;
    let train_ds = Dataset::open(&data, "train").map_err(|e| TrainError::Dataset {
        path: data.clone(),
        reason: e.to_string(),
    })?;
    for &arch in &opts.archs {
        let dir = opts.out.join(arch.name());
        let used = std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if used {
            return Err(TrainError::Config {
                key: "out".into(),
                reason: format!(
                    "{} already holds a run; choose another --out or remove it",
                    dir.display()
                ),
            });
        }
    }
    let runs = plan(opts, &data)?;
    let meta = train_ds.metadata();
    let examples = |ds: &Dataset| ds.sets().iter().map(|s| s.num_examples()).sum::<usize>();
    let data_summary = format!(
        "{}: seq_len {}, vocab {}, {} training examples in {} groups, {} test examples",
        data.display(),
        meta.seq_len,
        meta.vocab_size,
        examples(&train_ds),
        meta.total_groups,
        examples(&test),
    );
    eprintln!("[compare] data {data_summary}");
    for r in &runs {
        eprintln!(
            "[compare] {:<11} {:>10} parameters ({:+.1} % of {}), {}",
            r.arch.name(),
            r.parameters,
            100.0 * (r.parameters as f64 / opts.target_params.max(1) as f64 - 1.0),
            opts.target_params,
            width_summary(&r.config.model)
        );
    }
    let started = Instant::now();
    let mut results = Vec::new();
    for r in runs {
        let run_dir = opts.out.join(r.arch.name());
        eprintln!(
            "[compare] training {} in {}",
            r.arch.name(),
            run_dir.display()
        );
        let t0 = Instant::now();
        let summary = train(TrainOptions {
            progress: opts.progress,
            stop: opts.stop.clone(),
            ..TrainOptions::new(r.config.clone(), run_dir.clone(), opts.device)
        })?;
        let wall = t0.elapsed().as_secs_f64();
        if summary.interrupted {
            return Err(TrainError::Checkpoint(format!(
                "interrupted while training {}; its run directory is {}",
                r.arch.name(),
                run_dir.display()
            )));
        }
        let eval = summary.last_eval.clone().unwrap_or_default();
        let last_train = summary.last_train.clone().unwrap_or_default();
        let halt_max_steps = r
            .config
            .model
            .get("halt_max_steps")
            .and_then(toml::Value::as_integer)
            .unwrap_or(1);
        let result = ArchResult {
            arch: r.arch.name().into(),
            parameters: summary.num_parameters,
            model: width_fields(&r.config.model),
            train_seconds: summary.train_seconds,
            wall_seconds: wall,
            samples_per_sec: summary.samples_per_sec,
            token_accuracy: eval.overall.get("accuracy"),
            exact_accuracy: eval.overall.get("exact_accuracy"),
            mean_act_steps: if r.arch.is_recurrent() {
                last_train.get("steps")
            } else {
                1.0
            },
            halt_max_steps,
            curve: curve(&run_dir, r.config.global_batch_size)?,
            run_dir,
        };
        eprintln!(
            "[compare] {}: exact {:.4}, token {:.4}, {:.0} s",
            result.arch, result.exact_accuracy, result.token_accuracy, wall
        );
        results.push(result);
    }
    let comparison = Comparison {
        command: opts.command.clone(),
        data_path: data,
        data_summary,
        device: device_name(opts.device),
        examples: opts.examples / opts.batch_size as u64 * opts.batch_size as u64,
        batch_size: opts.batch_size,
        target_params: opts.target_params,
        seed: opts.seed,
        results,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    write_report(&comparison, &opts.out)?;
    Ok(comparison)
}

/// The held-out accuracies of every evaluation in a run directory's `metrics.jsonl`.
///
/// # Errors
/// When the file cannot be read.
pub fn curve(run_dir: &Path, batch_size: usize) -> Result<Vec<CurvePoint>> {
    Ok(read_metrics(&run_dir.join("metrics.jsonl"))?
        .into_iter()
        .filter_map(|l| match l {
            MetricsLine::Eval { step, overall, .. } => Some(CurvePoint {
                examples: step * batch_size as u64,
                exact_accuracy: overall.get("exact_accuracy"),
                token_accuracy: overall.get("accuracy"),
            }),
            MetricsLine::Train { .. } => None,
        })
        .collect())
}

/// The model keys a report shows.
const SHAPE_KEYS: [&str; 10] = [
    "hidden_size",
    "expansion",
    "num_heads",
    "H_layers",
    "L_layers",
    "num_layers",
    "H_cycles",
    "L_cycles",
    "halt_max_steps",
    "puzzle_emb_ndim",
];

fn width_fields(model: &toml::Table) -> BTreeMap<String, String> {
    SHAPE_KEYS
        .into_iter()
        .filter_map(|k| model.get(k).map(|v| (k.to_string(), v.to_string())))
        .collect()
}

fn width_summary(model: &toml::Table) -> String {
    width_fields(model)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `1 051 650` -> `1.05M`, `82 000` -> `82.0k`.
fn human(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// `m:ss` for a duration in seconds.
fn minutes(seconds: f64) -> String {
    let s = seconds.round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// The results as a markdown table.
pub fn markdown_table(c: &Comparison) -> String {
    let mut out = String::from(
        "| architecture | parameters | training time | train samples/s | held-out token accuracy | exact accuracy | mean ACT steps |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &c.results {
        let steps = if r.halt_max_steps > 1 {
            format!("{:.2} (max {})", r.mean_act_steps, r.halt_max_steps)
        } else {
            "1 (no ACT)".into()
        };
        out.push_str(&format!(
            "| {} | {} ({}) | {} | {:.1} | {:.4} | {:.4} | {} |\n",
            r.arch,
            r.parameters,
            human(r.parameters as f64),
            minutes(r.train_seconds),
            r.samples_per_sec,
            r.token_accuracy,
            r.exact_accuracy,
            steps
        ));
    }
    out
}

/// The chart: held-out exact accuracy against training examples seen, one line per
/// architecture.
pub fn chart(c: &Comparison) -> LineChart {
    LineChart {
        title: format!(
            "held-out exact accuracy, {} params each",
            human(c.target_params as f64)
        ),
        x_label: "training examples seen".into(),
        y_label: "exact accuracy".into(),
        series: c
            .results
            .iter()
            .map(|r| Series {
                name: format!("{} ({})", r.arch, human(r.parameters as f64)),
                points: r
                    .curve
                    .iter()
                    .map(|p| (p.examples as f64, p.exact_accuracy))
                    .collect(),
            })
            .collect(),
        // Headroom above 1 keeps the legend (top right, inside the plot) off the lines.
        y_range: Some((0.0, 1.2)),
    }
}

/// The whole `comparison.md`.
pub fn markdown_report(c: &Comparison) -> String {
    let mut md = String::from("# Architecture comparison\n\n");
    if !c.command.is_empty() {
        md.push_str(&format!("Command: `{}`\n\n", c.command));
    }
    md.push_str(&format!(
        "- data: {}\n- budget: {} training examples per architecture (batch {}, seed {}), on {}\n\
         - parameter target: {} trainable dense parameters (within {:.0} %; the sparse puzzle \
         table is not counted)\n- wall time: {} for all runs\n\n",
        c.data_summary,
        c.examples,
        c.batch_size,
        c.seed,
        c.device,
        c.target_params,
        PARAM_TOLERANCE * 100.0,
        minutes(c.wall_seconds)
    ));
    md.push_str(&markdown_table(c));
    md.push_str(
        "\nTraining time counts the training steps only; evaluation and checkpoints are in the \
         wall time. Mean ACT steps is the mean number of ACT steps at halting over the last \
         training interval; evaluation always runs the maximum, as the reference does.\n\n",
    );
    md.push_str(
        "![held-out exact accuracy against training examples](comparison.png)\n\n## Models\n\n",
    );
    for r in &c.results {
        let fields: Vec<String> = r.model.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        md.push_str(&format!(
            "- **{}**: {} (run directory `{}`, wall {})\n",
            r.arch,
            fields.join(", "),
            r.run_dir.display(),
            minutes(r.wall_seconds)
        ));
    }
    md.push_str("\n## Learning curves (held-out exact accuracy)\n\n| examples |");
    for r in &c.results {
        md.push_str(&format!(" {} |", r.arch));
    }
    md.push_str("\n|---:|");
    md.push_str(&"---:|".repeat(c.results.len()));
    md.push('\n');
    let mut xs: Vec<u64> = c
        .results
        .iter()
        .flat_map(|r| r.curve.iter().map(|p| p.examples))
        .collect();
    xs.sort_unstable();
    xs.dedup();
    for x in xs {
        md.push_str(&format!("| {x} |"));
        for r in &c.results {
            match r.curve.iter().find(|p| p.examples == x) {
                Some(p) => md.push_str(&format!(" {:.4} |", p.exact_accuracy)),
                None => md.push_str(" |"),
            }
        }
        md.push('\n');
    }
    md
}

/// Writes `comparison.md`, `comparison.json` and `comparison.png` into `dir`.
///
/// # Errors
/// [`TrainError::Io`] when a file cannot be written.
pub fn write_report(c: &Comparison, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| TrainError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    crate::run_dir::write_atomic(&dir.join("comparison.md"), markdown_report(c).as_bytes())?;
    let json_path = dir.join("comparison.json");
    let json = serde_json::to_string_pretty(c).map_err(|source| TrainError::Json {
        path: json_path.clone(),
        source,
    })?;
    crate::run_dir::write_atomic(&json_path, json.as_bytes())?;
    chart(c).save_png(&dir.join("comparison.png"), 800, 500)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(arch: Arch, puzzles: bool, pos: &str) -> toml::Table {
        let mut t: toml::Table = preset_text(arch).parse().expect("preset parses");
        t.insert("seq_len".into(), toml::Value::Integer(16));
        t.insert("vocab_size".into(), toml::Value::Integer(11));
        t.insert(
            "num_puzzle_identifiers".into(),
            toml::Value::Integer(if puzzles { 5 } else { 1 }),
        );
        if arch != Arch::Gru {
            t.insert(
                "forward_dtype".into(),
                toml::Value::String("float32".into()),
            );
            t.insert("pos_encodings".into(), toml::Value::String(pos.into()));
        }
        t
    }

    #[test]
    fn the_formula_counts_what_the_built_model_has() {
        for arch in Arch::ALL {
            for (puzzles, pos) in [(false, "rope"), (true, "learned")] {
                for hidden in [16usize, 40] {
                    let mut t = resolved(arch, puzzles, pos);
                    set_width(arch, &mut t, hidden, 2.0, puzzles);
                    let built = build_model(arch, &t, Device::Cpu)
                        .expect("model")
                        .params()
                        .num_trainable();
                    let formula = count_params(arch, &t).expect("count");
                    assert_eq!(formula, built, "{} hidden {hidden} {pos}", arch.name());
                }
            }
        }
        // TRM's token-mixing MLP.
        let mut t = resolved(Arch::Trm, false, "none");
        t.insert("mlp_t".into(), toml::Value::Boolean(true));
        set_width(Arch::Trm, &mut t, 24, 4.0, false);
        let built = build_model(Arch::Trm, &t, Device::Cpu)
            .expect("model")
            .params()
            .num_trainable();
        assert_eq!(count_params(Arch::Trm, &t).expect("count"), built);
    }

    #[test]
    fn widths_match_the_target_within_tolerance() {
        for target in [300_000i64, 1_050_000, 5_000_000] {
            for arch in Arch::ALL {
                let (table, n) = choose_width(arch, &resolved(arch, false, "rope"), target, false)
                    .unwrap_or_else(|e| panic!("{} at {target}: {e}", arch.name()));
                let off = (n - target).abs() as f64 / target as f64;
                assert!(off <= PARAM_TOLERANCE, "{} at {target}: {n}", arch.name());
                assert_eq!(count_params(arch, &table).expect("count"), n);
            }
        }
        // The default HRM is the default target's model.
        let (t, n) = choose_width(
            Arch::Hrm,
            &resolved(Arch::Hrm, false, "rope"),
            DEFAULT_PARAMS,
            false,
        )
        .expect("hrm");
        assert_eq!(t["hidden_size"].as_integer(), Some(128));
        assert_eq!(n, 1_051_650);
        // Too small for any width.
        let err = choose_width(Arch::Hrm, &resolved(Arch::Hrm, false, "rope"), 100, false)
            .expect_err("tiny target");
        assert!(err.to_string().contains("params"), "{err}");
    }

    #[test]
    fn a_tiny_comparison_runs_end_to_end() {
        // As `hrm compare`'s default: one intra-op thread (OpenMP's setting is per calling
        // thread, so this stays within this test).
        tch::set_num_threads(1);
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("sudoku4");
        let mut d = hrm_data::sudoku::SudokuOptions::new(&data);
        d.size = 4;
        d.train = 48;
        d.test = 16;
        d.aug = 1;
        d.difficulty = hrm_data::sudoku::Difficulty::Easy;
        hrm_data::sudoku::build_sudoku(&d).expect("tiny dataset");
        let mut opts = CompareOptions::new(tmp.path().join("cmp"));
        opts.data = Some(data);
        opts.examples = 170; // 10 whole batches of 16
        opts.batch_size = 16;
        opts.target_params = 250_000;
        opts.evals = 2;
        let c = run_comparison(&opts).expect("comparison runs");
        assert_eq!(c.examples, 160);
        assert_eq!(
            c.results
                .iter()
                .map(|r| r.arch.as_str())
                .collect::<Vec<_>>(),
            ["hrm", "trm", "gru", "transformer"]
        );
        for r in &c.results {
            let off = (r.parameters - 250_000).abs() as f64 / 250_000.0;
            assert!(off <= PARAM_TOLERANCE, "{}: {}", r.arch, r.parameters);
            assert!(r.curve.len() >= 2, "{}: {:?}", r.arch, r.curve);
            assert_eq!(r.curve.last().map(|p| p.examples), Some(160), "{}", r.arch);
            assert!((0.0..=1.0).contains(&r.token_accuracy) && r.token_accuracy > 0.0);
            assert!(r.samples_per_sec > 0.0 && r.train_seconds > 0.0);
            assert!(r.run_dir.join("metrics.jsonl").is_file());
        }
        for f in ["comparison.md", "comparison.json", "comparison.png"] {
            assert!(opts.out.join(f).is_file(), "{f}");
        }
        // The directory is now in use: a second comparison into it is refused before training.
        let err = run_comparison(&opts).expect_err("runs exist").to_string();
        assert!(err.contains("already holds a run"), "{err}");
    }

    #[test]
    fn prefixed_overrides_reach_one_architecture() {
        let all = vec![
            "lr=3e-4".to_string(),
            "trm:model.L_cycles=6".to_string(),
            "gru: model.num_layers=3".to_string(),
            "data_path=\"a:b\"".to_string(),
        ];
        assert_eq!(
            overrides_for(Arch::Trm, &all),
            ["lr=3e-4", "model.L_cycles=6", "data_path=\"a:b\""]
        );
        assert_eq!(
            overrides_for(Arch::Gru, &all),
            ["lr=3e-4", " model.num_layers=3", "data_path=\"a:b\""]
        );
        assert_eq!(
            overrides_for(Arch::Hrm, &all),
            ["lr=3e-4", "data_path=\"a:b\""]
        );
    }

    #[test]
    fn arch_lists_are_parsed_and_checked() {
        assert_eq!(
            parse_archs("hrm, gru").expect("valid"),
            vec![Arch::Hrm, Arch::Gru]
        );
        let err = parse_archs("hrm,lstm").expect_err("unknown").to_string();
        assert!(
            err.contains("lstm") && err.contains("transformer") && err.contains("trm"),
            "{err}"
        );
        assert!(parse_archs("gru,gru").is_err());
        assert!(parse_archs(" , ").is_err());
    }

    #[test]
    fn the_report_has_the_table_and_the_chart() {
        let result = |arch: &str, n: i64, exact: f64| ArchResult {
            arch: arch.into(),
            parameters: n,
            model: BTreeMap::from([("hidden_size".to_string(), "128".to_string())]),
            train_seconds: 125.0,
            wall_seconds: 130.0,
            samples_per_sec: 64.0,
            token_accuracy: 0.9,
            exact_accuracy: exact,
            mean_act_steps: if arch == "hrm" { 2.5 } else { 1.0 },
            halt_max_steps: if arch == "hrm" { 4 } else { 1 },
            curve: vec![
                CurvePoint {
                    examples: 640,
                    exact_accuracy: 0.1,
                    token_accuracy: 0.5,
                },
                CurvePoint {
                    examples: 1280,
                    exact_accuracy: exact,
                    token_accuracy: 0.9,
                },
            ],
            run_dir: PathBuf::from("runs/x"),
        };
        let c = Comparison {
            command: "hrm compare".into(),
            data_path: PathBuf::from("d"),
            data_summary: "d".into(),
            device: "cpu".into(),
            examples: 1280,
            batch_size: 64,
            target_params: 1_050_000,
            seed: 0,
            results: vec![
                result("hrm", 1_051_650, 0.5),
                result("gru", 1_000_000, 0.25),
            ],
            wall_seconds: 260.0,
        };
        let table = markdown_table(&c);
        assert_eq!(table.lines().count(), 4, "{table}");
        assert!(
            table.contains(
                "| hrm | 1051650 (1.05M) | 2:05 | 64.0 | 0.9000 | 0.5000 | 2.50 (max 4) |"
            ),
            "{table}"
        );
        assert!(table.contains("1 (no ACT)"));
        let md = markdown_report(&c);
        assert!(
            md.contains("comparison.png") && md.contains("| 1280 | 0.5000 | 0.2500 |"),
            "{md}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        write_report(&c, dir.path()).expect("written");
        for f in ["comparison.md", "comparison.json", "comparison.png"] {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
        let back: Comparison = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("comparison.json")).expect("json"),
        )
        .expect("parses");
        assert_eq!(back, c);
        // Two coloured lines on the chart.
        let canvas = chart(&c).render(400, 300);
        let coloured = |rgb: hrm_data::Rgb| {
            canvas
                .pixels()
                .chunks(3)
                .filter(|p| *p == [rgb.0, rgb.1, rgb.2])
                .count()
        };
        assert!(coloured(crate::plot::PALETTE[0]) > 20 && coloured(crate::plot::PALETTE[1]) > 20);
    }
}
