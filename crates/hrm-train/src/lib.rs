//! The training library for HRM-family models.
//!
//! `hrm-train` turns the models of `hrm-core`, the ACT loop of `hrm-act` and the datasets of
//! `hrm-data` into runs: the AdamATan2 and sign-SGD optimisers ([`optim`]), the warm-up +
//! cosine schedule ([`schedule`]), one training step ([`train_step`]) and, on CUDA, the step and
//! the evaluation rollout captured in CUDA graphs ([`graphed`]), the loop with exact
//! resume ([`trainer`]) reporting through a [`observer::TrainObserver`], evaluation with ARC
//! voting ([`eval`]), inference rollouts ([`rollout`]), checkpoints ([`checkpoint`]), the run
//! directory ([`run_dir`]) and the golden check ([`golden`]). Configs are
//! [`config::TrainConfig`] (TOML, every key overridable as `key=value`; `docs/configs.md` lists
//! them). It prints nothing: the `hrm` command (crate `hrm-cli`) draws progress and plots.
//!
//! # Example
//! Build a small 4x4 Sudoku dataset, train a small HRM on it for a few steps, read the summary:
//! ```
//! use hrm_train::config::TrainConfig;
//! use hrm_train::trainer::{train, TrainOptions};
//!
//! let tmp = tempfile::tempdir()?;
//! let data = tmp.path().join("sudoku4");
//! let mut opts = hrm_data::sudoku::SudokuOptions::new(&data);
//! opts.size = 4;
//! opts.train = 64;
//! opts.test = 16;
//! opts.aug = 1;
//! hrm_data::sudoku::build_sudoku(&opts)?;
//!
//! let toml = format!(
//!     "arch = \"hrm\"\ndata_path = \"{}\"\nglobal_batch_size = 16\nepochs = 2\n\
//!      eval_interval = 2\nlr = 1e-4\nweight_decay = 0.1\npuzzle_emb_lr = 1e-2\n\
//!      puzzle_emb_weight_decay = 0.1\n[model]\nH_cycles = 1\nL_cycles = 1\nH_layers = 1\nL_layers = 1\n\
//!      hidden_size = 32\nnum_heads = 2\nexpansion = 2.0\npos_encodings = \"rope\"\n\
//!      puzzle_emb_ndim = 0\nhalt_max_steps = 2\nhalt_exploration_prob = 0.1\n",
//!     data.display()
//! );
//! let config = TrainConfig::from_toml_str(&toml, &["lr=1e-3".to_string()])?;
//! let summary = train(TrainOptions::new(config, tmp.path().join("run"), tch::Device::Cpu))?;
//! assert_eq!(summary.steps, summary.total_steps);
//! assert!(summary.last_eval.is_some());
//! assert!(tmp.path().join("run").join("metrics.jsonl").is_file());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod allocator;
pub mod arch;
pub mod bench_setup;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod distributed;
pub mod error;
pub mod eval;
pub mod golden;
pub mod graphed;
pub mod import;
pub mod observer;
pub mod optim;
pub mod rollout;
pub mod run_dir;
pub mod schedule;
pub mod seeded;
pub mod train_step;
pub mod trainer;

pub use error::{Result, TrainError};
