//! `hrm train [CONFIG] [--set key=value]... [--run-dir DIR] [--device D] [--threads N] [--resume]`.
//!
//! Without a config, trains the embedded default: a small dataset the project generates itself
//! (built on first use under `data/`), a config sized for a 2-core CPU, then prints the
//! held-out exact accuracy.
//!
//! SIGINT (Ctrl-C), SIGTERM (what Slurm and Kubernetes send before they kill a preempted job)
//! and SIGHUP stop the run after the current step with a checkpoint, and the command exits with
//! [`super::EXIT_STOPPED`]; a second one abandons the run without writing anything more
//! ([`super::EXIT_ABANDONED`]); a third exits at once. `docs/runs.md` has the details.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context;

use crate::default_data;
use hrm_dist::{DistEnv, ProcessGroup};
use hrm_train::config::TrainConfig;
use hrm_train::device::{device_name, parse_device};
use hrm_train::distributed::DataParallel;
use hrm_train::observer::NoObserver;
use hrm_train::trainer::{
    train_with, StopLevel, StopReason, StopSignal, TrainOptions, TrainSummary,
};
use tch::Device;

use crate::progress::{format_eval, TerminalObserver};

/// The embedded default run (`configs/default.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../../../configs/default.toml");

/// Arguments of `hrm train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// A TOML config (see `configs/`); omit it to train the embedded default.
    pub config: Option<PathBuf>,
    /// Override a config key, e.g. `--set lr=1e-4` or `--set model.hidden_size=128`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// The run directory (default: `runs/<config name>-<UTC time>`).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Continue the run in `--run-dir` from its latest checkpoint.
    #[arg(long, requires = "run_dir")]
    pub resume: bool,
    /// No progress bar (log lines still go to `metrics.jsonl`).
    #[arg(long)]
    pub no_progress: bool,
    /// Stop with a checkpoint once this many steps are done (continue later with --resume).
    #[arg(long, value_name = "STEP")]
    pub stop_at_step: Option<u64>,
    /// libtorch intra-op threads on the CPU (default: libtorch's choice, one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<i32>,
    /// Data-parallel training in N local processes (Gloo on the CPU, NCCL on CUDA: worker i
    /// uses cuda:i). Under torchrun, leave it out: the workers read RANK, WORLD_SIZE,
    /// LOCAL_RANK, MASTER_ADDR and MASTER_PORT (see docs/distributed.md).
    #[arg(long, value_name = "N")]
    pub nproc: Option<usize>,
    /// Seconds a collective may wait for the other processes before the run fails (a worker
    /// that died is reported sooner, by rank).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub dist_timeout: u64,
}

/// Runs `hrm train`; returns the exit status (0, [`super::EXIT_STOPPED`] or
/// [`super::EXIT_ABANDONED`]).
///
/// # Errors
/// Bad configs, missing data, unusable checkpoints, a diverged run, I/O failures, each with
/// context.
pub fn run(args: TrainArgs) -> anyhow::Result<u8> {
    let env = DistEnv::from_env().context("reading torchrun's environment")?;
    let timeout = Duration::from_secs(args.dist_timeout.max(1));
    if let (Some(n), 1) = (args.nproc, env.world_size) {
        if n > 1 {
            return crate::launch::launch(n, timeout);
        }
    }
    let mut device = parse_device(&args.device)?;
    if let (Device::Cuda(_), true) = (device, env.world_size > 1) {
        // One device per process, as torchrun's LOCAL_RANK says.
        device = Device::Cuda(env.local_rank);
    }
    super::set_threads(args.threads)?;
    let parallel = if env.world_size > 1 {
        let group = ProcessGroup::from_dist_env(&env, device, timeout).with_context(|| {
            format!(
                "joining the process group as rank {} of {} at {}:{}",
                env.rank, env.world_size, env.master_addr, env.master_port
            )
        })?;
        Some(DataParallel::new(Rc::new(group)))
    } else {
        None
    };
    let main = env.rank == 0;
    let (config, name) = match &args.config {
        Some(path) => {
            let cfg = TrainConfig::from_path(path, &args.overrides)
                .with_context(|| format!("reading config {}", path.display()))?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into());
            (cfg, name)
        }
        None => {
            let cfg = TrainConfig::from_toml_str(DEFAULT_CONFIG, &args.overrides)
                .context("the embedded default config")?;
            ensure_default_dataset(&cfg.data_path)?;
            (cfg, "default".to_string())
        }
    };
    let run_dir = match (&args.run_dir, &parallel) {
        (Some(dir), _) => dir.clone(),
        (None, None) => PathBuf::from("runs").join(format!("{name}-{}", utc_stamp())),
        // Every worker must name the same directory; their clocks may not agree on a stamp.
        (None, Some(_)) => anyhow::bail!("data-parallel training needs --run-dir"),
    };
    let stop = install_stop_handler();
    if main {
        eprintln!(
            "[train] {} on {} ({} threads{}), data {}, run dir {}",
            config.arch.name(),
            device_name(device),
            tch::get_num_threads(),
            parallel.as_ref().map_or(String::new(), |dp| format!(
                ", {} processes",
                dp.world_size()
            )),
            config.data_path.display(),
            run_dir.display()
        );
    }
    let options = TrainOptions {
        resume: args.resume,
        stop: Some(stop),
        stop_at_step: args.stop_at_step,
        parallel,
        ..TrainOptions::new(config, run_dir.clone(), device)
    };
    let result = if main {
        train_with(options, &mut TerminalObserver::new(!args.no_progress))
    } else {
        train_with(options, &mut NoObserver)
    };
    let summary = result.with_context(|| {
        let rank = if env.world_size > 1 {
            format!(" (rank {} of {})", env.rank, env.world_size)
        } else {
            String::new()
        };
        format!("training in {}{rank}", run_dir.display())
    })?;
    if main {
        print_summary(&summary, &run_dir);
    }
    Ok(match summary.stopped {
        Some(StopReason::Requested) => super::EXIT_STOPPED,
        Some(StopReason::Abandoned) => super::EXIT_ABANDONED,
        Some(StopReason::StepBudget) | None => 0,
    })
}

