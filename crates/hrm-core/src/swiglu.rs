//! The SwiGLU feed-forward layer, as `SwiGLU` in the reference's `models/layers.py`
//! (Shazeer 2020).
//!
//! `u = x W_gate_up^T` has `2I` features, `gate = u[..., :I]`, `up = u[..., I:]`, and the output
//! is `(silu(gate) * up) W_down^T`. The inner width `I` rounds `expansion * width * 2/3` (half to
//! even) up to a multiple of 256 ([`crate::config::swiglu_intermediate_size`]).

use tch::{nn, Tensor};

use crate::config::swiglu_intermediate_size;
use crate::linear::CastedLinear;

/// Gated feed-forward layer of width `width`.
#[derive(Debug)]
pub struct SwiGlu {
    /// `[2I, width]`.
    pub gate_up_proj: CastedLinear,
    /// `[width, I]`.
    pub down_proj: CastedLinear,
    inter: i64,
}

impl SwiGlu {
    /// Creates `p/gate_up_proj` and `p/down_proj`.
    pub fn new(p: nn::Path, width: i64, expansion: f64) -> Self {
        let inter = swiglu_intermediate_size(width as usize, expansion) as i64;
        SwiGlu {
            gate_up_proj: CastedLinear::new(&p / "gate_up_proj", width, 2 * inter, false),
            down_proj: CastedLinear::new(&p / "down_proj", inter, width, false),
            inter,
        }
    }

    /// # Shapes
    /// `x: [..., width]` -> `[..., width]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let u = self.gate_up_proj.forward(x); // [..., 2I]

        // Speed: `split` (the reference's `chunk`) rather than two `narrow`s: its backward
        // writes both halves of the gradient into one new tensor, where each narrow's backward
        // fills a zeroed full-size tensor and the two are then added.
        let halves = u.split(self.inter, -1);
        let (gate, up) = (&halves[0], &halves[1]);
        self.down_proj.forward(&(gate.silu() * up))
    }
}
