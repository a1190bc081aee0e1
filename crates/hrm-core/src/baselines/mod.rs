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

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{CoreError, Result};

/// The text formats a baseline config is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Toml,
}

/// Parses a model section for `arch`; parse errors (unknown keys, wrong types) become
/// [`CoreError::ConfigParse`] whose source names the architecture, so a key that belongs to
/// another architecture reads as such ("model section of arch `gru`: unknown field `H_cycles`,
/// expected one of ...").
fn parse<T: DeserializeOwned>(text: &str, format: Format, arch: &str) -> Result<T> {
    let source_name = format!("model section of arch `{arch}`");
    match format {
        Format::Json => serde_json::from_str(text).map_err(|e| CoreError::ConfigParse {
            source_name,
            message: e.to_string(),
        }),
        Format::Toml => toml::from_str(text).map_err(|e| CoreError::ConfigParse {
            source_name,
            message: e.to_string(),
        }),
    }
}

/// Reads a `.json` or `.toml` file for `arch` (TOML unless the extension is `json`).
fn read<T: DeserializeOwned>(path: &Path, arch: &str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| CoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let format = if path.extension().is_some_and(|e| e == "json") {
        Format::Json
    } else {
        Format::Toml
    };
    parse(&text, format, arch).map_err(|e| match e {
        CoreError::ConfigParse { message, .. } => CoreError::ConfigParse {
            source_name: format!("{} (arch `{arch}`)", path.display()),
            message,
        },
        other => other,
    })
}

/// Fails with [`CoreError::Config`] naming the first key whose value is 0.
fn require_positive(values: &[(&'static str, usize)]) -> Result<()> {
    match values.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err(CoreError::Config {
            key,
            reason: "must be at least 1".into(),
        }),
        None => Ok(()),
    }
}
