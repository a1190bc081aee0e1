//! Running a comparison: train every planned run with the one training loop, then read back
//! each run's learning curve from its `metrics.jsonl`.

use std::path::Path;
use std::time::Instant;

use hrm_data::Dataset;
use hrm_train::device::device_name;
use hrm_train::run_dir::{read_metrics, MetricsLine};
use hrm_train::trainer::{train_with, TrainOptions};
use hrm_train::{Result, TrainError};

use super::report::{width_fields, width_summary};
use super::*;
use crate::default_data;
use crate::progress::TerminalObserver;

/// Runs the comparison: plans, trains each architecture in turn through
/// [`hrm_train::trainer::train`], then writes `comparison.md`, `comparison.json` and
/// `comparison.png` under `opts.out`.
///
/// # Errors
/// A bad plan (see [`plan`]), a comparison directory that already holds a run of one of the
/// architectures, a dataset without a test split, a training failure or an interruption.
pub fn run_comparison(opts: &CompareOptions) -> Result<Comparison> {
    let data = match &opts.data {
        Some(d) => d.clone(),
        None => {
            let d = opts.out.join("data");
            default_data::ensure_sudoku(&d, default_data::COMPARE_DEFAULT_SIZE)?;
            d
        }
    };
    let test = Dataset::open(&data, "test").map_err(|e| TrainError::Dataset {
        path: data.clone(),
        reason: format!("a comparison needs a held-out `test` split: {e}"),
    })?;
    let train_ds = Dataset::open(&data, "train").map_err(|e| TrainError::Dataset {
        path: data.clone(),
        reason: e.to_string(),
    })?;
    for &arch in &opts.archs {
        let dir = opts.out.join(arch.name());
        let used = std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if used {
            return Err(TrainError::Config {
                key: "out".into(),
                reason: format!(
                    "{} already holds a run; choose another --out or remove it",
                    dir.display()
                ),
            });
        }
    }
    let runs = plan(opts, &data)?;
    let meta = train_ds.metadata();
    let examples = |ds: &Dataset| ds.sets().iter().map(|s| s.num_examples()).sum::<usize>();
    let data_summary = format!(
        "{}: seq_len {}, vocab {}, {} training examples in {} groups, {} test examples",
        data.display(),
        meta.seq_len,
        meta.vocab_size,
        examples(&train_ds),
        meta.total_groups,
        examples(&test),
    );
    eprintln!("[compare] data {data_summary}");
    for r in &runs {
        eprintln!(
            "[compare] {:<11} {:>10} parameters ({:+.1} % of {}), {}",
            r.arch.name(),
            r.parameters,
            100.0 * (r.parameters as f64 / opts.target_params.max(1) as f64 - 1.0),
            opts.target_params,
            width_summary(&r.config.model)
        );
    }
    let started = Instant::now();
    let mut results = Vec::new();
    for r in runs {
        let run_dir = opts.out.join(r.arch.name());
        eprintln!(
            "[compare] training {} in {}",
            r.arch.name(),
            run_dir.display()
        );
        let t0 = Instant::now();
        let mut observer = TerminalObserver::new(opts.progress);
        let summary = train_with(
            TrainOptions {
                stop: opts.stop.clone(),
                ..TrainOptions::new(r.config.clone(), run_dir.clone(), opts.device)
            },
            &mut observer,
        )?;
        let wall = t0.elapsed().as_secs_f64();
        if summary.interrupted {
            return Err(TrainError::Checkpoint(format!(
                "interrupted while training {}; its run directory is {}",
                r.arch.name(),
                run_dir.display()
            )));
        }
        let eval = summary.last_eval.clone().unwrap_or_default();
        let last_train = summary.last_train.clone().unwrap_or_default();
        let halt_max_steps = r
            .config
            .model
            .get("halt_max_steps")
            .and_then(toml::Value::as_integer)
            .unwrap_or(1);
        let result = ArchResult {
            arch: r.arch.name().into(),
            parameters: summary.num_parameters,
            model: width_fields(&r.config.model),
            train_seconds: summary.train_seconds,
            wall_seconds: wall,
            samples_per_sec: summary.samples_per_sec,
            token_accuracy: eval.overall.get("accuracy"),
            exact_accuracy: eval.overall.get("exact_accuracy"),
            mean_act_steps: if r.arch.is_recurrent() {
                last_train.get("steps")
            } else {
                1.0
            },
            halt_max_steps,
            curve: curve(&run_dir, r.config.global_batch_size)?,
            run_dir,
        };
        eprintln!(
            "[compare] {}: exact {:.4}, token {:.4}, {:.0} s",
            result.arch, result.exact_accuracy, result.token_accuracy, wall
        );
        results.push(result);
    }
    let comparison = Comparison {
        command: opts.command.clone(),
        data_path: data,
        data_summary,
        device: device_name(opts.device),
        examples: opts.examples / opts.batch_size as u64 * opts.batch_size as u64,
        batch_size: opts.batch_size,
        target_params: opts.target_params,
        seed: opts.seed,
        results,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    write_report(&comparison, &opts.out)?;
    Ok(comparison)
}

/// The held-out accuracies of every evaluation in a run directory's `metrics.jsonl`.
///
/// # Errors
/// When the file cannot be read.
pub fn curve(run_dir: &Path, batch_size: usize) -> Result<Vec<CurvePoint>> {
    Ok(read_metrics(&run_dir.join("metrics.jsonl"))?
        .into_iter()
        .filter_map(|l| match l {
            MetricsLine::Eval { step, overall, .. } => Some(CurvePoint {
                examples: step * batch_size as u64,
                exact_accuracy: overall.get("exact_accuracy"),
                token_accuracy: overall.get("accuracy"),
            }),
            MetricsLine::Train { .. } | MetricsLine::NonFinite { .. } => None,
        })
        .collect())
}
