//! The bench modules, one per component, and the criterion settings they share.
//!
//! Layer benches (attention, SwiGLU, RMSNorm, the fusable residual norm and RoPE, block) take
//! a few seconds each; whole-model benches (training step, evaluation rollout) take seconds per
//! iteration on a CPU, so they run [`SLOW_SAMPLES`] samples of one iteration each
//! ([`slow_group`]).

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use tch::{Kind, Tensor};

use hrm_benches::{BenchPreset, Target};

pub mod attention;
pub mod block;
pub mod eval_rollout;
pub mod residual_norm;
pub mod rms_norm;
pub mod swiglu;
pub mod train_step;

/// Samples of the slow groups (criterion's minimum).
pub const SLOW_SAMPLES: usize = 10;

/// Criterion settings of the layer benches: 20 samples in about 3 s after 1 s of warm-up.
pub fn layer_config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// Criterion settings of the whole-model benches: [`SLOW_SAMPLES`] samples, and times so short
/// that criterion runs one warm-up iteration and one iteration per sample (it says so in a
/// warning, which is expected).
pub fn slow_config() -> Criterion {
    Criterion::default()
        .sample_size(SLOW_SAMPLES)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1))
}

/// A group named `{device}_{component}_{preset}_{dtype}` reporting rows per second.
pub fn group<'a>(
    c: &'a mut Criterion,
    target: Target,
    component: &str,
    preset: BenchPreset,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(target.group(component, preset));
    group.throughput(Throughput::Elements(preset.batch_size() as u64));
    group
}

/// [`group`] with flat sampling (the same iteration count in every sample), for benches whose
/// iterations take seconds.
pub fn slow_group<'a>(
    c: &'a mut Criterion,
    target: Target,
    component: &str,
    preset: BenchPreset,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = group(c, target, component, preset);
    group.sampling_mode(SamplingMode::Flat);
    group
}

/// Times `layer` on `x` under `no_grad` as `forward`: every update but the last L and H ones,
/// the Q-target pass and evaluation run so.
pub fn bench_forward(
    group: &mut BenchmarkGroup<'_, WallTime>,
    target: Target,
    x: &Tensor,
    layer: impl Fn(&Tensor) -> Tensor,
) {
    group.bench_function("forward", |b| {
        let _guard = tch::no_grad_guard();
        b.iter_custom(|iters| target.time(iters, || drop(black_box(layer(black_box(x))))))
    });
}

/// Times `layer` and the backward pass of its summed output as `forward_backward`, as in the
/// 1-step gradient of training. The input requires a gradient as the last L update's does
/// (through the input embedding), so the backward computes it as well as the weight gradients.
pub fn bench_forward_backward(
    group: &mut BenchmarkGroup<'_, WallTime>,
    target: Target,
    x: &Tensor,
    layer: impl Fn(&Tensor) -> Tensor,
) {
    let x = x.detach().set_requires_grad(true);
    group.bench_function("forward_backward", |b| {
        b.iter_custom(|iters| {
            target.time(iters, || {
                layer(black_box(&x)).sum(Kind::Float).backward();
            })
        })
    });
}
