//! hrm-data (work in progress).
pub mod dihedral;
pub mod error;
pub mod format;
pub mod npy;
pub mod rng;
pub mod sampler;

pub use dihedral::Dihedral;
pub use error::{DataError, Result};
pub use format::{
    read_identifiers, Dataset, DatasetMetadata, DatasetWriter, PuzzleSet, Validation,
};
pub use sampler::{
    total_train_steps, Batch, EvalSampler, Prefetch, SamplerState, TrainSampler, IGNORE_LABEL_ID,
};
