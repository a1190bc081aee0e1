// hrm-core's fused CPU kernels for the forward without a graph: the residual sum plus RMSNorm
// in bfloat16 and RoPE in bfloat16 and float32, each one pass over memory where libtorch runs
// three to six separate kernels (each a full pass, a temporary and a fork/join of the OpenMP
// team).
//
// Parallelism: the rows are handed to libtorch's own TensorIterator::for_each, so they run on
// libtorch's OpenMP team. A second thread pool (rayon, or an OpenMP runtime of our own) would
// fight that team's spinning threads for the same cores.
//
// Vectorisation: the row loops are plain float arithmetic that GCC vectorises, compiled three
// times (x86-64-v4 = AVX-512, v3 = AVX2, baseline) and picked at load time by the CPU.
// `-ffp-contract=off` (build.rs) keeps `a * b + c * d` as two roundings, as libtorch computes
// it, so RoPE is bit for bit the reference's float32 formula.
//
// Every entry point catches every exception and returns a status with the message, instead of
// unwinding into Rust.
#include "fused.h"
#include "bf16.h"
#include "guard.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#include <ATen/ATen.h>
#include <ATen/TensorIterator.h>

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define HRM_ROW_KERNEL \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HRM_ROW_KERNEL
#endif

namespace {

using hrm::bf16_to_f32;
using hrm::check;
using hrm::f32_to_bf16;
using hrm::guarded;

// out = rms_norm(bf16(a + h)): the bfloat16 residual sum (rounded, as libtorch's add), its
// mean square in float32, and the float32 product rounded once. The first pass stores the
// rounded sums in `out`, the second scales them in place.
HRM_ROW_KERNEL void add_rms_norm_row(const uint16_t* a, const uint16_t* h, uint16_t* out,
                                     int64_t n, float eps) {
  constexpr int kLanes = 16;
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      uint16_t sum = f32_to_bf16(bf16_to_f32(a[i + l]) + bf16_to_f32(h[i + l]));
      out[i + l] = sum;
      float s = bf16_to_f32(sum);
      lanes[l] += s * s;
    }
  }
  float tail = 0.0f;
  for (; i < n; ++i) {
    uint16_t sum = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(h[i]));
    out[i] = sum;
    float s = bf16_to_f32(sum);
    tail += s * s;
  }
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int l = 0; l < width; ++l) lanes[l] += lanes[l + width];
  }
  float mean = (lanes[0] + tail) / static_cast<float>(n);
  float inv_rms = 1.0f / std::sqrt(mean + eps);
  for (int64_t j = 0; j < n; ++j) out[j] = f32_to_bf16(bf16_to_f32(out[j]) * inv_rms);
}

// Element access for the kernels that take either dtype: bfloat16 computes in float32.
inline float load(uint16_t v) { return bf16_to_f32(v); }
inline float load(float v) { return v; }
inline void store(uint16_t* p, float v) { *p = f32_to_bf16(v); }
inline void store(float* p, float v) { *p = v; }

// out = x * cos + roll(x, d/2) * sin_signed in float32, rounded once for bfloat16: the
// reference's `q * cos + rotate_half(q) * sin` on float32 (copies of) q, cast back once
// (sin_signed = [-sin1, sin2] makes the rolled product equal rotate_half's exactly).
template <typename T>
__attribute__((always_inline)) inline void rope_row_body(const T* x, const float* cos,
                                                         const float* sin_signed, T* out,
                                                         int64_t d) {
  int64_t half = d / 2;
  for (int64_t j = 0; j < half; ++j) {
    float a = load(x[j]) * cos[j];
    float b = load(x[j + half]) * sin_signed[j];
    store(out + j, a + b);
  }
  for (int64_t j = half; j < d; ++j) {
    float a = load(x[j]) * cos[j];
    float b = load(x[j - half]) * sin_signed[j];
    store(out + j, a + b);
  }
}

HRM_ROW_KERNEL void rope_row_bf16(const uint16_t* x, const float* cos, const float* sin_signed,
                                  uint16_t* out, int64_t d) {
  rope_row_body(x, cos, sin_signed, out, d);
}

HRM_ROW_KERNEL void rope_row_f32(const float* x, const float* cos, const float* sin_signed,
                                 float* out, int64_t d) {
  rope_row_body(x, cos, sin_signed, out, d);
}

// Rows per task: about libtorch's grain of 32768 elements.
int64_t grain_rows(int64_t row_len) {
  return row_len > 0 ? std::max<int64_t>(1, 32768 / row_len) : 1;
}

// Runs `row(ptrs)` for every row on libtorch's thread team. Each operand is a view holding the
// first element of every row (same shape for all, broadcast by zero strides where a table is
// shared), so the iterator's pointers are row starts.
template <int N, typename Row>
void for_each_row(const at::Tensor& out_rows, const at::Tensor* inputs, int64_t row_len,
                  const Row& row) {
  at::TensorIteratorConfig config;
  config.set_check_mem_overlap(false).check_all_same_dtype(false).resize_outputs(false);
  config.add_output(out_rows);
  for (int k = 0; k < N; ++k) config.add_const_input(inputs[k]);
  at::TensorIterator iter = config.build();
  if (iter.numel() == 0) return;
  iter.for_each(
      [&](char** data, const int64_t* strides, int64_t size0, int64_t size1) {
        char* ptrs[N + 1];
        for (int64_t outer = 0; outer < size1; ++outer) {
          for (int64_t inner = 0; inner < size0; ++inner) {
            for (int k = 0; k <= N; ++k) {
              ptrs[k] = data[k] + inner * strides[k] + outer * strides[N + 1 + k];
            }
            row(ptrs);
          }
        }
      },
      grain_rows(row_len));
}

