// hrm-core's bfloat16 attention for CPUs with AVX512-BF16: forward and backward of non-causal
// softmax(q k^T / sqrt(d)) v, as an autograd function.
//
// Why: at HRM's shapes (sequence about 82, head_dim 64, every head a separate 82x82x64
// product) libtorch's bfloat16 flash-attention kernel is slow on a CPU without AMX. Its
// forward goes through a bfloat16 GEMM with float32 output that runs at a fraction of the
// host's bfloat16 peak on such small blocks, and its backward is 2-2.7x slower than the float32
// kernel. Here every product is a small register-blocked GEMM built on `vdpbf16ps` (pairs of
// bfloat16 products accumulated in float32), on operands packed once per head.
//
// Numerics follow libtorch's bfloat16 flash kernel (what the reference calls on a CPU):
//  - forward: scores in float32 (the bfloat16 products are exact, the sums float32), row max,
//    exp in float32, the unnormalised probabilities rounded to bfloat16 for the product with v
//    (accumulated in float32), divided by the float32 row sum at the end, rounded once;
//  - backward: probabilities recomputed in float32 from the saved log-sum-exp, rounded to
//    bfloat16 where they enter a product (dv = p^T do), dp = do v^T in float32,
//    ds = p (dp - rowsum(do * o)) in float32 rounded to bfloat16 for dq = ds k and dk = ds^T q.
// What differs from libtorch's: the order of the float32 sums, SLEEF's 1-ulp exp where the
// flash kernel uses a faster 20-ulp one, and vdpbf16ps / vcvtne2ps2bf16 reading float32
// denormals as zero.
//
// Parallelism: one task per (batch, head) on libtorch's own thread team (parallel_tasks).
// Every entry point catches every exception and returns a status with the message.
#include "fused.h"
#include "bf16.h"
#include "guard.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/TensorIterator.h>
#include <torch/csrc/autograd/custom_function.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define HRM_HAVE_BF16_ATTENTION 1
#include <immintrin.h>
#define HRM_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
// SLEEF's 1-ulp vectorised exp, which libtorch exports.
extern "C" __m512 Sleef_expf16_u10(__m512);
#else
#define HRM_HAVE_BF16_ATTENTION 0
#endif

namespace {

using hrm::bf16_to_f32;
using hrm::check;

#if HRM_HAVE_BF16_ATTENTION

inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// Operand layouts of the GEMM below, all bfloat16 and zero padded:
//  - left operand A [M, K], "row-major": element (m, k) at a[m * lda + k], lda even, so a
//    (k, k+1) pair is one 32-bit word;
//  - left operand A [M, K], "pair-major": the pair (k, k+1) of row m at a[((k / 2) * ldp + m) * 2],
//    the layout of the right operand below, which is how a product with a transposed
//    matrix (p^T do, ds^T q) reads its left side without a scalar transpose;
//  - right operand B [K, N], as vdpbf16ps reads it: the pair (k, k+1) of column n at
//    b[((k / 2) * np + n) * 2], np = N rounded up to 16 lanes.

// 16 lanes of 32-bit (k, k+1) pairs from two rows of 16: [r0_0, r1_0, r0_1, r1_1, ...].
HRM_AVX512_BF16 inline __m512i interleave16(__m256i r0, __m256i r1) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                       24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                       16, 0);
  return _mm512_permutexvar_epi16(idx, _mm512_inserti64x4(_mm512_castsi256_si512(r0), r1, 1));
}

HRM_AVX512_BF16 inline __mmask16 first_lanes(int64_t count) {
  return count >= 16 ? __mmask16(0xffff)
                     : __mmask16((1u << static_cast<unsigned>(std::max<int64_t>(count, 0))) - 1u);
}

// 16 columns of two rows as 16 (k, k+1) pairs, rounded to bfloat16 (nearest even) if float32;
// a missing second row reads as zeros, lanes outside `m` as zeros.
HRM_AVX512_BF16 inline __m512i row_pair(const uint16_t* r0, const uint16_t* r1, __mmask16 m) {
  __m256i a = _mm256_maskz_loadu_epi16(m, r0);
  __m256i b = r1 ? _mm256_maskz_loadu_epi16(m, r1) : _mm256_setzero_si256();
  return interleave16(a, b);
}

