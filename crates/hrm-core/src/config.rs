//! The settings every architecture shares: the position encoding, the forward dtype, the
//! SwiGLU width rule, the reference's serde defaults and the [`ModelConfig`] trait that reads and
//! validates a model section. Each architecture's own config lives beside its model
//! ([`crate::hrm::HrmConfig`], [`crate::trm::TrmConfig`], the baselines').

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// How positions are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PosEncoding {
    /// Rotary embeddings on queries and keys (rotate-half convention).
    Rope,
    /// A learned `[T, H]` table added to the input embedding, scaled by 1/sqrt(2).
    Learned,
    /// No position information (only meaningful for token-mixing MLPs, as in TRM's `mlp_t`).
    None,
}

/// The dtype the forward pass runs in. Parameters always stay in float32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ForwardDtype {
    /// IEEE float32.
    #[serde(rename = "float32", alias = "f32")]
    Float32,
    /// bfloat16 (the reference's default on CUDA).
    #[serde(rename = "bfloat16", alias = "bf16")]
    Bfloat16,
}

impl ForwardDtype {
    /// The libtorch kind.
    pub fn kind(self) -> tch::Kind {
        match self {
            ForwardDtype::Float32 => tch::Kind::Float,
            ForwardDtype::Bfloat16 => tch::Kind::BFloat16,
        }
    }

    /// The forward dtype of tensors of `kind`; `None` for kinds HRM does not run in.
    pub fn from_kind(kind: tch::Kind) -> Option<Self> {
        match kind {
            tch::Kind::Float => Some(ForwardDtype::Float32),
            tch::Kind::BFloat16 => Some(ForwardDtype::Bfloat16),
            _ => None,
        }
    }

    /// The name used in configs (`float32`, `bfloat16`); what [`std::fmt::Display`] prints.
    pub fn name(self) -> &'static str {
        match self {
            ForwardDtype::Float32 => "float32",
            ForwardDtype::Bfloat16 => "bfloat16",
        }
    }

    /// The short name used on command lines and in bench ids (`f32`, `bf16`).
    pub fn short_name(self) -> &'static str {
        match self {
            ForwardDtype::Float32 => "f32",
            ForwardDtype::Bfloat16 => "bf16",
        }
    }
}

impl std::fmt::Display for ForwardDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ForwardDtype {
    type Err = CoreError;

    /// Reads either spelling, short (`f32`, `bf16`) or long (`float32`, `bfloat16`), as configs
    /// and command lines write it.
    ///
    /// # Errors
    /// [`CoreError::UnknownDtype`] naming the value and the accepted names.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" | "float32" => Ok(ForwardDtype::Float32),
            "bf16" | "bfloat16" => Ok(ForwardDtype::Bfloat16),
            other => Err(CoreError::UnknownDtype {
                value: other.to_string(),
            }),
        }
    }
}

// Serde defaults shared by the HRM, TRM and Transformer configs (the reference's values).
pub(crate) fn default_rms_norm_eps() -> f64 {
    1e-5
}
pub(crate) fn default_rope_theta() -> f64 {
    10000.0
}
pub(crate) fn default_forward_dtype() -> ForwardDtype {
    ForwardDtype::Bfloat16
}
pub(crate) fn default_pos_encodings() -> PosEncoding {
    PosEncoding::Rope
}
pub(crate) fn default_halt_exploration_prob() -> f64 {
    0.1
}

/// `256 * ceil(round(expansion * width * 2 / 3) / 256)`: the SwiGLU inner width of the
/// reference, with Python's round-half-to-even.
pub fn swiglu_intermediate_size(width: usize, expansion: f64) -> usize {
    let raw = (expansion * width as f64 * 2.0 / 3.0).round_ties_even() as usize;
    raw.div_ceil(256) * 256
}

/// A model configuration read from a JSON or TOML model section and validated. Every
/// architecture's config implements it; parse errors (unknown keys, wrong types) name the key
/// and the architecture, impossible values name the key.
pub trait ModelConfig: Sized + DeserializeOwned {
    /// The architecture's name in configs and messages (`hrm`, `trm`, `gru`, `transformer`).
    const ARCH: &'static str;

    /// Checks every value, naming the first impossible key.
    ///
    /// # Errors
    /// [`CoreError::Config`] with the key.
    fn validate(&self) -> Result<()>;

