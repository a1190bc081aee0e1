//! `import_checkpoint` on checkpoints written by PyTorch's own `torch.save`: the committed tiny
//! fixtures (every layout and dtype the reference produces; `fixtures/import/make_fixtures.py`
//! wrote them), a golden case of `shared/golden` saved at test time and checked against the
//! case's expected outputs, and the files import must refuse.

use std::path::{Path, PathBuf};
use std::process::Command;

use tch::{Device, Kind, Tensor};

use hrm_train::checkpoint::{self, load_model};
use hrm_train::golden::check_case;
use hrm_train::import::{
    import_checkpoint, read_import_record, ImportOptions, ImportReport, TensorMismatch, TorchFormat,
};
use hrm_train::TrainError;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import")
}

fn tiny(file: &str) -> PathBuf {
    fixtures().join("tiny").join(file)
}

/// One intra-op thread: test binaries run side by side on small machines.
fn single_thread() {
    tch::set_num_threads(1);
}

/// The value the fixture script puts at element `j` of the `i`-th tensor (names sorted).
fn tiny_values(i: usize, shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n as usize)
        .map(|j| (((j * 7 + i * 13) % 101) as f64 - 50.0) as f32 / 64.0)
        .collect();
    Tensor::from_slice(&v).reshape(shape)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

#[test]
fn tiny_checkpoints_import_in_every_layout_and_dtype() {
    single_thread();
    let tmp = tempfile::tempdir().expect("tempdir");
    struct Case {
        file: &'static str,
        format: TorchFormat,
        dtypes: &'static [(&'static str, usize)],
        prefix: &'static str,
        step: u64,
    }
    let orig = "_orig_mod.model.";
    let cases = [
        Case {
            file: "step_120.pt",
            format: TorchFormat::Zip,
            dtypes: &[("bfloat16", 2), ("float32", 14)],
            prefix: orig,
            step: 120,
        },
        Case {
            file: "model_bf16.pt",
            format: TorchFormat::Zip,
            dtypes: &[("bfloat16", 16)],
            prefix: "model.",
            step: 0,
        },
        Case {
            file: "views_f16.pt",
            format: TorchFormat::Zip,
            dtypes: &[("float16", 16)],
            prefix: orig,
            step: 0,
        },
        Case {
            file: "legacy_f32.pt",
            format: TorchFormat::Legacy,
            dtypes: &[("float32", 16)],
            prefix: orig,
            step: 0,
        },
    ];
    for Case {
        file,
        format,
        dtypes,
        prefix,
        step,
    } in cases
    {
        let out = tmp.path().join(file.replace('.', "_"));
        let report = import_checkpoint(&ImportOptions::new(
            tiny(file),
            tiny("all_config.yaml"),
            &out,
        ))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        println!("{file}:\n{report}");
        assert_eq!(report.format, format, "{file}");
        assert_eq!(report.tensors, 16, "{file}");
        assert_eq!(report.step, step, "{file}");
        assert_eq!(report.prefixes, vec![prefix.to_string()], "{file}");
        let found: Vec<(&str, usize)> = report
            .dtypes
            .iter()
            .map(|(k, n)| (k.as_str(), *n))
            .collect();
        assert_eq!(found, dtypes, "{file}");
        // The data sizes came from the tensors, and each decision is reported.
        assert_eq!(report.model["seq_len"].as_integer(), Some(4));
        assert_eq!(report.model["vocab_size"].as_integer(), Some(5));
        assert_eq!(report.model["num_puzzle_identifiers"].as_integer(), Some(2));
        assert_eq!(report.model["forward_dtype"].as_str(), Some("bfloat16"));
        let noted: Vec<&str> = report.notes.iter().map(|n| n.key.as_str()).collect();
        for key in [
            "model.seq_len",
            "model.vocab_size",
            "model.num_puzzle_identifiers",
            "arch.forward_dtype",
            "project_name",
            "run_name",
            "checkpoint_path",
        ] {
            assert!(noted.contains(&key), "{file}: {key} not noted in {noted:?}");
        }

        // The run directory is what `hrm solve` / `hrm eval` read.
        let loaded = load_model(&out, Device::Cpu).expect("the imported run loads");
        assert_eq!(loaded.step, step);
        assert_eq!(loaded.checkpoint, report.checkpoint_dir);
        assert!(out.join("config.toml").is_file() && out.join("metrics.jsonl").is_file());
        let params = loaded.model.params().all();
        assert_eq!(params.len(), 16);
        for (i, (name, t)) in params.iter().enumerate() {
            assert_eq!(t.kind(), Kind::Float, "{file}: {name}");
            let want = tiny_values(i, &t.size());
            assert_eq!(max_abs_diff(t, &want), 0.0, "{file}: {name} differs");
        }
        // Marked as imported, with no optimiser state.
        let record = read_import_record(&out)
            .expect("readable")
            .expect("import.json");
        assert!(!record.resumable);
        assert_eq!(record.tensors, 16);
        let ckpt = checkpoint::load(&report.checkpoint_dir).expect("checkpoint");
        assert!(ckpt.optimizer.is_empty() && ckpt.state.adam_steps.is_empty());
        assert!(read_import_record(tmp.path())
            .expect("no record is fine")
            .is_none());
    }
}

