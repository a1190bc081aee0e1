//! Importing a PyTorch checkpoint of the reference into a run directory.
//!
//! The reference saves `torch.save(model.state_dict(), "step_N")` of its `torch.compile`d model
//! (tensor names prefixed `_orig_mod.model.`, or `model.` without compilation), with
//! `all_config.yaml` beside it. [`import_checkpoint`] reads both without Python
//! ([`torch_file`], [`reference_config`]), checks every tensor against the model the config
//! describes, and writes a run directory that `hrm solve` and `hrm eval` read like a trained
//! run: `config.toml`, `checkpoints/step_<N>/` written by [`crate::checkpoint::save`] (weights in
//! float32 under our names, which are the reference's without the prefixes), an empty
//! `metrics.jsonl`, and `import.json` ([`ImportRecord`]) saying where the weights came from.
//!
//! An imported checkpoint is **not resumable**: the reference saves no optimiser state, so
//! `optimizer.safetensors` is empty, `state.json` counts no AdamATan2 steps and its sampler
//! position is a placeholder, and `hrm train --resume` on the run fails on the missing moments.
//! Evaluation only needs the weights. The step is the reference's (from a `step_<N>` file name,
//! else 0).
//!
//! The data-derived model sizes the reference takes from its dataset (`seq_len`, `vocab_size`,
//! `num_puzzle_identifiers`) are read from the dataset when one is given, otherwise from the
//! tensors where they fix them (the token embedding, the puzzle table, learned positions or
//! TRM's token-mixing MLP); RoPE models need the dataset or `model.seq_len` set explicitly.
//!
//! # Example
//! ```no_run
//! use hrm_train::import::{import_checkpoint, ImportOptions};
//!
//! let mut opts = ImportOptions::new("step_26040", "all_config.yaml", "runs/sudoku-extreme");
//! opts.data = Some("data/sudoku-extreme-1k-aug-1000".into());
//! let report = import_checkpoint(&opts)?;
//! println!("{report}");
//! # Ok::<(), hrm_train::TrainError>(())
//! ```

pub(crate) mod pickle;
pub mod reference_config;
pub mod torch_file;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use hrm_core::weights::strip_reference_prefixes;
use hrm_data::{read_metadata, SamplerState};

use crate::arch::build_model;
use crate::checkpoint::{self, Checkpoint, CheckpointState, CHECKPOINT_FORMAT};
use crate::config::{apply_override, Arch, TrainConfig};
use crate::error::{Result, TrainError};
use crate::run_dir::write_atomic;

pub use reference_config::{map_reference_config, read_reference_config, ConfigNote, MappedConfig};
pub use torch_file::{read_torch_state_dict, TorchFormat, TorchStateDict};

/// The file in an imported run directory that records the import.
pub const IMPORT_RECORD: &str = "import.json";

/// What to import and where.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOptions {
    /// The `torch.save` file (a state dict).
    pub checkpoint: PathBuf,
    /// The reference's `all_config.yaml` for it.
    pub config: PathBuf,
    /// The run directory to create; it must not exist or be empty.
    pub out: PathBuf,
    /// The dataset directory (reference layout): fills the data-derived model sizes, checked
    /// against the tensors, and becomes the run's `data_path`. Without it the sizes come from
    /// the tensors and `data_path` stays the reference's.
    pub data: Option<PathBuf>,
    /// `key=value` overrides applied to the mapped config, as `hrm train --set` takes them
    /// (`model.seq_len=81`, `model.forward_dtype=float32`).
    pub overrides: Vec<String>,
}

impl ImportOptions {
    /// Options with no dataset and no overrides.
    pub fn new(
        checkpoint: impl Into<PathBuf>,
        config: impl Into<PathBuf>,
        out: impl Into<PathBuf>,
    ) -> Self {
        ImportOptions {
            checkpoint: checkpoint.into(),
            config: config.into(),
            out: out.into(),
            data: None,
            overrides: Vec::new(),
        }
    }
}

