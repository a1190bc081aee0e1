//! `hrm bench`: training and evaluation throughput of a preset model on random data, printed
//! as three lines (a header naming config, device, dtype and threads; train samples/s; eval
//! puzzles/s) so a PyTorch run of the same config can be compared side by side.
//!
//! The timed work is [`hrm_train::bench_setup::BenchSetup`]'s, the same the criterion benches time.
//! With `--cuda-graphs` (CUDA only) the training step's forward and backward pass and the
//! evaluation rollout are captured in CUDA graphs and their replays are timed, after a check
//! that a replay computes what the eager step computes (a `graphs:` line between the two).

use std::time::{Duration, Instant};

use anyhow::Context;
use tch::Device;

use hrm_core::ForwardDtype;
use hrm_train::bench_setup::{synchronize, BenchPreset, BenchSetup, GraphCheck};
use hrm_train::device::{device_name, parse_device};
use hrm_train::graphed::GraphedTrainStep;

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
    /// Capture the training step (forward, Q-target pass, loss, backward) and the evaluation
    /// rollout in CUDA graphs and time their replays; the optimisers stay eager. Needs a CUDA
    /// device. A check against the eager steps runs first.
    #[arg(long)]
    pub cuda_graphs: bool,
}

/// The largest relative difference between a graph replay and the eager step that the check
/// of `--cuda-graphs` accepts: the same kernels run, so only the order of atomic additions
/// (embedding and attention backward) may differ.
fn graph_tolerance(dtype: ForwardDtype) -> f64 {
    match dtype {
        ForwardDtype::Float32 => 1e-3,
        ForwardDtype::Bfloat16 => 3e-2,
    }
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
    anyhow::ensure!(
        !args.cuda_graphs || matches!(device, Device::Cuda(_)),
        "--cuda-graphs needs a CUDA device (--device cuda), not {}",
        device_name(device)
    );
    super::set_threads(args.threads)?;
    let batch_size = args.batch_size.unwrap_or(preset.batch_size());
    let mut setup = BenchSetup::with_batch_size(preset, dtype, device, args.seed, batch_size)
        .with_context(|| format!("building the {preset} model"))?;
    let b = setup.batch_size();
    println!(
        "hrm bench: config={preset} device={} dtype={} threads={} batch={b} optimizer={} graphs={}",
        device_name(device),
        dtype.short_name(),
        tch::get_num_threads(),
        if args.no_optim { "off" } else { "on" },
        if args.cuda_graphs { "on" } else { "off" },
    );

    let train = |setup: &mut BenchSetup, graph: Option<&mut GraphedTrainStep>| {
        match (graph, args.no_optim) {
            (None, true) => {
                setup.train_step_no_optim();
                Ok(())
            }
            (None, false) => setup.train_step(),
            (Some(g), true) => setup.graphed_train_step_no_optim(g),
            (Some(g), false) => setup.graphed_train_step(g),
        }
        .context("training step")
    };
    // The eager warm-up steps run either way: they bring the carry to where training runs.
    for _ in 0..args.warmup {
        train(&mut setup, None)?;
    }
    let mut check_failed = None;
    let mut graph = if args.cuda_graphs {
        let check = setup
            .graph_check()
            .context("checking CUDA-graph replays against the eager steps")?;
        let ok = check.worst() <= graph_tolerance(dtype);
        println!("{}", graph_check_line(&check, ok, graph_tolerance(dtype)));
        if !ok {
            check_failed = Some(check);
        }
        let mut graph = setup
            .capture_train_step()
            .context("capturing the training step in a CUDA graph")?;
        for _ in 0..args.warmup {
            train(&mut setup, Some(&mut graph))?;
        }
        Some(graph)
    } else {
        None
    };
    let elapsed = timed(device, || {
        for _ in 0..args.steps {
            train(&mut setup, graph.as_mut())?;
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

    drop(graph);

    if args.eval_rollouts == 0 {
        println!("eval: skipped (--eval-rollouts 0)");
        return graph_verdict(check_failed);
    }
    let mut rollout = if args.cuda_graphs {
        Some(
            setup
                .capture_eval()
                .context("capturing the evaluation rollout in a CUDA graph")?,
        )
    } else {
        None
    };
    let mut eval = |setup: &BenchSetup| -> anyhow::Result<()> {
        match rollout.as_mut() {
            Some(r) => r.run(&setup.batch).context("evaluation rollout")?,
            None => drop(setup.eval_rollout()),
        }
        Ok(())
    };
    for _ in 0..args.eval_warmup {
        eval(&setup)?;
    }
    let elapsed = timed(device, || {
        for _ in 0..args.eval_rollouts {
            eval(&setup)?;
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
    graph_verdict(check_failed)
}

/// `graphs: check ok|FAILED (...)`, the line `--cuda-graphs` prints before the timings.
fn graph_check_line(check: &GraphCheck, ok: bool, tolerance: f64) -> String {
    format!(
        "graphs: check {} (replay vs eager, max relative difference: train loss {:.1e}, \
         gradients {:.1e}, eval state {:.1e}; tolerance {tolerance:.0e})",
        if ok { "ok" } else { "FAILED" },
        check.train_loss_rel,
        check.train_grads_rel,
        check.eval_state_rel,
    )
}

/// An error after the timings when the graph check failed, so the timings still print.
fn graph_verdict(failed: Option<GraphCheck>) -> anyhow::Result<()> {
    match failed {
        Some(check) => anyhow::bail!(
            "the CUDA-graph replays differ from the eager steps by up to {:.1e} (relative): the \
             graphed timings above are not of the same computation",
            check.worst()
        ),
        None => Ok(()),
    }
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
