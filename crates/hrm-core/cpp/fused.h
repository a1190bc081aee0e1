// hrm-core's fused CPU kernels (fused.cpp), called from src/fused.rs.
//
// Tensor arguments are tch's raw handles (`at::Tensor*`). Each function returns 0 on success,
// or 1 with a NUL-terminated message in `err` (at most `len` bytes); no C++ exception crosses.
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// out = rms_norm(a + h, eps) over the last axis, bfloat16, contiguous, one shape.
int hrm_fused_add_rms_norm_bf16(const void* a, const void* h, void* out, double eps, char* err,
                                size_t len);

// out[b, s, nh, d] = x * cos[s] + roll(x, d/2) * sin_signed[s]; x bfloat16 or float32 (unit
// stride along d), tables float32 [T, d], out of x's dtype, contiguous.
int hrm_fused_rope(const void* x, const void* cos, const void* sin_signed, void* out, char* err,
                   size_t len);

// 1 when this build and CPU run hrm_fused_attention_bf16 (x86-64 with AVX512-BF16), else 0.
int hrm_fused_attention_available(void);

// Non-causal softmax(scale q k^T) v for CPU bfloat16 q, k = qk[:, :, :nh], qk[:, :, nh:]
// ([b, s, 2 nh, d]) and v ([b, s, nh, d]), unit stride along d, d even, as an autograd
// function (its backward is attention.cpp's). On success *out is a new at::Tensor* holding the
// [b, s, nh, d] contiguous bfloat16 result, owned by the caller.
int hrm_fused_attention_bf16(const void* qk, const void* v, double scale, void** out, char* err,
                             size_t len);

#ifdef __cplusplus
}
#endif