/// One way in which the checkpoint's tensors do not fit the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TensorMismatch {
    /// The model has the tensor; the checkpoint does not.
    Missing {
        /// Our name (the reference's without prefixes).
        name: String,
        /// The model's shape.
        expected: Vec<i64>,
    },
    /// The checkpoint has a tensor the model does not.
    Unexpected {
        /// The name, prefixes stripped.
        name: String,
        /// Its shape in the checkpoint.
        found: Vec<i64>,
    },
    /// Both have it, in different shapes.
    Shape {
        /// The name.
        name: String,
        /// The model's shape.
        expected: Vec<i64>,
        /// The checkpoint's shape.
        found: Vec<i64>,
    },
    /// The checkpoint's tensor is not floating-point.
    Dtype {
        /// The name.
        name: String,
        /// Its dtype in the checkpoint.
        found: String,
    },
    /// Two checkpoint tensors have the same name once prefixes are stripped.
    Duplicate {
        /// The stripped name.
        name: String,
        /// The names as stored.
        stored: Vec<String>,
    },
}

impl fmt::Display for TensorMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorMismatch::Missing { name, expected } => {
                write!(
                    f,
                    "`{name}` is missing (the model expects shape {expected:?})"
                )
            }
            TensorMismatch::Unexpected { name, found } => {
                write!(f, "`{name}` (shape {found:?}) is not a tensor of the model")
            }
            TensorMismatch::Shape {
                name,
                expected,
                found,
            } => write!(
                f,
                "`{name}` has shape {found:?}, the model expects {expected:?}"
            ),
            TensorMismatch::Dtype { name, found } => {
                write!(f, "`{name}` is {found}, not floating-point")
            }
            TensorMismatch::Duplicate { name, stored } => {
                write!(f, "`{name}` is stored twice ({})", stored.join(", "))
            }
        }
    }
}

/// The mismatches joined for an error message.
pub fn describe_mismatches(mismatches: &[TensorMismatch]) -> String {
    mismatches
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `import.json`: where an imported run's weights came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportRecord {
    /// The `torch.save` file, as given.
    pub source_checkpoint: PathBuf,
    /// The `all_config.yaml`, as given.
    pub source_config: PathBuf,
    /// `zip` or `legacy`.
    pub format: String,
    /// The reference's step (0 when the file name does not say).
    pub step: u64,
    /// Tensors imported.
    pub tensors: usize,
    /// Stored dtypes and how many tensors had each.
    pub dtypes: BTreeMap<String, usize>,
    /// Name prefixes stripped (`_orig_mod.model.`).
    pub prefixes: Vec<String>,
    /// What the config mapping did beyond copying keys.
    pub config_notes: Vec<String>,
    /// Always false: no optimiser state exists to resume training from.
    pub resumable: bool,
}

/// Reads an imported run's `import.json`; `None` for a run that was trained, not imported.
///
/// # Errors
/// [`TrainError::Json`] / [`TrainError::Io`] when the file exists but cannot be read.
pub fn read_import_record(run_dir: &Path) -> Result<Option<ImportRecord>> {
    let path = run_dir.join(IMPORT_RECORD);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(TrainError::Io { path, source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| TrainError::Json { path, source })
}

/// What an import produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    /// The run directory written.
    pub run_dir: PathBuf,
    /// Its checkpoint directory.
    pub checkpoint_dir: PathBuf,
    /// The architecture.
    pub arch: Arch,
    /// The reference's step.
    pub step: u64,
    /// The file layout read.
    pub format: TorchFormat,
    /// Tensors imported.
    pub tensors: usize,
    /// Their elements.
    pub elements: i64,
    /// Stored dtypes and how many tensors had each.
    pub dtypes: BTreeMap<String, usize>,
    /// Name prefixes stripped.
    pub prefixes: Vec<String>,
    /// The resolved model table.
    pub model: toml::Table,
    /// Config keys not copied as they are, and data sizes inferred.
    pub notes: Vec<ConfigNote>,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dtypes: Vec<String> = self
            .dtypes
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        writeln!(
            f,
            "imported {} tensors ({} values; stored as {}) from a {} torch.save file, step {}",
            self.tensors,
            self.elements,
            dtypes.join(", "),
            self.format.name(),
            self.step
        )?;
        if !self.prefixes.is_empty() {
            writeln!(f, "  name prefixes stripped: {}", self.prefixes.join(", "))?;
        }
        let get = |k: &str| match self.model.get(k) {
            Some(toml::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => "-".into(),
        };
        writeln!(
            f,
            "  model: {} hidden_size {} H_cycles {} L_cycles {} seq_len {} vocab_size {} \
             puzzle identifiers {} forward_dtype {}",
            self.arch.name(),
            get("hidden_size"),
            get("H_cycles"),
            get("L_cycles"),
            get("seq_len"),
            get("vocab_size"),
            get("num_puzzle_identifiers"),
            get("forward_dtype")
        )?;
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        writeln!(
            f,
            "  run directory: {} (checkpoint {}; for evaluation and solving, not resumable)",
            self.run_dir.display(),
            self.checkpoint_dir.display()
        )
    }
}

