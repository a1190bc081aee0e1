//! Sparse sign-SGD with decoupled weight decay for the puzzle embedding, as
//! `CastedSparseEmbeddingSignSGD_Distributed` in the reference's `models/sparse_embedding.py`.
//!
//! The gradient arrives per batch row (`[b, Dp]`, one row per example, duplicates included).
//! Rows with the same identifier are summed, then each touched table row becomes
//! `w * (1 - lr * wd) - lr * sign(g)` (`sign(0) = 0`). Rows no example used are not touched, not
//! even decayed. The scale of the gradient does not matter, only its sign.

use tch::{Kind, Tensor};

use crate::error::{Result, TrainError};

/// Hyperparameters of the sparse sign-SGD.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignSgdConfig {
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

/// Applies one sign-SGD step to `table` (`[N, Dp]`) from the per-row gradient `local_grad`
/// (`[b, Dp]`) of the examples with identifiers `ids` (`[b]`).
///
/// # Errors
/// [`TrainError::Shape`] when the three shapes do not agree.
pub fn sign_sgd_step(
    table: &Tensor,
    local_grad: &Tensor,
    ids: &Tensor,
    lr: f64,
    cfg: SignSgdConfig,
) -> Result<()> {
    let _guard = tch::no_grad_guard();
    let (ts, gs, is) = (table.size(), local_grad.size(), ids.size());
    if ts.len() != 2 || gs.len() != 2 || is.len() != 1 || gs[0] != is[0] || gs[1] != ts[1] {
        return Err(TrainError::Shape(format!(
            "sign-SGD: table {ts:?}, gradient {gs:?} and ids {is:?} do not fit ([N, D], [b, D], [b])"
        )));
    }
    let ids = ids.to_kind(Kind::Int64);
    let (unique, inverse, _) = ids.unique_dim(0, true, true, false);
    let summed = Tensor::zeros(
        [unique.size()[0], ts[1]],
        (local_grad.kind(), local_grad.device()),
    )
    .index_add(0, &inverse, local_grad);
    let rows = table.index_select(0, &unique);
    let updated = rows * (1.0 - lr * cfg.weight_decay) - summed.sign() * lr;
    let _ = table
        .shallow_clone()
        .index_copy_(0, &unique, &updated.to_kind(table.kind()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_summed_before_the_sign_and_untouched_rows_keep_their_value() {
        let table = Tensor::from_slice(&[1.0f32, 1.0, 2.0, 2.0, 3.0, 3.0]).view([3, 2]);
        // ids 2, 0, 2: row 2 gets (1, -1) + (-3, 2) = (-2, 1); row 0 gets (0.5, 0); row 1 untouched.
        let grad = Tensor::from_slice(&[1.0f32, -1.0, 0.5, 0.0, -3.0, 2.0]).view([3, 2]);
        let ids = Tensor::from_slice(&[2i64, 0, 2]);
        sign_sgd_step(
            &table,
            &grad,
            &ids,
            0.1,
            SignSgdConfig { weight_decay: 0.5 },
        )
        .expect("step");
        let got: Vec<f32> = Vec::try_from(table.view([-1])).expect("f32");
        let d = 1.0 - 0.1 * 0.5;
        let expected = [
            1.0 * d - 0.1,
            1.0 * d,
            2.0,
            2.0,
            3.0 * d + 0.1,
            3.0 * d - 0.1,
        ];
        for (g, e) in got.iter().zip(expected) {
            assert!((f64::from(*g) - e).abs() < 1e-6, "{got:?} vs {expected:?}");
        }
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let table = Tensor::zeros([3, 2], (Kind::Float, tch::Device::Cpu));
        let grad = Tensor::zeros([2, 3], (Kind::Float, tch::Device::Cpu));
        let ids = Tensor::from_slice(&[0i64, 1]);
        let cfg = SignSgdConfig { weight_decay: 0.1 };
        assert!(matches!(
            sign_sgd_step(&table, &grad, &ids, 0.1, cfg),
            Err(TrainError::Shape(_))
        ));
    }
}
