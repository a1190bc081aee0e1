//! Fused CPU kernels: for the forward without a graph (`cpp/fused.cpp`), the residual sum with
//! RMSNorm in bfloat16 and RoPE in bfloat16 and float32, each in one pass over memory; and the
//! bfloat16 attention core with its backward (`cpp/attention.cpp`), see [`attention_bf16`].
//!
//! Why: most of an HRM training step is forward work without a graph (every H/L update but the
//! last two, the whole Q-target pass, all of evaluation). libtorch runs the bfloat16 residual
//! sum and RMSNorm as six kernels and RoPE as three or four, each a pass over memory, a
//! temporary and a fork/join of the thread team; the fused kernels take about a half and a
//! third of that time at the small preset's shapes (criterion in `docs/performance.md`).
//! Calls that record a graph keep libtorch's ops, whose backward autograd provides. A fused `silu(gate) * up` was tried
//! and dropped: libtorch's two kernels (with SLEEF's vectorised `exp`) were faster than it.
//!
//! Each function returns `None` where it does not apply (another device or dtype, a tensor
//! that requires grad, an unsupported layout) and the caller runs libtorch's ops instead.
//! `HRM_FUSED=off` turns them all off, to time or compare against libtorch's ops.
//!
//! Numerics: RoPE is the reference's float32 formula (rounded once for bfloat16), bit for bit,
//! which is why it is also used for float32 (the float32 forward stays bit-identical to the
//! reference's with `HRM_CPU_LINEAR=blas`). The residual sum rounds to bfloat16 as libtorch's
//! `add` does and the normalised value is rounded once, as in [`crate::rms_norm()`]; only the
//! float32 sum of squares runs in another order, so an output may differ from libtorch's in
//! the last bfloat16 bit where its float32 value lies next to a rounding boundary.
//!
//! This module, [`crate::cuda_graph`] and `c_status` are the only ones of the crate that use
//! `unsafe`: calling the C functions and handing them tch's raw `at::Tensor*` handles cannot be
//! written without it. The C++ side catches every exception and returns a status with a message
//! (read by `c_status`).

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

use tch::{Device, Kind, Tensor};

use crate::c_status::call_with_status;

extern "C" {
    fn hrm_fused_add_rms_norm_bf16(
        a: *const c_void,
        h: *const c_void,
        out: *mut c_void,
        eps: f64,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
    fn hrm_fused_rope(
        x: *const c_void,
        cos: *const c_void,
        sin_signed: *const c_void,
        out: *mut c_void,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
    fn hrm_fused_attention_available() -> c_int;
    fn hrm_fused_attention_bf16(
        qk: *const c_void,
        v: *const c_void,
        scale: f64,
        out: *mut *mut c_void,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
}

/// Whether the fused kernels are used: on unless `HRM_FUSED` is `off`, `0` or `false` (read
/// once per process).
pub(crate) fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        !matches!(
            std::env::var("HRM_FUSED").as_deref(),
            Ok("off" | "0" | "false")
        )
    })
}

/// Whether the kernels may take `t`: on, a CPU tensor of one of `kinds`, outside any graph.
fn applies(t: &Tensor, kinds: &[Kind]) -> bool {
    enabled() && t.device() == Device::Cpu && kinds.contains(&t.kind()) && !t.requires_grad()
}

/// Runs one kernel and turns its status into `Some(out)`, or `None` after a failure. A failure
/// means the checks here let through something the kernel refused: a bug, so debug builds
/// (the tests) stop on it, while release builds fall back to libtorch's ops.
fn finish(out: Tensor, call: impl FnOnce(*mut c_char, usize) -> c_int) -> Option<Tensor> {
    succeeded(call).then_some(out)
}

/// Runs one C++ entry point with an error buffer: whether it returned 0. A failure is a bug
/// (see [`finish`]): debug builds stop on it with the kernel's message.
fn succeeded(call: impl FnOnce(*mut c_char, usize) -> c_int) -> bool {
    match call_with_status(call) {
        Ok(()) => true,
        Err(message) => {
            debug_assert!(false, "fused kernel refused its input: {message:?}");
            false
        }
    }
}

