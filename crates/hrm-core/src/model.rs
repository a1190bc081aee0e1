//! The HRM inner model, `HierarchicalReasoningModel_ACTV1_Inner` in the reference's
//! `models/hrm/hrm_act_v1.py` (Wang et al. 2025, "Hierarchical Reasoning Model", section 2).
//!
//! Two recurrent modules of post-norm blocks: the slow high-level `H_level` and the fast
//! low-level `L_level`. One ACT step runs `H_cycles x L_cycles` low-level updates, each injected
//! with `z_H + x`, and `H_cycles` high-level updates injected with `z_L`. Only the last L and the
//! last H update are differentiated (the 1-step gradient approximation of section 2.2): the
//! others run under `no_grad`, so memory does not grow with the number of cycles.

use tch::{Device, Tensor};

use crate::block::BlockDims;
use crate::carry::InnerCarry;
use crate::config::{HrmConfig, ModelConfig, PosEncoding};
use crate::embedding::{EmbeddingDims, InputEmbedding};
use crate::error::Result;
use crate::heads::OutputHeads;
use crate::init::trunc_normal;
use crate::params::ModelParams;
use crate::reasoning::ReasoningModule;
use crate::recurrent::{CoreDims, CoreInput, CoreOutput, HaltRule, Mode, RecurrentCore};
use crate::rope::Rope;

/// The HRM recurrent core with its parameters.
#[derive(Debug)]
pub struct Hrm {
    cfg: HrmConfig,
    params: ModelParams,
    embedding: InputEmbedding,
    heads: OutputHeads,
    rope: Option<Rope>,
    /// `inner.H_level`.
    pub h_level: ReasoningModule,
    /// `inner.L_level`.
    pub l_level: ReasoningModule,
    h_init: Tensor,
    l_init: Tensor,
}

impl Hrm {
    /// Builds a freshly initialised model on `device` (seed with `tch::manual_seed` first for a
    /// reproducible initialisation).
    ///
    /// # Errors
    /// [`crate::CoreError::Config`] when the config is invalid.
    pub fn new(cfg: &HrmConfig, device: Device) -> Result<Self> {
        cfg.validate()?;
        let params = ModelParams::new(device);
        let (embedding, heads, rope, h_level, l_level, h_init, l_init) = {
            let inner = params.root() / "inner";
            let sparse_inner = params.sparse_root() / "inner";
            let h = cfg.hidden_size as i64;
            let embedding = InputEmbedding::new(
                &inner,
                &sparse_inner,
                EmbeddingDims {
                    vocab_size: cfg.vocab_size as i64,
                    hidden_size: h,
                    seq_len: cfg.seq_len as i64,
                    puzzle_emb_len: cfg.puzzle_emb_len() as i64,
                    puzzle_emb_ndim: cfg.puzzle_emb_ndim as i64,
                    num_puzzle_identifiers: cfg.num_puzzle_identifiers as i64,
                    pos_encodings: cfg.pos_encodings,
                },
            );
            let heads = OutputHeads::new(
                &inner,
                h,
                cfg.vocab_size as i64,
                cfg.puzzle_emb_len() as i64,
                cfg.seq_len as i64,
            );
            let rope = (cfg.pos_encodings == PosEncoding::Rope).then(|| {
                Rope::new(
                    cfg.head_dim() as i64,
                    cfg.total_seq_len() as i64,
                    cfg.rope_theta,
                    device,
                )
            });
            let dims = BlockDims {
                hidden_size: h,
                num_heads: cfg.num_heads as i64,
                expansion: cfg.expansion,
                rms_norm_eps: cfg.rms_norm_eps,
            };
            let h_level = ReasoningModule::new(&inner / "H_level", cfg.h_layers, dims);
            let l_level = ReasoningModule::new(&inner / "L_level", cfg.l_layers, dims);
            let h_init = inner.add("H_init", trunc_normal(&[h], 1.0, device), false);
            let l_init = inner.add("L_init", trunc_normal(&[h], 1.0, device), false);
            (embedding, heads, rope, h_level, l_level, h_init, l_init)
        };
        Ok(Hrm {
            cfg: cfg.clone(),
            params,
            embedding,
            heads,
            rope,
            h_level,
            l_level,
            h_init,
            l_init,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HrmConfig {
        &self.cfg
    }
}

impl RecurrentCore for Hrm {
    fn dims(&self) -> CoreDims {
        let c = &self.cfg;
        CoreDims {
            seq_len: c.seq_len as i64,
            vocab_size: c.vocab_size as i64,
            hidden_size: c.hidden_size as i64,
            puzzle_emb_len: c.puzzle_emb_len() as i64,
            puzzle_emb_ndim: c.puzzle_emb_ndim as i64,
            num_puzzle_identifiers: c.num_puzzle_identifiers as i64,
            halt_max_steps: c.halt_max_steps as i64,
            halt_exploration_prob: c.halt_exploration_prob,
            halt_rule: HaltRule::QHaltAboveContinue,
            forward_kind: c.forward_dtype.kind(),
        }
    }

    fn params(&self) -> &ModelParams {
        &self.params
    }

    fn rope(&self) -> Option<&Rope> {
        self.rope.as_ref()
    }

    fn empty_carry(&self, batch: i64) -> InnerCarry {
        let c = &self.cfg;
        let (t, h) = (c.total_seq_len() as i64, c.hidden_size as i64);
        InnerCarry::zeros(batch, t, h, c.forward_dtype.kind(), self.params.device())
    }

    fn reset_carry(&self, reset: &Tensor, carry: &InnerCarry) -> InnerCarry {
        carry.reset_rows(reset, &self.h_init, &self.l_init)
    }

    fn input_embeddings(&self, input: &CoreInput, mode: Mode) -> (Tensor, Option<Tensor>) {
        let kind = self.cfg.forward_dtype.kind();
        self.embedding
            .forward(&input.inputs, &input.puzzle_identifiers, mode, kind)
    }

    fn forward(&self, carry: &InnerCarry, input: &CoreInput, mode: Mode) -> CoreOutput {
        let (x, local) = self.input_embeddings(input, mode); // [b, T, H]
        let rope = self.rope.as_ref();
        let (hc, lc) = (self.cfg.h_cycles, self.cfg.l_cycles);
        // Every update but the last L and the last H one: no graph is kept.
        let (z_h, z_l) = tch::no_grad(|| {
            let mut z_h = carry.z_h.shallow_clone();
            let mut z_l = carry.z_l.shallow_clone();
            for i in 0..hc {
                for j in 0..lc {
                    if !(i == hc - 1 && j == lc - 1) {
                        z_l = self.l_level.forward(&z_l, &(&z_h + &x), rope);
                    }
                }
                if i != hc - 1 {
                    z_h = self.h_level.forward(&z_h, &z_l, rope);
                }
            }
            (z_h, z_l)
        });
        // The 1-step gradient: the last L and H updates, differentiated.
        let z_l = self.l_level.forward(&z_l, &(&z_h + &x), rope);
        let z_h = self.h_level.forward(&z_h, &z_l, rope);
        let (logits, q_halt, q_continue) = self.heads.forward(&z_h);
        CoreOutput {
            carry: InnerCarry {
                z_h: z_h.detach(),
                z_l: z_l.detach(),
            },
            logits,
            q_halt,
            q_continue,
            puzzle_emb_local: local,
        }
    }
}
