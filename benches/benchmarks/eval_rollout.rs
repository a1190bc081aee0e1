//! A full evaluation rollout: `halt_max_steps` (16) ACT calls in evaluation mode from a fresh
//! carry, each with the loss head, under `no_grad` ([`hrm_train::bench_setup::BenchSetup::eval_rollout`]).
//! Throughput is puzzles per second.

use std::hint::black_box;

use criterion::{criterion_group, Criterion};

use hrm_benches::{presets, BenchSetup, Target};

fn bench(c: &mut Criterion) {
    for target in Target::all() {
        for preset in presets() {
            let setup =
                BenchSetup::new(preset, target.dtype, target.device, 0).expect("bench model");
            let mut group = super::slow_group(c, target, "eval_rollout", preset);
            group.bench_function("rollout", |b| {
                let _guard = tch::no_grad_guard();
                b.iter_custom(|iters| {
                    target.time(iters, || {
                        drop(black_box(setup.eval_rollout()));
                    })
                })
            });
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = super::slow_config();
    targets = bench
}
