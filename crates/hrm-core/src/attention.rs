//! Non-causal multi-head self-attention, as `Attention` in the reference's `models/layers.py`.
//!
//! One fused projection `qkv = x W_qkv^T` with `3*nh*d` features, read as `[3*nh, d]`: slots
//! `0..nh` are the query heads, `nh..2nh` the keys, `2nh..3nh` the values. RoPE (when used)
//! rotates queries and keys; every position attends to every position (no mask). The reference
//! calls flash-attention; we call libtorch's scaled-dot-product attention, which picks a fused
//! kernel for the device and dtype, except for bfloat16 on CPUs with AVX512-BF16, where our own
//! kernels (`crate::fused::attention_bf16`) are two to three times faster at HRM's shapes.
//! [`explicit_attention`] is the slow, obvious version the tests compare against.

use tch::{nn, Kind, Tensor};

use crate::linear::CastedLinear;
use crate::rope::Rope;

/// Self-attention with a fused QKV projection and no biases.
#[derive(Debug)]
pub struct Attention {
    /// `[3*nh*d, H]`.
    pub qkv_proj: CastedLinear,
    /// `[H, nh*d]`.
    pub o_proj: CastedLinear,
    num_heads: i64,
    head_dim: i64,
}

impl Attention {
    /// Creates `p/qkv_proj` and `p/o_proj` for `num_heads` heads of `head_dim`.
    pub fn new(p: nn::Path, hidden_size: i64, head_dim: i64, num_heads: i64) -> Self {
        let inner = num_heads * head_dim;
        Attention {
            qkv_proj: CastedLinear::new(&p / "qkv_proj", hidden_size, 3 * inner, false),
            o_proj: CastedLinear::new(&p / "o_proj", inner, hidden_size, false),
            num_heads,
            head_dim,
        }
    }

    /// # Shapes
    /// `x: [b, s, H]` -> `[b, s, H]`.
    pub fn forward(&self, x: &Tensor, rope: Option<&Rope>) -> Tensor {
        let (qk, v) = self.project(x, rope);
        self.o_proj.forward(&attention_core(&qk, &v))
    }

    /// The same result through an explicit `softmax(q k^T / sqrt(d)) v`, for tests.
    ///
    /// # Shapes
    /// `x: [b, s, H]` -> `[b, s, H]`.
    pub fn forward_explicit(&self, x: &Tensor, rope: Option<&Rope>) -> Tensor {
        let (qk, v) = self.project(x, rope);
        let (q, k) = split_qk(&qk, self.num_heads);
        let out = explicit_attention(&q.transpose(1, 2), &k.transpose(1, 2), &v.transpose(1, 2));
        self.o_proj.forward(&merge_heads(&out))
    }

    /// `(qk, v)`: queries and keys `[b, s, 2*nh, d]` with RoPE applied, values `[b, s, nh, d]`.
    fn project(&self, x: &Tensor, rope: Option<&Rope>) -> (Tensor, Tensor) {
        let size = x.size();
        let (b, s) = (size[0], size[1]);
        let nh = self.num_heads;
        let qkv = self.qkv_proj.forward(x).view([b, s, 3 * nh, self.head_dim]);
        // Speed: queries and keys are adjacent head slots, so one RoPE call rotates both (half
        // the kernel launches and temporaries of rotating each). `split` rather than `narrow`:
        // its backward writes the parts' gradients into one new tensor instead of filling a
        // zeroed full-size tensor per part and adding them up.
        let qk_v = qkv.split_with_sizes([2 * nh, nh], 2);
        let qk = match rope {
            Some(rope) => rope.apply(&qk_v[0]),
            None => qk_v[0].shallow_clone(),
        };
        (qk, qk_v[1].shallow_clone())
    }
}

/// `(q, k)`, each `[b, s, nh, d]`, from `qk: [b, s, 2*nh, d]`.
fn split_qk(qk: &Tensor, num_heads: i64) -> (Tensor, Tensor) {
    let q_k = qk.split(num_heads, 2);
    (q_k[0].shallow_clone(), q_k[1].shallow_clone())
}

/// `[b, nh, s, d]` -> `[b, s, nh*d]`.
fn merge_heads(out: &Tensor) -> Tensor {
    let size = out.size();
    out.transpose(1, 2)
        .reshape([size[0], size[2], size[1] * size[3]])
}

