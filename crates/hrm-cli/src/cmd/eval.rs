//! `hrm eval RUN [--data DIR] [--out DIR] [--split test]`: evaluate a trained model on a
//! dataset split and write a report ([`crate::report::write_report`]): per-set metrics, the
//! histogram of ACT steps under learned halting, accuracy by difficulty, a gallery of failures,
//! and for ARC pass@1, pass@2 and `submission.json`. Prints a short summary.

use std::path::PathBuf;

use anyhow::Context;

use crate::report::{write_report, ReportOptions};
use hrm_train::checkpoint::load_model;
use hrm_train::device::{device_name, parse_device};

/// Arguments of `hrm eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The trained model: a run directory (its latest checkpoint) or a checkpoint directory.
    pub run: PathBuf,
    /// The dataset directory (default: the run's `data_path`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Where the report goes (default: `RUN/report`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The split to evaluate.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Examples per batch.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Failures drawn in `failures.png`.
    #[arg(long, default_value_t = 6)]
    pub gallery: usize,
}

/// Runs `hrm eval`.
///
/// # Errors
/// A model that cannot be loaded, a missing or unfit dataset, I/O failures, with context.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    let device = parse_device(&args.device)?;
    let loaded = load_model(&args.run, device)
        .with_context(|| format!("loading the model of {}", args.run.display()))?;
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| loaded.config.data_path.clone());
    let out = args.out.clone().unwrap_or_else(|| args.run.join("report"));
    eprintln!(
        "[eval] {} (step {}{}) on {} split `{}`, device {}",
        loaded.checkpoint.display(),
        loaded.step,
        if loaded.ema { ", EMA weights" } else { "" },
        data.display(),
        args.split,
        device_name(device)
    );
    let split_examples = hrm_data::Dataset::open(&data, &args.split).map(|ds| ds.num_examples());
    anyhow::ensure!(
        split_examples.as_ref().map_or(true, |&n| n > 0),
        "split `{}` of {} has no examples: nothing to evaluate",
        args.split,
        data.display()
    );
    // A failed evaluation leaves no empty report directory behind.
    let out_existed = out.exists();
    let report = write_report(
        &loaded,
        &data,
        &ReportOptions {
            out_dir: out.clone(),
            split: args.split.clone(),
            batch_size: args.batch,
            gallery: args.gallery,
            device,
        },
    )
    .inspect_err(|_| {
        if !out_existed {
            let _ = std::fs::remove_dir(&out);
        }
    })
    .with_context(|| match &args.data {
        Some(_) => format!("evaluating on {}", data.display()),
        None => format!(
            "evaluating on {}, the run's data_path (pass --data DIR if the dataset is elsewhere)",
            data.display()
        ),
    })?;
    print!("{}", report.summary());
    Ok(())
}
