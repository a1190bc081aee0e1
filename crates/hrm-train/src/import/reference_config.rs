//! Mapping the reference's `all_config.yaml` onto a [`TrainConfig`](crate::config::TrainConfig)
//! table.
//!
//! `pretrain.py` (sapientinc/HRM, and SamsungSAILMontreal/TinyRecursiveModels, which adds a few
//! keys) dumps its `PretrainConfig` with `yaml.dump` beside the checkpoints: the training
//! hyperparameters at the top level, and `arch` holding the model's name, its loss head
//! (`arch.loss`) and every model key. Our config uses the same key names, so most keys copy
//! across; this module decides the rest and records each decision as a [`ConfigNote`]:
//!
//! | reference key | here |
//! |---|---|
//! | `arch.name` | `arch`: `hrm` for `hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1` (and TinyRecursiveModels' `recursive_reasoning.hrm@...`), `trm` for `recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1`; any other model is an error |
//! | `arch.loss.name` | must be `losses@ACTLossHead` (error otherwise) |
//! | `arch.loss.loss_type` | `loss.loss_type` |
//! | other `arch.*` | `[model]`, same names; keys our models do not know are errors when the model is built |
//! | `arch.forward_dtype` absent | `bfloat16`, the reference's default (noted) |
//! | `arch.batch_size`, `arch.causal = false`, HRM's `arch.mlp_t = false` | dropped (noted); `causal`/`mlp_t` true are errors |
//! | `data_path` (`data_paths[0]` in TRM) | `data_path`; further `data_paths` are ignored (noted) |
//! | `global_batch_size`, `epochs`, `lr`, `lr_min_ratio`, `lr_warmup_steps`, `weight_decay`, `beta1`, `beta2`, `puzzle_emb_lr`, `puzzle_emb_weight_decay`, `seed`, `checkpoint_every_eval`, `eval_interval`, `ema`, `ema_rate` | same key |
//! | `eval_save_outputs` (a list of names) | `eval_save_outputs = true` when the list is not empty (noted) |
//! | `project_name`, `run_name`, `checkpoint_path`, `load_checkpoint`, `data_paths_test`, `evaluators`, `min_eval_interval`, `freeze_weights`, unknown keys | ignored (noted) |
//!
//! Our own keys the reference lacks (`max_steps`, `log_interval`, `keep_checkpoints`,
//! `loss.q_loss_weight`, which the reference fixes at 0.5) keep their defaults.

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

use crate::config::Arch;
use crate::error::{Result, TrainError};

/// What the import did with one key of `all_config.yaml` other than copying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigNote {
    /// The key as written in the YAML, dotted (`arch.forward_dtype`).
    pub key: String,
    /// What happened to it and why.
    pub note: String,
}

impl std::fmt::Display for ConfigNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.key, self.note)
    }
}

/// `all_config.yaml` mapped onto our config.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedConfig {
    /// A table in [`TrainConfig`](crate::config::TrainConfig)'s shape. The data-derived model
    /// sizes (`seq_len`, `vocab_size`, `num_puzzle_identifiers`) are absent, as in the reference.
    pub table: toml::Table,
    /// The architecture.
    pub arch: Arch,
    /// Keys that were not copied as they are.
    pub notes: Vec<ConfigNote>,
}

/// The reference's model names and the architecture each maps to.
pub const REFERENCE_ARCHS: [(&str, Arch); 3] = [
    ("hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1", Arch::Hrm),
    (
        "recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1",
        Arch::Hrm,
    ),
    (
        "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1",
        Arch::Trm,
    ),
];

/// The reference's loss head, the only one supported.
pub const REFERENCE_LOSS_HEAD: &str = "losses@ACTLossHead";

/// Top-level keys copied under the same name.
const SAME_KEYS: [&str; 15] = [
    "global_batch_size",
    "epochs",
    "lr",
    "lr_min_ratio",
    "lr_warmup_steps",
    "weight_decay",
    "beta1",
    "beta2",
    "puzzle_emb_lr",
    "puzzle_emb_weight_decay",
    "seed",
    "checkpoint_every_eval",
    "eval_interval",
    "ema",
    "ema_rate",
];

