// Operand conversions shared by operands.cpp and its per-ISA loops: plain C++ only (no torch), so that ISA
// translation units never compile torch's inline functions with wider instruction sets than the CPU has.
#pragma once

#include <cmath>
#include <cstdint>

namespace lutgen {

// One float operand value to its byte (int8 or uint8 two's complement): false unless an integer in [lo, hi].
inline bool float_to_byte(float v, uint8_t* dst, float lo, float hi) {
  // NaN fails both comparisons; the clamp keeps the conversion defined whatever v is.
  const bool inside = v >= lo && v <= hi;
  const float c = inside ? v : lo;
  const int iv = static_cast<int>(c);
  *dst = static_cast<uint8_t>(iv);
  return inside && static_cast<float>(iv) == c;
}

// The quantiser of approxlut.nn.quant.quantize, in the same float32 steps: clamp(round(v / scale + zero),
// qmin, qmax), rounding half to even; false for NaN (its code is then meaningless).
inline bool quantize_byte(float v, uint8_t* dst, float scale, float zero, float qmin, float qmax) {
  const float q = std::nearbyint(v / scale + zero);
  if (std::isnan(q)) {
    *dst = 0;
    return false;
  }
  *dst = static_cast<uint8_t>(static_cast<int>(q < qmin ? qmin : (q > qmax ? qmax : q)));
  return true;
}

bool float_to_bytes_avx512(const float* src, uint8_t* dst, int64_t n, float lo, float hi);
bool quantize_bytes_avx512(const float* src, uint8_t* dst, int64_t n, float scale, float zero, float qmin,
                           float qmax);
bool quantize_bytes_avx2(const float* src, uint8_t* dst, int64_t n, float scale, float zero, float qmin, float qmax);

}  // namespace lutgen