HRM_AVX512_BF16 inline __m512i row_pair(const float* r0, const float* r1, __mmask16 m) {
  __m512 a = _mm512_maskz_loadu_ps(m, r0);
  __m512 b = r1 ? _mm512_maskz_loadu_ps(m, r1) : _mm512_setzero_ps();
  __m512i both = (__m512i)_mm512_cvtne2ps_pbh(b, a);  // low half a, high half b
  return interleave16(_mm512_castsi512_si256(both), _mm512_extracti64x4_epi64(both, 1));
}

// Pairs of rows (row k = src + k * rs, n elements, unit stride; bfloat16, or float32 rounded
// to it) into the pair layout [kp / 2][np][2]; a missing last row of an odd k and the columns
// past n are zeros.
template <typename T>
HRM_AVX512_BF16 void pack_rows(const T* src, int64_t rs, int64_t k, int64_t n, int64_t np,
                               uint16_t* dst) {
  for (int64_t r = 0; r < k; r += 2) {
    const T* r0 = src + r * rs;
    const T* r1 = r + 1 < k ? r0 + rs : nullptr;
    uint16_t* out = dst + (r / 2) * np * 2;
    for (int64_t c = 0; c < np; c += 16) {
      __mmask16 m = first_lanes(n - c);
      _mm512_storeu_si512(out + c * 2, row_pair(r0 + c, r1 ? r1 + c : nullptr, m));
    }
  }
}

// B [K, N] with B(k, n) = src[n * rs + k] (the k pairs of a column are adjacent words, as in a
// row of keys read as k^T): a transpose of 32-bit words into the pair layout, 16 columns per
// gather. `src` is 4-byte aligned and `rs` even (checked by the caller), `k` even.
HRM_AVX512_BF16 void pack_words(const uint16_t* src, int64_t rs, int64_t k, int64_t n, int64_t np,
                                uint16_t* dst) {
  int64_t pairs = k / 2;
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i step = _mm512_set1_epi32(static_cast<int32_t>(rs / 2));
  const __m512i index = _mm512_mullo_epi32(lane, step);  // word offsets of columns c + lane
  for (int64_t c = 0; c < np; c += 16) {
    __mmask16 m = first_lanes(n - c);
    const uint16_t* col = src + c * rs;
    for (int64_t p = 0; p < pairs; ++p) {
      __m512i words =
          _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, index, col + 2 * p, 4);
      _mm512_storeu_si512(dst + (p * np + c) * 2, words);
    }
  }
}

// Runs fn(begin, end) over [0, n) in chunks on libtorch's own thread team. at::parallel_for
// is a header template whose OpenMP pragma this file, built without -fopenmp (a second OpenMP
// runtime would fight libtorch's), would compile as a serial loop; TensorIterator::for_each
// is libtorch's compiled parallel loop.
template <typename F>
void parallel_tasks(int64_t n, const F& fn) {
  if (n <= 0) return;
  at::Tensor ids = at::empty({n}, at::TensorOptions().dtype(at::kByte));
  const char* base = reinterpret_cast<const char*>(ids.const_data_ptr<uint8_t>());
  at::TensorIteratorConfig config;
  config.set_check_mem_overlap(false).check_all_same_dtype(false).resize_outputs(false);
  config.add_output(ids).add_const_input(ids);
  at::TensorIterator iter = config.build();
  iter.for_each(
      [&](char** data, const int64_t* strides, int64_t size0, int64_t size1) {
        for (int64_t outer = 0; outer < size1; ++outer) {
          int64_t begin = data[0] + outer * strides[1] - base;
          fn(begin, begin + size0);
        }
      },
      1);
}

