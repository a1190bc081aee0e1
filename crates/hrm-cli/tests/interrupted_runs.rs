//! The `hrm` binary under what clusters do to runs (issue 11): SIGTERM stops a run with a
//! checkpoint and exit status 75, and the resumed run ends exactly where an uninterrupted one
//! does; after `kill -9` a resumed run logs each step once; a forced NaN run stops with a message
//! naming the step; config errors name the key, the value and where it came from; `hrm eval`
//! messages. Tiny runs: 4x4 Sudoku, hidden 32, one intra-op thread.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hrm_train::checkpoint;
use hrm_train::run_dir::{read_metrics, MetricsLine};

/// 64 training puzzles (4 steps of 16 per epoch), 16 test puzzles, and the config file.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    data: PathBuf,
    config: PathBuf,
}

/// 100 epochs = 400 steps; an evaluation and a checkpoint every 10 epochs (40 steps); a log
/// line every 5 steps.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let data = dir.join("sudoku4");
        let mut opts = hrm_data::sudoku::SudokuOptions::new(&data);
        opts.size = 4;
        opts.train = 64;
        opts.test = 16;
        opts.aug = 0;
        opts.seed = 13;
        hrm_data::sudoku::build_sudoku(&opts).expect("build the tiny dataset");
        let config = dir.join("tiny.toml");
        std::fs::write(
            &config,
            format!(
                r#"# tiny run for the interruption tests
arch = "hrm"
data_path = "{}"
global_batch_size = 16
epochs = 100
eval_interval = 10
lr = 3e-3
lr_warmup_steps = 10
weight_decay = 0.01
puzzle_emb_lr = 1e-2
puzzle_emb_weight_decay = 0.1
seed = 9
log_interval = 5
[model]
H_cycles = 1
L_cycles = 1
H_layers = 1
L_layers = 1
hidden_size = 32
num_heads = 2
expansion = 2.0
puzzle_emb_ndim = 0
halt_max_steps = 2
"#,
                data.display()
            ),
        )
        .expect("write the config");
        Fixture {
            _tmp: tmp,
            dir,
            data,
            config,
        }
    })
}

fn hrm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hrm"));
    c.env("OMP_NUM_THREADS", "1");
    // The straight run and the interrupted one are separate processes: one linear-layer route
    // for both, since each would otherwise time its own (a resumed run pins the routes of the
    // run it continues, which `the_checkpoint_records_the_linear_routes_it_resumes_with` checks).
    c.env("HRM_CPU_LINEAR", "onednn");
    c
}

fn train_args(run: &Path) -> Vec<String> {
    let f = fixture();
    vec![
        "train".into(),
        f.config.display().to_string(),
        "--run-dir".into(),
        run.display().to_string(),
        "--no-progress".into(),
        "--threads".into(),
        "1".into(),
    ]
}

fn run_hrm(args: &[String]) -> Output {
    hrm().args(args).output().expect("the hrm binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The uninterrupted run, trained once.
fn straight() -> &'static PathBuf {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let run = fixture().dir.join("straight");
        let out = run_hrm(&train_args(&run));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        run
    })
}

/// Spawns a training run whose output goes to files in the run's parent directory.
fn spawn(run: &Path, extra: &[&str]) -> Child {
    let log = |name: &str| std::fs::File::create(run.with_extension(name)).expect("log file");
    let mut args = train_args(run);
    args.extend(extra.iter().map(|s| s.to_string()));
    hrm()
        .args(&args)
        .stdout(Stdio::from(log("stdout")))
        .stderr(Stdio::from(log("stderr")))
        .spawn()
        .expect("spawn hrm train")
}

