//! The HRM inner model, `HierarchicalReasoningModel_ACTV1_Inner` in the reference's
//! `models/hrm/hrm_act_v1.py` (Wang et al. 2025, "Hierarchical Reasoning Model", section 2).
//!
//! Two recurrent modules of post-norm blocks: the slow high-level `H_level` and the fast
//! low-level `L_level`. One ACT step runs `H_cycles x L_cycles` low-level updates, each injected
//! with `z_H + x`, and `H_cycles` high-level updates injected with `z_L`. Only the last L and the
//! last H update are differentiated (the 1-step gradient approximation of section 2.2): the
//! others run under `no_grad`, so memory does not grow with the number of cycles.
//!
//! HRM's own pieces live here ([`config`], the H/L [`reasoning`] modules); the layers it shares
//! with TRM and the baselines (attention, RoPE, SwiGLU, RMSNorm, the block, the embeddings and
//! the shell of embeddings, heads and carry) are at the crate root.

pub mod config;
pub mod reasoning;

use tch::{Device, Tensor};

pub use config::HrmConfig;
pub use reasoning::ReasoningModule;

use crate::block::BlockDims;
use crate::carry::InnerCarry;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::params::ModelParams;
use crate::recurrent::{CoreDims, CoreInput, CoreOutput, HaltRule, Mode, RecurrentCore};
use crate::rope::Rope;
use crate::shell::{CoreShell, ShellSpec};

/// The HRM recurrent core with its parameters.
#[derive(Debug)]
pub struct Hrm {
    cfg: HrmConfig,
    shell: CoreShell,
    /// `inner.H_level`.
    pub h_level: ReasoningModule,
    /// `inner.L_level`.
    pub l_level: ReasoningModule,
}

impl Hrm {
    /// Builds a freshly initialised model on `device` (seed with `tch::manual_seed` first for a
    /// reproducible initialisation).
    ///
    /// # Errors
    /// [`crate::CoreError::Config`] when the config is invalid.
    pub fn new(cfg: &HrmConfig, device: Device) -> Result<Self> {
        cfg.validate()?;
        let spec = ShellSpec {
            dims: CoreDims {
                seq_len: cfg.seq_len as i64,
                vocab_size: cfg.vocab_size as i64,
                hidden_size: cfg.hidden_size as i64,
                puzzle_emb_len: cfg.puzzle_emb_len() as i64,
                puzzle_emb_ndim: cfg.puzzle_emb_ndim as i64,
                num_puzzle_identifiers: cfg.num_puzzle_identifiers as i64,
                halt_max_steps: cfg.halt_max_steps as i64,
                halt_exploration_prob: cfg.halt_exploration_prob,
                halt_rule: HaltRule::QHaltAboveContinue,
                forward_kind: cfg.forward_dtype.kind(),
            },
            pos_encodings: cfg.pos_encodings,
            head_dim: cfg.head_dim() as i64,
            rope_theta: cfg.rope_theta,
        };
        let (shell, (h_level, l_level)) = CoreShell::build(spec, device, |inner| {
            let dims = BlockDims {
                hidden_size: cfg.hidden_size as i64,
                num_heads: cfg.num_heads as i64,
                expansion: cfg.expansion,
                rms_norm_eps: cfg.rms_norm_eps,
            };
            (
                ReasoningModule::new(inner / "H_level", cfg.h_layers, dims),
                ReasoningModule::new(inner / "L_level", cfg.l_layers, dims),
            )
        });
        Ok(Hrm {
            cfg: cfg.clone(),
            shell,
            h_level,
            l_level,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HrmConfig {
        &self.cfg
    }
}

impl RecurrentCore for Hrm {
    fn dims(&self) -> CoreDims {
        self.shell.dims
    }

    fn params(&self) -> &ModelParams {
        &self.shell.params
    }

    fn rope(&self) -> Option<&Rope> {
        self.shell.rope.as_ref()
    }

    fn empty_carry(&self, batch: i64) -> InnerCarry {
        self.shell.empty_carry(batch)
    }

    fn reset_carry(&self, reset: &Tensor, carry: &InnerCarry) -> InnerCarry {
        self.shell.reset_carry(reset, carry)
    }

    fn input_embeddings(&self, input: &CoreInput, mode: Mode) -> (Tensor, Option<Tensor>) {
        self.shell.input_embeddings(input, mode)
    }

    fn forward(&self, carry: &InnerCarry, input: &CoreInput, mode: Mode) -> CoreOutput {
        let (x, local) = self.input_embeddings(input, mode); // [b, T, H]
        let rope = self.shell.rope.as_ref();
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
        let (logits, q_halt, q_continue) = self.shell.heads.forward(&z_h);
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
