//! Self-attention of one block (fused QKV projection, RoPE, SDPA, output projection), forward
//! under `no_grad`.

use criterion::{criterion_group, Criterion};

use hrm_benches::{presets, Components, Target};

fn bench(c: &mut Criterion) {
    for target in Target::all() {
        for preset in presets() {
            let parts = Components::new(preset, target, 0);
            let mut group = super::group(c, target, "attention", preset);
            super::bench_forward(&mut group, target, &parts.x, |x| {
                parts.block.self_attn.forward(x, Some(&parts.rope))
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
