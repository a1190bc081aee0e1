//! Building a model from a config's `arch` and its model table: the ACT models (HRM, TRM) as
//! [`RecurrentCore`]s, the baselines as [`DirectModel`]s.

use tch::Device;

use hrm_core::{
    CoreDims, DirectModel, Gru, GruConfig, Hrm, HrmConfig, ModelConfig, ModelParams, RecurrentCore,
    Transformer, TransformerConfig, Trm, TrmConfig,
};

use crate::config::Arch;
use crate::error::{Result, TrainError};

/// The recurrent (ACT) architectures, by config name.
pub const RECURRENT_ARCHS: [&str; 2] = ["hrm", "trm"];

/// A model of any architecture.
pub enum ArchModel {
    /// Runs under ACT.
    Recurrent(Box<dyn RecurrentCore>),
    /// One forward per batch.
    Direct(Box<dyn DirectModel>),
}

impl std::fmt::Debug for ArchModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchModel::Recurrent(m) => write!(f, "Recurrent({:?})", m.dims()),
            ArchModel::Direct(m) => write!(f, "Direct({:?})", m.dims()),
        }
    }
}

impl ArchModel {
    /// The parameters.
    pub fn params(&self) -> &ModelParams {
        match self {
            ArchModel::Recurrent(m) => m.params(),
            ArchModel::Direct(m) => m.params(),
        }
    }

    /// Sizes.
    pub fn dims(&self) -> CoreDims {
        match self {
            ArchModel::Recurrent(m) => m.dims(),
            ArchModel::Direct(m) => m.dims(),
        }
    }
}

/// Builds a freshly initialised model. Its initialisation draws from libtorch's default
/// generator: call it inside [`crate::seeded::with_seed`] for a reproducible model. It holds the
/// generator's lock itself ([`crate::seeded::exclusive`]), so a model built in one thread never
/// draws in the middle of another thread's seeded section.
///
/// # Errors
/// [`TrainError::Config`] / [`TrainError::Core`] for an invalid model table, naming the key.
pub fn build_model(arch: Arch, model: &toml::Table, device: Device) -> Result<ArchModel> {
    let json = serde_json::to_value(model).map_err(|e| TrainError::Config {
        key: "model".into(),
        reason: e.to_string(),
    })?;
    match arch {
        Arch::Hrm | Arch::Trm => Ok(ArchModel::Recurrent(build_recurrent_core(
            arch.name(),
            &json,
            device,
        )?)),
        Arch::Gru | Arch::Transformer => {
            let text = json.to_string();
            let model = crate::seeded::exclusive(|| -> Result<Box<dyn DirectModel>> {
                Ok(if arch == Arch::Gru {
                    Box::new(Gru::new(&GruConfig::from_json_str(&text)?, device)?)
                } else {
                    Box::new(Transformer::new(
                        &TransformerConfig::from_json_str(&text)?,
                        device,
                    )?)
                })
            })?;
            Ok(ArchModel::Direct(model))
        }
    }
}

/// Builds the recurrent core named `arch` from a JSON model section with the reference's keys.
/// Like [`build_model`], it holds the default generator's lock while it initialises
/// ([`crate::seeded::exclusive`]).
///
/// # Errors
/// [`TrainError::Config`] for an unknown `arch` (listing the valid ones) and for an invalid
/// model section (naming the key).
pub fn build_recurrent_core(
    arch: &str,
    model: &serde_json::Value,
    device: Device,
) -> Result<Box<dyn RecurrentCore>> {
    crate::seeded::exclusive(|| -> Result<Box<dyn RecurrentCore>> {
        match arch {
            "hrm" => {
                let cfg = HrmConfig::from_json_str(&model.to_string())?;
                Ok(Box::new(Hrm::new(&cfg, device)?))
            }
            "trm" => {
                let cfg = TrmConfig::from_json_str(&model.to_string())?;
                Ok(Box::new(Trm::new(&cfg, device)?))
            }
            other => Err(TrainError::Config {
                key: "arch".into(),
                reason: format!("`{other}` is not one of {}", RECURRENT_ARCHS.join(", ")),
            }),
        }
    })
}
