//! Checkpoints: everything needed to continue a run exactly where it stopped.
//!
//! A checkpoint is a directory `checkpoints/step_<N>/` holding
//! - `model.safetensors`: every model tensor under the reference's names;
//! - `optimizer.safetensors`: AdamATan2 moments (`adam.exp_avg.<name>`,
//!   `adam.exp_avg_sq.<name>`), the EMA shadow (`ema.<name>`), and the ACT carry of the running
//!   batch (`carry.*`), so a resumed run continues every row's computation;
//! - `state.json`: the step, per-parameter optimiser step counts, the sampler position, seeds
//!   and the resolved config.
//!
//! It is written into a temporary directory and renamed into place, then
//! `checkpoints/latest` (a one-line file) is replaced atomically; an interrupted save never
//! leaves a partial checkpoint under a real name, and never replaces a good one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use hrm_core::weights::{read_safetensors, write_safetensors};
use hrm_data::SamplerState;

use crate::error::{Result, TrainError};

/// Version of the checkpoint layout.
pub const CHECKPOINT_FORMAT: u32 = 1;

/// `state.json` of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// [`CHECKPOINT_FORMAT`].
    pub format_version: u32,
    /// Training steps taken.
    pub step: u64,
    /// Steps the schedule spans.
    pub total_steps: u64,
    /// Where the training sampler stands after the last consumed batch.
    pub sampler: SamplerState,
    /// AdamATan2 step count of each parameter.
    pub adam_steps: BTreeMap<String, u64>,
    /// The full config of the run, as TOML text.
    pub config_toml: String,
    /// The resolved model table (data sizes and dtype filled in).
    pub model: toml::Table,
    /// Seconds of training so far (for throughput over resumed runs).
    pub train_seconds: f64,
}

/// A checkpoint in memory.
#[derive(Debug)]
pub struct Checkpoint {
    /// `state.json`.
    pub state: CheckpointState,
    /// `model.safetensors` content.
    pub model: Vec<(String, Tensor)>,
    /// `optimizer.safetensors` content.
    pub optimizer: Vec<(String, Tensor)>,
}

/// The directory name of the checkpoint at `step`.
pub fn step_dir_name(step: u64) -> String {
    format!("step_{step:08}")
}

/// Writes `ckpt` under `root` (`<run>/checkpoints`) atomically, points `latest` at it, and
/// deletes older checkpoints beyond `keep`. Returns the checkpoint directory.
///
/// # Errors
/// [`TrainError::Io`] / [`TrainError::Core`] when writing fails; what existed before is intact.
pub fn save(root: &Path, ckpt: &Checkpoint, keep: usize) -> Result<PathBuf> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Io { path, source }
    };
    std::fs::create_dir_all(root).map_err(io(root))?;
    let name = step_dir_name(ckpt.state.step);
    let final_dir = root.join(&name);
    let tmp = root.join(format!(".tmp-{name}-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let written = (|| -> Result<()> {
        write_safetensors(&tmp.join("model.safetensors"), &ckpt.model)?;
        write_safetensors(&tmp.join("optimizer.safetensors"), &ckpt.optimizer)?;
        let json = serde_json::to_vec_pretty(&ckpt.state).map_err(|source| TrainError::Json {
            path: tmp.join("state.json"),
            source,
        })?;
        std::fs::write(tmp.join("state.json"), json).map_err(io(&tmp.join("state.json")))?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if final_dir.exists() {
        // Same step saved again (e.g. right after a resume): swap, never delete first.
        let old = root.join(format!(".old-{name}-{}", std::process::id()));
        std::fs::rename(&final_dir, &old).map_err(io(&final_dir))?;
        std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
    }
    let latest = root.join("latest");
    let latest_tmp = root.join(format!(".latest-{}", std::process::id()));
    std::fs::write(&latest_tmp, format!("{name}\n")).map_err(io(&latest_tmp))?;
    std::fs::rename(&latest_tmp, &latest).map_err(io(&latest))?;
    prune(root, keep, &name);
    Ok(final_dir)
}

/// Deletes the oldest `step_*` directories so that `keep` remain; never the one just written.
fn prune(root: &Path, keep: usize, current: &str) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let mut steps: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step_"))
        .collect();
    steps.sort();
    let excess = steps.len().saturating_sub(keep.max(1));
    for name in steps.into_iter().take(excess) {
        if name != current {
            let _ = std::fs::remove_dir_all(root.join(name));
        }
    }
}

/// The directory `latest` points to, if any checkpoint exists under `root`.
///
/// # Errors
/// [`TrainError::Checkpoint`] when `latest` names a directory that does not exist.
pub fn latest(root: &Path) -> Result<Option<PathBuf>> {
    let Ok(name) = std::fs::read_to_string(root.join("latest")) else {
        return Ok(None);
    };
    let dir = root.join(name.trim());
    if !dir.is_dir() {
        return Err(TrainError::Checkpoint(format!(
            "{} points to {}, which does not exist",
            root.join("latest").display(),
            dir.display()
        )));
    }
    Ok(Some(dir))
}

