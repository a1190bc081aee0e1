//! `hrm import` from the command line: a checkpoint written by torch.save becomes a run that
//! loads; a file that is no checkpoint is refused with the reason and leaves nothing behind.

use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../hrm-train/tests/fixtures/import/tiny")
        .join(name)
}

#[test]
fn hrm_import_writes_a_run_that_loads_and_refuses_what_is_not_a_checkpoint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_hrm"))
        .arg("import")
        .arg(fixture("step_120.pt"))
        .arg("--config")
        .arg(fixture("all_config.yaml"))
        .arg("--out")
        .arg(&run)
        .output()
        .expect("hrm import");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("imported 16 tensors") && stdout.contains("step 120"),
        "{stdout}"
    );
    let loaded = hrm_train::checkpoint::load_model(&run, tch::Device::Cpu).expect("loads");
    assert_eq!(loaded.step, 120);

    let bad = tmp.path().join("bad");
    let out = Command::new(env!("CARGO_BIN_EXE_hrm"))
        .arg("import")
        .arg(fixture("all_config.yaml"))
        .arg("--config")
        .arg(fixture("all_config.yaml"))
        .arg("--out")
        .arg(&bad)
        .output()
        .expect("hrm import");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("not a usable PyTorch checkpoint"),
        "{stderr}"
    );
    assert!(!bad.exists(), "nothing written");
}
