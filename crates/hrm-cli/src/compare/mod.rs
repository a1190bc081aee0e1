//! `hrm compare`: train HRM, TRM and the two baselines (bidirectional GRU, plain Transformer) on
//! the same dataset, with matched parameter counts and the same example budget, then tabulate
//! and chart the results.
//!
//! The HRM paper (Wang et al. 2025, section 3) compares HRM with a Transformer of the same size
//! trained on the same data, and TRM's paper (Jolicoeur-Martineau 2025, section 5) compares HRM
//! and TRM at matched sizes; neither ships a script for it. This module is that script, on top
//! of the one training loop ([`hrm_train::trainer::train`]): it only plans the runs and reads their
//! run directories.
//!
//! What is matched, and how:
//! - **data**: one dataset directory for every run (built with `hrm-data`'s Sudoku builder when
//!   none is given: 4x4 boards, small enough for a 2-core CPU);
//! - **parameters**: each architecture keeps a fixed shape (layers, heads, cycles) and its width
//!   (`hidden_size`, and the SwiGLU `expansion` where the 256-rounding of its inner width leaves a
//!   gap) is chosen so that the trainable dense parameters land within 10 % of the target. The
//!   sparse puzzle table, trained by its own sign-SGD, is not counted;
//! - **examples**: every run draws the same number of training examples from the sampler
//!   (`steps x global_batch_size`), with the same batch size, seed (so the same batch order),
//!   optimiser, learning-rate schedule and evaluation points. An ACT model keeps unhalted rows
//!   across steps (the reference's carry), so it meets fewer distinct examples per draw than a
//!   baseline does; draws, optimiser steps and evaluation points are what is equal.
//!
//! Outputs under the comparison directory: one run directory per architecture (`<out>/<arch>/`,
//! as `hrm train` writes it), `comparison.md` (the table and the settings), `comparison.json`
//! (the same numbers) and `comparison.png` (held-out exact accuracy against training examples
//! seen, one line per architecture).

mod report;
mod run;
mod sizing;

pub use report::{chart, markdown_report, markdown_table, write_report};
pub use run::{curve, run_comparison};
pub use sizing::{choose_width, count_params, overrides_for, plan, preset};

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tch::Device;

use hrm_train::config::{Arch, TrainConfig};
use hrm_train::trainer::StopSignal;
use hrm_train::{Result, TrainError};
/// Training examples drawn per architecture by default: 2000 steps of 64 (64 epochs of the
/// default data): 20 to 25 minutes for the four default runs on a 2-core CPU.
pub const DEFAULT_EXAMPLES: u64 = 128_000;
/// Target trainable parameters by default: the size of `configs/default.toml`'s HRM (hidden 128,
/// 2+2 layers), 1 051 650.
pub const DEFAULT_PARAMS: i64 = 1_050_000;
/// Batch size by default.
pub const DEFAULT_BATCH_SIZE: usize = 64;
/// Evaluations per run by default (plus one at the end when the last does not fall on it).
pub const DEFAULT_EVALS: u64 = 8;
/// The largest relative difference from the parameter target that a run may have.
pub const PARAM_TOLERANCE: f64 = 0.10;

/// How to run a comparison.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// The comparison directory (run directories, table, chart).
    pub out: PathBuf,
    /// Architectures, in table order.
    pub archs: Vec<Arch>,
    /// Training examples each run draws (`steps x batch_size`, rounded down to whole steps).
    pub examples: u64,
    /// Target trainable parameters of every model.
    pub target_params: i64,
    /// An existing dataset; `None` builds the default one under `<out>/data` (or reuses it).
    pub data: Option<PathBuf>,
    /// Where to train.
    pub device: Device,
    /// Seed of initialisation and data order, the same for every run.
    pub seed: u64,
    /// `global_batch_size` of every run.
    pub batch_size: usize,
    /// Evaluations per run.
    pub evals: u64,
    /// `key=value` overrides of every run's config (as `hrm train --set`); `arch:key=value`
    /// (e.g. `trm:model.L_cycles=6`) overrides only that architecture's.
    pub overrides: Vec<String>,
    /// Progress bars on the terminal.
    pub progress: bool,
    /// Raised from outside (Ctrl-C) to stop the current run and the comparison.
    pub stop: Option<StopSignal>,
    /// The command line, for the report.
    pub command: String,
}

