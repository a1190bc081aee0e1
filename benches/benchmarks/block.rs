//! One post-norm block (attention, SwiGLU, two RMSNorms): the forward under `no_grad`, as in
//! all but the last cycles and in evaluation, and forward plus backward, as in the 1-step
//! gradient of training.

use criterion::{criterion_group, Criterion};

use hrm_benches::{presets, Components, Target};

fn bench(c: &mut Criterion) {
    for target in Target::all() {
        for preset in presets() {
            let parts = Components::new(preset, target, 0);
            let mut group = super::group(c, target, "block", preset);
            super::bench_forward(&mut group, target, &parts.x, |x| {
                parts.block.forward(x, Some(&parts.rope))
            });
            super::bench_forward_backward(&mut group, target, &parts.x, |x| {
                parts.block.forward(x, Some(&parts.rope))
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
