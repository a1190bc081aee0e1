//! What HRM and TRM share around their reasoning modules: the parameter stores, the input
//! embedding, the output heads, the RoPE tables and the initial states `H_init` / `L_init`.
//!
//! Both reference inner models (`hrm_act_v1.py`, `trm.py`) build these the same way and in the
//! same order; only the reasoning modules in the middle differ. [`CoreShell::build`] takes those
//! as a closure so that the creation order, and with it the initial values drawn from the
//! seeded RNG, stays the reference's: embeddings, heads, reasoning modules, then the two
//! initial states.

use tch::{nn, Device, Tensor};

use crate::carry::InnerCarry;
use crate::config::PosEncoding;
use crate::embedding::{EmbeddingDims, InputEmbedding};
use crate::heads::OutputHeads;
use crate::init::trunc_normal;
use crate::params::ModelParams;
use crate::recurrent::{CoreDims, CoreInput, Mode};
use crate::rope::Rope;

/// The sizes a shell is built from: the core's [`CoreDims`] plus the position encoding.
pub(crate) struct ShellSpec {
    pub dims: CoreDims,
    pub pos_encodings: PosEncoding,
    /// Per-head width, for the RoPE tables.
    pub head_dim: i64,
    pub rope_theta: f64,
}

/// The shared parts of a recurrent core.
#[derive(Debug)]
pub(crate) struct CoreShell {
    pub params: ModelParams,
    pub embedding: InputEmbedding,
    pub heads: OutputHeads,
    pub rope: Option<Rope>,
    pub dims: CoreDims,
    h_init: Tensor,
    l_init: Tensor,
}

impl CoreShell {
    /// Builds the shell on `device`, calling `levels` with the `inner` path between the heads
    /// and the initial states; returns the shell and what `levels` built.
    pub fn build<L>(
        spec: ShellSpec,
        device: Device,
        levels: impl FnOnce(&nn::Path) -> L,
    ) -> (CoreShell, L) {
        let d = spec.dims;
        let params = ModelParams::new(device);
        let (embedding, heads, rope, levels, h_init, l_init) = {
            let inner = params.root() / "inner";
            let sparse_inner = params.sparse_root() / "inner";
            let embedding = InputEmbedding::new(
                &inner,
                &sparse_inner,
                EmbeddingDims {
                    vocab_size: d.vocab_size,
                    hidden_size: d.hidden_size,
                    seq_len: d.seq_len,
                    puzzle_emb_len: d.puzzle_emb_len,
                    puzzle_emb_ndim: d.puzzle_emb_ndim,
                    num_puzzle_identifiers: d.num_puzzle_identifiers,
                    pos_encodings: spec.pos_encodings,
                },
            );
            let heads = OutputHeads::new(
                &inner,
                d.hidden_size,
                d.vocab_size,
                d.puzzle_emb_len,
                d.seq_len,
            );
            // Built whenever `pos_encodings == "rope"`, even where a TRM with mlp_t never reads
            // them, as the reference does, so the `rope.*` buffers always exist.
            let rope = (spec.pos_encodings == PosEncoding::Rope)
                .then(|| Rope::new(spec.head_dim, d.total_seq_len(), spec.rope_theta, device));
            let levels = levels(&inner);
            let h = d.hidden_size;
            let h_init = inner.add("H_init", trunc_normal(&[h], 1.0, device), false);
            let l_init = inner.add("L_init", trunc_normal(&[h], 1.0, device), false);
            (embedding, heads, rope, levels, h_init, l_init)
        };
        let shell = CoreShell {
            params,
            embedding,
            heads,
            rope,
            dims: d,
            h_init,
            l_init,
        };
        (shell, levels)
    }

    /// A carry of `batch` rows, zeros (see [`InnerCarry::zeros`]).
    pub fn empty_carry(&self, batch: i64) -> InnerCarry {
        let d = &self.dims;
        InnerCarry::zeros(
            batch,
            d.total_seq_len(),
            d.hidden_size,
            d.forward_kind,
            self.params.device(),
        )
    }

    /// Rows where `reset` (`[b]` bool) is true replaced by the initial states.
    pub fn reset_carry(&self, reset: &Tensor, carry: &InnerCarry) -> InnerCarry {
        carry.reset_rows(reset, &self.h_init, &self.l_init)
    }

    /// The scaled input embedding `[b, T, H]` and, in training, the puzzle-embedding leaf.
    pub fn input_embeddings(&self, input: &CoreInput, mode: Mode) -> (Tensor, Option<Tensor>) {
        self.embedding.forward(
            &input.inputs,
            &input.puzzle_identifiers,
            mode,
            self.dims.forward_kind,
        )
    }
}
