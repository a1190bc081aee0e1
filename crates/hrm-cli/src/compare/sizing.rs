//! Sizing the runs of a comparison: each architecture's preset shape (`configs/compare/presets.toml`),
//! its parameter count by formula, the width that meets the parameter target, and the plan of
//! every run's config.

use std::path::Path;

use tch::Device;

use hrm_core::config::swiglu_intermediate_size;
use hrm_core::{GruConfig, HrmConfig, ModelConfig, PosEncoding, TransformerConfig, TrmConfig};
use hrm_data::{Dataset, DatasetMetadata};
use hrm_train::arch::build_model;
use hrm_train::config::{Arch, TrainConfig};
use hrm_train::device::default_forward_dtype;
use hrm_train::{Result, TrainError};

use super::*;

/// `configs/compare/presets.toml`: the shared training settings and each architecture's fixed shape.
const SETTINGS: &str = include_str!("../../../../configs/compare/presets.toml");

/// A table of `configs/compare/presets.toml` (`train`, or `model.<arch>`).
fn settings_table(path: &[&str]) -> Result<toml::Table> {
    let bad = |reason: String| TrainError::Config {
        key: format!("configs/compare/presets.toml: {}", path.join(".")),
        reason,
    };
    let mut value = toml::Value::Table(
        SETTINGS
            .parse::<toml::Table>()
            .map_err(|e| bad(e.to_string()))?,
    );
    for key in path {
        value = value
            .as_table()
            .and_then(|t| t.get(*key))
            .cloned()
            .ok_or_else(|| bad("missing".into()))?;
    }
    value
        .as_table()
        .cloned()
        .ok_or_else(|| bad("not a table".into()))
}

/// The `[model]` table of an architecture's fixed shape, before its width is chosen
/// (`[model.<arch>]` of `configs/compare/presets.toml`).
///
/// # Errors
/// [`TrainError::Config`] when the embedded settings lack the architecture.
pub fn preset(arch: Arch) -> Result<toml::Table> {
    settings_table(&["model", arch.name()])
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
pub(super) fn set_width(
    arch: Arch,
    model: &mut toml::Table,
    hidden: usize,
    expansion: f64,
    puzzles: bool,
) {
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
    let mut table = settings_table(&["train"])?;
    let int = |n: u64| toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX));
    table.insert("arch".into(), toml::Value::String(arch.name().into()));
    table.insert(
        "data_path".into(),
        toml::Value::String(data.display().to_string()),
    );
    table.insert("global_batch_size".into(), int(opts.batch_size as u64));
    table.insert("epochs".into(), int(epochs));
    table.insert("eval_interval".into(), int(eval_interval));
    table.insert("max_steps".into(), int(max_steps));
    table.insert("seed".into(), int(opts.seed));
    table.insert("model".into(), toml::Value::Table(preset(arch)?));
    let text = toml::to_string(&table).map_err(|e| TrainError::Config {
        key: "compare".into(),
        reason: e.to_string(),
    })?;
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
