//! A bidirectional GRU baseline: HRM's input embedding, a multi-layer bidirectional GRU over all
//! `T` positions (libtorch's fused kernel, `torch.nn.GRU(batch_first=True, bidirectional=True)`
//! in PyTorch terms), and a per-position LM head over the token positions.
//!
//! There is no reference implementation in HRM or TRM; this is the recurrent-network baseline of
//! `hrm compare`. It keeps what the data needs from HRM: the token embedding scaled by
//! `sqrt(H)`, and the sparse puzzle embedding prepended as `P = ceil(Dp / H)` positions, so
//! ARC-style data with per-puzzle identifiers trains too. Order is encoded by the recurrence, so
//! there is no position encoding. The forward runs in float32.
//!
//! Parameters: `inner.embed_tokens.embedding_weight` `[V, H]`, `inner.gru.weight_ih_l{k}`
//! `[3H, in]`, `inner.gru.weight_hh_l{k}` `[3H, H]`, `inner.gru.bias_{ih,hh}_l{k}` `[3H]` (and the
//! same with `_reverse` for the backward direction; `in` is `H` for layer 0 and `2H` above, as
//! PyTorch names and shapes them), `inner.lm_head.weight` `[V, 2H]`, and
//! `inner.puzzle_emb.weights` `[Nid, Dp]` in the sparse store. The GRU starts from PyTorch's
//! `nn.GRU` initialisation, `U(-1/sqrt(H), 1/sqrt(H))` for every weight and bias.

use serde::{Deserialize, Serialize};
use tch::nn::{self, RNN};
use tch::{Device, Kind};

use crate::config::{require_positive, ModelConfig, PosEncoding};
use crate::direct::{DirectModel, DirectOutput};
use crate::embedding::{EmbeddingDims, InputEmbedding};
use crate::error::{CoreError, Result};
use crate::linear::CastedLinear;
use crate::params::ModelParams;
use crate::recurrent::{CoreDims, CoreInput, HaltRule, Mode};

/// The architecture name used in configs and messages.
pub const ARCH: &str = "gru";

/// GRU baseline settings. Unknown keys (including HRM's `H_cycles`, `num_heads`, ...) are errors
/// that name the architecture.
///
/// # Example
/// ```
/// use hrm_core::ModelConfig;
/// let cfg = hrm_core::GruConfig::from_toml_str(
///     "seq_len = 16\nvocab_size = 6\nnum_puzzle_identifiers = 1\nhidden_size = 32\nnum_layers = 2\n",
/// )?;
/// assert_eq!(cfg.total_seq_len(), 16);
/// let err = hrm_core::GruConfig::from_toml_str("seq_len = 16\nH_cycles = 2\n").unwrap_err();
/// assert!(err.to_string().contains("arch `gru`") && err.to_string().contains("H_cycles"));
/// # Ok::<(), hrm_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GruConfig {
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
    /// Embedding width and GRU state width per direction (`H`); the LM head reads `2H`.
    pub hidden_size: usize,
    /// Stacked bidirectional GRU layers.
    pub num_layers: usize,
}

impl GruConfig {
    /// The `tiny` preset: hidden 128, 2 layers, Sudoku sizes (seq_len 81, vocab 11), no puzzle
    /// embedding.
    pub fn tiny() -> Self {
        GruConfig {
            batch_size: None,
            seq_len: 81,
            puzzle_emb_ndim: 0,
            num_puzzle_identifiers: 1,
            vocab_size: 11,
            hidden_size: 128,
            num_layers: 2,
        }
    }

    /// Prepended puzzle positions, `P = ceil(Dp / H)` as in HRM.
    pub fn puzzle_emb_len(&self) -> usize {
        self.puzzle_emb_ndim.div_ceil(self.hidden_size)
    }

    /// Positions the GRU runs over, `T = S + P`.
    pub fn total_seq_len(&self) -> usize {
        self.seq_len + self.puzzle_emb_len()
    }
}

impl ModelConfig for GruConfig {
    const ARCH: &'static str = ARCH;

