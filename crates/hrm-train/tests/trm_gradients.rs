//! TRM's gradient through one training ACT step and the loss head (the path of section 4.5 of
//! `shared/golden-trm/README.md`): every trainable parameter receives a gradient, the puzzle
//! rows too, and with `no_ACT_continue` the continue row of the Q head receives exactly none.
//!
//! This lives in hrm-train because it needs both hrm-core (the model) and hrm-act (the ACT step
//! and the loss head), and hrm-core's own tests cannot depend on hrm-act.

use tch::{Device, Kind, Tensor};

use hrm_act::{act_step, ActBatch, ActCarry, LossHead};
use hrm_core::{ForwardDtype, Mode, PosEncoding, RecurrentCore, Trm, TrmConfig};

fn cfg(mlp_t: bool, pos: PosEncoding, no_act_continue: bool) -> TrmConfig {
    TrmConfig {
        seq_len: 6,
        vocab_size: 5,
        hidden_size: 16,
        num_heads: 2,
        puzzle_emb_ndim: 16,
        puzzle_emb_len: 2,
        num_puzzle_identifiers: 3,
        h_cycles: 2,
        l_cycles: 2,
        l_layers: 2,
        expansion: 2.0,
        halt_max_steps: 3,
        halt_exploration_prob: 0.0,
        pos_encodings: pos,
        mlp_t,
        no_act_continue,
        forward_dtype: ForwardDtype::Float32,
        ..TrmConfig::tiny()
    }
}

/// One train-mode ACT step from the initial carry, the loss head, backward of `loss / B`.
/// Returns the model (holding the gradients) and the puzzle-embedding leaf.
fn one_step(cfg: &TrmConfig) -> (Trm, Option<Tensor>, Option<Tensor>) {
    // Seeded under the process-wide lock: the tests of this binary run in parallel threads.
    hrm_train::seeded::with_seed(7, || {
        let model = Trm::new(cfg, Device::Cpu).expect("model");
        // The reference zero-initialises the Q head; perturb it so the Q losses reach the body.
        tch::no_grad(|| {
            for (name, p) in model.params().trainable() {
                if name.starts_with("inner.q_head") {
                    p.shallow_clone().copy_(&(p.randn_like() * 0.1));
                }
            }
        });
        let dims = model.dims();
        let inputs: Vec<i32> = (0..12).map(|i| 1 + i % 4).collect();
        let labels: Vec<i32> = (0..12)
            .map(|i| if i % 3 == 0 { -100 } else { i % 5 })
            .collect();
        let batch = ActBatch::from_host(&inputs, &labels, &[1, 2], &dims, Device::Cpu)
            .expect("valid batch");
        let carry = ActCarry::initial(&model, &batch);
        let (carry, out) = act_step(&model, &carry, &batch, Mode::Train);
        let step = LossHead::default().act(&carry, &out);
        (step.loss * 0.5).backward();
        (model, out.puzzle_emb_local, out.target_q_continue)
    })
}

fn grad_abs_sum(t: &Tensor) -> f64 {
    let g = t.grad();
    if g.defined() {
        g.abs().sum(Kind::Double).double_value(&[])
    } else {
        0.0
    }
}

fn assert_every_parameter_has_a_gradient(model: &Trm) {
    let trainable = model.params().trainable();
    assert!(!trainable.is_empty());
    for (name, p) in &trainable {
        let g = grad_abs_sum(p);
        assert!(g > 0.0 && g.is_finite(), "`{name}` received gradient {g}");
    }
}

fn q_head(model: &Trm) -> (Tensor, Tensor) {
    let find = |n: &str| {
        model
            .params()
            .trainable()
            .into_iter()
            .find(|(name, _)| name == n)
            .unwrap_or_else(|| panic!("{n} missing"))
            .1
            .grad()
    };
    (find("inner.q_head.weight"), find("inner.q_head.bias"))
}

#[test]
fn attention_rope_gradient_reaches_every_parameter_and_not_the_continue_row() {
    let (model, local, target) = one_step(&cfg(false, PosEncoding::Rope, true));
    assert!(target.is_none(), "no continue target with no_ACT_continue");
    assert_every_parameter_has_a_gradient(&model);
    let local = local.expect("puzzle leaf in training");
    assert!(
        grad_abs_sum(&local) > 0.0,
        "puzzle rows receive no gradient"
    );

    let (w, b) = q_head(&model);
    // Row 1 (continue) exactly zero, row 0 (halt) not.
    assert_eq!(w.select(0, 1).abs().max().double_value(&[]), 0.0);
    assert_eq!(b.double_value(&[1]), 0.0);
    assert!(w.select(0, 0).abs().sum(Kind::Double).double_value(&[]) > 0.0);
    assert!(b.double_value(&[0]) != 0.0);
}

#[test]
fn mlp_t_gradient_reaches_every_parameter_and_not_the_continue_row() {
    let (model, local, _) = one_step(&cfg(true, PosEncoding::None, true));
    let names: Vec<String> = model
        .params()
        .trainable()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names.iter().any(|n| n.contains(".mlp_t.")), "{names:?}");
    assert_every_parameter_has_a_gradient(&model);
    assert!(grad_abs_sum(&local.expect("puzzle leaf")) > 0.0);
    let (w, b) = q_head(&model);
    assert_eq!(w.select(0, 1).abs().max().double_value(&[]), 0.0);
    assert_eq!(b.double_value(&[1]), 0.0);
}

#[test]
fn act_continue_learned_positions_train_the_continue_row() {
    let (model, _, target) = one_step(&cfg(false, PosEncoding::Learned, false));
    assert!(
        target.is_some(),
        "a continue target without no_ACT_continue"
    );
    let names: Vec<String> = model
        .params()
        .trainable()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names
        .iter()
        .any(|n| n == "inner.embed_pos.embedding_weight"));
    assert_every_parameter_has_a_gradient(&model);
    let (w, b) = q_head(&model);
    assert!(w.select(0, 1).abs().sum(Kind::Double).double_value(&[]) > 0.0);
    assert!(b.double_value(&[1]) != 0.0);
}
