//! Every file in `configs/` is a valid training config: it parses as a [`TrainConfig`], names the
//! command it reproduces in a comment header, and its model table builds a model of the declared
//! architecture once the data-derived sizes are filled in.

use std::path::{Path, PathBuf};

use hrm_data::DatasetMetadata;
use hrm_train::arch::{build_model, ArchModel};
use hrm_train::config::{Arch, TrainConfig};

fn config_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// Small data-derived sizes: 30x30-like sequences would only make the models slower to build.
fn metadata(num_puzzle_identifiers: usize) -> DatasetMetadata {
    DatasetMetadata {
        pad_id: 0,
        ignore_label_id: Some(0),
        blank_identifier_id: 0,
        vocab_size: 12,
        seq_len: 16,
        num_puzzle_identifiers,
        total_groups: 10,
        mean_puzzle_examples: 1.0,
        total_puzzles: None,
        sets: vec!["all".into()],
    }
}

#[test]
fn every_config_parses_and_builds_its_model() {
    let files = config_files();
    let names: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for want in [
        "default.toml",
        "hrm-sudoku-extreme-1k.toml",
        "hrm-maze-30x30-hard-1k.toml",
        "hrm-arc-agi-1.toml",
        "hrm-arc-agi-2.toml",
        "trm-sudoku-extreme-mlp-t.toml",
        "trm-maze-30x30-hard.toml",
        "trm-arc-agi-1.toml",
        "trm-arc-agi-2.toml",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    let _guard = tch::no_grad_guard();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable");
        assert!(
            text.lines().next().is_some_and(|l| l.starts_with("# ")),
            "{}: no comment header",
            path.display()
        );
        let cfg =
            TrainConfig::from_path(path, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let meta = metadata(
            if cfg
                .model
                .get("puzzle_emb_ndim")
                .and_then(|v| v.as_integer())
                .unwrap_or(0)
                > 0
            {
                7
            } else {
                1
            },
        );
        let model_table = cfg
            .resolved_model(&meta, "float32")
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let model = build_model(cfg.arch, &model_table, tch::Device::Cpu)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            matches!(model, ArchModel::Recurrent(_)),
            cfg.arch.is_recurrent(),
            "{}",
            path.display()
        );
        assert_eq!(model.dims().seq_len, 16, "{}", path.display());
        assert!(model.params().num_trainable() > 0);
    }
}

#[test]
fn the_reference_recipes_keep_their_hyperparameters() {
    let read = |name: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs")
            .join(name);
        TrainConfig::from_path(&path, &[]).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let int = |cfg: &TrainConfig, key: &str| cfg.model.get(key).and_then(|v| v.as_integer());

    let hrm = read("hrm-sudoku-extreme-1k.toml");
    assert_eq!(hrm.arch, Arch::Hrm);
    assert_eq!(
        (hrm.global_batch_size, hrm.lr, hrm.puzzle_emb_lr),
        (384, 7e-5, 7e-5)
    );
    assert_eq!((hrm.weight_decay, hrm.puzzle_emb_weight_decay), (1.0, 1.0));
    assert_eq!((hrm.epochs, hrm.eval_interval), (20000, Some(2000)));
    assert_eq!((hrm.lr_warmup_steps, hrm.lr_min_ratio), (2000, 1.0));
    assert_eq!((hrm.beta1, hrm.beta2), (0.9, 0.95));
    assert_eq!(int(&hrm, "hidden_size"), Some(512));
    assert_eq!(int(&hrm, "H_layers"), Some(4));
    assert_eq!(int(&hrm, "halt_max_steps"), Some(16));

    let maze = read("hrm-maze-30x30-hard-1k.toml");
    assert_eq!(
        (maze.global_batch_size, maze.lr, maze.puzzle_emb_lr),
        (768, 1e-4, 1e-4)
    );
    for name in ["hrm-arc-agi-1.toml", "hrm-arc-agi-2.toml"] {
        let arc = read(name);
        assert_eq!(
            (arc.global_batch_size, arc.lr, arc.puzzle_emb_lr),
            (768, 1e-4, 1e-2),
            "{name}"
        );
        assert_eq!(
            (arc.weight_decay, arc.epochs, arc.eval_interval),
            (0.1, 100000, Some(10000)),
            "{name}"
        );
    }

    for name in [
        "trm-sudoku-extreme-mlp-t.toml",
        "trm-maze-30x30-hard.toml",
        "trm-arc-agi-1.toml",
        "trm-arc-agi-2.toml",
    ] {
        let trm = read(name);
        assert_eq!(trm.arch, Arch::Trm, "{name}");
        assert!(trm.ema, "{name}: the TRM recipes use ema=True");
        assert_eq!(int(&trm, "L_layers"), Some(2), "{name}");
        assert_eq!(int(&trm, "H_cycles"), Some(3), "{name}");
    }
    let sudoku = read("trm-sudoku-extreme-mlp-t.toml");
    assert_eq!(int(&sudoku, "L_cycles"), Some(6));
    assert_eq!(
        sudoku.model.get("mlp_t").and_then(|v| v.as_bool()),
        Some(true)
    );
    assert_eq!(
        sudoku.model.get("pos_encodings").and_then(|v| v.as_str()),
        Some("none")
    );
    assert_eq!((sudoku.epochs, sudoku.eval_interval), (50000, Some(5000)));
    assert_eq!(int(&read("trm-maze-30x30-hard.toml"), "L_cycles"), Some(4));
    assert_eq!(read("trm-arc-agi-2.toml").puzzle_emb_lr, 1e-2);
}
