//! TRM's single network, `L_level` in the reference: the
//! `TinyRecursiveReasoningModel_ACTV1ReasoningModule` of `models/recursive_reasoning/trm.py`.
//!
//! `net(z, inj)`: add the injection to the state, then run the blocks in index order. TRM uses
//! this one network, with one set of weights, for both the latent update (injection `z_H + x`)
//! and the answer update (injection `z_L`); HRM has two such modules.

use tch::{nn, Tensor};

use crate::rope::Rope;
use crate::trm::block::{TrmBlock, TrmBlockDims};

/// A stack of TRM blocks with input injection.
#[derive(Debug)]
pub struct TrmReasoningModule {
    /// `p/layers/{i}`.
    pub layers: Vec<TrmBlock>,
}

impl TrmReasoningModule {
    /// Creates `p/layers/0..num_layers`.
    pub fn new(p: nn::Path, num_layers: usize, dims: TrmBlockDims) -> Self {
        let layers = (0..num_layers)
            .map(|i| TrmBlock::new(&p / "layers" / i, dims))
            .collect();
        TrmReasoningModule { layers }
    }

    /// # Shapes
    /// `z, injection: [b, T, H]` -> `[b, T, H]`.
    pub fn forward(&self, z: &Tensor, injection: &Tensor, rope: Option<&Rope>) -> Tensor {
        let mut h = z + injection; // [b, T, H]
        for layer in &self.layers {
            h = layer.forward(&h, rope);
        }
        h
    }
}