/// Imports `opts.checkpoint` with `opts.config` into the run directory `opts.out`.
///
/// Nothing is written unless every check passes: the run directory is assembled beside `out`,
/// read back with [`checkpoint::load_model`], and only then renamed into place.
///
/// # Errors
/// - [`TrainError::TorchFile`]: the checkpoint is not a readable `torch.save` state dict;
/// - [`TrainError::ReferenceConfig`] / [`TrainError::Config`]: the YAML cannot be mapped, a
///   model key is not supported, a data-derived size cannot be determined;
/// - [`TrainError::TensorMismatch`]: tensors missing, unexpected or of the wrong shape, each
///   named with the expected and found shape;
/// - [`TrainError::ImportTarget`]: `out` exists and is not empty;
/// - [`TrainError::Dataset`] / [`TrainError::Data`]: the dataset contradicts the config;
/// - I/O errors naming the path.
pub fn import_checkpoint(opts: &ImportOptions) -> Result<ImportReport> {
    check_target(&opts.out)?;
    let mapped = read_reference_config(&opts.config)?;
    let mut notes = mapped.notes.clone();
    let mut table = mapped.table;
    for o in &opts.overrides {
        apply_override(&mut table, o)?;
    }
    if let Some(data) = &opts.data {
        table.insert(
            "data_path".into(),
            toml::Value::String(data.to_string_lossy().into_owned()),
        );
    }
    let text = toml::to_string(&table).map_err(|e| TrainError::Config {
        key: "<config>".into(),
        reason: e.to_string(),
    })?;
    let mut cfg = TrainConfig::from_toml_str(&text, &[]).map_err(|e| match e {
        TrainError::Config { key, reason } => TrainError::ReferenceConfig {
            path: opts.config.clone(),
            key,
            reason,
        },
        other => other,
    })?;

    let state = read_torch_state_dict(&opts.checkpoint)?;
    let dtypes = torch_file::dtype_counts(&state.tensors);
    let (given, prefixes) = strip_names(&opts.checkpoint, state.tensors)?;

    cfg.model = match &opts.data {
        Some(data) => {
            let train = read_metadata(&data.join("train").join("dataset.json"));
            let meta = match train {
                Ok(m) => m,
                Err(e) => read_metadata(&data.join("test").join("dataset.json")).map_err(|_| e)?,
            };
            cfg.resolved_model(&meta, "bfloat16")?
        }
        None => {
            let mut model = cfg.model.clone();
            infer_data_keys(cfg.arch, &mut model, &given, &mut notes)?;
            model
        }
    };

    let model = build_model(cfg.arch, &cfg.model, Device::Cpu).map_err(|e| {
        TrainError::ReferenceConfig {
            path: opts.config.clone(),
            key: "arch".into(),
            reason: format!("the model cannot be built: {e}"),
        }
    })?;
    let params = model.params().all();
    let mismatches = check_tensors(&params, &given);
    if !mismatches.is_empty() {
        return Err(TrainError::TensorMismatch {
            path: opts.checkpoint.clone(),
            mismatches,
        });
    }
    let tensors = given.len();
    model
        .params()
        .load_named(&opts.checkpoint, given.into_iter().collect())?;
    let weights = model.params().all();
    let elements = weights.iter().map(|(_, t)| t.numel() as i64).sum();

    let step = torch_file::step_from_file_name(&opts.checkpoint).unwrap_or(0);
    let ckpt = Checkpoint {
        state: CheckpointState {
            format_version: CHECKPOINT_FORMAT,
            step,
            total_steps: step,
            // Not a real position: an imported checkpoint is not resumable.
            sampler: SamplerState {
                seed: cfg.seed,
                global_batch_size: cfg.global_batch_size,
                epoch: 0,
                set_index: 0,
                position: 0,
            },
            adam_steps: BTreeMap::new(),
            config_toml: cfg.to_toml_string(),
            model: cfg.model.clone(),
            train_seconds: 0.0,
            files: BTreeMap::new(),
            linear_routes: Vec::new(),
        },
        model: weights,
        optimizer: Vec::new(),
    };
    let record = ImportRecord {
        source_checkpoint: opts.checkpoint.clone(),
        source_config: opts.config.clone(),
        format: state.format.name().into(),
        step,
        tensors,
        dtypes: dtypes.clone(),
        prefixes: prefixes.clone(),
        config_notes: notes.iter().map(ToString::to_string).collect(),
        resumable: false,
    };
    let ckpt_name = write_run_dir(&opts.out, &cfg, &ckpt, &record)?;
    Ok(ImportReport {
        checkpoint_dir: opts.out.join("checkpoints").join(ckpt_name),
        run_dir: opts.out.clone(),
        arch: cfg.arch,
        step,
        format: state.format,
        tensors,
        elements,
        dtypes,
        prefixes,
        model: cfg.model,
        notes,
    })
}