#[test]
fn a_dataset_fills_the_sizes_and_is_checked_against_the_tensors() {
    single_thread();
    let tmp = tempfile::tempdir().expect("tempdir");
    let write_dataset = |dir: &Path, vocab: usize| {
        std::fs::create_dir_all(dir.join("train")).expect("mkdir");
        let meta = format!(
            "{{\"pad_id\": 0, \"ignore_label_id\": 0, \"blank_identifier_id\": 0, \
             \"vocab_size\": {vocab}, \"seq_len\": 4, \"num_puzzle_identifiers\": 2, \
             \"total_groups\": 1, \"mean_puzzle_examples\": 1.0, \"sets\": [\"all\"]}}"
        );
        std::fs::write(dir.join("train/dataset.json"), meta).expect("write");
    };
    let data = tmp.path().join("data");
    write_dataset(&data, 5);
    let mut opts = ImportOptions::new(
        tiny("step_120.pt"),
        tiny("all_config.yaml"),
        tmp.path().join("run"),
    );
    opts.data = Some(data.clone());
    opts.overrides = vec!["model.forward_dtype=float32".into()];
    let report = import_checkpoint(&opts).expect("imports");
    assert_eq!(report.model["forward_dtype"].as_str(), Some("float32"));
    assert!(
        !report.notes.iter().any(|n| n.key == "model.seq_len"),
        "sizes come from the dataset, not inferred: {:?}",
        report.notes
    );
    let loaded = load_model(&opts.out, Device::Cpu).expect("loads");
    assert_eq!(loaded.config.data_path, data);

    // A dataset whose vocabulary differs: the embedding and the head are named.
    let other = tmp.path().join("data6");
    write_dataset(&other, 6);
    opts.data = Some(other);
    opts.out = tmp.path().join("run6");
    let err = import_checkpoint(&opts).expect_err("vocabulary 6 does not fit");
    let msg = err.to_string();
    assert!(
        msg.contains(
            "`inner.embed_tokens.embedding_weight` has shape [5, 8], the model expects [6, 8]"
        ) && msg.contains("inner.lm_head.weight"),
        "{msg}"
    );
    assert!(!opts.out.exists(), "nothing written on failure");
}

