//! The recurrent state carried between ACT steps, `HierarchicalReasoningModel_ACTV1InnerCarry`
//! in the reference: the high-level state `z_H` and the low-level state `z_L`.

use tch::Tensor;

/// `(z_h, z_l)`, each `[b, T, H]` in the forward dtype. Between ACT steps both are detached, so
/// no graph reaches back across steps.
#[derive(Debug)]
pub struct InnerCarry {
    /// High-level state (`z_H`); in TRM, the current answer `y`.
    pub z_h: Tensor,
    /// Low-level state (`z_L`); in TRM, the latent `z`.
    pub z_l: Tensor,
}

impl InnerCarry {
    /// Zero states of `[batch, positions, hidden]` in `kind` on `device`: the content of an
    /// initial carry does not matter (every row is reset on the first ACT call).
    pub fn zeros(
        batch: i64,
        positions: i64,
        hidden: i64,
        kind: tch::Kind,
        device: tch::Device,
    ) -> Self {
        let shape = [batch, positions, hidden];
        InnerCarry {
            z_h: Tensor::zeros(shape, (kind, device)),
            z_l: Tensor::zeros(shape, (kind, device)),
        }
    }

    /// The same states cut from any autograd graph.
    pub fn detach(&self) -> Self {
        InnerCarry {
            z_h: self.z_h.detach(),
            z_l: self.z_l.detach(),
        }
    }

    /// Overwrites both states in place with `other`'s values (same shapes), keeping their
    /// storage, as a step captured in a CUDA graph needs.
    ///
    /// # Panics
    /// When the shapes differ.
    pub fn copy_from(&mut self, other: &InnerCarry) {
        self.z_h.copy_(&other.z_h);
        self.z_l.copy_(&other.z_l);
    }

    /// An independent copy (new storage), e.g. to keep a snapshot while the original is updated.
    pub fn copy(&self) -> Self {
        InnerCarry {
            z_h: self.z_h.copy(),
            z_l: self.z_l.copy(),
        }
    }

    /// Replaces the rows where `reset` is true by `h_init` / `l_init` broadcast to every
    /// position (`reset_carry` in the reference).
    ///
    /// # Shapes
    /// `reset: [b]` bool, `h_init, l_init: [H]` -> carry of `[b, T, H]`.
    pub fn reset_rows(&self, reset: &Tensor, h_init: &Tensor, l_init: &Tensor) -> Self {
        let cond = reset.view([-1, 1, 1]);
        let kind = self.z_h.kind();
        InnerCarry {
            z_h: h_init.to_kind(kind).where_self(&cond, &self.z_h),
            z_l: l_init.to_kind(kind).where_self(&cond, &self.z_l),
        }
    }
}
