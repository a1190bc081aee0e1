//! Property tests (a fuzzing harness on stable Rust) of the training side's parsers of outside
//! input: TOML configs with `--set` overrides, the checkpoint's `state.json`, the safetensors
//! files of a checkpoint, and whole checkpoint directories. Random and mutated input must give
//! `Ok` or `Err`, never a panic or an abort; an accepted config must read back from what a
//! checkpoint stores of it.
//!
//! Each property runs 48 cases by default (CI); `PROPTEST_CASES=N` runs N, for long fuzzing
//! sessions: `PROPTEST_CASES=100000 cargo test -p hrm-train --test fuzz_parsers --release`.
//! Findings are turned into the regular tests at the end of this file.

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use hrm_train::checkpoint::{self, FileDigest};
use hrm_train::config::TrainConfig;

/// Cases per property: `PROPTEST_CASES` or 48. No failure files are written: a finding becomes
/// a regular test below.
fn proptest_config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A valid config exercising most keys.
const VALID: &str = r#"arch = "hrm"
data_path = "data/sudoku"
global_batch_size = 16
epochs = 10
eval_interval = 5
checkpoint_every_eval = true
lr = 1e-4
lr_min_ratio = 0.5
lr_warmup_steps = 10
beta1 = 0.9
beta2 = 0.95
weight_decay = 0.1
puzzle_emb_lr = 1e-2
puzzle_emb_weight_decay = 0.1
seed = 3
ema = false
ema_rate = 0.999
max_steps = 100
log_interval = 10
keep_checkpoints = 2
eval_save_outputs = false
on_nonfinite = "stop"
[loss]
loss_type = "stablemax_cross_entropy"
q_loss_weight = 0.5
[model]
H_cycles = 2
L_cycles = 2
H_layers = 1
L_layers = 1
hidden_size = 64
num_heads = 2
expansion = 2.0
pos_encodings = "rope"
puzzle_emb_ndim = 0
halt_max_steps = 4
halt_exploration_prob = 0.1
"#;

/// Keys a config may hold, for overrides and generated lines.
const KEYS: [&str; 34] = [
    "arch",
    "data_path",
    "global_batch_size",
    "epochs",
    "eval_interval",
    "checkpoint_every_eval",
    "lr",
    "lr_min_ratio",
    "lr_warmup_steps",
    "beta1",
    "beta2",
    "weight_decay",
    "puzzle_emb_lr",
    "puzzle_emb_weight_decay",
    "seed",
    "ema",
    "ema_rate",
    "max_steps",
    "log_interval",
    "keep_checkpoints",
    "on_nonfinite",
    "loss.loss_type",
    "loss.q_loss_weight",
    "model.H_cycles",
    "model.L_cycles",
    "model.H_layers",
    "model.L_layers",
    "model.hidden_size",
    "model.num_heads",
    "model.expansion",
    "model.pos_encodings",
    "model.halt_max_steps",
    "model.mlp_t",
    "model.puzzle_emb_len",
];

/// TOML values of every kind, including the awkward ones.
fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        1 => any::<i64>().prop_map(|v| v.to_string()),
        3 => (0i64..5000).prop_map(|v| v.to_string()),
        2 => (0.0f64..1.0).prop_map(|v| format!("{v:?}")),
        1 => any::<f64>().prop_map(|v| format!("{v:e}")),
        2 => prop_oneof![
            Just("nan"),
            Just("inf"),
            Just("-inf"),
            Just("+nan"),
            Just("1e400"),
            Just("-0.0"),
            Just("18446744073709551616"),
            Just("9223372036854775807"),
            Just("true"),
            Just("\"hrm\""),
            Just("\"trm\""),
            Just("\"gru\""),
            Just("\"transformer\""),
            Just("\"rope\""),
            Just("\"none\""),
            Just("\"skip\""),
            Just("\"bfloat16\""),
            Just("1979-05-27T07:32:00Z"),
        ]
        .prop_map(String::from),
        1 => "\"[a-z0-9_ ]{0,8}\"",
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(("[a-z_]{1,6}", inner), 0..3).prop_map(|v| {
                let fields: Vec<String> =
                    v.into_iter().map(|(k, x)| format!("{k} = {x}")).collect();
                format!("{{ {} }}", fields.join(", "))
            }),
        ]
    })
}

