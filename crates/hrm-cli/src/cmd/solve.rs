//! `hrm solve sudoku|maze|arc ... --run DIR`: a trained model answers puzzles, checks its
//! answers, shows the ACT steps and Q-halt probabilities, and can draw a reasoning trace.
//!
//! A thin layer over [`crate::solve`]: parse the input (errors say exactly what is wrong),
//! load the model ([`hrm_train::checkpoint::load_model`]), solve (learned halting batches
//! continuously), print text or one JSON object per puzzle (`--json`), and write the trace of
//! the first puzzle (`--trace`, `--trace-json`). `--max-steps N` sets the test-time step cap;
//! `--vote K` and several `--run`s vote over augmented views and models
//! ([`crate::solve::vote`]). `hrm solve sudoku --file F --bench` times solving one puzzle at a
//! time against a whole batch at once.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use hrm_data::arc::load_tasks;
use hrm_data::maze::encode_maze;
use hrm_data::maze::MazeVerdict;
use hrm_data::sudoku::{encode_board, Board, SudokuVerdict};
use hrm_data::Grid;

use crate::solve::arc::{read_arc_identifiers, solve_arc_task_runs, ArcAnswer};
use crate::solve::maze::{read_puzzle, solve_mazes, MazeAnswer};
use crate::solve::sudoku::{
    measure_throughput, parse_argument, read_puzzle_file, solve_sudoku, SudokuAnswer,
};
use crate::solve::vote::{vote_mazes, vote_sudoku, MazeVote, SudokuVote, VoteOptions};
use crate::solve::{model_task, Batching, HaltMode, RolloutOptions, RowResult, Trace};
use hrm_train::arch::ArchModel;
use hrm_train::checkpoint::{load_model, LoadedModel};
use hrm_train::device::{device_name, parse_device};
use hrm_train::eval::vote::VoteRun;

/// Puzzles `--bench` solves one at a time (the file's puzzles, repeated as needed).
const BENCH_SINGLE: usize = 128;

/// `hrm solve ...`.
#[derive(Debug, clap::Args)]
pub struct SolveArgs {
    /// The kind of puzzle.
    #[command(subcommand)]
    pub task: SolveTask,
}

/// The puzzle kinds `hrm solve` answers.
#[derive(Debug, clap::Subcommand)]
pub enum SolveTask {
    /// Solve Sudoku puzzles: one given as 81 (9x9), 36 (6x6) or 16 (4x4) characters, or a file
    /// of them.
    Sudoku(SudokuArgs),
    /// Solve mazes given as `# SGo` text files (one row per line).
    Maze(MazeArgs),
    /// Solve an ARC task file (or a challenges file of several tasks) by voting over views.
    Arc(ArcArgs),
}

/// Options every `hrm solve` takes.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// The trained model: a run directory (its latest checkpoint) or a checkpoint directory.
    /// Repeat to vote with several models of the same task.
    #[arg(long, value_name = "DIR", required = true)]
    pub run: Vec<PathBuf>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Print one JSON object per puzzle on stdout (JSON Lines) instead of text.
    #[arg(long)]
    pub json: bool,
    /// `learned`: halt when the Q head says so (at most halt_max_steps); `max`: always run
    /// halt_max_steps ACT steps.
    #[arg(long, default_value = "learned")]
    pub halt: HaltMode,
    /// Puzzles (ARC: augmented views) solved together in one batch.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Test-time step cap (default: the trained halt_max_steps; may be larger, for both
    /// halting modes).
    #[arg(long, value_name = "N")]
    pub max_steps: Option<usize>,
    /// How learned-halting puzzles share a batch: `continuous` (a halted puzzle's slot takes
    /// the next one) or `lockstep` (a batch runs until its slowest puzzle halts).
    #[arg(long, default_value = "continuous")]
    pub batching: Batching,
    /// Sudoku and mazes: answer each puzzle under K views (the puzzle and K-1 random
    /// augmentations), undo them, and vote (weighted by sigmoid(q_halt)): two attempts,
    /// pass@1 and pass@2.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub vote: usize,
    /// Seed of the voting views' augmentations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Draw the first puzzle's prediction after every ACT step into this PNG.
    #[arg(long, value_name = "PNG")]
    pub trace: Option<PathBuf>,
    /// Write the first puzzle's per-step predictions and Q probabilities as JSON.
    #[arg(long, value_name = "FILE")]
    pub trace_json: Option<PathBuf>,
}

