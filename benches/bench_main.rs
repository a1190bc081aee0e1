//! Criterion benches of HRM: attention, SwiGLU, RMSNorm, the residual norm and RoPE (the
//! steps hrm-core fuses on the CPU; `HRM_FUSED=off` times libtorch's ops) and one block per
//! preset, a full training step and a full evaluation rollout, in float32 and bfloat16 on the
//! CPU and, when CUDA is available, on the GPU. Group names are
//! `{device}_{component}_{preset}_{dtype}` (for example `cpu_train_step_small_f32/step`);
//! throughput is rows (puzzles) per second.
//!
//! `cargo bench -p hrm-benches` (or `cargo xtask bench`) runs everything, a few minutes per
//! preset on a small CPU; filter with a regex (`cargo bench -p hrm-benches -- small`) or
//! restrict the presets with `HRM_BENCH_PRESETS=tiny,small` and the dtypes with
//! `HRM_BENCH_DTYPES=f32`.

mod benchmarks;

criterion::criterion_main!(
    benchmarks::attention::benches,
    benchmarks::swiglu::benches,
    benchmarks::rms_norm::benches,
    benchmarks::residual_norm::benches,
    benchmarks::block::benches,
    benchmarks::train_step::benches,
    benchmarks::eval_rollout::benches,
);
