//! The run directory: `config.toml` (the resolved config), `metrics.jsonl` (one JSON object per
//! logged training interval, per evaluation and per non-finite step), `checkpoints/`, `eval/`
//! (saved outputs) and, drawn by the `hrm` command at the end, `curves.png`.
//!
//! `metrics.jsonl` stays valid JSON whatever the numbers: NaN and the infinities are written as
//! the strings `"NaN"`, `"Infinity"` and `"-Infinity"` ([`hrm_act::metrics::JsonF64`]). When a run
//! starts, the log is cut back to the step it starts from ([`RunDir::cut_metrics`]), so a run
//! killed after its last checkpoint and resumed logs each step once, and a line torn by the
//! kill is dropped.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use hrm_act::MetricValues;

use crate::config::OnNonFinite;
use crate::error::{Result, TrainError};
use crate::train_step::Quantity;

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
        #[serde(with = "hrm_act::metrics::json_f64")]
        lr: f64,
        /// Training examples per second over the interval.
        #[serde(with = "hrm_act::metrics::json_f64")]
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
    /// A step whose loss or gradient norm was not finite; its update was not applied.
    #[serde(rename = "nonfinite")]
    NonFinite {
        /// The step.
        step: u64,
        /// What was not finite.
        quantity: Quantity,
        /// Its value.
        #[serde(with = "hrm_act::metrics::json_f64")]
        value: f64,
        /// What the run did: stopped, or skipped the step.
        action: OnNonFinite,
    },
}

impl MetricsLine {
    /// The step of the line.
    pub fn step(&self) -> u64 {
        match self {
            MetricsLine::Train { step, .. }
            | MetricsLine::Eval { step, .. }
            | MetricsLine::NonFinite { step, .. } => *step,
        }
    }
}

/// A last line of `metrics.jsonl` that a kill cut short (no newline, not valid JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornLine {
    /// Its line number, from 1.
    pub line: usize,
    /// Why it cannot be read.
    pub reason: String,
}

/// What [`RunDir::cut_metrics`] removed from `metrics.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsCut {
    /// The step the log was cut back to.
    pub step: u64,
    /// Lines kept.
    pub kept: usize,
    /// Lines of later steps removed.
    pub dropped: usize,
    /// A torn last line, removed.
    pub torn: Option<TornLine>,
}

/// The lines of a `metrics.jsonl` and a torn last line, if any.
#[derive(Debug, Clone, Default)]
pub struct MetricsLog {
    /// Every complete line, in order.
    pub lines: Vec<MetricsLine>,
    /// A last line that a kill cut short, left out of `lines`.
    pub torn: Option<TornLine>,
}

/// An open run directory.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    metrics: File,
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        })
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
        let metrics = open_append(&path.join("metrics.jsonl"))?;
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

    /// `<run>/metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.path.join("metrics.jsonl")
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
        let path = self.metrics_path();
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

    /// Cuts `metrics.jsonl` back to `step`: lines of later steps (a run killed after its last
    /// checkpoint logged them; the resumed run logs them again) and a torn last line are
    /// removed. The kept lines are kept byte for byte; the file is rewritten atomically, and
    /// only when something is removed.
    ///
    /// # Errors
    /// [`TrainError::MetricsLine`] naming the line for a line that is not JSON before the last
    /// one, or one without a step; [`TrainError::Io`].
    pub fn cut_metrics(&mut self, step: u64) -> Result<MetricsCut> {
        let path = self.metrics_path();
        let text = std::fs::read_to_string(&path).map_err(|source| TrainError::Io {
            path: path.clone(),
            source,
        })?;
        let mut cut = MetricsCut {
            step,
            ..MetricsCut::default()
        };
        let mut kept = String::with_capacity(text.len());
        for (i, raw, last) in numbered_lines(&text) {
            let value: serde_json::Value = match serde_json::from_str(raw) {
                Ok(v) => v,
                Err(e) if last && !text.ends_with('\n') => {
                    cut.torn = Some(TornLine {
                        line: i,
                        reason: e.to_string(),
                    });
                    continue;
                }
                Err(e) => {
                    return Err(TrainError::MetricsLine {
                        path,
                        line: i,
                        reason: e.to_string(),
                    })
                }
            };
            let line_step = value
                .get("step")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| TrainError::MetricsLine {
                    path: path.clone(),
                    line: i,
                    reason: "no `step`".into(),
                })?;
            if line_step <= step {
                kept.push_str(raw);
                kept.push('\n');
                cut.kept += 1;
            } else {
                cut.dropped += 1;
            }
        }
        if cut.dropped > 0 || cut.torn.is_some() {
            write_atomic(&path, kept.as_bytes())?;
            // The rename replaced the file: append to the new one.
            self.metrics = open_append(&path)?;
        }
        Ok(cut)
    }
}

/// The non-blank lines of `text` as `(number from 1, line, is the last non-blank line)`.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str, bool)> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
        .collect();
    let n = lines.len();
    lines
        .into_iter()
        .enumerate()
        .map(move |(k, (i, l))| (i, l, k + 1 == n))
}

/// Reads every line of a `metrics.jsonl`, and a torn last line (one a kill cut short: not
/// valid JSON, no newline after it) separately.
///
/// # Errors
/// [`TrainError::Io`] when the file cannot be read; [`TrainError::MetricsLine`] naming the
/// file and the line number for any other line that cannot be read.
pub fn read_metrics_log(path: &Path) -> Result<MetricsLog> {
    let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_metrics(&text, path)
}

