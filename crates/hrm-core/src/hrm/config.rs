//! The HRM model configuration, with the reference's field names.
//!
//! Mirrors `HierarchicalReasoningModel_ACTV1Config` in the reference's
//! `models/hrm/hrm_act_v1.py`. Keys are read and written with the reference's spelling
//! (`H_cycles`, `L_layers`, ...) so a config moves between the two implementations; the
//! snake-case Rust spelling (`h_cycles`) is accepted as an alias. Unknown keys are errors, and
//! [`HrmConfig::validate`] rejects impossible values naming the key.

use serde::{Deserialize, Serialize};

use crate::config::{
    require_positive, swiglu_intermediate_size, validate_common, CommonDims, ForwardDtype,
    ModelConfig, PosEncoding,
};
use crate::error::Result;

/// HRM model settings; field names follow the reference config (see `docs/configs.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HrmConfig {
    /// Batch size of the reference config. Accepted for compatibility and ignored: the batch
    /// size comes from the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Tokens per example (`S`), without puzzle positions.
    pub seq_len: usize,
    /// Width of the per-puzzle embedding (`Dp`); 0 disables it.
    #[serde(default)]
    pub puzzle_emb_ndim: usize,
    /// Number of puzzle identifiers (rows of the puzzle table), including the blank id 0.
    pub num_puzzle_identifiers: usize,
    /// Vocabulary size (`V`).
    pub vocab_size: usize,
    /// Outer (slow) cycles; `H_cycles` in the reference. At least 1.
    #[serde(rename = "H_cycles", alias = "h_cycles")]
    pub h_cycles: usize,
    /// Inner (fast) cycles per outer cycle; `L_cycles` in the reference. At least 1.
    #[serde(rename = "L_cycles", alias = "l_cycles")]
    pub l_cycles: usize,
    /// Blocks in the high-level module; `H_layers` in the reference.
    #[serde(rename = "H_layers", alias = "h_layers")]
    pub h_layers: usize,
    /// Blocks in the low-level module; `L_layers` in the reference.
    #[serde(rename = "L_layers", alias = "l_layers")]
    pub l_layers: usize,
    /// Hidden width (`H`).
    pub hidden_size: usize,
    /// SwiGLU expansion factor; the inner width is `256 * ceil(round(expansion * H * 2/3) / 256)`.
    pub expansion: f64,
    /// Attention heads (`nh`); must divide `hidden_size`.
    pub num_heads: usize,
    /// Position encoding (reference default `rope`).
    #[serde(default = "crate::config::default_pos_encodings")]
    pub pos_encodings: PosEncoding,
    /// RMSNorm epsilon (reference default 1e-5).
    #[serde(default = "crate::config::default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base (reference default 10000).
    #[serde(default = "crate::config::default_rope_theta")]
    pub rope_theta: f64,
    /// Maximum ACT steps (`K`).
    pub halt_max_steps: usize,
    /// Probability of drawing a random minimum number of steps in training (reference
    /// default 0.1).
    #[serde(default = "crate::config::default_halt_exploration_prob")]
    pub halt_exploration_prob: f64,
    /// Dtype of the forward pass.
    #[serde(default = "crate::config::default_forward_dtype")]
    pub forward_dtype: ForwardDtype,
}

impl HrmConfig {
    /// The `tiny` preset: hidden 128, 4 heads, 2+2 layers, 2x2 cycles, Sudoku sizes (seq_len 81,
    /// vocab 11), RoPE, puzzle_emb_ndim = hidden, halt_max_steps 16, float32.
    pub fn tiny() -> Self {
        Self::preset(128, 4, 2)
    }

    /// The `small` preset: hidden 256, 4 heads, 4+4 layers.
    pub fn small() -> Self {
        Self::preset(256, 4, 4)
    }

    /// The `paper` preset: hidden 512, 8 heads, 4+4 layers (the reference's Sudoku model).
    pub fn paper() -> Self {
        Self::preset(512, 8, 4)
    }

    fn preset(hidden: usize, heads: usize, layers: usize) -> Self {
        HrmConfig {
            batch_size: None,
            seq_len: 81,
            puzzle_emb_ndim: hidden,
            num_puzzle_identifiers: 1,
            vocab_size: 11,
            h_cycles: 2,
            l_cycles: 2,
            h_layers: layers,
            l_layers: layers,
            hidden_size: hidden,
            expansion: 4.0,
            num_heads: heads,
            pos_encodings: PosEncoding::Rope,
            rms_norm_eps: 1e-5,
            rope_theta: 10000.0,
            halt_max_steps: 16,
            halt_exploration_prob: 0.1,
            forward_dtype: ForwardDtype::Float32,
        }
    }

