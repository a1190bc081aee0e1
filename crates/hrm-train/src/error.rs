//! The error type of hrm-train's library.

use std::path::PathBuf;

/// Errors from training, evaluation, checkpoints and the golden check.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration value is impossible or unknown; `key` as users write it.
    #[error("config key `{key}`: {reason}")]
    Config {
        /// The key.
        key: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A config value that cannot be used, with where it was written: the line of the config
    /// file, or the `--set` that gave it.
    #[error("config key `{key}`{}{}: {reason}", value.as_ref().map(|v| format!(" = {v}")).unwrap_or_default(), origin.describe())]
    ConfigValue {
        /// The key, dotted (`lr`, `model.hidden_size`).
        key: String,
        /// The value as written (TOML syntax), or `None` when the key is missing.
        value: Option<String>,
        /// Where the value (or the table missing it) came from.
        origin: crate::config::ConfigOrigin,
        /// Why it cannot be used.
        reason: String,
    },
    /// A training step whose loss or gradient norm is not finite. The step's update was not
    /// applied and nothing of the diverged state was written.
    #[error("step {step}: the {quantity} is {value} (not finite); the run stopped without applying the step or writing a checkpoint of it. Resume from the last checkpoint with a lower learning rate, or set on_nonfinite = \"skip\" to skip such steps")]
    NonFinite {
        /// The step (1-based) that diverged.
        step: u64,
        /// What was not finite.
        quantity: crate::train_step::Quantity,
        /// Its value (NaN or an infinity).
        value: f64,
    },
    /// Too many steps in a row skipped under `on_nonfinite = "skip"`: the model no longer
    /// produces finite values.
    #[error("step {step}: {count} consecutive steps had a non-finite {quantity} and were skipped; the run stopped (resume from the last checkpoint with a lower learning rate)")]
    Diverged {
        /// The last skipped step.
        step: u64,
        /// How many steps in a row were skipped.
        count: u64,
        /// What was not finite at the last one.
        quantity: crate::train_step::Quantity,
    },
    /// A file of a checkpoint that does not match the digest `state.json` records for it.
    #[error("{}: {reason} (state.json of the checkpoint records {expected}); the file was changed or damaged after it was written", file.display())]
    CheckpointDigest {
        /// The file.
        file: PathBuf,
        /// What `state.json` records (`sha256:<hex>`, or a size).
        expected: String,
        /// What was found.
        reason: String,
    },
    /// A checkpoint tensor holding NaN or infinite values.
    #[error("{}: tensor `{tensor}` holds {count} non-finite value(s) (NaN or infinity); a diverged state is not used", file.display())]
    NonFiniteTensor {
        /// The safetensors file.
        file: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// How many of its values are not finite.
        count: i64,
    },
    /// A file of a checkpoint that is missing, unreadable or not in the expected format.
    #[error("{}: {reason}", file.display())]
    CheckpointFile {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint written in a layout this build does not read.
    #[error("{}: checkpoint format version {found}; this build reads versions {oldest} to {newest}", file.display())]
    CheckpointFormat {
        /// Its `state.json`.
        file: PathBuf,
        /// The version it records.
        found: u32,
        /// The oldest version this build reads.
        oldest: u32,
        /// The version this build writes.
        newest: u32,
    },
    /// `--resume` found checkpoints, but none verifies.
    #[error("no checkpoint in {} verifies: {}", root.display(), skipped.iter().map(|s| format!("{} ({})", s.dir.display(), s.reason)).collect::<Vec<_>>().join("; "))]
    NoVerifiedCheckpoint {
        /// The checkpoints directory.
        root: PathBuf,
        /// Each checkpoint tried, newest first, and why it failed.
        skipped: Vec<crate::checkpoint::SkippedCheckpoint>,
    },
    /// A line of `metrics.jsonl` that cannot be read.
    #[error("{} line {line}: {reason}", path.display())]
    MetricsLine {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// Why it cannot be read.
        reason: String,
    },
    /// Tensors whose shapes do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A checkpoint that cannot be used (corrupt, truncated, from another model).
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A golden case directory that does not follow the format.
    #[error("golden case {path}: {reason}")]
    Golden {
        /// The case directory or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A dataset that does not fit the model.
    #[error("dataset {path}: {reason}")]
    Dataset {
        /// The dataset directory.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// A file that cannot be read as a `torch.save` checkpoint (not one, truncated, corrupt, or
    /// holding something other than a dict of tensors).
    #[error("{path}: not a usable PyTorch checkpoint: {reason}")]
    TorchFile {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong, naming the entry or tensor when one is at fault.
        reason: String,
    },
    /// A key of the reference's `all_config.yaml` that cannot be imported.
    #[error("{path}: `{key}`: {reason}")]
    ReferenceConfig {
        /// The YAML file.
        path: PathBuf,
        /// The key, dotted (`arch.name`).
        key: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Checkpoint tensors that do not fit the model its config describes; every problem is
    /// listed, each naming the tensor with the expected and the found shape.
    #[error(
        "{path}: the tensors do not fit the model of the config: {}",
        crate::import::describe_mismatches(.mismatches)
    )]
    TensorMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// Each missing, unexpected or misshapen tensor.
        mismatches: Vec<crate::import::TensorMismatch>,
    },
    /// An import that cannot write its run directory.
    #[error("import into {path}: {reason}")]
    ImportTarget {
        /// The run directory.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// An error from the model.
    #[error(transparent)]
    Core(#[from] hrm_core::CoreError),
    /// An error from the ACT wrapper.
    #[error(transparent)]
    Act(#[from] hrm_act::ActError),
    /// An error from the data crate.
    #[error(transparent)]
    Data(#[from] hrm_data::DataError),
    /// An error reported by libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// A collective of a data-parallel run failed (a lost peer, a timeout).
    #[error(transparent)]
    Dist(#[from] hrm_dist::DistError),
    /// An I/O error with its path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file that cannot be parsed.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