#[test]
fn import_refuses_non_checkpoints_truncated_files_and_misfits() {
    single_thread();
    let tmp = tempfile::tempdir().expect("tempdir");
    let yaml = tiny("all_config.yaml");
    let try_import = |ckpt: &Path, overrides: &[&str]| {
        let mut opts = ImportOptions::new(ckpt, &yaml, tmp.path().join("out"));
        opts.overrides = overrides.iter().map(|s| s.to_string()).collect();
        let r = import_checkpoint(&opts);
        assert!(
            !opts.out.exists(),
            "a failed import leaves no run directory"
        );
        r
    };
    let torch_file_error = |r: Result<_, TrainError>, needle: &str| match r {
        Err(TrainError::TorchFile { path, reason }) => {
            assert!(reason.contains(needle), "{}: {reason}", path.display());
            println!("refused {}: {reason}", path.display());
        }
        Err(other) => panic!("expected a TorchFile error with `{needle}`, got: {other}"),
        Ok(_) => panic!("expected a TorchFile error with `{needle}`, got success"),
    };

    // Not checkpoints: a YAML file, an empty file, a plain pickle.
    torch_file_error(try_import(&yaml, &[]), "neither a zip archive");
    let empty = tmp.path().join("empty.pt");
    std::fs::write(&empty, b"").expect("write");
    torch_file_error(try_import(&empty, &[]), "the file is empty");
    let pickle = tmp.path().join("pickle.pt");
    std::fs::write(&pickle, b"\x80\x02N.").expect("write");
    torch_file_error(try_import(&pickle, &[]), "magic number");

    // Truncated: a zip without its central directory, a legacy file cut in its storages.
    let bytes = std::fs::read(tiny("step_120.pt")).expect("read");
    let cut = tmp.path().join("cut.pt");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    torch_file_error(try_import(&cut, &[]), "zip archive");
    let legacy = std::fs::read(tiny("legacy_f32.pt")).expect("read");
    let cut_legacy = tmp.path().join("cut_legacy.pt");
    std::fs::write(&cut_legacy, &legacy[..legacy.len() * 3 / 4]).expect("write");
    torch_file_error(try_import(&cut_legacy, &[]), "truncated");
    // Corrupt: one flipped byte in a storage fails the entry's CRC.
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let corrupt = tmp.path().join("corrupt.pt");
    std::fs::write(&corrupt, &flipped).expect("write");
    torch_file_error(try_import(&corrupt, &[]), "cannot be read");

    // Tensors that do not fit the config: every problem is named with both shapes.
    let ckpt = tiny("step_120.pt");
    let mismatches = |r: Result<_, TrainError>| match r {
        Err(TrainError::TensorMismatch { mismatches, .. }) => mismatches,
        Err(other) => panic!("expected a TensorMismatch, got: {other}"),
        Ok(_) => panic!("expected a TensorMismatch, got success"),
    };
    let wide = try_import(&ckpt, &["model.hidden_size=16"]);
    let msg = wide
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        msg.contains("`inner.q_head.weight` has shape [2, 8], the model expects [2, 16]"),
        "{msg}"
    );
    let found = mismatches(wide);
    assert!(found.contains(&TensorMismatch::Shape {
        name: "inner.embed_tokens.embedding_weight".into(),
        expected: vec![5, 16],
        found: vec![5, 8],
    }));
    let found = mismatches(try_import(
        &ckpt,
        &["model.pos_encodings=rope", "model.seq_len=4"],
    ));
    assert_eq!(
        found,
        vec![TensorMismatch::Unexpected {
            name: "inner.embed_pos.embedding_weight".into(),
            found: vec![5, 8],
        }]
    );
    let found = mismatches(try_import(&ckpt, &["model.L_layers=2"]));
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found.contains(&TensorMismatch::Missing {
        name: "inner.L_level.layers.1.self_attn.qkv_proj.weight".into(),
        expected: vec![24, 8],
    }));

    // A model key our models do not have is an error naming it.
    let err = try_import(&ckpt, &["model.flash_attn=true"]).expect_err("unknown key");
    assert!(err.to_string().contains("flash_attn"), "{err}");

    // An existing, non-empty run directory is never overwritten.
    let out = tmp.path().join("taken");
    std::fs::create_dir_all(&out).expect("mkdir");
    std::fs::write(out.join("keep.txt"), b"mine").expect("write");
    let err = import_checkpoint(&ImportOptions::new(&ckpt, &yaml, &out)).expect_err("taken");
    assert!(matches!(err, TrainError::ImportTarget { .. }), "{err}");
    assert_eq!(std::fs::read(out.join("keep.txt")).expect("kept"), b"mine");
    // No temporary directories are left behind by any of the failures.
    let leftovers: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A Python with the reference's torch: `$HRM_TORCH_PYTHON`, else the one `cargo xtask setup`
