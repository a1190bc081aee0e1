//! A plain Transformer baseline: HRM's post-norm blocks (`HierarchicalReasoningModel_ACTV1Block`
//! in the reference's `models/hrm/hrm_act_v1.py`) in one feed-forward stack, with no recurrence,
//! no carry and no ACT: `x -> block_1 -> ... -> block_N -> lm_head`.
//!
//! This is the "Transformer" of the HRM paper's comparisons, and TRM's
//! `models/recursive_reasoning/transformers_baseline.py` (`Model_ACTV2`) without its ACT loop and
//! carry. Embeddings and position encodings are HRM's ([`InputEmbedding`], [`Rope`]); the
//! forward runs in `forward_dtype` with float32 parameters, as HRM's does.
//!
//! **Depth.** The config takes either `num_layers`, or HRM's `H_layers` and `L_layers`, whose
//! **sum** is the depth: HRM's 4+4 layers give an 8-block stack, the same number of distinct
//! blocks (and so about the same parameter count) as HRM, which is what TRM's baseline does with
//! `H_layers: 8`. HRM's cycles are not accepted: a stack has none.
//!
//! Parameters: `inner.embed_tokens.embedding_weight`, `inner.embed_pos.embedding_weight` (learned
//! positions), `inner.layers.{i}.self_attn.{qkv_proj,o_proj}.weight`,
//! `inner.layers.{i}.mlp.{gate_up_proj,down_proj}.weight`, `inner.lm_head.weight`, and
//! `inner.puzzle_emb.weights` in the sparse store.

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::block::{Block, BlockDims};
use crate::config::{
    require_positive, validate_common, CommonDims, ForwardDtype, ModelConfig, PosEncoding,
};
use crate::direct::{DirectModel, DirectOutput};
use crate::embedding::{EmbeddingDims, InputEmbedding};
use crate::error::{CoreError, Result};
use crate::linear::CastedLinear;
use crate::params::ModelParams;
use crate::recurrent::{CoreDims, CoreInput, HaltRule, Mode};
use crate::rope::Rope;

/// The architecture name used in configs and messages.
pub const ARCH: &str = "transformer";

/// Transformer baseline settings, with HRM's key names. Unknown keys (HRM's `H_cycles`,
/// `halt_max_steps`, ...) are errors that name the architecture.
///
/// # Example
/// ```
/// use hrm_core::ModelConfig;
/// let cfg = hrm_core::TransformerConfig::from_toml_str(
///     "seq_len = 81\nvocab_size = 11\nnum_puzzle_identifiers = 1\nH_layers = 4\nL_layers = 4\n\
///      hidden_size = 64\nnum_heads = 2\nexpansion = 4.0\npos_encodings = \"rope\"\n",
/// )?;
/// assert_eq!(cfg.depth(), 8);
/// # Ok::<(), hrm_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Accepted for compatibility with the reference's model sections and ignored: the batch
    /// size comes from the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Tokens per example (`S`), without puzzle positions; from the dataset.
    pub seq_len: usize,
    /// Width of the per-puzzle embedding (`Dp`); 0 disables it.
    #[serde(default)]
    pub puzzle_emb_ndim: usize,
    /// Rows of the puzzle table, including the blank id 0; from the dataset.
    pub num_puzzle_identifiers: usize,
    /// Vocabulary size (`V`); from the dataset.
    pub vocab_size: usize,
    /// Blocks in the stack. Give this, or `H_layers` and `L_layers`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_layers: Option<usize>,
    /// HRM's high-level blocks, counted into the depth (`H_layers + L_layers`).
    #[serde(
        rename = "H_layers",
        alias = "h_layers",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub h_layers: Option<usize>,
    /// HRM's low-level blocks, counted into the depth (`H_layers + L_layers`).
    #[serde(
        rename = "L_layers",
        alias = "l_layers",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub l_layers: Option<usize>,
    /// Hidden width (`H`).
    pub hidden_size: usize,
    /// SwiGLU expansion factor, as in HRM.
    pub expansion: f64,
    /// Attention heads; must divide `hidden_size`.
    pub num_heads: usize,
    /// Position encoding (`rope`, `learned` or `none`).
    pub pos_encodings: PosEncoding,
    /// RMSNorm epsilon (reference default 1e-5).
    #[serde(default = "crate::config::default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base (reference default 10000).
    #[serde(default = "crate::config::default_rope_theta")]
    pub rope_theta: f64,
    /// Dtype of the forward pass (default bfloat16, as HRM; the trainer sets float32 on CPU).
    #[serde(default = "crate::config::default_forward_dtype")]
    pub forward_dtype: ForwardDtype,
}