impl CompareOptions {
    /// The defaults (sized for a 2-core CPU: 20 to 25 minutes with one intra-op thread)
    /// writing to `out`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        CompareOptions {
            out: out.into(),
            archs: Arch::ALL.to_vec(),
            examples: DEFAULT_EXAMPLES,
            target_params: DEFAULT_PARAMS,
            data: None,
            device: Device::Cpu,
            seed: 0,
            batch_size: DEFAULT_BATCH_SIZE,
            evals: DEFAULT_EVALS,
            overrides: Vec::new(),
            progress: false,
            stop: None,
            command: String::new(),
        }
    }
}

/// One planned run: the config the trainer gets and its parameter count.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// The architecture.
    pub arch: Arch,
    /// The full training config (model table resolved, width chosen).
    pub config: TrainConfig,
    /// Trainable dense parameters of the model built from `config` (counted on a built model).
    pub parameters: i64,
}

/// One point of a learning curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Training examples drawn so far (`step x batch_size`).
    pub examples: u64,
    /// Held-out exact accuracy.
    pub exact_accuracy: f64,
    /// Held-out token accuracy.
    pub token_accuracy: f64,
}

/// What one architecture reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchResult {
    /// Config name of the architecture.
    pub arch: String,
    /// Trainable dense parameters.
    pub parameters: i64,
    /// The width settings chosen (`hidden_size`, `expansion`, depth keys).
    pub model: BTreeMap<String, String>,
    /// Seconds in training steps.
    pub train_seconds: f64,
    /// Seconds of the whole run (training, evaluations, checkpoints).
    pub wall_seconds: f64,
    /// Training examples per second over the training steps.
    pub samples_per_sec: f64,
    /// Held-out token accuracy at the end.
    pub token_accuracy: f64,
    /// Held-out exact (whole-puzzle) accuracy at the end.
    pub exact_accuracy: f64,
    /// Mean ACT steps at halting over the last training interval (1 for the baselines;
    /// evaluation always runs `halt_max_steps`).
    pub mean_act_steps: f64,
    /// ACT step limit (1 for the baselines).
    pub halt_max_steps: i64,
    /// Held-out accuracies at every evaluation.
    pub curve: Vec<CurvePoint>,
    /// The run directory.
    pub run_dir: PathBuf,
}

/// A finished comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The command line that ran it.
    pub command: String,
    /// The dataset directory.
    pub data_path: PathBuf,
    /// A one-line description of the dataset.
    pub data_summary: String,
    /// The device, in words.
    pub device: String,
    /// Examples drawn per run.
    pub examples: u64,
    /// Batch size of every run.
    pub batch_size: usize,
    /// Parameter target.
    pub target_params: i64,
    /// Seed of every run.
    pub seed: u64,
    /// Per architecture, in the requested order.
    pub results: Vec<ArchResult>,
    /// Seconds from the first run's start to the last run's end.
    pub wall_seconds: f64,
}

/// Parses a comma-separated list of architecture names (`hrm,trm,gru,transformer`).
///
/// # Errors
/// [`TrainError::Config`] (key `archs`) for an unknown or repeated name, listing the valid ones,
/// or an empty list.
pub fn parse_archs(list: &str) -> Result<Vec<Arch>> {
    let valid = Arch::ALL.map(Arch::name).join(", ");
    let mut archs = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(arch) = Arch::ALL.into_iter().find(|a| a.name() == name) else {
            return Err(TrainError::Config {
                key: "archs".into(),
                reason: format!("unknown architecture `{name}`; valid choices are {valid}"),
            });
        };
        if archs.contains(&arch) {
            return Err(TrainError::Config {
                key: "archs".into(),
                reason: format!("`{name}` is listed twice"),
            });
        }
        archs.push(arch);
    }
    if archs.is_empty() {
        return Err(TrainError::Config {
            key: "archs".into(),
            reason: format!("no architecture given; valid choices are {valid}"),
        });
    }
    Ok(archs)
}

#[cfg(test)]
mod tests {
    use super::sizing::set_width;
    use super::*;
    use hrm_train::arch::build_model;

