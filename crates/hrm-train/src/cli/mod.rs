//! The `hrm` command line: one binary, one subcommand per job.

pub mod bench;
pub mod golden;
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
    /// Time training steps and evaluation rollouts of a preset model on random data.
    Bench(bench::BenchArgs),
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the subcommand reports, with context.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(args) => train::run(args),
        Command::Golden(args) => golden::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
