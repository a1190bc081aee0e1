//! The training configuration: the reference's `PretrainConfig` (`pretrain.py`, with
//! `config/cfg_pretrain.yaml` defaults) as TOML, plus what the reference lacks (a step budget,
//! logging and checkpoint settings, EMA for TRM).
//!
//! A config names the architecture (`arch`), the dataset, the optimisation hyperparameters
//! with the reference's key names, and a `[model]` table with the architecture's own keys. Any
//! key can be overridden from the command line (`--set lr=1e-4`, `--set model.hidden_size=128`).
//! Unknown keys, at the top level or in `[model]`, are errors naming the key; data-derived model
//! sizes (`seq_len`, `vocab_size`, `num_puzzle_identifiers`) are filled from the dataset and a
//! config that contradicts the dataset is an error.
//!
//! The `[model]` table is checked against its architecture when the config is read (types,
//! unknown and missing keys, impossible values), before any data is opened. Errors name the
//! key, the value and where it was written ([`ConfigOrigin`]): a line of the config file, or the
//! `--set` of the command line that gave it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use hrm_act::LossType;
use hrm_core::{GruConfig, HrmConfig, ModelConfig, TransformerConfig, TrmConfig};
use hrm_data::DatasetMetadata;

use crate::error::{Result, TrainError};

/// What a run does at a step whose loss or gradient norm is NaN or infinite. In both cases the
/// step's update is not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnNonFinite {
    /// Stop the run with [`TrainError::NonFinite`], writing no checkpoint of the state.
    #[default]
    Stop,
    /// Skip the step (no update, the ACT carry restarts), log it, and go on; a run that skips
    /// [`crate::trainer::MAX_CONSECUTIVE_SKIPS`] steps in a row stops with
    /// [`TrainError::Diverged`].
    Skip,
}

/// Where a config value came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// Config text: a file (or text given in code, `file` `None`), at `line` (from 1) when the
    /// position is known.
    Text {
        /// The config file.
        file: Option<PathBuf>,
        /// The line of the key (of the table header, for a missing key).
        line: Option<usize>,
    },
    /// A `--set KEY=VALUE` of the command line.
    CommandLine {
        /// The override as given.
        spec: String,
    },
}

impl ConfigOrigin {
    /// `" (line 3 of configs/x.toml)"`, `" (from the command line: --set lr=abc)"`, ...: a
    /// parenthesised clause to put after the key and value.
    pub fn describe(&self) -> String {
        match self {
            ConfigOrigin::CommandLine { spec } => {
                format!(" (from the command line: --set {spec})")
            }
            ConfigOrigin::Text { file, line } => {
                let file = file
                    .as_ref()
                    .map_or("the config".to_string(), |f| f.display().to_string());
                match line {
                    Some(l) => format!(" (line {l} of {file})"),
                    None => format!(" (in {file})"),
                }
            }
        }
    }
}

/// The model families the trainer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// The Hierarchical Reasoning Model (ACT, two recurrent modules).
    Hrm,
    /// The Tiny Recursive Model (ACT, one shared network).
    Trm,
    /// A bidirectional GRU baseline (no ACT).
    Gru,
    /// A feed-forward stack of HRM's blocks (no recurrence, no ACT).
    Transformer,
}

impl Arch {
    /// Every architecture, for messages.
    pub const ALL: [Arch; 4] = [Arch::Hrm, Arch::Trm, Arch::Gru, Arch::Transformer];

    /// The config name (`hrm`, `trm`, `gru`, `transformer`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Hrm => "hrm",
            Arch::Trm => "trm",
            Arch::Gru => "gru",
            Arch::Transformer => "transformer",
        }
    }

    /// Whether the model runs under ACT (has a Q head and a carry).
    pub fn is_recurrent(self) -> bool {
        matches!(self, Arch::Hrm | Arch::Trm)
    }
}

