//! Self-attention of one block (fused QKV projection, RoPE, SDPA, output projection), forward
//! under `no_grad`.

use std::hint::black_box;

use criterion::{criterion_group, Criterion};

use hrm_benches::{presets, Components, Target};

fn bench(c: &mut Criterion) {
    for target in Target::all() {
        for preset in presets() {
            let parts = Components::new(preset, target, 0);
            let mut group = super::group(c, target, "attention", preset);
            group.bench_function("forward", |b| {
                let _guard = tch::no_grad_guard();
                b.iter_custom(|iters| {
                    target.time(iters, || {
                        let x = black_box(&parts.x);
                        drop(black_box(
                            parts.block.self_attn.forward(x, Some(&parts.rope)),
                        ));
                    })
                })
            });
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = super::layer_config();
    targets = bench
}
