//! Self-attention of one block (fused QKV projection, RoPE, the attention core, output
//! projection), and the attention core alone (`hrm_core::attention::attention_core` on the
//! block's QKV projection of its input): the forward under `no_grad`, and forward plus backward,
//! as in the 1-step gradient of training.

use criterion::{criterion_group, Criterion};

use hrm_benches::{presets, Components, Target};
use hrm_core::attention::attention_core;

fn bench(c: &mut Criterion) {
    for target in Target::all() {
        for preset in presets() {
            let parts = Components::new(preset, target, 0);
            let mut group = super::group(c, target, "attention", preset);
            super::bench_forward(&mut group, target, &parts.x, |x| {
                parts.block.self_attn.forward(x, Some(&parts.rope))
            });
            super::bench_forward_backward(&mut group, target, &parts.x, |x| {
                parts.block.self_attn.forward(x, Some(&parts.rope))
            });
            group.finish();

            // [b, s, 3*nh, d]: queries, keys and values as the projection lays them out.
            let nh = preset.config().num_heads as i64;
            let qkv = tch::no_grad(|| parts.block.self_attn.qkv_proj.forward(&parts.x));
            let size = qkv.size();
            let qkv = qkv.view([size[0], size[1], 3 * nh, -1]);
            let core = |qkv: &tch::Tensor| {
                let parts = qkv.split_with_sizes([2 * nh, nh], 2);
                attention_core(&parts[0], &parts[1])
            };
            let mut group = super::group(c, target, "attention_core", preset);
            super::bench_forward(&mut group, target, &qkv, core);
            super::bench_forward_backward(&mut group, target, &qkv, core);
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = super::layer_config();
    targets = bench
}