/// Loss settings (`arch.loss` in the reference).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// `stablemax_cross_entropy` (default) or `softmax_cross_entropy`.
    #[serde(default = "default_loss_type")]
    pub loss_type: LossType,
    /// Weight of the Q losses (0.5 in the reference).
    #[serde(default = "default_q_loss_weight")]
    pub q_loss_weight: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            loss_type: default_loss_type(),
            q_loss_weight: default_q_loss_weight(),
        }
    }
}

fn default_loss_type() -> LossType {
    LossType::StablemaxCrossEntropy
}
fn default_q_loss_weight() -> f64 {
    0.5
}
fn default_true() -> bool {
    true
}
fn default_lr_min_ratio() -> f64 {
    1.0
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.95
}
fn default_ema_rate() -> f64 {
    0.999
}
fn default_log_interval() -> u64 {
    50
}
fn default_keep_checkpoints() -> usize {
    2
}

/// A training run's settings; keys follow the reference's `PretrainConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Model family.
    pub arch: Arch,
    /// Dataset directory (`train/` and `test/` splits in the reference layout). A relative path
    /// is relative to the config file's directory when read from a file.
    pub data_path: PathBuf,
    /// Examples per optimisation step.
    pub global_batch_size: usize,
    /// Passes over the training groups.
    pub epochs: u64,
    /// Evaluate every this many epochs (`None`: only at the end).
    #[serde(default)]
    pub eval_interval: Option<u64>,
    /// Write a checkpoint at every evaluation (always at the end).
    #[serde(default = "default_true")]
    pub checkpoint_every_eval: bool,
    /// Peak learning rate of AdamATan2.
    pub lr: f64,
    /// Final learning rate as a fraction of the peak (1.0: constant after warm-up).
    #[serde(default = "default_lr_min_ratio")]
    pub lr_min_ratio: f64,
    /// Linear warm-up steps.
    #[serde(default)]
    pub lr_warmup_steps: u64,
    /// AdamATan2 beta1.
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// AdamATan2 beta2.
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// AdamATan2 decoupled weight decay.
    pub weight_decay: f64,
    /// Peak learning rate of the puzzle embedding's sign-SGD.
    pub puzzle_emb_lr: f64,
    /// Weight decay of the puzzle embedding's sign-SGD.
    pub puzzle_emb_weight_decay: f64,
    /// Seed of the initialisation, the data order and the exploration.
    #[serde(default)]
    pub seed: u64,
    /// Keep an exponential moving average of the weights and evaluate with it (TRM recipes).
    #[serde(default)]
    pub ema: bool,
    /// EMA decay.
    #[serde(default = "default_ema_rate")]
    pub ema_rate: f64,
    /// Loss settings.
    #[serde(default)]
    pub loss: LossConfig,
    /// Stop after this many steps even if the epochs are not done (the schedule still spans
    /// the epochs unless this is smaller, in which case it spans `max_steps`).
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Write a training line to `metrics.jsonl` every this many steps.
    #[serde(default = "default_log_interval")]
    pub log_interval: u64,
    /// Checkpoints kept in the run directory (older ones are deleted once a newer one is
    /// complete).
    #[serde(default = "default_keep_checkpoints")]
    pub keep_checkpoints: usize,
    /// Save each evaluation's predictions and Q-halt logits in the run directory.
    #[serde(default)]
    pub eval_save_outputs: bool,
    /// What to do at a step whose loss or gradient norm is not finite: `stop` (default) or
    /// `skip`.
    #[serde(default)]
    pub on_nonfinite: OnNonFinite,
    /// Capture the training step's forward and backward pass, and each evaluation's rollout, in
    /// CUDA graphs and replay them ([`crate::graphed`]): for ACT models (`hrm`, `trm`) on CUDA in
    /// one process. Pays where the step is bound by kernel launches (small models and batches);
    /// the updates stay eager.
    #[serde(default)]
    pub cuda_graphs: bool,
    /// The architecture's own settings, with the reference's key names.
    #[serde(default)]
    pub model: toml::Table,
}

