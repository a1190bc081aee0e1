//! The `hrm` command line: one binary, one subcommand per job.

pub mod bench;
pub mod compare;
pub mod data;
pub mod eval;
pub mod golden;
pub mod import;
pub mod solve;
pub mod train;

use clap::{Parser, Subcommand};

/// Train, evaluate and inspect Hierarchical Reasoning Models.
#[derive(Debug, Parser)]
#[command(name = "hrm", version, about)]
pub struct Cli {
    /// The job.
    #[command(subcommand)]
    pub command: Command,
}

/// Exit status of `hrm train` (and `hrm compare`'s runs) stopped by SIGINT or SIGTERM after
/// writing a checkpoint: `EX_TEMPFAIL` of `sysexits.h`, "try again" (with `--resume`).
pub const EXIT_STOPPED: u8 = 75;

/// Exit status of a run abandoned by a second SIGINT or SIGTERM without writing a checkpoint
/// (128 + SIGINT, as shells report an interrupted command).
pub const EXIT_ABANDONED: u8 = 130;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model (without a config: the embedded default run).
    #[command(
        after_help = "Exit status: 0 when the run finished or reached --stop-at-step; 1 on \
an error (a bad config, a diverged run, a damaged checkpoint with nothing to fall back to); 75 \
when SIGINT (Ctrl-C) or SIGTERM stopped it after writing a checkpoint (continue with --resume); \
130 when a second SIGINT/SIGTERM abandoned it without writing one. See docs/runs.md."
    )]
    Train(train::TrainArgs),
    /// Check the model against golden case directories of the reference's numbers.
    Golden(golden::GoldenArgs),
    /// Train HRM, TRM, a GRU and a Transformer on the same data at matched sizes and compare.
    Compare(compare::CompareArgs),
    /// Time training steps and evaluation rollouts of a preset model on random data.
    Bench(bench::BenchArgs),
    /// Build datasets (Sudoku, Maze, ARC) and look at them.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Solve puzzles with a trained model: answers, checks, ACT steps, reasoning traces.
    Solve(solve::SolveArgs),
    /// Evaluate a trained model on a dataset split and write a report (metrics, charts,
    /// failures).
    Eval(eval::EvalArgs),
    /// Import a checkpoint of the reference's PyTorch code (`torch.save` + `all_config.yaml`)
    /// as a run directory.
    Import(import::ImportArgs),
}

/// Applies a `--threads N` option: libtorch's intra-op threads on the CPU, `None` keeping
/// libtorch's choice.
///
/// # Errors
/// When `N` is below 1.
pub(crate) fn set_threads(threads: Option<i32>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1, got {n}");
        tch::set_num_threads(n);
    }
    Ok(())
}

/// Runs a parsed command line; returns the exit status (0 unless `hrm train` was stopped, see
/// [`EXIT_STOPPED`] and [`EXIT_ABANDONED`]).
///
/// # Errors
/// Whatever the subcommand reports, with context.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Train(args) => train::run(args),
        Command::Golden(args) => golden::run(args).map(|()| 0),
        Command::Compare(args) => compare::run(args).map(|()| 0),
        Command::Bench(args) => bench::run(args).map(|()| 0),
        Command::Data(cmd) => data::run(cmd).map(|()| 0),
        Command::Solve(args) => solve::run(args).map(|()| 0),
        Command::Eval(args) => eval::run(args).map(|()| 0),
        Command::Import(args) => import::run(args).map(|()| 0),
    }
}
