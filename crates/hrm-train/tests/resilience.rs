//! Runs that survive what clusters do to them (issue 11), on a tiny 4x4 Sudoku model: a
//! damaged checkpoint is refused with the file named and `--resume` continues from the last
//! good one, which no rotation removes before a newer good one exists; a diverging run stops at
//! the step that diverged without writing its state and a later resume works; a skipped step
//! changes nothing; lines logged after the last checkpoint by a killed run are logged once.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hrm_train::checkpoint::{self, SkippedCheckpoint};
use hrm_train::config::TrainConfig;
use hrm_train::observer::{RunStart, TrainObserver};
use hrm_train::run_dir::{read_metrics, MetricsCut, MetricsLine};
use hrm_train::train_step::{NonFinite, Quantity};
use hrm_train::trainer::{train, train_with, TrainOptions, TrainSummary};
use hrm_train::TrainError;

mod common;
use common::assert_same_checkpoint;

/// 64 training puzzles (4 steps of 16 per epoch) and 16 test puzzles, built once.
fn dataset() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        tch::set_num_threads(1);
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("sudoku4");
        let mut opts = hrm_data::sudoku::SudokuOptions::new(&out);
        opts.size = 4;
        opts.train = 64;
        opts.test = 16;
        opts.aug = 0;
        opts.seed = 11;
        hrm_data::sudoku::build_sudoku(&opts).expect("build the tiny dataset");
        (tmp, out)
    })
    .1
}

/// 6 epochs of 4 steps, an evaluation and a checkpoint every epoch (every 4 steps), a log line
/// every step, two checkpoints kept.
fn config(extra: &[&str]) -> TrainConfig {
    let text = format!(
        r#"
arch = "hrm"
data_path = "{}"
global_batch_size = 16
epochs = 6
eval_interval = 1
lr = 3e-3
lr_warmup_steps = 2
weight_decay = 0.01
puzzle_emb_lr = 1e-2
puzzle_emb_weight_decay = 0.1
seed = 5
log_interval = 1
keep_checkpoints = 2
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
        dataset().display()
    );
    let overrides: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    TrainConfig::from_toml_str(&text, &overrides).expect("valid test config")
}

fn options(cfg: TrainConfig, run: &Path) -> TrainOptions {
    TrainOptions::new(cfg, run, tch::Device::Cpu)
}

/// The steps of the run's checkpoints, newest first.
fn checkpoint_steps(run: &Path) -> Vec<u64> {
    checkpoint::list(&run.join("checkpoints"))
        .into_iter()
        .map(|(s, _)| s)
        .collect()
}

/// The uninterrupted run of [`config`], trained once.
fn straight() -> &'static (tempfile::TempDir, TrainSummary) {
    static RUN: OnceLock<(tempfile::TempDir, TrainSummary)> = OnceLock::new();
    RUN.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let summary = train(options(config(&[]), &tmp.path().join("run"))).expect("straight run");
        assert_eq!(summary.steps, 24);
        (tmp, summary)
    })
}

/// The steps of the train lines of a run's `metrics.jsonl`, which must all be readable.
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

/// Remembers what the trainer reported.
#[derive(Default)]
struct Recorder {
    resumed_from: Option<PathBuf>,
    skipped: Vec<SkippedCheckpoint>,
    cut: MetricsCut,
    skipped_steps: Vec<(u64, NonFinite)>,
}

impl TrainObserver for Recorder {
    fn on_start(&mut self, start: &RunStart<'_>) {
        self.resumed_from = start.resumed_from.map(Path::to_path_buf);
        self.skipped = start.skipped_checkpoints.to_vec();
        self.cut = start.metrics_cut.clone();
    }
    fn on_skipped_step(&mut self, step: u64, what: &NonFinite) {
        self.skipped_steps.push((step, *what));
    }
}

fn step_dir(run: &Path, step: u64) -> PathBuf {
    run.join("checkpoints")
        .join(checkpoint::step_dir_name(step))
}