/// `rms_norm(a + h, eps)` with the sum rounded to bfloat16 first, as `rms_norm(&(a + h))`.
///
/// # Shapes
/// `a, h: [..., n]` contiguous, one shape -> `[..., n]`.
pub(crate) fn add_rms_norm(a: &Tensor, h: &Tensor, eps: f64) -> Option<Tensor> {
    let size = a.size();
    let bf16 = [Kind::BFloat16];
    if size.is_empty()
        || !applies(a, &bf16)
        || !applies(h, &bf16)
        || h.size() != size
        || !a.is_contiguous()
        || !h.is_contiguous()
    {
        return None;
    }
    let mut out = Tensor::empty(size, (Kind::BFloat16, Device::Cpu));
    let (pa, ph, dst) = (
        a.as_ptr().cast::<c_void>(),
        h.as_ptr().cast::<c_void>(),
        out.as_mut_ptr().cast(),
    );
    // Safety: every handle is a live tensor for the whole call; the kernel checks dtype,
    // device, contiguity and shapes again, reads the inputs and writes only into `out`.
    finish(out, |err, len| unsafe {
        hrm_fused_add_rms_norm_bf16(pa, ph, dst, eps, err, len)
    })
}

/// `x * cos + roll(x, d/2) * sin_signed` in float32, rounded once for bfloat16 `x`: the
/// reference's RoPE on float32 or bfloat16 queries and keys, bit for bit.
///
/// # Shapes
/// `x: [b, s, nh, d]` (unit stride along `d`), `cos, sin_signed: [T, d]` float32 contiguous
/// with `T >= s` -> `[b, s, nh, d]` contiguous, in `x`'s dtype.
pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin_signed: &Tensor) -> Option<Tensor> {
    let size = x.size();
    let table = cos.size();
    let fits = size.len() == 4
        && size[3] % 2 == 0
        && x.stride()[3] == 1
        && table.len() == 2
        && table[0] >= size[1]
        && table[1] == size[3]
        && sin_signed.size() == table
        && [cos, sin_signed]
            .iter()
            .all(|t| t.kind() == Kind::Float && t.device() == Device::Cpu && t.is_contiguous());
    if !fits || !applies(x, &[Kind::BFloat16, Kind::Float]) {
        return None;
    }
    let mut out = Tensor::empty(size, (x.kind(), Device::Cpu));
    let (px, pc, ps, dst) = (
        x.as_ptr().cast::<c_void>(),
        cos.as_ptr().cast::<c_void>(),
        sin_signed.as_ptr().cast::<c_void>(),
        out.as_mut_ptr().cast(),
    );
    // Safety: as in `add_rms_norm`.
    finish(out, |err, len| unsafe {
        hrm_fused_rope(px, pc, ps, dst, err, len)
    })
}

/// Whether this build and CPU have the bfloat16 attention kernels (x86-64 with AVX512-BF16).
fn attention_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    // Safety: a query without arguments.
    *AVAILABLE.get_or_init(|| unsafe { hrm_fused_attention_available() } == 1)
}