fn print_summary(s: &TrainSummary, run_dir: &Path) {
    println!();
    match s.stopped {
        Some(StopReason::Abandoned) => println!(
            "abandoned at step {} of {} without a checkpoint of it; --resume --run-dir {} continues from the last one",
            s.steps,
            s.total_steps,
            run_dir.display()
        ),
        Some(_) => println!(
            "stopped at step {} of {}; continue with --resume --run-dir {}",
            s.steps,
            s.total_steps,
            run_dir.display()
        ),
        None => println!("trained {} steps", s.steps),
    }
    println!(
        "  {} parameters, {:.0} s in training steps, {:.1} train samples/s",
        s.num_parameters, s.train_seconds, s.samples_per_sec
    );
    if s.communication_seconds > 0.0 {
        println!(
            "  rank 0 spent {:.1} s in collectives ({:.0} % of its training-step time)",
            s.communication_seconds,
            100.0 * s.communication_seconds / s.train_seconds.max(1e-9)
        );
    }
    if let Some(t) = &s.last_train {
        println!(
            "  last train interval: lm_loss {:.4} accuracy {:.4} exact {:.4}",
            t.get("lm_loss"),
            t.get("accuracy"),
            t.get("exact_accuracy")
        );
    }
    if let Some(e) = &s.last_eval {
        println!("  held-out evaluation: {}", format_eval(e));
        let solved = (e.overall.get("exact_accuracy") * e.overall.get("count")).round();
        println!(
            "  solved {solved:.0} of {:.0} held-out puzzles exactly",
            e.overall.get("count")
        );
    }
    if let Some(c) = &s.checkpoint {
        println!("  checkpoint: {}", c.display());
    }
    println!("  metrics: {}", run_dir.join("metrics.jsonl").display());
}

/// Builds the default dataset if it is not there yet.
fn ensure_default_dataset(path: &Path) -> anyhow::Result<()> {
    if default_data::is_built(path) {
        return Ok(());
    }
    eprintln!(
        "[train] building the default dataset in {} (once)",
        path.display()
    );
    let summary = default_data::ensure_sudoku(path, default_data::TRAIN_DEFAULT_SIZE)
        .with_context(|| format!("building {}", path.display()))?;
    if let Some(summary) = summary {
        eprintln!("{summary}");
    }
    Ok(())
}

/// Installs the handler of SIGINT, SIGTERM and SIGHUP for a training command and returns the
/// signal the trainer watches: the first request stops after the step with a checkpoint, the
/// second abandons the run (nothing more is written), the third exits at once.
pub(crate) fn install_stop_handler() -> StopSignal {
    let stop = StopSignal::new();
    let handler = stop.clone();
    let installed = ctrlc::set_handler(move || match handler.level() {
        StopLevel::Run => {
            handler.request_stop();
            eprintln!(
                "\n[train] stop requested (SIGINT/SIGTERM): finishing the step and writing a checkpoint; again to exit without one"
            );
        }
        StopLevel::Stop => {
            handler.abandon();
            eprintln!(
                "\n[train] second stop request: exiting after the current step without writing a checkpoint; again to exit at once"
            );
        }
        StopLevel::Abandon => {
            eprintln!("\n[train] third stop request: exiting now");
            std::process::exit(i32::from(super::EXIT_ABANDONED));
        }
    });
    if let Err(e) = installed {
        eprintln!("warning: SIGINT/SIGTERM will kill the run without a checkpoint: {e}");
    }
    stop
}

/// `YYYYmmdd-HHMMSS` in UTC, from the system clock.
fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}{mo:02}{d:02}-{h:02}{m:02}{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_config_is_valid() {
        let cfg = TrainConfig::from_toml_str(DEFAULT_CONFIG, &[]).expect("valid default");
        assert!(cfg.max_steps.is_some() || cfg.epochs > 0);
    }

    #[test]
    fn stamp_has_the_expected_shape() {
        let s = utc_stamp();
        assert_eq!(s.len(), 15, "{s}");
        assert_eq!(&s[8..9], "-");
    }
}