    /// Parses a JSON model section and validates it.
    ///
    /// # Errors
    /// [`CoreError::ConfigParse`] for syntax errors, unknown keys and wrong types (the message
    /// names the key and the architecture); [`CoreError::Config`] for impossible values.
    fn from_json_str(text: &str) -> Result<Self> {
        let cfg: Self = parse_section(text, SectionFormat::Json, Self::ARCH)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a TOML model section and validates it. Errors as [`ModelConfig::from_json_str`].
    fn from_toml_str(text: &str) -> Result<Self> {
        let cfg: Self = parse_section(text, SectionFormat::Toml, Self::ARCH)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a `.json` or `.toml` file (TOML unless the extension is `json`) and validates it.
    ///
    /// # Errors
    /// [`CoreError::Io`] when the file cannot be read, otherwise as
    /// [`ModelConfig::from_json_str`], with the file named.
    fn from_path(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| CoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let format = if path.extension().is_some_and(|e| e == "json") {
            SectionFormat::Json
        } else {
            SectionFormat::Toml
        };
        let cfg: Self = parse_section(&text, format, Self::ARCH).map_err(|e| match e {
            CoreError::ConfigParse { message, .. } => CoreError::ConfigParse {
                source_name: format!("{} (arch `{}`)", path.display(), Self::ARCH),
                message,
            },
            other => other,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The text formats a model section is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SectionFormat {
    Json,
    Toml,
}

/// Parses a model section for `arch`; a key that belongs to another architecture reads as
/// such ("model section of arch `gru`: unknown field `H_cycles`, expected one of ...").
fn parse_section<T: DeserializeOwned>(text: &str, format: SectionFormat, arch: &str) -> Result<T> {
    let source_name = format!("model section of arch `{arch}`");
    match format {
        SectionFormat::Json => serde_json::from_str(text).map_err(|e| CoreError::ConfigParse {
            source_name,
            message: e.to_string(),
        }),
        SectionFormat::Toml => toml::from_str(text).map_err(|e| CoreError::ConfigParse {
            source_name,
            message: e.to_string(),
        }),
    }
}

/// Fails with [`CoreError::Config`] naming the first key whose value is 0.
pub(crate) fn require_positive(values: &[(&'static str, usize)]) -> Result<()> {
    match values.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err(CoreError::Config {
            key,
            reason: "must be at least 1".into(),
        }),
        None => Ok(()),
    }
}

/// The values every HRM-family config checks the same way.
pub(crate) struct CommonDims {
    pub hidden_size: usize,
    pub num_heads: usize,
    pub expansion: f64,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub pos_encodings: PosEncoding,
    pub halt_exploration_prob: f64,
    pub puzzle_emb_ndim: usize,
    pub num_puzzle_identifiers: usize,
}

pub(crate) fn validate_common(d: &CommonDims) -> Result<()> {
    if d.hidden_size % d.num_heads != 0 {
        return Err(CoreError::Config {
            key: "hidden_size",
            reason: format!(
                "{} is not divisible by num_heads = {}",
                d.hidden_size, d.num_heads
            ),
        });
    }
    if d.pos_encodings == PosEncoding::Rope && (d.hidden_size / d.num_heads) % 2 != 0 {
        return Err(CoreError::Config {
            key: "num_heads",
            reason: format!(
                "RoPE needs an even head dimension, hidden_size / num_heads = {}",
                d.hidden_size / d.num_heads
            ),
        });
    }
    if !(d.expansion.is_finite() && d.expansion > 0.0) {
        return Err(CoreError::Config {
            key: "expansion",
            reason: format!("must be > 0, got {}", d.expansion),
        });
    }
    if !(d.rms_norm_eps.is_finite() && d.rms_norm_eps > 0.0) {
        return Err(CoreError::Config {
            key: "rms_norm_eps",
            reason: format!("must be > 0, got {}", d.rms_norm_eps),
        });
    }
    if !(d.rope_theta.is_finite() && d.rope_theta > 0.0) {
        return Err(CoreError::Config {
            key: "rope_theta",
            reason: format!("must be > 0, got {}", d.rope_theta),
        });
    }
    if !(0.0..=1.0).contains(&d.halt_exploration_prob) {
        return Err(CoreError::Config {
            key: "halt_exploration_prob",
            reason: format!("must be in [0, 1], got {}", d.halt_exploration_prob),
        });
    }
    if d.puzzle_emb_ndim > 0 && d.num_puzzle_identifiers == 0 {
        return Err(CoreError::Config {
            key: "num_puzzle_identifiers",
            reason: "must be at least 1 when puzzle_emb_ndim > 0".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_dtype_parses_both_spellings_and_names_a_bad_value() {
        for (text, want) in [
            ("f32", ForwardDtype::Float32),
            ("float32", ForwardDtype::Float32),
            ("bf16", ForwardDtype::Bfloat16),
            ("bfloat16", ForwardDtype::Bfloat16),
        ] {
            assert_eq!(text.parse::<ForwardDtype>().expect(text), want);
        }
        for d in [ForwardDtype::Float32, ForwardDtype::Bfloat16] {
            assert_eq!(d.to_string().parse::<ForwardDtype>().expect("name"), d);
            assert_eq!(d.short_name().parse::<ForwardDtype>().expect("short"), d);
        }
        let err = "f16"
            .parse::<ForwardDtype>()
            .expect_err("f16 is not supported");
        assert!(matches!(&err, CoreError::UnknownDtype { value } if value == "f16"));
        let message = err.to_string();
        assert!(
            message.contains("`f16`") && message.contains("bfloat16"),
            "{message}"
        );
    }

    #[test]
    fn swiglu_size_rounds_half_to_even_then_up_to_256() {
        assert_eq!(swiglu_intermediate_size(64, 4.0), 256);
        assert_eq!(swiglu_intermediate_size(96, 2.5), 256);
        assert_eq!(swiglu_intermediate_size(512, 4.0), 1536);
        // 97 positions (TRM's mlp_t width): 258.67 -> 259 -> 512.
        assert_eq!(swiglu_intermediate_size(97, 4.0), 512);
        // 1.5 * 3 * 2/3 = 3.0 exactly; 0.75 * 3 * 2/3 = 1.5 rounds to 2 (even).
        assert_eq!(swiglu_intermediate_size(3, 0.75), 256);
    }
}