/// Reads a checkpoint directory.
///
/// # Errors
/// [`TrainError::Checkpoint`] naming the file that is missing, truncated or corrupt, or a
/// format version this build does not read.
pub fn load(dir: &Path) -> Result<Checkpoint> {
    let bad = |file: &str, e: String| {
        TrainError::Checkpoint(format!("{}: {e}", dir.join(file).display()))
    };
    let text = std::fs::read_to_string(dir.join("state.json"))
        .map_err(|e| bad("state.json", e.to_string()))?;
    let state: CheckpointState =
        serde_json::from_str(&text).map_err(|e| bad("state.json", e.to_string()))?;
    if state.format_version != CHECKPOINT_FORMAT {
        return Err(bad(
            "state.json",
            format!(
                "format version {} (this build reads {CHECKPOINT_FORMAT})",
                state.format_version
            ),
        ));
    }
    let model = read_safetensors(&dir.join("model.safetensors"))
        .map_err(|e| bad("model.safetensors", e.to_string()))?;
    let optimizer = read_safetensors(&dir.join("optimizer.safetensors"))
        .map_err(|e| bad("optimizer.safetensors", e.to_string()))?;
    Ok(Checkpoint {
        state,
        model,
        optimizer,
    })
}

/// The model keys whose values differ between a checkpoint's resolved model table and the
/// current one, as `key (checkpoint X, config Y)`.
pub fn model_differences(saved: &toml::Table, current: &toml::Table) -> Vec<String> {
    let mut keys: Vec<&String> = saved.keys().chain(current.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| saved.get(*k) != current.get(*k))
        .map(|k| {
            let show = |v: Option<&toml::Value>| v.map_or("absent".to_string(), |v| v.to_string());
            format!(
                "{k} (checkpoint {}, config {})",
                show(saved.get(k)),
                show(current.get(k))
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(step: u64) -> CheckpointState {
        CheckpointState {
            format_version: CHECKPOINT_FORMAT,
            step,
            total_steps: 10,
            sampler: SamplerState {
                seed: 0,
                global_batch_size: 2,
                epoch: 0,
                set_index: 0,
                position: 0,
            },
            adam_steps: BTreeMap::new(),
            config_toml: String::new(),
            model: toml::Table::new(),
            train_seconds: 0.0,
        }
    }

    #[test]
    fn save_load_prune_and_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("checkpoints");
        for step in 1..=3 {
            let ckpt = Checkpoint {
                state: state(step),
                model: vec![("w".into(), Tensor::from_slice(&[step as f32]))],
                optimizer: vec![],
            };
            save(&root, &ckpt, 2).expect("save");
        }
        let last = latest(&root).expect("latest").expect("some");
        assert!(last.ends_with(step_dir_name(3)));
        assert!(!root.join(step_dir_name(1)).exists(), "pruned");
        assert!(root.join(step_dir_name(2)).exists());
        let back = load(&last).expect("load");
        assert_eq!(back.state.step, 3);
        assert_eq!(back.model[0].1.double_value(&[0]), 3.0);
        // A truncated weights file is a clear error naming it.
        let f = last.join("model.safetensors");
        let bytes = std::fs::read(&f).expect("read");
        std::fs::write(&f, &bytes[..bytes.len() - 3]).expect("truncate");
        let err = load(&last).expect_err("truncated");
        assert!(
            matches!(&err, TrainError::Checkpoint(m) if m.contains("model.safetensors")),
            "{err}"
        );
    }

    #[test]
    fn differences_list_the_keys() {
        let a: toml::Table = "hidden_size = 64\nH_cycles = 2".parse().expect("toml");
        let b: toml::Table = "hidden_size = 128\nH_cycles = 2".parse().expect("toml");
        let d = model_differences(&a, &b);
        assert_eq!(d.len(), 1);
        assert!(
            d[0].starts_with("hidden_size (checkpoint 64, config 128)"),
            "{d:?}"
        );
    }
}

/// A trained model read back from a run directory or a checkpoint directory.
#[derive(Debug)]
pub struct LoadedModel {
    /// The run's config (with the resolved model table in `config.model`).
    pub config: crate::config::TrainConfig,
    /// The model, weights loaded.
    pub model: crate::arch::ArchModel,
    /// The training step of the checkpoint.
    pub step: u64,
    /// The checkpoint directory that was read.
    pub checkpoint: PathBuf,
}

/// Loads the model of `path`: a run directory (its latest checkpoint) or a checkpoint
/// directory, onto `device`. Runs trained with an EMA get the averaged weights.
///
/// # Errors
/// [`TrainError::Checkpoint`] when `path` holds no checkpoint or a corrupt one, and model errors
/// when the stored config cannot build a model.
pub fn load_model(path: &Path, device: tch::Device) -> Result<LoadedModel> {
    let dir = if path.join("state.json").is_file() {
        path.to_path_buf()
    } else {
        latest(&path.join("checkpoints"))?.ok_or_else(|| {
            TrainError::Checkpoint(format!(
                "{} is neither a checkpoint directory nor a run directory with checkpoints",
                path.display()
            ))
        })?
    };
    let ckpt = load(&dir)?;
    let mut config = crate::config::TrainConfig::from_toml_str(&ckpt.state.config_toml, &[])
        .map_err(|e| {
            TrainError::Checkpoint(format!(
                "{}: the stored config cannot be read: {e}",
                dir.display()
            ))
        })?;
    config.model = ckpt.state.model.clone();
    let model = crate::arch::build_model(config.arch, &config.model, device)?;
    model
        .params()
        .load_named(&dir.join("model.safetensors"), ckpt.model)?;
    Ok(LoadedModel {
        config,
        model,
        step: ckpt.state.step,
        checkpoint: dir,
    })
}
