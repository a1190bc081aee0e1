//! The Tiny Recursive Model, `TinyRecursiveReasoningModel_ACTV1_Inner` in the reference's
//! `models/recursive_reasoning/trm.py` (SamsungSAILMontreal/TinyRecursiveModels;
//! Jolicoeur-Martineau 2025, "Less is More: Recursive Reasoning with Tiny Networks", section 4).
//!
//! TRM keeps HRM's carry `(z_H, z_L)` (the paper's answer `y` and latent `z`), input embedding,
//! heads and ACT wrapper, but has **one** network, `L_level`, used for both updates. One ACT step
//! runs `H_cycles` cycles of
//!
//! ```text
//! repeat L_cycles times:  z_L = net(z_L, z_H + x)     latent update, sees the input
//! z_H = net(z_H, z_L)                                 answer update, injected with z_L only
//! ```
//!
//! The first `H_cycles - 1` cycles run without gradient; the **whole last cycle** (its
//! `L_cycles` latent updates and the answer update) is differentiated, where HRM differentiates
//! only its last L and last H update. The carry is detached between ACT steps.
//!
//! Differences from HRM besides the recursion: `puzzle_emb_len` is a setting (default 16) rather
//! than `ceil(Dp / H)`, blocks may mix tokens with an MLP across positions (`mlp_t`, see
//! [`block`]), and the training halting rule is `q_halt > 0` by default (`no_ACT_continue`).
//!
//! # Example
//! ```
//! use hrm_core::{CoreInput, Mode, RecurrentCore, Trm, TrmConfig};
//!
//! let mut cfg = TrmConfig::tiny();
//! cfg.hidden_size = 32;
//! cfg.num_heads = 2;
//! cfg.puzzle_emb_ndim = 32;
//! cfg.puzzle_emb_len = 2;
//! tch::manual_seed(0);
//! let model = Trm::new(&cfg, tch::Device::Cpu)?;
//! let dims = model.dims();
//! let input = CoreInput::from_host(&[1; 81], &[0], &dims, tch::Device::Cpu)?;
//! let carry = model.reset_carry(&tch::Tensor::from_slice(&[true]), &model.empty_carry(1));
//! let out = tch::no_grad(|| model.forward(&carry, &input, Mode::Eval));
//! assert_eq!(out.logits.size(), vec![1, 81, 11]);
//! assert_eq!(out.carry.z_h.size(), vec![1, 83, 32]);
//! # Ok::<(), hrm_core::CoreError>(())
//! ```

pub mod block;
pub mod config;
pub mod reasoning;

use tch::{Device, Tensor};

pub use block::{TokenMixer, TrmBlock, TrmBlockDims};
pub use config::TrmConfig;
pub use reasoning::TrmReasoningModule;

use crate::carry::InnerCarry;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::params::ModelParams;
use crate::recurrent::{CoreDims, CoreInput, CoreOutput, Mode, RecurrentCore};
use crate::rope::Rope;
use crate::shell::{CoreShell, ShellSpec};

/// The TRM recurrent core with its parameters.
#[derive(Debug)]
pub struct Trm {
    cfg: TrmConfig,
    shell: CoreShell,
    /// `inner.L_level`: the one network of both updates.
    pub l_level: TrmReasoningModule,
}

