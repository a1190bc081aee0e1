//! Inference past the reference, end to end on a tiny 4x4 Sudoku HRM trained here in seconds:
//! continuous batching of learned halting gives every puzzle its one-at-a-time rollout,
//! `--halt max` is the reference evaluation to the bit, test-time step caps run past
//! `halt_max_steps`, and voting over augmentations and runs reports pass@1 and pass@2 with its
//! views undone correctly.
//!
//! The model is trained just long enough (500 steps on 16 puzzles) that its learned halting
//! stops different puzzles at different steps, which is what continuous batching is about.

mod common;
use common::{path_str, read_json};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use tch::Device;

use hrm_act::LossHead;
use hrm_cli::solve::sudoku::{solve_sudoku, SudokuPuzzle};
use hrm_cli::solve::vote::{vote_sudoku, VoteOptions};
use hrm_data::sudoku::{decode_tokens, encode_board, Difficulty, SudokuOptions};
use hrm_data::{Dataset, TaskKind};
use hrm_train::checkpoint::{load_model, LoadedModel};
use hrm_train::config::TrainConfig;
use hrm_train::eval::evaluate;
use hrm_train::eval::vote::draw_views;
use hrm_train::rollout::{
    learned_rule_halts, solve_rows, Batching, HaltMode, RolloutOptions, SolveRun,
};
use hrm_train::trainer::{train, TrainOptions};

/// A trained run and its dataset, kept for the whole test binary.
struct Trained {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    run: PathBuf,
    dir: PathBuf,
}

/// 16 easy 4x4 Sudoku for training, 24 others for testing, an HRM trained for 500 steps.
fn trained() -> &'static Trained {
    static T: OnceLock<Trained> = OnceLock::new();
    T.get_or_init(|| {
        tch::set_num_threads(1);
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("sudoku4");
        let mut opts = SudokuOptions::new(&data);
        opts.size = 4;
        opts.train = 16;
        opts.test = 24;
        opts.aug = 0;
        opts.difficulty = Difficulty::Easy;
        opts.seed = 7;
        hrm_data::sudoku::build_sudoku(&opts).expect("build the tiny dataset");
        let text = format!(
            r#"arch = "hrm"
data_path = "{}"
global_batch_size = 8
epochs = 250
eval_interval = 250
lr = 1e-3
lr_min_ratio = 0.1
lr_warmup_steps = 20
weight_decay = 0.01
puzzle_emb_lr = 1e-2
puzzle_emb_weight_decay = 0.1
seed = 3
log_interval = 100
[model]
H_cycles = 1
L_cycles = 2
H_layers = 1
L_layers = 1
hidden_size = 64
num_heads = 2
expansion = 2.0
pos_encodings = "rope"
halt_exploration_prob = 0.1
puzzle_emb_ndim = 0
halt_max_steps = 4
"#,
            data.display()
        );
        let config = TrainConfig::from_toml_str(&text, &[]).expect("valid test config");
        let run = tmp.path().join("run");
        train(TrainOptions::new(config, &run, Device::Cpu)).expect("training runs");
        Trained {
            dir: tmp.path().to_path_buf(),
            _tmp: tmp,
            data,
            run,
        }
    })
}

fn load(t: &Trained) -> LoadedModel {
    tch::set_num_threads(1);
    load_model(&t.run, Device::Cpu).expect("load the run")
}

/// The inputs and identifiers of every example of a split.
fn split_rows(data: &Path, split: &str) -> (Vec<i32>, Vec<i32>) {
    let ds = Dataset::open(data, split).expect("split");
    let (mut inputs, mut ids) = (Vec::new(), Vec::new());
    for set in ds.sets() {
        for i in 0..set.num_examples() {
            inputs.extend(set.example(i).expect("example").0);
            ids.push(set.puzzle_identifier_of_example(i).expect("id"));
        }
    }
    (inputs, ids)
}

