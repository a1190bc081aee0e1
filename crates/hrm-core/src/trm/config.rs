//! The TRM model configuration, with the reference's field names.
//!
//! Mirrors `TinyRecursiveReasoningModel_ACTV1Config` in the reference's
//! `models/recursive_reasoning/trm.py` (SamsungSAILMontreal/TinyRecursiveModels; Jolicoeur-Martineau
//! 2025, "Less is More: Recursive Reasoning with Tiny Networks"). Keys are read and written with
//! the reference's spelling (`H_cycles`, `L_layers`, `no_ACT_continue`, ...); the snake-case Rust
//! spelling is accepted as an alias, as for [`crate::HrmConfig`]. Unknown keys are errors, and
//! [`TrmConfig::validate`] rejects impossible values naming the key, including the two
//! constraints the reference only discovers by crashing (`P * H >= Dp`, and no puzzle positions
//! without a puzzle embedding).
//!
//! Differences from the HRM config: `H_layers` is accepted and ignored (TRM has one network),
//! `puzzle_emb_len` is a setting (default 16, 0 = derive `ceil(Dp / H)` as HRM does), and
//! `mlp_t` and `no_ACT_continue` are new.

use serde::{Deserialize, Serialize};

use crate::config::{
    require_positive, swiglu_intermediate_size, validate_common, CommonDims, ForwardDtype,
    ModelConfig, PosEncoding,
};
use crate::error::{CoreError, Result};
use crate::recurrent::HaltRule;

/// TRM model settings; field names follow the reference config.
///
/// # Example
/// ```
/// use hrm_core::ModelConfig;
/// let cfg = hrm_core::TrmConfig::from_json_str(r#"{
///     "seq_len": 81, "puzzle_emb_ndim": 64, "num_puzzle_identifiers": 3, "vocab_size": 11,
///     "H_cycles": 3, "L_cycles": 2, "H_layers": 0, "L_layers": 2, "hidden_size": 64,
///     "expansion": 4.0, "num_heads": 2, "pos_encodings": "none", "halt_max_steps": 4,
///     "halt_exploration_prob": 0.0, "forward_dtype": "float32", "mlp_t": true,
///     "puzzle_emb_len": 16, "no_ACT_continue": true}"#)?;
/// assert_eq!(cfg.total_seq_len(), 97);
/// assert_eq!(cfg.mlp_t_intermediate_size(), Some(512));
/// # Ok::<(), hrm_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrmConfig {
    /// Batch size of the reference config. Accepted for compatibility and ignored: the batch
    /// size comes from the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Tokens per example (`S`), without puzzle positions.
    pub seq_len: usize,
    /// Width of the per-puzzle embedding (`Dp`); 0 disables it (and then `puzzle_emb_len` must
    /// be 0).
    #[serde(default)]
    pub puzzle_emb_ndim: usize,
    /// Number of puzzle identifiers (rows of the puzzle table), including the blank id 0.
    pub num_puzzle_identifiers: usize,
    /// Vocabulary size (`V`).
    pub vocab_size: usize,
    /// Recursion cycles per ACT step; `H_cycles` in the reference (the paper's `T`). The first
    /// `H_cycles - 1` run without gradient. At least 1.
    #[serde(rename = "H_cycles", alias = "h_cycles")]
    pub h_cycles: usize,
    /// Latent updates per cycle; `L_cycles` in the reference (the paper's `n`). At least 1.
    #[serde(rename = "L_cycles", alias = "l_cycles")]
    pub l_cycles: usize,
    /// `H_layers` in the reference: accepted and **ignored** (TRM has one network, `L_level`).
    #[serde(default, rename = "H_layers", alias = "h_layers")]
    pub h_layers: usize,
    /// Blocks in the single network `L_level`; `L_layers` in the reference. At least 1.
    #[serde(rename = "L_layers", alias = "l_layers")]
    pub l_layers: usize,
    /// Hidden width (`H`).
    pub hidden_size: usize,
    /// SwiGLU expansion factor, for both the channel MLP (width `H`) and the token-mixing MLP
    /// (width `T`); the inner width is `256 * ceil(round(expansion * width * 2/3) / 256)`.
    pub expansion: f64,
    /// Attention heads (`nh`); must divide `hidden_size` (checked also with `mlp_t`, where the
    /// head dimension only sizes the unused RoPE tables).
    pub num_heads: usize,
    /// Position encoding: `"rope"` (default), `"learned"` or `"none"` (TRM's Sudoku setting
    /// with `mlp_t`).
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
    /// Dtype of the forward pass (reference default bfloat16). Parameters stay float32.
    #[serde(default = "crate::config::default_forward_dtype")]
    pub forward_dtype: ForwardDtype,
    /// Replace self-attention by an MLP across the `T` positions (the reference's `mlp_t`,
    /// TRM's Sudoku setting). Default false.
    #[serde(default)]
    pub mlp_t: bool,
    /// Prepended puzzle positions `P`; 0 derives `ceil(Dp / H)` as HRM does. Reference default
    /// 16, whatever `Dp` is.
    #[serde(default = "default_puzzle_emb_len")]
    pub puzzle_emb_len: usize,
    /// `no_ACT_continue` in the reference (default true): halt on `q_halt > 0` and learn no
    /// continue value; false halts on `q_halt > q_continue` with a bootstrapped continue target,
    /// as HRM does.
    #[serde(
        rename = "no_ACT_continue",
        alias = "no_act_continue",
        default = "default_no_act_continue"
    )]
    pub no_act_continue: bool,
}

