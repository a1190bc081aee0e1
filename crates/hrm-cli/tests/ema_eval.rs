//! A run trained with `ema = true` evaluates its EMA average during training; `hrm eval` on
//! the finished run must use the same weights and so reproduce that evaluation exactly.

use std::path::Path;
use std::process::Command;

use hrm_data::sudoku::{Difficulty, SudokuOptions};
use hrm_train::checkpoint::load_model;
use hrm_train::config::TrainConfig;
use hrm_train::run_dir::{read_metrics, MetricsLine};
use hrm_train::trainer::{train, TrainOptions};
use tch::Device;

fn build_data(dir: &Path) {
    let mut opts = SudokuOptions::new(dir);
    opts.size = 4;
    opts.train = 16;
    opts.test = 24;
    opts.aug = 0;
    opts.difficulty = Difficulty::Easy;
    opts.seed = 11;
    hrm_data::sudoku::build_sudoku(&opts).expect("tiny dataset");
}

#[test]
fn hrm_eval_on_an_ema_run_reproduces_the_training_time_evaluation() {
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("sudoku4");
    build_data(&data);
    let text = format!(
        "arch = \"hrm\"\ndata_path = \"{}\"\nglobal_batch_size = 8\nepochs = 16\n\
         eval_interval = 16\nlr = 3e-3\nweight_decay = 0.01\npuzzle_emb_lr = 1e-2\n\
         puzzle_emb_weight_decay = 0.1\nlr_warmup_steps = 4\nema = true\nema_rate = 0.9\n\
         seed = 5\nlog_interval = 8\n\
         [model]\nH_cycles = 1\nL_cycles = 1\nH_layers = 1\nL_layers = 1\nhidden_size = 32\n\
         num_heads = 2\nexpansion = 2.0\npos_encodings = \"rope\"\npuzzle_emb_ndim = 0\n\
         halt_max_steps = 3\nhalt_exploration_prob = 0.1\n",
        data.display()
    );
    let config = TrainConfig::from_toml_str(&text, &[]).expect("config");
    let run = tmp.path().join("run");
    let summary = train(TrainOptions::new(config, &run, Device::Cpu)).expect("train");
    assert!(summary.steps > 10, "{} steps", summary.steps);

    // The loaded weights are the EMA average, not the live weights of model.safetensors.
    let loaded = load_model(&run, Device::Cpu).expect("load");
    assert!(loaded.ema, "an ema = true run loads its EMA weights");
    let live = hrm_core::weights::read_safetensors(&loaded.checkpoint.join("model.safetensors"))
        .expect("live weights");
    let trainable = loaded.model.params().trainable();
    let differs = trainable.iter().any(|(name, p)| {
        live.iter()
            .find(|(n, _)| n == name)
            .is_some_and(|(_, t)| !t.equal(p))
    });
    assert!(
        differs,
        "the EMA weights differ from the live ones after training"
    );

    let lines = read_metrics(&run.join("metrics.jsonl")).expect("metrics");
    let trained_eval = lines
        .iter()
        .rev()
        .find_map(|l| match l {
            MetricsLine::Eval { overall, .. } => Some(overall.clone()),
            _ => None,
        })
        .expect("an evaluation during training");

    let out = Command::new(env!("CARGO_BIN_EXE_hrm"))
        .args(["eval", run.to_str().expect("utf-8 path")])
        .args(["--device", "cpu", "--batch", "8"])
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("hrm eval runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hrm eval failed: {stderr}");
    assert!(
        stderr.contains("EMA weights"),
        "says it uses the EMA: {stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run.join("report").join("metrics.json")).expect("report"),
    )
    .expect("json");
    for key in [
        "exact_accuracy",
        "accuracy",
        "lm_loss",
        "q_halt_accuracy",
        "steps",
        "count",
    ] {
        let at_eval = report["overall"][key].as_f64().expect(key);
        assert_eq!(
            at_eval,
            trained_eval.get(key),
            "`{key}`: hrm eval {at_eval}, training-time evaluation {}",
            trained_eval.get(key)
        );
    }
}
