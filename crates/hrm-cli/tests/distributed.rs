//! Data-parallel training through the `hrm` binary, with Gloo on the CPU: two processes with
//! half the global batch each end where one process with the whole batch ends; a worker that
//! dies makes the other stop with an error naming it.
//!
//! Without Gloo's headers at build time (Debian's libgloo-dev) these tests say they were
//! skipped and pass: single-process training does not need them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hrm_train::run_dir::{read_metrics, MetricsLine};

fn gloo_or_skip(test: &str) -> bool {
    if hrm_dist::gloo_available() {
        return true;
    }
    eprintln!("{test}: skipped: built without Gloo headers (install libgloo-dev and rebuild)");
    false
}

fn hrm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hrm"));
    c.env("OMP_NUM_THREADS", "1");
    // One linear-layer route in every process: the runs compared here are separate processes,
    // each of which would otherwise time its own routes (float32 rounding apart).
    c.env("HRM_CPU_LINEAR", "onednn");
    for var in [
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
    ] {
        c.env_remove(var);
    }
    c
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A 4x4 Sudoku dataset and a config of a tiny HRM with a puzzle embedding, in `dir`.
fn setup(dir: &Path, exploration: f64, epochs: u32) -> PathBuf {
    ok(
        hrm()
            .args([
                "data", "build", "sudoku", "--size", "4", "--train", "64", "--test", "32",
            ])
            .args([
                "--aug",
                "1",
                "--difficulty",
                "medium",
                "--seed",
                "7",
                "--out",
            ])
            .arg(dir.join("data"))
            .output()
            .expect("hrm data build"),
        "data build",
    );
    let cfg = dir.join("cfg.toml");
    std::fs::write(
        &cfg,
        format!(
            "arch = \"hrm\"\ndata_path = \"{}\"\nglobal_batch_size = 16\nepochs = {epochs}\n\
             eval_interval = {epochs}\nlr = 3e-3\nlr_warmup_steps = 4\nweight_decay = 0.01\n\
             puzzle_emb_lr = 1e-2\npuzzle_emb_weight_decay = 0.1\nseed = 3\nlog_interval = 4\n\
             [model]\nH_cycles = 1\nL_cycles = 2\nH_layers = 1\nL_layers = 1\nhidden_size = 32\n\
             num_heads = 2\nexpansion = 2.0\npos_encodings = \"rope\"\npuzzle_emb_ndim = 8\n\
             halt_max_steps = 3\nhalt_exploration_prob = {exploration}\n",
            dir.join("data").display()
        ),
    )
    .expect("config");
    cfg
}

/// What every `hrm train` worker of these tests gets after the config and the run directory.
const WORKER_ARGS: [&str; 5] = ["--device", "cpu", "--threads", "1", "--no-progress"];

/// The collectives' timeout of the runs that are meant to finish.
const FINISHING_TIMEOUT: [&str; 2] = ["--dist-timeout", "30"];

/// `hrm train CFG --run-dir RUN`, to be completed with flags.
fn train_command(cfg: &Path, run: &Path) -> Command {
    let mut c = hrm();
    c.arg("train").arg(cfg).arg("--run-dir").arg(run);
    c
}

fn train(cfg: &Path, run: &Path, extra: &[&str]) -> Output {
    ok(
        train_command(cfg, run)
            .args(WORKER_ARGS)
            .args(FINISHING_TIMEOUT)
            .args(extra)
            .output()
            .expect("hrm train"),
        "hrm train",
    )
}

fn last_checkpoint(run: &Path) -> PathBuf {
    let name = std::fs::read_to_string(run.join("checkpoints").join("latest")).expect("latest");
    run.join("checkpoints").join(name.trim())
}

fn metrics(run: &Path) -> Vec<MetricsLine> {
    read_metrics(&run.join("metrics.jsonl")).expect("metrics")
}

#[test]
fn two_processes_with_half_batches_equal_one_process_with_the_whole_batch() {
    if !gloo_or_skip("two_processes_with_half_batches_equal_one_process") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = setup(tmp.path(), 0.0, 4);
    let one = tmp.path().join("one");
    let two = tmp.path().join("two");
    train(&cfg, &one, &[]);
    train(&cfg, &two, &["--nproc", "2"]);

    for file in ["model.safetensors", "optimizer.safetensors"] {
        let a = hrm_core::weights::read_safetensors(&last_checkpoint(&one).join(file))
            .expect("one process");
        let b = hrm_core::weights::read_safetensors(&last_checkpoint(&two).join(file))
            .expect("two processes");
        assert_eq!(a.len(), b.len(), "{file}: tensor count");
        for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
            assert_eq!(na, nb);
            let diff = (ta.to_kind(tch::Kind::Double) - tb.to_kind(tch::Kind::Double))
                .abs()
                .max()
                .double_value(&[]);
            // Sums over ranks add in another order than sums over rows: float32 rounding.
            assert!(diff < 1e-4, "{file} `{na}` differs by {diff}");
        }
    }
    let (a, b) = (metrics(&one), metrics(&two));
    assert_eq!(a.len(), b.len(), "the same log lines");
    for (la, lb) in a.iter().zip(&b) {
        match (la, lb) {
            (MetricsLine::Eval { overall: x, .. }, MetricsLine::Eval { overall: y, .. })
            | (MetricsLine::Train { metrics: x, .. }, MetricsLine::Train { metrics: y, .. }) => {
                for (k, v) in &x.0 {
                    assert!((v - y.get(k)).abs() < 1e-5, "`{k}`: {v} vs {}", y.get(k));
                }
            }
            _ => panic!("log lines of different kinds: {la:?} / {lb:?}"),
        }
    }
}

