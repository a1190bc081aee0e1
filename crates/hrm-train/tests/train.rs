//! End-to-end training on a tiny generated dataset: the model learns, a stopped-and-resumed
//! run equals an uninterrupted one, and bad input gives clear errors.

use std::path::{Path, PathBuf};

use hrm_train::config::TrainConfig;
use hrm_train::trainer::{train, TrainOptions, TrainSummary};
use hrm_train::TrainError;

mod common;
use common::assert_same_checkpoint;

/// A 4x4 Sudoku dataset, built once per test binary into a temporary directory.
fn dataset() -> &'static Path {
    static DIR: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    &DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("sudoku4");
        let mut opts = hrm_data::sudoku::SudokuOptions::new(&out);
        opts.size = 4;
        opts.train = 300;
        opts.test = 64;
        opts.aug = 3;
        opts.difficulty = hrm_data::sudoku::Difficulty::Medium;
        opts.seed = 7;
        hrm_data::sudoku::build_sudoku(&opts).expect("build the tiny dataset");
        (tmp, out)
    })
    .1
}

fn config(data: &Path, extra: &[&str]) -> TrainConfig {
    let text = format!(
        r#"
arch = "hrm"
data_path = "{}"
global_batch_size = 32
epochs = 40
eval_interval = 20
lr = 3e-3
lr_min_ratio = 0.1
lr_warmup_steps = 20
weight_decay = 0.01
puzzle_emb_lr = 1e-2
puzzle_emb_weight_decay = 0.1
seed = 3
log_interval = 10
[model]
H_cycles = 1
L_cycles = 2
H_layers = 1
L_layers = 1
hidden_size = 64
num_heads = 2
expansion = 2.0
pos_encodings = "rope"
puzzle_emb_ndim = 0
halt_max_steps = 2
halt_exploration_prob = 0.1
"#,
        data.display()
    );
    let overrides: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    TrainConfig::from_toml_str(&text, &overrides).expect("valid test config")
}

fn options(cfg: TrainConfig, run_dir: &Path) -> TrainOptions {
    TrainOptions::new(cfg, run_dir, tch::Device::Cpu)
}

/// Token accuracy of copying the givens of the test split and guessing each blank (1 in 4).
fn copy_givens_baseline(data: &Path) -> f64 {
    let ds = hrm_data::Dataset::open(data, "test").expect("test split");
    let set = &ds.sets()[0];
    let (mut right, mut total) = (0.0, 0.0);
    for i in 0..set.num_examples() {
        let (inputs, _) = set.example(i).expect("example");
        // Token 1 is a blank (digit 0 shifted by one), 2..=5 are givens.
        let givens = inputs.iter().filter(|&&t| t > 1).count() as f64;
        right += givens + 0.25 * (inputs.len() as f64 - givens);
        total += inputs.len() as f64;
    }
    right / total
}

fn first_train_loss(run_dir: &Path) -> f64 {
    let lines = hrm_train::run_dir::read_metrics(&run_dir.join("metrics.jsonl")).expect("metrics");
    lines
        .iter()
        .find_map(|l| match l {
            hrm_train::run_dir::MetricsLine::Train { metrics, .. } => Some(metrics.get("lm_loss")),
            _ => None,
        })
        .expect("a train line")
}

#[test]
fn a_tiny_hrm_learns_4x4_sudoku() {
    let runs = tempfile::tempdir().expect("tempdir");
    let run_dir = runs.path().join("run");
    let summary: TrainSummary =
        train(options(config(dataset(), &[]), &run_dir)).expect("training runs");
    assert!(!summary.interrupted);
    let last = summary.last_train.expect("train metrics");
    let first = first_train_loss(&run_dir);
    assert!(
        last.get("lm_loss") < 0.7 * first,
        "loss {first} -> {}",
        last.get("lm_loss")
    );
    let eval = summary.last_eval.expect("an evaluation");
    // Labels are digits 1..4 in equal shares, so predicting the most common token scores about
    // 0.25. A stronger trivial baseline copies the givens and guesses the blanks (1/4 right).
    let acc = eval.overall.get("accuracy");
    let copy = copy_givens_baseline(dataset());
    assert!(
        acc > copy + 0.1 && acc > 0.25 + 0.3,
        "held-out token accuracy {acc}, copy-the-givens {copy}"
    );
    assert_eq!(eval.overall.get("count"), 64.0);
    assert!(run_dir.join("config.toml").is_file());
    // The library draws nothing: the training-curve PNG is the `hrm` command's (its observer).
    assert!(!run_dir.join("curves.png").exists());
    assert!(summary
        .checkpoint
        .expect("a checkpoint")
        .join("model.safetensors")
        .is_file());
}