/// Flips `n` bytes in the middle of a file (same size, other content).
fn flip_middle(path: &Path, n: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + n] {
        *b ^= 0x5a;
    }
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn a_damaged_checkpoint_is_refused_and_resume_falls_back_to_the_last_good_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let mut first = options(config(&[]), &run);
    first.stop_at_step = Some(12);
    train(first).expect("first part");
    // Checkpoints at 4, 8, 12; two kept.
    assert!(!step_dir(&run, 4).exists() && step_dir(&run, 8).is_dir());

    // 64 flipped bytes in the middle of the newest weights: refused everywhere, file named.
    let weights = step_dir(&run, 12).join("model.safetensors");
    flip_middle(&weights, 64);
    let err = checkpoint::load(&step_dir(&run, 12)).expect_err("flipped bytes");
    assert!(
        matches!(&err, TrainError::CheckpointDigest { file, .. } if file == &weights),
        "{err}"
    );
    // `hrm solve` and `hrm eval` load through `load_model`.
    let err = checkpoint::load_model(&run, tch::Device::Cpu).expect_err("solve/eval refuse");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    assert!(err.to_string().contains("SHA-256"), "{err}");

    // Resume: the damaged checkpoint is skipped and moved aside, the run continues from step 8.
    // It stops at 12 again, so that the checkpoint it resumed from is still there afterwards:
    // rotation waits for a newer verified one (keep_checkpoints = 2 keeps 8 and the new 12).
    let mut again = options(config(&[]), &run);
    again.resume = true;
    again.stop_at_step = Some(12);
    let mut seen = Recorder::default();
    train_with(again, &mut seen).expect("resumed part");
    assert_eq!(seen.resumed_from, Some(step_dir(&run, 8)));
    assert_eq!(seen.skipped.len(), 1, "{:?}", seen.skipped);
    assert_eq!(seen.skipped[0].step, 12);
    assert!(
        seen.skipped[0].reason.contains("model.safetensors"),
        "{}",
        seen.skipped[0].reason
    );
    let aside = run.join("checkpoints").join("corrupt-step_00000012");
    assert_eq!(seen.skipped[0].moved_to.as_deref(), Some(aside.as_path()));
    assert!(
        aside.join("model.safetensors").is_file(),
        "kept for inspection"
    );
    assert!(step_dir(&run, 8).is_dir(), "the good checkpoint survived");
    checkpoint::load(&step_dir(&run, 12)).expect("the new step 12 verifies");
    // Lines of steps 9..12 of the first part were logged again by the resumed run: once each.
    assert_eq!(
        seen.cut.dropped,
        4 + 1,
        "4 train lines and the eval of step 12"
    );
    assert_eq!(train_steps(&run), (1..=12).collect::<Vec<_>>());

    // The rest of the run: the same result as the uninterrupted run.
    let mut rest = options(config(&[]), &run);
    rest.resume = true;
    let done = train(rest).expect("rest");
    assert_eq!(done.steps, 24);
    assert_eq!(train_steps(&run), (1..=24).collect::<Vec<_>>());
    assert!(aside.is_dir(), "never rotated away");
    let (_tmp, reference) = straight();
    assert_same_checkpoint(
        &done.checkpoint.expect("final checkpoint"),
        reference.checkpoint.as_ref().expect("reference checkpoint"),
    );
}

