//! Exponential moving average of the weights, as `EMAHelper` in TinyRecursiveModels'
//! `models/ema.py`, used by TRM recipes for evaluation.
//!
//! Registered once (`shadow = copy of each trainable parameter`), updated after every training
//! step with `shadow = (1 - mu) * param + mu * shadow` in float32 (both factors rounded to
//! float32, in this order, which reproduces the reference bit for bit). Buffers and the puzzle
//! table have no shadow: an EMA evaluation uses their live values.

use tch::Tensor;

use crate::error::{Result, TrainError};

/// Shadow copies of the trainable parameters.
#[derive(Debug)]
pub struct Ema {
    mu: f64,
    shadow: Vec<(String, Tensor)>,
}

impl Ema {
    /// Registers `params` with decay `mu` (TRM's default 0.999).
    ///
    /// # Errors
    /// [`TrainError::Config`] when `mu` is outside [0, 1].
    pub fn new(params: &[(String, Tensor)], mu: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&mu) {
            return Err(TrainError::Config {
                key: "ema_rate".into(),
                reason: format!("must be in [0, 1], got {mu}"),
            });
        }
        let shadow = params
            .iter()
            .map(|(n, p)| (n.clone(), p.detach().copy()))
            .collect();
        Ok(Ema { mu, shadow })
    }

    /// `shadow = (1 - mu) * param + mu * shadow` for every registered parameter.
    pub fn update(&mut self, params: &[(String, Tensor)]) {
        let _guard = tch::no_grad_guard();
        for ((_, s), (_, p)) in self.shadow.iter_mut().zip(params) {
            let next = ema_blend(p, s, self.mu);
            s.copy_(&next);
        }
    }

    /// Replaces the shadow values (checkpoint restore); names and shapes must match.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when a name or shape differs.
    pub fn set_shadow(&mut self, values: &[(String, Tensor)]) -> Result<()> {
        if values.len() != self.shadow.len() {
            return Err(TrainError::Checkpoint(format!(
                "EMA shadow has {} tensors, the model {}",
                values.len(),
                self.shadow.len()
            )));
        }
        let _guard = tch::no_grad_guard();
        for ((name, s), (vname, v)) in self.shadow.iter_mut().zip(values) {
            if name != vname || s.size() != v.size() {
                return Err(TrainError::Checkpoint(format!(
                    "EMA shadow `{vname}` does not fit parameter `{name}`"
                )));
            }
            s.copy_(v);
        }
        Ok(())
    }

    /// The shadow values by name.
    pub fn shadow(&self) -> &[(String, Tensor)] {
        &self.shadow
    }

    /// The decay.
    pub fn mu(&self) -> f64 {
        self.mu
    }
}

/// `(1 - mu) * param + mu * shadow` in the parameter's dtype (factors rounded to it by libtorch).
pub fn ema_blend(param: &Tensor, shadow: &Tensor, mu: f64) -> Tensor {
    param * (1.0 - mu) + shadow * mu
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_update_moves_a_thousandth_of_the_way() {
        let p = Tensor::from_slice(&[1.0f32, 2.0]);
        let mut ema = Ema::new(&[("w".into(), p.shallow_clone())], 0.999).expect("valid mu");
        let moved = Tensor::from_slice(&[2.0f32, 2.0]);
        ema.update(&[("w".into(), moved)]);
        let s: Vec<f32> = Vec::try_from(ema.shadow()[0].1.shallow_clone()).expect("f32");
        assert!(
            (s[0] - 1.001).abs() < 1e-6 && (s[1] - 2.0).abs() < 1e-6,
            "{s:?}"
        );
    }
}
