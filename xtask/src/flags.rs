//! The whole command line of `cargo xtask`, in one place.

use anyhow::{bail, Result};

/// The usage text printed by `cargo xtask help`.
pub const HELP: &str = "\
cargo xtask <command> [args]

Commands:
  setup             install libtorch 2.11.0 (PyPI torch) into the per-user cache if needed,
                    link it for the build, and print what was found. Every command runs it first.
  test [ARGS]       the whole test suite (`cargo test --workspace ARGS`); CI runs this.
  train [ARGS]      `hrm train ARGS` in release mode; without ARGS, the embedded default run.
  eval [ARGS]       `hrm eval ARGS` in release mode.
  solve [ARGS]      `hrm solve ARGS` in release mode.
  data [ARGS]       `hrm data ARGS` in release mode (build, show).
  golden DIR...     check the model against every golden case under each DIR.
  compare [ARGS]    train HRM, TRM, GRU and Transformer on the same data and tabulate.
  bench [ARGS]      the criterion benches (`cargo bench -p hrm-benches -- ARGS`).

Environment:
  HRM_TORCH_HOME    where libtorch is installed (default ~/.cache/hrm-rs/torch-2.11.0)
  LIBTORCH          an existing libtorch 2.11 to use instead of installing one
";

/// A parsed `cargo xtask` command.
#[derive(Debug)]
pub enum Command {
    /// Print the usage.
    Help,
    /// Install or find libtorch.
    Setup,
    /// Run the test suite with extra cargo arguments.
    Test {
        /// Passed to `cargo test`.
        args: Vec<String>,
    },
    /// Run the criterion benches.
    Bench {
        /// Passed to the bench binary after `--`.
        args: Vec<String>,
    },
    /// Run a subcommand of the release `hrm` binary.
    Hrm {
        /// The `hrm` subcommand (`train`, `golden`, ...).
        subcommand: String,
        /// Its arguments.
        args: Vec<String>,
    },
}

impl Command {
    /// Parses the arguments after `cargo xtask`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let Some((first, rest)) = args.split_first() else {
            return Ok(Command::Help);
        };
        let rest = rest.to_vec();
        Ok(match first.as_str() {
            "help" | "-h" | "--help" => Command::Help,
            "setup" => {
                if !rest.is_empty() {
                    bail!("`cargo xtask setup` takes no arguments, got {rest:?}");
                }
                Command::Setup
            }
            "test" => Command::Test { args: rest },
            "bench" => Command::Bench { args: rest },
            "golden" if rest.is_empty() => {
                bail!("usage: cargo xtask golden DIR [DIR...] (e.g. ../shared/golden)")
            }
            "train" | "eval" | "solve" | "data" | "golden" | "compare" => Command::Hrm {
                subcommand: first.clone(),
                args: rest,
            },
            other => bail!("unknown xtask command `{other}`; run `cargo xtask help`"),
        })
    }
}