impl TransformerConfig {
    /// The `tiny` preset: HRM's tiny model as a stack, hidden 128, 4 heads, 2+2 = 4 blocks,
    /// Sudoku sizes (seq_len 81, vocab 11), RoPE, no puzzle embedding, float32.
    pub fn tiny() -> Self {
        TransformerConfig {
            batch_size: None,
            seq_len: 81,
            puzzle_emb_ndim: 0,
            num_puzzle_identifiers: 1,
            vocab_size: 11,
            num_layers: None,
            h_layers: Some(2),
            l_layers: Some(2),
            hidden_size: 128,
            expansion: 4.0,
            num_heads: 4,
            pos_encodings: PosEncoding::Rope,
            rms_norm_eps: 1e-5,
            rope_theta: 10000.0,
            forward_dtype: ForwardDtype::Float32,
        }
    }

    /// Number of blocks: `num_layers`, or `H_layers + L_layers`.
    pub fn depth(&self) -> usize {
        self.num_layers
            .unwrap_or(self.h_layers.unwrap_or(0) + self.l_layers.unwrap_or(0))
    }

    /// Width of one attention head (`H / nh`).
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Prepended puzzle positions, `P = ceil(Dp / H)` as in HRM.
    pub fn puzzle_emb_len(&self) -> usize {
        self.puzzle_emb_ndim.div_ceil(self.hidden_size)
    }

    /// Positions the stack runs over, `T = S + P`.
    pub fn total_seq_len(&self) -> usize {
        self.seq_len + self.puzzle_emb_len()
    }
}

impl ModelConfig for TransformerConfig {
    const ARCH: &'static str = ARCH;

    /// Checks every value, naming the first impossible key.
    ///
    /// # Errors
    /// [`CoreError::Config`] for zero sizes, `num_layers` given together with `H_layers` or
    /// `L_layers`, a depth of 0, and the checks HRM makes on the block (`hidden_size` not
    /// divisible by `num_heads`, an odd head dimension with RoPE, a non-positive expansion,
    /// epsilon or RoPE base, a puzzle embedding without identifiers).
    fn validate(&self) -> Result<()> {
        require_positive(&[
            ("seq_len", self.seq_len),
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_heads", self.num_heads),
        ])?;
        if self.num_layers.is_some() && (self.h_layers.is_some() || self.l_layers.is_some()) {
            return Err(CoreError::Config {
                key: "num_layers",
                reason: "give either num_layers or H_layers + L_layers, not both".into(),
            });
        }
        if self.depth() == 0 {
            return Err(CoreError::Config {
                key: "num_layers",
                reason: "the stack needs at least one block (set num_layers, or H_layers and \
                         L_layers, whose sum is the depth)"
                    .into(),
            });
        }
        validate_common(&CommonDims {
            hidden_size: self.hidden_size,
            num_heads: self.num_heads,
            expansion: self.expansion,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: self.rope_theta,
            pos_encodings: self.pos_encodings,
            halt_exploration_prob: 0.0,
            puzzle_emb_ndim: self.puzzle_emb_ndim,
            num_puzzle_identifiers: self.num_puzzle_identifiers,
        })
    }
}

/// The feed-forward stack of HRM blocks with its parameters.
#[derive(Debug)]
pub struct Transformer {
    cfg: TransformerConfig,
    params: ModelParams,
    embedding: InputEmbedding,
    rope: Option<Rope>,
    /// `inner.layers.{i}`.
    pub layers: Vec<Block>,
    /// `inner.lm_head`, `[V, H]`, no bias.
    pub lm_head: CastedLinear,
}

