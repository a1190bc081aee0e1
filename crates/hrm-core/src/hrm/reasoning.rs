//! A reasoning module (the H or L level), as `HierarchicalReasoningModel_ACTV1ReasoningModule`
//! in the reference's `models/hrm/hrm_act_v1.py`.
//!
//! `R(z, inj)`: add the input injection to the state, then run the blocks in order.

use tch::{nn, Tensor};

use crate::block::{Block, BlockDims};
use crate::rope::Rope;

/// A stack of post-norm blocks with input injection.
#[derive(Debug)]
pub struct ReasoningModule {
    /// `p/layers/{i}`.
    pub layers: Vec<Block>,
}

impl ReasoningModule {
    /// Creates `p/layers/0..num_layers`.
    pub fn new(p: nn::Path, num_layers: usize, dims: BlockDims) -> Self {
        let layers = (0..num_layers)
            .map(|i| Block::new(&p / "layers" / i, dims))
            .collect();
        ReasoningModule { layers }
    }

    /// # Shapes
    /// `z, injection: [b, T, H]` -> `[b, T, H]`.
    pub fn forward(&self, z: &Tensor, injection: &Tensor, rope: Option<&Rope>) -> Tensor {
        let mut h = z + injection;
        for layer in &self.layers {
            h = layer.forward(&h, rope);
        }
        h
    }
}