/// The attention core as [`Attention::forward`] runs it: non-causal
/// `softmax(q k^T / sqrt(d)) v` with the heads merged, on the fastest route for the device and
/// dtype (public so that benches and users can time or reuse the core without the
/// projections):
/// - bfloat16 on a CPU with AVX512-BF16: this crate's own kernels and their backward
///   (`cpp/attention.cpp`), unless `HRM_FUSED=off`;
/// - bfloat16 on other CPUs, recording a graph: libtorch's float32 flash kernel on float32
///   copies (its bfloat16 backward is 2-2.7x slower at HRM's shapes), rounded back;
/// - otherwise libtorch's SDPA (float32 on CUDA through its math backend, for exactness).
///
/// # Shapes
/// `qk: [b, s, 2*nh, d]` (queries in head slots `0..nh`, keys in `nh..2nh`, as the fused QKV
/// projection lays them out), `v: [b, s, nh, d]` -> `[b, s, nh*d]` in `v`'s dtype.
///
/// # Panics
/// With a message naming both shapes, where they are not the ones above.
pub fn attention_core(qk: &Tensor, v: &Tensor) -> Tensor {
    let (qk_size, size) = (qk.size(), v.size());
    assert!(
        qk_size.len() == 4
            && size.len() == 4
            && qk_size[0] == size[0]
            && qk_size[1] == size[1]
            && qk_size[2] == 2 * size[2]
            && qk_size[3] == size[3],
        "attention_core: qk must be [b, s, 2*nh, d] and v [b, s, nh, d]; got {qk_size:?} and {size:?}"
    );
    let (b, s, nh, d) = (size[0], size[1], size[2], size[3]);
    match crate::fused::attention_bf16(qk, v, 1.0 / (d as f64).sqrt()) {
        // [b, s, nh, d] contiguous -> [b, s, nh*d] without a copy.
        Some(out) => out.view([b, s, nh * d]),
        None => libtorch_core(qk, v),
    }
}

/// [`attention_core`] through libtorch's SDPA: the route where this crate's own kernels do not
/// run.
///
/// # Shapes
/// `qk: [b, s, 2*nh, d]`, `v: [b, s, nh, d]` -> `[b, s, nh*d]`.
fn libtorch_core(qk: &Tensor, v: &Tensor) -> Tensor {
    let (q, k) = split_qk(qk, v.size()[2]);
    // [b, s, nh, d] -> [b, nh, s, d] for SDPA.
    let (q, k, v) = (q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2));
    let out = if needs_f32_core(&q) {
        // Speed: libtorch's CPU flash-attention backward is 2-2.7x slower in bfloat16 than in
        // float32 at HRM's shapes (it converts blocks to float32 and back inside), while the
        // forward is as fast in either. So where our own kernels do not run, a call that
        // records a graph runs the kernel on float32 copies of the bfloat16 q, k, v, and rounds
        // the output back: the same float32 softmax and accumulation, one rounding of the
        // result instead of the bfloat16 kernel's rounding of the probabilities.
        let kind = q.kind();
        sdpa(
            &q.to_kind(Kind::Float),
            &k.to_kind(Kind::Float),
            &v.to_kind(Kind::Float),
        )
        .to_kind(kind)
    } else {
        sdpa(&q, &k, &v)
    };
    merge_heads(&out)
}

/// Libtorch's fused non-causal scaled-dot-product attention without dropout.
///
/// # Shapes
/// `q, k, v: [b, nh, s, d]` -> `[b, nh, s, d]`.
fn sdpa(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    if uses_math_core(q.kind(), q.device(), fused_cuda_f32()) {
        // Exactness: for float32 on CUDA, SDPA picks the memory-efficient kernel. Its result
        // differs from the reference's by a few ulps per call (its own blockwise softmax
        // order; measured on an H200: 1.6e-6 from float64 against the math backend's 1.1e-6),
        // and TRM's deep recursion grows that past the golden float32 tolerance (1.34 of it
        // at eval step 4 of `trm_attn_rope`; 0.18 with this path). The math backend is two
        // IEEE float32 cuBLAS products around a softmax. Its cost, same H200: -5 % train at
        // batch 768, -35 % at batch 32 (launch-bound); bfloat16 keeps the fused kernels.
        return math_sdpa(q, k, v);
    }
    Tensor::scaled_dot_product_attention(q, k, v, None::<Tensor>, 0.0, false, None, false)
}

