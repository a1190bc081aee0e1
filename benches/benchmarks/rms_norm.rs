//! RMSNorm over the hidden axis of a block's states (`[b, T, H]`): the forward under
//! `no_grad`, as in all but the last cycles and in evaluation, and forward plus backward.

use criterion::{criterion_group, Criterion};

use hrm_benches::{presets, Components, Target};

/// The reference's epsilon.
const EPS: f64 = 1e-5;

fn bench(c: &mut Criterion) {
    for target in Target::all() {
        for preset in presets() {
            let parts = Components::new(preset, target, 0);
            let mut group = super::group(c, target, "rms_norm", preset);
            super::bench_forward(&mut group, target, &parts.x, |x| hrm_core::rms_norm(x, EPS));
            super::bench_forward_backward(&mut group, target, &parts.x, |x| {
                hrm_core::rms_norm(x, EPS)
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
