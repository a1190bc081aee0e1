//! The error type of hrm-act.

/// Errors from the ACT wrapper and the loss head.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// A batch does not fit the model (shape or batch size), naming the tensor.
    #[error("batch `{name}`: expected shape {expected:?}, found {found:?}")]
    BatchShape {
        /// Which tensor of the batch.
        name: &'static str,
        /// The shape the model needs.
        expected: Vec<i64>,
        /// The shape that was given.
        found: Vec<i64>,
    },
    /// An unknown loss name in a config.
    #[error("loss_type `{0}` is not one of stablemax_cross_entropy, softmax_cross_entropy")]
    UnknownLoss(String),
    /// An error from the model.
    #[error(transparent)]
    Core(#[from] hrm_core::CoreError),
    /// An error reported by libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// Shorthand for results in this crate.
pub type Result<T, E = ActError> = std::result::Result<T, E>;
