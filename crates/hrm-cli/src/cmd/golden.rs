//! `hrm golden DIR...`: one line per case with its worst error per tolerance group and PASS or
//! FAIL; a non-zero exit status when any case fails.

use std::path::PathBuf;

use anyhow::{bail, Context};

use hrm_train::device::parse_device;
use hrm_train::golden::{check_case_with, find_cases, GoldenRun};

/// Arguments of `hrm golden`.
#[derive(Debug, clap::Args)]
pub struct GoldenArgs {
    /// Directories holding golden cases (a case directory or a directory of them).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Device the model runs on: cpu, cuda or cuda:N (the expected numbers are float32 CPU
    /// numbers of the reference; on CUDA the format's tolerances still apply).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Smoke check of the bf16 forward: run every case in bfloat16 and require each forward,
    /// gradient and loss tensor to be finite and within 75 % of the float32 expectation in
    /// relative Euclidean norm; halting flags, step counts and accuracies are reported only.
    #[arg(long)]
    pub bf16: bool,
}

/// Checks every case under the given directories.
///
/// # Errors
/// When a directory holds no case, or when any case fails or cannot be run.
pub fn run(args: GoldenArgs) -> anyhow::Result<()> {
    let run = GoldenRun {
        device: parse_device(&args.device)?,
        bf16: args.bf16,
    };
    let mut failed = 0;
    let mut total = 0;
    for dir in &args.dirs {
        let cases = find_cases(dir)
            .with_context(|| format!("looking for golden cases in {}", dir.display()))?;
        for case in cases {
            total += 1;
            match check_case_with(&case, &run) {
                Ok(report) => {
                    if !report.passed() {
                        failed += 1;
                    }
                    println!("{report}");
                }
                Err(e) => {
                    failed += 1;
                    let name = case
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    println!("{name:<28} FAIL | {e}");
                }
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {total} golden cases failed");
    }
    println!("all {total} golden cases passed");
    Ok(())
}