/// Top-level keys that have no meaning for an imported model, with the reason.
const IGNORED_KEYS: [(&str, &str); 8] = [
    ("project_name", "a Weights & Biases project name"),
    ("run_name", "a Weights & Biases run name"),
    (
        "checkpoint_path",
        "where the reference wrote its checkpoints; the run directory replaces it",
    ),
    (
        "load_checkpoint",
        "the checkpoint the reference started from; its weights are in this checkpoint already",
    ),
    (
        "data_paths_test",
        "separate test datasets are not supported; evaluation reads the `test` split of data_path",
    ),
    (
        "evaluators",
        "the reference's evaluator plug-ins are not supported (ARC voting is part of `hrm eval`)",
    ),
    ("min_eval_interval", "not supported"),
    ("freeze_weights", "embedding-only training is not supported"),
];

/// Reads and maps `all_config.yaml`.
///
/// # Errors
/// [`TrainError::Io`] when the file cannot be read, otherwise as [`map_reference_config`].
pub fn read_reference_config(path: &Path) -> Result<MappedConfig> {
    let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    map_reference_config(&text, path)
}

/// Maps the text of an `all_config.yaml` (`path` is named in errors).
///
/// # Errors
/// [`TrainError::ReferenceConfig`] naming the key: YAML syntax, a missing or unsupported
/// `arch.name` or loss head, a value of the wrong kind, a model switch we do not implement.
pub fn map_reference_config(text: &str, path: &Path) -> Result<MappedConfig> {
    let err = |key: &str, reason: String| TrainError::ReferenceConfig {
        path: path.to_path_buf(),
        key: key.to_string(),
        reason,
    };
    let docs = YamlLoader::load_from_str(text).map_err(|e| err("<yaml>", e.to_string()))?;
    let root = match docs.as_slice() {
        [Yaml::Hash(h)] => h,
        [] => return Err(err("<yaml>", "the file is empty".into())),
        [_] => return Err(err("<yaml>", "the top level is not a mapping".into())),
        _ => return Err(err("<yaml>", "several YAML documents in one file".into())),
    };
    let mut table = toml::Table::new();
    let mut notes = Vec::new();
    let mut note = |key: &str, text: String| {
        notes.push(ConfigNote {
            key: key.to_string(),
            note: text,
        })
    };
    let mut arch = None;
    for (k, v) in root {
        let Yaml::String(key) = k else {
            return Err(err(
                "<yaml>",
                format!("a top-level key is not a string: {k:?}"),
            ));
        };
        let key = key.as_str();
        if key == "arch" {
            let Yaml::Hash(a) = v else {
                return Err(err("arch", "is not a mapping".into()));
            };
            arch = Some(map_arch(a, path, &mut table, &mut note)?);
            continue;
        }
        if let Some((_, why)) = IGNORED_KEYS.iter().find(|(k, _)| *k == key) {
            // Unset values (null, false, 0, an empty list) change nothing, so go unmentioned.
            let unset = match v {
                Yaml::Null | Yaml::Boolean(false) | Yaml::Integer(0) => true,
                Yaml::Array(a) => a.is_empty(),
                _ => false,
            };
            if !unset {
                note(key, format!("ignored: {why}"));
            }
            continue;
        }
        match key {
            "data_path" => {
                let value = to_toml(v).map_err(|e| err(key, e))?;
                if let Some(value) = value {
                    table.insert("data_path".into(), value);
                }
            }
            "data_paths" => {
                let Yaml::Array(paths) = v else {
                    return Err(err(key, "is not a list".into()));
                };
                match paths.as_slice() {
                    [] => return Err(err(key, "is empty".into())),
                    [first, rest @ ..] => {
                        let Yaml::String(first) = first else {
                            return Err(err(key, "holds a value that is not a path".into()));
                        };
                        table.insert("data_path".into(), toml::Value::String(first.clone()));
                        if !rest.is_empty() {
                            note(
                                key,
                                format!(
                                    "only the first dataset is used as data_path; {} more ignored",
                                    rest.len()
                                ),
                            );
                        }
                    }
                }
            }
            "eval_save_outputs" => {
                let names = match v {
                    Yaml::Array(a) => a.len(),
                    Yaml::Null => 0,
                    _ => return Err(err(key, "is not a list".into())),
                };
                if names > 0 {
                    table.insert(key.into(), toml::Value::Boolean(true));
                    note(
                        key,
                        format!(
                            "the reference lists {names} outputs to save; here eval_save_outputs = \
                             true saves the predictions and Q-halt logits"
                        ),
                    );
                }
            }
            "lr_warmup_steps" => {
                // `pretrain.py` rounds it, so a float is legal there.
                let steps = match v {
                    Yaml::Integer(i) => *i,
                    Yaml::Real(_) => match v.as_f64() {
                        Some(f) if f.is_finite() && f >= 0.0 => {
                            let r = f.round_ties_even();
                            if r != f {
                                note(key, format!("rounded from {f} to {r}, as pretrain.py does"));
                            }
                            r as i64
                        }
                        _ => return Err(err(key, "is not a number of steps".into())),
                    },
                    _ => return Err(err(key, "is not a number of steps".into())),
                };
                table.insert(key.into(), toml::Value::Integer(steps));
            }
            _ if SAME_KEYS.contains(&key) => {
                if let Some(value) = to_toml(v).map_err(|e| err(key, e))? {
                    table.insert(key.into(), value);
                }
            }
            _ => note(
                key,
                "ignored: not a key of the reference's PretrainConfig".into(),
            ),
        }
    }
    let Some(arch) = arch else {
        return Err(err("arch", "missing: the file names no model".into()));
    };
    Ok(MappedConfig { table, arch, notes })
}

