//! Tolerance groups and elementwise comparison of the golden format (section 8.1 of
//! `shared/golden/README.md`, 9.1 of the TRM page).
//!
//! A value passes when `|a - e| <= atol + rtol * |e|`; integer and boolean tensors must be equal.
//! The first matching group wins.

use tch::{Kind, Tensor};

/// A tolerance group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// Integer and boolean tensors: exact.
    Exact,
    /// `rope.*`.
    Rope,
    /// `loss_fn.*`.
    LossFn,
    /// `after_step.*`.
    AfterStep,
    /// `ema.*`.
    Ema,
    /// `grad.*`.
    Grad,
    /// Losses and the accuracy metric.
    Loss,
    /// Every other float tensor.
    Forward,
}

impl Group {
    /// Which group an expected tensor belongs to.
    pub fn of(name: &str, kind: Kind) -> Group {
        if matches!(
            kind,
            Kind::Bool | Kind::Int | Kind::Int64 | Kind::Int16 | Kind::Int8 | Kind::Uint8
        ) {
            return Group::Exact;
        }
        let loss_suffixes = [
            ".loss",
            ".metrics.lm_loss",
            ".metrics.q_halt_loss",
            ".metrics.q_continue_loss",
            ".metrics.accuracy",
        ];
        if name.starts_with("rope.") {
            Group::Rope
        } else if name.starts_with("loss_fn.") {
            Group::LossFn
        } else if name.starts_with("after_step.") {
            Group::AfterStep
        } else if name.starts_with("ema.") {
            Group::Ema
        } else if name.starts_with("grad.") {
            Group::Grad
        } else if loss_suffixes.iter().any(|s| name.ends_with(s)) {
            Group::Loss
        } else {
            Group::Forward
        }
    }

    /// `(atol, rtol)`.
    pub fn tolerance(self) -> (f64, f64) {
        match self {
            Group::Exact => (0.0, 0.0),
            Group::Rope => (1e-5, 0.0),
            Group::LossFn => (1e-5, 1e-6),
            Group::AfterStep => (1e-6, 0.0),
            Group::Ema => (1e-7, 2e-7),
            Group::Grad => (1e-6, 1e-3),
            Group::Loss => (1e-4, 1e-5),
            Group::Forward => (2e-4, 1e-4),
        }
    }

    /// The name printed in reports.
    pub fn name(self) -> &'static str {
        match self {
            Group::Exact => "exact",
            Group::Rope => "rope",
            Group::LossFn => "loss_fn",
            Group::AfterStep => "after_step",
            Group::Ema => "ema",
            Group::Grad => "grad",
            Group::Loss => "loss",
            Group::Forward => "forward",
        }
    }
}

/// The errors of one tensor against its expectation.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDiff {
    /// Largest `|a - e|`.
    pub max_abs: f64,
    /// Largest `|a - e| / |e|` over elements with `e != 0`.
    pub max_rel: f64,
    /// Largest `|a - e| / (atol + rtol |e|)`: at most 1 passes (for exact tensors, the number
    /// of differing elements).
    pub usage: f64,
    /// Elements outside the tolerance (or different, for exact tensors).
    pub failures: i64,
    /// `||a - e|| / max(||e||, sqrt(n))` (Euclidean norms over the `n` elements): the error
    /// relative to the expectation's size, or to a root-mean-square of 1 for tensors of values
    /// near 0 (Q logits of an untrained head). The measure of the bf16 smoke check, where
    /// elementwise tolerances say little.
    pub rel_l2: f64,
}

/// Compares `actual` with `expected` under `group`'s rule. Shapes must already agree.
pub fn compare(actual: &Tensor, expected: &Tensor, group: Group) -> TensorDiff {
    let a = actual.to_device(tch::Device::Cpu).to_kind(Kind::Double);
    let e = expected.to_device(tch::Device::Cpu).to_kind(Kind::Double);
    let diff = (&a - &e).abs();
    let e_norm = e.square().sum(Kind::Double).sqrt().double_value(&[]);
    let d_norm = diff.square().sum(Kind::Double).sqrt().double_value(&[]);
    let rel_l2 = d_norm / e_norm.max((e.numel() as f64).sqrt()).max(f64::MIN_POSITIVE);
    let max_abs = if diff.numel() == 0 {
        0.0
    } else {
        diff.max().double_value(&[])
    };
    let nonzero = e.ne(0.0);
    let rel =
        (&diff / e.abs().clamp_min(f64::MIN_POSITIVE)).where_self(&nonzero, &diff.zeros_like());
    let max_rel = if rel.numel() == 0 {
        0.0
    } else {
        rel.max().double_value(&[])
    };
    if group == Group::Exact {
        let failures = diff.gt(0.0).sum(Kind::Int64).int64_value(&[]);
        return TensorDiff {
            max_abs,
            max_rel,
            usage: failures as f64,
            failures,
            rel_l2,
        };
    }
    let (atol, rtol) = group.tolerance();
    let allowed = e.abs() * rtol + atol;
    // NaN in either tensor is a failure: `diff <= allowed` is false for NaN.
    let ok = diff.le_tensor(&allowed);
    let failures = ok.logical_not().sum(Kind::Int64).int64_value(&[]);
    let usage_t = &diff / &allowed;
    let usage = if usage_t.numel() == 0 {
        0.0
    } else {
        usage_t.max().double_value(&[])
    };
    let usage = if failures > 0 && !usage.is_finite() {
        f64::INFINITY
    } else {
        usage
    };
    TensorDiff {
        max_abs,
        max_rel,
        usage,
        failures,
        rel_l2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_follow_the_first_match() {
        assert_eq!(Group::of("eval.step1.halted", Kind::Bool), Group::Exact);
        assert_eq!(
            Group::of("train.call1.metrics.count", Kind::Int64),
            Group::Exact
        );
        assert_eq!(Group::of("eval.step2.loss", Kind::Double), Group::Loss);
        assert_eq!(
            Group::of("train.call1.metrics.accuracy", Kind::Float),
            Group::Loss
        );
        assert_eq!(
            Group::of("grad.model.inner.lm_head.weight", Kind::Float),
            Group::Grad
        );
        assert_eq!(Group::of("eval.step1.logits", Kind::Float), Group::Forward);
        assert_eq!(Group::of("loss_fn.stablemax", Kind::Double), Group::LossFn);
    }

    #[test]
    fn tolerance_and_nan_are_enforced() {
        let e = Tensor::from_slice(&[1.0f32, 100.0]);
        let ok = Tensor::from_slice(&[1.0001f32, 100.01]);
        assert_eq!(compare(&ok, &e, Group::Forward).failures, 0);
        let bad = Tensor::from_slice(&[1.001f32, 100.0]);
        assert_eq!(compare(&bad, &e, Group::Forward).failures, 1);
        let nan = Tensor::from_slice(&[f32::NAN, 100.0]);
        assert_eq!(compare(&nan, &e, Group::Forward).failures, 1);
        let ints = Tensor::from_slice(&[1i32, 2]);
        assert_eq!(
            compare(&Tensor::from_slice(&[1i64, 3]), &ints, Group::Exact).failures,
            1
        );
    }
}