/// Waits until `metrics.jsonl` of `run` holds a train line of step `step` or later; fails if
/// the child exits first.
fn wait_for_step(child: &mut Child, run: &Path, step: u64) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "hrm train exited ({status}) before step {step}: {}",
                std::fs::read_to_string(run.with_extension("stderr")).unwrap_or_default()
            );
        }
        let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap_or_default();
        let reached = text.lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .filter(|v| v["kind"] == "train")
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s >= step)
        });
        if reached {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "step {step} not reached"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn train_steps(run: &Path) -> Vec<u64> {
    read_metrics(&run.join("metrics.jsonl"))
        .expect("metrics.jsonl reads back")
        .iter()
        .filter_map(|l| match l {
            MetricsLine::Train { step, .. } => Some(*step),
            _ => None,
        })
        .collect()
}

/// The final checkpoints of two runs hold the same tensors (to 1e-6) and state.
fn assert_same_final_checkpoint(a: &Path, b: &Path) {
    let newest = |run: &Path| {
        checkpoint::latest(&run.join("checkpoints"))
            .expect("scan")
            .expect("a checkpoint")
    };
    let a = checkpoint::load(&newest(a)).expect("load a");
    let b = checkpoint::load(&newest(b)).expect("load b");
    assert_eq!(a.state.step, b.state.step);
    assert_eq!(a.state.sampler, b.state.sampler);
    for (set_a, set_b) in [(&a.model, &b.model), (&a.optimizer, &b.optimizer)] {
        assert_eq!(set_a.len(), set_b.len());
        for ((na, ta), (nb, tb)) in set_a.iter().zip(set_b.iter()) {
            assert_eq!(na, nb);
            let diff = (ta.to_kind(tch::Kind::Double) - tb.to_kind(tch::Kind::Double))
                .abs()
                .max()
                .double_value(&[]);
            assert!(diff <= 1e-6, "{na} differs by {diff}");
        }
    }
}

#[test]
fn sigterm_stops_with_a_checkpoint_and_status_75_and_the_resume_matches() {
    let run = fixture().dir.join("sigterm");
    let mut child = spawn(&run, &[]);
    wait_for_step(&mut child, &run, 20);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    let stderr = std::fs::read_to_string(run.with_extension("stderr")).unwrap_or_default();
    let stdout = std::fs::read_to_string(run.with_extension("stdout")).unwrap_or_default();
    assert_eq!(status.code(), Some(75), "{stdout}\n{stderr}");
    assert!(stderr.contains("stop requested"), "{stderr}");
    assert!(stdout.contains("continue with --resume"), "{stdout}");
    let steps = checkpoint::list(&run.join("checkpoints"));
    let (stopped_at, _) = steps.first().expect("a checkpoint of the stopped step");
    assert!(
        (20..400).contains(stopped_at),
        "stopped at step {stopped_at}"
    );

    let mut args = train_args(&run);
    args.push("--resume".into());
    let out = run_hrm(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("at step {stopped_at}")),
        "{}",
        text(&out)
    );
    assert_eq!(
        train_steps(&run),
        (1..=80).map(|i| i * 5).collect::<Vec<_>>()
    );
    assert_same_final_checkpoint(&run, straight());
}

#[test]
fn after_kill_9_the_resumed_run_logs_each_step_once() {
    let run = fixture().dir.join("kill9");
    let mut child = spawn(&run, &[]);
    // Past the checkpoint of step 40, so that lines after it are in the log.
    wait_for_step(&mut child, &run, 50);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let before = train_steps(&run);
    assert!(before.iter().any(|&s| s > 40), "{before:?}");

    let mut args = train_args(&run);
    args.push("--resume".into());
    let out = run_hrm(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dropped"), "{stderr}");
    assert_eq!(
        train_steps(&run),
        (1..=80).map(|i| i * 5).collect::<Vec<_>>()
    );
    let evals: Vec<u64> = read_metrics(&run.join("metrics.jsonl"))
        .expect("read")
        .iter()
        .filter_map(|l| match l {
            MetricsLine::Eval { step, .. } => Some(*step),
            _ => None,
        })
        .collect();
    assert_eq!(evals, (1..=10).map(|i| i * 40).collect::<Vec<_>>());
    assert_same_final_checkpoint(&run, straight());
}

#[test]
fn a_forced_nan_run_stops_naming_the_step_and_a_later_resume_works() {
    let run = fixture().dir.join("nan");
    let mut args = train_args(&run);
    args.extend(["--stop-at-step".into(), "40".into()]);
    let out = run_hrm(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let mut wild = train_args(&run);
    wild.extend(
        [
            "--resume",
            "--set",
            "lr=1e30",
            "--set",
            "puzzle_emb_lr=1e30",
        ]
        .map(String::from),
    );
    let out = run_hrm(&wild);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let diverged: Vec<u64> = read_metrics(&run.join("metrics.jsonl"))
        .expect("metrics.jsonl stays readable")
        .iter()
        .filter_map(|l| match l {
            MetricsLine::NonFinite { step, .. } => Some(*step),
            _ => None,
        })
        .collect();
    let [step] = diverged[..] else {
        panic!("one diverged step logged: {diverged:?}\n{}", text(&out));
    };
    assert!(
        stderr.contains(&format!("step {step}: the ")) && stderr.contains("not finite"),
        "{stderr}"
    );
    assert_eq!(
        checkpoint::list(&run.join("checkpoints"))
            .first()
            .map(|(s, _)| *s),
        Some(40),
        "no checkpoint of the diverged state"
    );

    let mut again = train_args(&run);
    again.push("--resume".into());
    let out = run_hrm(&again);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        train_steps(&run),
        (1..=80).map(|i| i * 5).collect::<Vec<_>>()
    );
    let png = std::fs::read(run.join("curves.png")).expect("curves.png");
    assert!(png.starts_with(b"\x89PNG"));
}

#[test]
fn config_errors_name_the_key_the_value_and_where_it_came_from() {
    let f = fixture();
    let run = f.dir.join("never");
    let mut args = train_args(&run);
    args.extend(["--set".into(), "lr=abc".into()]);
    let out = run_hrm(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config key `lr` = \"abc\" (from the command line: --set lr=abc)"),
        "{stderr}"
    );

    let bad = f.dir.join("bad-model.toml");
    let config = std::fs::read_to_string(&f.config).expect("read");
    std::fs::write(
        &bad,
        config.replace("hidden_size = 32", "hidden_size = \"wide\""),
    )
    .expect("write");
    let line = config
        .lines()
        .position(|l| l.starts_with("hidden_size"))
        .expect("line")
        + 1;
    let out = run_hrm(&[
        "train".into(),
        bad.display().to_string(),
        "--run-dir".into(),
        run.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "config key `model.hidden_size` = \"wide\" (line {line} of {})",
            bad.display()
        )),
        "{stderr}"
    );
    assert!(!run.exists(), "nothing created for a bad config");

    let help = run_hrm(&["train".into(), "--help".into()]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("75") && help.contains("130"), "{help}");
}

