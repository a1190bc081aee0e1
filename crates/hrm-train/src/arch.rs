//! Building a model from a config's `arch` name and its model section.

use tch::Device;

use hrm_core::{Hrm, HrmConfig, RecurrentCore};

use crate::error::{Result, TrainError};

/// The recurrent (ACT) architectures.
pub const RECURRENT_ARCHS: [&str; 1] = ["hrm"];

/// Builds the recurrent core named `arch` from a JSON model section with the reference's keys.
///
/// # Errors
/// [`TrainError::Config`] for an unknown `arch` (listing the valid ones) and for an invalid
/// model section (naming the key).
pub fn build_recurrent_core(
    arch: &str,
    model: &serde_json::Value,
    device: Device,
) -> Result<Box<dyn RecurrentCore>> {
    match arch {
        "hrm" => {
            let cfg = HrmConfig::from_json_str(&model.to_string())?;
            Ok(Box::new(Hrm::new(&cfg, device)?))
        }
        other => Err(TrainError::Config {
            key: "arch".into(),
            reason: format!("`{other}` is not one of {}", RECURRENT_ARCHS.join(", ")),
        }),
    }
}
