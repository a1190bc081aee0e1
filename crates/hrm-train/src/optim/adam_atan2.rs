//! AdamATan2 (Everett et al. 2024, "Scaling Exponents Across Parameterizations and Optimizers"),
//! exactly as the PyPI package `adam-atan2` 0.0.3 that the reference trains with (its CUDA
//! kernel `csrc/adam_atan2.cu`), here on any libtorch device.
//!
//! Per parameter, with a step counter `t` (float32 in the kernel):
//! ```text
//! t  <- t + 1
//! bc1 = 1 - beta1^t ; bc2 = 1 - beta2^t                 (double precision)
//! step_size = lr / bc1 ; wd_alpha = 1 - lr * weight_decay ; bc2_sqrt = sqrt(bc2)  (then float32)
//! p <- p * wd_alpha                                       (decoupled, multiplicative, first)
//! m <- m + (1 - beta1) (g - m)
//! v <- v + (1 - beta2) (g^2 - v)
//! p <- p - step_size * atan2(m, sqrt(v) / bc2_sqrt)
//! ```
//! No epsilon: `atan2` bounds the update. The first-moment correction scales the step, outside
//! the `atan2`; the second-moment one sits inside the denominator. Weight decay applies to every
//! parameter (HRM uses a single group).

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{Result, TrainError};

/// Hyperparameters of [`AdamAtan2`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamAtan2Config {
    /// `(beta1, beta2)`; the reference passes (0.9, 0.95).
    pub betas: (f64, f64),
    /// Decoupled weight decay; the reference's recipes use 0.1 or 1.0.
    pub weight_decay: f64,
}

impl Default for AdamAtan2Config {
    fn default() -> Self {
        AdamAtan2Config {
            betas: (0.9, 0.95),
            weight_decay: 0.1,
        }
    }
}

impl AdamAtan2Config {
    /// Checks the hyperparameters.
    ///
    /// # Errors
    /// [`TrainError::Config`] when a beta is outside [0, 1) or the weight decay is negative.
    pub fn validate(&self) -> Result<()> {
        for (key, beta) in [("beta1", self.betas.0), ("beta2", self.betas.1)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(TrainError::Config {
                    key: key.into(),
                    reason: format!("must be in [0, 1), got {beta}"),
                });
            }
        }
        if self.weight_decay.is_nan() || self.weight_decay < 0.0 {
            return Err(TrainError::Config {
                key: "weight_decay".into(),
                reason: format!("must be >= 0, got {}", self.weight_decay),
            });
        }
        Ok(())
    }
}

/// Optimiser state of one parameter.
#[derive(Debug)]
pub struct MomentState {
    /// First moment, same shape as the parameter.
    pub exp_avg: Tensor,
    /// Second moment, same shape as the parameter.
    pub exp_avg_sq: Tensor,
    /// Steps taken by this parameter.
    pub step: u64,
}

/// The AdamATan2 optimiser over a fixed list of named parameters.
#[derive(Debug)]
pub struct AdamAtan2 {
    cfg: AdamAtan2Config,
    params: Vec<(String, Tensor)>,
    state: Vec<MomentState>,
}

impl AdamAtan2 {
    /// An optimiser for `params` (name, variable), moments at zero.
    ///
    /// # Errors
    /// As [`AdamAtan2Config::validate`].
    pub fn new(params: Vec<(String, Tensor)>, cfg: AdamAtan2Config) -> Result<Self> {
        cfg.validate()?;
        let state = params
            .iter()
            .map(|(_, p)| MomentState {
                exp_avg: p.zeros_like(),
                exp_avg_sq: p.zeros_like(),
                step: 0,
            })
            .collect();
        Ok(AdamAtan2 { cfg, params, state })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &AdamAtan2Config {
        &self.cfg
    }

    /// The parameters it updates.
    pub fn params(&self) -> impl Iterator<Item = &Tensor> {
        self.params.iter().map(|(_, p)| p)
    }

    /// Clears the gradients of every parameter.
    pub fn zero_grad(&mut self) {
        for (_, p) in &self.params {
            let mut grad = p.grad();
            if grad.defined() {
                let _ = grad.detach_().zero_();
            }
        }
    }

    /// One update at learning rate `lr`, using each parameter's current `.grad()`. Parameters
    /// without a gradient are skipped (their step counter does not advance), as in PyTorch.
    pub fn step(&mut self, lr: f64) {
        let _guard = tch::no_grad_guard();
        for ((_, p), st) in self.params.iter().zip(self.state.iter_mut()) {
            let grad = p.grad();
            if !grad.defined() {
                continue;
            }
            st.step += 1;
            adam_atan2_update(p, &grad, st, lr, self.cfg);
        }
    }

    /// The defined gradients of the parameters (shallow handles), for the finite check of a
    /// step.
    pub fn grads(&self) -> impl Iterator<Item = Tensor> + '_ {
        self.params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(Tensor::defined)
    }