fn default_puzzle_emb_len() -> usize {
    16
}
fn default_no_act_continue() -> bool {
    true
}

impl TrmConfig {
    /// The `tiny` preset: hidden 128, 4 heads, 2 layers, 3x2 cycles, Sudoku sizes (seq_len 81,
    /// vocab 11), attention with RoPE, a puzzle embedding of width `H` on 16 positions,
    /// halt_max_steps 16, float32.
    pub fn tiny() -> Self {
        Self::preset(128, 4, 2)
    }

    /// The `small` preset: hidden 256, 4 heads, 2 layers, 3x6 cycles.
    pub fn small() -> Self {
        TrmConfig {
            l_cycles: 6,
            ..Self::preset(256, 4, 2)
        }
    }

    /// The `paper` preset: the published attention model (hidden 512, 8 heads, 2 layers, 3x6
    /// cycles, RoPE; TRM's Maze and ARC setting).
    pub fn paper() -> Self {
        TrmConfig {
            l_cycles: 6,
            ..Self::preset(512, 8, 2)
        }
    }

    /// The published Sudoku model: [`TrmConfig::paper`] with `mlp_t` and no position encoding.
    pub fn paper_sudoku() -> Self {
        TrmConfig {
            mlp_t: true,
            pos_encodings: PosEncoding::None,
            ..Self::paper()
        }
    }

    fn preset(hidden: usize, heads: usize, layers: usize) -> Self {
        TrmConfig {
            batch_size: None,
            seq_len: 81,
            puzzle_emb_ndim: hidden,
            num_puzzle_identifiers: 1,
            vocab_size: 11,
            h_cycles: 3,
            l_cycles: 2,
            h_layers: 0,
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
            mlp_t: false,
            puzzle_emb_len: 16,
            no_act_continue: true,
        }
    }

    /// Width of one attention head (`d = H / nh`).
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Number of prepended puzzle positions `P`: `puzzle_emb_len` when non-zero, else
    /// `ceil(Dp / H)`.
    pub fn puzzle_emb_len(&self) -> usize {
        if self.puzzle_emb_len == 0 {
            self.puzzle_emb_ndim.div_ceil(self.hidden_size)
        } else {
            self.puzzle_emb_len
        }
    }

    /// Sequence length of the recurrent state, `T = S + P`.
    pub fn total_seq_len(&self) -> usize {
        self.seq_len + self.puzzle_emb_len()
    }

    /// Inner width `I` of the channel SwiGLU (`mlp`, width `H`).
    pub fn mlp_intermediate_size(&self) -> usize {
        swiglu_intermediate_size(self.hidden_size, self.expansion)
    }