bool is_cpu_bf16(const at::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == at::kBFloat16;
}

}  // namespace

extern "C" int hrm_fused_add_rms_norm_bf16(const void* a_ptr, const void* h_ptr, void* out_ptr,
                                           double eps, char* err, size_t len) {
  return guarded(
      [&] {
        const at::Tensor& a = *static_cast<const at::Tensor*>(a_ptr);
        const at::Tensor& h = *static_cast<const at::Tensor*>(h_ptr);
        at::Tensor& out = *static_cast<at::Tensor*>(out_ptr);
        check(is_cpu_bf16(a) && is_cpu_bf16(h) && is_cpu_bf16(out),
              "add_rms_norm: CPU bfloat16 tensors only");
        check(a.is_contiguous() && h.is_contiguous() && out.is_contiguous(),
              "add_rms_norm: contiguous only");
        check(a.sizes() == h.sizes() && a.sizes() == out.sizes() && a.dim() > 0,
              "add_rms_norm: a, h and out must have one shape");
        int64_t n = a.size(-1);
        if (out.numel() == 0) return;
        at::Tensor inputs[2] = {a.view({-1, n}).select(1, 0), h.view({-1, n}).select(1, 0)};
        float eps32 = static_cast<float>(eps);
        for_each_row<2>(out.view({-1, n}).select(1, 0), inputs, 3 * n, [n, eps32](char** p) {
          add_rms_norm_row(reinterpret_cast<const uint16_t*>(p[1]),
                           reinterpret_cast<const uint16_t*>(p[2]),
                           reinterpret_cast<uint16_t*>(p[0]), n, eps32);
        });
      },
      err, len);
}

extern "C" int hrm_fused_rope(const void* x_ptr, const void* cos_ptr, const void* sin_ptr,
                              void* out_ptr, char* err, size_t len) {
  return guarded(
      [&] {
        const at::Tensor& x = *static_cast<const at::Tensor*>(x_ptr);      // [b, s, nh, d]
        const at::Tensor& cos = *static_cast<const at::Tensor*>(cos_ptr);  // [T, d] f32
        const at::Tensor& sin = *static_cast<const at::Tensor*>(sin_ptr);  // [T, d] f32
        at::Tensor& out = *static_cast<at::Tensor*>(out_ptr);              // [b, s, nh, d]
        bool bf16 = is_cpu_bf16(x) && is_cpu_bf16(out);
        bool f32 = x.device().is_cpu() && out.device().is_cpu() &&
                   x.scalar_type() == at::kFloat && out.scalar_type() == at::kFloat;
        check(bf16 || f32, "rope: CPU x and out, both bfloat16 or both float32");
        check(cos.device().is_cpu() && sin.device().is_cpu() &&
                  cos.scalar_type() == at::kFloat && sin.scalar_type() == at::kFloat,
              "rope: CPU float32 tables only");
        check(x.dim() == 4 && out.sizes() == x.sizes() && out.is_contiguous(),
              "rope: x and out must be one [b, s, nh, d] shape, out contiguous");
        int64_t s = x.size(1), d = x.size(3);
        check(d % 2 == 0 && x.stride(3) == 1, "rope: even head_dim, unit stride along it");
        check(cos.dim() == 2 && sin.sizes() == cos.sizes() && cos.size(0) >= s &&
                  cos.size(1) == d && cos.is_contiguous() && sin.is_contiguous(),
              "rope: tables must be contiguous [T >= s, d]");
        if (out.numel() == 0) return;
        auto rows_of = [](const at::Tensor& t) { return t.select(3, 0); };  // [b, s, nh]
        // [s] row starts of the tables, broadcast over batch and heads.
        auto table_rows = [&](const at::Tensor& t) {
          return t.narrow(0, 0, s).select(1, 0).unsqueeze(0).unsqueeze(2).expand(
              {x.size(0), s, x.size(2)});
        };
        at::Tensor inputs[3] = {rows_of(x), table_rows(cos), table_rows(sin)};
        auto cos_of = [](char** p) { return reinterpret_cast<const float*>(p[2]); };
        auto sin_of = [](char** p) { return reinterpret_cast<const float*>(p[3]); };
        if (bf16) {
          for_each_row<3>(rows_of(out), inputs, 3 * d, [&](char** p) {
            rope_row_bf16(reinterpret_cast<const uint16_t*>(p[1]), cos_of(p), sin_of(p),
                          reinterpret_cast<uint16_t*>(p[0]), d);
          });
        } else {
          for_each_row<3>(rows_of(out), inputs, 3 * d, [&](char** p) {
            rope_row_f32(reinterpret_cast<const float*>(p[1]), cos_of(p), sin_of(p),
                         reinterpret_cast<float*>(p[0]), d);
          });
        }
      },
      err, len);
}
