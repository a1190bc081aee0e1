//! The TRM block, `TinyRecursiveReasoningModel_ACTV1Block` in the reference's
//! `models/recursive_reasoning/trm.py`: a post-norm block whose token mixer is either
//! self-attention (as HRM's block) or, with `mlp_t`, a SwiGLU across the sequence axis.
//!
//! ```text
//! attention:  h = rms(h + attn(h))                       RMSNorm over H
//! mlp_t:      u = transpose(h)          [b, T, H] -> [b, H, T]
//!             u = rms(u + swiglu_t(u))                   SwiGLU of width T, RMSNorm over T
//!             h = transpose(u)          [b, H, T] -> [b, T, H]
//! both:       h = rms(h + swiglu(h))                     SwiGLU of width H, RMSNorm over H
//! ```
//!
//! The token-mixing MLP (the paper's "MLP on the sequence", section 4.3) has position-specific
//! weights over all `T = S + P` positions, puzzle positions included; with it there is no
//! attention and positions interact only through it. RMSNorm has no weight and there is no norm
//! before the sublayers, as in HRM.

use tch::{nn, Tensor};

use crate::attention::Attention;
use crate::block::residual_rms_norm;
use crate::rms_norm::rms_norm;
use crate::rope::Rope;
use crate::swiglu::SwiGlu;

/// Sizes a TRM block needs.
#[derive(Debug, Clone, Copy)]
pub struct TrmBlockDims {
    /// Hidden width `H`.
    pub hidden_size: i64,
    /// Attention heads (unused with `mlp_t`).
    pub num_heads: i64,
    /// SwiGLU expansion of both MLPs.
    pub expansion: f64,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// `Some(T)`: mix tokens with an MLP across the `T` positions instead of attention.
    pub mlp_t_width: Option<i64>,
}

/// How a block mixes information across positions.
#[derive(Debug)]
pub enum TokenMixer {
    /// `p/self_attn`: non-causal self-attention over `[b, T, H]`.
    Attention(Attention),
    /// `p/mlp_t`: a SwiGLU of width `T` applied to each channel's `T` positions.
    MlpT(SwiGlu),
}

/// One TRM block: token mixer and channel SwiGLU, post-norm residuals.
#[derive(Debug)]
pub struct TrmBlock {
    /// `p/self_attn` or `p/mlp_t`.
    pub mixer: TokenMixer,
    /// `p/mlp`.
    pub mlp: SwiGlu,
    eps: f64,
}

impl TrmBlock {
    /// Creates `p/self_attn/...` (or `p/mlp_t/...` when `d.mlp_t_width` is set) and `p/mlp/...`,
    /// initialised as the reference does.
    pub fn new(p: nn::Path, d: TrmBlockDims) -> Self {
        let mixer = match d.mlp_t_width {
            Some(t) => TokenMixer::MlpT(SwiGlu::new(&p / "mlp_t", t, d.expansion)),
            None => {
                let head_dim = d.hidden_size / d.num_heads;
                TokenMixer::Attention(Attention::new(
                    &p / "self_attn",
                    d.hidden_size,
                    head_dim,
                    d.num_heads,
                ))
            }
        };
        TrmBlock {
            mixer,
            mlp: SwiGlu::new(&p / "mlp", d.hidden_size, d.expansion),
            eps: d.rms_norm_eps,
        }
    }

    /// The token-mixing half: `rms(h + attn(h))`, or the transposed `mlp_t` residual.
    ///
    /// # Shapes
    /// `h: [b, T, H]` -> `[b, T, H]`.
    pub fn mix_tokens(&self, h: &Tensor, rope: Option<&Rope>) -> Tensor {
        match &self.mixer {
            TokenMixer::Attention(attn) => residual_rms_norm(attn.forward(h, rope), h, self.eps),
            TokenMixer::MlpT(mlp_t) => {
                // `u + ...` with `u` first: the sum keeps `u`'s (transposed) memory order, so
                // the result transposed back is contiguous.
                let u = h.transpose(1, 2); // [b, T, H] -> [b, H, T]
                let u = rms_norm(&(&u + mlp_t.forward(&u)), self.eps); // norm over T
                u.transpose(1, 2) // [b, H, T] -> [b, T, H]
            }
        }
    }

