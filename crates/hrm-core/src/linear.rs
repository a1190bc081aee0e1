//! Cast-on-use linear and embedding layers, as `CastedLinear` and `CastedEmbedding` in the
//! reference's `models/layers.py`.
//!
//! Parameters are stored in float32; each forward casts them to the dtype of its input (the
//! forward dtype), so bfloat16 runs keep float32 master weights without a separate copy.
//! Initialisation is the truncated normal of [`crate::init`]: `1/sqrt(in_features)` for linear
//! weights, a caller-chosen std for embeddings; biases start at zero.

use tch::{nn, Device, Kind, Tensor};

use crate::init::trunc_normal;

/// `y = x W^T (+ b)` with `W: [out, in]` stored in float32 and cast to `x`'s dtype.
#[derive(Debug)]
pub struct CastedLinear {
    /// `[out_features, in_features]`.
    pub weight: Tensor,
    /// `[out_features]`, when the layer has a bias.
    pub bias: Option<Tensor>,
}

impl CastedLinear {
    /// Creates `p/weight` (and `p/bias`) initialised as the reference does.
    pub fn new(p: nn::Path, in_features: i64, out_features: i64, bias: bool) -> Self {
        let std = 1.0 / (in_features as f64).sqrt();
        let weight = p.add(
            "weight",
            trunc_normal(&[out_features, in_features], std, p.device()),
            true,
        );
        let bias = bias.then(|| {
            p.add(
                "bias",
                Tensor::zeros([out_features], (Kind::Float, p.device())),
                true,
            )
        });
        CastedLinear { weight, bias }
    }

    /// # Shapes
    /// `x: [..., in]` -> `[..., out]`, in `x`'s dtype.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let w = self.weight.to_kind(kind);
        let b = self.bias.as_ref().map(|b| b.to_kind(kind));
        if use_onednn_conv(x) {
            return linear_as_conv(x, &w, b.as_ref());
        }
        x.linear(&w, b.as_ref())
    }
}

/// Whether [`CastedLinear::forward`] takes the 1x1-convolution path: `[b, s, in]` activations
/// in float32 or bfloat16 on an x86-64 CPU.
///
/// Why: on x86 CPUs libtorch's dense `mm` calls MKL, which runs its AVX2 kernels on AMD
/// processors, while its convolutions run through oneDNN, which uses AVX-512 wherever the CPU
/// has it. A 1x1 convolution over channels-last activations is the same product, and measured
/// about twice as fast here (forward and backward), with float32 accumulation as in `mm`. On
/// CUDA, `linear` (cuBLAS) stays the fast path.
fn use_onednn_conv(x: &Tensor) -> bool {
    cfg!(target_arch = "x86_64")
        && conv_enabled()
        && x.device() == Device::Cpu
        && x.dim() == 3
        && matches!(x.kind(), Kind::Float | Kind::BFloat16)
}

/// Whether the convolution path is allowed: `HRM_CPU_LINEAR=blas` in the environment turns it
/// off (read once per process). With it off, CPU forward passes reproduce the reference's
/// float32 numbers bit for bit (same libtorch kernels in the same order); with it on they
/// differ by float32 rounding, well inside the golden tolerances (about half of the forward
/// tolerance at worst on the shipped cases), and train about 1.6x faster.
fn conv_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("HRM_CPU_LINEAR").map_or(true, |v| v != "blas"))
}

/// `x W^T (+ b)` as a 1x1 convolution: the batch is the convolution's batch, the sequence its
/// height, the features its channels. libtorch sends a large-enough convolution (a batch of 16
/// or more, or more than one thread) to oneDNN and smaller ones to its generic kernel; both
/// give the linear layer's result.
///
/// # Shapes
/// `x: [b, s, in]`, `w: [out, in]`, `bias: [out]` -> `[b, s, out]`, contiguous.
fn linear_as_conv(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Tensor {
    let (out, inp) = w.size2().unwrap_or_default();
    // [b, s, in] -> [b, in, s, 1]: an NCHW view whose memory is channels-last (NHWC), so no copy.
    let images = x.unsqueeze(2).permute([0, 3, 1, 2]);
    let y = images.conv2d(&w.view([out, inp, 1, 1]), bias, [1, 1], [0, 0], [1, 1], 1);
    // [b, out, s, 1], channels-last -> [b, s, out]; contiguous unless a kernel chose NCHW.
    y.permute([0, 2, 3, 1]).squeeze_dim(2).contiguous()
}

/// A lookup table `[num_embeddings, dim]` in float32, returned in the forward dtype.
#[derive(Debug)]
pub struct CastedEmbedding {
    /// `[num_embeddings, dim]`; named `embedding_weight` as in the reference.
    pub embedding_weight: Tensor,
}

impl CastedEmbedding {
    /// Creates `p/embedding_weight` with a truncated normal of standard deviation `init_std`.
    pub fn new(p: nn::Path, num_embeddings: i64, dim: i64, init_std: f64) -> Self {
        let w = trunc_normal(&[num_embeddings, dim], init_std, p.device());
        CastedEmbedding {
            embedding_weight: p.add("embedding_weight", w, true),
        }
    }

    /// # Shapes
    /// `ids: [...]` (int) -> `[..., dim]` in `kind`.
    pub fn forward(&self, ids: &Tensor, kind: Kind) -> Tensor {
        Tensor::embedding(&self.embedding_weight.to_kind(kind), ids, -1, false, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_matches_explicit_product_and_casts() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let lin = CastedLinear::new(vs.root() / "lin", 3, 2, true);
        tch::no_grad(|| {
            lin.weight
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[1.0f32, 2., 3., 4., 5., 6.]).view([2, 3]));
            let bias = lin.bias.as_ref().expect("bias");
            bias.shallow_clone()
                .copy_(&Tensor::from_slice(&[0.5f32, -0.5]));
        });
        let x = Tensor::from_slice(&[1.0f32, 0., -1.]).view([1, 3]);
        let y = lin.forward(&x);
        assert_eq!(
            Vec::<f32>::try_from(y.view([-1])).expect("f32"),
            vec![-1.5, -2.5]
        );
        let y16 = lin.forward(&x.to_kind(Kind::BFloat16));
        assert_eq!(y16.kind(), Kind::BFloat16);
        assert_eq!(vs.variables().len(), 2);
        assert!(vs.variables().contains_key("lin.weight"));
    }

    #[test]
    fn the_convolution_path_matches_linear_with_gradients() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let lin = CastedLinear::new(vs.root() / "lin", 48, 40, true);
        // Batch 20 takes oneDNN, batch 3 (single-threaded) libtorch's generic convolution.
        for b in [20, 3] {
            let x =
                Tensor::randn([b, 7, 48], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
            let fast = lin.forward(&x);
            assert!(fast.is_contiguous());
            let slow = x.linear(&lin.weight, lin.bias.as_ref());
            let diff = (&fast - &slow).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "batch {b}: forward differs by {diff}");
            let g_fast =
                Tensor::run_backward(&[fast.sum(Kind::Float)], &[&x, &lin.weight], false, false);
            let g_slow =
                Tensor::run_backward(&[slow.sum(Kind::Float)], &[&x, &lin.weight], false, false);
            for (a, e) in g_fast.iter().zip(&g_slow) {
                let diff = (a - e).abs().max().double_value(&[]);
                assert!(diff < 1e-4, "batch {b}: gradient differs by {diff}");
            }
        }
    }
}
