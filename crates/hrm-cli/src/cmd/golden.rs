//! `hrm golden DIR...`: one line per case with its worst error per tolerance group and PASS or
//! FAIL; a non-zero exit status when any case fails.

use std::path::PathBuf;

use anyhow::{bail, Context};

use hrm_train::golden::{check_case, find_cases};

/// Arguments of `hrm golden`.
#[derive(Debug, clap::Args)]
pub struct GoldenArgs {
    /// Directories holding golden cases (a case directory or a directory of them).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
}

/// Checks every case under the given directories.
///
/// # Errors
/// When a directory holds no case, or when any case fails or cannot be run.
pub fn run(args: GoldenArgs) -> anyhow::Result<()> {
    let mut failed = 0;
    let mut total = 0;
    for dir in &args.dirs {
        let cases = find_cases(dir)
            .with_context(|| format!("looking for golden cases in {}", dir.display()))?;
        for case in cases {
            total += 1;
            match check_case(&case) {
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