impl Trm {
    /// Builds a freshly initialised model on `device` (seed with `tch::manual_seed` first for a
    /// reproducible initialisation). Parameter names are the reference's state-dict names
    /// without the `model.` prefix (`inner.L_level.layers.0.mlp_t.gate_up_proj.weight`, ...).
    ///
    /// # Errors
    /// [`crate::CoreError::Config`] when the config is invalid.
    pub fn new(cfg: &TrmConfig, device: Device) -> Result<Self> {
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
                halt_rule: cfg.halt_rule(),
                forward_kind: cfg.forward_dtype.kind(),
            },
            pos_encodings: cfg.pos_encodings,
            head_dim: cfg.head_dim() as i64,
            rope_theta: cfg.rope_theta,
        };
        let (shell, l_level) = CoreShell::build(spec, device, |inner| {
            let dims = TrmBlockDims {
                hidden_size: cfg.hidden_size as i64,
                num_heads: cfg.num_heads as i64,
                expansion: cfg.expansion,
                rms_norm_eps: cfg.rms_norm_eps,
                mlp_t_width: cfg.mlp_t.then_some(cfg.total_seq_len() as i64),
            };
            TrmReasoningModule::new(inner / "L_level", cfg.l_layers, dims)
        });
        Ok(Trm {
            cfg: cfg.clone(),
            shell,
            l_level,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TrmConfig {
        &self.cfg
    }

    /// One recursion cycle: `L_cycles` latent updates `z_L = net(z_L, z_H + x)`, then the answer
    /// update `z_H = net(z_H, z_L)`. Returns `(z_h, z_l)`; records a graph unless called under
    /// `no_grad`.
    ///
    /// # Shapes
    /// `z_h, z_l, x: [b, T, H]` -> two `[b, T, H]`.
    pub fn cycle(&self, z_h: &Tensor, z_l: &Tensor, x: &Tensor) -> (Tensor, Tensor) {
        let rope = self.shell.rope.as_ref();
        let mut z_l = z_l.shallow_clone();
        for _ in 0..self.cfg.l_cycles {
            z_l = self.l_level.forward(&z_l, &(z_h + x), rope); // [b, T, H]
        }
        let z_h = self.l_level.forward(z_h, &z_l, rope); // [b, T, H]
        (z_h, z_l)
    }
}

impl RecurrentCore for Trm {
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

        // The first H_cycles - 1 cycles: no graph is kept, so their results are constants.
        let (z_h, z_l) = tch::no_grad(|| {
            let mut z_h = carry.z_h.shallow_clone();
            let mut z_l = carry.z_l.shallow_clone();
            for _ in 1..self.cfg.h_cycles {
                (z_h, z_l) = self.cycle(&z_h, &z_l, &x);
            }
            (z_h, z_l)
        });
        // The whole last cycle, differentiated: L_cycles latent updates and the answer update.
        let (z_h, z_l) = self.cycle(&z_h, &z_l, &x);
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

#[cfg(test)]
mod tests {
    use tch::Kind;

    use super::*;
    use crate::config::{ForwardDtype, PosEncoding};

    fn small_cfg(mlp_t: bool, pos: PosEncoding) -> TrmConfig {
        TrmConfig {
            seq_len: 6,
            vocab_size: 5,
            hidden_size: 8,
            num_heads: 2,
            puzzle_emb_ndim: 12,
            puzzle_emb_len: 2,
            num_puzzle_identifiers: 3,
            h_cycles: 2,
            l_cycles: 2,
            l_layers: 2,
            expansion: 2.0,
            halt_max_steps: 3,
            pos_encodings: pos,
            mlp_t,
            ..TrmConfig::tiny()
        }
    }

    fn input(model: &Trm) -> CoreInput {
        let dims = model.dims();
        let tokens: Vec<i32> = (0..12).map(|i| i % 5).collect();
        CoreInput::from_host(&tokens, &[0, 2], &dims, Device::Cpu).expect("valid input")
    }

    fn names_of(model: &Trm) -> Vec<String> {
        model.params().all().into_iter().map(|(n, _)| n).collect()
    }

    #[test]
    fn parameter_names_are_the_reference_state_dict() {
        let model = Trm::new(&small_cfg(true, PosEncoding::None), Device::Cpu).expect("model");
        let names = names_of(&model);
        for want in [
            "inner.H_init",
            "inner.L_init",
            "inner.L_level.layers.1.mlp_t.gate_up_proj.weight",
            "inner.L_level.layers.1.mlp_t.down_proj.weight",
            "inner.L_level.layers.1.mlp.gate_up_proj.weight",
            "inner.embed_tokens.embedding_weight",
            "inner.lm_head.weight",
            "inner.q_head.bias",
            "inner.puzzle_emb.weights",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        assert!(!names
            .iter()
            .any(|n| n.contains("H_level") || n.contains("self_attn")));
        // T = 8 positions, expansion 2: round(8 * 4/3) = 11 -> 256.
        let vars = model.params().trainable();
        let gate_up = &vars
            .iter()
            .find(|(n, _)| n == "inner.L_level.layers.0.mlp_t.gate_up_proj.weight")
            .expect("mlp_t")
            .1;
        assert_eq!(gate_up.size(), vec![512, 8]);

        let model = Trm::new(&small_cfg(false, PosEncoding::Learned), Device::Cpu).expect("model");
        let names = names_of(&model);
        assert!(names
            .iter()
            .any(|n| n == "inner.embed_pos.embedding_weight"));
        assert!(names
            .iter()
            .any(|n| n == "inner.L_level.layers.0.self_attn.qkv_proj.weight"));
        assert!(!names.iter().any(|n| n.contains("mlp_t")));
    }

    #[test]
    fn forward_shapes_and_halt_rule() {
        tch::manual_seed(0);
        let mut cfg = small_cfg(false, PosEncoding::Rope);
        let model = Trm::new(&cfg, Device::Cpu).expect("model");
        let carry = model.reset_carry(&Tensor::from_slice(&[true, true]), &model.empty_carry(2));
        let out = tch::no_grad(|| model.forward(&carry, &input(&model), Mode::Eval));
        assert_eq!(out.logits.size(), vec![2, 6, 5]);
        assert_eq!(out.q_halt.size(), vec![2]);
        assert_eq!(out.q_halt.kind(), Kind::Float);
        assert_eq!(out.carry.z_l.size(), vec![2, 8, 8]);
        assert_eq!(model.dims().halt_rule, crate::HaltRule::QHaltPositive);
        cfg.no_act_continue = false;
        let model = Trm::new(&cfg, Device::Cpu).expect("model");
        assert_eq!(model.dims().halt_rule, crate::HaltRule::QHaltAboveContinue);
    }

    #[test]
    fn gradient_covers_the_whole_last_cycle_only() {
        // The model's gradient equals an explicit derivation in which the first cycle is a
        // constant and the whole last cycle is differentiated, and differs from one in which
        // both cycles are differentiated (so the no-grad scope really cuts the first cycle).
        tch::manual_seed(1);
        let cfg = TrmConfig {
            h_cycles: 2,
            ..small_cfg(true, PosEncoding::None)
        };
        let model = Trm::new(&cfg, Device::Cpu).expect("model");
        let carry = model.reset_carry(&Tensor::from_slice(&[true, true]), &model.empty_carry(2));
        let inp = input(&model);
        let name = "inner.embed_tokens.embedding_weight";
        let grad_after = |run: &dyn Fn() -> Tensor| {
            for (_, p) in model.params().trainable() {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            }
            run().sum(Kind::Float).backward();
            let (_, p) = model
                .params()
                .trainable()
                .into_iter()
                .find(|(n, _)| n == name)
                .expect("param");
            p.grad().copy()
        };
        let g_model = grad_after(&|| model.forward(&carry, &inp, Mode::Train).logits);
        let g_last_cycle = grad_after(&|| {
            let (x, _) = model.input_embeddings(&inp, Mode::Train);
            let (z_h, z_l) = tch::no_grad(|| model.cycle(&carry.z_h, &carry.z_l, &x));
            let (z_h, _) = model.cycle(&z_h, &z_l, &x);
            model.shell.heads.forward(&z_h).0
        });
        let g_all_cycles = grad_after(&|| {
            let (x, _) = model.input_embeddings(&inp, Mode::Train);
            let (z_h, z_l) = model.cycle(&carry.z_h, &carry.z_l, &x);
            let (z_h, _) = model.cycle(&z_h, &z_l, &x);
            model.shell.heads.forward(&z_h).0
        });
        let max_abs = |t: Tensor| t.abs().max().double_value(&[]);
        assert!(max_abs(&g_model - &g_last_cycle) < 1e-6);
        assert!(max_abs(&g_model - &g_all_cycles) > 1e-4);
        assert!(max_abs(g_model) > 0.0);
    }

    #[test]
    fn bf16_forward_runs_with_f32_parameters() {
        tch::manual_seed(2);
        for mlp_t in [false, true] {
            let mut cfg = small_cfg(mlp_t, PosEncoding::Rope);
            cfg.forward_dtype = ForwardDtype::Bfloat16;
            let model = Trm::new(&cfg, Device::Cpu).expect("model");
            let carry =
                model.reset_carry(&Tensor::from_slice(&[true, true]), &model.empty_carry(2));
            let out = model.forward(&carry, &input(&model), Mode::Train);
            assert_eq!(out.logits.kind(), Kind::BFloat16);
            assert_eq!(out.carry.z_h.kind(), Kind::BFloat16);
            assert_eq!(out.q_halt.kind(), Kind::Float);
            assert!(model
                .params()
                .all()
                .iter()
                .all(|(_, t)| t.kind() == Kind::Float));
            out.logits.to_kind(Kind::Float).sum(Kind::Float).backward();
            let local = out.puzzle_emb_local.expect("puzzle leaf");
            assert!(local.grad().defined());
            let v = out
                .logits
                .to_kind(Kind::Float)
                .abs()
                .max()
                .double_value(&[]);
            assert!(v.is_finite(), "{v}");
        }
    }

    #[test]
    fn invalid_config_is_rejected_by_new() {
        let mut cfg = small_cfg(false, PosEncoding::Rope);
        cfg.puzzle_emb_len = 1; // 1 * 8 < 12
        assert!(matches!(
            Trm::new(&cfg, Device::Cpu),
            Err(crate::CoreError::Config {
                key: "puzzle_emb_len",
                ..
            })
        ));
    }
}
