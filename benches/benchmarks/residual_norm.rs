//! The two elementwise steps of a block that hrm-core fuses on the CPU without a graph, each
//! under `no_grad`: the post-norm residual step `rms_norm(sublayer_out + h)`
//! (`residual_rms_norm`) and RoPE on the queries and keys (`rope`). Run with `HRM_FUSED=off`
//! to time libtorch's ops instead.

use criterion::{criterion_group, Criterion};
use hrm_benches::{presets, Components, Target};

/// The reference's epsilon.
const EPS: f64 = 1e-5;

fn bench(c: &mut Criterion) {
    for target in Target::all() {
        for preset in presets() {
            let parts = Components::new(preset, target, 0);
            let mut group = super::group(c, target, "fusable", preset);
            // A fresh sublayer output per call: the unfused path writes the sum into it.
            let sublayer_out = &parts.x * 0.5;
            super::bench_forward(&mut group, target, &parts.x, |x| {
                hrm_core::block::residual_rms_norm(sublayer_out.copy(), x, EPS)
            });
            // Queries and keys as the attention hands them over: a view of the QKV projection.
            let qkv = tch::no_grad(|| parts.block.self_attn.qkv_proj.forward(&parts.x));
            let cfg = preset.config();
            let (heads, head_dim) = (cfg.num_heads as i64, cfg.head_dim() as i64);
            let size = parts.x.size(); // [b, T, H]
            let qkv = qkv.view([size[0], size[1], 3 * heads, head_dim]);
            let qk = qkv.narrow(2, 0, 2 * heads);
            group.bench_function("rope", |b| {
                let _guard = tch::no_grad_guard();
                b.iter_custom(|iters| {
                    target.time(iters, || drop(std::hint::black_box(parts.rope.apply(&qk))))
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