/// Keys of the model table that come from the dataset.
pub const DATA_KEYS: [&str; 3] = ["seq_len", "vocab_size", "num_puzzle_identifiers"];

impl TrainConfig {
    /// Parses TOML text, applies `overrides` (`key=value` or `model.key=value`, the value in
    /// TOML syntax, a bare word taken as a string), validates, and checks the `[model]` table
    /// against its architecture.
    ///
    /// # Errors
    /// [`TrainError::ConfigValue`] naming the key, the value and where it came from (line of the
    /// text, or the override) for unknown keys, wrong types, missing keys and impossible values;
    /// [`TrainError::Config`] for syntax errors and malformed overrides.
    pub fn from_toml_str(text: &str, overrides: &[String]) -> Result<Self> {
        parse_config(text, overrides, None)
    }

    /// Reads a TOML config file; a relative `data_path` is resolved against the file's
    /// directory unless it exists relative to the current directory.
    ///
    /// # Errors
    /// [`TrainError::Io`] when the file cannot be read, otherwise as
    /// [`TrainConfig::from_toml_str`] with the file named.
    pub fn from_path(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = parse_config(&text, overrides, Some(path)).map_err(|e| match e {
            TrainError::Config { key, reason } => TrainError::Config {
                key,
                reason: format!("{reason} (in {})", path.display()),
            },
            other => other,
        })?;
        if cfg.data_path.is_relative() && !cfg.data_path.exists() {
            if let Some(dir) = path.parent() {
                let candidate = dir.join(&cfg.data_path);
                if candidate.exists() {
                    cfg.data_path = candidate;
                }
            }
        }
        Ok(cfg)
    }

    /// Checks every value, naming the first impossible key.
    ///
    /// # Errors
    /// [`TrainError::Config`].
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, reason: String| {
            Err(TrainError::Config {
                key: key.into(),
                reason,
            })
        };
        if self.global_batch_size == 0 {
            return bad("global_batch_size", "must be at least 1".into());
        }
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1".into());
        }
        if let Some(i) = self.eval_interval {
            if i == 0 || i > self.epochs {
                return bad(
                    "eval_interval",
                    format!("must be in [1, epochs = {}], got {i}", self.epochs),
                );
            }
        }
        for (key, v) in [("lr", self.lr), ("puzzle_emb_lr", self.puzzle_emb_lr)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(key, format!("must be >= 0, got {v}"));
            }
        }
        for (key, v) in [
            ("weight_decay", self.weight_decay),
            ("puzzle_emb_weight_decay", self.puzzle_emb_weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(key, format!("must be >= 0, got {v}"));
            }
        }
        for (key, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return bad(key, format!("must be in [0, 1), got {v}"));
            }
        }
        if !(0.0..=1.0).contains(&self.lr_min_ratio) {
            return bad(
                "lr_min_ratio",
                format!("must be in [0, 1], got {}", self.lr_min_ratio),
            );
        }
        if !(0.0..=1.0).contains(&self.ema_rate) {
            return bad(
                "ema_rate",
                format!("must be in [0, 1], got {}", self.ema_rate),
            );
        }
        if self.max_steps == Some(0) {
            return bad("max_steps", "must be at least 1".into());
        }
        if self.log_interval == 0 {
            return bad("log_interval", "must be at least 1".into());
        }
        if self.keep_checkpoints == 0 {
            return bad("keep_checkpoints", "must be at least 1".into());
        }
        if !(self.loss.q_loss_weight.is_finite() && self.loss.q_loss_weight >= 0.0) {
            return bad(
                "loss.q_loss_weight",
                format!("must be >= 0, got {}", self.loss.q_loss_weight),
            );
        }
        Ok(())
    }

    /// The model table with the data-derived sizes filled in from `meta`, and `forward_dtype`
    /// set to `default_dtype` when the config does not choose one (bf16 on CUDA, f32 on CPU).
    ///
    /// # Errors
    /// [`TrainError::Dataset`] when the config sets a data-derived size that contradicts the
    /// dataset.
    pub fn resolved_model(
        &self,
        meta: &DatasetMetadata,
        default_dtype: &str,
    ) -> Result<toml::Table> {
        let mut model = self.model.clone();
        let from_data = [
            ("seq_len", meta.seq_len as i64),
            ("vocab_size", meta.vocab_size as i64),
            ("num_puzzle_identifiers", meta.num_puzzle_identifiers as i64),
        ];
        for (key, value) in from_data {
            match model.get(key) {
                None => {
                    model.insert(key.into(), toml::Value::Integer(value));
                }
                Some(toml::Value::Integer(v)) if *v == value => {}
                Some(other) => {
                    return Err(TrainError::Dataset {
                        path: self.data_path.clone(),
                        reason: format!("the dataset has {key} = {value}, but the model config sets model.{key} = {other}"),
                    })
                }
            }
        }
        if self.arch != Arch::Gru && !model.contains_key("forward_dtype") {
            model.insert(
                "forward_dtype".into(),
                toml::Value::String(default_dtype.into()),
            );
        }
        Ok(model)
    }

    /// The config as TOML text (what a run directory stores).
    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// Applies one `key=value` override to a TOML table (dotted keys reach into sub-tables).
