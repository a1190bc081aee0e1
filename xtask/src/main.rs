//! Developer commands for hrm-rs, in the cargo-xtask pattern (<https://github.com/matklad/cargo-xtask>):
//! `cargo xtask <command>` runs this binary through the alias in `.cargo/config.toml`.
//!
//! Every command first runs [`setup`], which makes sure libtorch 2.11.0 is installed and that
//! cargo builds against it. The other commands are thin wrappers around cargo and the `hrm`
//! binary built in release mode.

mod flags;
mod setup;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = flags::Command::parse(&args)?;
    if let flags::Command::Help = command {
        print!("{}", flags::HELP);
        return Ok(());
    }
    let torch = setup::run(&project_root())?;
    match command {
        flags::Command::Help => unreachable!("handled above"),
        flags::Command::Setup => Ok(()),
        flags::Command::Test { args } => {
            // cargo runs a test binary's tests on as many threads as there are cores; giving
            // libtorch one intra-op thread per test keeps the cores busy without the thread
            // oversubscription that makes OpenMP spin (several times slower on 2 cores).
            let mut env = Vec::new();
            if std::env::var_os("OMP_NUM_THREADS").is_none() {
                env.push(("OMP_NUM_THREADS", "1"));
            }
            cargo_env(&torch, &["test", "--workspace"], &args, &env)
        }
        flags::Command::Bench { args } => {
            let mut pass = vec!["--".to_string()];
            pass.extend(args);
            cargo(
                &torch,
                &["bench", "-p", "hrm-benches", "--bench", "bench_main"],
                &pass,
            )
        }
        flags::Command::Hrm { subcommand, args } => {
            cargo(
                &torch,
                &["build", "--release", "-p", "hrm-cli", "--bin", "hrm"],
                &[],
            )?;
            let bin = target_dir().join("release").join("hrm");
            let mut cmd = Command::new(&bin);
            cmd.arg(subcommand).args(&args);
            torch.apply(&mut cmd);
            run(&mut cmd)
        }
    }
}

/// Runs `cargo <base> <extra>` with the libtorch environment applied.
fn cargo(torch: &setup::Torch, base: &[&str], extra: &[String]) -> Result<()> {
    cargo_env(torch, base, extra, &[])
}

/// [`cargo`] with extra environment variables.
fn cargo_env(
    torch: &setup::Torch,
    base: &[&str],
    extra: &[String],
    env: &[(&str, &str)],
) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(project_root()).args(base).args(extra);
    torch.apply(&mut cmd);
    cmd.envs(env.iter().copied());
    run(&mut cmd)
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!(
            "{} exited with {status}",
            cmd.get_program().to_string_lossy()
        );
    }
    Ok(())
}

/// The workspace root: the parent of this crate's directory.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => project_root().join("target"),
    }
}