/// Non-causal `softmax(q k^T / sqrt(d)) v` in bfloat16 on the CPU, with or without a graph:
/// an autograd function whose forward and backward are `cpp/attention.cpp`'s.
///
/// Why: libtorch's bfloat16 flash-attention kernel runs its small per-head products at a
/// fraction of the bfloat16 peak on CPUs without AMX, and its backward is slower than the
/// float32 kernel's. At the small preset's shapes the kernels here take the forward from 3.6
/// to 1.3 ms and forward plus backward from 11.6 (the float32 kernel on float32 copies, the
/// fastest libtorch route) to 5.8 ms (criterion's `attention_core`, `docs/performance.md`).
/// Numerics are libtorch's bfloat16 flash kernel's: float32 scores, softmax and accumulation;
/// the probabilities (and in the backward the score gradients) rounded to bfloat16 where they
/// enter a product.
///
/// `None` where it does not apply: off (`HRM_FUSED=off`), no AVX512-BF16, another device or
/// dtype, or shapes other than below.
///
/// # Shapes
/// `qk: [b, s, 2*nh, d]` (queries in head slots `0..nh`, keys in `nh..2nh`), `v: [b, s, nh, d]`,
/// unit stride along `d`, `d` even -> `[b, s, nh, d]` contiguous bfloat16.
pub(crate) fn attention_bf16(qk: &Tensor, v: &Tensor, scale: f64) -> Option<Tensor> {
    let (size, v_size) = (qk.size(), v.size());
    let fits = size.len() == 4
        && v_size.len() == 4
        && size[0] == v_size[0]
        && size[1] == v_size[1]
        && size[1] > 0
        && size[2] == 2 * v_size[2]
        && size[3] == v_size[3]
        && size[3] % 2 == 0
        && qk.stride()[3] == 1
        && v.stride()[3] == 1;
    let on_cpu_bf16 = [qk, v]
        .iter()
        .all(|t| t.device() == Device::Cpu && t.kind() == Kind::BFloat16);
    if !enabled() || !fits || !on_cpu_bf16 || !attention_available() {
        return None;
    }
    let (pqk, pv) = (qk.as_ptr().cast::<c_void>(), v.as_ptr().cast::<c_void>());
    let mut out: *mut c_void = std::ptr::null_mut();
    // Safety: both handles are live tensors for the whole call; the C++ checks dtype, device
    // and shapes again and, on success only, stores a new `at::Tensor*` that we take over.
    let ok = succeeded(|err, len| unsafe {
        hrm_fused_attention_bf16(pqk, pv, scale, &mut out, err, len)
    });
    // Safety: `out` is a heap `at::Tensor` nobody else owns; tch frees it on drop.
    (ok && !out.is_null()).then(|| unsafe { Tensor::from_ptr(out.cast()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rms_norm::rms_norm;

    fn bf16_randn(size: &[i64], scale: f64) -> Tensor {
        (Tensor::randn(size, (Kind::Float, Device::Cpu)) * scale).to_kind(Kind::BFloat16)
    }

    /// Elements that differ, and the largest difference in bfloat16 steps of the value.
    fn mismatches(got: &Tensor, want: &Tensor) -> (i64, f64) {
        assert_eq!(got.size(), want.size());
        assert_eq!(got.kind(), Kind::BFloat16);
        let (g, w) = (got.to_kind(Kind::Float), want.to_kind(Kind::Float));
        let differ = g.ne_tensor(&w).sum(Kind::Int64).int64_value(&[]);
        let rel = ((&g - &w).abs() / (w.abs() + 1e-30))
            .max()
            .double_value(&[]);
        (differ, rel * 256.0)
    }

    #[test]
    fn add_rms_norm_matches_the_unfused_path() {
        tch::manual_seed(12);
        for size in [vec![4i64, 9, 256], vec![2, 3, 50]] {
            let a = bf16_randn(&size, 2.0);
            let h = bf16_randn(&size, 5.0);
            let fused = add_rms_norm(&a, &h, 1e-5).expect("applies");
            let want = rms_norm(&(&a + &h), 1e-5);
            let (differ, steps) = mismatches(&fused, &want);
            assert!(
                differ * 200 <= want.numel() as i64,
                "{differ} of {}",
                want.numel()
            );
            assert!(steps <= 1.01, "{steps} bfloat16 steps");
        }
    }

    #[test]
    fn rope_is_the_float32_formula_bit_for_bit_rounded_once_for_bf16() {
        tch::manual_seed(13);
        let rope = crate::rope::Rope::new(16, 10, 10000.0, Device::Cpu);
        // Queries and keys as a view into a wider qkv projection, as the attention passes them.
        let qkv = bf16_randn(&[2, 7, 9, 16], 2.0);
        let x = qkv.narrow(2, 0, 6);
        let (cos, sin) = (
            rope.cos.narrow(0, 0, 7).unsqueeze(-2),
            rope.sin.narrow(0, 0, 7).unsqueeze(-2),
        );
        let x32 = x.to_kind(Kind::Float);
        let want = (&x32 * cos + crate::rope::rotate_half(&x32) * sin).to_kind(Kind::BFloat16);
        let got = tch::no_grad(|| rope.apply(&x));
        assert!(got.equal(&want));
        // Float32, also as a strided view: the formula itself, through the fused kernel.
        let x32 = qkv.to_kind(Kind::Float).narrow(2, 0, 6);
        assert!(super::rope(&x32, &rope.cos, &rope.sin).is_some());
        let want32 = &x32 * rope.cos.narrow(0, 0, 7).unsqueeze(-2)
            + crate::rope::rotate_half(&x32) * rope.sin.narrow(0, 0, 7).unsqueeze(-2);
        assert!(rope.apply(&x32).equal(&want32));
    }

    #[test]
    fn tensors_with_a_graph_or_of_another_dtype_are_left_to_libtorch() {
        let a = Tensor::ones([2, 8], (Kind::Float, Device::Cpu));
        // float32 norms stay with libtorch (bit for bit the reference's).
        assert!(add_rms_norm(&a, &a, 1e-5).is_none());
        let b = a.to_kind(Kind::BFloat16);
        assert!(add_rms_norm(&b, &b, 1e-5).is_some());
        let graph = b.detach().set_requires_grad(true);
        assert!(add_rms_norm(&graph, &b, 1e-5).is_none());
        let strided = Tensor::ones([8, 2], (Kind::BFloat16, Device::Cpu)).t_();
        assert!(add_rms_norm(&strided, &b, 1e-5).is_none());
        let other_shape = Tensor::ones([2, 4], (Kind::BFloat16, Device::Cpu));
        assert!(add_rms_norm(&b, &other_shape, 1e-5).is_none());
        let tables = crate::rope::Rope::new(8, 4, 10000.0, Device::Cpu);
        let (cos, sin) = (&tables.cos, &tables.sin);
        let x = Tensor::ones([1, 4, 2, 8], (Kind::BFloat16, Device::Cpu));
        assert!(rope(&x, cos, sin).is_some());
        assert!(rope(&x.set_requires_grad(true), cos, sin).is_none());
        // Too few table rows for the sequence.
        let long = Tensor::ones([1, 5, 2, 8], (Kind::BFloat16, Device::Cpu));
        assert!(rope(&long, cos, sin).is_none());
    }

    /// Relative L2 distance of `got` from the float32 `want`.
    fn rel_l2(got: &Tensor, want: &Tensor) -> f64 {
        let diff = got.to_kind(Kind::Float) - want;
        diff.norm().double_value(&[]) / want.norm().double_value(&[])
    }

    /// Output and `d qkv` of attention on `qkv: [b, s, 3*nh, d]` against `go`, through `f(qk, v)`
    /// returning `[b, s, nh, d]`.
    fn run_attention(
        qkv: &Tensor,
        go: &Tensor,
        nh: i64,
        f: impl Fn(&Tensor, &Tensor) -> Tensor,
    ) -> (Tensor, Tensor) {
        let x = qkv.detach().copy().set_requires_grad(true);
        let parts = x.split_with_sizes([2 * nh, nh], 2);
        let out = f(&parts[0], &parts[1]);
        (out.to_kind(Kind::Float) * go).sum(Kind::Float).backward();
        (out.detach(), x.grad())
    }

    #[test]
    fn bf16_attention_matches_float32_attention_and_its_gradients() {
        if !attention_available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        tch::manual_seed(14);
        // The small preset's head shape, and odd sequences and head widths for the padding.
        for (b, s, nh, d) in [
            (3i64, 82i64, 4i64, 64i64),
            (2, 7, 3, 8),
            (2, 17, 2, 6),
            (1, 1, 1, 2),
        ] {
            let qkv = bf16_randn(&[b, s, 3 * nh, d], 1.5);
            let go = Tensor::randn([b, s, nh, d], (Kind::Float, Device::Cpu));
            let scale = 1.0 / (d as f64).sqrt();
            // Float32 attention on the same bfloat16 inputs: the reference value.
            let float32 = |qk: &Tensor, v: &Tensor| {
                let q_k = qk.to_kind(Kind::Float).split(nh, 2);
                let t = |x: &Tensor| x.transpose(1, 2);
                crate::attention::explicit_attention(
                    &t(&q_k[0]),
                    &t(&q_k[1]),
                    &t(&v.to_kind(Kind::Float)),
                )
                .transpose(1, 2)
            };
            let (want, want_grad) = run_attention(&qkv.to_kind(Kind::Float), &go, nh, float32);
            let fused = |qk: &Tensor, v: &Tensor| attention_bf16(qk, v, scale).expect("applies");
            let (got, got_grad) = run_attention(&qkv, &go, nh, fused);
            assert_eq!(got.size(), vec![b, s, nh, d]);
            assert_eq!(got.kind(), Kind::BFloat16);
            // libtorch's bfloat16 kernel on the same inputs: the error to match.
            let sdpa = |qk: &Tensor, v: &Tensor| {
                let q_k = qk.split(nh, 2);
                let t = |x: &Tensor| x.transpose(1, 2);
                Tensor::scaled_dot_product_attention(
                    &t(&q_k[0]),
                    &t(&q_k[1]),
                    &t(v),
                    None::<Tensor>,
                    0.0,
                    false,
                    None,
                    false,
                )
                .transpose(1, 2)
            };
            let (flash, flash_grad) = run_attention(&qkv, &go, nh, sdpa);
            let (e_out, e_grad) = (rel_l2(&got, &want), rel_l2(&got_grad, &want_grad));
            let (f_out, f_grad) = (rel_l2(&flash, &want), rel_l2(&flash_grad, &want_grad));
            assert!(
                e_out < 4e-3 && e_out <= 1.2 * f_out + 1e-4,
                "{b}x{s}x{nh}x{d}: output {e_out} (flash {f_out})"
            );
            assert!(
                e_grad < 8e-3 && e_grad <= 1.2 * f_grad + 1e-4,
                "{b}x{s}x{nh}x{d}: grad {e_grad} (flash {f_grad})"
            );
        }
    }

    #[test]
    fn bf16_attention_takes_strided_and_unaligned_views_and_leaves_the_rest_to_libtorch() {
        if !attention_available() {
            return;
        }
        tch::manual_seed(15);
        let (nh, d) = (2i64, 8i64);
        // A view one element into its storage (rows not 32-bit aligned): copied, same result.
        let wide = bf16_randn(&[2 * 5 * 3 * nh * d + 1], 1.0);
        let qkv = wide
            .narrow(0, 1, 2 * 5 * 3 * nh * d)
            .view([2, 5, 3 * nh, d]);
        let parts = qkv.split_with_sizes([2 * nh, nh], 2);
        let shifted = attention_bf16(&parts[0], &parts[1], 0.5).expect("applies");
        let copy = qkv.copy();
        let parts_c = copy.split_with_sizes([2 * nh, nh], 2);
        let aligned = attention_bf16(&parts_c[0], &parts_c[1], 0.5).expect("applies");
        assert!(shifted.equal(&aligned));
        // The backward of a sum hands over a broadcast gradient (all strides 0): the same input
        // gradients as a dense one.
        let grads = |dense: bool| {
            let x = copy.detach().set_requires_grad(true);
            let p = x.split_with_sizes([2 * nh, nh], 2);
            let out = attention_bf16(&p[0], &p[1], 0.5).expect("applies");
            if dense {
                // The product's backward materialises the ones as a dense gradient.
                (&out * out.ones_like()).sum(Kind::Float).backward();
            } else {
                out.sum(Kind::Float).backward();
            }
            x.grad()
        };
        assert!(grads(false).equal(&grads(true)));
        // float32, odd head widths and mismatched shapes are not ours.
        let f32_parts: Vec<Tensor> = parts_c.iter().map(|t| t.to_kind(Kind::Float)).collect();
        assert!(attention_bf16(&f32_parts[0], &f32_parts[1], 0.5).is_none());
        let odd = bf16_randn(&[1, 4, 3, 3], 1.0);
        let odd_parts = odd.split_with_sizes([2, 1], 2);
        assert!(attention_bf16(&odd_parts[0], &odd_parts[1], 0.5).is_none());
        assert!(attention_bf16(&parts_c[0], &parts_c[0], 0.5).is_none());
    }
}
