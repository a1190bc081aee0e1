//! One full training step ([`hrm_train::train_step::act_train_step`]: the ACT call with its
//! Q-target pass, the loss, the backward pass, sign-SGD and AdamATan2), and the same step
//! without the optimisers (the work compared with the reference, whose AdamATan2 is
//! CUDA-only). Each iteration continues from the previous step's carry, as training does.

use criterion::{criterion_group, Criterion};

use hrm_benches::{presets, BenchSetup, Target};

fn bench(c: &mut Criterion) {
    for target in Target::all() {
        for preset in presets() {
            let mut setup =
                BenchSetup::new(preset, target.dtype, target.device, 0).expect("bench model");
            let mut group = super::slow_group(c, target, "train_step", preset);
            group.bench_function("step", |b| {
                b.iter_custom(|iters| {
                    target.time(iters, || setup.train_step().expect("training step"))
                })
            });
            group.bench_function("step_no_optim", |b| {
                b.iter_custom(|iters| target.time(iters, || setup.train_step_no_optim()))
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