#[test]
fn two_processes_with_exploration_still_learn() {
    if !gloo_or_skip("two_processes_with_exploration_still_learn") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = setup(tmp.path(), 0.1, 12);
    let run = tmp.path().join("run");
    train(&cfg, &run, &["--nproc", "2"]);
    let losses: Vec<f64> = metrics(&run)
        .iter()
        .filter_map(|l| match l {
            MetricsLine::Train { metrics, .. } => Some(metrics.get("lm_loss")),
            _ => None,
        })
        .collect();
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last < 0.8 * first, "lm_loss {first} -> {last}");
}

#[test]
fn a_worker_that_dies_stops_the_other_with_its_rank_named() {
    if !gloo_or_skip("a_worker_that_dies_stops_the_other") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = setup(tmp.path(), 0.1, 2000);
    let port = hrm_cli::launch::free_port().expect("port");
    let spawn = |rank: usize| {
        train_command(&cfg, &tmp.path().join("run"))
            .args(WORKER_ARGS)
            .args(["--dist-timeout", "20"])
            .envs(hrm_cli::launch::worker_env(rank, 2, port))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("worker")
    };
    let survivor = spawn(0);
    let mut victim = spawn(1);
    // Let them rendezvous and train a little, then kill rank 1 as the OOM killer would.
    let metrics = tmp.path().join("run").join("metrics.jsonl");
    let start = Instant::now();
    while !metrics.is_file() || std::fs::metadata(&metrics).map_or(0, |m| m.len()) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no training started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    victim.kill().expect("kill rank 1");
    let killed = Instant::now();
    let _ = victim.wait();
    let out = survivor.wait_with_output().expect("rank 0 ends");
    let waited = killed.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rank 0 must fail: {stderr}");
    assert!(
        waited < Duration::from_secs(60),
        "rank 0 took {waited:?} to notice"
    );
    assert!(
        stderr.contains("rank 1"),
        "the lost rank is named: {stderr}"
    );
}

#[test]
fn a_batch_that_does_not_split_over_the_processes_is_refused() {
    if !gloo_or_skip("a_batch_that_does_not_split") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = setup(tmp.path(), 0.0, 2);
    let out = train_command(&cfg, &tmp.path().join("run"))
        .args([
            "--device",
            "cpu",
            "--no-progress",
            "--nproc",
            "3",
            "--dist-timeout",
            "20",
        ])
        .output()
        .expect("hrm train");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("global_batch_size") && stderr.contains("3 processes"),
        "{stderr}"
    );
}

/// The python of the torch venv `cargo xtask setup` made (`<home>/bin/python` beside
/// `<home>/lib/pythonX.Y/site-packages/torch`, which `.libtorch` points to).
fn torch_python() -> Option<PathBuf> {
    let link = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.libtorch");
    let torch = std::fs::canonicalize(link).ok()?;
    let home = torch.ancestors().nth(4)?;
    let python = home.join("bin").join("python");
    python.is_file().then_some(python)
}

#[test]
fn torchrun_launches_the_same_run() {
    if !gloo_or_skip("torchrun_launches_the_same_run") {
        return;
    }
    let Some(python) = torch_python() else {
        eprintln!("torchrun_launches_the_same_run: skipped: no torch venv (run cargo xtask setup)");
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = setup(tmp.path(), 0.0, 4);
    let one = tmp.path().join("one");
    train(&cfg, &one, &[]);
    let run = tmp.path().join("torchrun");
    let port = hrm_cli::launch::free_port().expect("port");
    let out = Command::new(python)
        .args([
            "-m",
            "torch.distributed.run",
            "--no-python",
            "--nproc-per-node",
            "2",
        ])
        .arg(format!("--master-port={port}"))
        .arg(env!("CARGO_BIN_EXE_hrm"))
        .arg("train")
        .arg(&cfg)
        .arg("--run-dir")
        .arg(&run)
        .args(WORKER_ARGS)
        .args(FINISHING_TIMEOUT)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("torchrun");
    assert!(
        out.status.success(),
        "torchrun failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let eval = |run: &Path| {
        metrics(run)
            .into_iter()
            .rev()
            .find_map(|l| match l {
                MetricsLine::Eval { overall, .. } => Some(overall),
                _ => None,
            })
            .expect("an evaluation")
    };
    let (a, b) = (eval(&one), eval(&run));
    for (k, v) in &a.0 {
        assert!((v - b.get(k)).abs() < 1e-5, "`{k}`: {v} vs {}", b.get(k));
    }
}