    /// Width of one attention head (`d = H / nh`).
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Number of prepended puzzle positions, `P = ceil(Dp / H)`.
    pub fn puzzle_emb_len(&self) -> usize {
        self.puzzle_emb_ndim.div_ceil(self.hidden_size)
    }

    /// Sequence length of the recurrent state, `T = S + P`.
    pub fn total_seq_len(&self) -> usize {
        self.seq_len + self.puzzle_emb_len()
    }

    /// SwiGLU inner width `I`.
    pub fn mlp_intermediate_size(&self) -> usize {
        swiglu_intermediate_size(self.hidden_size, self.expansion)
    }

    /// The factor applied to the input embedding, `sqrt(H)` rounded to float32.
    pub fn embed_scale(&self) -> f64 {
        f64::from((self.hidden_size as f32).sqrt())
    }
}

impl ModelConfig for HrmConfig {
    const ARCH: &'static str = "hrm";

    /// Checks every value, naming the first impossible key.
    ///
    /// # Errors
    /// [`crate::CoreError::Config`] with the key: zero sizes or cycles, `hidden_size` not divisible by
    /// `num_heads`, an odd head dimension with RoPE, a non-positive epsilon or expansion, an
    /// exploration probability outside [0, 1], a puzzle embedding without identifiers.
    fn validate(&self) -> Result<()> {
        require_positive(&[
            ("seq_len", self.seq_len),
            ("vocab_size", self.vocab_size),
            ("H_cycles", self.h_cycles),
            ("L_cycles", self.l_cycles),
            ("H_layers", self.h_layers),
            ("L_layers", self.l_layers),
            ("hidden_size", self.hidden_size),
            ("num_heads", self.num_heads),
            ("halt_max_steps", self.halt_max_steps),
        ])?;
        validate_common(&CommonDims {
            hidden_size: self.hidden_size,
            num_heads: self.num_heads,
            expansion: self.expansion,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: self.rope_theta,
            pos_encodings: self.pos_encodings,
            halt_exploration_prob: self.halt_exploration_prob,
            puzzle_emb_ndim: self.puzzle_emb_ndim,
            num_puzzle_identifiers: self.num_puzzle_identifiers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CoreError;

    #[test]
    fn reads_reference_keys_and_derives_sizes() {
        let text = r#"{"batch_size": 4, "seq_len": 81, "puzzle_emb_ndim": 96, "num_puzzle_identifiers": 3,
            "vocab_size": 11, "H_cycles": 3, "L_cycles": 2, "H_layers": 2, "L_layers": 2,
            "hidden_size": 64, "expansion": 4.0, "num_heads": 2, "pos_encodings": "rope",
            "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "halt_max_steps": 4,
            "halt_exploration_prob": 0.0, "forward_dtype": "float32"}"#;
        let cfg = HrmConfig::from_json_str(text).expect("valid config");
        assert_eq!(cfg.h_cycles, 3);
        assert_eq!(cfg.puzzle_emb_len(), 2);
        assert_eq!(cfg.total_seq_len(), 83);
        assert_eq!(cfg.head_dim(), 32);
        assert_eq!(cfg.embed_scale(), 8.0);
        let back = serde_json::to_string(&cfg).expect("serialises");
        assert!(back.contains("\"H_cycles\":3"), "{back}");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let mut text = toml::to_string(&HrmConfig::tiny()).expect("serialises");
        text.push_str("hiden_size = 3\n");
        match HrmConfig::from_toml_str(&text) {
            Err(CoreError::ConfigParse { message, .. }) => {
                assert!(message.contains("hiden_size"), "{message}")
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn impossible_values_name_the_key() {
        let mut cfg = HrmConfig::tiny();
        cfg.num_heads = 3;
        assert!(matches!(
            cfg.validate(),
            Err(CoreError::Config {
                key: "hidden_size",
                ..
            })
        ));
        let mut cfg = HrmConfig::tiny();
        cfg.h_cycles = 0;
        assert!(matches!(
            cfg.validate(),
            Err(CoreError::Config {
                key: "H_cycles",
                ..
            })
        ));
        let mut cfg = HrmConfig::tiny();
        cfg.halt_exploration_prob = 1.5;
        assert!(matches!(
            cfg.validate(),
            Err(CoreError::Config {
                key: "halt_exploration_prob",
                ..
            })
        ));
    }

    #[test]
    fn embed_scale_is_rounded_to_float32() {
        let mut cfg = HrmConfig::tiny();
        cfg.hidden_size = 96;
        assert_eq!(cfg.embed_scale(), 9.797959327697754);
    }
}
