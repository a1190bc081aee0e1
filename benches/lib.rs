//! Setup shared by the criterion benches in `benchmarks/`: which devices and dtypes run
//! ([`Target`]), which presets ([`presets`]), bench ids, timing that waits for the device, and
//! the layers of one preset with a random input ([`Components`]). Whole-model setup (model,
//! batch, optimisers) is [`hrm_train::bench_setup`], shared with `hrm bench`.
//!
//! Environment: `HRM_BENCH_PRESETS=tiny,small` restricts the presets (default: tiny, small and
//! paper), `HRM_BENCH_DTYPES=f32` the forward dtypes (default: f32 and bf16).

use std::time::{Duration, Instant};

use tch::{nn, Device, Kind, Tensor};

use hrm_core::block::{Block, BlockDims};
use hrm_core::rope::Rope;
use hrm_core::{ForwardDtype, HrmConfig};
pub use hrm_train::bench_setup::{synchronize, BenchPreset, BenchSetup};

/// One device and forward dtype the benches run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Where the model lives.
    pub device: Device,
    /// The forward dtype.
    pub dtype: ForwardDtype,
}

impl Target {
    /// The CPU, plus CUDA device 0 when CUDA is available, each in the dtypes of
    /// [`dtypes`] (float32 and bfloat16 unless `HRM_BENCH_DTYPES` says otherwise).
    pub fn all() -> Vec<Target> {
        // Every bench group starts here: time the layers under the allocator policy the `hrm`
        // binary runs with.
        hrm_train::allocator::keep_freed_memory();
        let mut devices = vec![Device::Cpu];
        if tch::Cuda::is_available() {
            devices.push(Device::Cuda(0));
        }
        devices
            .into_iter()
            .flat_map(|device| {
                dtypes()
                    .into_iter()
                    .map(move |dtype| Target { device, dtype })
            })
            .collect()
    }

    /// `cpu` or `cuda`.
    pub fn device_name(&self) -> &'static str {
        if self.device.is_cuda() {
            "cuda"
        } else {
            "cpu"
        }
    }

    /// The criterion group name `{device}_{component}_{preset}_{dtype}`, e.g.
    /// `cpu_train_step_small_f32`.
    pub fn group(&self, component: &str, preset: BenchPreset) -> String {
        format!(
            "{}_{component}_{preset}_{}",
            self.device_name(),
            self.dtype.short_name()
        )
    }

    /// Wall time of `iters` calls of `f`, the device drained before the clock starts and
    /// before it is read (kernels run asynchronously on CUDA).
    pub fn time(&self, iters: u64, mut f: impl FnMut()) -> Duration {
        synchronize(self.device);
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        synchronize(self.device);
        start.elapsed()
    }
}

/// The forward dtypes to run: `HRM_BENCH_DTYPES` (comma-separated `f32`, `bf16`) or both.
///
/// # Panics
/// On an unknown name in `HRM_BENCH_DTYPES` (a bench setup error, reported at once).
pub fn dtypes() -> Vec<ForwardDtype> {
    match std::env::var("HRM_BENCH_DTYPES") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|name| {
                name.trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("HRM_BENCH_DTYPES: {e}"))
            })
            .collect(),
        _ => vec![ForwardDtype::Float32, ForwardDtype::Bfloat16],
    }
}

/// The presets to run: `HRM_BENCH_PRESETS` (comma-separated names) or all three.
///
/// # Panics
/// On an unknown name in `HRM_BENCH_PRESETS` (a bench setup error, reported at once).
pub fn presets() -> Vec<BenchPreset> {
    match std::env::var("HRM_BENCH_PRESETS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|name| {
                name.trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("HRM_BENCH_PRESETS: {e}"))
            })
            .collect(),
        _ => BenchPreset::ALL.to_vec(),
    }
}

/// One block of a preset (its attention and SwiGLU are benched on their own too), the RoPE
/// tables and a random input `[b, T, H]` of the preset's batch size in the target's dtype.
#[derive(Debug)]
pub struct Components {
    /// A randomly initialised block (`self_attn`, `mlp`).
    pub block: Block,
    /// RoPE tables for the `T` positions.
    pub rope: Rope,
    /// `[b, T, H]`, unit-RMS like the states a block sees.
    pub x: Tensor,
    /// The block's variables (kept alive with it).
    _vs: nn::VarStore,
}

impl Components {
    /// Builds the block of `preset` on `target` from `seed`.
    pub fn new(preset: BenchPreset, target: Target, seed: i64) -> Self {
        let cfg: HrmConfig = preset.config();
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(target.device);
        let block = Block::new(
            vs.root() / "block",
            BlockDims {
                hidden_size: cfg.hidden_size as i64,
                num_heads: cfg.num_heads as i64,
                expansion: cfg.expansion,
                rms_norm_eps: cfg.rms_norm_eps,
            },
        );
        let t = cfg.total_seq_len() as i64;
        let rope = Rope::new(cfg.head_dim() as i64, t, cfg.rope_theta, target.device);
        let x = Tensor::randn(
            [preset.batch_size(), t, cfg.hidden_size as i64],
            (Kind::Float, target.device),
        )
        .to_kind(target.dtype.kind());
        Components {
            block,
            rope,
            x,
            _vs: vs,
        }
    }
}
