//! Rotary position embeddings, as `RotaryEmbedding`, `rotate_half` and `apply_rotary_pos_emb` in
//! the reference's `models/layers.py` (RoFormer, Su et al. 2021).
//!
//! The rotate-half convention: dimension `i < d/2` is paired with `i + d/2` (not interleaved
//! pairs). Tables cover all `T` positions, puzzle positions first. They are plain tensors, not
//! variables, so they never reach a checkpoint (non-persistent buffers in the reference).

use tch::{Device, Kind, Tensor};

use crate::fused;

/// Precomputed `cos` and `sin` tables, `[T, d]` float32, and their copies in the forward dtypes.
#[derive(Debug)]
pub struct Rope {
    /// `cos([freqs, freqs])`, `[T, d]`.
    pub cos: Tensor,
    /// `sin([freqs, freqs])`, `[T, d]`.
    pub sin: Tensor,
    /// Per dtype (float32, bfloat16): `cos` and the sign-flipped sine `[-sin1, sin2]`, `[T, d]`.
    tables: Vec<(Kind, Tensor, Tensor)>,
}

impl Rope {
    /// Tables for `positions` positions of head dimension `head_dim` (even) and base `theta`,
    /// computed in float32 as the reference does.
    pub fn new(head_dim: i64, positions: i64, theta: f64, device: Device) -> Self {
        let opts = (Kind::Float, device);
        // inv_freq[i] = 1 / theta^(2i/d), exponent in float32.
        let exponent = Tensor::arange_start_step(0, head_dim, 2, opts) / head_dim as f64;
        let inv_freq = Tensor::full([1], theta, opts).pow(&exponent).reciprocal();
        let t = Tensor::arange(positions, opts);
        let freqs = t.outer(&inv_freq); // [T, d/2]
        let emb = Tensor::cat(&[&freqs, &freqs], -1); // [T, d]
        let (cos, sin) = (emb.cos(), emb.sin());
        // Speed: `rotate_half(x) * sin` is `[-x2, x1] * [sin1, sin2]` = `[x2, x1] * [-sin1,
        // sin2]`, so one `roll` of `x` times a sign-flipped sine replaces the negation and the
        // concatenation. Flipping a sign is exact. The tables are made once, in each dtype.
        let sin_signed = rotate_half_sign(&sin);
        let tables = [Kind::Float, Kind::BFloat16]
            .into_iter()
            .map(|k| (k, cos.to_kind(k), sin_signed.to_kind(k)))
            .collect();
        Rope { cos, sin, tables }
    }

    /// Rotates queries or keys: `x * cos + rotate_half(x) * sin`.
    ///
    /// Float32 input is computed as the reference does, bit for bit (on the CPU without a
    /// graph by one fused kernel). bfloat16 input on the CPU without a graph too: the fused
    /// kernel reads it into float32, applies the same formula and rounds once, as the
    /// reference's casts around it do. bfloat16 input with a graph, or on another device,
    /// stays in bfloat16 with bfloat16 tables (each op computes in float32 and rounds its
    /// result): three roundings instead of one, and two casts (two passes over `x` and two
    /// temporaries) fewer. Other dtypes go through float32.
    ///
    /// # Shapes
    /// `x: [b, s, nh, d]` with `s <= T` -> same shape and dtype.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let (_, cos32, sin32) = &self.tables[0];
        if let Some(out) = fused::rope(x, cos32, sin32) {
            return out; // CPU without a graph: the float32 formula in one pass
        }
        let Some((_, cos, sin)) = self.tables.iter().find(|(k, _, _)| *k == kind) else {
            return rotate(&x.to_kind(Kind::Float), cos32, sin32).to_kind(kind);
        };
        rotate(x, cos, sin)
    }
}

