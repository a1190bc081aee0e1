//! `hrm solve`, reasoning traces and `hrm eval` end to end, on tiny models trained here in
//! seconds (no weights are shipped): a 4x4 Sudoku model that memorises its 8 training puzzles,
//! and barely trained maze and ARC models that exercise the plumbing of those families.
//!
//! The library is tested directly and through the built `hrm` binary (exit status, stdout,
//! stderr), since people use the binary.

mod common;
use common::{path_str, read_json};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use tch::Device;

use hrm_cli::report::{write_report, ReportOptions};
use hrm_cli::solve::arc::{read_arc_identifiers, solve_arc_task};
use hrm_cli::solve::sudoku::{parse_argument, solve_sudoku, SudokuPuzzle};
use hrm_data::sudoku::{decode_tokens, Difficulty, SudokuOptions};
use hrm_data::{DataError, Dataset};
use hrm_train::checkpoint::load_model;
use hrm_train::config::TrainConfig;
use hrm_train::rollout::{Batching, HaltMode, RolloutOptions};
use hrm_train::trainer::{train, TrainOptions};
use hrm_train::TrainError;

/// A trained run and its dataset, kept for the whole test binary.
struct Trained {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    run: PathBuf,
    dir: PathBuf,
}

/// One intra-op thread: the tests run side by side on a 2-core machine, where libtorch's
/// default of one thread per core makes the threads of parallel tests fight over the cores.
fn single_thread() {
    tch::set_num_threads(1);
}

impl Trained {
    /// Trains a run in `tmp/run` on `data` with the shared optimiser settings and `body` (the
    /// other top-level keys, then the `[model]` table).
    fn train(tmp: tempfile::TempDir, data: PathBuf, body: &str) -> Trained {
        let text = format!(
            "data_path = \"{}\"\n\
             lr = 1e-3\nweight_decay = 0.01\npuzzle_emb_lr = 1e-2\npuzzle_emb_weight_decay = 0.1\n\
             {body}",
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
    }
}

const TINY_HRM: &str = r#"
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
"#;

/// 8 easy 4x4 Sudoku (8 givens each) for training, 16 others for testing, and an HRM trained
/// on the 8 for 1000 steps of the whole set: it memorises them (training loss about 0.04).
fn sudoku() -> &'static Trained {
    static T: OnceLock<Trained> = OnceLock::new();
    T.get_or_init(|| {
        single_thread();
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("sudoku4");
        let mut opts = SudokuOptions::new(&data);
        opts.size = 4;
        opts.train = 8;
        opts.test = 16;
        opts.aug = 0;
        opts.difficulty = Difficulty::Easy;
        opts.seed = 7;
        hrm_data::sudoku::build_sudoku(&opts).expect("build the tiny dataset");
        let body = format!(
            r#"arch = "hrm"
global_batch_size = 8
epochs = 1000
eval_interval = 1000
lr_min_ratio = 0.1
lr_warmup_steps = 20
seed = 3
log_interval = 100
{TINY_HRM}
puzzle_emb_ndim = 0
halt_max_steps = 4
"#
        );
        Trained::train(tmp, data, &body)
    })
}

/// The training puzzles of the Sudoku dataset, as the model saw them.
fn training_puzzles(data: &Path) -> Vec<SudokuPuzzle> {
    let ds = Dataset::open(data, "train").expect("train split");
    let set = &ds.sets()[0];
    (0..set.num_examples())
        .map(|i| {
            let (inputs, _) = set.example(i).expect("example");
            SudokuPuzzle {
                source: format!("train {i}"),
                board: decode_tokens(&inputs, 4).expect("a 4x4 board"),
            }
        })
        .collect()
}

/// Runs the built `hrm` binary with one intra-op thread.
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