/// installed libtorch with (found from `$LIBTORCH` or the checkout's `.libtorch` link).
fn torch_python() -> Result<Command, String> {
    let command = if let Some(python) = std::env::var_os("HRM_TORCH_PYTHON") {
        Command::new(python)
    } else {
        let link = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.libtorch");
        let torch_dir = std::env::var_os("LIBTORCH")
            .map(PathBuf::from)
            .unwrap_or(link);
        let torch_dir = std::fs::canonicalize(&torch_dir).map_err(|e| {
            format!(
                "no libtorch directory at {} ({e}); set HRM_TORCH_PYTHON",
                torch_dir.display()
            )
        })?;
        let site = torch_dir
            .parent()
            .ok_or("the libtorch directory has no parent")?
            .to_path_buf();
        // A venv keeps its python three levels above site-packages (lib/python3.X/...); a
        // `pip --target` install needs the system python with PYTHONPATH.
        let venv_python = site.join("../../../bin/python");
        if venv_python.is_file() {
            Command::new(venv_python)
        } else {
            let mut c = Command::new("python3");
            c.env("PYTHONPATH", &site);
            c
        }
    };
    Ok(command)
}

fn golden_case(var: &str, default: &str, name: &str) -> PathBuf {
    let dir = match std::env::var_os(var) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared")
            .join(default),
    };
    let case = dir.join(name);
    assert!(
        case.join("config.json").is_file(),
        "golden case {} does not exist (set {var} to point elsewhere)",
        case.display()
    );
    case
}

/// Saves `case`'s weights with torch (`step_7.pt`: `_orig_mod.model.` names in float32;
/// `bf16.pt`: `model.` names in bfloat16) into `saved`; `Err` says why it could not.
fn save_with_torch(case: &Path, saved: &Path) -> Result<(), String> {
    let mut python = torch_python()?;
    let out = python
        .arg(fixtures().join("make_fixtures.py"))
        .arg("golden")
        .arg(case)
        .arg(saved)
        .output()
        .map_err(|e| format!("cannot run Python: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "the Python with torch failed ({}): {}",
            out.status,
            stderr.lines().last().unwrap_or("")
        ))
    }
}