// Row-major bfloat16 rows (unit stride) into a row-major left operand of lda >= k, zero padded.
void pack_a(const uint16_t* src, int64_t rs, int64_t m, int64_t k, int64_t lda, uint16_t* dst) {
  for (int64_t r = 0; r < m; ++r) {
    std::memcpy(dst + r * lda, src + r * rs, static_cast<size_t>(k) * sizeof(uint16_t));
    std::memset(dst + r * lda + k, 0, static_cast<size_t>(lda - k) * sizeof(uint16_t));
  }
}

// C[R rows, NB * 16 columns] = A B in float32; row r's pair p of A at a + r * a_m + p * a_p.
template <int R, int NB>
HRM_AVX512_BF16 inline void gemm_tile(const uint16_t* a, int64_t a_m, int64_t a_p,
                                      const uint16_t* b, int64_t np, int64_t pairs, float* c,
                                      int64_t ldc) {
  __m512 acc[R][NB];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; ++p) {
    __m512i bv[NB];
    for (int j = 0; j < NB; ++j) bv[j] = _mm512_loadu_si512(b + (p * np + j * 16) * 2);
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + r * a_m + p * a_p, sizeof pair);
      __m512i av = _mm512_set1_epi32(pair);
      for (int j = 0; j < NB; ++j) {
        acc[r][j] = _mm512_dpbf16_ps(acc[r][j], (__m512bh)av, (__m512bh)bv[j]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NB; ++j) _mm512_storeu_ps(c + r * ldc + j * 16, acc[r][j]);
}

template <int R>
HRM_AVX512_BF16 void gemm_rows(const uint16_t* a, int64_t a_m, int64_t a_p, const uint16_t* b,
                               int64_t np, int64_t pairs, float* c, int64_t ldc) {
  int64_t n = 0;
  for (; n + 32 <= np; n += 32) gemm_tile<R, 2>(a, a_m, a_p, b + n * 2, np, pairs, c + n, ldc);
  if (n < np) gemm_tile<R, 1>(a, a_m, a_p, b + n * 2, np, pairs, c + n, ldc);
}

// The left operand of a product: where row m's pair p lies.
struct Left {
  const uint16_t* a;
  int64_t a_m;  // step between rows
  int64_t a_p;  // step between pairs
  static Left row_major(const uint16_t* a, int64_t lda) { return Left{a, lda, 2}; }
  static Left pair_major(const uint16_t* a, int64_t ldp) { return Left{a, 2, 2 * ldp}; }
};

// C[m, np] = A[m, 2 * pairs] B[2 * pairs, np] in float32, ldc >= np.
HRM_AVX512_BF16 void gemm(Left a, int64_t m, int64_t pairs, const uint16_t* b, int64_t np,
                          float* c, int64_t ldc) {
  int64_t r = 0;
  for (; r + 4 <= m; r += 4) {
    gemm_rows<4>(a.a + r * a.a_m, a.a_m, a.a_p, b, np, pairs, c + r * ldc, ldc);
  }
  const uint16_t* rest = a.a + r * a.a_m;
  switch (m - r) {
    case 3: gemm_rows<3>(rest, a.a_m, a.a_p, b, np, pairs, c + r * ldc, ldc); break;
    case 2: gemm_rows<2>(rest, a.a_m, a.a_p, b, np, pairs, c + r * ldc, ldc); break;
    case 1: gemm_rows<1>(rest, a.a_m, a.a_p, b, np, pairs, c + r * ldc, ldc); break;
    default: break;
  }
}

// dst[0..n) = bf16(src[0..n) * factor), nearest even.
HRM_AVX512_BF16 void store_scaled(const float* src, float factor, int64_t n, uint16_t* dst) {
  __m512 f = _mm512_set1_ps(factor);
  for (int64_t c = 0; c < n; c += 16) {
    __mmask16 m = first_lanes(n - c);
    __m256bh v = _mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + c), f));
    _mm256_mask_storeu_epi16(dst + c, m, (__m256i)v);
  }
}