/// `--set` strings: well-formed over real keys, and arbitrary text.
fn override_spec() -> impl Strategy<Value = String> {
    prop_oneof![
        (prop::sample::select(KEYS.to_vec()), toml_value()).prop_map(|(k, v)| format!("{k}={v}")),
        (prop::sample::select(KEYS.to_vec()), "[ -~]{0,12}").prop_map(|(k, v)| format!("{k}={v}")),
        "[ -~]{0,30}",
        "[a-z_.]{0,12}=[a-z0-9.]{0,8}",
    ]
}

/// Edits of a text: (position, kind, character).
fn edits() -> impl Strategy<Value = Vec<(usize, u8, char)>> {
    prop::collection::vec(
        (
            any::<usize>(),
            0u8..4,
            prop_oneof![
                Just('='),
                Just('"'),
                Just('['),
                Just(']'),
                Just('\n'),
                Just('.'),
                Just('#'),
                Just('\''),
                Just('{'),
                any::<char>()
            ],
        ),
        1..6,
    )
}

/// Applies `edits` to `text` at character positions: insert, delete, replace, or cut there.
fn mutate_text(text: &str, edits: &[(usize, u8, char)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for &(pos, kind, c) in edits {
        if chars.is_empty() {
            chars.push(c);
            continue;
        }
        let i = pos % chars.len();
        match kind {
            0 => chars.insert(i, c),
            1 => {
                chars.remove(i);
            }
            2 => chars[i] = c,
            _ => chars.truncate(i),
        }
    }
    chars.into_iter().collect()
}

/// Edits of bytes: (position, kind, byte).
fn byte_edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec((any::<usize>(), 0u8..5, any::<u8>()), 1..8)
}

/// Applies `edits` to `bytes`: flip, insert, delete, truncate, or overwrite 8 bytes with a
/// little-endian length-like value.
fn mutate_bytes(bytes: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for &(pos, kind, b) in edits {
        if out.is_empty() {
            out.push(b);
            continue;
        }
        // Half of the edits land in the first 256 bytes: the length prefix and the header.
        let i = if pos % 2 == 0 {
            pos / 2 % out.len().min(256)
        } else {
            pos / 2 % out.len()
        };
        match kind {
            0 => out[i] ^= b | 1,
            1 => out.insert(i, b),
            2 => {
                out.remove(i);
            }
            3 => out.truncate(i),
            _ => {
                let v = (u64::from(b) << (8 * (pos % 8))).to_le_bytes();
                for (k, x) in v.iter().enumerate() {
                    if let Some(slot) = out.get_mut(i + k) {
                        *slot = *x;
                    }
                }
            }
        }
    }
    out
}

/// [`VALID`] with the dotted `keys` set to the given TOML values (replacing or adding them,
/// each in its own table), as text.
fn with_values(values: &[(&str, String)]) -> String {
    let mut tables: Vec<(String, Vec<(String, String)>)> = vec![(String::new(), Vec::new())];
    for line in VALID.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            tables.push((name.to_string(), Vec::new()));
        } else if let Some((k, v)) = line.split_once(" = ") {
            if let Some(last) = tables.last_mut() {
                last.1.push((k.to_string(), v.to_string()));
            }
        }
    }
    for (key, value) in values {
        let (table, key) = key.rsplit_once('.').unwrap_or(("", key));
        let entries = match tables.iter_mut().position(|(t, _)| t == table) {
            Some(i) => &mut tables[i].1,
            None => {
                tables.push((table.to_string(), Vec::new()));
                &mut tables.last_mut().expect("pushed").1
            }
        };
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.clone(),
            None => entries.push((key.to_string(), value.clone())),
        }
    }
    let mut text = String::new();
    for (table, entries) in tables {
        if !table.is_empty() {
            text.push_str(&format!("[{table}]\n"));
        }
        for (k, v) in entries {
            text.push_str(&format!("{k} = {v}\n"));
        }
    }
    text
}