/// Maps `arch`: the name, the loss head and the model keys.
fn map_arch(
    a: &yaml_rust2::yaml::Hash,
    path: &Path,
    table: &mut toml::Table,
    note: &mut impl FnMut(&str, String),
) -> Result<Arch> {
    let err = |key: &str, reason: String| TrainError::ReferenceConfig {
        path: path.to_path_buf(),
        key: key.to_string(),
        reason,
    };
    let supported = || {
        REFERENCE_ARCHS
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let arch = match a.get(&Yaml::String("name".into())) {
        Some(Yaml::String(name)) => match REFERENCE_ARCHS.iter().find(|(n, _)| n == name) {
            Some((_, arch)) => *arch,
            None => {
                return Err(err(
                    "arch.name",
                    format!("`{name}` is not supported; supported: {}", supported()),
                ))
            }
        },
        _ => {
            return Err(err(
                "arch.name",
                format!("missing or not a string; supported: {}", supported()),
            ))
        }
    };
    let mut model = toml::Table::new();
    for (k, v) in a {
        let Yaml::String(key) = k else {
            return Err(err("arch", format!("a key is not a string: {k:?}")));
        };
        let dotted = format!("arch.{key}");
        match key.as_str() {
            "name" => {}
            "loss" => {
                let Yaml::Hash(loss) = v else {
                    return Err(err("arch.loss", "is not a mapping".into()));
                };
                let mut mapped = toml::Table::new();
                for (lk, lv) in loss {
                    let Yaml::String(lk) = lk else {
                        return Err(err("arch.loss", format!("a key is not a string: {lk:?}")));
                    };
                    let dotted = format!("arch.loss.{lk}");
                    match lk.as_str() {
                        "name" => match lv {
                            Yaml::String(n) if n == REFERENCE_LOSS_HEAD => {}
                            other => {
                                return Err(err(
                                    &dotted,
                                    format!(
                                        "{other:?} is not supported; only {REFERENCE_LOSS_HEAD}"
                                    ),
                                ))
                            }
                        },
                        "loss_type" => {
                            if let Some(value) = to_toml(lv).map_err(|e| err(&dotted, e))? {
                                mapped.insert("loss_type".into(), value);
                            }
                        }
                        _ => note(
                            &dotted,
                            "ignored: ACTLossHead takes no such argument".into(),
                        ),
                    }
                }
                table.insert("loss".into(), toml::Value::Table(mapped));
            }
            "batch_size" => note(
                &dotted,
                "dropped: the batch size comes from the evaluation, not the model".into(),
            ),
            "causal" | "mlp_t" if !(key == "mlp_t" && arch == Arch::Trm) => match v {
                Yaml::Boolean(false) | Yaml::Null => note(
                    &dotted,
                    "dropped: false is what this implementation always does".into(),
                ),
                other => {
                    return Err(err(
                        &dotted,
                        format!("{other:?} is not supported for this architecture"),
                    ))
                }
            },
            _ => {
                if let Some(value) = to_toml(v).map_err(|e| err(&dotted, e))? {
                    model.insert(key.clone(), value);
                }
            }
        }
    }
    if !model.contains_key("forward_dtype") {
        model.insert(
            "forward_dtype".into(),
            toml::Value::String("bfloat16".into()),
        );
        note(
            "arch.forward_dtype",
            "absent: the reference's default bfloat16 (set model.forward_dtype=float32 to run in \
             float32)"
                .into(),
        );
    }
    table.insert("arch".into(), toml::Value::String(arch.name().into()));
    table.insert("model".into(), toml::Value::Table(model));
    Ok(arch)
}

/// A YAML value as TOML; `None` for null (the key is then left out, as TOML has no null).
fn to_toml(v: &Yaml) -> std::result::Result<Option<toml::Value>, String> {
    Ok(Some(match v {
        Yaml::Null => return Ok(None),
        Yaml::Integer(i) => toml::Value::Integer(*i),
        Yaml::Real(text) => match v.as_f64() {
            Some(f) => toml::Value::Float(f),
            None => return Err(format!("{text:?} is not a number")),
        },
        Yaml::String(s) => toml::Value::String(s.clone()),
        Yaml::Boolean(b) => toml::Value::Boolean(*b),
        Yaml::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match to_toml(item)? {
                    Some(x) => out.push(x),
                    None => return Err("a list holds a null".into()),
                }
            }
            toml::Value::Array(out)
        }
        Yaml::Hash(h) => {
            let mut out = toml::Table::new();
            for (k, x) in h {
                let Yaml::String(k) = k else {
                    return Err(format!("a key is not a string: {k:?}"));
                };
                if let Some(x) = to_toml(x)? {
                    out.insert(k.clone(), x);
                }
            }
            toml::Value::Table(out)
        }
        Yaml::Alias(_) | Yaml::BadValue => return Err("an alias or invalid value".into()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape `yaml.dump(config.model_dump())` gives an HRM Sudoku run (keys sorted).
    const HRM_YAML: &str = "\
arch:
  H_cycles: 2
  H_layers: 4
  L_cycles: 2
  L_layers: 4
  expansion: 4
  halt_exploration_prob: 0.1
  halt_max_steps: 16
  hidden_size: 512
  loss:
    loss_type: stablemax_cross_entropy
    name: losses@ACTLossHead
  name: hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1
  num_heads: 8
  pos_encodings: rope
  puzzle_emb_ndim: 512
beta1: 0.9
beta2: 0.95
checkpoint_every_eval: true
checkpoint_path: checkpoints/Sudoku-extreme-1k-aug-1000 ACT-torch/HierarchicalReasoningModel_ACTV1 x
data_path: data/sudoku-extreme-1k-aug-1000
epochs: 20000
eval_interval: 2000
eval_save_outputs: []
global_batch_size: 384
lr: 7.0e-05
lr_min_ratio: 1.0
lr_warmup_steps: 2000
project_name: Sudoku-extreme-1k-aug-1000 ACT-torch
puzzle_emb_lr: 7.0e-05
puzzle_emb_weight_decay: 1.0
run_name: HierarchicalReasoningModel_ACTV1 x
seed: 0
weight_decay: 1.0
";

    #[test]
    fn maps_an_hrm_config_and_notes_what_it_drops() {
        let m = map_reference_config(HRM_YAML, Path::new("all_config.yaml")).expect("maps");
        assert_eq!(m.arch, Arch::Hrm);
        assert_eq!(m.table["lr"].as_float(), Some(7e-5));
        assert_eq!(m.table["lr_warmup_steps"].as_integer(), Some(2000));
        assert_eq!(
            m.table["data_path"].as_str(),
            Some("data/sudoku-extreme-1k-aug-1000")
        );
        let model = m.table["model"].as_table().expect("model");
        assert_eq!(model["H_layers"].as_integer(), Some(4));
        assert_eq!(model["forward_dtype"].as_str(), Some("bfloat16"));
        assert!(!model.contains_key("name") && !model.contains_key("loss"));
        assert_eq!(
            m.table["loss"]["loss_type"].as_str(),
            Some("stablemax_cross_entropy")
        );
        let noted: Vec<&str> = m.notes.iter().map(|n| n.key.as_str()).collect();
        for key in [
            "project_name",
            "run_name",
            "checkpoint_path",
            "arch.forward_dtype",
        ] {
            assert!(noted.contains(&key), "{key} not noted: {noted:?}");
        }
        // The table is a valid TrainConfig once the data sizes are known.
        let cfg = crate::config::TrainConfig::from_toml_str(
            &toml::to_string(&m.table).expect("toml"),
            &[],
        )
        .expect("valid TrainConfig");
        assert_eq!(cfg.global_batch_size, 384);
        assert_eq!(cfg.eval_interval, Some(2000));
    }

    #[test]
    fn unsupported_models_and_loss_heads_name_the_key() {
        let other = HRM_YAML.replace(
            "hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1",
            "recursive_reasoning.trm_singlez@TinyRecursiveReasoningModel_ACTV1",
        );
        let e = map_reference_config(&other, Path::new("c.yaml")).expect_err("arch");
        assert!(
            matches!(&e, TrainError::ReferenceConfig { key, .. } if key == "arch.name"),
            "{e}"
        );
        assert!(e.to_string().contains("trm_singlez"), "{e}");
        let other = HRM_YAML.replace("losses@ACTLossHead", "losses@OtherHead");
        let e = map_reference_config(&other, Path::new("c.yaml")).expect_err("loss");
        assert!(e.to_string().contains("arch.loss.name"), "{e}");
        let other = HRM_YAML.replace("  num_heads: 8\n", "  num_heads: 8\n  causal: true\n");
        let e = map_reference_config(&other, Path::new("c.yaml")).expect_err("causal");
        assert!(e.to_string().contains("arch.causal"), "{e}");
        let e = map_reference_config("arch: [1", Path::new("c.yaml")).expect_err("syntax");
        assert!(matches!(e, TrainError::ReferenceConfig { .. }), "{e}");
    }

    #[test]
    fn trm_keys_map_too() {
        let trm = HRM_YAML
            .replace(
                "hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1",
                "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1",
            )
            .replace(
                "data_path: data/sudoku-extreme-1k-aug-1000\n",
                "data_paths:\n- data/a\n- data/b\nema: true\nema_rate: 0.999\nfreeze_weights: true\n\
                 evaluators: []\n",
            )
            .replace("  num_heads: 8\n", "  num_heads: 8\n  mlp_t: true\n");
        let m = map_reference_config(&trm, Path::new("c.yaml")).expect("maps");
        assert_eq!(m.arch, Arch::Trm);
        assert_eq!(m.table["data_path"].as_str(), Some("data/a"));
        assert_eq!(m.table["ema"].as_bool(), Some(true));
        assert_eq!(m.table["model"]["mlp_t"].as_bool(), Some(true));
        assert!(m.notes.iter().any(|n| n.key == "data_paths"));
        assert!(m.notes.iter().any(|n| n.key == "freeze_weights"));
        assert!(
            !m.notes.iter().any(|n| n.key == "evaluators"),
            "empty: not noted"
        );
    }
}
