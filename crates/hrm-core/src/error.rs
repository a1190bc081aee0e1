//! The error type of hrm-core: every variant names what went wrong (a config key, a tensor, a
//! file) so a user can act on it without reading a libtorch backtrace.

use std::path::PathBuf;

/// Errors from building, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    // --- configuration ---
    /// A configuration value is impossible; `key` is the name users write in their config.
    #[error("config key `{key}`: {reason}")]
    Config {
        /// The offending key, as spelled in config files.
        key: &'static str,
        /// Why the value cannot be used.
        reason: String,
    },
    /// A configuration file or string could not be parsed (unknown key, wrong type, syntax).
    #[error("config {source_name}: {message}")]
    ConfigParse {
        /// The file name, or `<string>`.
        source_name: String,
        /// The parser's message, which names the key.
        message: String,
    },
    /// A forward dtype name that is none of the accepted spellings.
    #[error("unknown dtype `{value}`: expected one of f32, float32, bf16, bfloat16")]
    UnknownDtype {
        /// The name that was given.
        value: String,
    },

    // --- tensors and weights ---
    /// A tensor has the wrong shape.
    #[error("tensor `{name}`: expected shape {expected:?}, found {found:?}")]
    Shape {
        /// The tensor's name (parameter name, or a description such as `inputs`).
        name: String,
        /// The shape the model needs.
        expected: Vec<i64>,
        /// The shape that was given.
        found: Vec<i64>,
    },
    /// A tensor has the wrong element type.
    #[error("tensor `{name}`: expected dtype {expected}, found {found}")]
    Dtype {
        /// The tensor's name.
        name: String,
        /// The element type the model needs.
        expected: String,
        /// The element type that was given.
        found: String,
    },
    /// A weights file lacks a tensor the model needs.
    #[error("weights {path}: missing tensor `{name}`")]
    MissingTensor {
        /// The file that was read.
        path: PathBuf,
        /// The parameter name (without prefixes).
        name: String,
    },
    /// A weights file holds tensors the model does not have.
    #[error("weights {path}: unexpected tensors {names:?} (not parameters of this model)")]
    UnexpectedTensors {
        /// The file that was read.
        path: PathBuf,
        /// The extra names.
        names: Vec<String>,
    },
    /// A safetensors file is corrupt or truncated.
    #[error("weights {path}: {message}")]
    WeightsFormat {
        /// The file that was read.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Input values out of the range the model was built for (token ids, puzzle ids).
    #[error("input `{name}`: {reason}")]
    InputRange {
        /// Which input.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },

    // --- CUDA graphs ---
    /// A CUDA graph could not be captured or replayed ([`crate::cuda_graph::CudaGraph`]).
    #[error("CUDA graph: {reason}")]
    CudaGraph {
        /// What failed, with libtorch's or CUDA's message where there is one.
        reason: String,
    },

    // --- foreign errors ---
    /// An error reported by libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// An I/O error, with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