/// `(width, height)` from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).expect("PNG written");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is a PNG",
        path.display()
    );
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (be(16), be(20))
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn the_model_solves_the_puzzles_it_was_trained_on() {
    let t = sudoku();
    single_thread();
    let loaded = load_model(&t.run, Device::Cpu).expect("load the run");
    let puzzles = training_puzzles(&t.data);
    assert_eq!(puzzles.len(), 8);
    let (answers, run) = solve_sudoku(
        &loaded.model,
        &puzzles,
        256,
        &RolloutOptions::default(),
        Device::Cpu,
    )
    .expect("solve");
    // All eight puzzles go through the model in one batch.
    assert_eq!(run.batch_sizes, vec![8]);
    let solved = answers.iter().filter(|a| a.verdict.solved()).count();
    // The model memorises 8 puzzles (1000 steps, final training loss about 0.04) and solves
    // all of them in our runs; 7 of 8 leaves room for libtorch builds whose kernels round
    // differently, without letting a model that merely copies the givens pass (it solves none).
    assert!(solved >= 7, "solved {solved} of 8 training puzzles");
    for a in &answers {
        assert!((1..=4).contains(&a.row.halt_step));
        let q = a.row.q_halt_probs();
        assert_eq!(q.len(), a.row.halt_step, "one Q-halt probability per step");
        assert!(q.iter().all(|p| (0.0..=1.0).contains(p)));
    }

    // Rows never interact: one puzzle at a time gives the same answers.
    let (single, run1) = solve_sudoku(
        &loaded.model,
        &puzzles,
        1,
        &RolloutOptions::default(),
        Device::Cpu,
    )
    .expect("solve one by one");
    // Learned halting batches continuously: one slot, the eight puzzles one after another.
    assert_eq!(run1.batch_sizes, vec![8]);
    assert_eq!(
        run1.row_steps,
        single.iter().map(|a| a.row.halt_step).sum::<usize>()
    );
    for (a, b) in answers.iter().zip(&single) {
        assert_eq!(a.solution, b.solution, "{}", a.puzzle.source);
    }

    // Under `max` every puzzle runs all 4 steps; the learned step is still reported.
    let (max, _) = solve_sudoku(
        &loaded.model,
        &puzzles,
        256,
        &RolloutOptions {
            halt: HaltMode::Max,
            ..RolloutOptions::default()
        },
        Device::Cpu,
    )
    .expect("solve with max halting");
    for (m, l) in max.iter().zip(&answers) {
        assert_eq!(m.row.halt_step, 4);
        assert_eq!(m.row.learned_halt_step, l.row.halt_step);
    }
}

