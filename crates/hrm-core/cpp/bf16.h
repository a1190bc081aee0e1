// Scalar bfloat16 conversions shared by hrm-core's C++ kernels (fused.cpp, attention.cpp).
#pragma once

#include <cstdint>
#include <cstring>

namespace hrm {

// bfloat16 is the upper half of a float32.
inline float bf16_to_f32(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Round to nearest even, NaN to the canonical quiet NaN: c10::BFloat16's conversion.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return f != f ? uint16_t{0x7fc0} : static_cast<uint16_t>(rounded);
}

}  // namespace hrm