/// Libtorch's math backend of SDPA (matmul, softmax, matmul), non-causal, no dropout.
///
/// # Shapes
/// `q, k, v: [b, nh, s, d]` -> `[b, nh, s, d]`.
fn math_sdpa(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let (out, _probs) = Tensor::internal_scaled_dot_product_attention_math(
        q,
        k,
        v,
        None::<Tensor>,
        0.0,
        false,
        None::<Tensor>,
        None,
        false,
    );
    out
}

/// Whether attention runs through libtorch's math backend: float32 on CUDA, unless
/// `HRM_CUDA_F32_ATTENTION=fused` asked for the fused kernel (faster, not within the golden
/// float32 tolerance).
fn uses_math_core(kind: Kind, device: tch::Device, fused_requested: bool) -> bool {
    kind == Kind::Float && device.is_cuda() && !fused_requested
}

/// `HRM_CUDA_F32_ATTENTION=fused`, read once.
fn fused_cuda_f32() -> bool {
    static FUSED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FUSED.get_or_init(|| {
        std::env::var("HRM_CUDA_F32_ATTENTION").is_ok_and(|v| v.eq_ignore_ascii_case("fused"))
    })
}

/// Whether the attention core runs on float32 copies: bfloat16 on the CPU, recording a graph.
fn needs_f32_core(q: &Tensor) -> bool {
    q.kind() == Kind::BFloat16 && q.device() == tch::Device::Cpu && q.requires_grad()
}

