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
use tch::{Device, Kind, Tensor};

use hrm_act::{ActBatch, ActCarry};
use hrm_core::InnerCarry;

use hrm_core::weights::{read_safetensors, write_safetensors};
use hrm_data::SamplerState;

use crate::arch::ArchModel;
use crate::error::{Result, TrainError};
use crate::optim::{AdamAtan2, Ema};

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

// The tensors of `optimizer.safetensors`, by name. Only this file knows these names: the
// trainer hands over its optimiser, EMA and carry and gets them back.
const ADAM_EXP_AVG: &str = "adam.exp_avg.";
const ADAM_EXP_AVG_SQ: &str = "adam.exp_avg_sq.";
const EMA: &str = "ema.";
const CARRY: [&str; 7] = [
    "carry.z_h",
    "carry.z_l",
    "carry.steps",
    "carry.halted",
    "carry.inputs",
    "carry.labels",
    "carry.puzzle_identifiers",
];

/// The training state a checkpoint holds beside the weights: AdamATan2 moments, the EMA shadow
/// and the ACT carry of the running batch, as named tensors plus the per-parameter Adam step
/// counts (for `state.json`).
pub fn optimizer_tensors(
    adam: &AdamAtan2,
    ema: Option<&Ema>,
    carry: Option<&ActCarry>,
) -> (Vec<(String, Tensor)>, BTreeMap<String, u64>) {
    let mut tensors = Vec::new();
    let mut steps = BTreeMap::new();
    for (name, st) in adam.named_state() {
        tensors.push((format!("{ADAM_EXP_AVG}{name}"), st.exp_avg.shallow_clone()));
        tensors.push((
            format!("{ADAM_EXP_AVG_SQ}{name}"),
            st.exp_avg_sq.shallow_clone(),
        ));
        steps.insert(name.to_string(), st.step);
    }
    if let Some(ema) = ema {
        for (name, s) in ema.shadow() {
            tensors.push((format!("{EMA}{name}"), s.shallow_clone()));
        }
    }
    if let Some(c) = carry {
        let parts = [
            &c.inner.z_h,
            &c.inner.z_l,
            &c.steps,
            &c.halted,
            &c.current_data.inputs,
            &c.current_data.labels,
            &c.current_data.puzzle_identifiers,
        ];
        for (name, t) in CARRY.iter().zip(parts) {
            tensors.push(((*name).to_string(), t.shallow_clone()));
        }
    }
    (tensors, steps)
}

impl Checkpoint {
    /// The optimiser-side tensor `name`, on `device`.
    fn optimizer_tensor(&self, name: &str, device: Device) -> Result<Tensor> {
        self.optimizer
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.to_device(device))
            .ok_or_else(|| TrainError::Checkpoint(format!("optimizer.safetensors lacks `{name}`")))
    }

    /// Puts the stored AdamATan2 moments and step counts of every parameter of `adam` back.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] naming a missing moment; shape errors from the optimiser.
    pub fn restore_adam(&self, adam: &mut AdamAtan2, device: Device) -> Result<()> {
        let names: Vec<String> = adam.named_state().map(|(n, _)| n.to_string()).collect();
        for name in names {
            let m = self.optimizer_tensor(&format!("{ADAM_EXP_AVG}{name}"), device)?;
            let v = self.optimizer_tensor(&format!("{ADAM_EXP_AVG_SQ}{name}"), device)?;
            let steps = self.state.adam_steps.get(&name).copied().unwrap_or(0);
            adam.set_state(&name, &m, &v, steps)?;
        }
        Ok(())
    }

    /// The stored EMA shadow of the parameters `names`, or `None` when the run kept no EMA.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when some but not all shadows are stored.
    pub fn ema_shadow<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
        device: Device,
    ) -> Result<Option<Vec<(String, Tensor)>>> {
        if !self.optimizer.iter().any(|(n, _)| n.starts_with(EMA)) {
            return Ok(None);
        }
        names
            .into_iter()
            .map(|name| {
                Ok((
                    name.to_string(),
                    self.optimizer_tensor(&format!("{EMA}{name}"), device)?,
                ))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// The stored ACT carry of the running batch, if the run had one.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when the carry is stored incompletely.
    pub fn carry(&self, device: Device) -> Result<Option<ActCarry>> {
        if !self.optimizer.iter().any(|(n, _)| n == CARRY[0]) {
            return Ok(None);
        }
        let get = |i: usize| self.optimizer_tensor(CARRY[i], device);
        Ok(Some(ActCarry {
            inner: InnerCarry {
                z_h: get(0)?,
                z_l: get(1)?,
            },
            steps: get(2)?.to_kind(Kind::Int),
            halted: get(3)?.to_kind(Kind::Bool),
            current_data: ActBatch {
                inputs: get(4)?,
                labels: get(5)?,
                puzzle_identifiers: get(6)?,
            },
        }))
    }
}

/// Overwrites the trainable parameters of `model` with `shadow` (an EMA's averaged weights);
/// buffers and the sparse puzzle table stay as they are, as in the reference's EMA evaluation.
///
/// # Errors
/// [`TrainError::Checkpoint`] when a parameter has no shadow; shape errors from the copy.
pub fn apply_shadow(model: &ArchModel, shadow: &[(String, Tensor)]) -> Result<()> {
    let by_name: BTreeMap<&str, &Tensor> = shadow.iter().map(|(n, t)| (n.as_str(), t)).collect();
    tch::no_grad(|| -> Result<()> {
        for (name, p) in model.params().trainable() {
            let s = by_name
                .get(name.as_str())
                .ok_or_else(|| TrainError::Checkpoint(format!("no EMA shadow of `{name}`")))?;
            p.shallow_clone().f_copy_(s)?;
        }
        Ok(())
    })
}

/// A trained model read back from a run directory or a checkpoint directory.
#[derive(Debug)]
pub struct LoadedModel {
    /// The run's config (with the resolved model table in `config.model`).
    pub config: crate::config::TrainConfig,
    /// The model, weights loaded.
    pub model: ArchModel,
    /// The training step of the checkpoint.
    pub step: u64,
    /// The checkpoint directory that was read.
    pub checkpoint: PathBuf,
    /// Whether the weights are the run's EMA average (`ema = true` runs) rather than the live
    /// weights of `model.safetensors`.
    pub ema: bool,
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
    let names: Vec<String> = model
        .params()
        .trainable()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let shadow = ckpt.ema_shadow(names.iter().map(String::as_str), device)?;
    model
        .params()
        .load_named(&dir.join("model.safetensors"), ckpt.model)?;
    let ema = shadow.is_some();
    if let Some(shadow) = shadow {
        apply_shadow(&model, &shadow)?;
    }
    Ok(LoadedModel {
        config,
        model,
        step: ckpt.state.step,
        checkpoint: dir,
        ema,
    })
}