#[test]
fn stopping_and_resuming_equals_an_uninterrupted_run() {
    let runs = tempfile::tempdir().expect("tempdir");
    let cfg = config(dataset(), &["epochs=6", "eval_interval=6"]);
    let straight = runs.path().join("straight");
    let a = train(options(cfg.clone(), &straight)).expect("straight run");

    let split = runs.path().join("split");
    let mut first = options(cfg.clone(), &split);
    first.stop_at_step = Some(a.steps / 2);
    let half = train(first).expect("first half");
    assert!(half.interrupted);
    assert_eq!(half.steps, a.steps / 2);
    let mut second = options(cfg, &split);
    second.resume = true;
    let b = train(second).expect("resumed half");
    assert_eq!(b.steps, a.steps);
    assert_eq!(b.total_steps, a.total_steps);

    assert_same_checkpoint(&a.checkpoint.expect("a"), &b.checkpoint.expect("b"));
}

#[test]
fn bad_input_gives_clear_errors() {
    let runs = tempfile::tempdir().expect("tempdir");

    // A missing dataset directory.
    let err = train(options(
        config(&runs.path().join("nope"), &[]),
        &runs.path().join("r0"),
    ))
    .expect_err("no data");
    assert!(matches!(err, TrainError::Dataset { .. }), "{err}");

    // A model that contradicts the dataset's vocabulary.
    let err = train(options(
        config(dataset(), &["model.vocab_size=12"]),
        &runs.path().join("r1"),
    ))
    .expect_err("vocab");
    assert!(err.to_string().contains("vocab_size"), "{err}");

    // Resume with a config that changes shapes: the error lists the keys.
    let run = runs.path().join("r2");
    let mut opts = options(config(dataset(), &["epochs=2", "eval_interval=2"]), &run);
    opts.stop_at_step = Some(2);
    train(opts).expect("short run");
    let mut resume = options(
        config(
            dataset(),
            &[
                "epochs=2",
                "eval_interval=2",
                "model.hidden_size=32",
                "model.L_layers=2",
            ],
        ),
        &run,
    );
    resume.resume = true;
    let err = train(resume).expect_err("shape change");
    let msg = err.to_string();
    assert!(
        msg.contains("hidden_size") && msg.contains("L_layers"),
        "{msg}"
    );

    // CUDA graphs on the CPU: refused before anything is written, naming the key.
    let err = train(options(
        config(dataset(), &["cuda_graphs=true"]),
        &runs.path().join("r3"),
    ))
    .expect_err("no CUDA graphs on the CPU");
    assert!(
        err.to_string().contains("cuda_graphs") && err.to_string().contains("CUDA device"),
        "{err}"
    );
    assert!(!runs.path().join("r3").exists());

    // Starting a new run over an existing one is refused (nothing is overwritten).
    let err = train(options(
        config(dataset(), &["epochs=2", "eval_interval=2"]),
        &run,
    ))
    .expect_err("existing run");
    assert!(err.to_string().contains("--resume"), "{err}");

    // A truncated checkpoint is a clear error naming the file.
    let latest = hrm_train::checkpoint::latest(&run.join("checkpoints"))
        .expect("latest")
        .expect("exists");
    let weights = latest.join("model.safetensors");
    let bytes = std::fs::read(&weights).expect("read");
    std::fs::write(&weights, &bytes[..bytes.len() / 3]).expect("truncate");
    let mut resume = options(config(dataset(), &["epochs=2", "eval_interval=2"]), &run);
    resume.resume = true;
    let err = train(resume).expect_err("corrupt");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

/// With `cuda_graphs = true` on a GPU: the model learns as the eager one does, with a puzzle
/// embedding (the sign-SGD reads the captured step's gradient), and a stopped run resumes to
/// the end. Needs a GPU: `scripts/gpu_check.py` runs it there (`--ignored`).
#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_graphs_train_and_resume_on_a_gpu() {
    assert!(tch::Cuda::is_available(), "no CUDA device");
    let runs = tempfile::tempdir().expect("tempdir");
    let cfg = config(dataset(), &["cuda_graphs=true", "model.puzzle_emb_ndim=64"]);
    let on_gpu = |cfg: TrainConfig, dir: &Path| TrainOptions::new(cfg, dir, tch::Device::Cuda(0));
    let run_dir = runs.path().join("graphed");
    let summary = train(on_gpu(cfg.clone(), &run_dir)).expect("graphed training runs");
    let first = first_train_loss(&run_dir);
    let last = summary.last_train.expect("train metrics").get("lm_loss");
    assert!(last < 0.7 * first, "loss {first} -> {last}");
    let acc = summary
        .last_eval
        .expect("an evaluation")
        .overall
        .get("accuracy");
    assert!(
        acc > copy_givens_baseline(dataset()) + 0.1,
        "held-out token accuracy {acc}"
    );

    let split = runs.path().join("split");
    let mut half = on_gpu(cfg.clone(), &split);
    half.stop_at_step = Some(summary.steps / 2);
    assert!(train(half).expect("first half").interrupted);
    let mut rest = on_gpu(cfg, &split);
    rest.resume = true;
    let resumed = train(rest).expect("resumed half");
    assert_eq!(resumed.steps, summary.steps);
    let resumed_last = resumed.last_train.expect("train metrics").get("lm_loss");
    assert!(
        resumed_last < 0.7 * first,
        "resumed loss {first} -> {resumed_last}"
    );

    // Without exploration nothing random is drawn, so a graphed run follows the eager one up to
    // the order of atomic additions: stale weight casts, gradients that are not cleared or a
    // carry that does not advance would all part the two.
    let mut same = [
        "cuda_graphs=false",
        "model.puzzle_emb_ndim=64",
        "model.halt_exploration_prob=0.0",
        "model.forward_dtype=float32",
        "epochs=6",
        "eval_interval=6",
    ];
    let eager =
        train(on_gpu(config(dataset(), &same), &runs.path().join("eager"))).expect("eager run");
    same[0] = "cuda_graphs=true";
    let graphed = train(on_gpu(
        config(dataset(), &same),
        &runs.path().join("graphed-same"),
    ))
    .expect("graphed run");
    let (a, b) = (
        eager.last_train.expect("eager metrics"),
        graphed.last_train.expect("graphed metrics"),
    );
    for key in ["lm_loss", "accuracy", "q_halt_loss"] {
        let (x, y) = (a.get(key), b.get(key));
        assert!(
            (x - y).abs() <= 1e-2 * x.abs().max(1e-3),
            "{key}: eager {x}, graphed {y}"
        );
    }
}

