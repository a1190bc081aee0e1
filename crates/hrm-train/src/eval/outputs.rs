//! Saved evaluation outputs: per set, `<set>__predictions.npy` (`[N, S]` int32 tokens, in the
//! example order of the split, readable by numpy and by `hrm data show --predictions`) and
//! `outputs.safetensors` with the same predictions plus the final Q-halt logits and exactness
//! (`<set>.predictions`, `<set>.q_halt_logits`, `<set>.exact`).

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Kind, Tensor};

use hrm_core::weights::{read_safetensors, write_safetensors};

use crate::error::{Result, TrainError};

/// What an evaluation keeps of each example.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SetOutputs {
    /// Tokens per example.
    pub seq_len: usize,
    /// `[N * S]` predicted tokens (argmax of the final step's logits), example-major.
    pub predictions: Vec<i32>,
    /// `[N]` Q-halt logit of the final step (0 for models without a Q head).
    pub q_halt_logits: Vec<f32>,
    /// `[N]` 1 where every scored token was right.
    pub exact: Vec<bool>,
}

/// Writes `outputs` into `dir` (created if needed).
///
/// # Errors
/// [`TrainError::Io`] and writer errors, naming the file.
pub fn save(dir: &Path, outputs: &BTreeMap<String, SetOutputs>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| TrainError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut tensors = Vec::new();
    for (set, o) in outputs {
        let n = o.q_halt_logits.len();
        hrm_data::npy::write_i32(
            &dir.join(format!("{set}__predictions.npy")),
            &[n, o.seq_len],
            &o.predictions,
        )?;
        tensors.push((
            format!("{set}.predictions"),
            Tensor::from_slice(&o.predictions).view([n as i64, o.seq_len as i64]),
        ));
        tensors.push((
            format!("{set}.q_halt_logits"),
            Tensor::from_slice(&o.q_halt_logits),
        ));
        tensors.push((format!("{set}.exact"), Tensor::from_slice(&o.exact)));
    }
    write_safetensors(&dir.join("outputs.safetensors"), &tensors)?;
    Ok(())
}

/// Reads what [`save`] wrote.
///
/// # Errors
/// [`TrainError::Core`] for a missing or corrupt file, [`TrainError::Shape`] for inconsistent
/// tensors.
pub fn load(dir: &Path) -> Result<BTreeMap<String, SetOutputs>> {
    let tensors: BTreeMap<String, Tensor> = read_safetensors(&dir.join("outputs.safetensors"))?
        .into_iter()
        .collect();
    let mut out = BTreeMap::new();
    for (name, pred) in &tensors {
        let Some(set) = name.strip_suffix(".predictions") else {
            continue;
        };
        let size = pred.size();
        if size.len() != 2 {
            return Err(TrainError::Shape(format!(
                "{name}: expected [N, S], found {size:?}"
            )));
        }
        let get = |field: &str| {
            tensors.get(&format!("{set}.{field}")).ok_or_else(|| {
                TrainError::Shape(format!("outputs.safetensors lacks `{set}.{field}`"))
            })
        };
        out.insert(
            set.to_string(),
            SetOutputs {
                seq_len: size[1] as usize,
                predictions: Vec::try_from(pred.to_kind(Kind::Int).reshape([-1]))?,
                q_halt_logits: Vec::try_from(get("q_halt_logits")?.to_kind(Kind::Float))?,
                exact: Vec::try_from(get("exact")?.to_kind(Kind::Bool))?,
            },
        );
    }
    Ok(out)
}
