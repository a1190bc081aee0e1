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
    let x32 = x.to_kind(Kind::Float);
    let variance = x32.square().mean_dim(-1, true, Kind::Float);
    (x32 * (variance + eps).rsqrt()).to_kind(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

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
