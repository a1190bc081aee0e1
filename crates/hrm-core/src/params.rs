//! The parameter container every model of the family owns.
//!
//! Two `VarStore`s, as tch's GAN example keeps two: the dense network (trainable weights plus the
//! `H_init`/`L_init` buffers) and the sparse puzzle-embedding table, which the sign-SGD trains
//! and the dense optimiser must never see. Names are the reference's state-dict names without
//! the `model.` prefix (`inner.H_level.layers.0.self_attn.qkv_proj.weight`,
//! `inner.puzzle_emb.weights`).

use std::collections::BTreeMap;
use std::path::Path;

use tch::{nn, Device, Tensor};

use crate::error::{CoreError, Result};
use crate::weights::{read_safetensors, strip_reference_prefixes, write_safetensors};

/// The network's variables and the sparse puzzle table.
pub struct ModelParams {
    dense: nn::VarStore,
    sparse: nn::VarStore,
}

impl std::fmt::Debug for ModelParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelParams")
            .field("device", &self.device())
            .field("tensors", &self.all().len())
            .finish()
    }
}

impl ModelParams {
    /// Empty stores on `device`.
    pub fn new(device: Device) -> Self {
        ModelParams {
            dense: nn::VarStore::new(device),
            sparse: nn::VarStore::new(device),
        }
    }

    /// The root of the dense store; models build under `root() / "inner"`.
    pub fn root(&self) -> nn::Path<'_> {
        self.dense.root()
    }

    /// The root of the sparse store; the puzzle table goes under `sparse_root() / "inner" /
    /// "puzzle_emb"`.
    pub fn sparse_root(&self) -> nn::Path<'_> {
        self.sparse.root()
    }

    /// The device every parameter lives on.
    pub fn device(&self) -> Device {
        self.dense.device()
    }

    /// Trainable dense parameters, sorted by name (the dense optimiser's parameter list).
    pub fn trainable(&self) -> Vec<(String, Tensor)> {
        sorted(
            self.dense
                .variables()
                .into_iter()
                .filter(|(_, t)| t.requires_grad()),
        )
    }

    /// Non-trainable dense tensors (`H_init`, `L_init`), sorted by name.
    pub fn buffers(&self) -> Vec<(String, Tensor)> {
        sorted(
            self.dense
                .variables()
                .into_iter()
                .filter(|(_, t)| !t.requires_grad()),
        )
    }

    /// The sparse tables (at most the puzzle embedding), sorted by name.
    pub fn sparse(&self) -> Vec<(String, Tensor)> {
        sorted(self.sparse.variables().into_iter())
    }

    /// The puzzle embedding table, if the model has one.
    pub fn puzzle_table(&self) -> Option<Tensor> {
        self.sparse.variables().into_values().next()
    }

    /// Every tensor of the model (what a weights file holds), sorted by name.
    pub fn all(&self) -> Vec<(String, Tensor)> {
        let mut all = self.dense.variables();
        all.extend(self.sparse.variables());
        sorted(all.into_iter())
    }

    /// Number of trainable scalars (dense network only).
    pub fn num_trainable(&self) -> i64 {
        self.trainable().iter().map(|(_, t)| t.numel() as i64).sum()
    }

    /// Copies the values of named tensors into the parameters, checking names and shapes.
    /// Names may carry the reference's prefixes. Every parameter must be given exactly once.
    ///
    /// # Errors
    /// [`CoreError::MissingTensor`], [`CoreError::UnexpectedTensors`], [`CoreError::Shape`] or
    /// [`CoreError::Dtype`] naming the tensor; `source` is the file name used in messages.
    pub fn load_named(&self, source: &Path, tensors: Vec<(String, Tensor)>) -> Result<()> {
        let mut given: BTreeMap<String, Tensor> = BTreeMap::new();
        for (name, t) in tensors {
            given.insert(strip_reference_prefixes(&name).to_string(), t);
        }
        let params = self.all();
        // Check everything before changing anything, so a bad file leaves the model untouched.
        for (name, param) in &params {
            let Some(src) = given.get(name) else {
                return Err(CoreError::MissingTensor {
                    path: source.to_path_buf(),
                    name: name.clone(),
                });
            };
            if src.size() != param.size() {
                return Err(CoreError::Shape {
                    name: name.clone(),
                    expected: param.size(),
                    found: src.size(),
                });
            }
            if !src.is_floating_point() {
                return Err(CoreError::Dtype {
                    name: name.clone(),
                    expected: "a floating-point dtype".into(),
                    found: format!("{:?}", src.kind()),
                });
            }
        }
        let known: std::collections::BTreeSet<&String> = params.iter().map(|(n, _)| n).collect();
        let extra: Vec<String> = given
            .keys()
            .filter(|n| !known.contains(n))
            .cloned()
            .collect();
        if !extra.is_empty() {
            return Err(CoreError::UnexpectedTensors {
                path: source.to_path_buf(),
                names: extra,
            });
        }
        tch::no_grad(|| -> Result<()> {
            for (name, mut param) in params {
                let src = &given[&name];
                param.f_copy_(&src.to_kind(param.kind()).to_device(param.device()))?;
            }
            Ok(())
        })
    }

    /// Loads a safetensors weights file (ours or the reference's). See [`ModelParams::load_named`].
    ///
    /// # Errors
    /// As [`crate::weights::read_safetensors`] and [`ModelParams::load_named`].
    pub fn load_safetensors(&self, path: &Path) -> Result<()> {
        let tensors = read_safetensors(path)?;
        self.load_named(path, tensors)
    }

    /// Writes every tensor to `path` atomically, each name preceded by `prefix` (`""` for our
    /// own files, `"model."` for a file the reference's loss-head wrapper loads).
    ///
    /// # Errors
    /// As [`crate::weights::write_safetensors`].
    pub fn save_safetensors(&self, path: &Path, prefix: &str) -> Result<()> {
        let named: Vec<(String, Tensor)> = self
            .all()
            .into_iter()
            .map(|(n, t)| (format!("{prefix}{n}"), t))
            .collect();
        write_safetensors(path, &named)
    }

    /// Copies every value from `other`, a model of the same configuration.
    ///
    /// # Errors
    /// As [`ModelParams::load_named`] when the two differ.
    pub fn copy_from(&self, other: &ModelParams) -> Result<()> {
        self.load_named(Path::new("<model>"), other.all())
    }
}

fn sorted(items: impl Iterator<Item = (String, Tensor)>) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = items.collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}