    /// Checks every value, naming the first impossible key.
    ///
    /// # Errors
    /// [`CoreError::Config`] for a zero `seq_len`, `vocab_size`, `hidden_size` or `num_layers`,
    /// and for a puzzle embedding without identifiers.
    fn validate(&self) -> Result<()> {
        require_positive(&[
            ("seq_len", self.seq_len),
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_layers", self.num_layers),
        ])?;
        if self.puzzle_emb_ndim > 0 && self.num_puzzle_identifiers == 0 {
            return Err(CoreError::Config {
                key: "num_puzzle_identifiers",
                reason: "must be at least 1 when puzzle_emb_ndim > 0".into(),
            });
        }
        Ok(())
    }
}

/// The bidirectional GRU baseline with its parameters.
#[derive(Debug)]
pub struct Gru {
    cfg: GruConfig,
    params: ModelParams,
    embedding: InputEmbedding,
    gru: nn::GRU,
    /// `inner.lm_head`, `[V, 2H]`, no bias.
    pub lm_head: CastedLinear,
}

impl Gru {
    /// Builds a freshly initialised model on `device` (seed with `tch::manual_seed` first for a
    /// reproducible initialisation).
    ///
    /// # Errors
    /// [`CoreError::Config`] when the config is invalid.
    pub fn new(cfg: &GruConfig, device: Device) -> Result<Self> {
        cfg.validate()?;
        let params = ModelParams::new(device);
        let (embedding, gru, lm_head) = {
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
                    pos_encodings: PosEncoding::None,
                },
            );
            // PyTorch's nn.GRU.reset_parameters: every tensor from U(-1/sqrt(H), 1/sqrt(H)).
            let k = 1.0 / (h as f64).sqrt();
            let init = nn::Init::Uniform { lo: -k, up: k };
            let rnn = nn::RNNConfig {
                has_biases: true,
                num_layers: cfg.num_layers as i64,
                dropout: 0.0,
                train: true,
                bidirectional: true,
                batch_first: true,
                w_ih_init: init,
                w_hh_init: init,
                b_ih_init: Some(init),
                b_hh_init: Some(init),
            };
            let gru = nn::gru(&inner / "gru", h, h, rnn);
            let lm_head =
                CastedLinear::new(&inner / "lm_head", 2 * h, cfg.vocab_size as i64, false);
            (embedding, gru, lm_head)
        };
        Ok(Gru {
            cfg: cfg.clone(),
            params,
            embedding,
            gru,
            lm_head,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GruConfig {
        &self.cfg
    }
}

impl DirectModel for Gru {
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
            forward_kind: Kind::Float,
        }
    }

    fn params(&self) -> &ModelParams {
        &self.params
    }

    /// # Shapes
    /// `inputs: [b, S]`, `puzzle_identifiers: [b]` -> logits `[b, S, V]` float32.
    fn forward(&self, input: &CoreInput, mode: Mode) -> DirectOutput {
        let (x, local) =
            self.embedding
                .forward(&input.inputs, &input.puzzle_identifiers, mode, Kind::Float); // [b, T, H]
        let (states, _) = self.gru.seq(&x); // [b, T, 2H]: forward and backward states side by side
        let p = self.cfg.puzzle_emb_len() as i64;
        let tokens = states.narrow(1, p, self.cfg.seq_len as i64); // [b, S, 2H]
        DirectOutput {
            logits: self.lm_head.forward(&tokens), // [b, S, V]
            puzzle_emb_local: local,
        }
    }
}

#[cfg(test)]
mod tests {
    use tch::Tensor;

    use super::*;

    fn small(puzzle_emb_ndim: usize) -> GruConfig {
        GruConfig {
            seq_len: 5,
            vocab_size: 7,
            hidden_size: 8,
            num_layers: 2,
            puzzle_emb_ndim,
            num_puzzle_identifiers: 3,
            ..GruConfig::tiny()
        }
    }

    fn input(model: &Gru) -> CoreInput {
        let tokens: Vec<i32> = (0..10).map(|i| i % 7).collect();
        CoreInput::from_host(&tokens, &[0, 2], &model.dims(), Device::Cpu).expect("valid input")
    }