#[test]
fn the_binary_solves_puzzles_and_prints_json() {
    let t = sudoku();
    let puzzles = training_puzzles(&t.data);
    let run = path_str(&t.run);
    let line = puzzles[0].board.to_line();
    let out = hrm(&[
        "solve", "sudoku", &line, "--run", run, "--device", "cpu", "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let objs = json_lines(&out);
    assert_eq!(objs.len(), 1);
    let o = &objs[0];
    assert_eq!(o["puzzle"], line.as_str());
    let steps = o["steps"].as_u64().expect("steps") as usize;
    assert_eq!(o["q_halt"].as_array().map(Vec::len), Some(steps));
    assert_eq!(o["solution"].as_str().map(str::len), Some(16));

    // Text output: the grid, the verdict, the steps, the time.
    let out = hrm(&["solve", "sudoku", &line, "--run", run, "--device", "cpu"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for needle in [
        "verdict: ",
        "ACT steps: ",
        "sigmoid(q_halt) per step",
        "time: ",
    ] {
        assert!(stdout.contains(needle), "{needle:?} in\n{stdout}");
    }

    // A file of all eight, in batches of 3.
    let file = t.dir.join("train-puzzles.txt");
    let lines: Vec<String> = puzzles.iter().map(|p| p.board.to_line()).collect();
    std::fs::write(&file, format!("# training puzzles\n{}\n", lines.join("\n"))).expect("write");
    let out = hrm(&[
        "solve",
        "sudoku",
        "--file",
        path_str(&file),
        "--run",
        run,
        "--device",
        "cpu",
        "--json",
        "--batch",
        "3",
        // Lockstep batches, so each answer reports the batch it ran in (a continuous run is
        // one batch of all puzzles).
        "--batching",
        "lockstep",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let objs = json_lines(&out);
    assert_eq!(objs.len(), 8);
    let sizes: Vec<u64> = objs
        .iter()
        .filter_map(|o| o["batch_size"].as_u64())
        .collect();
    assert_eq!(sizes, vec![3, 3, 3, 3, 3, 3, 2, 2]);
    let solved = objs.iter().filter(|o| o["solved"] == true).count();
    assert!(solved >= 7, "solved {solved} of 8 (see the library test)");
    assert!(text(&out.stderr).contains(&format!("solved {solved} of 8 puzzles")));
}

#[test]
fn malformed_puzzles_say_what_is_wrong_and_exit_non_zero() {
    let t = sudoku();
    let run = path_str(&t.run);
    let cases = [
        (
            "1.3...1..1.....",
            "puzzle has 15 cells, expected 81 (9x9), 36 (6x6) or 16 (4x4)",
        ),
        ("11..............", "digit 1 appears twice in row 1"),
        (
            "1.3x............",
            "puzzle character 'x' at position 4 (1-based) is not one of 1-9, 0 or . (blank)",
        ),
    ];
    // The library's typed errors.
    let err = parse_argument(cases[0].0).expect_err("short");
    assert!(
        matches!(
            err,
            TrainError::Data(DataError::PuzzleLength { found: 15, .. })
        ),
        "{err:?}"
    );
    let err = parse_argument(cases[1].0).expect_err("repeat");
    assert!(
        matches!(&err, TrainError::Data(DataError::PuzzleConflict { digit: 1, unit }) if unit == "row 1"),
        "{err:?}"
    );
    let err = parse_argument(cases[2].0).expect_err("character");
    assert!(
        matches!(
            err,
            TrainError::Data(DataError::PuzzleChar {
                position: 4,
                found: 'x',
                ..
            })
        ),
        "{err:?}"
    );
    for (puzzle, message) in cases {
        assert_eq!(
            parse_argument(puzzle).expect_err(puzzle).to_string(),
            message
        );
        // The binary: a non-zero exit and the message on stderr, never a panic.
        let out = hrm(&["solve", "sudoku", puzzle, "--run", run, "--device", "cpu"]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{puzzle} accepted");
        assert!(stderr.contains(message), "{puzzle}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(out.stdout.is_empty());
    }

    // A bad line in a file is named by its line number.
    let file = t.dir.join("bad-puzzles.txt");
    std::fs::write(&file, "1.3...1..1.....1\n\n2...2...........\n").expect("write");
    let out = hrm(&["solve", "sudoku", "--file", path_str(&file), "--run", run]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad-puzzles.txt:3: digit 2 appears twice in column 1"),
        "{stderr}"
    );

    // A valid 9x9 puzzle does not fit the 4x4 model: the key and both sizes are named.
    let nine = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79";
    let loaded = load_model(&t.run, Device::Cpu).expect("load");
    let p = parse_argument(nine).expect("a valid 9x9 puzzle");
    let err = solve_sudoku(
        &loaded.model,
        &[p],
        1,
        &RolloutOptions::default(),
        Device::Cpu,
    )
    .expect_err("9x9 on a 4x4 model");
    assert!(
        matches!(&err, TrainError::Config { key, .. } if key == "seq_len"),
        "{err:?}"
    );
    let out = hrm(&["solve", "sudoku", nine, "--run", run, "--device", "cpu"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("sudoku 4x4") && stderr.contains("sudoku 9x9"),
        "{stderr}"
    );

    // A run directory without a checkpoint.
    let out = hrm(&[
        "solve",
        "sudoku",
        &"0".repeat(16),
        "--run",
        path_str(&t.dir),
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("neither a checkpoint directory") && stderr.contains("nor a run directory"),
        "{stderr}"
    );
}

#[test]
fn a_trace_shows_every_step_as_png_and_json() {
    let t = sudoku();
    let puzzles = training_puzzles(&t.data);
    let run = path_str(&t.run);
    let line = puzzles[1].board.to_line();
    let png = t.dir.join("trace-max.png");
    let json = t.dir.join("trace-max.json");
    let out = hrm(&[
        "solve",
        "sudoku",
        &line,
        "--run",
        run,
        "--device",
        "cpu",
        "--halt",
        "max",
        "--json",
        "--trace",
        path_str(&png),
        "--trace-json",
        path_str(&json),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer = &json_lines(&out)[0];
    let (w, h) = png_size(&png);
    // The input and 4 steps side by side, each at least a 4x4 board of 28-pixel cells.
    assert!(w >= 5 * (4 * 28 + 3) && h >= 4 * 28 + 3, "{w}x{h}");
    assert!(std::fs::metadata(&png).expect("png").len() > 2_000);
    let trace: serde_json::Value = read_json(&json);
    let steps = trace["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 4, "--halt max runs halt_max_steps = 4 steps");
    assert_eq!(trace["halt_step"], 4);
    assert_eq!(trace["learned_halt_step"], answer["learned_halt_step"]);
    let input: Vec<i64> = trace["input"]
        .as_array()
        .expect("input")
        .iter()
        .filter_map(|v| v.as_i64())
        .collect();
    let mut previous = input.clone();
    for (k, s) in steps.iter().enumerate() {
        assert_eq!(s["step"], k + 1);
        let tokens: Vec<i64> = s["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .filter_map(|v| v.as_i64())
            .collect();
        assert_eq!(tokens.len(), 16);
        let changed: Vec<usize> = s["changed"]
            .as_array()
            .expect("changed")
            .iter()
            .filter_map(|v| v.as_u64().map(|x| x as usize))
            .collect();
        let expected: Vec<usize> = (0..16).filter(|&i| tokens[i] != previous[i]).collect();
        assert_eq!(changed, expected, "step {}", k + 1);
        for q in ["q_halt", "q_continue"] {
            let p = s[q].as_f64().expect("a probability");
            assert!((0.0..=1.0).contains(&p), "{q} {p}");
        }
        previous = tokens;
    }
    if answer["solved"] == true {
        // A solved board keeps its givens, so step 1 changes exactly the 8 blanks.
        let blanks: Vec<usize> = (0..16).filter(|&i| input[i] == 1).collect();
        let first: Vec<usize> = steps[0]["changed"]
            .as_array()
            .expect("changed")
            .iter()
            .filter_map(|v| v.as_u64().map(|x| x as usize))
            .collect();
        assert_eq!(first, blanks);
    }

    // Under learned halting the trace stops where the answer was taken.
    let json2 = t.dir.join("trace-learned.json");
    let out = hrm(&[
        "solve",
        "sudoku",
        &line,
        "--run",
        run,
        "--device",
        "cpu",
        "--json",
        "--trace-json",
        path_str(&json2),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer = &json_lines(&out)[0];
    let trace: serde_json::Value = read_json(&json2);
    assert_eq!(
        trace["steps"].as_array().map(Vec::len),
        answer["steps"].as_u64().map(|s| s as usize)
    );
}

#[test]
fn an_evaluation_report_has_metrics_charts_and_failures() {
    let t = sudoku();
    let out_dir = t.dir.join("report");
    let out = hrm(&[
        "eval",
        path_str(&t.run),
        "--data",
        path_str(&t.data),
        "--out",
        path_str(&out_dir),
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("16 examples (sudoku 4x4)")
            && stdout.contains("learned halting (at most 4 steps, continuous batching): exact"),
        "{stdout}"
    );
    let metrics: serde_json::Value = read_json(&out_dir.join("metrics.json"));
    assert_eq!(metrics["split"], "test");
    assert_eq!(metrics["examples"], 16);
    assert_eq!(metrics["sets"]["all"]["count"], 16.0);
    assert!(metrics["sets"]["all"]["exact_accuracy"].is_f64());
    let hist = metrics["steps_histogram"].as_array().expect("histogram");
    assert_eq!(hist.len(), 4, "bins 1..=halt_max_steps");
    let total: u64 = hist.iter().filter_map(|b| b["count"].as_u64()).sum();
    assert_eq!(total, 16, "the histogram counts every example once");
    assert_eq!(png_size(&out_dir.join("steps_histogram.png")), (640, 420));
    let by_blanks: serde_json::Value = read_json(&out_dir.join("accuracy_by_blanks.json"));
    let buckets = by_blanks["buckets"].as_array().expect("buckets");
    assert_eq!(
        buckets
            .iter()
            .filter_map(|b| b["count"].as_u64())
            .sum::<u64>(),
        16
    );
    // Easy 4x4 puzzles have 8 givens, so 8 blanks each.
    assert_eq!(
        (buckets[0]["lo"].as_u64(), buckets[0]["hi"].as_u64()),
        (Some(8), Some(8))
    );
    assert_eq!(
        png_size(&out_dir.join("accuracy_by_blanks.png")),
        (720, 440)
    );
    // The memorising model fails on unseen puzzles: the gallery shows some.
    assert!(metrics["failures"].as_u64().expect("failures") > 0);
    let (w, h) = png_size(&out_dir.join("failures.png"));
    assert!(w > 3 * (4 * 28 + 3) && h > 4 * 28, "{w}x{h}");

    // The library on the training split agrees with solving: learned halting solves them.
    single_thread();
    let loaded = load_model(&t.run, Device::Cpu).expect("load");
    let report = write_report(
        &[&loaded],
        &t.data,
        &ReportOptions {
            split: "train".into(),
            batch_size: 5,
            gallery: 2,
            ..ReportOptions::new(t.dir.join("report-train"), Device::Cpu)
        },
    )
    .expect("report on the training split");
    assert_eq!(report.examples, 8);
    assert_eq!(report.steps_histogram.iter().map(|b| b.1).sum::<u64>(), 8);
    assert!(
        report.learned.exact_accuracy >= 7.0 / 8.0,
        "{:?}",
        report.learned
    );
    assert!(report.summary().contains("steps used"));
}

#[test]
fn bench_flag_reports_puzzles_per_second_for_one_and_a_batch() {
    let t = sudoku();
    let file = t.dir.join("bench-puzzles.txt");
    let lines: Vec<String> = training_puzzles(&t.data)
        .iter()
        .map(|p| p.board.to_line())
        .collect();
    std::fs::write(&file, lines.join("\n")).expect("write");
    let out = hrm(&[
        "solve",
        "sudoku",
        "--file",
        path_str(&file),
        "--run",
        path_str(&t.run),
        "--device",
        "cpu",
        "--bench",
        "--batch",
        "256",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let rate = |prefix: &str| -> f64 {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{prefix:?} in\n{stdout}"))
    };
    assert!(rate("batch 1:") > 0.0);
    assert!(rate("batch 256:") > 0.0);
    assert!(stdout.contains("(256 puzzles"), "{stdout}");
}

/// Mazes of side 8 and an HRM trained for a few steps: enough to run the pipeline.
fn maze() -> &'static Trained {
    static T: OnceLock<Trained> = OnceLock::new();
    T.get_or_init(|| {
        single_thread();
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("maze8");
        let mut opts = hrm_data::MazeOptions::new(&data);
        opts.size = 8;
        opts.train = 16;
        opts.test = 4;
        opts.min_path = 6;
        opts.seed = 1;
        hrm_data::build_maze(&opts).expect("build mazes");
        let body = format!(
            r#"arch = "hrm"
global_batch_size = 8
epochs = 2
{TINY_HRM}
puzzle_emb_ndim = 0
halt_max_steps = 3
"#
        );
        Trained::train(tmp, data, &body)
    })
}

#[test]
fn mazes_are_solved_checked_and_traced() {
    let t = maze();
    let ds = Dataset::open(&t.data, "test").expect("test split");
    let (_, label) = ds.sets()[0].example(0).expect("example");
    let solved = hrm_data::maze::decode_tokens(&label, 8, 8).expect("label maze");
    // The file marks the shortest path: the input drops it, the answer is compared with it.
    let file = t.dir.join("maze.txt");
    std::fs::write(&file, solved.to_text()).expect("write");
    let png = t.dir.join("maze-trace.png");
    let out = hrm(&[
        "solve",
        "maze",
        path_str(&file),
        "--run",
        path_str(&t.run),
        "--device",
        "cpu",
        "--json",
        "--halt",
        "max",
        "--trace",
        path_str(&png),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let o = &json_lines(&out)[0];
    assert_eq!(o["steps"], 3);
    let rows = o["prediction"].as_array().expect("prediction rows");
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r.as_str().map(str::len) == Some(8)));
    assert!(o["matches_given"].is_boolean());
    assert_eq!(
        o["optimal_length"].as_u64(),
        Some(solved.cells().iter().filter(|&&c| c == b'o').count() as u64 + 1)
    );
    if o["matches_given"] == true {
        assert!(o["valid_path"] == true && o["shortest"] == true);
    }
    let (w, _) = png_size(&png);
    assert!(w >= 4 * (8 * 13 + 1), "input and 3 steps: {w}");

    // A maze is not a Sudoku: the Sudoku model says so.
    let out = hrm(&[
        "solve",
        "maze",
        path_str(&file),
        "--run",
        path_str(&sudoku().run),
        "--device",
        "cpu",
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("trained on sudoku 4x4 puzzles") && stderr.contains("maze 8x8"),
        "{stderr}"
    );
    // A character outside `# SGo` is named by line and column.
    std::fs::write(&file, "#S#\n#xG\n").expect("write");
    let out = hrm(&["solve", "maze", path_str(&file), "--run", path_str(&t.run)]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("maze.txt:2:2:"),
        "{}",
        text(&out.stderr)
    );
}

/// Two ARC tasks built into a dataset with 3 augmentations each, and an HRM with a puzzle
/// embedding trained for a few steps.
fn arc() -> &'static Trained {
    static T: OnceLock<Trained> = OnceLock::new();
    T.get_or_init(|| {
        single_thread();
        let tmp = tempfile::tempdir().expect("tempdir");
        let tasks = tmp.path().join("tasks");
        std::fs::create_dir_all(&tasks).expect("mkdir");
        std::fs::write(
            tasks.join("aaa.json"),
            r#"{"train": [{"input": [[1, 0], [0, 2]], "output": [[2, 0], [0, 1]]}], "test": [{"input": [[4, 0, 5]], "output": [[5, 0, 4]]}]}"#,
        )
        .expect("write");
        std::fs::write(
            tasks.join("bbb.json"),
            r#"{"train": [{"input": [[0, 0, 1]], "output": [[1], [0], [0]]}], "test": [{"input": [[6, 7]], "output": [[7], [6]]}, {"input": [[0]], "output": [[0]]}]}"#,
        )
        .expect("write");
        let data = tmp.path().join("arc");
        let opts = hrm_data::ArcOptions {
            from: Some(tasks),
            aug: 3,
            seed: 1,
            ..hrm_data::ArcOptions::new(&data)
        };
        hrm_data::build_arc(&opts).expect("build ARC");
        let body = format!(
            r#"arch = "hrm"
global_batch_size = 2
epochs = 2
{TINY_HRM}
puzzle_emb_ndim = 64
halt_max_steps = 2
"#
        );
        Trained::train(tmp, data, &body)
    })
}

#[test]
fn arc_tasks_vote_over_their_views_and_unknown_tasks_are_flagged() {
    let t = arc();
    single_thread();
    let loaded = load_model(&t.run, Device::Cpu).expect("load");
    let ids = read_arc_identifiers(&t.data, &loaded.model).expect("identifiers");
    let task = hrm_data::arc::load_tasks(&t.dir.join("tasks").join("bbb.json"))
        .expect("task")
        .remove(0);
    let (answer, run) = solve_arc_task(
        &loaded.model,
        &task,
        &ids,
        3,
        &RolloutOptions {
            batching: Batching::Lockstep,
            ..RolloutOptions::default()
        },
        Device::Cpu,
    )
    .expect("solve");
    assert!(answer.known_to_model);
    // Two test inputs, each seen as the original and 3 augmentations, in batches of 3.
    assert_eq!(answer.views.len(), 8);
    assert_eq!(run.batch_sizes, vec![3, 3, 2]);
    assert_eq!(answer.tests.len(), 2);
    for test in &answer.tests {
        assert_eq!(test.views, 4);
        assert!(test.voting_views <= 4);
        assert_eq!(
            test.candidates.iter().map(|c| c.votes).sum::<usize>(),
            test.voting_views
        );
        assert_eq!(
            test.top_correct().map(|v| v.len()),
            Some(test.candidates.len().min(2))
        );
    }

    // A task the dataset does not know: a warning that explains, and the blank identifier.
    let unknown = t.dir.join("ccc.json");
    std::fs::write(
        &unknown,
        r#"{"train": [{"input": [[1, 1]], "output": [[1, 1]]}], "test": [{"input": [[2, 2]], "output": [[2, 2]]}]}"#,
    )
    .expect("write");
    let out = hrm(&[
        "solve",
        "arc",
        path_str(&unknown),
        "--run",
        path_str(&t.run),
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: task ccc is not in the model's dataset")
            && stderr.contains("blank identifier 0"),
        "{stderr}"
    );
    let o = &json_lines(&out)[0];
    assert_eq!(o["known_to_model"], false);
    assert_eq!(o["tests"][0]["views"], 8, "the 8 dihedral views");

    // Without the dataset's identifiers the views cannot be built: a clear error.
    let out = hrm(&[
        "solve",
        "arc",
        path_str(&unknown),
        "--run",
        path_str(&t.run),
        "--data",
        path_str(&t.dir.join("nowhere")),
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("identifiers.json") && stderr.contains("--data DIR"),
        "{stderr}"
    );

    // The evaluation report of an ARC dataset has pass@k and a submission.
    let out_dir = t.dir.join("report");
    let out = hrm(&[
        "eval",
        path_str(&t.run),
        "--out",
        path_str(&out_dir),
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let metrics: serde_json::Value = read_json(&out_dir.join("metrics.json"));
    assert_eq!(metrics["arc"]["tasks"], 2);
    assert!(metrics["arc"]["pass_at_2"].is_f64());
    let submission: serde_json::Value = read_json(&out_dir.join("submission.json"));
    assert_eq!(submission["bbb"].as_array().map(Vec::len), Some(2));
    assert!(submission["aaa"][0]["attempt_1"].is_array());
    // Learned halting votes too; two runs vote together over the dataset's views.
    assert!(metrics["arc_learned"]["pass_at_2"].is_f64());
    let out_dir = t.dir.join("report-two-runs");
    let out = hrm(&[
        "eval",
        path_str(&t.run),
        path_str(&t.run),
        "--out",
        path_str(&out_dir),
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let two: serde_json::Value = read_json(&out_dir.join("metrics.json"));
    assert_eq!(two["vote"]["count"], 2, "two tasks");
    assert_eq!(two["vote"]["runs"].as_array().map(Vec::len), Some(2));
    // The same model twice votes as it does once.
    assert_eq!(two["vote"]["pass_at_1"], metrics["arc"]["pass_at_1"]);
    assert_eq!(two["vote"]["pass_at_2"], metrics["arc"]["pass_at_2"]);
}

/// A GRU baseline (no ACT, no Q head) trained for a few steps on the Sudoku data.
fn gru() -> &'static Trained {
    static T: OnceLock<Trained> = OnceLock::new();
    T.get_or_init(|| {
        single_thread();
        let s = sudoku();
        let tmp = tempfile::tempdir().expect("tempdir");
        let body = r#"arch = "gru"
global_batch_size = 8
epochs = 3
[model]
hidden_size = 32
num_layers = 1
puzzle_emb_ndim = 0
"#;
        Trained::train(tmp, s.data.clone(), body)
    })
}

#[test]
fn baselines_answer_in_one_step_without_q_values() {
    let t = gru();
    let line = training_puzzles(&t.data)[0].board.to_line();
    let json = t.dir.join("gru-trace.json");
    let out = hrm(&[
        "solve",
        "sudoku",
        &line,
        "--run",
        path_str(&t.run),
        "--device",
        "cpu",
        "--json",
        "--trace-json",
        path_str(&json),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let o = &json_lines(&out)[0];
    assert_eq!(o["steps"], 1);
    assert_eq!(o["q_halt"].as_array().map(Vec::len), Some(0));
    let trace: serde_json::Value = read_json(&json);
    assert_eq!(trace["steps"].as_array().map(Vec::len), Some(1));
    assert!(trace["steps"][0]["q_halt"].is_null());

    let out_dir = t.dir.join("report");
    let out = hrm(&[
        "eval",
        path_str(&t.run),
        "--out",
        path_str(&out_dir),
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let metrics: serde_json::Value = read_json(&out_dir.join("metrics.json"));
    assert_eq!(metrics["arch"], "gru");
    assert_eq!(
        metrics["steps_histogram"],
        serde_json::json!([{ "steps": 1, "count": 16 }])
    );
}