#[test]
fn eval_messages_and_empty_splits() {
    let f = fixture();
    let run = f.dir.join("short");
    let mut args = train_args(&run);
    args.extend(["--stop-at-step".into(), "8".into()]);
    let out = run_hrm(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // --data given: the message does not tell to pass it.
    let missing = f.dir.join("no-such-data");
    let out = run_hrm(&[
        "eval".into(),
        run.display().to_string(),
        "--data".into(),
        missing.display().to_string(),
        "--device".into(),
        "cpu".into(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-data"), "{stderr}");
    assert!(!stderr.contains("pass --data"), "{stderr}");

    // A dataset whose test split has no examples: a clear error, no report directory.
    let empty = f.dir.join("empty-test");
    let writer = hrm_data::format::DatasetWriter::create(&empty).expect("writer");
    let ds = hrm_data::Dataset::open(&f.data, "test").expect("test split");
    let mut meta = ds.metadata().clone();
    let set = writer
        .set_writer("test", "all", meta.seq_len)
        .expect("set writer");
    set.finish().expect("an empty set");
    meta.total_groups = 0;
    meta.total_puzzles = Some(0);
    meta.sets = vec!["all".into()];
    writer.write_metadata("test", &meta).expect("metadata");
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read dir") {
            let e = e.expect("entry");
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    };
    copy(&f.data.join("train"), &writer.root().join("train"));
    std::fs::copy(
        f.data.join("identifiers.json"),
        writer.root().join("identifiers.json"),
    )
    .expect("identifiers");
    writer.commit().expect("commit");
    let out_dir = f.dir.join("report-of-nothing");
    let out = run_hrm(&[
        "eval".into(),
        run.display().to_string(),
        "--data".into(),
        empty.display().to_string(),
        "--out".into(),
        out_dir.display().to_string(),
        "--device".into(),
        "cpu".into(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no examples"), "{stderr}");
    assert!(!out_dir.exists(), "no empty report directory");

    // Training on it: refused before anything is written.
    let config = std::fs::read_to_string(&f.config).expect("read");
    let cfg = f.dir.join("empty-test.toml");
    std::fs::write(
        &cfg,
        config.replace(&f.data.display().to_string(), &empty.display().to_string()),
    )
    .expect("write");
    let never = f.dir.join("never-empty");
    let out = run_hrm(&[
        "train".into(),
        cfg.display().to_string(),
        "--run-dir".into(),
        never.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("test split has no examples"),
        "{}",
        text(&out)
    );
    assert!(!never.exists(), "no run directory");
}

/// Without `HRM_CPU_LINEAR` each process times its linear-layer routes. A checkpoint records
/// them and a resumed run pins them instead of timing: here every recorded route is flipped in
/// `state.json`, and the run resumed from it must record the flipped routes in its next
/// checkpoint (timing would choose the faster route of each shape, undoing the flips).
#[test]
fn the_checkpoint_records_the_linear_routes_it_resumes_with() {
    let run = fixture().dir.join("routes");
    let timed = || {
        let mut c = hrm();
        c.env_remove("HRM_CPU_LINEAR");
        c
    };
    let mut args = train_args(&run);
    args.extend(["--stop-at-step".into(), "40".into()]);
    let out = timed().args(&args).output().expect("hrm runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let first = checkpoint::latest(&run.join("checkpoints"))
        .expect("scan")
        .expect("a checkpoint at step 40");
    let state_path = first.join(checkpoint::STATE_FILE);
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).expect("state.json")).expect("json");
    let routes = state["linear_routes"]
        .as_array_mut()
        .expect("state.json lists linear_routes");
    assert!(!routes.is_empty(), "no route recorded");
    for r in routes.iter_mut() {
        let flipped = match r["route"].as_str().expect("route name") {
            "blas" => "onednn",
            "onednn" => "blas",
            other => panic!("unknown route {other}"),
        };
        r["route"] = flipped.into();
    }
    let flipped = state["linear_routes"].clone();
    std::fs::write(
        &state_path,
        serde_json::to_vec_pretty(&state).expect("json"),
    )
    .expect("write");

    let mut args = train_args(&run);
    args.extend(["--resume".into(), "--stop-at-step".into(), "80".into()]);
    let out = timed().args(&args).output().expect("hrm runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let second = checkpoint::latest(&run.join("checkpoints"))
        .expect("scan")
        .expect("a checkpoint at step 80");
    assert_ne!(first, second);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(second.join(checkpoint::STATE_FILE)).expect("read"))
            .expect("json");
    let recorded = state["linear_routes"].as_array().expect("routes");
    for r in flipped.as_array().expect("array") {
        assert!(
            recorded.contains(r),
            "the resumed run did not keep the pinned route {r}"
        );
    }
}
