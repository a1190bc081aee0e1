//! The sparse per-puzzle embedding, as `CastedSparseEmbedding` in the reference's
//! `models/sparse_embedding.py`.
//!
//! The table `[num_puzzle_identifiers, puzzle_emb_ndim]` is not trained by the network's
//! optimiser but by a sign-SGD that touches only the rows a batch used. So it lives in its own
//! `VarStore` (see [`crate::ModelParams`]) and never requires a gradient itself. In training the
//! forward hands out a per-batch copy of the rows (`local_weights` in the reference), a leaf
//! that receives the gradient; the optimiser then scatters that gradient back by identifier.

use tch::{nn, Kind, Tensor};

/// The puzzle embedding table.
#[derive(Debug)]
pub struct SparsePuzzleEmbedding {
    /// `[Nid, Dp]`, float32, zero-initialised as in the reference.
    pub weights: Tensor,
}

impl SparsePuzzleEmbedding {
    /// Creates `p/weights` (not trainable by the dense optimiser).
    pub fn new(p: nn::Path, num_identifiers: i64, dim: i64) -> Self {
        SparsePuzzleEmbedding {
            weights: p.zeros_no_train("weights", &[num_identifiers, dim]),
        }
    }

    /// The rows of `ids`, without gradient (evaluation).
    ///
    /// # Shapes
    /// `ids: [b]` (int64) -> `[b, Dp]` float32.
    pub fn lookup(&self, ids: &Tensor) -> Tensor {
        self.weights.index_select(0, ids)
    }

    /// A fresh leaf holding the rows of `ids` that requires a gradient (training). The caller
    /// keeps it to read its `.grad()` after the backward pass.
    ///
    /// # Shapes
    /// `ids: [b]` (int64) -> `[b, Dp]` float32.
    pub fn local_copy(&self, ids: &Tensor) -> Tensor {
        self.lookup(ids)
            .detach()
            .to_kind(Kind::Float)
            .set_requires_grad(true)
    }
}
