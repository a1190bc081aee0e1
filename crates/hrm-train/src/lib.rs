//! Training, evaluation and tools for HRM-family models.

pub mod arc_eval;
pub mod arch;
pub mod bench_setup;
pub mod checkpoint;
pub mod cli;
pub mod compare;
pub mod config;
pub mod device;
pub mod error;
pub mod eval;
pub mod golden;
pub mod optim;
pub mod outputs;
pub mod plot;
pub mod report;
pub mod run_dir;
pub mod schedule;
pub mod solve;
pub mod step;
pub mod trainer;

pub use error::{Result, TrainError};
