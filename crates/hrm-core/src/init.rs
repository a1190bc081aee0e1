//! JAX-style truncated-normal initialisation, as `trunc_normal_init_` in the reference's
//! `models/common.py`.
//!
//! Values are drawn by inverse CDF: `u ~ U(erf(-2/sqrt2), erf(2/sqrt2))`,
//! `x = sqrt2 * erfinv(u) * c`, clipped to `[-2c, 2c]`, where `c = std / 0.8796...` corrects for
//! the truncation so that the result really has standard deviation `std`. (PyTorch's own
//! `trunc_normal_` does not make that correction.)

use tch::{Device, Kind, Tensor};

/// The standard deviation of a unit normal truncated to +-2.
pub const TRUNCATED_STD_2: f64 = 0.879_625_661_034_239_8;

/// A new float32 tensor of `shape` drawn from the truncated normal with standard deviation `std`
/// (bounds +-2 standard deviations of the untruncated normal). `std == 0` gives zeros.
pub fn trunc_normal(shape: &[i64], std: f64, device: Device) -> Tensor {
    let _guard = tch::no_grad_guard();
    if std == 0.0 {
        return Tensor::zeros(shape, (Kind::Float, device));
    }
    let sqrt2 = std::f64::consts::SQRT_2;
    let (lower, upper) = (-2.0_f64, 2.0_f64);
    let comp_std = std / TRUNCATED_STD_2;
    let mut t = Tensor::empty(shape, (Kind::Float, device));
    let _ = t.uniform_(erf(lower / sqrt2), erf(upper / sqrt2));
    let _ = t.erfinv_();
    let _ = t.g_mul_scalar_(sqrt2 * comp_std);
    t.clamp(lower * comp_std, upper * comp_std)
}

/// The error function in double precision (libtorch's, so no approximation of our own).
fn erf(x: f64) -> f64 {
    Tensor::from(x).erf().double_value(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // erf(sqrt(2)) = 0.9544997361036416 (the +-2 sigma mass).
        assert!((erf(std::f64::consts::SQRT_2) - 0.954_499_736_103_641_6).abs() < 1e-12);
        assert!(erf(0.0).abs() < 1e-15);
    }

    #[test]
    fn draws_have_the_requested_std_and_bounds() {
        tch::manual_seed(0);
        let std = 0.5;
        let t = trunc_normal(&[200_000], std, Device::Cpu);
        let measured = t.std(true).double_value(&[]);
        assert!((measured - std).abs() < 0.01, "std {measured}");
        let bound = 2.0 * std / TRUNCATED_STD_2;
        assert!(t.abs().max().double_value(&[]) <= bound + 1e-6);
        assert!(
            trunc_normal(&[3], 0.0, Device::Cpu)
                .abs()
                .sum(Kind::Float)
                .double_value(&[])
                == 0.0
        );
    }
}