/// What a config must satisfy when accepted: it validates, and the text a checkpoint stores
/// of it reads back to the same config.
fn check_config(text: &str, overrides: &[String]) -> Result<(), TestCaseError> {
    match TrainConfig::from_toml_str(text, overrides) {
        Ok(cfg) => {
            prop_assert!(cfg.validate().is_ok());
            let stored = cfg.to_toml_string();
            let back = TrainConfig::from_toml_str(&stored, &[]);
            prop_assert!(
                back.is_ok(),
                "accepted config does not read back: {:?}\n{stored}",
                back.err().map(|e| e.to_string())
            );
            prop_assert_eq!(back.map(|b| b.to_toml_string()).ok(), Some(stored));
        }
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn config_random_text(text in "[ -~\n]{0,400}", overrides in prop::collection::vec(override_spec(), 0..3)) {
        check_config(&text, &overrides)?;
    }

    #[test]
    fn config_mutated_valid_text(e in edits(), overrides in prop::collection::vec(override_spec(), 0..2)) {
        check_config(&mutate_text(VALID, &e), &overrides)?;
    }

    #[test]
    fn config_generated_lines(
        lines in prop::collection::vec((prop::sample::select(KEYS.to_vec()), toml_value()), 0..8),
        overrides in prop::collection::vec(override_spec(), 0..2),
    ) {
        // The valid config with some keys given other values (each key once, in its table).
        check_config(&with_values(&lines), &overrides)?;
    }

    #[test]
    fn state_json_random_and_mutated(bytes in prop::collection::vec(any::<u8>(), 0..300), e in byte_edits(), text_edits in edits()) {
        let p = Path::new("state.json");
        let _ = checkpoint::parse_state(&bytes, p);
        let base = fixture().state.as_slice();
        let _ = checkpoint::parse_state(&mutate_bytes(base, &e), p);
        let text = String::from_utf8_lossy(base).into_owned();
        let _ = checkpoint::parse_state(mutate_text(&text, &text_edits).as_bytes(), p);
    }

    #[test]
    fn state_json_generated(
        version in prop_oneof![Just(1u32), Just(2u32), any::<u32>()],
        step in any::<u64>(),
        names in prop::collection::vec(prop_oneof![
            Just("model.safetensors".to_string()),
            Just("optimizer.safetensors".to_string()),
            Just("state.json".to_string()),
            Just("../model.safetensors".to_string()),
            Just("".to_string()),
            "[ -~]{0,12}",
        ], 0..4),
        sizes in prop::collection::vec(any::<u64>(), 4),
        digests in prop::collection::vec(prop_oneof!["[0-9a-f]{64}", "[ -~]{0,70}"], 4),
    ) {
        let mut value: serde_json::Value = serde_json::from_slice(&fixture().state).expect("json");
        value["format_version"] = version.into();
        value["step"] = step.into();
        let files: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(sizes.iter().zip(&digests))
            .map(|(n, (s, d))| (n.clone(), serde_json::json!({"bytes": s, "sha256": d})))
            .collect();
        value["files"] = files.into();
        let bytes = serde_json::to_vec(&value).expect("json");
        // Through the parser, and as the state.json of a real checkpoint directory.
        let _ = checkpoint::parse_state(&bytes, Path::new("state.json"));
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["model.safetensors", "optimizer.safetensors"] {
            std::fs::copy(fixture().dir.join(name), dir.path().join(name)).expect("copy");
        }
        std::fs::write(dir.path().join("state.json"), &bytes).expect("write");
        let _ = checkpoint::load(dir.path());
    }

    #[test]
    fn safetensors_random_and_mutated(bytes in prop::collection::vec(any::<u8>(), 0..400), e in byte_edits(), which in 0usize..2) {
        let p = Path::new("model.safetensors");
        if let Ok(tensors) = checkpoint::read_tensors(&bytes, p) {
            let _ = checkpoint::check_finite(&tensors, p);
        }
        let base = if which == 0 { &fixture().model } else { &fixture().optimizer };
        if let Ok(tensors) = checkpoint::read_tensors(&mutate_bytes(base, &e), p) {
            let _ = checkpoint::check_finite(&tensors, p);
        }
    }

    #[test]
    fn safetensors_generated_headers(
        entries in prop::collection::vec((
            "[a-z.]{0,8}",
            prop_oneof![
                Just("F32"), Just("F64"), Just("F16"), Just("BF16"), Just("I64"), Just("I32"),
                Just("I16"), Just("I8"), Just("U8"), Just("BOOL"), Just("U64"), Just("F8_E4M3"),
                Just("C64"), Just("X"),
            ],
            prop::collection::vec(prop_oneof![0u64..5, Just(u64::MAX), Just(1u64 << 32), Just(1u64 << 62), any::<u64>()], 0..4),
            (prop_oneof![0u64..64, any::<u64>()], prop_oneof![0u64..64, any::<u64>()]),
        ), 0..4),
        data_len in 0usize..96,
        fill in any::<u8>(),
        metadata in prop::bool::ANY,
        length_delta in prop_oneof![Just(0i64), -4i64..4, any::<i64>()],
        consistent in prop::bool::ANY,
    ) {
        let mut header = serde_json::Map::new();
        if metadata {
            header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
        }
        // Half of the cases get offsets that agree with the shapes and a body of the right
        // size, so that tensors are built from the bytes (NaN patterns included).
        let mut data_len = data_len;
        let mut length_delta = length_delta;
        let mut end = 0u64;
        const SUPPORTED: [(&str, u64); 10] = [
            ("F32", 4), ("F64", 8), ("F16", 2), ("BF16", 2), ("I64", 8), ("I32", 4),
            ("I16", 2), ("I8", 1), ("U8", 1), ("BOOL", 1),
        ];
        for (i, (name, dtype, shape, (a, b))) in entries.iter().enumerate() {
            let (mut a, mut b) = (*a, *b);
            let mut name = name.clone();
            let mut dtype = *dtype;
            let mut shape = shape.clone();
            if consistent {
                let (d, size) = SUPPORTED[(a % SUPPORTED.len() as u64) as usize];
                dtype = d;
                name = format!("{name}{i}");
                for x in &mut shape {
                    *x %= 5;
                }
                let n = shape.iter().product::<u64>() * size;
                a = end;
                b = end + n;
                end = b;
            }
            header.insert(
                name,
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [a, b]}),
            );
        }
        if consistent {
            data_len = end as usize;
            length_delta = 0;
        }
        let json = serde_json::to_vec(&header).expect("json");
        let len = (json.len() as i64).wrapping_add(length_delta) as u64;
        let mut bytes = len.to_le_bytes().to_vec();
        bytes.extend_from_slice(&json);
        bytes.extend(std::iter::repeat_n(fill, data_len));
        let p = Path::new("model.safetensors");
        if let Ok(tensors) = checkpoint::read_tensors(&bytes, p) {
            let _ = checkpoint::check_finite(&tensors, p);
        }
    }

    #[test]
    fn checkpoint_with_mutated_weights_and_matching_digest(e in byte_edits()) {
        // A damaged file whose digest was recomputed reaches the header checks, the finite
        // check and the model's name and shape checks of `load_model`.
        let f = fixture();
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = mutate_bytes(&f.model, &e);
        std::fs::write(dir.path().join("model.safetensors"), &bytes).expect("write");
        std::fs::copy(f.dir.join("optimizer.safetensors"), dir.path().join("optimizer.safetensors"))
            .expect("copy");
        let mut state = checkpoint::parse_state(&f.state, Path::new("state.json")).expect("state");
        state.files.insert("model.safetensors".into(), FileDigest::of(&bytes));
        std::fs::write(dir.path().join("state.json"), serde_json::to_vec(&state).expect("json"))
            .expect("write");
        let _ = checkpoint::load_model(dir.path(), tch::Device::Cpu);
    }
}

