//! The GRU and Transformer baselines through the training path: `build_model` builds them from a
//! config's model table (and rejects keys they do not use, naming the architecture), one
//! training step's backward pass reaches every parameter and the puzzle rows, and each baseline
//! learns a fixed permutation of tokens far above the majority-token baseline in a few hundred
//! CPU steps.

use tch::{Device, Kind, Tensor};

use hrm_act::{ActBatch, LossHead};
use hrm_core::{DirectModel, Mode};
use hrm_train::arch::{build_model, ArchModel};
use hrm_train::config::{Arch, TrainConfig};
use hrm_train::optim::{AdamAtan2, AdamAtan2Config, SignSgdConfig};
use hrm_train::train_step::{
    direct_loss, direct_train_step, Optimizers, PuzzleOptimizer, StepRates,
};

/// Tokens per example and vocabulary of the synthetic tasks (token 0 is never used, as a pad).
const SEQ: i64 = 8;
const VOCAB: i64 = 6;

fn table(text: &str) -> toml::Table {
    text.parse().expect("test table parses")
}

fn gru_table(puzzle_emb_ndim: i64) -> toml::Table {
    table(&format!(
        "seq_len = {SEQ}\nvocab_size = {VOCAB}\nnum_puzzle_identifiers = 4\nhidden_size = 32\n\
         num_layers = 2\npuzzle_emb_ndim = {puzzle_emb_ndim}\n"
    ))
}

fn transformer_table(puzzle_emb_ndim: i64, pos: &str) -> toml::Table {
    table(&format!(
        "seq_len = {SEQ}\nvocab_size = {VOCAB}\nnum_puzzle_identifiers = 4\nH_layers = 1\n\
         L_layers = 1\nhidden_size = 32\nnum_heads = 2\nexpansion = 2.0\n\
         pos_encodings = \"{pos}\"\npuzzle_emb_ndim = {puzzle_emb_ndim}\n\
         forward_dtype = \"float32\"\n"
    ))
}

fn direct(model: &ArchModel) -> &dyn DirectModel {
    match model {
        ArchModel::Direct(m) => m.as_ref(),
        ArchModel::Recurrent(_) => panic!("a baseline must be a direct model"),
    }
}

/// A fixed permutation task: the label at position `i` is the input at `PERM[i]`.
const PERM: [i64; SEQ as usize] = [7, 2, 5, 0, 6, 1, 4, 3];

fn permutation_batch(b: i64) -> ActBatch {
    // Drawn outside other tests' seeded sections (this binary trains in parallel threads).
    hrm_train::seeded::exclusive(|| {
        let inputs = Tensor::randint_low(1, VOCAB, [b, SEQ], (Kind::Int64, Device::Cpu));
        let labels = inputs.index_select(1, &Tensor::from_slice(&PERM));
        let ids = Tensor::randint_low(0, 4, [b], (Kind::Int64, Device::Cpu));
        ActBatch::from_tensors(&inputs, &labels, &ids)
    })
}

fn optimizers(model: &ArchModel, weight_decay: f64) -> Optimizers {
    let params = model.params();
    Optimizers {
        adam: AdamAtan2::new(
            params.trainable(),
            AdamAtan2Config {
                betas: (0.9, 0.95),
                weight_decay,
            },
        )
        .expect("valid optimiser"),
        puzzle: params.puzzle_table().map(|table| PuzzleOptimizer {
            table,
            cfg: SignSgdConfig { weight_decay: 0.0 },
        }),
        parallel: None,
    }
}

fn grad_abs_sum(t: &Tensor) -> f64 {
    let g = t.grad();
    if g.defined() {
        g.abs().sum(Kind::Double).double_value(&[])
    } else {
        0.0
    }
}

#[test]
fn gradient_reaches_every_parameter_and_the_puzzle_rows() {
    for (arch, model_table) in [
        (Arch::Gru, gru_table(40)),
        (Arch::Transformer, transformer_table(40, "rope")),
        (Arch::Transformer, transformer_table(40, "learned")),
    ] {
        let model =
            hrm_train::seeded::with_seed(11, || build_model(arch, &model_table, Device::Cpu))
                .expect("model");
        let batch = permutation_batch(4);
        let (step, out) = direct_loss(direct(&model), &batch, &LossHead::default(), Mode::Train);
        assert_eq!(out.logits.size(), vec![4, SEQ, VOCAB]);
        (step.loss * 0.25).backward();
        let trainable = model.params().trainable();
        assert!(trainable.len() > 3);
        for (name, p) in &trainable {
            let g = grad_abs_sum(p);
            assert!(
                g > 0.0 && g.is_finite(),
                "{}: `{name}` received gradient {g}",
                arch.name()
            );
        }
        let local = out.puzzle_emb_local.expect("a puzzle leaf");
        assert!(grad_abs_sum(&local) > 0.0, "{}: puzzle rows", arch.name());

        // A whole training step moves the weights and the puzzle rows the batch used.
        let before: Vec<Tensor> = model.params().all().iter().map(|(_, t)| t.copy()).collect();
        let mut opt = optimizers(&model, 0.0);
        opt.adam.zero_grad();
        let rates = StepRates {
            lr: 1e-2,
            puzzle_emb_lr: 1e-2,
        };
        direct_train_step(
            direct(&model),
            &batch,
            &LossHead::default(),
            &mut opt,
            rates,
            4,
        )
        .expect("step");
        for ((name, after), before) in model.params().all().iter().zip(&before) {
            let moved = (after - before).abs().max().double_value(&[]);
            assert!(moved > 0.0, "{}: `{name}` did not move", arch.name());
        }
    }
}

