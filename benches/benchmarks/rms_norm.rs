//! RMSNorm over the hidden axis of a block's states (`[b, T, H]`): the forward under
//! `no_grad`, as in all but the last cycles and in evaluation, and forward plus backward.

use std::hint::black_box;

use criterion::{criterion_group, Criterion};
use tch::Kind;

use hrm_benches::{presets, Components, Target};

/// The reference's epsilon.
const EPS: f64 = 1e-5;

fn bench(c: &mut Criterion) {
    for target in Target::all() {
        for preset in presets() {
            let parts = Components::new(preset, target, 0);
            let mut group = super::group(c, target, "rms_norm", preset);
            group.bench_function("forward", |b| {
                let _guard = tch::no_grad_guard();
                b.iter_custom(|iters| {
                    target.time(iters, || {
                        drop(black_box(hrm_core::rms_norm(black_box(&parts.x), EPS)));
                    })
                })
            });
            let x = parts.x.detach().set_requires_grad(true);
            group.bench_function("forward_backward", |b| {
                b.iter_custom(|iters| {
                    target.time(iters, || {
                        let y = hrm_core::rms_norm(black_box(&x), EPS);
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
