//! The learning-rate schedule, `cosine_schedule_with_warmup_lr_lambda` in the reference's
//! `pretrain.py`: linear warm-up, then a half cosine down to `lr_min_ratio * base`.
//!
//! At training step `s` (counted from 1): `base * s / max(1, warmup)` while `s < warmup`;
//! afterwards `base * (min_ratio + max(0, (1 - min_ratio) * 0.5 * (1 + cos(pi * progress))))` with
//! `progress = (s - warmup) / max(1, total - warmup)`.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Warm-up + cosine schedule; a pure function of the step, so resuming needs only the step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CosineSchedule {
    /// Peak learning rate.
    pub base_lr: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: u64,
    /// Total training steps.
    pub total_steps: u64,
    /// Final fraction of `base_lr` (TRM uses 1.0: constant after warm-up).
    pub min_ratio: f64,
}

impl CosineSchedule {
    /// A schedule, checked.
    ///
    /// # Errors
    /// [`TrainError::Config`] when `base_lr` is negative or not finite, or `min_ratio` is
    /// outside [0, 1].
    pub fn new(base_lr: f64, warmup_steps: u64, total_steps: u64, min_ratio: f64) -> Result<Self> {
        if !(base_lr.is_finite() && base_lr >= 0.0) {
            return Err(TrainError::Config {
                key: "lr".into(),
                reason: format!("must be >= 0, got {base_lr}"),
            });
        }
        if !(0.0..=1.0).contains(&min_ratio) {
            return Err(TrainError::Config {
                key: "lr_min_ratio".into(),
                reason: format!("must be in [0, 1], got {min_ratio}"),
            });
        }
        Ok(CosineSchedule {
            base_lr,
            warmup_steps,
            total_steps,
            min_ratio,
        })
    }

    /// The learning rate at step `step` (1-based).
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.base_lr * step as f64 / self.warmup_steps.max(1) as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = (step - self.warmup_steps) as f64 / span;
        let cosine = (1.0 - self.min_ratio) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.base_lr * (self.min_ratio + cosine.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_min_ratio() {
        let s = CosineSchedule::new(1.0, 10, 110, 0.1).expect("valid");
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(5) - 0.5).abs() < 1e-12);
        assert!((s.lr(10) - 1.0).abs() < 1e-12);
        assert!((s.lr(60) - 0.55).abs() < 1e-12);
        assert!((s.lr(110) - 0.1).abs() < 1e-12);
        // Past the end the cosine comes back up; the reference does not clamp progress, and
        // neither do we (training stops at total_steps).
        assert!(s.lr(120) > 0.1);
    }

    #[test]
    fn bad_values_name_the_key() {
        assert!(
            matches!(CosineSchedule::new(-1.0, 0, 1, 0.0), Err(TrainError::Config { key, .. }) if key == "lr")
        );
        assert!(
            matches!(CosineSchedule::new(1.0, 0, 1, 2.0), Err(TrainError::Config { key, .. }) if key == "lr_min_ratio")
        );
    }
}
