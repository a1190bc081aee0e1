//! The run directory: `config.toml` (the resolved config), `metrics.jsonl` (one JSON object per
//! logged training interval and per evaluation), `checkpoints/`, `eval/` (saved outputs) and,
//! at the end, `curves.png`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use hrm_act::MetricValues;

use crate::error::{Result, TrainError};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MetricsLine {
    /// A training interval: metrics reduced as the reference reduces them.
    Train {
        /// Step at the end of the interval.
        step: u64,
        /// Epoch of the sampler.
        epoch: u64,
        /// Learning rate of the last step.
        lr: f64,
        /// Training examples per second over the interval.
        samples_per_sec: f64,
        /// Reduced metrics.
        metrics: MetricValues,
    },
    /// An evaluation.
    Eval {
        /// Step at which it ran.
        step: u64,
        /// Per set, the reference's normalised metrics.
        sets: std::collections::BTreeMap<String, MetricValues>,
        /// All sets together.
        overall: MetricValues,
    },
}

/// An open run directory.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    metrics: File,
}

impl RunDir {
    /// Opens (creating it if needed) the run directory at `path`.
    ///
    /// # Errors
    /// [`TrainError::Io`] when it cannot be created or `metrics.jsonl` cannot be opened.
    pub fn open(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let metrics_path = path.join("metrics.jsonl");
        let metrics = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(|source| TrainError::Io {
                path: metrics_path,
                source,
            })?;
        Ok(RunDir {
            path: path.to_path_buf(),
            metrics,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<run>/checkpoints`.
    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    /// Writes `config.toml` atomically.
    ///
    /// # Errors
    /// [`TrainError::Io`].
    pub fn write_config(&self, toml_text: &str) -> Result<()> {
        write_atomic(&self.path.join("config.toml"), toml_text.as_bytes())
    }

    /// Appends one line to `metrics.jsonl` and flushes it.
    ///
    /// # Errors
    /// [`TrainError::Io`].
    pub fn log(&mut self, line: &MetricsLine) -> Result<()> {
        let path = self.path.join("metrics.jsonl");
        let mut text = serde_json::to_string(line).map_err(|source| TrainError::Json {
            path: path.clone(),
            source,
        })?;
        text.push('\n');
        self.metrics
            .write_all(text.as_bytes())
            .and_then(|()| self.metrics.flush())
            .map_err(|source| TrainError::Io { path, source })
    }
}

/// Reads every line of a `metrics.jsonl`.
///
/// # Errors
/// [`TrainError::Io`] / [`TrainError::Json`] naming the file (and the line in the message).
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsLine>> {
    let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|source| TrainError::Json {
                path: path.to_path_buf(),
                source,
            })
        })
        .collect()
}

/// Writes `bytes` to `path` through a temporary sibling and a rename.
///
/// # Errors
/// [`TrainError::Io`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    hrm_data::atomic::write_atomic(path, bytes).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })
}