/// Parses the text of a `metrics.jsonl` read from `path` (which names it in errors), as
/// [`read_metrics_log`].
///
/// # Errors
/// As [`read_metrics_log`].
pub fn parse_metrics(text: &str, path: &Path) -> Result<MetricsLog> {
    let mut log = MetricsLog::default();
    for (i, raw, last) in numbered_lines(text) {
        match serde_json::from_str(raw) {
            Ok(line) => log.lines.push(line),
            Err(e) if last && !text.ends_with('\n') => {
                log.torn = Some(TornLine {
                    line: i,
                    reason: e.to_string(),
                })
            }
            Err(e) => {
                return Err(TrainError::MetricsLine {
                    path: path.to_path_buf(),
                    line: i,
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok(log)
}

/// Reads every complete line of a `metrics.jsonl`; a torn last line (a run killed while writing
/// it, or one still writing) is left out.
///
/// # Errors
/// As [`read_metrics_log`].
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsLine>> {
    Ok(read_metrics_log(path)?.lines)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn train_line(step: u64, loss: f64) -> MetricsLine {
        MetricsLine::Train {
            step,
            epoch: 0,
            lr: 1e-3,
            samples_per_sec: f64::INFINITY,
            metrics: MetricValues([("lm_loss".to_string(), loss)].into_iter().collect()),
        }
    }

    #[test]
    fn non_finite_values_are_written_as_strings_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut run = RunDir::open(dir.path()).expect("open");
        run.log(&train_line(1, f64::NAN)).expect("log");
        run.log(&MetricsLine::NonFinite {
            step: 2,
            quantity: Quantity::GradNorm,
            value: f64::NEG_INFINITY,
            action: OnNonFinite::Skip,
        })
        .expect("log");
        let text = std::fs::read_to_string(run.metrics_path()).expect("read");
        assert!(text.contains(r#""lm_loss":"NaN""#), "{text}");
        assert!(text.contains(r#""samples_per_sec":"Infinity""#), "{text}");
        assert!(
            text.contains(r#""kind":"nonfinite","step":2,"quantity":"grad_norm","value":"-Infinity","action":"skip""#),
            "{text}"
        );
        for l in text.lines() {
            serde_json::from_str::<serde_json::Value>(l).expect("valid JSON");
        }
        let back = read_metrics(&run.metrics_path()).expect("read back");
        assert_eq!(back.len(), 2);
        match &back[0] {
            MetricsLine::Train {
                metrics,
                samples_per_sec,
                ..
            } => {
                assert!(metrics.get("lm_loss").is_nan());
                assert_eq!(*samples_per_sec, f64::INFINITY);
            }
            other => panic!("not a train line: {other:?}"),
        }
        assert_eq!(back[1].step(), 2);
    }

    #[test]
    fn errors_name_the_line_and_a_torn_last_line_is_set_apart() {
        let p = Path::new("m.jsonl");
        let good = serde_json::to_string(&train_line(1, 0.5)).expect("json");
        // A bad line in the middle: its own line number (blank lines counted).
        let text = format!("{good}\n\n{{\"kind\":\"train\"\n{good}\n");
        let err = parse_metrics(&text, p).expect_err("bad line");
        assert!(
            matches!(&err, TrainError::MetricsLine { line: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("m.jsonl line 3"), "{err}");
        // A partial last line without a newline: torn, the rest readable.
        let text = format!("{good}\n{good}\n{}", &good[..good.len() / 2]);
        let log = parse_metrics(&text, p).expect("torn tail");
        assert_eq!(log.lines.len(), 2);
        assert_eq!(log.torn.as_ref().map(|t| t.line), Some(3));
        // The same line with a newline after it was written whole: an error.
        let err = parse_metrics(&format!("{text}\n"), p).expect_err("complete bad line");
        assert!(
            matches!(err, TrainError::MetricsLine { line: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn cutting_keeps_earlier_lines_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut run = RunDir::open(dir.path()).expect("open");
        for step in 1..=5 {
            run.log(&train_line(step, 0.25)).expect("log");
        }
        let before = std::fs::read_to_string(run.metrics_path()).expect("read");
        std::fs::write(run.metrics_path(), format!("{before}{{\"kind\":\"tr")).expect("tear");
        let cut = run.cut_metrics(3).expect("cut");
        assert_eq!((cut.kept, cut.dropped), (3, 2));
        assert_eq!(cut.torn.as_ref().map(|t| t.line), Some(6));
        run.log(&train_line(4, 0.125)).expect("log after the cut");
        let after = std::fs::read_to_string(run.metrics_path()).expect("read");
        let first_three: String = before.lines().take(3).map(|l| format!("{l}\n")).collect();
        assert!(after.starts_with(&first_three), "{after}");
        let steps: Vec<u64> = read_metrics(&run.metrics_path())
            .expect("read")
            .iter()
            .map(MetricsLine::step)
            .collect();
        assert_eq!(steps, [1, 2, 3, 4]);
        // Nothing to cut: the file is left alone.
        assert_eq!(run.cut_metrics(4).expect("cut").dropped, 0);
    }
}