    fn resolved(arch: Arch, puzzles: bool, pos: &str) -> toml::Table {
        let mut t = preset(arch).expect("preset");
        t.insert("seq_len".into(), toml::Value::Integer(16));
        t.insert("vocab_size".into(), toml::Value::Integer(11));
        t.insert(
            "num_puzzle_identifiers".into(),
            toml::Value::Integer(if puzzles { 5 } else { 1 }),
        );
        if arch != Arch::Gru {
            t.insert(
                "forward_dtype".into(),
                toml::Value::String("float32".into()),
            );
            t.insert("pos_encodings".into(), toml::Value::String(pos.into()));
        }
        t
    }

    #[test]
    fn the_formula_counts_what_the_built_model_has() {
        for arch in Arch::ALL {
            for (puzzles, pos) in [(false, "rope"), (true, "learned")] {
                for hidden in [16usize, 40] {
                    let mut t = resolved(arch, puzzles, pos);
                    set_width(arch, &mut t, hidden, 2.0, puzzles);
                    let built = build_model(arch, &t, Device::Cpu)
                        .expect("model")
                        .params()
                        .num_trainable();
                    let formula = count_params(arch, &t).expect("count");
                    assert_eq!(formula, built, "{} hidden {hidden} {pos}", arch.name());
                }
            }
        }
        // TRM's token-mixing MLP.
        let mut t = resolved(Arch::Trm, false, "none");
        t.insert("mlp_t".into(), toml::Value::Boolean(true));
        set_width(Arch::Trm, &mut t, 24, 4.0, false);
        let built = build_model(Arch::Trm, &t, Device::Cpu)
            .expect("model")
            .params()
            .num_trainable();
        assert_eq!(count_params(Arch::Trm, &t).expect("count"), built);
    }

    #[test]
    fn widths_match_the_target_within_tolerance() {
        for target in [300_000i64, 1_050_000, 5_000_000] {
            for arch in Arch::ALL {
                let (table, n) = choose_width(arch, &resolved(arch, false, "rope"), target, false)
                    .unwrap_or_else(|e| panic!("{} at {target}: {e}", arch.name()));
                let off = (n - target).abs() as f64 / target as f64;
                assert!(off <= PARAM_TOLERANCE, "{} at {target}: {n}", arch.name());
                assert_eq!(count_params(arch, &table).expect("count"), n);
            }
        }
        // The default HRM is the default target's model.
        let (t, n) = choose_width(
            Arch::Hrm,
            &resolved(Arch::Hrm, false, "rope"),
            DEFAULT_PARAMS,
            false,
        )
        .expect("hrm");
        assert_eq!(t["hidden_size"].as_integer(), Some(128));
        assert_eq!(n, 1_051_650);
        // Too small for any width.
        let err = choose_width(Arch::Hrm, &resolved(Arch::Hrm, false, "rope"), 100, false)
            .expect_err("tiny target");
        assert!(err.to_string().contains("params"), "{err}");
    }

    #[test]
    fn a_tiny_comparison_runs_end_to_end() {
        // As `hrm compare`'s default: one intra-op thread (OpenMP's setting is per calling
        // thread, so this stays within this test).
        tch::set_num_threads(1);
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("sudoku4");
        let mut d = hrm_data::sudoku::SudokuOptions::new(&data);
        d.size = 4;
        d.train = 48;
        d.test = 16;
        d.aug = 1;
        d.difficulty = hrm_data::sudoku::Difficulty::Easy;
        hrm_data::sudoku::build_sudoku(&d).expect("tiny dataset");
        let mut opts = CompareOptions::new(tmp.path().join("cmp"));
        opts.data = Some(data);
        opts.examples = 170; // 10 whole batches of 16
        opts.batch_size = 16;
        opts.target_params = 250_000;
        opts.evals = 2;
        let c = run_comparison(&opts).expect("comparison runs");
        assert_eq!(c.examples, 160);
        assert_eq!(
            c.results
                .iter()
                .map(|r| r.arch.as_str())
                .collect::<Vec<_>>(),
            ["hrm", "trm", "gru", "transformer"]
        );
        for r in &c.results {
            let off = (r.parameters - 250_000).abs() as f64 / 250_000.0;
            assert!(off <= PARAM_TOLERANCE, "{}: {}", r.arch, r.parameters);
            assert!(r.curve.len() >= 2, "{}: {:?}", r.arch, r.curve);
            assert_eq!(r.curve.last().map(|p| p.examples), Some(160), "{}", r.arch);
            assert!((0.0..=1.0).contains(&r.token_accuracy) && r.token_accuracy > 0.0);
            assert!(r.samples_per_sec > 0.0 && r.train_seconds > 0.0);
            assert!(r.run_dir.join("metrics.jsonl").is_file());
        }
        for f in ["comparison.md", "comparison.json", "comparison.png"] {
            assert!(opts.out.join(f).is_file(), "{f}");
        }
        // The directory is now in use: a second comparison into it is refused before training.
        let err = run_comparison(&opts).expect_err("runs exist").to_string();
        assert!(err.contains("already holds a run"), "{err}");
    }

