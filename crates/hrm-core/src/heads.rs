//! The output heads shared by HRM and TRM: the LM head over token positions and the Q head on
//! position 0 (the first puzzle position when there is a puzzle embedding).

use tch::{nn, Kind, Tensor};

use crate::linear::CastedLinear;

/// `lm_head` (no bias) and `q_head` (`[2, H]` plus bias; row 0 halt, row 1 continue).
#[derive(Debug)]
pub struct OutputHeads {
    /// `inner.lm_head`, `[V, H]`.
    pub lm_head: CastedLinear,
    /// `inner.q_head`, `[2, H]` and `[2]`.
    pub q_head: CastedLinear,
    puzzle_emb_len: i64,
    seq_len: i64,
}

impl OutputHeads {
    /// Creates `inner/lm_head` and `inner/q_head`; the Q head starts at weight 0 and bias -5 (the
    /// reference's choice: halting is unlikely until the head has learned something).
    pub fn new(
        inner: &nn::Path,
        hidden_size: i64,
        vocab_size: i64,
        puzzle_emb_len: i64,
        seq_len: i64,
    ) -> Self {
        let lm_head = CastedLinear::new(inner / "lm_head", hidden_size, vocab_size, false);
        let q_head = CastedLinear::new(inner / "q_head", hidden_size, 2, true);
        tch::no_grad(|| {
            let _ = q_head.weight.shallow_clone().zero_();
            if let Some(b) = &q_head.bias {
                let _ = b.shallow_clone().fill_(-5.0);
            }
        });
        OutputHeads {
            lm_head,
            q_head,
            puzzle_emb_len,
            seq_len,
        }
    }

    /// `(logits [b, S, V], q_halt [b] f32, q_continue [b] f32)` from `z_h: [b, T, H]`.
    pub fn forward(&self, z_h: &Tensor) -> (Tensor, Tensor, Tensor) {
        let logits = self
            .lm_head
            .forward(&z_h.narrow(1, self.puzzle_emb_len, self.seq_len));
        let q = self.q_head.forward(&z_h.select(1, 0)).to_kind(Kind::Float); // [b, 2]
        (logits, q.select(1, 0), q.select(1, 1))
    }
}
