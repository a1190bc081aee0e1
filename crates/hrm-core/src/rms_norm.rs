//! RMSNorm without a learnable scale, as the function `rms_norm` in the reference's
//! `models/layers.py`.
//!
//! `rms(x) = x * rsqrt(mean(x^2) + eps)` over the last axis, computed in float32 whatever the
//! input dtype and cast back (the reference upcasts bfloat16 the same way).

use tch::{Kind, Tensor};

/// Normalises the last axis of `x` to unit root-mean-square.
///
/// # Shapes
/// `x: [..., n]` -> `[..., n]`, in `x`'s dtype.
///
/// # Example
/// ```
/// use tch::Tensor;
/// let x = Tensor::from_slice(&[3.0f32, 4.0]);
/// let y = hrm_core::rms_norm(&x, 1e-5);
/// // mean(x^2) = 12.5, so y = x / sqrt(12.5 + 1e-5).
/// let v: Vec<f32> = Vec::try_from(y).unwrap();
/// assert!((v[0] - 0.848_528).abs() < 1e-5 && (v[1] - 1.131_370).abs() < 1e-5);
/// ```
pub fn rms_norm(x: &Tensor, eps: f64) -> Tensor {
    let kind = x.kind();
    if kind != Kind::Float && !x.requires_grad() {
        return rms_norm_reduced_no_graph(x, eps);
    }
    let x32 = x.to_kind(Kind::Float);
    if x32.is_contiguous() {
        // Speed: libtorch's `rms_norm` computes `x * rsqrt(mean(x^2) + eps)` in one fused
        // kernel (and one fused backward) instead of five, with the same float32 arithmetic (the
        // test below checks it against the formula). Its output is always contiguous, so other
        // layouts (a transposed view) keep the elementwise formula, whose output keeps the
        // input's memory order as before.
        let n = x32.size().last().copied().unwrap_or(1);
        return x32.rms_norm([n], None::<Tensor>, eps).to_kind(kind);
    }
    let variance = x32.square().mean_dim(-1, true, Kind::Float);
    (x32 * (variance + eps).rsqrt()).to_kind(kind)
}

/// [`rms_norm`] of a bfloat16 (or other reduced-precision) input when no graph is recorded:
/// the same float32 statistics and float32 product, rounded once into the output, with two
/// full-size temporaries and three passes fewer than cast, fused op and cast back. The
/// squares are taken in place in the float32 copy, and `mul` with a bfloat16 output computes
/// `x * inv_rms` in float32 and rounds it, as `(x32 * inv_rms).to(bf16)` does; the result is
/// bit for bit the same (the test below checks it).
///
/// # Shapes
/// `x: [..., n]` -> `[..., n]`, in `x`'s dtype.
fn rms_norm_reduced_no_graph(x: &Tensor, eps: f64) -> Tensor {
    let mut squares = x.to_kind(Kind::Float);
    let _ = squares.square_();
    let inv_rms = (squares.mean_dim(-1, true, Kind::Float) + eps).rsqrt(); // [..., 1] f32
    let out = x.empty_like();
    x.mul_out(&out, &inv_rms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_kernel_matches_the_formula_in_f32() {
        tch::manual_seed(5);
        let x = Tensor::randn([3, 7, 64], (Kind::Float, tch::Device::Cpu)) * 3.0;
        let slow = &x * (x.square().mean_dim(-1, true, Kind::Float) + 1e-5).rsqrt();
        let diff = (rms_norm(&x, 1e-5) - &slow).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{diff}");
        // A transposed view takes the elementwise path and keeps its memory order.
        let xt = x.transpose(0, 1);
        let yt = rms_norm(&xt, 1e-5);
        assert_eq!(yt.stride(), xt.stride());
        let diff = (yt - slow.transpose(0, 1)).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{diff}");
    }

    #[test]
    fn bf16_without_a_graph_equals_the_cast_formula_bit_for_bit() {
        tch::manual_seed(7);
        let x = (Tensor::randn([3, 5, 48], (Kind::Float, tch::Device::Cpu)) * 4.0)
            .to_kind(Kind::BFloat16);
        let x32 = x.to_kind(Kind::Float);
        let formula = (&x32 * (x32.square().mean_dim(-1, true, Kind::Float) + 1e-5).rsqrt())
            .to_kind(Kind::BFloat16);
        let fast = tch::no_grad(|| rms_norm(&x, 1e-5));
        assert_eq!(fast.kind(), Kind::BFloat16);
        assert!(fast.equal(&formula));
        // With a graph: the fused path, the same values, and a gradient.
        let xg = x.detach().set_requires_grad(true);
        let slow = rms_norm(&xg, 1e-5);
        assert!(slow.equal(&formula));
        slow.to_kind(Kind::Float).sum(Kind::Float).backward();
        assert!(xg.grad().defined());
    }

    #[test]
    fn bf16_input_is_normalised_in_f32_and_returned_in_bf16() {
        let x = Tensor::from_slice(&[1.0f32, -2.0, 2.0, 0.0])
            .view([2, 2])
            .to_kind(Kind::BFloat16);
        let y = rms_norm(&x, 1e-5);
        assert_eq!(y.kind(), Kind::BFloat16);
        let rms = y
            .to_kind(Kind::Float)
            .square()
            .mean_dim(-1, false, Kind::Float);
        let rms: Vec<f32> = Vec::try_from(rms).expect("f32");
        assert!(
            (rms[0] - 1.0).abs() < 1e-2 && (rms[1] - 1.0).abs() < 1e-2,
            "{rms:?}"
        );
    }
}