// Per-thread scratch, grown on demand and kept between calls.
struct Scratch {
  std::vector<uint16_t> a, b, a2;
  std::vector<float> scores, grad;
  void fit(int64_t a_len, int64_t b_len, int64_t f_len) {
    if (static_cast<int64_t>(a.size()) < a_len) a.resize(a_len), a2.resize(a_len);
    if (static_cast<int64_t>(b.size()) < b_len) b.resize(b_len);
    if (static_cast<int64_t>(scores.size()) < f_len) scores.resize(f_len), grad.resize(f_len);
  }
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// The shapes of one call: q, k, v, out as [b, s, nh, d] with unit stride along d.
struct Dims {
  int64_t batch, seq, heads, dim;
  int64_t sp, np_s, kp_d, np_d;  // seq rounded to pairs / lanes, d rounded to pairs / lanes
  explicit Dims(const at::Tensor& q)
      : batch(q.size(0)), seq(q.size(1)), heads(q.size(2)), dim(q.size(3)) {
    sp = round_up(seq, 2);
    np_s = round_up(seq, 16);
    kp_d = round_up(dim, 2);
    np_d = round_up(dim, 16);
  }
  // Room for any left operand, right operand and float32 [seq, lanes] block below.
  int64_t a_len() const { return (np_s + 2) * (np_s + kp_d); }
  int64_t b_len() const { return (np_s + kp_d) * (np_s + np_d); }
  int64_t f_len() const { return (np_s + 2) * (np_s + np_d); }
};

// One head of one batch entry of a [b, s, nh, d] tensor: rows of d at `p`, `rs` apart.
struct Head {
  const uint16_t* p;
  int64_t rs;
};

Head head(const at::Tensor& t, int64_t n, int64_t h) {
  const auto* base = reinterpret_cast<const uint16_t*>(t.const_data_ptr<at::BFloat16>());
  return Head{base + n * t.stride(0) + h * t.stride(2), t.stride(1)};
}

uint16_t* head_out(at::Tensor& t, int64_t n, int64_t h) {
  auto* base = reinterpret_cast<uint16_t*>(t.mutable_data_ptr<at::BFloat16>());
  return base + n * t.stride(0) + h * t.stride(2);
}

// w.scores[i, j] = scale * q_i . k_j in float32, [seq, np_s] (columns past seq are 0).
HRM_AVX512_BF16 void scores_of(Head q, Head k, const Dims& d, float scale, Scratch& w) {
  pack_a(q.p, q.rs, d.seq, d.dim, d.kp_d, w.a.data());
  pack_words(k.p, k.rs, d.dim, d.seq, d.np_s, w.b.data());
  gemm(Left::row_major(w.a.data(), d.kp_d), d.seq, d.kp_d / 2, w.b.data(), d.np_s,
       w.scores.data(), d.np_s);
  __m512 vscale = _mm512_set1_ps(scale);
  for (int64_t i = 0; i < d.seq * d.np_s; i += 16) {
    float* p = w.scores.data() + i;
    _mm512_storeu_ps(p, _mm512_mul_ps(_mm512_loadu_ps(p), vscale));
  }
}

// x[j] = exp(x[j] - shift) for j < valid, 0 up to n (a multiple of 16); returns the float32
// sum of the exponentials.
HRM_AVX512_BF16 float exp_row(float* x, int64_t n, int64_t valid, float shift) {
  __m512 vshift = _mm512_set1_ps(shift);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    __m512 e = Sleef_expf16_u10(_mm512_sub_ps(_mm512_loadu_ps(x + j), vshift));
    e = _mm512_maskz_mov_ps(first_lanes(valid - j), e);
    sum = _mm512_add_ps(sum, e);
    _mm512_storeu_ps(x + j, e);
  }
  return _mm512_reduce_add_ps(sum);
}

HRM_AVX512_BF16 float row_max(const float* x, int64_t valid) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < valid; j += 16) {
    m = _mm512_mask_max_ps(m, first_lanes(valid - j), m, _mm512_loadu_ps(x + j));
  }
  return _mm512_reduce_max_ps(m);
}