/// Imports the torch saves of `case` with `yaml` and checks the weights are bit-exact (float32)
/// or the bfloat16 rounding of the golden ones, and that the golden check passes on them; then
/// hands the float32 save, the YAML and a scratch directory to `more`.
fn import_golden(
    case: &Path,
    yaml: &str,
    overrides: &[&str],
    more: impl FnOnce(&Path, &Path, &Path),
) -> Option<ImportReport> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let saved = tmp.path().join("saved");
    // The weights are 0.5-1.6 MB: saved here with the reference's torch rather than committed.
    if let Err(why) = save_with_torch(case, &saved) {
        println!(
            "SKIPPED {}: no torch to write the checkpoint: {why}",
            case.display()
        );
        return None;
    }
    let yaml = fixtures().join(yaml);
    let golden: Vec<(String, Tensor)> =
        hrm_core::weights::read_safetensors(&case.join("weights.safetensors")).expect("weights");
    let import = |file: &str, run: &str| {
        let mut opts = ImportOptions::new(saved.join(file), &yaml, tmp.path().join(run));
        opts.overrides = overrides.iter().map(|s| s.to_string()).collect();
        let report = import_checkpoint(&opts).unwrap_or_else(|e| panic!("{file}: {e}"));
        println!("{report}");
        let loaded = load_model(&opts.out, Device::Cpu).expect("loads");
        (report, loaded)
    };
    let compare = |loaded: &checkpoint::LoadedModel, kind: Kind| {
        let params = loaded.model.params().all();
        assert_eq!(params.len(), golden.len());
        for (name, want) in &golden {
            let short = name.trim_start_matches("model.");
            let got = &params
                .iter()
                .find(|(n, _)| n == short)
                .unwrap_or_else(|| panic!("{short} not imported"))
                .1;
            let want = want.to_kind(kind).to_kind(Kind::Float);
            assert_eq!(max_abs_diff(got, &want), 0.0, "{short} is not bit-exact");
        }
    };

    let (report, loaded) = import("step_7.pt", "run");
    assert_eq!(report.step, 7);
    assert_eq!(report.prefixes, vec!["_orig_mod.model.".to_string()]);
    assert_eq!(report.model["forward_dtype"].as_str(), Some("float32"));
    compare(&loaded, Kind::Float);
    // The golden check on the imported weights: the case with its weights file replaced.
    let check = tmp.path().join(case.file_name().expect("case name"));
    std::fs::create_dir_all(&check).expect("mkdir");
    for f in ["config.json", "batch.safetensors", "expected.safetensors"] {
        std::fs::copy(case.join(f), check.join(f)).expect("copy");
    }
    loaded
        .model
        .params()
        .save_safetensors(&check.join("weights.safetensors"), "model.")
        .expect("write weights");
    let result = check_case(&check).expect("the case runs");
    println!("{result}");
    assert!(result.passed(), "{result}");

    // The bfloat16 save imports as the golden weights rounded to bfloat16.
    let (bf16, loaded) = import("bf16.pt", "run_bf16");
    assert_eq!(bf16.dtypes.get("bfloat16"), Some(&golden.len()));
    assert_eq!(bf16.prefixes, vec!["model.".to_string()]);
    compare(&loaded, Kind::BFloat16);
    more(&saved.join("step_7.pt"), &yaml, tmp.path());
    Some(report)
}

#[test]
fn an_hrm_golden_case_saved_by_torch_imports_and_reproduces_its_outputs() {
    single_thread();
    let case = golden_case("HRM_GOLDEN_DIR", "golden", "sudoku_rope_puzzleemb");
    let yaml = "golden_sudoku_rope_puzzleemb.yaml";
    // RoPE: the weights do not say how long a sequence is, so without the override (or the
    // dataset) the import stops, naming the key.
    let without_seq_len = |saved: &Path, yaml: &Path, scratch: &Path| {
        let opts = ImportOptions::new(saved, yaml, scratch.join("no_seq_len"));
        let err = import_checkpoint(&opts).expect_err("seq_len unknown");
        assert!(
            matches!(&err, TrainError::Config { key, .. } if key == "model.seq_len"),
            "{err}"
        );
    };
    let Some(report) = import_golden(&case, yaml, &["model.seq_len=81"], without_seq_len) else {
        return;
    };
    assert_eq!(report.arch.name(), "hrm");
    assert_eq!(report.model["num_puzzle_identifiers"].as_integer(), Some(3));
}

#[test]
fn a_trm_golden_case_saved_by_torch_imports_and_reproduces_its_outputs() {
    single_thread();
    let case = golden_case("HRM_GOLDEN_TRM_DIR", "golden-trm", "trm_mlp_t_sudoku");
    let yaml = "golden_trm_mlp_t_sudoku.yaml";
    let Some(report) = import_golden(&case, yaml, &[], |_, _, _| {}) else {
        return;
    };
    assert_eq!(report.arch.name(), "trm");
    // The token-mixing MLP fixes the sequence length: 97 rows less 16 puzzle positions.
    assert_eq!(report.model["seq_len"].as_integer(), Some(81));
    let noted: Vec<&str> = report.notes.iter().map(|n| n.key.as_str()).collect();
    assert!(
        noted.contains(&"model.seq_len") && !noted.contains(&"freeze_weights"),
        "{noted:?}"
    );
}