///
/// # Errors
/// [`TrainError::Config`] when the override has no `=` or the key is empty.
pub fn apply_override(table: &mut toml::Table, spec: &str) -> Result<()> {
    override_key(table, spec).map(|_| ())
}

/// [`apply_override`], returning the key it set.
fn override_key(table: &mut toml::Table, spec: &str) -> Result<String> {
    let Some((key, raw)) = spec.split_once('=') else {
        return Err(TrainError::Config {
            key: spec.into(),
            reason: "an override must look like key=value".into(),
        });
    };
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(TrainError::Config {
            key: key.into(),
            reason: "empty key in override".into(),
        });
    }
    let raw = raw.trim();
    // A TOML value if it parses as one (numbers, booleans, quoted strings, arrays), else a string.
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.split('.').collect();
    let mut current = table;
    for part in &parts[..parts.len() - 1] {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(TrainError::Config {
                    key: key.into(),
                    reason: format!("`{part}` is not a table"),
                })
            }
        };
    }
    current.insert(parts[parts.len() - 1].to_string(), value);
    Ok(key.to_string())
}

/// Placeholders for the data-derived model keys while the `[model]` table is checked before
/// the dataset is opened (the real values replace them in [`TrainConfig::resolved_model`]).
const DATA_PLACEHOLDERS: [(&str, i64); 3] = [
    ("seq_len", 1),
    ("vocab_size", 2),
    ("num_puzzle_identifiers", 1),
];

/// Reads a config: TOML, overrides, the top-level keys, their values, the `[model]` table.
fn parse_config(text: &str, overrides: &[String], file: Option<&Path>) -> Result<TrainConfig> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| TrainError::Config {
            key: "<toml>".into(),
            reason: e.to_string(),
        })?;
    let mut from_cli = BTreeMap::new();
    for o in overrides {
        let key = override_key(&mut table, o)?;
        from_cli.insert(key, o.clone());
    }
    let locator = Locator {
        text,
        doc: toml_edit::ImDocument::parse(text).ok(),
        file,
        from_cli,
        table: &table,
    };
    let cfg: TrainConfig = serde_path_to_error::deserialize(toml::Value::Table(table.clone()))
        .map_err(|e| locator.serde_error("", &e))?;
    cfg.validate().map_err(|e| locator.relocate(e, ""))?;
    match cfg.arch {
        Arch::Hrm => check_model::<HrmConfig>(&cfg.model, &locator),
        Arch::Trm => check_model::<TrmConfig>(&cfg.model, &locator),
        Arch::Gru => check_model::<GruConfig>(&cfg.model, &locator),
        Arch::Transformer => check_model::<TransformerConfig>(&cfg.model, &locator),
    }?;
    Ok(cfg)
}

