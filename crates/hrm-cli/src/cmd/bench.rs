//! `hrm bench`: training and evaluation throughput of a preset model on random data, printed
//! as three lines (a header naming config, device, dtype and threads; train samples/s; eval
//! puzzles/s) so a PyTorch run of the same config can be compared side by side.
//!
//! The timed work is [`hrm_train::bench_setup::BenchSetup`]'s, the same the criterion benches time.

use std::time::{Duration, Instant};

use anyhow::Context;
use tch::Device;

use hrm_core::ForwardDtype;
use hrm_train::bench_setup::{synchronize, BenchPreset, BenchSetup};
use hrm_train::device::{device_name, parse_device};

/// Arguments of `hrm bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Model preset: tiny (H 128, batch 64), small (H 256, batch 32) or paper (H 512, batch 16).
    #[arg(long, default_value = "small")]
    pub config: String,
    /// Forward dtype: f32 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Timed training steps.
    #[arg(long, default_value_t = 10)]
    pub steps: u32,
    /// Untimed training steps before them.
    #[arg(long, default_value_t = 3)]
    pub warmup: u32,
    /// Timed evaluation rollouts of halt_max_steps ACT steps each (0 skips evaluation).
    #[arg(long, default_value_t = 2)]
    pub eval_rollouts: u32,
    /// Untimed evaluation rollouts before them.
    #[arg(long, default_value_t = 1)]
    pub eval_warmup: u32,
    /// Intra-op threads of libtorch's CPU kernels (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
    /// Time the training step without the optimisers (forward, Q-target pass, loss, backward).
    #[arg(long)]
    pub no_optim: bool,
    /// Rows per step instead of the preset's batch (a GPU is best timed at the batch it trains
    /// with, e.g. 768 for the reference's Sudoku run).
    #[arg(long)]
    pub batch_size: Option<i64>,
    /// Seed of the random model and batch.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
}

/// Builds the model and batch, then times training steps and evaluation rollouts.
///
/// # Errors
/// For an unknown config, dtype or device, `--steps 0`, or a failing training step.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let preset: BenchPreset = args.config.parse()?;
    let dtype: ForwardDtype = args.dtype.parse()?;
    let device = parse_device(&args.device)?;
    anyhow::ensure!(args.steps > 0, "--steps must be at least 1");
    super::set_threads(args.threads)?;
    let batch_size = args.batch_size.unwrap_or(preset.batch_size());
    let mut setup = BenchSetup::with_batch_size(preset, dtype, device, args.seed, batch_size)
        .with_context(|| format!("building the {preset} model"))?;
    let b = setup.batch_size();
    println!(
        "hrm bench: config={preset} device={} dtype={} threads={} batch={b} optimizer={}",
        device_name(device),
        dtype.short_name(),
        tch::get_num_threads(),
        if args.no_optim { "off" } else { "on" },
    );

    let train = |setup: &mut BenchSetup| -> anyhow::Result<()> {
        if args.no_optim {
            setup.train_step_no_optim();
            Ok(())
        } else {
            setup.train_step().context("training step")
        }
    };
    for _ in 0..args.warmup {
        train(&mut setup)?;
    }
    let elapsed = timed(device, || {
        for _ in 0..args.steps {
            train(&mut setup)?;
        }
        Ok(())
    })?;
    let per_step = elapsed.wall.as_secs_f64() / f64::from(args.steps);
    println!(
        "train: {:.2} samples/s ({}; {} steps after {} warm-up)",
        b as f64 / per_step,
        elapsed.per(args.steps, "step"),
        args.steps,
        args.warmup
    );

    if args.eval_rollouts == 0 {
        println!("eval: skipped (--eval-rollouts 0)");
        return Ok(());
    }
    for _ in 0..args.eval_warmup {
        setup.eval_rollout();
    }
    let elapsed = timed(device, || {
        for _ in 0..args.eval_rollouts {
            setup.eval_rollout();
        }
        Ok(())
    })?;
    let per_rollout = elapsed.wall.as_secs_f64() / f64::from(args.eval_rollouts);
    println!(
        "eval: {:.2} puzzles/s ({}; {} ACT steps a rollout, {} rollouts after {} warm-up)",
        b as f64 / per_rollout,
        elapsed.per(args.eval_rollouts, "rollout"),
        setup.config.halt_max_steps,
        args.eval_rollouts,
        args.eval_warmup
    );
    Ok(())
}

/// Wall time and, where the OS reports it, process CPU time of a timed section.
#[derive(Debug, Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Option<Duration>,
}

impl Timing {
    /// `"W ms/{unit}, cpu C ms/{unit}"` for `n` repetitions, the CPU part only where known.
    fn per(&self, n: u32, unit: &str) -> String {
        let wall = self.wall.as_secs_f64() * 1e3 / f64::from(n);
        match self.cpu {
            Some(cpu) => format!(
                "{wall:.1} ms/{unit}, cpu {:.1} ms/{unit}",
                cpu.as_secs_f64() * 1e3 / f64::from(n)
            ),
            None => format!("{wall:.1} ms/{unit}"),
        }
    }
}

/// Times `f`, with the device drained before the clock starts and before it stops.
fn timed(device: Device, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Timing> {
    synchronize(device);
    let cpu_start = process_cpu_time();
    let start = Instant::now();
    f()?;
    synchronize(device);
    let wall = start.elapsed();
    let cpu = match (cpu_start, process_cpu_time()) {
        (Some(a), Some(b)) => b.checked_sub(a),
        _ => None,
    };
    Ok(Timing { wall, cpu })
}

/// User plus system CPU time of this process, all threads, from `/proc/self/stat` (Linux; `None`
/// elsewhere). On a shared machine this is the steadier measure: wall time also counts the time
/// other processes held the cores.
fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 of the
    // line, in clock ticks of 1/100 s (USER_HZ on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}
