//! `hrm compare [--out DIR] [--archs LIST] [--examples N] [--params N] [--data DIR] ...`: trains
//! HRM, TRM, a bidirectional GRU and a plain Transformer on the same data with matched parameter
//! counts and the same example budget, then prints the table and writes `comparison.md` and
//! `comparison.png` (see [`crate::compare`]).
//!
//! The defaults (4x4 Sudoku, about 1.05M parameters, 128 000 examples per architecture, one
//! intra-op thread) finish in 20 to 25 minutes on a 2-core CPU; `--examples`, `--params`,
//! `--batch-size` and `--data` scale it up for a GPU.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::compare::{
    markdown_table, parse_archs, run_comparison, CompareOptions, DEFAULT_BATCH_SIZE, DEFAULT_EVALS,
    DEFAULT_EXAMPLES, DEFAULT_PARAMS,
};
use hrm_train::device::{device_name, parse_device};

/// Arguments of `hrm compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The comparison directory: one run directory per architecture, `comparison.md`,
    /// `comparison.json` and `comparison.png`.
    #[arg(long, default_value = "runs/compare")]
    pub out: PathBuf,
    /// Architectures to train, comma-separated, in table order.
    #[arg(long, default_value = "hrm,trm,gru,transformer")]
    pub archs: String,
    /// Training examples each architecture draws (the budget; whole batches).
    #[arg(long, default_value_t = DEFAULT_EXAMPLES)]
    pub examples: u64,
    /// Target trainable parameters of every model (each within 10 %).
    #[arg(long, default_value_t = DEFAULT_PARAMS)]
    pub params: i64,
    /// An existing dataset directory (with `train/` and `test/`); by default a 4x4 Sudoku set
    /// is built under `<out>/data`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Seed of initialisation and data order, the same for every architecture.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Examples per optimisation step, the same for every architecture.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// Evaluations on the test split per run.
    #[arg(long, default_value_t = DEFAULT_EVALS)]
    pub evals: u64,
    /// Override a config key of every run, e.g. `--set lr=3e-4` (as `hrm train --set`), or of
    /// one architecture's run with its name as a prefix, e.g. `--set trm:model.L_cycles=6`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// libtorch intra-op threads; 0 keeps libtorch's choice (one per core). The default, 1, ran
    /// the default comparison 2 to 14 times faster than 2 threads on the shared 2-core
    /// development machine, where the threads of each small step wait on each other and on
    /// other work.
    #[arg(long, default_value_t = 1)]
    pub threads: i32,
    /// No progress bars.
    #[arg(long)]
    pub no_progress: bool,
}

/// Runs `hrm compare`.
///
/// # Errors
/// Bad arguments, a comparison directory already in use, missing data, training failures.
pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device)?;
    let archs = parse_archs(&args.archs)?;
    anyhow::ensure!(
        args.threads >= 0,
        "--threads must be 0 (libtorch's choice) or more, got {}",
        args.threads
    );
    if args.threads > 0 {
        tch::set_num_threads(args.threads);
    }
    let stop = super::train::install_stop_handler();
    let command = std::iter::once("hrm".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let opts = CompareOptions {
        out: args.out.clone(),
        archs,
        examples: args.examples,
        target_params: args.params,
        data: args.data.clone(),
        device,
        seed: args.seed,
        batch_size: args.batch_size,
        evals: args.evals,
        overrides: args.overrides.clone(),
        progress: !args.no_progress,
        stop: Some(stop),
        command,
    };
    eprintln!(
        "[compare] {} on {} (intra-op threads {}), {} examples each, target {} parameters, out {}",
        args.archs,
        device_name(device),
        tch::get_num_threads(),
        opts.examples,
        opts.target_params,
        opts.out.display()
    );
    let started = Instant::now();
    let comparison =
        run_comparison(&opts).with_context(|| format!("comparing in {}", args.out.display()))?;
    println!();
    print!("{}", markdown_table(&comparison));
    println!();
    println!(
        "wall time {:.0} s; report {}, chart {}",
        started.elapsed().as_secs_f64(),
        args.out.join("comparison.md").display(),
        args.out.join("comparison.png").display()
    );
    Ok(())
}