#[test]
fn damaged_optimizer_state_and_nan_weights_are_refused_naming_file_and_tensor() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let mut first = options(config(&[]), &run);
    first.stop_at_step = Some(8);
    train(first).expect("short run");

    // Flipped bytes in the optimiser file of the newest checkpoint.
    let opt = step_dir(&run, 8).join("optimizer.safetensors");
    flip_middle(&opt, 64);
    let err = checkpoint::load(&step_dir(&run, 8)).expect_err("flipped optimizer");
    assert!(
        matches!(&err, TrainError::CheckpointDigest { file, .. } if file == &opt),
        "{err}"
    );

    // NaN weights with a matching digest (as a diverged run wrote them before this check):
    // refused by `load_model` (`hrm solve`, `hrm eval`), naming the file and the tensor.
    let dir = step_dir(&run, 4);
    let weights = dir.join("model.safetensors");
    let mut tensors = hrm_core::weights::read_safetensors(&weights).expect("read weights");
    let (name, t) = &mut tensors[0];
    let name = name.clone();
    let _ = t.fill_(f64::NAN);
    hrm_core::weights::write_safetensors(&weights, &tensors).expect("write NaN weights");
    let state_path = dir.join("state.json");
    let mut state =
        checkpoint::parse_state(&std::fs::read(&state_path).expect("read"), &state_path)
            .expect("state");
    let bytes = std::fs::read(&weights).expect("read");
    state.files.insert(
        "model.safetensors".into(),
        checkpoint::FileDigest::of(&bytes),
    );
    std::fs::write(&state_path, serde_json::to_vec(&state).expect("json")).expect("write");
    let err = checkpoint::load_model(&dir, tch::Device::Cpu).expect_err("NaN weights");
    assert!(
        matches!(&err, TrainError::NonFiniteTensor { file, tensor, .. } if file == &weights && tensor == &name),
        "{err}"
    );

    // Both checkpoints damaged: resume says so, listing them, and moves them aside.
    let mut resume = options(config(&[]), &run);
    resume.resume = true;
    let err = train(resume).expect_err("nothing verifies");
    match &err {
        TrainError::NoVerifiedCheckpoint { skipped, .. } => {
            assert_eq!(skipped.iter().map(|s| s.step).collect::<Vec<_>>(), [8, 4]);
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(checkpoint::list(&run.join("checkpoints")).is_empty());
}

#[test]
fn a_diverging_run_stops_at_the_step_without_writing_it_and_resume_works() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let mut first = options(config(&[]), &run);
    first.stop_at_step = Some(8);
    train(first).expect("first part");

    // The same run resumed with absurd learning rates diverges.
    let mut wild = options(config(&["lr=1e30", "puzzle_emb_lr=1e30"]), &run);
    wild.resume = true;
    let err = train(wild).expect_err("diverges");
    let TrainError::NonFinite {
        step,
        quantity,
        value,
    } = err
    else {
        panic!("unexpected error: {err}");
    };
    assert!(step > 8 && step <= 24, "step {step}");
    assert!(!value.is_finite());
    let msg = TrainError::NonFinite {
        step,
        quantity,
        value,
    }
    .to_string();
    assert!(
        msg.starts_with(&format!("step {step}: the {quantity} is")),
        "{msg}"
    );
    // The right step: every step before it logged finite metrics, and the diverged step is
    // logged as such (valid JSON).
    let lines = read_metrics(&run.join("metrics.jsonl")).expect("metrics read back");
    for l in &lines {
        if let MetricsLine::Train {
            step: s, metrics, ..
        } = l
        {
            assert!(*s < step, "no train line at or after the diverged step");
            assert!(
                metrics.0.values().all(|v| v.is_finite()),
                "step {s}: {metrics:?}"
            );
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| matches!(l, MetricsLine::NonFinite { step: s, .. } if *s == step)),
        "the diverged step is logged"
    );
    // Nothing of the diverged state was written.
    let steps = checkpoint_steps(&run);
    assert!(steps.iter().all(|&s| s < step), "{steps:?}");

    // Resuming with the run's own settings works and ends where the uninterrupted run ends.
    let mut resume = options(config(&[]), &run);
    resume.resume = true;
    let done = train(resume).expect("resume after divergence");
    assert_eq!(done.steps, 24);
    assert_eq!(train_steps(&run), (1..=24).collect::<Vec<_>>());
    let (_tmp, reference) = straight();
    assert_same_checkpoint(
        &done.checkpoint.expect("final checkpoint"),
        reference.checkpoint.as_ref().expect("reference checkpoint"),
    );
}