    #[test]
    fn prefixed_overrides_reach_one_architecture() {
        let all = vec![
            "lr=3e-4".to_string(),
            "trm:model.L_cycles=6".to_string(),
            "gru: model.num_layers=3".to_string(),
            "data_path=\"a:b\"".to_string(),
        ];
        assert_eq!(
            overrides_for(Arch::Trm, &all),
            ["lr=3e-4", "model.L_cycles=6", "data_path=\"a:b\""]
        );
        assert_eq!(
            overrides_for(Arch::Gru, &all),
            ["lr=3e-4", " model.num_layers=3", "data_path=\"a:b\""]
        );
        assert_eq!(
            overrides_for(Arch::Hrm, &all),
            ["lr=3e-4", "data_path=\"a:b\""]
        );
    }

    #[test]
    fn arch_lists_are_parsed_and_checked() {
        assert_eq!(
            parse_archs("hrm, gru").expect("valid"),
            vec![Arch::Hrm, Arch::Gru]
        );
        let err = parse_archs("hrm,lstm").expect_err("unknown").to_string();
        assert!(
            err.contains("lstm") && err.contains("transformer") && err.contains("trm"),
            "{err}"
        );
        assert!(parse_archs("gru,gru").is_err());
        assert!(parse_archs(" , ").is_err());
    }

    #[test]
    fn the_report_has_the_table_and_the_chart() {
        let result = |arch: &str, n: i64, exact: f64| ArchResult {
            arch: arch.into(),
            parameters: n,
            model: BTreeMap::from([("hidden_size".to_string(), "128".to_string())]),
            train_seconds: 125.0,
            wall_seconds: 130.0,
            samples_per_sec: 64.0,
            token_accuracy: 0.9,
            exact_accuracy: exact,
            mean_act_steps: if arch == "hrm" { 2.5 } else { 1.0 },
            halt_max_steps: if arch == "hrm" { 4 } else { 1 },
            curve: vec![
                CurvePoint {
                    examples: 640,
                    exact_accuracy: 0.1,
                    token_accuracy: 0.5,
                },
                CurvePoint {
                    examples: 1280,
                    exact_accuracy: exact,
                    token_accuracy: 0.9,
                },
            ],
            run_dir: PathBuf::from("runs/x"),
        };
        let c = Comparison {
            command: "hrm compare".into(),
            data_path: PathBuf::from("d"),
            data_summary: "d".into(),
            device: "cpu".into(),
            examples: 1280,
            batch_size: 64,
            target_params: 1_050_000,
            seed: 0,
            results: vec![
                result("hrm", 1_051_650, 0.5),
                result("gru", 1_000_000, 0.25),
            ],
            wall_seconds: 260.0,
        };
        let table = markdown_table(&c);
        assert_eq!(table.lines().count(), 4, "{table}");
        assert!(
            table.contains(
                "| hrm | 1051650 (1.05M) | 2:05 | 64.0 | 0.9000 | 0.5000 | 2.50 (max 4) |"
            ),
            "{table}"
        );
        assert!(table.contains("1 (no ACT)"));
        let md = markdown_report(&c);
        assert!(
            md.contains("comparison.png") && md.contains("| 1280 | 0.5000 | 0.2500 |"),
            "{md}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        write_report(&c, dir.path()).expect("written");
        for f in ["comparison.md", "comparison.json", "comparison.png"] {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
        let back: Comparison = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("comparison.json")).expect("json"),
        )
        .expect("parses");
        assert_eq!(back, c);
        // Two coloured lines on the chart.
        let canvas = chart(&c).render(400, 300);
        let coloured = |rgb: hrm_data::Rgb| {
            canvas
                .pixels()
                .chunks(3)
                .filter(|p| *p == [rgb.0, rgb.1, rgb.2])
                .count()
        };
        assert!(coloured(crate::plot::PALETTE[0]) > 20 && coloured(crate::plot::PALETTE[1]) > 20);
    }
}
