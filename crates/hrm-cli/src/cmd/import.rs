//! `hrm import CHECKPOINT --config all_config.yaml --out RUN [--data DIR] [--set key=value]...`:
//! turns a checkpoint saved by the reference's PyTorch code (`torch.save` of a state dict, as
//! sapientinc/HRM publishes them, with `all_config.yaml` beside it) into a run directory that
//! `hrm solve` and `hrm eval` take, without Python ([`hrm_train::import`]).

use std::path::PathBuf;

use anyhow::Context;

use hrm_train::import::{import_checkpoint, ImportOptions};

/// Arguments of `hrm import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The `torch.save` file (zip or legacy format; `_orig_mod.` / `model.` prefixes; f32, bf16
    /// or f16 tensors).
    pub checkpoint: PathBuf,
    /// The reference's `all_config.yaml` of the run.
    #[arg(long, value_name = "YAML")]
    pub config: PathBuf,
    /// The run directory to create (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The dataset the model was trained on: gives `seq_len`, `vocab_size` and the number of
    /// puzzle identifiers, and becomes the run's `data_path`.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Override a key of the mapped config, as `hrm train --set` (for example
    /// `model.forward_dtype=float32` to run a bf16 checkpoint in float32 on the CPU).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// Runs `hrm import` and prints what was imported and which config keys were not.
///
/// # Errors
/// A file that is not a readable checkpoint, tensors that do not fit the config (each named),
/// unsupported config keys, or an output directory that is in use.
pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let mut opts = ImportOptions::new(&args.checkpoint, &args.config, &args.out);
    opts.data = args.data.clone();
    opts.overrides = args.overrides.clone();
    let report = import_checkpoint(&opts).with_context(|| {
        format!(
            "importing {} with {}",
            args.checkpoint.display(),
            args.config.display()
        )
    })?;
    println!("{report}");
    Ok(())
}