#[test]
fn graphed_evaluation_on_the_cpu_is_a_clear_error() {
    use hrm_train::eval::{evaluate, evaluate_sharded, EvalSettings};
    let cfg = config(dataset(), &[]);
    let train_split = hrm_data::Dataset::open(dataset(), "train").expect("train split");
    let test = hrm_data::Dataset::open(dataset(), "test").expect("test split");
    let table = cfg
        .resolved_model(train_split.metadata(), "float32")
        .expect("model table");
    let model =
        hrm_train::arch::build_model(cfg.arch, &table, tch::Device::Cpu).expect("the model");
    let head = hrm_act::LossHead::default();
    let settings = EvalSettings {
        cuda_graphs: true,
        ..EvalSettings::default()
    };
    let err = evaluate_sharded(&model, &test, &head, 32, tch::Device::Cpu, settings)
        .expect_err("no CUDA graphs on the CPU");
    assert!(err.to_string().contains("need a CUDA device"), "{err}");
    // The eager evaluation of the same model runs.
    let report = evaluate(&model, &test, &head, 32, tch::Device::Cpu, false).expect("eager");
    assert_eq!(report.overall.get("count"), 64.0);
}

/// On a GPU, an evaluation through a captured rollout reports what the eager one does. Needs a
/// GPU: `scripts/gpu_check.py` runs it there (`--ignored`).
#[test]
#[ignore = "needs a CUDA GPU"]
fn graphed_evaluation_matches_the_eager_one_on_a_gpu() {
    use hrm_train::eval::{evaluate, evaluate_sharded, EvalSettings};
    assert!(tch::Cuda::is_available(), "no CUDA device");
    let device = tch::Device::Cuda(0);
    let cfg = config(dataset(), &["model.puzzle_emb_ndim=64"]);
    let train_split = hrm_data::Dataset::open(dataset(), "train").expect("train split");
    let test = hrm_data::Dataset::open(dataset(), "test").expect("test split");
    let table = cfg
        .resolved_model(train_split.metadata(), "float32")
        .expect("model table");
    let model =
        hrm_train::seeded::with_seed(0, || hrm_train::arch::build_model(cfg.arch, &table, device))
            .expect("the model");
    let head = hrm_act::LossHead::default();
    let eager = evaluate(&model, &test, &head, 24, device, true).expect("eager");
    let settings = EvalSettings {
        keep_outputs: true,
        cuda_graphs: true,
        ..EvalSettings::default()
    };
    let graphed = evaluate_sharded(&model, &test, &head, 24, device, settings).expect("graphed");
    for key in ["count", "accuracy", "exact_accuracy", "lm_loss", "steps"] {
        let (a, b) = (eager.overall.get(key), graphed.overall.get(key));
        assert!(
            (a - b).abs() <= 1e-5 * a.abs().max(1.0),
            "{key}: eager {a}, graphed {b}"
        );
    }
    let (eager, graphed) = (eager.outputs.expect("kept"), graphed.outputs.expect("kept"));
    assert_eq!(eager.len(), graphed.len());
    for ((set, a), (_, b)) in eager.iter().zip(&graphed) {
        assert_eq!(a.predictions, b.predictions, "{set}: predictions");
        assert_eq!(a.exact, b.exact, "{set}: exactness");
        for (x, y) in a.q_halt_logits.iter().zip(&b.q_halt_logits) {
            assert!(
                (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                "{set}: q_halt {x} vs {y}"
            );
        }
    }
}