// Forward of one head: out = softmax(scale q k^T) v, lse = log-sum-exp of each score row.
HRM_AVX512_BF16 void forward_head(Head q, Head k, Head v, uint16_t* out, int64_t out_rs,
                                  float* lse, const Dims& d, float scale) {
  Scratch& w = scratch();
  w.fit(d.a_len(), d.b_len(), d.f_len());
  const int64_t s = d.seq;
  scores_of(q, k, d, scale, w);
  float* inv_sum = w.grad.data() + s * d.np_d;  // past the product's block
  for (int64_t i = 0; i < s; ++i) {
    float* row = w.scores.data() + i * d.np_s;
    float max = row_max(row, s);
    float sum = exp_row(row, d.np_s, s, max);
    lse[i] = max + std::log(sum);
    inv_sum[i] = 1.0f / sum;
    // The unnormalised probabilities, rounded to bfloat16, as the left operand of p v.
    store_scaled(row, 1.0f, d.sp, w.a.data() + i * d.sp);
  }
  pack_rows(v.p, v.rs, s, d.dim, d.np_d, w.b.data());
  float* acc = w.grad.data();
  gemm(Left::row_major(w.a.data(), d.sp), s, d.sp / 2, w.b.data(), d.np_d, acc, d.np_d);
  for (int64_t i = 0; i < s; ++i) store_scaled(acc + i * d.np_d, inv_sum[i], d.dim, out + i * out_rs);
}

// Backward of one head: dq, dk, dv from do, the saved inputs, output and log-sum-exp.
HRM_AVX512_BF16 void backward_head(Head q, Head k, Head v, Head o, Head grad_out,
                                   const float* lse, uint16_t* dq, int64_t dq_rs, uint16_t* dk,
                                   int64_t dk_rs, uint16_t* dv, int64_t dv_rs, const Dims& d,
                                   float scale) {
  Scratch& w = scratch();
  w.fit(d.a_len(), d.b_len(), d.f_len());
  const int64_t s = d.seq;
  scores_of(q, k, d, scale, w);
  float* p = w.scores.data();  // [s, np_s]: p = exp(scores - lse) in float32
  for (int64_t i = 0; i < s; ++i) exp_row(p + i * d.np_s, d.np_s, s, lse[i]);
  float* acc = w.grad.data();
  // dv = p^T do: p rounded to bfloat16 and read pair-major as the left operand.
  pack_rows(p, d.np_s, s, s, d.np_s, w.a.data());
  pack_rows(grad_out.p, grad_out.rs, s, d.dim, d.np_d, w.b.data());
  gemm(Left::pair_major(w.a.data(), d.np_s), s, d.sp / 2, w.b.data(), d.np_d, acc, d.np_d);
  for (int64_t j = 0; j < s; ++j) store_scaled(acc + j * d.np_d, 1.0f, d.dim, dv + j * dv_rs);
  // dp = do v^T in float32, [s, np_s].
  pack_a(grad_out.p, grad_out.rs, s, d.dim, d.kp_d, w.a.data());
  pack_words(v.p, v.rs, d.dim, s, d.np_s, w.b.data());
  float* dp = w.grad.data();
  gemm(Left::row_major(w.a.data(), d.kp_d), s, d.kp_d / 2, w.b.data(), d.np_s, dp, d.np_s);
  // ds = p (dp - rowsum(do * o)) in float32, in place of dp (columns past s stay 0: p is 0).
  for (int64_t i = 0; i < s; ++i) {
    float dot = 0.0f;
    const uint16_t* go = grad_out.p + i * grad_out.rs;
    const uint16_t* oo = o.p + i * o.rs;
    for (int64_t c = 0; c < d.dim; ++c) dot += bf16_to_f32(go[c]) * bf16_to_f32(oo[c]);
    __m512 vdot = _mm512_set1_ps(dot);
    for (int64_t j = 0; j < d.np_s; j += 16) {
      __m512 g = _mm512_sub_ps(_mm512_loadu_ps(dp + i * d.np_s + j), vdot);
      _mm512_storeu_ps(dp + i * d.np_s + j, _mm512_mul_ps(_mm512_loadu_ps(p + i * d.np_s + j), g));
    }
  }
  // ds in bfloat16: row-major [s (i), sp (j)] for dq, pair-major over i for dk = ds^T q.
  for (int64_t i = 0; i < s; ++i) store_scaled(dp + i * d.np_s, 1.0f, d.sp, w.a.data() + i * d.sp);
  pack_rows(dp, d.np_s, s, s, d.np_s, w.a2.data());
  // dq = scale ds k.
  pack_rows(k.p, k.rs, s, d.dim, d.np_d, w.b.data());
  float* out = w.scores.data();  // p is no longer needed
  gemm(Left::row_major(w.a.data(), d.sp), s, d.sp / 2, w.b.data(), d.np_d, out, d.np_d);
  for (int64_t i = 0; i < s; ++i) store_scaled(out + i * d.np_d, scale, d.dim, dq + i * dq_rs);
  // dk = scale ds^T q.
  pack_rows(q.p, q.rs, s, d.dim, d.np_d, w.b.data());
  gemm(Left::pair_major(w.a2.data(), d.np_s), s, d.sp / 2, w.b.data(), d.np_d, out, d.np_d);
  for (int64_t j = 0; j < s; ++j) store_scaled(out + j * d.np_d, scale, d.dim, dk + j * dk_rs);
}