impl Transformer {
    /// Builds a freshly initialised model on `device` (seed with `tch::manual_seed` first for a
    /// reproducible initialisation), initialised as HRM's layers are.
    ///
    /// # Errors
    /// [`CoreError::Config`] when the config is invalid.
    pub fn new(cfg: &TransformerConfig, device: Device) -> Result<Self> {
        cfg.validate()?;
        let params = ModelParams::new(device);
        let (embedding, rope, layers, lm_head) = {
            let inner = params.root() / "inner";
            let sparse_inner = params.sparse_root() / "inner";
            let h = cfg.hidden_size as i64;
            let embedding = InputEmbedding::new(
                &inner,
                &sparse_inner,
                EmbeddingDims {
                    vocab_size: cfg.vocab_size as i64,
                    hidden_size: h,
                    seq_len: cfg.seq_len as i64,
                    puzzle_emb_len: cfg.puzzle_emb_len() as i64,
                    puzzle_emb_ndim: cfg.puzzle_emb_ndim as i64,
                    num_puzzle_identifiers: cfg.num_puzzle_identifiers as i64,
                    pos_encodings: cfg.pos_encodings,
                },
            );
            let rope = (cfg.pos_encodings == PosEncoding::Rope).then(|| {
                Rope::new(
                    cfg.head_dim() as i64,
                    cfg.total_seq_len() as i64,
                    cfg.rope_theta,
                    device,
                )
            });
            let dims = BlockDims {
                hidden_size: h,
                num_heads: cfg.num_heads as i64,
                expansion: cfg.expansion,
                rms_norm_eps: cfg.rms_norm_eps,
            };
            let layers = (0..cfg.depth())
                .map(|i| Block::new(&inner / "layers" / i, dims))
                .collect();
            let lm_head = CastedLinear::new(&inner / "lm_head", h, cfg.vocab_size as i64, false);
            (embedding, rope, layers, lm_head)
        };
        Ok(Transformer {
            cfg: cfg.clone(),
            params,
            embedding,
            rope,
            layers,
            lm_head,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TransformerConfig {
        &self.cfg
    }
}

impl DirectModel for Transformer {
    fn dims(&self) -> CoreDims {
        let c = &self.cfg;
        CoreDims {
            seq_len: c.seq_len as i64,
            vocab_size: c.vocab_size as i64,
            hidden_size: c.hidden_size as i64,
            puzzle_emb_len: c.puzzle_emb_len() as i64,
            puzzle_emb_ndim: c.puzzle_emb_ndim as i64,
            num_puzzle_identifiers: c.num_puzzle_identifiers as i64,
            halt_max_steps: 1,
            halt_exploration_prob: 0.0,
            halt_rule: HaltRule::QHaltPositive,
            forward_kind: c.forward_dtype.kind(),
        }
    }

    fn params(&self) -> &ModelParams {
        &self.params
    }

    /// # Shapes
    /// `inputs: [b, S]`, `puzzle_identifiers: [b]` -> logits `[b, S, V]` in the forward dtype.
    fn forward(&self, input: &CoreInput, mode: Mode) -> DirectOutput {
        let kind = self.cfg.forward_dtype.kind();
        let (mut h, local) =
            self.embedding
                .forward(&input.inputs, &input.puzzle_identifiers, mode, kind); // [b, T, H]
        for layer in &self.layers {
            h = layer.forward(&h, self.rope.as_ref()); // [b, T, H]
        }
        let p = self.cfg.puzzle_emb_len() as i64;
        let tokens = h.narrow(1, p, self.cfg.seq_len as i64); // [b, S, H]
        DirectOutput {
            logits: self.lm_head.forward(&tokens), // [b, S, V]
            puzzle_emb_local: local,
        }
    }
}

#[cfg(test)]
mod tests {
    use tch::Kind;

    use super::*;

    fn small(pos: PosEncoding, puzzle_emb_ndim: usize) -> TransformerConfig {
        TransformerConfig {
            seq_len: 6,
            vocab_size: 5,
            hidden_size: 8,
            num_heads: 2,
            expansion: 2.0,
            h_layers: Some(1),
            l_layers: Some(2),
            pos_encodings: pos,
            puzzle_emb_ndim,
            num_puzzle_identifiers: 3,
            ..TransformerConfig::tiny()
        }
    }

    fn input(model: &Transformer) -> CoreInput {
        let tokens: Vec<i32> = (0..12).map(|i| i % 5).collect();
        CoreInput::from_host(&tokens, &[0, 2], &model.dims(), Device::Cpu).expect("valid input")
    }

    #[test]
    fn depth_is_h_plus_l_layers_and_names_are_flat() {
        let model = Transformer::new(&small(PosEncoding::Learned, 12), Device::Cpu).expect("model");
        assert_eq!(model.layers.len(), 3);
        let names: Vec<String> = model.params().all().into_iter().map(|(n, _)| n).collect();
        for want in [
            "inner.embed_tokens.embedding_weight",
            "inner.embed_pos.embedding_weight",
            "inner.layers.2.self_attn.qkv_proj.weight",
            "inner.layers.2.self_attn.o_proj.weight",
            "inner.layers.0.mlp.gate_up_proj.weight",
            "inner.layers.0.mlp.down_proj.weight",
            "inner.lm_head.weight",
            "inner.puzzle_emb.weights",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        assert!(!names
            .iter()
            .any(|n| n.contains("q_head") || n.contains("H_level") || n.contains("layers.3")));
        // The same blocks as HRM with H_layers = 1, L_layers = 2: equal block parameters.
        let hrm_cfg = crate::HrmConfig {
            seq_len: 6,
            vocab_size: 5,
            hidden_size: 8,
            num_heads: 2,
            expansion: 2.0,
            h_layers: 1,
            l_layers: 2,
            puzzle_emb_ndim: 0,
            ..crate::HrmConfig::tiny()
        };
        let hrm = crate::Hrm::new(&hrm_cfg, Device::Cpu).expect("hrm");
        let blocks = |p: &ModelParams| -> i64 {
            p.trainable()
                .iter()
                .filter(|(n, _)| n.contains("layers."))
                .map(|(_, t)| t.numel() as i64)
                .sum()
        };
        use crate::RecurrentCore;
        assert_eq!(blocks(model.params()), blocks(hrm.params()));
    }

    #[test]
    fn forward_shapes_in_f32_and_bf16() {
        tch::manual_seed(0);
        for (dtype, kind) in [
            (ForwardDtype::Float32, Kind::Float),
            (ForwardDtype::Bfloat16, Kind::BFloat16),
        ] {
            let cfg = TransformerConfig {
                forward_dtype: dtype,
                ..small(PosEncoding::Rope, 12)
            };
            let model = Transformer::new(&cfg, Device::Cpu).expect("model");
            assert_eq!(model.dims().total_seq_len(), 8);
            let out = model.forward(&input(&model), Mode::Train);
            assert_eq!(out.logits.size(), vec![2, 6, 5]);
            assert_eq!(out.logits.kind(), kind);
            assert!(model
                .params()
                .all()
                .iter()
                .all(|(_, t)| t.kind() == Kind::Float));
            let local = out.puzzle_emb_local.expect("puzzle leaf");
            out.logits.to_kind(Kind::Float).sum(Kind::Float).backward();
            assert!(local.grad().defined());
        }
    }

    #[test]
    fn depth_keys_are_checked() {
        let key_of = |cfg: TransformerConfig| match cfg.validate() {
            Err(CoreError::Config { key, .. }) => key,
            other => panic!("expected a config error, got {other:?}"),
        };
        let mut cfg = small(PosEncoding::Rope, 0);
        cfg.num_layers = Some(3);
        assert_eq!(key_of(cfg.clone()), "num_layers");
        cfg.h_layers = None;
        cfg.l_layers = None;
        cfg.validate().expect("num_layers alone");
        assert_eq!(cfg.depth(), 3);
        cfg.num_layers = Some(0);
        assert_eq!(key_of(cfg.clone()), "num_layers");
        let mut cfg = small(PosEncoding::Rope, 0);
        cfg.num_heads = 3;
        assert_eq!(key_of(cfg), "hidden_size");
    }

    #[test]
    fn hrm_only_keys_are_errors_naming_the_arch() {
        let text = "seq_len = 6\nvocab_size = 5\nnum_puzzle_identifiers = 1\nH_layers = 1\n\
                    L_layers = 1\nhidden_size = 8\nnum_heads = 2\nexpansion = 2.0\n\
                    pos_encodings = \"rope\"\nH_cycles = 2\n";
        let err = TransformerConfig::from_toml_str(text).expect_err("H_cycles is not ours");
        let msg = err.to_string();
        assert!(
            msg.contains("arch `transformer`") && msg.contains("H_cycles"),
            "{msg}"
        );
        assert!(
            msg.contains("num_layers"),
            "the valid keys are listed: {msg}"
        );
        let ok = text.replace("H_cycles = 2\n", "batch_size = 32\n");
        let cfg = TransformerConfig::from_toml_str(&ok).expect("batch_size is accepted");
        assert_eq!(cfg.depth(), 2);
        assert_eq!(cfg.forward_dtype, ForwardDtype::Bfloat16);
    }
}
