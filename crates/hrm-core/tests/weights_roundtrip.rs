//! Weights move between models (and the reference) as safetensors under the reference's names;
//! a missing, extra or wrongly shaped tensor is an error naming it.

use hrm_core::weights::{read_safetensors, write_safetensors};
use hrm_core::{CoreError, CoreInput, Hrm, HrmConfig, Mode, RecurrentCore};
use tch::{Device, Kind, Tensor};

fn config() -> HrmConfig {
    let mut cfg = HrmConfig::tiny();
    cfg.hidden_size = 32;
    cfg.num_heads = 2;
    cfg.h_layers = 1;
    cfg.l_layers = 1;
    cfg.seq_len = 9;
    cfg.puzzle_emb_ndim = 40;
    cfg.num_puzzle_identifiers = 5;
    cfg
}

fn logits(model: &Hrm) -> Tensor {
    let input = CoreInput::from_host(
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 3, 3, 3, 1, 1, 1, 2, 2, 2],
        &[1, 4],
        &model.dims(),
        Device::Cpu,
    )
    .expect("valid input");
    let carry = model.reset_carry(&Tensor::from_slice(&[true, true]), &model.empty_carry(2));
    tch::no_grad(|| model.forward(&carry, &input, Mode::Eval)).logits
}

#[test]
fn save_then_load_reproduces_the_model_and_accepts_reference_prefixes() {
    let dir = tempfile::tempdir().expect("tempdir");
    tch::manual_seed(1);
    let a = Hrm::new(&config(), Device::Cpu).expect("model a");
    // Make the zero-initialised puzzle table non-trivial so the check covers it.
    tch::no_grad(|| {
        let table = a.params().puzzle_table().expect("table");
        table
            .shallow_clone()
            .copy_(&Tensor::randn(table.size(), (Kind::Float, Device::Cpu)));
    });
    tch::manual_seed(2);
    let b = Hrm::new(&config(), Device::Cpu).expect("model b");
    assert!(!logits(&a).allclose(&logits(&b), 1e-6, 1e-6, false));

    let ours = dir.path().join("ours.safetensors");
    a.params().save_safetensors(&ours, "").expect("save");
    b.params().load_safetensors(&ours).expect("load");
    assert!(logits(&a).equal(&logits(&b)));

    // The reference's torch.compile + loss-head prefixes.
    let theirs = dir.path().join("reference.safetensors");
    a.params()
        .save_safetensors(&theirs, "_orig_mod.model.")
        .expect("save with prefix");
    let names: Vec<String> = read_safetensors(&theirs)
        .expect("read")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names
        .contains(&"_orig_mod.model.inner.H_level.layers.0.self_attn.qkv_proj.weight".to_string()));
    assert!(names.contains(&"_orig_mod.model.inner.puzzle_emb.weights".to_string()));
    tch::manual_seed(3);
    let c = Hrm::new(&config(), Device::Cpu).expect("model c");
    c.params()
        .load_safetensors(&theirs)
        .expect("load reference names");
    assert!(logits(&a).equal(&logits(&c)));
}

#[test]
fn missing_extra_and_misshapen_tensors_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = Hrm::new(&config(), Device::Cpu).expect("model");
    let all = model.params().all();
    let path = dir.path().join("w.safetensors");

    let without: Vec<(String, Tensor)> = all
        .iter()
        .filter(|(n, _)| n != "inner.L_init")
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    write_safetensors(&path, &without).expect("write");
    match model.params().load_safetensors(&path) {
        Err(CoreError::MissingTensor { name, .. }) => assert_eq!(name, "inner.L_init"),
        other => panic!("expected MissingTensor, got {other:?}"),
    }

    let mut extra: Vec<(String, Tensor)> = all
        .iter()
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    extra.push((
        "inner.not_a_parameter".into(),
        Tensor::zeros([2], (Kind::Float, Device::Cpu)),
    ));
    write_safetensors(&path, &extra).expect("write");
    match model.params().load_safetensors(&path) {
        Err(CoreError::UnexpectedTensors { names, .. }) => {
            assert_eq!(names, vec!["inner.not_a_parameter".to_string()])
        }
        other => panic!("expected UnexpectedTensors, got {other:?}"),
    }

    let misshapen: Vec<(String, Tensor)> = all
        .iter()
        .map(|(n, t)| {
            if n == "inner.lm_head.weight" {
                (n.clone(), Tensor::zeros([3, 3], (Kind::Float, Device::Cpu)))
            } else {
                (n.clone(), t.shallow_clone())
            }
        })
        .collect();
    write_safetensors(&path, &misshapen).expect("write");
    match model.params().load_safetensors(&path) {
        Err(CoreError::Shape {
            name,
            expected,
            found,
        }) => {
            assert_eq!(name, "inner.lm_head.weight");
            assert_eq!(found, vec![3, 3]);
            assert_eq!(expected, vec![11, 32]);
        }
        other => panic!("expected Shape, got {other:?}"),
    }
}

#[test]
fn bf16_forward_keeps_f32_parameters_and_trains() {
    let mut cfg = config();
    cfg.forward_dtype = hrm_core::ForwardDtype::Bfloat16;
    let model = Hrm::new(&cfg, Device::Cpu).expect("model");
    let input = CoreInput::from_host(&[2; 18], &[0, 3], &model.dims(), Device::Cpu).expect("input");
    let carry = model.reset_carry(&Tensor::from_slice(&[true, true]), &model.empty_carry(2));
    let out = model.forward(&carry, &input, Mode::Train);
    assert_eq!(out.logits.kind(), Kind::BFloat16);
    assert_eq!(out.q_halt.kind(), Kind::Float);
    assert_eq!(out.carry.z_h.kind(), Kind::BFloat16);
    out.logits.to_kind(Kind::Float).sum(Kind::Float).backward();
    for (name, p) in model.params().trainable() {
        assert_eq!(p.kind(), Kind::Float, "{name}");
        if name != "inner.q_head.weight" && name != "inner.q_head.bias" {
            assert!(p.grad().defined(), "{name} has no gradient");
        }
    }
    assert!(out
        .puzzle_emb_local
        .expect("local puzzle rows")
        .grad()
        .defined());
}