/// `softmax(q k^T / sqrt(d)) v`, the definition SDPA implements, computed in float32.
///
/// # Shapes
/// `q, k, v: [b, nh, s, d]` -> `[b, nh, s, d]` in `q`'s dtype.
pub fn explicit_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let kind = q.kind();
    let d = q.size()[3] as f64;
    let scores = q
        .to_kind(Kind::Float)
        .matmul(&k.to_kind(Kind::Float).transpose(-2, -1))
        / d.sqrt();
    scores
        .softmax(-1, Kind::Float)
        .matmul(&v.to_kind(Kind::Float))
        .to_kind(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a.to_kind(Kind::Float) - b.to_kind(Kind::Float))
            .abs()
            .max()
            .double_value(&[])
    }

    #[test]
    #[should_panic(expected = "attention_core: qk must be [b, s, 2*nh, d] and v [b, s, nh, d]")]
    fn attention_core_names_mismatched_shapes() {
        let qk = Tensor::zeros([1, 3, 4, 8], (Kind::Float, tch::Device::Cpu));
        let v = Tensor::zeros([1, 3, 3, 8], (Kind::Float, tch::Device::Cpu));
        let _ = attention_core(&qk, &v);
    }

    #[test]
    fn only_float32_on_cuda_takes_the_math_backend_unless_fused_is_asked_for() {
        let cuda = tch::Device::Cuda(0);
        assert!(uses_math_core(Kind::Float, cuda, false));
        assert!(!uses_math_core(Kind::Float, cuda, true));
        assert!(!uses_math_core(Kind::BFloat16, cuda, false));
        assert!(!uses_math_core(Kind::Float, tch::Device::Cpu, false));
    }

    #[test]
    fn the_math_backend_gives_sdpas_output_and_gradients() {
        // The call CUDA float32 makes, run on the CPU against SDPA's fused CPU kernel.
        tch::manual_seed(3);
        let make = || Tensor::randn([2, 4, 11, 8], (Kind::Float, tch::Device::Cpu));
        let (q, k, v) = (make(), make(), make());
        let run = |math: bool| {
            let (q, k, v) = (
                q.copy().set_requires_grad(true),
                k.copy().set_requires_grad(true),
                v.copy().set_requires_grad(true),
            );
            let out = if math {
                math_sdpa(&q, &k, &v)
            } else {
                sdpa(&q, &k, &v)
            };
            (out.square().sum(Kind::Float)).backward();
            (out.detach(), q.grad(), k.grad(), v.grad())
        };
        let (a, b) = (run(true), run(false));
        assert!(max_abs_diff(&a.0, &b.0) < 1e-5);
        assert!(max_abs_diff(&a.1, &b.1) < 1e-4);
        assert!(max_abs_diff(&a.2, &b.2) < 1e-4);
        assert!(max_abs_diff(&a.3, &b.3) < 1e-4);
    }

    #[test]
    fn sdpa_matches_explicit_attention_in_f32() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let attn = Attention::new(vs.root() / "attn", 64, 16, 4);
        let rope = Rope::new(16, 10, 10000.0, tch::Device::Cpu);
        let x = Tensor::randn([3, 10, 64], (Kind::Float, tch::Device::Cpu));
        let fast = attn.forward(&x, Some(&rope));
        let slow = attn.forward_explicit(&x, Some(&rope));
        assert_eq!(fast.size(), vec![3, 10, 64]);
        assert!(
            max_abs_diff(&fast, &slow) < 1e-5,
            "{}",
            max_abs_diff(&fast, &slow)
        );
    }

    #[test]
    fn libtorch_route_matches_explicit_attention_in_bf16_with_and_without_a_graph() {
        // The route CPUs without AVX512-BF16 (and `HRM_FUSED=off`) take, tested on every host.
        tch::manual_seed(4);
        let (nh, d) = (2i64, 8i64);
        let qkv = Tensor::randn([2, 7, 3 * nh, d], (Kind::Float, tch::Device::Cpu))
            .to_kind(Kind::BFloat16);
        let explicit = |qkv: &Tensor| {
            let p = qkv.split(nh, 2);
            let t = |x: &Tensor| x.transpose(1, 2);
            explicit_attention(&t(&p[0]), &t(&p[1]), &t(&p[2]))
                .transpose(1, 2)
                .reshape([2, 7, nh * d])
        };
        let want = explicit(&qkv.to_kind(Kind::Float));
        let parts = qkv.split_with_sizes([2 * nh, nh], 2);
        let no_graph = tch::no_grad(|| libtorch_core(&parts[0], &parts[1]));
        assert_eq!(no_graph.kind(), Kind::BFloat16);
        assert!(max_abs_diff(&no_graph, &want) < 5e-2);
        // Recording a graph: the float32 core on copies, gradients as float32 attention's.
        let x = qkv.detach().set_requires_grad(true);
        let p = x.split_with_sizes([2 * nh, nh], 2);
        let out = libtorch_core(&p[0], &p[1]);
        assert_eq!(out.kind(), Kind::BFloat16);
        assert!(max_abs_diff(&out, &want) < 5e-2);
        out.to_kind(Kind::Float).sum(Kind::Float).backward();
        let x32 = qkv.to_kind(Kind::Float).set_requires_grad(true);
        explicit(&x32).sum(Kind::Float).backward();
        assert!(max_abs_diff(&x.grad(), &x32.grad()) < 5e-2);
    }

    #[test]
    fn sdpa_matches_explicit_attention_in_bf16_within_bf16_precision() {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let attn = Attention::new(vs.root() / "attn", 32, 8, 4);
        let x = Tensor::randn([2, 7, 32], (Kind::Float, tch::Device::Cpu)).to_kind(Kind::BFloat16);
        let fast = tch::no_grad(|| attn.forward(&x, None));
        let slow = tch::no_grad(|| attn.forward_explicit(&x, None));
        assert_eq!(fast.kind(), Kind::BFloat16);
        assert!(
            max_abs_diff(&fast, &slow) < 5e-2,
            "{}",
            max_abs_diff(&fast, &slow)
        );
        // Recording a graph (our kernels' backward, or the float32 core on copies where they do
        // not run): the same result within bf16 precision, a bf16 output, and gradients that
        // reach the input.
        let xg = x.detach().set_requires_grad(true);
        let with_graph = attn.forward(&xg, None);
        assert_eq!(with_graph.kind(), Kind::BFloat16);
        assert!(max_abs_diff(&with_graph, &slow) < 5e-2);
        with_graph.to_kind(Kind::Float).sum(Kind::Float).backward();
        assert_eq!(xg.grad().kind(), Kind::BFloat16);
        assert!(xg.grad().abs().max().double_value(&[]) > 0.0);
    }
}