/// `out` must not exist, or be an empty directory.
fn check_target(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    let empty = out.is_dir()
        && std::fs::read_dir(out)
            .map_err(|source| TrainError::Io {
                path: out.to_path_buf(),
                source,
            })?
            .next()
            .is_none();
    if empty {
        Ok(())
    } else {
        Err(TrainError::ImportTarget {
            path: out.to_path_buf(),
            reason: "it already exists and is not empty; choose a new run directory".into(),
        })
    }
}

/// Strips the reference's prefixes; returns the tensors by stripped name and the prefixes seen.
fn strip_names(
    path: &Path,
    tensors: Vec<(String, Tensor)>,
) -> Result<(BTreeMap<String, Tensor>, Vec<String>)> {
    let mut given = BTreeMap::new();
    let mut stored: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut prefixes = BTreeSet::new();
    for (name, t) in tensors {
        let short = strip_reference_prefixes(&name).to_string();
        let prefix = &name[..name.len() - short.len()];
        if !prefix.is_empty() {
            prefixes.insert(prefix.to_string());
        }
        stored.entry(short.clone()).or_default().push(name);
        given.insert(short, t);
    }
    let duplicates: Vec<TensorMismatch> = stored
        .into_iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(name, stored)| TensorMismatch::Duplicate { name, stored })
        .collect();
    if !duplicates.is_empty() {
        return Err(TrainError::TensorMismatch {
            path: path.to_path_buf(),
            mismatches: duplicates,
        });
    }
    Ok((given, prefixes.into_iter().collect()))
}

/// Every difference between the model's tensors and the checkpoint's, by name.
fn check_tensors(
    params: &[(String, Tensor)],
    given: &BTreeMap<String, Tensor>,
) -> Vec<TensorMismatch> {
    let mut out = Vec::new();
    for (name, p) in params {
        match given.get(name) {
            None => out.push(TensorMismatch::Missing {
                name: name.clone(),
                expected: p.size(),
            }),
            Some(t) if t.size() != p.size() => out.push(TensorMismatch::Shape {
                name: name.clone(),
                expected: p.size(),
                found: t.size(),
            }),
            Some(t) if !t.is_floating_point() => out.push(TensorMismatch::Dtype {
                name: name.clone(),
                found: torch_file::kind_name(t.kind()).into(),
            }),
            Some(_) => {}
        }
    }
    let known: BTreeSet<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    for (name, t) in given {
        if !known.contains(name.as_str()) {
            out.push(TensorMismatch::Unexpected {
                name: name.clone(),
                found: t.size(),
            });
        }
    }
    out
}