/// Parses and validates the `[model]` table as `T`, with placeholders for the data-derived
/// keys the config leaves to the dataset.
fn check_model<T: ModelConfig>(model: &toml::Table, locator: &Locator<'_>) -> Result<()> {
    let mut filled = model.clone();
    let mut placeholders = Vec::new();
    for (key, value) in DATA_PLACEHOLDERS {
        if !filled.contains_key(key) {
            filled.insert(key.into(), toml::Value::Integer(value));
            placeholders.push(key);
        }
    }
    let parsed: T = serde_path_to_error::deserialize(toml::Value::Table(filled)).map_err(|e| {
        let mut e = locator.serde_error("model", &e);
        if let TrainError::ConfigValue { reason, .. } = &mut e {
            reason.push_str(&format!(" (arch `{}`)", T::ARCH));
        }
        e
    })?;
    match parsed.validate() {
        Ok(()) => Ok(()),
        // A value that only fails against a placeholder is checked again with the data's.
        Err(hrm_core::CoreError::Config { key, .. }) if placeholders.contains(&key) => Ok(()),
        Err(hrm_core::CoreError::Config { key, reason }) => Err(locator.relocate(
            TrainError::Config {
                key: key.to_string(),
                reason,
            },
            "model",
        )),
        Err(other) => Err(other.into()),
    }
}

/// Finds where a key of a config was written.
struct Locator<'a> {
    text: &'a str,
    /// The text parsed with positions (`None` if it does not parse, which `toml` caught).
    doc: Option<toml_edit::ImDocument<&'a str>>,
    file: Option<&'a Path>,
    /// Keys set by `--set`, with the override as given.
    from_cli: BTreeMap<String, String>,
    /// The table after the overrides.
    table: &'a toml::Table,
}

