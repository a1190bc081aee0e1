//! The golden check over the shared reference cases: every case must PASS.
//!
//! Reads `$HRM_GOLDEN_DIR` (default `../shared/golden` beside the checkout). A missing directory
//! is a failure with a message saying where it looked, not a silent skip.

use std::path::PathBuf;

use hrm_train::golden::{check_case, find_cases};

fn golden_dir(var: &str, default: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../..")
            .join("shared")
            .join(default),
    }
}

fn check_all(var: &str, default: &str) {
    let dir = golden_dir(var, default);
    assert!(
        dir.is_dir(),
        "golden directory {} does not exist (set {var} to point elsewhere)",
        dir.display()
    );
    let cases = find_cases(&dir).expect("case directories");
    let mut failures = Vec::new();
    for case in &cases {
        match check_case(case) {
            Ok(report) => {
                println!("{report}");
                if !report.passed() {
                    failures.push(report.to_string());
                }
            }
            Err(e) => failures.push(format!("{}: {e}", case.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "golden failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn hrm_golden_cases_pass() {
    check_all("HRM_GOLDEN_DIR", "golden");
}

#[test]
fn trm_golden_cases_pass() {
    check_all("HRM_GOLDEN_TRM_DIR", "golden-trm");
}