#[test]
fn skipping_non_finite_steps_logs_them_and_gives_up_on_a_dead_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let cfg = config(&[
        "lr=1e30",
        "puzzle_emb_lr=1e30",
        "on_nonfinite=skip",
        "epochs=12",
        "eval_interval=12",
    ]);
    let mut seen = Recorder::default();
    let err = train_with(options(cfg, &run), &mut seen).expect_err("a dead run");
    assert!(
        matches!(err, TrainError::Diverged { count, .. } if count == hrm_train::trainer::MAX_CONSECUTIVE_SKIPS),
        "{err}"
    );
    let skipped: Vec<u64> = seen.skipped_steps.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        skipped.len() as u64,
        hrm_train::trainer::MAX_CONSECUTIVE_SKIPS
    );
    assert!(skipped.windows(2).all(|w| w[1] == w[0] + 1), "{skipped:?}");
    let logged: Vec<u64> = read_metrics(&run.join("metrics.jsonl"))
        .expect("metrics read back")
        .iter()
        .filter_map(|l| match l {
            MetricsLine::NonFinite { step, action, .. } => {
                assert_eq!(*action, hrm_train::config::OnNonFinite::Skip);
                Some(*step)
            }
            _ => None,
        })
        .collect();
    assert_eq!(logged, skipped);
}

#[test]
fn a_skipped_step_leaves_the_weights_and_the_optimiser_alone() {
    use hrm_train::optim::{AdamAtan2, AdamAtan2Config};
    use hrm_train::train_step::{direct_train_step, Optimizers, StepRates};
    let table: toml::Table = "seq_len = 4\nvocab_size = 5\nnum_puzzle_identifiers = 1\n\
         num_layers = 1\nhidden_size = 16\nnum_heads = 2\nexpansion = 2.0\n\
         pos_encodings = \"rope\"\nforward_dtype = \"float32\"\n"
        .parse()
        .expect("table");
    let model = hrm_train::arch::build_model(
        hrm_train::config::Arch::Transformer,
        &table,
        tch::Device::Cpu,
    )
    .expect("model");
    let hrm_train::arch::ArchModel::Direct(direct) = &model else {
        panic!("a direct model");
    };
    let params = model.params().trainable();
    let mut opt = Optimizers {
        adam: AdamAtan2::new(model.params().trainable(), AdamAtan2Config::default()).expect("adam"),
        puzzle: None,
        parallel: None,
    };
    let batch = hrm_act::ActBatch {
        inputs: tch::Tensor::from_slice(&[1i64, 2, 3, 4, 4, 3, 2, 1]).view([2, 4]),
        labels: tch::Tensor::from_slice(&[2i64, 3, 4, 1, 1, 2, 3, 4]).view([2, 4]),
        puzzle_identifiers: tch::Tensor::zeros([2], (tch::Kind::Int64, tch::Device::Cpu)),
    };
    let rates = StepRates {
        lr: 1e-3,
        puzzle_emb_lr: 0.0,
    };
    // One weight tensor NaN: the loss is NaN, nothing moves, no optimiser step is counted.
    let (poisoned, p) = &params[0];
    let _ = tch::no_grad(|| p.shallow_clone().fill_(f64::NAN));
    let before: Vec<tch::Tensor> = params.iter().map(|(_, t)| t.copy()).collect();
    let outcome = direct_train_step(
        direct.as_ref(),
        &batch,
        &hrm_act::LossHead::default(),
        &mut opt,
        rates,
        2,
    )
    .expect("step");
    let what = outcome.non_finite.expect("reported");
    assert_eq!(what.quantity, Quantity::Loss, "{poisoned}");
    assert!(what.value.is_nan());
    for ((name, after), before) in params.iter().zip(&before) {
        assert!(
            after.allclose(before, 0.0, 0.0, true),
            "{name} changed in a skipped step"
        );
    }
    assert!(opt.adam.named_state().all(|(_, st)| st.step == 0));
    assert!(
        opt.adam
            .grads()
            .all(|g| g.count_nonzero(None::<i64>).int64_value(&[]) == 0),
        "gradients cleared"
    );
}

