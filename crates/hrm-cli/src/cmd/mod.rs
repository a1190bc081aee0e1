//! The `hrm` command line: one binary, one subcommand per job.

pub mod bench;
pub mod compare;
pub mod data;
pub mod eval;
pub mod golden;
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

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model (without a config: the embedded default run).
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

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the subcommand reports, with context.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(args) => train::run(args),
        Command::Golden(args) => golden::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Data(cmd) => data::run(cmd),
        Command::Solve(args) => solve::run(args),
        Command::Eval(args) => eval::run(args),
    }
}
