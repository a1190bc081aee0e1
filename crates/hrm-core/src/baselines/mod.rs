//! Baselines without recurrence in depth or ACT, for `hrm compare`: models that map a batch to
//! logits in one forward pass ([`crate::DirectModel`]), sharing HRM's data path.
//!
//! - [`gru`]: a multi-layer bidirectional GRU over the token (and puzzle) positions, through
//!   libtorch's fused GRU kernel.
//! - [`transformer`]: HRM's own post-norm blocks in one feed-forward stack, the "Transformer"
//!   column of the HRM paper's comparisons (and close to `Model_ACTV2` in TRM's
//!   `models/recursive_reasoning/transformers_baseline.py`, without its ACT loop).
//!
//! Both use HRM's input embedding (tokens, the sparse puzzle embedding prepended as
//! `ceil(Dp / H)` positions, learned positions where chosen), and their parameters carry
//! reference-style names (`inner.embed_tokens.embedding_weight`, `inner.lm_head.weight`,
//! `inner.puzzle_emb.weights`), so checkpoints and weights files go through
//! [`crate::ModelParams`] as HRM's do. Their configs accept the data-derived keys (`seq_len`,
//! `vocab_size`, `num_puzzle_identifiers`) and an ignored `batch_size` as [`crate::HrmConfig`]
//! does, and reject any other key they do not use, naming the architecture.

pub mod gru;
pub mod transformer;

pub use gru::{Gru, GruConfig};
pub use transformer::{Transformer, TransformerConfig};
