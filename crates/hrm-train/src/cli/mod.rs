//! The `hrm` command line: one binary, one subcommand per job.

pub mod golden;

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
    /// Check the model against golden case directories of the reference's numbers.
    Golden(golden::GoldenArgs),
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the subcommand reports, with context.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Golden(args) => golden::run(args),
    }
}