/// A real checkpoint of a tiny model, written once: its directory and file contents.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    state: Vec<u8>,
    model: Vec<u8>,
    optimizer: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        tch::set_num_threads(1);
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("sudoku4");
        let mut opts = hrm_data::sudoku::SudokuOptions::new(&data);
        opts.size = 4;
        opts.train = 32;
        opts.test = 8;
        opts.aug = 0;
        hrm_data::sudoku::build_sudoku(&opts).expect("dataset");
        let text = VALID
            .replace("data/sudoku", &data.display().to_string())
            .replace("max_steps = 100", "max_steps = 2")
            .replace("hidden_size = 64", "hidden_size = 16");
        let cfg = TrainConfig::from_toml_str(&text, &[]).expect("valid");
        let summary = hrm_train::trainer::train(hrm_train::trainer::TrainOptions::new(
            cfg,
            tmp.path().join("run"),
            tch::Device::Cpu,
        ))
        .expect("a short run");
        let dir = summary.checkpoint.expect("a checkpoint");
        let read = |name: &str| std::fs::read(dir.join(name)).expect("read");
        Fixture {
            state: read("state.json"),
            model: read("model.safetensors"),
            optimizer: read("optimizer.safetensors"),
            dir,
            _tmp: tmp,
        }
    })
}
