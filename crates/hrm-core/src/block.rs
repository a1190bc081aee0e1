//! The post-norm transformer block, as `HierarchicalReasoningModel_ACTV1Block` in the
//! reference's `models/hrm/hrm_act_v1.py`.
//!
//! `h = rms(h + attn(h)); h = rms(h + swiglu(h))`: the norm comes after each residual sum
//! (post-norm, unlike most modern transformers), and RMSNorm has no weight.

use tch::{nn, Tensor};

use crate::attention::Attention;
use crate::fused;
use crate::rms_norm::rms_norm;
use crate::rope::Rope;
use crate::swiglu::SwiGlu;

/// Sizes a block needs.
#[derive(Debug, Clone, Copy)]
pub struct BlockDims {
    /// Hidden width `H`.
    pub hidden_size: i64,
    /// Attention heads.
    pub num_heads: i64,
    /// SwiGLU expansion.
    pub expansion: f64,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
}

/// One attention + SwiGLU block with post-norm residuals.
#[derive(Debug)]
pub struct Block {
    /// `p/self_attn`.
    pub self_attn: Attention,
    /// `p/mlp`.
    pub mlp: SwiGlu,
    eps: f64,
}

impl Block {
    /// Creates `p/self_attn/...` and `p/mlp/...`.
    pub fn new(p: nn::Path, d: BlockDims) -> Self {
        let head_dim = d.hidden_size / d.num_heads;
        Block {
            self_attn: Attention::new(&p / "self_attn", d.hidden_size, head_dim, d.num_heads),
            mlp: SwiGlu::new(&p / "mlp", d.hidden_size, d.expansion),
            eps: d.rms_norm_eps,
        }
    }

    /// # Shapes
    /// `h: [b, T, H]` -> `[b, T, H]`.
    pub fn forward(&self, h: &Tensor, rope: Option<&Rope>) -> Tensor {
        let h = residual_rms_norm(self.self_attn.forward(h, rope), h, self.eps);
        residual_rms_norm(self.mlp.forward(&h), &h, self.eps)
    }
}

/// The post-norm residual step `rms_norm(sublayer_out + h)`. bfloat16 on the CPU without a
/// graph runs one fused kernel (the sum rounded to bfloat16, then normalised in float32 and
/// rounded once, as the unfused ops do); everything else runs libtorch's ops. Without a graph
/// the unfused path may write the sum into `sublayer_out`'s storage.
///
/// # Shapes
/// `sublayer_out, h: [b, T, H]` -> `[b, T, H]`.
pub fn residual_rms_norm(sublayer_out: Tensor, h: &Tensor, eps: f64) -> Tensor {
    match fused::add_rms_norm(&sublayer_out, h, eps) {
        Some(out) => out,
        None => rms_norm(&residual(sublayer_out, h), eps),
    }
}

/// `sublayer_out + h`. Without a graph (every update but the last two, evaluation) the sum is
/// written into the sublayer's fresh output, saving a temporary (`a + h` equals `h + a`
/// exactly). With a graph it is a new tensor: the output may be a view of the kernel's result,
/// and an in-place write into a view would add view-replay work to the backward pass.
///
/// # Shapes
/// `sublayer_out, h: [b, T, H]` -> `[b, T, H]`.
pub(crate) fn residual(mut sublayer_out: Tensor, h: &Tensor) -> Tensor {
    if sublayer_out.requires_grad() || h.requires_grad() {
        return sublayer_out + h;
    }
    let _ = sublayer_out.g_add_(h);
    sublayer_out
}