fn puzzles(data: &Path, split: &str) -> Vec<SudokuPuzzle> {
    let (inputs, _) = split_rows(data, split);
    inputs
        .chunks(16)
        .enumerate()
        .map(|(i, x)| SudokuPuzzle {
            source: format!("{split} {i}"),
            board: decode_tokens(x, 4).expect("a 4x4 board"),
        })
        .collect()
}

fn hrm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hrm"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("the hrm binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn learned(batching: Batching) -> RolloutOptions {
    RolloutOptions {
        batching,
        ..RolloutOptions::default()
    }
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-4 + 1e-4 * a.abs().max(b.abs())
}

#[test]
fn continuous_batching_gives_every_puzzle_its_own_rollout() {
    let t = trained();
    let loaded = load(t);
    let model = &loaded.model;
    let (inputs, ids) = split_rows(&t.data, "test");
    let n = ids.len();
    assert_eq!(n, 24);
    let opts = RolloutOptions {
        trace_rows: vec![3],
        ..learned(Batching::Continuous)
    };
    // 5 slots for 24 puzzles: slots are refilled many times, and the tail drains.
    let cont = solve_rows(model, &inputs, &ids, 5, &opts, Device::Cpu).expect("continuous");
    assert_eq!(cont.rows.len(), n);
    let steps: std::collections::BTreeSet<usize> = cont.rows.iter().map(|r| r.halt_step).collect();
    assert!(
        steps.len() >= 2,
        "the fixture must halt puzzles at different steps: {steps:?}"
    );
    // Nobody waits: the compute is the sum of the puzzles' own steps.
    let own: usize = cont.rows.iter().map(|r| r.halt_step).sum();
    assert_eq!(cont.row_steps, own);
    let lock = solve_rows(
        model,
        &inputs,
        &ids,
        5,
        &learned(Batching::Lockstep),
        Device::Cpu,
    )
    .expect("lockstep");
    assert!(
        lock.row_steps > cont.row_steps,
        "lockstep {} vs continuous {}",
        lock.row_steps,
        cont.row_steps
    );

    for (p, row) in cont.rows.iter().enumerate() {
        let alone = solve_rows(
            model,
            &inputs[p * 16..(p + 1) * 16],
            &ids[p..=p],
            1,
            &learned(Batching::Lockstep),
            Device::Cpu,
        )
        .expect("one puzzle");
        let alone = &alone.rows[0];
        assert_eq!(row.prediction, alone.prediction, "puzzle {p}: tokens");
        assert_eq!(row.halt_step, alone.halt_step, "puzzle {p}: steps");
        assert_eq!(row.learned_halt_step, alone.learned_halt_step, "puzzle {p}");
        assert_eq!(row.q_halt_logits.len(), row.halt_step);
        assert_eq!(row.q_halt_logits.len(), alone.q_halt_logits.len());
        for (k, (a, b)) in row
            .q_halt_logits
            .iter()
            .zip(&alone.q_halt_logits)
            .enumerate()
        {
            assert!(
                close(*a, *b),
                "puzzle {p} step {}: q_halt {a} vs {b}",
                k + 1
            );
        }
        for (a, b) in row.q_continue_logits.iter().zip(&alone.q_continue_logits) {
            assert!(close(*a, *b), "puzzle {p}: q_continue {a} vs {b}");
        }
        // The answer is where the learned rule first fires, or at the cap.
        let dims = model.dims();
        let first = row
            .q_halt_logits
            .iter()
            .zip(&row.q_continue_logits)
            .position(|(&h, &c)| learned_rule_halts(dims.halt_rule, h, c))
            .map_or(4, |k| k + 1);
        assert_eq!(row.halt_step, first, "puzzle {p}");
        assert_eq!(row.step_predictions.is_some(), p == 3);
    }
    let traced = cont.rows[3].step_predictions.as_ref().expect("traced");
    assert_eq!(traced.len(), cont.rows[3].halt_step);
    assert_eq!(traced.last(), Some(&cont.rows[3].prediction));

    // The same answers whatever the number of slots.
    for slots in [1, 24, 100] {
        let other = solve_rows(model, &inputs, &ids, slots, &opts, Device::Cpu).expect("slots");
        for (a, b) in other.rows.iter().zip(&cont.rows) {
            assert_eq!((&a.prediction, a.halt_step), (&b.prediction, b.halt_step));
        }
    }
}

