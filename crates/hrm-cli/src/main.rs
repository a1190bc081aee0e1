//! The `hrm` command: parse the arguments, run the subcommand, print the error chain, exit with
//! the subcommand's status (1 on an error; `hrm train --help` lists the others).

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Before any tensor: activation buffers stay in the heap instead of arriving as fresh pages.
    hrm_train::allocator::keep_freed_memory();
    let cli = hrm_cli::cmd::Cli::parse();
    match hrm_cli::cmd::run(cli) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