#[test]
fn lines_logged_after_the_last_checkpoint_are_logged_once_after_resume() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let mut first = options(config(&[]), &run);
    first.stop_at_step = Some(8);
    train(first).expect("first part");
    // What `kill -9` after step 10 leaves: the lines of steps 9 and 10 with no checkpoint of
    // them, a line torn in the middle, and (for good measure) no `latest` file.
    let metrics = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&metrics).expect("read");
    let line8 = text
        .lines()
        .find(|l| l.contains(r#""kind":"train","step":8,"#))
        .expect("the line of step 8")
        .to_string();
    let extra = format!(
        "{}\n{}\n{}",
        line8.replace(r#""step":8,"#, r#""step":9,"#),
        line8.replace(r#""step":8,"#, r#""step":10,"#),
        &line8[..line8.len() / 2]
    );
    std::fs::write(&metrics, format!("{text}{extra}")).expect("append");
    std::fs::remove_file(run.join("checkpoints").join("latest")).expect("rm latest");

    let mut resume = options(config(&[]), &run);
    resume.resume = true;
    let mut seen = Recorder::default();
    let done = train_with(resume, &mut seen).expect("resume");
    assert_eq!(seen.resumed_from, Some(step_dir(&run, 8)));
    assert_eq!(seen.cut.dropped, 2);
    assert_eq!(
        seen.cut.torn.as_ref().map(|t| t.line),
        Some(text.lines().count() + 3)
    );
    assert_eq!(done.steps, 24);
    assert_eq!(train_steps(&run), (1..=24).collect::<Vec<_>>());
    let evals: Vec<u64> = read_metrics(&metrics)
        .expect("read")
        .iter()
        .filter_map(|l| match l {
            MetricsLine::Eval { step, .. } => Some(*step),
            _ => None,
        })
        .collect();
    assert_eq!(evals, [4, 8, 12, 16, 20, 24]);
}

/// Raises the stop signal at a given step, as a signal handler would.
struct StopAt {
    step: u64,
    signal: hrm_train::trainer::StopSignal,
    requests: usize,
}

impl TrainObserver for StopAt {
    fn on_step(&mut self, event: &hrm_train::observer::StepEvent<'_>) {
        if event.step == self.step {
            for _ in 0..self.requests {
                self.signal.escalate();
            }
        }
    }
}

#[test]
fn a_stop_request_writes_a_checkpoint_and_a_second_one_writes_nothing() {
    use hrm_train::trainer::{StopLevel, StopReason, StopSignal};
    let tmp = tempfile::tempdir().expect("tempdir");
    // Trains in `tmp/name` with `requests` stop requests at `step`; the signal's level after it.
    let stopped_run = |name: &str, step: u64, requests: usize| {
        let run = tmp.path().join(name);
        let signal = StopSignal::new();
        let mut opts = options(config(&[]), &run);
        opts.stop = Some(signal.clone());
        let mut stop = StopAt {
            step,
            signal: signal.clone(),
            requests,
        };
        let s = train_with(opts, &mut stop).expect("stopped run");
        (run, s, signal.level())
    };

    // One request at step 6 (not an evaluation step): a checkpoint of step 6.
    let (run, s, level) = stopped_run("stopped", 6, 1);
    assert_eq!(level, StopLevel::Stop);
    assert_eq!((s.steps, s.stopped), (6, Some(StopReason::Requested)));
    assert!(s.interrupted);
    assert_eq!(checkpoint_steps(&run), [6, 4]);

    // Two requests (a double Ctrl-C) at step 6: nothing after the checkpoint of step 4.
    let (run, s, level) = stopped_run("abandoned", 6, 2);
    assert_eq!(level, StopLevel::Abandon);
    assert_eq!((s.steps, s.stopped), (6, Some(StopReason::Abandoned)));
    assert_eq!(checkpoint_steps(&run), [4]);
    // An abandon request that comes at an evaluation step (whose checkpoint follows the
    // evaluation) writes neither.
    let (run, s, _) = stopped_run("abandoned-at-eval", 8, 2);
    assert_eq!(s.steps, 8);
    assert_eq!(s.checkpoint, Some(step_dir(&run, 4)));
    assert!(!step_dir(&run, 8).exists());
    let evals = read_metrics(&run.join("metrics.jsonl"))
        .expect("read")
        .iter()
        .filter(|l| matches!(l, MetricsLine::Eval { .. }))
        .count();
    assert_eq!(evals, 1, "no evaluation after the request");
}
