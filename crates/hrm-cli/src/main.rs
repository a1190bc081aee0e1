//! The `hrm` command: parse the arguments, run the subcommand, print the error chain.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = hrm_cli::cmd::Cli::parse();
    match hrm_cli::cmd::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
