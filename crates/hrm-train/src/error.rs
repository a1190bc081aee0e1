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