/// Fills the data-derived model keys the config leaves out from the tensors that fix them.
fn infer_data_keys(
    arch: Arch,
    model: &mut toml::Table,
    given: &BTreeMap<String, Tensor>,
    notes: &mut Vec<ConfigNote>,
) -> Result<()> {
    let int = |model: &toml::Table, k: &str| model.get(k).and_then(toml::Value::as_integer);
    let rows = |name: &str| given.get(name).and_then(|t| t.size().first().copied());
    let missing = |key: &str, why: &str| TrainError::Config {
        key: format!("model.{key}"),
        reason: format!(
            "not in all_config.yaml (the reference takes it from the dataset) and {why}; give \
             the dataset directory or set model.{key}"
        ),
    };
    let mut set = |model: &mut toml::Table, key: &str, value: i64, from: &str| {
        model.insert(key.into(), toml::Value::Integer(value));
        notes.push(ConfigNote {
            key: format!("model.{key}"),
            note: format!("{value}, inferred from {from}"),
        });
    };
    if int(model, "vocab_size").is_none() {
        let from = "inner.embed_tokens.embedding_weight";
        let v = rows(from)
            .ok_or_else(|| missing("vocab_size", "the checkpoint has no token embedding"))?;
        set(model, "vocab_size", v, &format!("the rows of `{from}`"));
    }
    let dp = int(model, "puzzle_emb_ndim").unwrap_or(0);
    if int(model, "num_puzzle_identifiers").is_none() {
        let from = "inner.puzzle_emb.weights";
        match rows(from) {
            Some(v) => set(
                model,
                "num_puzzle_identifiers",
                v,
                &format!("the rows of `{from}`"),
            ),
            None if dp == 0 => set(
                model,
                "num_puzzle_identifiers",
                1,
                "puzzle_emb_ndim = 0 (no puzzle table, so any value works)",
            ),
            None => {
                return Err(missing(
                    "num_puzzle_identifiers",
                    "the checkpoint has no puzzle table",
                ))
            }
        }
    }
    if int(model, "seq_len").is_none() {
        let h = int(model, "hidden_size").unwrap_or(0);
        let derived = if h > 0 { (dp + h - 1) / h } else { 0 };
        let puzzle_len = match arch {
            Arch::Trm => match int(model, "puzzle_emb_len").unwrap_or(16) {
                0 => derived,
                p => p,
            },
            _ => derived,
        };
        let sources = [
            ("inner.embed_pos.embedding_weight", "learned positions"),
            (
                "inner.L_level.layers.0.mlp_t.down_proj.weight",
                "the token-mixing MLP",
            ),
        ];
        let found = sources
            .iter()
            .find_map(|(name, _)| rows(name).map(|t| (*name, t)));
        match found {
            Some((name, total)) if total > puzzle_len => set(
                model,
                "seq_len",
                total - puzzle_len,
                &format!("the rows of `{name}` minus {puzzle_len} puzzle position(s)"),
            ),
            Some((name, total)) => {
                return Err(missing(
                    "seq_len",
                    &format!(
                    "`{name}` has {total} rows, not more than the {puzzle_len} puzzle positions"
                ),
                ))
            }
            None => {
                return Err(missing(
                    "seq_len",
                    "the weights do not fix it (positions are RoPE or none)",
                ))
            }
        }
    }
    Ok(())
}

/// Writes the run directory beside `out`, checks it loads, and renames it into place. Returns
/// the checkpoint directory's name.
fn write_run_dir(
    out: &Path,
    cfg: &TrainConfig,
    ckpt: &Checkpoint,
    record: &ImportRecord,
) -> Result<String> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Io { path, source }
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| TrainError::ImportTarget {
            path: out.to_path_buf(),
            reason: "not a directory name".into(),
        })?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let tmp = parent.join(format!(".{name}.import-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    let built = (|| -> Result<String> {
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let dir = checkpoint::save(&tmp.join("checkpoints"), ckpt, 1)?;
        let mut resolved = cfg.clone();
        resolved.model = ckpt.state.model.clone();
        write_atomic(
            &tmp.join("config.toml"),
            resolved.to_toml_string().as_bytes(),
        )?;
        write_atomic(&tmp.join("metrics.jsonl"), b"")?;
        let json = serde_json::to_vec_pretty(record).map_err(|source| TrainError::Json {
            path: tmp.join(IMPORT_RECORD),
            source,
        })?;
        write_atomic(&tmp.join(IMPORT_RECORD), &json)?;
        // What `hrm solve` and `hrm eval` do first: it must work before the run is published.
        checkpoint::load_model(&tmp, Device::Cpu)?;
        Ok(dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default())
    })();
    let ckpt_name = match built {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    // An empty `out` is replaced (`check_target` allowed it); anything else is never touched.
    if out.is_dir() {
        if let Err(source) = std::fs::remove_dir(out) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(TrainError::ImportTarget {
                path: out.to_path_buf(),
                reason: format!("cannot replace the empty directory: {source}"),
            });
        }
    }
    std::fs::rename(&tmp, out).map_err(|source| {
        let _ = std::fs::remove_dir_all(&tmp);
        TrainError::Io {
            path: out.to_path_buf(),
            source,
        }
    })?;
    Ok(ckpt_name)
}