#[test]
fn max_halting_is_the_reference_evaluation_bit_for_bit() {
    let t = trained();
    let loaded = load(t);
    let model = &loaded.model;
    let ds = Dataset::open(&t.data, "test").expect("test split");
    let head = LossHead {
        loss_type: loaded.config.loss.loss_type,
        q_loss_weight: loaded.config.loss.q_loss_weight,
    };
    // Batches of 8: 24 examples fill three, so no batch is padded.
    let reference = evaluate(model, &ds, &head, 8, Device::Cpu, true).expect("evaluate");
    let outputs = reference.outputs.expect("kept outputs");
    let out = &outputs["all"];
    let (inputs, ids) = split_rows(&t.data, "test");
    let max = RolloutOptions {
        halt: HaltMode::Max,
        ..RolloutOptions::default()
    };
    let run = solve_rows(model, &inputs, &ids, 8, &max, Device::Cpu).expect("max");
    for (p, row) in run.rows.iter().enumerate() {
        assert_eq!(row.halt_step, 4);
        assert_eq!(
            row.prediction,
            out.predictions[p * 16..(p + 1) * 16],
            "puzzle {p}"
        );
        assert_eq!(
            row.q_halt_logits[3].to_bits(),
            out.q_halt_logits[p].to_bits(),
            "puzzle {p}: the final Q-halt logit, bit for bit"
        );
    }
    // Asking for lockstep batching changes nothing under max halting.
    let lock = solve_rows(
        model,
        &inputs,
        &ids,
        8,
        &RolloutOptions {
            batching: Batching::Lockstep,
            ..max.clone()
        },
        Device::Cpu,
    )
    .expect("lockstep");
    assert_eq!(lock.rows, run.rows);

    // `hrm eval`'s all-steps answers are the reference evaluation's.
    let out_dir = t.dir.join("report-max");
    let o = hrm(&[
        "eval",
        path_str(&t.run),
        "--out",
        path_str(&out_dir),
        "--device",
        "cpu",
        "--batch",
        "8",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let m = read_json(&out_dir.join("metrics.json"));
    let f = |v: &serde_json::Value| v.as_f64().expect("a number");
    assert!(
        (f(&m["max_steps"]["exact_accuracy"]) - f(&m["overall"]["exact_accuracy"])).abs() < 1e-9
    );
    assert!((f(&m["max_steps"]["token_accuracy"]) - f(&m["overall"]["accuracy"])).abs() < 1e-6);
    assert_eq!(m["timing"]["learned_batching"], "continuous");
}

#[test]
fn test_time_steps_run_past_the_trained_cap() {
    let t = trained();
    let loaded = load(t);
    let model = &loaded.model;
    let dims = model.dims();
    let (inputs, ids) = split_rows(&t.data, "test");
    let at = |halt: HaltMode, max_steps: Option<usize>| {
        solve_rows(
            model,
            &inputs,
            &ids,
            24,
            &RolloutOptions {
                halt,
                max_steps,
                ..RolloutOptions::default()
            },
            Device::Cpu,
        )
        .expect("rollout")
    };
    let trained_cap = at(HaltMode::Max, None);
    let seven = at(HaltMode::Max, Some(7));
    let two = at(HaltMode::Max, Some(2));
    for ((a, b), c) in seven.rows.iter().zip(&trained_cap.rows).zip(&two.rows) {
        assert_eq!(a.halt_step, 7);
        assert_eq!(a.q_halt_logits.len(), 7);
        assert_eq!(c.halt_step, 2);
        // The first steps are the same calls, so the same bits.
        let bits = |v: &[f32]| v.iter().map(|q| q.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.q_halt_logits[..4]), bits(&b.q_halt_logits));
        assert_eq!(bits(&b.q_halt_logits[..2]), bits(&c.q_halt_logits));
    }
    // Learned halting with a cap of 7: the first step where the rule fires, else 7.
    let learned7: SolveRun = at(HaltMode::Learned, Some(7));
    for (l, m) in learned7.rows.iter().zip(&seven.rows) {
        let first = m
            .q_halt_logits
            .iter()
            .zip(&m.q_continue_logits)
            .position(|(&h, &c)| learned_rule_halts(dims.halt_rule, h, c))
            .map_or(7, |k| k + 1);
        assert_eq!(l.halt_step, first);
        assert_eq!(m.learned_halt_step, first);
    }

    // The command line: `--max-steps 7` runs 7 steps under `--halt max`.
    let puzzle = puzzles(&t.data, "test")[0].board.to_line();
    let o = hrm(&[
        "solve",
        "sudoku",
        &puzzle,
        "--run",
        path_str(&t.run),
        "--device",
        "cpu",
        "--halt",
        "max",
        "--max-steps",
        "7",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let answer: serde_json::Value =
        serde_json::from_str(text(&o.stdout).lines().next().expect("a line")).expect("json");
    assert_eq!(answer["steps"], 7);
    assert_eq!(answer["q_halt"].as_array().map(Vec::len), Some(7));
    let o = hrm(&[
        "solve",
        "sudoku",
        &puzzle,
        "--run",
        path_str(&t.run),
        "--max-steps",
        "0",
    ]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("--max-steps must be at least 1"));

    // `hrm eval --steps-sweep`: one point per cap, the trained cap agreeing with the report.
    let out_dir = t.dir.join("report-sweep");
    let o = hrm(&[
        "eval",
        path_str(&t.run),
        "--out",
        path_str(&out_dir),
        "--device",
        "cpu",
        "--steps-sweep",
        "1,2,4,8",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("exact by step cap"),
        "{}",
        text(&o.stdout)
    );
    let sweep = read_json(&out_dir.join("steps_sweep.json"));
    assert_eq!(sweep["halt_max_steps"], 4);
    let points = sweep["points"].as_array().expect("points");
    let caps: Vec<u64> = points.iter().filter_map(|p| p["steps"].as_u64()).collect();
    assert_eq!(caps, vec![1, 2, 4, 8]);
    let m = read_json(&out_dir.join("metrics.json"));
    assert_eq!(points[2]["exact_max"], m["max_steps"]["exact_accuracy"]);
    assert_eq!(
        points[2]["exact_learned"],
        m["learned_halting"]["exact_accuracy"]
    );
    assert_eq!(
        points[2]["mean_steps_learned"]
            .as_f64()
            .map(|x| (x * 1e6).round()),
        m["learned_halting"]["mean_steps"]
            .as_f64()
            .map(|x| (x * 1e6).round())
    );
    assert!(points[3]["mean_steps_learned"].as_f64() >= points[2]["mean_steps_learned"].as_f64());
    let png = std::fs::read(out_dir.join("steps_sweep.png")).expect("png");
    assert!(png.starts_with(b"\x89PNG"));
}

#[test]
fn voting_reports_pass_at_k_and_undoes_its_views() {
    let t = trained();
    let loaded = load(t);
    let model = &loaded.model;
    let test = puzzles(&t.data, "test");
    let opts = RolloutOptions::default();

    // One view of one model is plain solving.
    let (plain, _) = solve_sudoku(model, &test, 256, &opts, Device::Cpu).expect("solve");
    let one = VoteOptions { views: 1, seed: 0 };
    let (single, _) = vote_sudoku(&[model], &test, one, 256, &opts, Device::Cpu).expect("one");
    for (v, a) in single.iter().zip(&plain) {
        assert_eq!(v.attempts[0].answer, a.solution);
        assert_eq!(v.pass_at(1), a.verdict.solved());
        assert_eq!(v.attempts.len(), 1);
    }

    // Four views: votes add up, pass@2 is at least pass@1.
    let four = VoteOptions { views: 4, seed: 5 };
    let (voted, run) = vote_sudoku(&[model], &test, four, 7, &opts, Device::Cpu).expect("vote");
    for v in &voted {
        assert_eq!(v.views, 4);
        assert!(v.attempts.iter().map(|a| a.votes).sum::<usize>() <= 4);
        assert!(v.pass_at(2) >= v.pass_at(1));
        assert!(v.candidates >= v.attempts.len());
    }
    // The views are undone right: the model keeps the givens of what it sees, so every view's
    // answer mapped back keeps the original puzzle's givens (a wrong undo scrambles them).
    let rows = &run.runs[0].rows;
    let (mut kept, mut givens) = (0usize, 0usize);
    for (p, puzzle) in test.iter().enumerate() {
        let views = draw_views(TaskKind::Sudoku { size: 4 }, 11, 4, 5, p as u64).expect("views");
        let input = encode_board(&puzzle.board);
        for (v, view) in views.iter().enumerate() {
            let back = view.invert(&rows[p * 4 + v].prediction);
            for (x, y) in input.iter().zip(&back) {
                if *x >= 2 {
                    givens += 1;
                    kept += usize::from(x == y);
                }
            }
        }
    }
    assert!(
        kept as f64 >= 0.95 * givens as f64,
        "{kept} of {givens} givens kept after undoing the views"
    );

    // Two runs of the same model: every answer gets twice the votes, at the same confidence.
    let (twice, _) =
        vote_sudoku(&[model, model], &test, four, 7, &opts, Device::Cpu).expect("two runs");
    for (a, b) in twice.iter().zip(&voted) {
        assert_eq!(a.views, 8);
        for (x, y) in a.attempts.iter().zip(&b.attempts) {
            assert_eq!(x.answer, y.answer);
            assert_eq!(x.votes, 2 * y.votes);
            assert!((x.mean_confidence - y.mean_confidence).abs() < 1e-9);
        }
    }

    // The command line, with two --run and --vote 3.
    let file = t.dir.join("vote.txt");
    let lines: Vec<String> = test.iter().take(5).map(|p| p.board.to_line()).collect();
    std::fs::write(&file, lines.join("\n")).expect("write");
    let o = hrm(&[
        "solve",
        "sudoku",
        "--file",
        path_str(&file),
        "--run",
        path_str(&t.run),
        "--run",
        path_str(&t.run),
        "--vote",
        "3",
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    let objects: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(objects.len(), 5);
    for o in &objects {
        assert_eq!(o["views"], 6);
        assert!(o["pass_at_1"].is_boolean() && o["pass_at_2"].is_boolean());
        for a in o["attempts"].as_array().expect("attempts") {
            assert_eq!(a["votes"].as_u64().map(|v| v % 2), Some(0));
        }
    }
    let stderr = text(&o.stderr);
    assert!(
        stderr.contains("pass@1") && stderr.contains("pass@2"),
        "{stderr}"
    );
    // ARC votes over its dataset's own views: --vote is refused there.
    let o = hrm(&[
        "solve",
        "arc",
        path_str(&file),
        "--run",
        path_str(&t.run),
        "--vote",
        "2",
    ]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("--vote is for Sudoku and mazes"));

    // `hrm eval RUN RUN --vote 2`: the vote in the report; its single view is learned halting.
    let out_dir = t.dir.join("report-vote");
    let o = hrm(&[
        "eval",
        path_str(&t.run),
        path_str(&t.run),
        "--out",
        path_str(&out_dir),
        "--device",
        "cpu",
        "--vote",
        "2",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("voting (2 views x 2 run(s)"),
        "{}",
        text(&o.stdout)
    );
    let m = read_json(&out_dir.join("metrics.json"));
    assert_eq!(m["vote"]["views"], 2);
    assert_eq!(m["vote"]["runs"].as_array().map(Vec::len), Some(2));
    assert_eq!(m["vote"]["count"], 24);
    assert_eq!(
        m["vote"]["single_view_exact"],
        m["learned_halting"]["exact_accuracy"]
    );
    assert!(m["vote"]["pass_at_2"].as_f64() >= m["vote"]["pass_at_1"].as_f64());
}
