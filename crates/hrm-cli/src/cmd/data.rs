//! `hrm data build sudoku|maze|arc ...` and `hrm data show DIR ...`: a thin layer over
//! hrm-data's builders ([`hrm_data::build_sudoku`], [`hrm_data::build_maze`],
//! [`hrm_data::build_arc`]) and [`hrm_data::show_example`].
//!
//! The reference builds each dataset with its own Python script (`dataset/build_*_dataset.py`)
//! and shows them in `puzzle_visualizer.html`; the flags keep the reference's meanings
//! (`--aug` is `num_aug`, `--train` the subsample size).

use std::path::PathBuf;

use anyhow::Context;
use hrm_data::arc::{default_arc_dir, ArcOptions, ArcSets};
use hrm_data::maze::MazeOptions;
use hrm_data::sudoku::{Difficulty, SudokuOptions};
use hrm_data::{build_arc, build_maze, build_sudoku, show_example, ShowOptions};

/// `hrm data ...`.
#[derive(Debug, clap::Subcommand)]
pub enum DataCommand {
    /// Build a dataset in the reference's on-disk layout (offline, deterministic).
    Build(BuildArgs),
    /// Print one example as a grid (and draw it to a PNG), with a prediction if given.
    Show(ShowArgs),
}

/// `hrm data build ...`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The task.
    #[command(subcommand)]
    pub task: BuildTask,
}

/// The dataset to build.
#[derive(Debug, clap::Subcommand)]
pub enum BuildTask {
    /// Sudoku: generated unique-solution puzzles (or the reference's CSVs) plus augmentations.
    Sudoku(SudokuArgs),
    /// Mazes: generated with a minimum shortest-path length (or the reference's CSVs).
    Maze(MazeArgs),
    /// ARC: ARC-AGI-1/2 tasks with dihedral, colour and translation augmentations.
    Arc(ArcArgs),
}

/// `hrm data build sudoku`.
#[derive(Debug, clap::Args)]
pub struct SudokuArgs {
    /// Output directory (replaced atomically if it already holds a dataset).
    #[arg(long)]
    pub out: PathBuf,
    /// Training puzzles (with --csv-dir: rows sampled from train.csv, 0 = all).
    #[arg(long, default_value_t = 1000)]
    pub train: usize,
    /// Test puzzles (with --csv-dir: rows sampled from test.csv, 0 = all).
    #[arg(long, default_value_t = 1000)]
    pub test: usize,
    /// Augmentations per training puzzle.
    #[arg(long, default_value_t = 1000)]
    pub aug: usize,
    /// easy, medium, hard or extreme (generated puzzles only).
    #[arg(long, default_value = "extreme")]
    pub difficulty: Difficulty,
    /// Seed of everything random.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Import the reference's train.csv and test.csv (source,question,answer,rating) from here.
    #[arg(long)]
    pub csv_dir: Option<PathBuf>,
    /// Board side: 9, or 6 (boxes of 2 rows x 3 columns) or 4 for CPU experiments.
    #[arg(long, default_value_t = 9)]
    pub size: usize,
    /// Build even when a split comes out empty (`--train 0`, `--test 0`); refused otherwise.
    #[arg(long)]
    pub allow_empty: bool,
}

/// `hrm data build maze`.
#[derive(Debug, clap::Args)]
pub struct MazeArgs {
    /// Output directory (replaced atomically if it already holds a dataset).
    #[arg(long)]
    pub out: PathBuf,
    /// Training mazes (with --csv-dir: rows sampled from train.csv, 0 = all).
    #[arg(long, default_value_t = 1000)]
    pub train: usize,
    /// Test mazes (with --csv-dir: rows sampled from test.csv, 0 = all).
    #[arg(long, default_value_t = 1000)]
    pub test: usize,
    /// Shortest S-to-G path, in steps, at least (the reference's hard setting is 110).
    #[arg(long, default_value_t = 110)]
    pub min_path: usize,
    /// Seed of everything random.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Add the 8 dihedral transforms of every training maze.
    #[arg(long)]
    pub aug: bool,
    /// Maze side.
    #[arg(long, default_value_t = 30)]
    pub size: usize,
    /// Import the reference's train.csv and test.csv (source,question,answer,rating) from here.
    #[arg(long)]
    pub csv_dir: Option<PathBuf>,
    /// Build even when a split comes out empty (`--train 0`, `--test 0`); refused otherwise.
    #[arg(long)]
    pub allow_empty: bool,
}

