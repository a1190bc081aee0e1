//! The input embedding shared by HRM and TRM, `_input_embeddings` in the reference's
//! `models/hrm/hrm_act_v1.py` (and its TRM twin).
//!
//! 1. tokens: `E[inputs]`, `[b, S, H]`;
//! 2. with a puzzle embedding: the identifier's row `[b, Dp]`, zero-padded **at the end** to
//!    `P*H`, reshaped to `[b, P, H]` and **prepended**;
//! 3. with learned positions: `x = 0.707106781 * (x + pos)` over all `T` positions;
//! 4. `x = sqrt(H) * x`.

use tch::{nn, Kind, Tensor};

use crate::config::PosEncoding;
use crate::linear::CastedEmbedding;
use crate::puzzle_embedding::SparsePuzzleEmbedding;
use crate::recurrent::Mode;

/// The reference's literal for 1/sqrt(2), kept as written (it differs from the exact value in
/// the tenth digit, which rounds to the same float32 but keeps the two implementations visibly
/// identical).
#[allow(clippy::approx_constant)]
pub const LEARNED_POS_SCALE: f64 = 0.707_106_781;

/// Sizes of the input embedding.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddingDims {
    /// Vocabulary `V`.
    pub vocab_size: i64,
    /// Hidden width `H`.
    pub hidden_size: i64,
    /// Tokens `S`.
    pub seq_len: i64,
    /// Puzzle positions `P` (0 without a puzzle embedding).
    pub puzzle_emb_len: i64,
    /// Puzzle embedding width `Dp` (0: none).
    pub puzzle_emb_ndim: i64,
    /// Rows of the puzzle table.
    pub num_puzzle_identifiers: i64,
    /// Position encoding (only `Learned` adds a table here).
    pub pos_encodings: PosEncoding,
}

/// Token, puzzle and (learned) position embeddings.
#[derive(Debug)]
pub struct InputEmbedding {
    /// `inner.embed_tokens`, `[V, H]`.
    pub embed_tokens: CastedEmbedding,
    /// `inner.embed_pos`, `[T, H]`, with learned positions.
    pub embed_pos: Option<CastedEmbedding>,
    /// `inner.puzzle_emb`, in the sparse store.
    pub puzzle_emb: Option<SparsePuzzleEmbedding>,
    dims: EmbeddingDims,
    scale: f64,
}

impl InputEmbedding {
    /// Creates `inner/embed_tokens`, `inner/embed_pos` (learned positions) and, in the sparse
    /// store, `inner/puzzle_emb/weights`. Embedding std is `1/sqrt(H)` as in the reference.
    pub fn new(inner: &nn::Path, sparse_inner: &nn::Path, dims: EmbeddingDims) -> Self {
        let scale = f64::from((dims.hidden_size as f32).sqrt());
        let std = 1.0 / scale;
        let total = dims.seq_len + dims.puzzle_emb_len;
        InputEmbedding {
            embed_tokens: CastedEmbedding::new(
                inner / "embed_tokens",
                dims.vocab_size,
                dims.hidden_size,
                std,
            ),
            embed_pos: (dims.pos_encodings == PosEncoding::Learned)
                .then(|| CastedEmbedding::new(inner / "embed_pos", total, dims.hidden_size, std)),
            puzzle_emb: (dims.puzzle_emb_ndim > 0).then(|| {
                SparsePuzzleEmbedding::new(
                    sparse_inner / "puzzle_emb",
                    dims.num_puzzle_identifiers,
                    dims.puzzle_emb_ndim,
                )
            }),
            dims,
            scale,
        }
    }

    /// The scaled embedding and, in training with a puzzle table, the gradient-receiving copy of
    /// the puzzle rows.
    ///
    /// # Shapes
    /// `inputs: [b, S]`, `ids: [b]` (int64) -> `[b, T, H]` in `kind`, and `[b, Dp]` float32.
    pub fn forward(
        &self,
        inputs: &Tensor,
        ids: &Tensor,
        mode: Mode,
        kind: Kind,
    ) -> (Tensor, Option<Tensor>) {
        let d = &self.dims;
        let mut x = self.embed_tokens.forward(inputs, kind); // [b, S, H]
        let mut local = None;
        if let Some(table) = &self.puzzle_emb {
            let rows = match mode {
                Mode::Train => {
                    let leaf = table.local_copy(ids);
                    local = Some(leaf.shallow_clone());
                    leaf
                }
                Mode::Eval => table.lookup(ids),
            }; // [b, Dp]
            let pad = d.puzzle_emb_len * d.hidden_size - d.puzzle_emb_ndim;
            let rows = rows.to_kind(kind);
            let rows = if pad > 0 {
                rows.constant_pad_nd([0, pad])
            } else {
                rows
            };
            let puzzle = rows.view([-1, d.puzzle_emb_len, d.hidden_size]); // [b, P, H]
            x = Tensor::cat(&[&puzzle, &x], 1); // [b, T, H]
        }
        if let Some(pos) = &self.embed_pos {
            x = (x + pos.embedding_weight.to_kind(kind)) * LEARNED_POS_SCALE;
        }
        (x * self.scale, local)
    }
}
