//! Training, evaluation and tools for HRM-family models.

pub mod arch;
pub mod cli;
pub mod error;
pub mod golden;
pub mod optim;
pub mod schedule;

pub use error::{Result, TrainError};