bool cpu_has_avx512_bf16() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  }();
  return has;
}

#else

bool cpu_has_avx512_bf16() { return false; }

#endif

// q, k, v: [b, s, nh, d] CPU bfloat16, one shape, unit stride along d, d even.
void check_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  check(cpu_has_avx512_bf16(), "attention: this CPU has no AVX512-BF16");
  for (const at::Tensor* t : {&q, &k, &v}) {
    check(t->defined() && t->device().is_cpu() && t->scalar_type() == at::kBFloat16,
          "attention: CPU bfloat16 q, k, v only");
    check(t->dim() == 4 && t->sizes() == q.sizes(), "attention: q, k, v must be one [b, s, nh, d] shape");
    check(t->stride(3) == 1, "attention: unit stride along head_dim");
    check(t->stride(1) % 2 == 0 && reinterpret_cast<uintptr_t>(t->const_data_ptr()) % 4 == 0,
          "attention: rows must be 32-bit aligned");
  }
  check(q.size(3) % 2 == 0 && q.size(1) > 0, "attention: even head_dim, non-empty sequence");
}

#if HRM_HAVE_BF16_ATTENTION

// out [b, s, nh, d] contiguous, lse [b, nh, s] float32.
std::pair<at::Tensor, at::Tensor> attention_forward(const at::Tensor& q, const at::Tensor& k,
                                                    const at::Tensor& v, double scale) {
  check_inputs(q, k, v);
  Dims d(q);
  at::Tensor out = at::empty(q.sizes(), q.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor lse = at::empty({d.batch, d.heads, d.seq}, q.options().dtype(at::kFloat));
  float* lse_base = lse.mutable_data_ptr<float>();
  parallel_tasks(d.batch * d.heads, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      int64_t n = task / d.heads, h = task % d.heads;
      forward_head(head(q, n, h), head(k, n, h), head(v, n, h), head_out(out, n, h),
                   out.stride(1), lse_base + task * d.seq, d, static_cast<float>(scale));
    }
  });
  return {out, lse};
}

// dq, dk, dv [b, s, nh, d]: written into the given tensors (unit stride along d).
void attention_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const at::Tensor& out, const at::Tensor& grad_out, const at::Tensor& lse,
                        at::Tensor& dq, at::Tensor& dk, at::Tensor& dv, double scale) {
  check_inputs(q, k, v);
  check_inputs(out, grad_out, dq);
  check_inputs(dk, dv, dq);
  check(lse.scalar_type() == at::kFloat && lse.is_contiguous(), "attention: float32 lse");
  Dims d(q);
  const float* lse_base = lse.const_data_ptr<float>();
  parallel_tasks(d.batch * d.heads, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      int64_t n = task / d.heads, h = task % d.heads;
      backward_head(head(q, n, h), head(k, n, h), head(v, n, h), head(out, n, h),
                    head(grad_out, n, h), lse_base + task * d.seq, head_out(dq, n, h),
                    dq.stride(1), head_out(dk, n, h), dk.stride(1), head_out(dv, n, h),
                    dv.stride(1), d, static_cast<float>(scale));
    }
  });
}