    /// # Shapes
    /// `h: [b, T, H]` -> `[b, T, H]`. `rope` is ignored with `mlp_t`.
    pub fn forward(&self, h: &Tensor, rope: Option<&Rope>) -> Tensor {
        let h = self.mix_tokens(h, rope); // [b, T, H]
        residual_rms_norm(self.mlp.forward(&h), &h, self.eps)
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind};

    use super::*;

    fn mlp_t_block(vs: &nn::VarStore, t: i64, h: i64) -> TrmBlock {
        TrmBlock::new(
            vs.root() / "b",
            TrmBlockDims {
                hidden_size: h,
                num_heads: 1,
                expansion: 1.0,
                rms_norm_eps: 1e-5,
                mlp_t_width: Some(t),
            },
        )
    }

    #[test]
    fn mlp_t_names_and_shapes_follow_the_reference() {
        let vs = nn::VarStore::new(Device::Cpu);
        let block = mlp_t_block(&vs, 5, 4);
        let vars = vs.variables();
        // T = 5, expansion 1: round(5 * 2/3) = 3 -> 256.
        assert_eq!(vars["b.mlp_t.gate_up_proj.weight"].size(), vec![512, 5]);
        assert_eq!(vars["b.mlp_t.down_proj.weight"].size(), vec![5, 256]);
        assert_eq!(vars["b.mlp.gate_up_proj.weight"].size(), vec![512, 4]);
        assert!(!vars.keys().any(|k| k.contains("self_attn")));
        let h = Tensor::randn([2, 5, 4], (Kind::Float, Device::Cpu));
        assert_eq!(block.forward(&h, None).size(), vec![2, 5, 4]);
    }

    #[test]
    fn mlp_t_norm_runs_over_the_sequence_axis() {
        // With the token MLP's down projection zeroed, mix_tokens is exactly the RMSNorm of h
        // over the T positions of each channel: hand-computable.
        let vs = nn::VarStore::new(Device::Cpu);
        let block = mlp_t_block(&vs, 2, 3);
        let TokenMixer::MlpT(mlp_t) = &block.mixer else {
            panic!("expected mlp_t")
        };
        tch::no_grad(|| {
            let _ = mlp_t.down_proj.weight.shallow_clone().zero_();
        });
        // h[0] = [[3, 1, 0], [4, 1, 2]]: T = 2 positions (rows), H = 3 channels (columns).
        let h = Tensor::from_slice(&[3.0f32, 1.0, 0.0, 4.0, 1.0, 2.0]).view([1, 2, 3]);
        let got: Vec<f32> = Vec::try_from(block.mix_tokens(&h, None).view([-1])).expect("f32");
        // Channel 0 holds (3, 4) over the positions: mean square 12.5; channel 1 holds (1, 1):
        // 1; channel 2 holds (0, 2): 2.
        let r = |ms: f32| 1.0 / (ms + 1e-5).sqrt();
        let want = [
            3.0 * r(12.5),
            r(1.0),
            0.0,
            4.0 * r(12.5),
            r(1.0),
            2.0 * r(2.0),
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        // Over the hidden axis instead, row 0 would be (3, 1, 0) / sqrt(10/3): not what we get.
        assert!((got[0] - 3.0 / (10.0f32 / 3.0).sqrt()).abs() > 0.1);
    }

    #[test]
    fn mlp_t_mixes_positions_and_attention_block_matches_hrm_names() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let block = mlp_t_block(&vs, 4, 6);
        // Changing position 3 changes position 0's output: information crosses positions.
        let h = Tensor::randn([1, 4, 6], (Kind::Float, Device::Cpu));
        let h2 = h.copy();
        let _ = h2.narrow(1, 3, 1).g_add_scalar_(1.0);
        let diff = (block.forward(&h, None) - block.forward(&h2, None))
            .narrow(1, 0, 1)
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff > 1e-4, "{diff}");

        let vs = nn::VarStore::new(Device::Cpu);
        let _ = TrmBlock::new(
            vs.root() / "b",
            TrmBlockDims {
                hidden_size: 8,
                num_heads: 2,
                expansion: 4.0,
                rms_norm_eps: 1e-5,
                mlp_t_width: None,
            },
        );
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "b.mlp.down_proj.weight",
                "b.mlp.gate_up_proj.weight",
                "b.self_attn.o_proj.weight",
                "b.self_attn.qkv_proj.weight"
            ]
        );
    }
}