/// `hrm data build arc`.
#[derive(Debug, clap::Args)]
pub struct ArcArgs {
    /// Output directory (replaced atomically if it already holds a dataset).
    #[arg(long)]
    pub out: PathBuf,
    /// arc1 (ARC-AGI-1 training + evaluation + ConceptARC) or arc2 (ARC-AGI-2).
    #[arg(long, default_value = "arc1")]
    pub sets: ArcSets,
    /// Augmented puzzles per task.
    #[arg(long, default_value_t = 1000)]
    pub aug: usize,
    /// Seed of everything random.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Build from a combined *_challenges.json (its *_solutions.json beside it) or a directory
    /// of task files instead; all its tasks are test-set tasks.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Where the arc-agi_*_challenges.json files are (default: $HRM_ARC_DIR or ../shared/data/arc).
    #[arg(long)]
    pub arc_dir: Option<PathBuf>,
    /// Build even when a split comes out empty (`--train 0`, `--test 0`); refused otherwise.
    #[arg(long)]
    pub allow_empty: bool,
}

/// `hrm data show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The dataset directory.
    pub dir: PathBuf,
    /// The split.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// The example's index in its set.
    #[arg(long, default_value_t = 0)]
    pub index: usize,
    /// The set (default: the split's first).
    #[arg(long)]
    pub set: Option<String>,
    /// Draw input, label (and prediction) into this PNG.
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// A .npy of predicted tokens [N, seq_len] in the set's example order
    /// (the evaluator's `<set>__predictions.npy`).
    #[arg(long)]
    pub predictions: Option<PathBuf>,
}

/// Runs `hrm data ...`.
///
/// # Errors
/// Invalid options or input files (named with their line or task), generation failures and
/// I/O errors, with the paths involved as context.
pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Build(BuildArgs { task }) => {
            let summary = match task {
                BuildTask::Sudoku(a) => {
                    let opts = SudokuOptions {
                        out: a.out,
                        train: a.train,
                        test: a.test,
                        aug: a.aug,
                        difficulty: a.difficulty,
                        seed: a.seed,
                        csv_dir: a.csv_dir,
                        size: a.size,
                        allow_empty: a.allow_empty,
                    };
                    build_sudoku(&opts).with_context(|| {
                        format!("building the Sudoku dataset {}", opts.out.display())
                    })?
                }
                BuildTask::Maze(a) => {
                    let opts = MazeOptions {
                        out: a.out,
                        train: a.train,
                        test: a.test,
                        min_path: a.min_path,
                        aug: a.aug,
                        seed: a.seed,
                        size: a.size,
                        csv_dir: a.csv_dir,
                        allow_empty: a.allow_empty,
                    };
                    build_maze(&opts).with_context(|| {
                        format!("building the maze dataset {}", opts.out.display())
                    })?
                }
                BuildTask::Arc(a) => {
                    let opts = ArcOptions {
                        out: a.out,
                        sets: a.sets,
                        arc_dir: a.arc_dir.unwrap_or_else(default_arc_dir),
                        from: a.from,
                        aug: a.aug,
                        seed: a.seed,
                        allow_empty: a.allow_empty,
                    };
                    let source = opts.from.clone().unwrap_or_else(|| opts.arc_dir.clone());
                    build_arc(&opts).with_context(|| {
                        format!(
                            "building the ARC dataset {} from {}",
                            opts.out.display(),
                            source.display()
                        )
                    })?
                }
            };
            println!("{summary}");
        }
        DataCommand::Show(a) => {
            let opts = ShowOptions {
                split: a.split,
                index: a.index,
                set: a.set,
                png: a.png,
                predictions: a.predictions,
            };
            let report = show_example(&a.dir, &opts).with_context(|| {
                format!(
                    "showing example {} of {}/{}",
                    opts.index,
                    a.dir.display(),
                    opts.split
                )
            })?;
            print!("{}", report.text);
        }
    }
    Ok(())
}