    #[test]
    fn parameter_names_and_shapes_follow_pytorch_gru() {
        let model = Gru::new(&small(12), Device::Cpu).expect("model");
        let all = model.params().all();
        let shape = |name: &str| {
            all.iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.size())
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        assert_eq!(shape("inner.embed_tokens.embedding_weight"), vec![7, 8]);
        assert_eq!(shape("inner.gru.weight_ih_l0"), vec![24, 8]);
        assert_eq!(shape("inner.gru.weight_ih_l1_reverse"), vec![24, 16]);
        assert_eq!(shape("inner.gru.weight_hh_l1"), vec![24, 8]);
        assert_eq!(shape("inner.gru.bias_hh_l0_reverse"), vec![24]);
        assert_eq!(shape("inner.lm_head.weight"), vec![7, 16]);
        assert_eq!(shape("inner.puzzle_emb.weights"), vec![3, 12]);
        // Embedding, 2 layers x 2 directions x 4 tensors, LM head (the puzzle table is sparse).
        assert_eq!(model.params().trainable().len(), 1 + 16 + 1);
        let h = 8i64;
        let gru = 2 * (3 * h * h + 3 * h * h + 6 * h) + 2 * (3 * h * 2 * h + 3 * h * h + 6 * h);
        assert_eq!(model.params().num_trainable(), 7 * h + gru + 7 * 2 * h);
    }

    #[test]
    fn forward_shapes_and_the_puzzle_positions() {
        tch::manual_seed(0);
        let model = Gru::new(&small(12), Device::Cpu).expect("model");
        assert_eq!(model.dims().puzzle_emb_len, 2);
        let out = model.forward(&input(&model), Mode::Train);
        assert_eq!(out.logits.size(), vec![2, 5, 7]);
        assert_eq!(out.logits.kind(), Kind::Float);
        let local = out.puzzle_emb_local.expect("a puzzle leaf in training");
        assert_eq!(local.size(), vec![2, 12]);
        // The prepended puzzle rows reach every token through the backward direction.
        out.logits.sum(Kind::Float).backward();
        assert!(local.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);

        let eval = tch::no_grad(|| model.forward(&input(&model), Mode::Eval));
        assert!(eval.puzzle_emb_local.is_none());
        let diff = (&eval.logits - out.logits.detach())
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-6, "train and eval forwards differ by {diff}");
    }

    #[test]
    fn both_directions_see_the_whole_sequence() {
        // Changing the last token changes the logits of the first position (backward direction)
        // and changing the first changes the last (forward direction).
        tch::manual_seed(1);
        let model = Gru::new(&small(0), Device::Cpu).expect("model");
        let dims = model.dims();
        let run = |tokens: &[i32]| {
            let input = CoreInput::from_host(tokens, &[0], &dims, Device::Cpu).expect("input");
            tch::no_grad(|| model.forward(&input, Mode::Eval).logits)
        };
        let base = run(&[1, 2, 3, 4, 5]);
        let last = run(&[1, 2, 3, 4, 6]);
        let first = run(&[6, 2, 3, 4, 5]);
        let moved = |a: &Tensor, b: &Tensor, pos: i64| {
            (a.select(1, pos) - b.select(1, pos))
                .abs()
                .max()
                .double_value(&[])
        };
        assert!(moved(&base, &last, 0) > 1e-6);
        assert!(moved(&base, &first, 4) > 1e-6);
    }

    #[test]
    fn config_errors_name_the_key_and_the_arch() {
        let mut cfg = small(0);
        cfg.num_layers = 0;
        assert!(matches!(
            Gru::new(&cfg, Device::Cpu),
            Err(CoreError::Config {
                key: "num_layers",
                ..
            })
        ));
        let mut text = toml::to_string(&small(0)).expect("serialises");
        text.push_str("num_heads = 4\n");
        match GruConfig::from_toml_str(&text) {
            Err(CoreError::ConfigParse {
                source_name,
                message,
            }) => {
                assert!(source_name.contains("arch `gru`"), "{source_name}");
                assert!(
                    message.contains("num_heads") && message.contains("num_layers"),
                    "{message}"
                );
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
        let json = serde_json::to_string(&small(4)).expect("serialises");
        assert_eq!(
            GruConfig::from_json_str(&json).expect("round trip"),
            small(4)
        );
    }
}