    /// `(name, state)` pairs, for checkpoints.
    pub fn named_state(&self) -> impl Iterator<Item = (&str, &MomentState)> {
        self.params
            .iter()
            .map(|(n, _)| n.as_str())
            .zip(self.state.iter())
    }

    /// Replaces the state of the parameter `name` (checkpoint restore).
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when `name` is not a parameter or the shapes differ.
    pub fn set_state(
        &mut self,
        name: &str,
        exp_avg: &Tensor,
        exp_avg_sq: &Tensor,
        step: u64,
    ) -> Result<()> {
        let idx = self
            .params
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| {
                TrainError::Checkpoint(format!("optimiser state for unknown parameter `{name}`"))
            })?;
        let st = &mut self.state[idx];
        if exp_avg.size() != st.exp_avg.size() || exp_avg_sq.size() != st.exp_avg_sq.size() {
            return Err(TrainError::Checkpoint(format!(
                "optimiser state of `{name}`: shape {:?}, parameter has {:?}",
                exp_avg.size(),
                st.exp_avg.size()
            )));
        }
        tch::no_grad(|| {
            st.exp_avg.copy_(exp_avg);
            st.exp_avg_sq.copy_(exp_avg_sq);
        });
        st.step = step;
        Ok(())
    }
}

/// One AdamATan2 update of `p` in place from `grad` and `st` (whose `step` is already
/// incremented). Public so the golden check can apply it to copies.
pub fn adam_atan2_update(
    p: &Tensor,
    grad: &Tensor,
    st: &mut MomentState,
    lr: f64,
    cfg: AdamAtan2Config,
) {
    let _guard = tch::no_grad_guard();
    let (beta1, beta2) = cfg.betas;
    let t = st.step as f64;
    let bc1 = 1.0 - beta1.powf(t);
    let bc2 = 1.0 - beta2.powf(t);
    // The kernel receives these as float32.
    let step_size = f64::from((lr / bc1) as f32);
    let wd_alpha = f64::from((1.0 - lr * cfg.weight_decay) as f32);
    let bc2_sqrt = f64::from(bc2.sqrt() as f32);
    let mut p = p.shallow_clone();
    let _ = p.g_mul_scalar_(wd_alpha);
    let _ = st.exp_avg.lerp_(grad, 1.0 - beta1);
    let _ = st.exp_avg_sq.lerp_(&grad.square(), 1.0 - beta2);
    // Speed: one scratch tensor carries `sqrt(v) / bc2_sqrt`, then the atan2 and the step size
    // in place (an elementwise op may write over its own input), instead of a new tensor per
    // operation. Same operations in the same order, so the same bits.
    let mut update = st.exp_avg_sq.sqrt();
    let _ = update.g_div_scalar_(bc2_sqrt);
    let _ = st.exp_avg.atan2_out(&update, &update);
    let _ = update.g_mul_scalar_(step_size);
    let _ = p.g_sub_(&update);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn first_step_is_a_scaled_sign_step_after_decay() {
        let p = Tensor::from_slice(&[1.0f32, -2.0, 0.5]).set_requires_grad(true);
        let grad = Tensor::from_slice(&[0.3f32, -1e-6, 0.0]);
        let mut st = MomentState {
            exp_avg: p.zeros_like(),
            exp_avg_sq: p.zeros_like(),
            step: 1,
        };
        let cfg = AdamAtan2Config {
            betas: (0.9, 0.95),
            weight_decay: 0.1,
        };
        let lr = 1e-3;
        adam_atan2_update(&p, &grad, &mut st, lr, cfg);
        let got: Vec<f32> = Vec::try_from(p.detach().to_kind(Kind::Float)).expect("f32");
        // m = 0.1 g, v = 0.05 g^2, bc1 = 0.1, bc2 = 0.05: atan2(0.1 g, |g|) * lr / 0.1.
        let k = (0.1f64).atan() / 0.1 * lr;
        let decay = 1.0 - lr * 0.1;
        let expected = [1.0 * decay - k, -2.0 * decay + k, 0.5 * decay];
        for (g, e) in got.iter().zip(expected) {
            assert!((f64::from(*g) - e).abs() < 1e-6, "{got:?} vs {expected:?}");
        }
    }

    #[test]
    fn invalid_betas_are_rejected() {
        let cfg = AdamAtan2Config {
            betas: (1.0, 0.95),
            weight_decay: 0.1,
        };
        assert!(matches!(cfg.validate(), Err(TrainError::Config { .. })));
    }
}