/// Trains on fresh random batches of the permutation task and returns the held-out token
/// accuracy.
fn learn_permutation(arch: Arch, model_table: &toml::Table, steps: usize, lr: f64) -> f64 {
    // Models this small gain nothing from intra-op threads, and on a busy machine libtorch's
    // OpenMP threads wait on each other for most of each step: one thread keeps this test at a
    // couple of seconds.
    tch::set_num_threads(1);
    let model = hrm_train::seeded::with_seed(5, || build_model(arch, model_table, Device::Cpu))
        .expect("model");
    let head = LossHead::default();
    let mut opt = optimizers(&model, 0.0);
    for _ in 0..steps {
        let batch = permutation_batch(64);
        let rates = StepRates {
            lr,
            puzzle_emb_lr: 0.0,
        };
        direct_train_step(direct(&model), &batch, &head, &mut opt, rates, 64).expect("step");
    }
    let _guard = tch::no_grad_guard();
    let held_out = permutation_batch(512);
    let (step, _) = direct_loss(direct(&model), &held_out, &head, Mode::Eval);
    let m = step.metrics.to_host();
    m.get("accuracy") / m.get("count")
}

#[test]
fn each_baseline_learns_a_fixed_permutation() {
    // Labels are uniform over the 5 tokens, so the majority token scores about 0.2 and so does
    // copying the input in place (a position's input equals its label 1 time in 5).
    let majority = 0.2;
    let one_layer = table(&format!(
        "seq_len = {SEQ}\nvocab_size = {VOCAB}\nnum_puzzle_identifiers = 1\nhidden_size = 64\n\
         num_layers = 1\n"
    ));
    let gru = learn_permutation(Arch::Gru, &one_layer, 300, 1e-2);
    assert!(
        gru > majority + 0.6,
        "GRU held-out token accuracy {gru} (majority {majority})"
    );
    let transformer = learn_permutation(
        Arch::Transformer,
        &transformer_table(0, "learned"),
        150,
        3e-3,
    );
    assert!(
        transformer > majority + 0.6,
        "Transformer held-out token accuracy {transformer} (majority {majority})"
    );
}

#[test]
fn foreign_keys_and_unknown_archs_are_errors_listing_the_choices() {
    // HRM's cycles in a GRU table: the message names the architecture, the key and the valid
    // keys.
    let mut t = gru_table(0);
    t.insert("H_cycles".into(), toml::Value::Integer(2));
    let msg = build_model(Arch::Gru, &t, Device::Cpu)
        .expect_err("H_cycles is not a GRU key")
        .to_string();
    assert!(
        msg.contains("arch `gru`") && msg.contains("H_cycles") && msg.contains("num_layers"),
        "{msg}"
    );
    let mut t = transformer_table(0, "rope");
    t.insert("halt_max_steps".into(), toml::Value::Integer(4));
    let msg = build_model(Arch::Transformer, &t, Device::Cpu)
        .expect_err("no ACT in the Transformer")
        .to_string();
    assert!(
        msg.contains("arch `transformer`") && msg.contains("halt_max_steps"),
        "{msg}"
    );

    // An unknown architecture in a training config lists the valid names.
    let text = "arch = \"lstm\"\ndata_path = \"x\"\nglobal_batch_size = 8\nepochs = 1\nlr = 1e-3\n\
                weight_decay = 0.1\npuzzle_emb_lr = 1e-2\npuzzle_emb_weight_decay = 0.1\n";
    let msg = TrainConfig::from_toml_str(text, &[])
        .expect_err("unknown arch")
        .to_string();
    for name in Arch::ALL.map(Arch::name).into_iter().chain(["lstm"]) {
        assert!(msg.contains(name), "`{name}` missing from: {msg}");
    }

    // Both baselines build from valid tables, as direct models.
    assert!(matches!(
        build_model(Arch::Gru, &gru_table(0), Device::Cpu),
        Ok(ArchModel::Direct(_))
    ));
    assert!(matches!(
        build_model(
            Arch::Transformer,
            &transformer_table(0, "none"),
            Device::Cpu
        ),
        Ok(ArchModel::Direct(_))
    ));
}