impl Locator<'_> {
    /// The value at the dotted `key`, in TOML syntax.
    fn value(&self, key: &str) -> Option<String> {
        let mut parts = key.split('.');
        let mut v = self.table.get(parts.next()?)?;
        for p in parts {
            v = v.as_table()?.get(p)?;
        }
        Some(v.to_string())
    }

    /// Where `key` was written: the override that set it (or a table above it), else its line.
    fn origin(&self, key: &str) -> ConfigOrigin {
        let parts: Vec<&str> = key.split('.').collect();
        for n in (1..=parts.len()).rev() {
            if let Some(spec) = self.from_cli.get(&parts[..n].join(".")) {
                return ConfigOrigin::CommandLine { spec: spec.clone() };
            }
        }
        ConfigOrigin::Text {
            file: self.file.map(Path::to_path_buf),
            line: self.span_of(&parts).map(|start| self.line_at(start)),
        }
    }

    /// Where the table `key` (empty for the top level) begins, for a key missing from it.
    fn table_origin(&self, key: &str) -> ConfigOrigin {
        if key.is_empty() {
            return ConfigOrigin::Text {
                file: self.file.map(Path::to_path_buf),
                line: None,
            };
        }
        self.origin(key)
    }

    /// The byte offset of the key at `parts` (or of its table header).
    fn span_of(&self, parts: &[&str]) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut table: &dyn toml_edit::TableLike = doc.as_table();
        let mut start = None;
        for (i, part) in parts.iter().enumerate() {
            let (k, item) = table.get_key_value(part)?;
            start = k.span().or_else(|| item.span()).map(|r| r.start).or(start);
            if i + 1 < parts.len() {
                table = item.as_table_like()?;
            }
        }
        start
    }

    fn line_at(&self, offset: usize) -> usize {
        self.text
            .get(..offset)
            .map_or(1, |t| t.bytes().filter(|&b| b == b'\n').count() + 1)
    }

    /// A deserialisation error under `prefix` (`""` or `"model"`), with the key, value and
    /// origin.
    fn serde_error(
        &self,
        prefix: &str,
        e: &serde_path_to_error::Error<toml::de::Error>,
    ) -> TrainError {
        let mut key: Vec<String> = prefix
            .split('.')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Map { key: k } => key.push(k.clone()),
                serde_path_to_error::Segment::Seq { index } => {
                    if let Some(last) = key.last_mut() {
                        last.push_str(&format!("[{index}]"));
                    }
                }
                _ => {}
            }
        }
        let message = e.inner().message().to_string();
        let named = |what: &str| {
            message
                .strip_prefix(what)
                .and_then(|rest| rest.strip_prefix('`'))
                .and_then(|rest| rest.split('`').next())
                .map(String::from)
        };
        if let Some(missing) = named("missing field ") {
            let table = key.join(".");
            let origin = self.table_origin(&table);
            key.push(missing);
            return TrainError::ConfigValue {
                key: key.join("."),
                value: None,
                origin,
                reason: "missing; this key has no default".into(),
            };
        }
        if let Some(unknown) = named("unknown field ") {
            if key.last() != Some(&unknown) {
                key.push(unknown);
            }
        }
        let key = key.join(".");
        TrainError::ConfigValue {
            value: self.value(&key),
            origin: self.origin(&key),
            key,
            reason: message,
        }
    }

    /// A [`TrainError::Config`] of a key under `prefix`, located; other errors unchanged.
    fn relocate(&self, e: TrainError, prefix: &str) -> TrainError {
        match e {
            TrainError::Config { key, reason } => {
                let key = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                match self.value(&key) {
                    Some(value) => TrainError::ConfigValue {
                        origin: self.origin(&key),
                        value: Some(value),
                        key,
                        reason,
                    },
                    None => TrainError::Config { key, reason },
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
arch = "hrm"
data_path = "data/x"
global_batch_size = 8
epochs = 10
lr = 1e-4
weight_decay = 0.1
puzzle_emb_lr = 1e-2
puzzle_emb_weight_decay = 0.1
[model]
H_cycles = 1
L_cycles = 1
H_layers = 1
L_layers = 1
hidden_size = 64
num_heads = 2
expansion = 2.0
halt_max_steps = 2
"#;

    #[test]
    fn overrides_reach_top_level_and_model_keys() {
        let cfg = TrainConfig::from_toml_str(
            MINIMAL,
            &[
                "lr=3e-4".into(),
                "model.hidden_size=128".into(),
                "arch=trm".into(),
                // TRM's default of 16 puzzle positions needs a puzzle embedding.
                "model.puzzle_emb_len=0".into(),
            ],
        )
        .expect("valid");
        assert_eq!(cfg.lr, 3e-4);
        assert_eq!(cfg.arch, Arch::Trm);
        assert_eq!(cfg.model["hidden_size"].as_integer(), Some(128));
    }

    #[test]
    fn unknown_keys_and_archs_are_errors_naming_them() {
        let err = TrainConfig::from_toml_str(MINIMAL, &["lrr=1".into()]).expect_err("unknown key");
        assert!(err.to_string().contains("lrr"), "{err}");
        let err =
            TrainConfig::from_toml_str(MINIMAL, &["arch=lstm".into()]).expect_err("unknown arch");
        let msg = err.to_string();
        assert!(
            msg.contains("lstm") && msg.contains("hrm") && msg.contains("transformer"),
            "{msg}"
        );
        let err =
            TrainConfig::from_toml_str(MINIMAL, &["epochs=0".into()]).expect_err("zero epochs");
        assert!(
            matches!(&err, TrainError::ConfigValue { key, value: Some(v), .. } if key == "epochs" && v == "0"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_key_the_value_and_where_it_came_from() {
        // `--set lr=abc`: the key, the value and the command line.
        let err = TrainConfig::from_toml_str(MINIMAL, &["lr=abc".into()]).expect_err("lr=abc");
        let msg = err.to_string();
        assert!(
            msg.starts_with("config key `lr` = \"abc\" (from the command line: --set lr=abc)"),
            "{msg}"
        );
        // A wrong type in [model]: key, value, line of the file.
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("x.toml");
        std::fs::write(
            &file,
            MINIMAL.replace("num_heads = 2", "num_heads = \"two\""),
        )
        .expect("write");
        let err = TrainConfig::from_path(&file, &[]).expect_err("num_heads");
        let line = MINIMAL
            .lines()
            .position(|l| l.starts_with("num_heads"))
            .expect("line")
            + 1;
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "config key `model.num_heads` = \"two\" (line {line} of {})",
                file.display()
            )),
            "{msg}"
        );
        assert!(msg.contains("arch `hrm`"), "{msg}");
        assert!(
            !msg.contains("column"),
            "no position in a re-serialisation: {msg}"
        );
        // A key without a default: named, with the line of its table.
        let err = TrainConfig::from_toml_str(&MINIMAL.replace("hidden_size = 64\n", ""), &[])
            .expect_err("no hidden_size");
        let header = MINIMAL
            .lines()
            .position(|l| l == "[model]")
            .expect("header")
            + 1;
        assert!(
            matches!(&err, TrainError::ConfigValue { key, value: None, origin: ConfigOrigin::Text { line: Some(l), .. }, .. } if key == "model.hidden_size" && *l == header),
            "{err}"
        );
        // An impossible value in [model], from the command line.
        let err = TrainConfig::from_toml_str(MINIMAL, &["model.halt_exploration_prob=2".into()])
            .expect_err("a probability of 2");
        assert!(
            matches!(&err, TrainError::ConfigValue { key, origin: ConfigOrigin::CommandLine { .. }, .. } if key == "model.halt_exploration_prob"),
            "{err}"
        );
        // An unknown top-level key in the text: its line.
        let err = TrainConfig::from_toml_str(&format!("lrr = 1\n{MINIMAL}"), &[]).expect_err("lrr");
        assert!(
            matches!(&err, TrainError::ConfigValue { key, origin: ConfigOrigin::Text { line: Some(1), .. }, .. } if key == "lrr"),
            "{err}"
        );
    }

    #[test]
    fn documented_model_defaults_apply() {
        // MINIMAL leaves out pos_encodings and halt_exploration_prob, documented as defaulted.
        let cfg = TrainConfig::from_toml_str(MINIMAL, &[]).expect("valid");
        let mut table = cfg.model.clone();
        for (k, v) in DATA_PLACEHOLDERS {
            table.insert(k.into(), toml::Value::Integer(v));
        }
        let model: hrm_core::HrmConfig = toml::Value::Table(table).try_into().expect("parses");
        assert_eq!(model.pos_encodings, hrm_core::PosEncoding::Rope);
        assert_eq!(model.halt_exploration_prob, 0.1);
        assert_eq!(cfg.on_nonfinite, OnNonFinite::Stop);
        let cfg = TrainConfig::from_toml_str(MINIMAL, &["on_nonfinite=skip".into()]).expect("skip");
        assert_eq!(cfg.on_nonfinite, OnNonFinite::Skip);
    }

    #[test]
    fn data_sizes_are_filled_and_contradictions_rejected() {
        let meta = DatasetMetadata {
            pad_id: 0,
            ignore_label_id: Some(0),
            blank_identifier_id: 0,
            vocab_size: 11,
            seq_len: 81,
            num_puzzle_identifiers: 1,
            total_groups: 10,
            mean_puzzle_examples: 1.0,
            total_puzzles: None,
            sets: vec!["all".into()],
        };
        let cfg = TrainConfig::from_toml_str(MINIMAL, &[]).expect("valid");
        let model = cfg.resolved_model(&meta, "float32").expect("fits");
        assert_eq!(model["seq_len"].as_integer(), Some(81));
        assert_eq!(model["forward_dtype"].as_str(), Some("float32"));
        let cfg =
            TrainConfig::from_toml_str(MINIMAL, &["model.vocab_size=12".into()]).expect("valid");
        let err = cfg
            .resolved_model(&meta, "float32")
            .expect_err("contradiction");
        assert!(err.to_string().contains("vocab_size"), "{err}");
    }
}