/// `hrm solve sudoku`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["puzzle", "file"])))]
pub struct SudokuArgs {
    /// The puzzle: 81 characters (36 for 6x6, 16 for 4x4), `1-9` (`1-6`, `1-4`) for digits,
    /// `0` or `.` for blanks.
    pub puzzle: Option<String>,
    /// A file with one puzzle per line (blank lines and `#` comments skipped).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Time solving 128 puzzles one at a time against `--batch` at a time (the file's puzzles
    /// repeated as needed) and print puzzles/s.
    #[arg(long)]
    pub bench: bool,
    /// The common options.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `hrm solve maze`.
#[derive(Debug, clap::Args)]
pub struct MazeArgs {
    /// Maze text files (`#` wall, space or `.` open, `S` start, `G` goal; `o` marks an expected
    /// path, which is removed from the input).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The common options.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `hrm solve arc`.
#[derive(Debug, clap::Args)]
pub struct ArcArgs {
    /// A task JSON file (`train` and `test` pairs), or a `*_challenges.json` of several.
    #[arg(value_name = "TASK.json")]
    pub task: PathBuf,
    /// The ARC dataset the model was trained on (its `identifiers.json`); default: the run's
    /// `data_path`.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The common options.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs `hrm solve`.
///
/// # Errors
/// Malformed puzzles (saying what is wrong), a model that cannot be loaded or does not fit
/// the puzzles, I/O failures.
pub fn run(args: SolveArgs) -> anyhow::Result<()> {
    match args.task {
        SolveTask::Sudoku(a) => sudoku(a),
        SolveTask::Maze(a) => maze(a),
        SolveTask::Arc(a) => arc(a),
    }
}

/// Loads every `--run`; the first is the one traced and benchmarked.
fn load(common: &CommonArgs) -> anyhow::Result<(Vec<LoadedModel>, tch::Device)> {
    anyhow::ensure!(common.batch > 0, "--batch must be at least 1");
    anyhow::ensure!(common.vote > 0, "--vote must be at least 1");
    anyhow::ensure!(
        common.max_steps != Some(0),
        "--max-steps must be at least 1"
    );
    let device = parse_device(&common.device)?;
    let mut runs = Vec::with_capacity(common.run.len());
    for run in &common.run {
        let loaded = load_model(run, device)
            .with_context(|| format!("loading the model of {}", run.display()))?;
        if loaded.ema {
            eprintln!(
                "[solve] {}: using the run's EMA weights (ema = true), as its evaluation did",
                run.display()
            );
        }
        runs.push(loaded);
    }
    Ok((runs, device))
}

fn rollout_options(common: &CommonArgs) -> RolloutOptions {
    RolloutOptions {
        halt: common.halt,
        trace_rows: if common.trace.is_some() || common.trace_json.is_some() {
            vec![0]
        } else {
            Vec::new()
        },
        max_steps: common.max_steps,
        batching: common.batching,
    }
}

/// Whether to vote (several views or several models).
fn voting(common: &CommonArgs) -> bool {
    common.vote > 1 || common.run.len() > 1
}

fn vote_options(common: &CommonArgs) -> VoteOptions {
    VoteOptions {
        views: common.vote,
        seed: common.seed,
    }
}

fn sudoku(args: SudokuArgs) -> anyhow::Result<()> {
    let puzzles = match (&args.puzzle, &args.file) {
        (Some(p), _) => vec![parse_argument(p).context("the puzzle")?],
        (None, Some(f)) => read_puzzle_file(f)?,
        (None, None) => anyhow::bail!("give a puzzle or --file FILE"),
    };
    let common = &args.common;
    let (runs, device) = load(common)?;
    let loaded = &runs[0];
    let model = &loaded.model;
    if args.bench && voting(common) {
        anyhow::bail!("--bench times one model on its own: drop --vote and the extra --run");
    }
    if voting(common) {
        let models: Vec<&ArchModel> = runs.iter().map(|r| &r.model).collect();
        let (votes, run) = vote_sudoku(
            &models,
            &puzzles,
            vote_options(common),
            common.batch,
            &rollout_options(common),
            device,
        )?;
        for (i, v) in votes.iter().enumerate() {
            if common.json {
                println!("{}", v.to_json());
            } else {
                print_sudoku_vote(i, v);
            }
        }
        if let Some(first) = votes.first() {
            write_trace(
                common,
                loaded,
                &encode_board(&first.puzzle.board),
                None,
                &run.runs[0].rows[0],
            )?;
        }
        vote_summary(
            common,
            votes.len(),
            votes.iter().filter(|v| v.pass_at(1)).count(),
            votes.iter().filter(|v| v.pass_at(2)).count(),
            &run,
        );
        return Ok(());
    }
    if args.bench {
        let t = measure_throughput(
            model,
            &puzzles,
            BENCH_SINGLE,
            common.batch,
            &rollout_options(common),
            device,
        )?;
        println!(
            "hrm solve --bench: {} model, {} distinct puzzles, device {}, {} threads, halting {} ({} batching)",
            model_task(&model.dims()).name(),
            puzzles.len(),
            device_name(device),
            tch::get_num_threads(),
            common.halt,
            common.batching
        );
        println!(
            "  batch 1: {:.1} puzzles/s ({} puzzles one at a time)",
            t.single_per_second, t.single_puzzles
        );
        println!(
            "  batch {}: {:.1} puzzles/s ({} puzzles, mean {:.2} ACT steps)",
            t.batch_size, t.batched_per_second, t.batched_puzzles, t.mean_steps
        );
        println!(
            "  speed-up of batching: {:.1}x",
            t.batched_per_second / t.single_per_second.max(1e-12)
        );
        return Ok(());
    }
    let t0 = Instant::now();
    let (answers, run) = solve_sudoku(
        model,
        &puzzles,
        common.batch,
        &rollout_options(common),
        device,
    )?;
    let wall = t0.elapsed().as_secs_f64();
    for (i, a) in answers.iter().enumerate() {
        if common.json {
            println!("{}", a.to_json());
        } else {
            print_sudoku(i, a, common);
        }
    }
    if let Some(first) = answers.first() {
        write_trace(
            common,
            loaded,
            &encode_board(&first.puzzle.board),
            None,
            &first.row,
        )?;
    }
    let solved = answers.iter().filter(|a| a.verdict.solved()).count();
    summary(
        common.json,
        &format!(
            "solved {solved} of {} puzzles in {:.3} s of model time ({:.1} puzzles/s, batches of up to {}, {:.3} s in all)",
            answers.len(),
            run.total_seconds(),
            run.rows_per_second(),
            common.batch,
            wall
        ),
    );
    Ok(())
}

fn maze(args: MazeArgs) -> anyhow::Result<()> {
    let puzzles = args
        .files
        .iter()
        .map(|f| read_puzzle(f))
        .collect::<Result<Vec<_>, _>>()?;
    let common = &args.common;
    let (runs, device) = load(common)?;
    let loaded = &runs[0];
    if voting(common) {
        let models: Vec<&ArchModel> = runs.iter().map(|r| &r.model).collect();
        let (votes, run) = vote_mazes(
            &models,
            &puzzles,
            vote_options(common),
            common.batch,
            &rollout_options(common),
            device,
        )?;
        for (i, v) in votes.iter().enumerate() {
            if common.json {
                println!("{}", v.to_json());
            } else {
                print_maze_vote(i, v);
            }
        }
        if let Some(first) = votes.first() {
            let label = first.puzzle.given.as_ref().map(encode_maze);
            write_trace(
                common,
                loaded,
                &encode_maze(&first.puzzle.maze),
                label.as_deref(),
                &run.runs[0].rows[0],
            )?;
        }
        vote_summary(
            common,
            votes.len(),
            votes.iter().filter(|v| v.pass_at(1)).count(),
            votes.iter().filter(|v| v.pass_at(2)).count(),
            &run,
        );
        return Ok(());
    }
    let (answers, run) = solve_mazes(
        &loaded.model,
        &puzzles,
        common.batch,
        &rollout_options(common),
        device,
    )?;
    for (i, a) in answers.iter().enumerate() {
        if common.json {
            println!("{}", a.to_json());
        } else {
            print_maze(i, a, common);
        }
    }
    if let Some(first) = answers.first() {
        let label = first.puzzle.given.as_ref().map(encode_maze);
        write_trace(
            common,
            loaded,
            &encode_maze(&first.puzzle.maze),
            label.as_deref(),
            &first.row,
        )?;
    }
    let shortest = answers.iter().filter(|a| a.verdict.shortest).count();
    summary(
        common.json,
        &format!(
            "{shortest} of {} mazes answered with a valid shortest path ({:.3} s of model time)",
            answers.len(),
            run.total_seconds()
        ),
    );
    Ok(())
}

fn arc(args: ArcArgs) -> anyhow::Result<()> {
    let common = &args.common;
    anyhow::ensure!(
        common.vote == 1,
        "--vote is for Sudoku and mazes: an ARC task votes over the augmented views its dataset \
         was built with (pass several --run to vote across models)"
    );
    let tasks = load_tasks(&args.task)?;
    let (runs, device) = load(common)?;
    let loaded = &runs[0];
    let models: Vec<&ArchModel> = runs.iter().map(|r| &r.model).collect();
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| loaded.config.data_path.clone());
    let ids = read_arc_identifiers(&data, &loaded.model)?;
    let mut right = (0, 0);
    for (i, task) in tasks.iter().enumerate() {
        let opts = RolloutOptions {
            trace_rows: if i == 0 {
                rollout_options(common).trace_rows
            } else {
                Vec::new()
            },
            ..rollout_options(common)
        };
        let (answer, _) = solve_arc_task_runs(&models, task, &ids, common.batch, &opts, device)
            .with_context(|| format!("task {}", task.id))?;
        if !answer.known_to_model {
            warn_unknown(&answer.task, &data, loaded.model.dims().puzzle_emb_ndim);
        }
        if common.json {
            println!("{}", answer.to_json());
        } else {
            print_arc(&answer, common.halt);
        }
        for t in &answer.tests {
            if let Some(c) = t.top_correct() {
                right.1 += 1;
                right.0 += usize::from(c.iter().any(|&x| x));
            }
        }
        if i == 0 {
            write_trace(
                common,
                loaded,
                answer.view_input(0),
                Some(answer.view_label(0)),
                &answer.rows[0],
            )?;
        }
    }
    if right.1 > 0 {
        summary(
            common.json,
            &format!(
                "{} of {} test inputs with a known solution answered correctly within two attempts",
                right.0, right.1
            ),
        );
    }
    Ok(())
}

fn warn_unknown(task: &str, data: &Path, puzzle_emb_ndim: i64) {
    let why = if puzzle_emb_ndim > 0 {
        "the model learned one puzzle embedding per augmented puzzle of its dataset and has none \
         for this task, so its views use the blank identifier 0, whose embedding was never \
         trained; expect poor answers"
    } else {
        "the model has no puzzle embedding, so only the views change: the 8 dihedral \
         transforms with the blank identifier 0 (no colour permutations)"
    };
    eprintln!(
        "warning: task {task} is not in the model's dataset ({}): {why}",
        data.join("identifiers.json").display()
    );
}

/// Prints to stdout in text mode, to stderr in JSON mode (stdout stays machine-readable).
fn summary(json: bool, line: &str) {
    if json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

fn write_trace(
    common: &CommonArgs,
    loaded: &LoadedModel,
    input: &[i32],
    label: Option<&[i32]>,
    row: &RowResult,
) -> anyhow::Result<()> {
    if common.trace.is_none() && common.trace_json.is_none() {
        return Ok(());
    }
    let dims = loaded.model.dims();
    let trace = Trace::new(model_task(&dims), input, label, row, common.halt, &dims)?;
    if let Some(png) = &common.trace {
        trace
            .save_png(png)
            .with_context(|| format!("writing {}", png.display()))?;
        eprintln!(
            "trace of the first puzzle ({} steps) written to {}",
            trace.steps.len(),
            png.display()
        );
    }
    if let Some(json) = &common.trace_json {
        trace
            .save_json(json)
            .with_context(|| format!("writing {}", json.display()))?;
        eprintln!("trace JSON written to {}", json.display());
    }
    Ok(())
}

/// Two text blocks side by side.
fn side_by_side(left: &str, right: &str, gap: usize) -> String {
    let l: Vec<&str> = left.lines().collect();
    let r: Vec<&str> = right.lines().collect();
    let w = l.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    (0..l.len().max(r.len()))
        .map(|i| {
            let a = l.get(i).copied().unwrap_or("");
            let b = r.get(i).copied().unwrap_or("");
            format!("{a:<w$}{}{b}\n", " ".repeat(gap))
        })
        .collect()
}

fn steps_line(row: &RowResult, halt: HaltMode, max: Option<usize>) -> String {
    let mut s = format!("ACT steps: {}", row.halt_step);
    if let Some(m) = max {
        s.push_str(&format!(" of at most {m}"));
    }
    s.push_str(&format!(" (halting {halt}"));
    if halt == HaltMode::Max && !row.q_halt_logits.is_empty() {
        s.push_str(&format!(
            ", learned rule would halt at {}",
            row.learned_halt_step
        ));
    }
    s.push(')');
    let probs = row.q_halt_probs();
    if probs.is_empty() {
        s.push_str("; no Q head (one-step baseline)");
    } else {
        let p: Vec<String> = probs.iter().map(|p| format!("{p:.3}")).collect();
        s.push_str(&format!("; sigmoid(q_halt) per step: {}", p.join(" ")));
    }
    s
}

fn print_sudoku(i: usize, a: &SudokuAnswer, common: &CommonArgs) {
    let b = &a.puzzle.board;
    let blanks = b.cells().iter().filter(|&&c| c == 0).count();
    println!(
        "puzzle {} ({}): {n}x{n}, {blanks} blanks",
        i + 1,
        a.puzzle.source,
        n = b.size()
    );
    let header = format!(
        "{:<w$}   answer\n",
        "puzzle",
        w = b.to_grid_string().lines().next().map_or(0, |l| l.len())
    );
    print!(
        "{header}{}",
        side_by_side(&b.to_grid_string(), &a.solution.to_grid_string(), 3)
    );
    println!("answer: {}", a.solution.to_line());
    println!(
        "verdict: {}",
        sudoku_verdict(&a.puzzle.board, &a.solution, &a.verdict)
    );
    println!("{}", steps_line(&a.row, common.halt, common.max_steps));
    println!(
        "time: {:.2} ms (batch of {})\n",
        a.batch_seconds * 1e3,
        a.batch_size
    );
}

fn sudoku_verdict(puzzle: &Board, solution: &Board, v: &SudokuVerdict) -> String {
    if v.solved() {
        return "solved (the rules hold, the givens are kept, no blank left)".into();
    }
    let mut problems = Vec::new();
    if !v.valid_rules {
        match solution.first_conflict() {
            Some((d, unit)) => problems.push(format!("digit {d} appears twice in {unit}")),
            None => problems.push("breaks the rules".into()),
        }
    }
    if !v.agrees_with_givens {
        let changed = changed_givens(puzzle, solution);
        problems.push(format!("changes {changed} given(s)"));
    }
    if !v.complete {
        let blanks = solution.cells().iter().filter(|&&c| c == 0).count();
        problems.push(format!("{blanks} cell(s) without a digit"));
    }
    format!("NOT solved: {}", problems.join("; "))
}

fn changed_givens(puzzle: &Board, solution: &Board) -> usize {
    puzzle
        .cells()
        .iter()
        .zip(solution.cells())
        .filter(|(&p, &s)| p != 0 && p != s)
        .count()
}

fn print_maze(i: usize, a: &MazeAnswer, common: &CommonArgs) {
    let m = &a.puzzle.maze;
    println!(
        "maze {} ({}): {}x{}",
        i + 1,
        a.puzzle.source.display(),
        m.height(),
        m.width()
    );
    print!("{}", a.predicted.to_text());
    println!("verdict: {}", maze_verdict(&a.verdict));
    if a.invalid_tokens > 0 {
        println!(
            "note: {} predicted token(s) were not maze characters",
            a.invalid_tokens
        );
    }
    if let Some(same) = a.matches_given {
        println!(
            "the file's own path: {}",
            if same { "matched exactly" } else { "differs" }
        );
    }
    println!("{}", steps_line(&a.row, common.halt, common.max_steps));
    println!("time: {:.2} ms (batch)\n", a.batch_seconds * 1e3);
}

fn maze_verdict(v: &MazeVerdict) -> String {
    let optimal = v
        .optimal_length
        .map_or("G is unreachable".to_string(), |l| {
            format!("shortest is {l}")
        });
    match (v.valid_path, v.shortest, v.length) {
        (true, true, Some(l)) => format!("a valid shortest path of {l} steps"),
        (true, false, Some(l)) => {
            format!("a valid path of {l} steps, but not shortest ({optimal})")
        }
        _ => format!("NOT a valid start-to-goal path ({optimal})"),
    }
}

fn print_sudoku_vote(i: usize, v: &SudokuVote) {
    let b = &v.puzzle.board;
    let blanks = b.cells().iter().filter(|&&c| c == 0).count();
    println!(
        "puzzle {} ({}): {n}x{n}, {blanks} blanks; {} views, {} distinct answer(s), mean {:.2} ACT steps per view",
        i + 1,
        v.puzzle.source,
        v.views,
        v.candidates,
        v.mean_steps,
        n = b.size()
    );
    if let Some(a) = v.attempts.first() {
        let header = format!(
            "{:<w$}   attempt 1\n",
            "puzzle",
            w = b.to_grid_string().lines().next().map_or(0, |l| l.len())
        );
        print!(
            "{header}{}",
            side_by_side(&b.to_grid_string(), &a.answer.to_grid_string(), 3)
        );
    }
    for (k, a) in v.attempts.iter().enumerate() {
        println!(
            "attempt {}: {} ({} vote(s), mean confidence {:.3}) - {}",
            k + 1,
            a.answer.to_line(),
            a.votes,
            a.mean_confidence,
            sudoku_verdict(b, &a.answer, &a.verdict)
        );
    }
    println!();
}

fn print_maze_vote(i: usize, v: &MazeVote) {
    let m = &v.puzzle.maze;
    println!(
        "maze {} ({}): {}x{}; {} views, {} distinct answer(s), mean {:.2} ACT steps per view",
        i + 1,
        v.puzzle.source.display(),
        m.height(),
        m.width(),
        v.views,
        v.candidates,
        v.mean_steps
    );
    for (k, a) in v.attempts.iter().enumerate() {
        println!(
            "attempt {} ({} vote(s), mean confidence {:.3}): {}",
            k + 1,
            a.votes,
            a.mean_confidence,
            maze_verdict(&a.verdict)
        );
        print!("{}", a.answer.to_text());
    }
    println!();
}

fn vote_summary(common: &CommonArgs, n: usize, pass1: usize, pass2: usize, run: &VoteRun) {
    let seconds: f64 = run.runs.iter().map(|r| r.total_seconds()).sum();
    summary(
        common.json,
        &format!(
            "voting over {} view(s) x {} run(s) (halting {}): pass@1 {pass1} of {n}, pass@2 {pass2} of {n} ({seconds:.3} s of model time)",
            common.vote,
            common.run.len(),
            common.halt
        ),
    );
}

fn grid_text(rows: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for r in rows {
        s.push_str("    ");
        s.extend(r.iter().map(|&c| char::from(b'0' + c)));
        s.push('\n');
    }
    s
}

fn print_arc(a: &ArcAnswer, halt: HaltMode) {
    println!(
        "task {}: {} test input(s), {} views in all ({}), {:.2} s",
        a.task,
        a.tests.len(),
        a.views.len(),
        if a.known_to_model {
            "known to the model"
        } else {
            "UNKNOWN to the model: blank identifier"
        },
        a.seconds
    );
    let steps: Vec<usize> = a.rows.iter().map(|r| r.halt_step).collect();
    println!(
        "  ACT steps per view (halting {halt}): mean {:.2}, min {}, max {}",
        steps.iter().sum::<usize>() as f64 / steps.len().max(1) as f64,
        steps.iter().min().copied().unwrap_or(0),
        steps.iter().max().copied().unwrap_or(0)
    );
    for t in &a.tests {
        println!(
            "  test {}: {} views, {} voted, {} distinct candidate(s)",
            t.test_index + 1,
            t.views,
            t.voting_views,
            t.candidates.len()
        );
        let correct = t.top_correct();
        for (k, c) in t.candidates.iter().take(2).enumerate() {
            let mark = match correct.as_ref().and_then(|v| v.get(k)) {
                Some(true) => " - correct",
                Some(false) => " - wrong",
                None => "",
            };
            let h = c.grid.len();
            let w = c.grid.first().map_or(0, Vec::len);
            println!(
                "  attempt {}: {h}x{w}, {} vote(s), mean confidence {:.3}{mark}",
                k + 1,
                c.votes,
                c.mean_confidence
            );
            print!("{}", grid_text(&c.grid));
        }
        if t.candidates.is_empty() {
            println!("  no view produced a grid");
        }
        if let (Some(e), Some(v)) = (&t.expected, &correct) {
            if !v.iter().any(|&x| x) {
                println!("  expected {}x{}:", e.height(), e.width());
                print!("{}", grid_text(&Grid::to_rows(e)));
            }
        }
    }
    println!();
}