// `t` itself when its rows can be read as 32-bit words (even strides, 4-byte aligned), else a
// contiguous copy.
at::Tensor word_aligned(const at::Tensor& t) {
  bool even = t.stride(0) % 2 == 0 && t.stride(1) % 2 == 0 && t.stride(2) % 2 == 0;
  bool aligned = reinterpret_cast<uintptr_t>(t.const_data_ptr()) % 4 == 0;
  return even && aligned ? t : t.clone(at::MemoryFormat::Contiguous);
}

// The autograd function: inputs qk [b, s, 2 nh, d] (queries then keys, as the fused QKV
// projection lays them out) and v [b, s, nh, d]; output [b, s, nh, d] contiguous.
struct Bf16Attention : public torch::autograd::Function<Bf16Attention> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& qk,
                            const at::Tensor& v, double scale) {
    int64_t nh = v.size(2);
    at::Tensor qk_words = word_aligned(qk), v_words = word_aligned(v);
    at::Tensor q = qk_words.narrow(2, 0, nh), k = qk_words.narrow(2, nh, nh);
    auto [out, lse] = attention_forward(q, k, v_words, scale);
    ctx->save_for_backward({qk_words, v_words, out, lse});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &qk = saved[0], &v = saved[1], &out = saved[2], &lse = saved[3];
    double scale = ctx->saved_data["scale"].toDouble();
    int64_t nh = v.size(2);
    at::Tensor grad_out = grads[0];
    // A broadcast gradient (the backward of a sum) or another dtype becomes a dense copy.
    if (grad_out.stride(3) != 1 || grad_out.scalar_type() != at::kBFloat16) {
      grad_out = grad_out.to(at::kBFloat16).contiguous();
    }
    grad_out = word_aligned(grad_out);
    // Queries' and keys' gradients go straight into the two halves of one tensor.
    at::Tensor dqk = at::empty(qk.sizes(), qk.options().memory_format(at::MemoryFormat::Contiguous));
    at::Tensor dq = dqk.narrow(2, 0, nh), dk = dqk.narrow(2, nh, nh);
    at::Tensor dv = at::empty(v.sizes(), v.options().memory_format(at::MemoryFormat::Contiguous));
    attention_backward(qk.narrow(2, 0, nh), qk.narrow(2, nh, nh), v, out, grad_out, lse, dq, dk,
                       dv, scale);
    return {dqk, dv, at::Tensor()};
  }
};

#endif

}  // namespace

extern "C" int hrm_fused_attention_available(void) { return cpu_has_avx512_bf16() ? 1 : 0; }

extern "C" int hrm_fused_attention_bf16(const void* qk_ptr, const void* v_ptr, double scale,
                                        void** out_ptr, char* err, size_t len) {
#if HRM_HAVE_BF16_ATTENTION
  return hrm::guarded(
      [&] {
        const at::Tensor& qk = *static_cast<const at::Tensor*>(qk_ptr);
        const at::Tensor& v = *static_cast<const at::Tensor*>(v_ptr);
        check(qk.dim() == 4 && v.dim() == 4 && qk.size(2) == 2 * v.size(2),
              "attention: qk must be [b, s, 2 nh, d] for v [b, s, nh, d]");
        at::Tensor out = Bf16Attention::apply(qk, v, scale);
        *out_ptr = new at::Tensor(std::move(out));
      },
      err, len);
#else
  (void)qk_ptr, (void)v_ptr, (void)scale, (void)out_ptr;
  return hrm::fail("attention: built without the AVX512-BF16 kernels", err, len);
#endif
}