/// `x * cos + roll(x, d/2) * sin_signed` over the first `s` rows of the tables.
///
/// # Shapes
/// `x: [b, s, nh, d]`, `cos, sin_signed: [T, d]` -> `[b, s, nh, d]`.
fn rotate(x: &Tensor, cos: &Tensor, sin_signed: &Tensor) -> Tensor {
    let size = x.size();
    let (s, d) = (size[1], size[3]);
    let cos = cos.narrow(0, 0, s).unsqueeze(-2); // [s, 1, d]
    let sin = sin_signed.narrow(0, 0, s).unsqueeze(-2); // [s, 1, d]
                                                        // In place on the fresh `roll` result (the backward of neither op needs the overwritten
                                                        // value).
    let mut rotated = x.roll([d / 2], [-1]); // [x2, x1]
    let _ = rotated.g_mul_(&sin);
    if x.kind() == Kind::Float {
        // Not `addcmul` in float32: its kernel fuses the multiply and the add, which may round
        // differently from the reference's `a * b + c * d`.
        let _ = rotated.g_add_(&(x * cos));
    } else {
        // Speed: in bfloat16 one kernel (and no temporary) for `+ x * cos`, computed in float32
        // and rounded once, where the reference rounds the product and then the sum.
        let _ = rotated.addcmul_(x, &cos);
    }
    rotated
}

/// `[t1, t2]` -> `[-t1, t2]` along the last axis (halves split at `d/2`).
fn rotate_half_sign(t: &Tensor) -> Tensor {
    let d = t.size().last().copied().unwrap_or(0);
    Tensor::cat(
        &[t.narrow(-1, 0, d / 2).neg(), t.narrow(-1, d / 2, d - d / 2)],
        -1,
    )
}

/// `[-x[d/2:], x[:d/2]]` along the last axis.
pub fn rotate_half(x: &Tensor) -> Tensor {
    let d = x.size().last().copied().unwrap_or(0);
    let x1 = x.narrow(-1, 0, d / 2);
    let x2 = x.narrow(-1, d / 2, d - d / 2);
    Tensor::cat(&[&x2.neg(), &x1], -1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_dimension_i_with_i_plus_half() {
        let rope = Rope::new(4, 3, 10000.0, Device::Cpu);
        // Position 1, head vector e_0: x'_0 = cos(w0), x'_2 = sin(w0) with w0 = 1.
        let mut x = vec![0f32; 3 * 4];
        x[4] = 1.0; // position 1, dim 0
        let x = Tensor::from_slice(&x).view([1, 3, 1, 4]);
        let y: Vec<f32> = Vec::try_from(rope.apply(&x).view([-1])).expect("f32");
        assert!((y[4] - 1f32.cos()).abs() < 1e-6);
        assert!(y[5].abs() < 1e-7);
        assert!((y[6] - 1f32.sin()).abs() < 1e-6);
        // Position 0 is the identity.
        assert!(y[..4].iter().all(|v| *v == 0.0));
    }

    #[test]
    fn bf16_stays_bf16_within_bf16_precision_of_the_f32_rotation() {
        tch::manual_seed(6);
        let rope = Rope::new(8, 6, 10000.0, Device::Cpu);
        let x = Tensor::randn([2, 5, 3, 8], (Kind::Float, Device::Cpu)).to_kind(Kind::BFloat16);
        let fast = rope.apply(&x);
        assert_eq!(fast.kind(), Kind::BFloat16);
        let exact = rope.apply(&x.to_kind(Kind::Float));
        let diff = (fast.to_kind(Kind::Float) - &exact)
            .abs()
            .max()
            .double_value(&[]);
        let scale = exact.abs().max().double_value(&[]);
        // Three bfloat16 roundings: at most a few 2^-9 of the largest value.
        assert!(diff <= scale / 128.0, "{diff} against {scale}");
    }

    #[test]
    fn apply_equals_the_reference_formula_bit_for_bit() {
        tch::manual_seed(4);
        let rope = Rope::new(8, 6, 10000.0, Device::Cpu);
        let x = Tensor::randn([2, 5, 3, 8], (Kind::Float, Device::Cpu));
        let cos = rope.cos.narrow(0, 0, 5).unsqueeze(-2);
        let sin = rope.sin.narrow(0, 0, 5).unsqueeze(-2);
        let slow = &x * cos + rotate_half(&x) * sin;
        let got = rope.apply(&x);
        assert!(got.equal(&slow));
    }
}
