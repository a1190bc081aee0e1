//! One post-norm block (attention, SwiGLU, two RMSNorms): the forward under `no_grad`, as in
//! all but the last cycles and in evaluation, and forward plus backward, as in the 1-step
//! gradient of training.

use std::hint::black_box;

use criterion::{criterion_group, Criterion};
use tch::Kind;

use hrm_benches::{presets, Components, Target};

fn bench(c: &mut Criterion) {
    for target in Target::all() {
        for preset in presets() {
            let parts = Components::new(preset, target, 0);
            let mut group = super::group(c, target, "block", preset);
            group.bench_function("forward", |b| {
                let _guard = tch::no_grad_guard();
                b.iter_custom(|iters| {
                    target.time(iters, || {
                        drop(black_box(
                            parts.block.forward(black_box(&parts.x), Some(&parts.rope)),
                        ));
                    })
                })
            });
            // The input requires a gradient as the last L update's does (through the input
            // embedding), so the backward pass computes it as well as the weight gradients.
            let x = parts.x.detach().set_requires_grad(true);
            group.bench_function("forward_backward", |b| {
                b.iter_custom(|iters| {
                    target.time(iters, || {
                        let y = parts.block.forward(black_box(&x), Some(&parts.rope));
                        y.sum(Kind::Float).backward();
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
