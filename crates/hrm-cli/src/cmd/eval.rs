//! `hrm eval RUN... [--data DIR] [--out DIR] [--split test]`: evaluate a trained model on a
//! dataset split and write a report ([`crate::report::write_report`]): per-set metrics, the
//! histogram of ACT steps under learned halting (continuous batching), accuracy by difficulty,
//! a gallery of failures, and for ARC pass@1, pass@2 and `submission.json`; optionally
//! accuracy against test-time steps (`--steps-sweep`), voting over augmentations and runs
//! (`--vote K`, several RUNs), and the halting throughput comparison (`--bench-halting`).
//! Prints a short summary.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::report::{bench_halting, write_report, ReportOptions};
use hrm_train::checkpoint::{load_model, LoadedModel};
use hrm_train::device::{device_name, parse_device};
use hrm_train::rollout::{Batching, HaltMode};

/// Arguments of `hrm eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The trained model: a run directory (its latest checkpoint) or a checkpoint directory.
    /// Further runs (of the same task) only vote with it (pass@1 and pass@2 in the report).
    #[arg(required = true, num_args = 1.., value_name = "RUN")]
    pub runs: Vec<PathBuf>,
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
    /// Test-time step cap of learned halting and of the all-steps answers (default: the
    /// trained halt_max_steps; may be larger). The reference evaluation keeps halt_max_steps.
    #[arg(long, value_name = "N")]
    pub max_steps: Option<usize>,
    /// How learned-halting rows share a batch: `continuous` (a halted row's slot takes the next
    /// puzzle) or `lockstep` (a batch runs until its slowest row halts).
    #[arg(long, default_value = "continuous")]
    pub batching: Batching,
    /// Measure exactness at each of these step caps (comma-separated, e.g. 1,2,4,8,16) and
    /// write steps_sweep.json and steps_sweep.png.
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    pub steps_sweep: Vec<usize>,
    /// Vote over K views of every Sudoku or maze example (the example and K-1 random
    /// augmentations), and over every RUN: pass@1 and pass@2 in the report.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub vote: usize,
    /// Seed of the voting views' augmentations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Halting of the voting views: `learned` or `max`.
    #[arg(long, default_value = "learned")]
    pub halt: HaltMode,
    /// Instead of a report: time learned halting (continuous and lockstep) and all-steps
    /// answering on the split, print puzzles/s, mean steps and accuracy, and write
    /// halting_bench.json into the output directory.
    #[arg(long)]
    pub bench_halting: bool,
    /// Timed repeats of each mode under --bench-halting (the best is reported).
    #[arg(long, default_value_t = 1, value_name = "R")]
    pub bench_repeats: usize,
}

/// Runs `hrm eval`.
///
/// # Errors
/// A model that cannot be loaded, a missing or unfit dataset, I/O failures, with context.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    anyhow::ensure!(args.vote > 0, "--vote must be at least 1");
    anyhow::ensure!(args.max_steps != Some(0), "--max-steps must be at least 1");
    anyhow::ensure!(
        !args.steps_sweep.contains(&0),
        "--steps-sweep step counts must be at least 1"
    );
    let device = parse_device(&args.device)?;
    let runs = args
        .runs
        .iter()
        .map(|r| {
            load_model(r, device).with_context(|| format!("loading the model of {}", r.display()))
        })
        .collect::<anyhow::Result<Vec<LoadedModel>>>()?;
    let loaded = &runs[0];
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| loaded.config.data_path.clone());
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.runs[0].join("report"));
    eprintln!(
        "[eval] {} (step {}{}) on {} split `{}`, device {}",
        loaded.checkpoint.display(),
        loaded.step,
        if loaded.ema { ", EMA weights" } else { "" },
        data.display(),
        args.split,
        device_name(device)
    );
    for r in &runs[1..] {
        eprintln!(
            "[eval] voting with {} (step {}{})",
            r.checkpoint.display(),
            r.step,
            if r.ema { ", EMA weights" } else { "" }
        );
    }
    let context = || match &args.data {
        Some(_) => format!("evaluating on {}", data.display()),
        None => format!(
            "evaluating on {}, the run's data_path (pass --data DIR if the dataset is elsewhere)",
            data.display()
        ),
    };
    if args.bench_halting {
        return bench(&args, loaded, &data, &out, device);
    }
    let split_examples = hrm_data::Dataset::open(&data, &args.split).map(|ds| ds.num_examples());
    anyhow::ensure!(
        split_examples.as_ref().map_or(true, |&n| n > 0),
        "split `{}` of {} has no examples: nothing to evaluate",
        args.split,
        data.display()
    );
    // A failed evaluation leaves no empty report directory behind.
    let out_existed = out.exists();
    let refs: Vec<&LoadedModel> = runs.iter().collect();
    let report = write_report(
        &refs,
        &data,
        &ReportOptions {
            out_dir: out.clone(),
            split: args.split.clone(),
            batch_size: args.batch,
            gallery: args.gallery,
            device,
            max_steps: args.max_steps,
            batching: args.batching,
            steps_sweep: args.steps_sweep.clone(),
            vote: args.vote,
            vote_seed: args.seed,
            vote_halt: args.halt,
        },
    )
    .inspect_err(|_| {
        if !out_existed {
            let _ = std::fs::remove_dir(&out);
        }
    })
    .with_context(context)?;
    print!("{}", report.summary());
    Ok(())
}

/// `--bench-halting`: the table on stdout, `halting_bench.json` in `out`.
fn bench(
    args: &EvalArgs,
    loaded: &LoadedModel,
    data: &Path,
    out: &Path,
    device: tch::Device,
) -> anyhow::Result<()> {
    let rows = bench_halting(
        loaded,
        data,
        &args.split,
        args.batch,
        args.max_steps,
        args.bench_repeats,
        device,
    )
    .with_context(|| format!("timing halting on {}", data.display()))?;
    let dims = loaded.model.dims();
    println!(
        "hrm eval --bench-halting: {} split `{}`, batch {}, step cap {}, device {}, {} threads",
        data.display(),
        args.split,
        args.batch,
        args.max_steps
            .unwrap_or(dims.halt_max_steps.max(1) as usize),
        device_name(device),
        tch::get_num_threads()
    );
    println!(
        "  {:<20} {:>12} {:>10} {:>12} {:>8} {:>8}",
        "mode", "puzzles/s", "mean steps", "row-steps", "exact", "tokens"
    );
    for r in &rows {
        println!(
            "  {:<20} {:>12.1} {:>10.2} {:>12} {:>8.4} {:>8.4}",
            r.mode,
            r.puzzles_per_second,
            r.mean_steps,
            r.row_steps,
            r.exact_accuracy,
            r.token_accuracy
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join("halting_bench.json");
    let json = serde_json::json!({
        "checkpoint": loaded.checkpoint.display().to_string(),
        "data": data.display().to_string(),
        "split": args.split,
        "batch": args.batch,
        "halt_max_steps": dims.halt_max_steps,
        "max_steps": args.max_steps,
        "device": device_name(device),
        "threads": tch::get_num_threads(),
        "modes": rows,
    });
    hrm_train::run_dir::write_atomic(&path, serde_json::to_string_pretty(&json)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    println!("  written to {}", path.display());
    Ok(())
}