    /// Inner width `I_t` of the token-mixing SwiGLU (`mlp_t`, width `T`, puzzle positions
    /// included); `None` without `mlp_t`.
    pub fn mlp_t_intermediate_size(&self) -> Option<usize> {
        self.mlp_t
            .then(|| swiglu_intermediate_size(self.total_seq_len(), self.expansion))
    }

    /// The factor applied to the input embedding, `sqrt(H)` rounded to float32.
    pub fn embed_scale(&self) -> f64 {
        f64::from((self.hidden_size as f32).sqrt())
    }

    /// The training halting rule: [`HaltRule::QHaltPositive`] with `no_ACT_continue`, else
    /// [`HaltRule::QHaltAboveContinue`].
    pub fn halt_rule(&self) -> HaltRule {
        if self.no_act_continue {
            HaltRule::QHaltPositive
        } else {
            HaltRule::QHaltAboveContinue
        }
    }
}

impl ModelConfig for TrmConfig {
    const ARCH: &'static str = "trm";

    /// Checks every value, naming the first impossible key.
    ///
    /// # Errors
    /// [`CoreError::Config`] with the key: zero sizes or cycles (`H_layers` is ignored and may be
    /// 0), the checks shared with HRM (`hidden_size` not divisible by `num_heads`, an odd head
    /// dimension with RoPE, a non-positive epsilon, expansion or RoPE base, an exploration
    /// probability outside [0, 1], a puzzle embedding without identifiers), and the
    /// reference's own constraints: `puzzle_emb_len * hidden_size >= puzzle_emb_ndim`, and
    /// `puzzle_emb_len == 0` when `puzzle_emb_ndim == 0`.
    fn validate(&self) -> Result<()> {
        require_positive(&[
            ("seq_len", self.seq_len),
            ("vocab_size", self.vocab_size),
            ("H_cycles", self.h_cycles),
            ("L_cycles", self.l_cycles),
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
        })?;
        if self.puzzle_emb_ndim == 0 && self.puzzle_emb_len != 0 {
            return Err(CoreError::Config {
                key: "puzzle_emb_len",
                reason: format!(
                    "must be 0 without a puzzle embedding (puzzle_emb_ndim = 0), got {} \
                     (the reference's default of 16 needs puzzle_emb_ndim > 0)",
                    self.puzzle_emb_len
                ),
            });
        }
        let p = self.puzzle_emb_len();
        if p * self.hidden_size < self.puzzle_emb_ndim {
            return Err(CoreError::Config {
                key: "puzzle_emb_len",
                reason: format!(
                    "{p} positions of hidden_size {} hold {} values, fewer than \
                     puzzle_emb_ndim = {}",
                    self.hidden_size,
                    p * self.hidden_size,
                    self.puzzle_emb_ndim
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN_MODEL: &str = r#"{"batch_size": 4, "seq_len": 81, "puzzle_emb_ndim": 64,
        "num_puzzle_identifiers": 3, "vocab_size": 11, "H_cycles": 3, "L_cycles": 2,
        "H_layers": 0, "L_layers": 2, "hidden_size": 64, "expansion": 4.0, "num_heads": 2,
        "pos_encodings": "none", "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
        "halt_max_steps": 4, "halt_exploration_prob": 0.0, "forward_dtype": "float32",
        "mlp_t": true, "puzzle_emb_len": 16, "no_ACT_continue": true}"#;

    fn key_of(r: Result<()>) -> &'static str {
        match r {
            Err(CoreError::Config { key, .. }) => key,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn reads_reference_keys_and_derives_sizes() {
        let cfg = TrmConfig::from_json_str(GOLDEN_MODEL).expect("valid config");
        assert_eq!(cfg.h_cycles, 3);
        assert!(cfg.mlp_t && cfg.no_act_continue);
        assert_eq!(cfg.pos_encodings, PosEncoding::None);
        assert_eq!(cfg.puzzle_emb_len(), 16);
        assert_eq!(cfg.total_seq_len(), 97);
        assert_eq!(cfg.head_dim(), 32);
        assert_eq!(cfg.mlp_intermediate_size(), 256);
        assert_eq!(cfg.mlp_t_intermediate_size(), Some(512));
        assert_eq!(cfg.embed_scale(), 8.0);
        assert_eq!(cfg.halt_rule(), HaltRule::QHaltPositive);
        let back = serde_json::to_string(&cfg).expect("serialises");
        assert!(back.contains("\"no_ACT_continue\":true"), "{back}");
        assert!(back.contains("\"L_cycles\":2"), "{back}");
        assert_eq!(TrmConfig::from_json_str(&back).expect("round trip"), cfg);
    }

    #[test]
    fn defaults_follow_the_reference() {
        let text = r#"{"seq_len": 81, "puzzle_emb_ndim": 64, "num_puzzle_identifiers": 3,
            "vocab_size": 11, "H_cycles": 3, "L_cycles": 6, "L_layers": 2, "hidden_size": 64,
            "expansion": 4.0, "num_heads": 2, "pos_encodings": "rope", "halt_max_steps": 16,
            "halt_exploration_prob": 0.1}"#;
        let cfg = TrmConfig::from_json_str(text).expect("valid config");
        assert_eq!(cfg.puzzle_emb_len, 16);
        assert!(cfg.no_act_continue);
        assert!(!cfg.mlp_t);
        assert_eq!(cfg.mlp_t_intermediate_size(), None);
        assert_eq!(cfg.forward_dtype, ForwardDtype::Bfloat16);
        assert_eq!(cfg.rms_norm_eps, 1e-5);
    }

    #[test]
    fn snake_case_aliases_and_toml() {
        let mut text = String::from(
            "seq_len = 9\npuzzle_emb_ndim = 0\nnum_puzzle_identifiers = 1\nvocab_size = 5\n\
             h_cycles = 2\nl_cycles = 1\nl_layers = 1\nhidden_size = 8\nexpansion = 2.0\n\
             num_heads = 2\npos_encodings = \"learned\"\nhalt_max_steps = 2\n\
             halt_exploration_prob = 0.0\npuzzle_emb_len = 0\n",
        );
        text.push_str("no_act_continue = false\n");
        let cfg = TrmConfig::from_toml_str(&text).expect("valid config");
        assert_eq!(cfg.h_cycles, 2);
        assert_eq!(cfg.total_seq_len(), 9);
        assert_eq!(cfg.halt_rule(), HaltRule::QHaltAboveContinue);
    }

    #[test]
    fn puzzle_emb_len_zero_derives_it_from_the_width() {
        let mut cfg = TrmConfig::tiny();
        cfg.hidden_size = 64;
        cfg.num_heads = 2;
        cfg.puzzle_emb_ndim = 96;
        cfg.puzzle_emb_len = 0;
        assert_eq!(cfg.puzzle_emb_len(), 2);
        assert_eq!(cfg.total_seq_len(), 83);
        cfg.validate().expect("valid");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let mut text = toml::to_string(&TrmConfig::tiny()).expect("serialises");
        text.push_str("mlp_tt = true\n");
        match TrmConfig::from_toml_str(&text) {
            Err(CoreError::ConfigParse { message, .. }) => {
                assert!(message.contains("mlp_tt"), "{message}")
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn impossible_values_name_the_key() {
        let mut cfg = TrmConfig::tiny();
        cfg.num_heads = 3;
        assert_eq!(key_of(cfg.validate()), "hidden_size");

        // 1 position of 64 cannot hold a 96-wide puzzle vector.
        let mut cfg = TrmConfig::tiny();
        cfg.hidden_size = 64;
        cfg.num_heads = 2;
        cfg.puzzle_emb_ndim = 96;
        cfg.puzzle_emb_len = 1;
        assert_eq!(key_of(cfg.validate()), "puzzle_emb_len");

        // The reference default of 16 positions without a puzzle embedding.
        let mut cfg = TrmConfig::tiny();
        cfg.puzzle_emb_ndim = 0;
        assert_eq!(key_of(cfg.validate()), "puzzle_emb_len");
        cfg.puzzle_emb_len = 0;
        cfg.validate().expect("valid without puzzle positions");

        let mut cfg = TrmConfig::tiny();
        cfg.l_cycles = 0;
        assert_eq!(key_of(cfg.validate()), "L_cycles");

        let mut cfg = TrmConfig::tiny();
        cfg.h_layers = 0;
        cfg.validate().expect("H_layers is ignored");
    }
}
