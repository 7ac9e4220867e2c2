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

// The outputs of one run of a direct conv (n <= 256 consecutive positions of one channel): the integer sum
// col + scale * s[t] + e[t] + r[t] (each of s, e, r may be null), exact in 32 bits because the caller bounds
// it by the int32 range (the parts may wrap on the way), rounded once to float32; then the layer's epilogue
// y * mul, + add, + extra where present, one float32 operation at a time as torch does them. With `affine`
// (unsigned codes, zero points), the rescale is instead that of the affine scheme's step-by-step path: in
// float64, y minus (offset + zero * c[t]) (c: each position's sum of activation codes; exact integers), times
// mul, rounded once to float32. `small_terms`: the caller bounds |offset| + zero * c[t] below 2^30.
struct RunEpilogue {
  int32_t scale;
  uint32_t col;
  bool has_mul, has_add, has_extra;
  float mul, add, extra;
  bool affine = false;
  double zero = 0.0, offset = 0.0;
  bool small_terms = false;
};

__attribute__((always_inline)) inline void epilogue_loop(float* dst, int64_t n, const int32_t* s, const int32_t* e,
                                                         const int32_t* r, const int32_t* c, const RunEpilogue& q) {
  uint32_t v[256];
  for (int64_t t = 0; t < n; ++t) v[t] = q.col;
  if (s != nullptr) {
    for (int64_t t = 0; t < n; ++t) v[t] += static_cast<uint32_t>(q.scale) * static_cast<uint32_t>(s[t]);
  }
  if (e != nullptr) {
    for (int64_t t = 0; t < n; ++t) v[t] += static_cast<uint32_t>(e[t]);
  }
  if (r != nullptr) {
    for (int64_t t = 0; t < n; ++t) v[t] += static_cast<uint32_t>(r[t]);
  }
  uint32_t inexact = 1;
  if (q.affine && q.small_terms) {
    // In 32 bits where that gives the same: sums within 2^24 in magnitude (their float32 is themselves), terms
    // below 2^30 (so the difference does not wrap) and a difference within 2^24 (its float32 is itself, and its
    // product with the scale, exact in float64, rounds to float32 as the float32 product does).
    const auto offset = static_cast<uint32_t>(static_cast<int32_t>(q.offset));
    const auto zero = static_cast<uint32_t>(q.zero);
    const float mul = q.has_mul ? q.mul : 1.0f;
    inexact = 0;
    for (int64_t t = 0; t < n; ++t) {
      const uint32_t d = v[t] - (offset + zero * static_cast<uint32_t>(c[t]));
      inexact |= static_cast<uint32_t>(v[t] + (1u << 24) >= (1u << 25));
      inexact |= static_cast<uint32_t>(d + (1u << 24) >= (1u << 25));
      dst[t] = static_cast<float>(static_cast<int32_t>(d)) * mul;
    }
  }
  if (q.affine && inexact != 0) {
    for (int64_t t = 0; t < n; ++t) dst[t] = static_cast<float>(static_cast<int32_t>(v[t]));
    const double mul = q.has_mul ? static_cast<double>(q.mul) : 1.0;  // (d * 1.0 is d)
    for (int64_t t = 0; t < n; ++t) {
      const double d = static_cast<double>(dst[t]) - (q.offset + q.zero * static_cast<double>(c[t]));
      dst[t] = static_cast<float>(d * mul);
    }
  } else if (!q.affine) {
    for (int64_t t = 0; t < n; ++t) dst[t] = static_cast<float>(static_cast<int32_t>(v[t]));
  }
  if (!q.affine && q.has_mul) {
    for (int64_t t = 0; t < n; ++t) dst[t] = dst[t] * q.mul;
  }
  if (q.has_add) {
    for (int64_t t = 0; t < n; ++t) dst[t] = dst[t] + q.add;
  }
  if (q.has_extra) {
    for (int64_t t = 0; t < n; ++t) dst[t] = dst[t] + q.extra;
  }
}

// epilogue_loop compiled for each ISA (convert_simd.cpp); epilogue_run picks one by the ISA path in force.
void epilogue_avx512(float* dst, int64_t n, const int32_t* s, const int32_t* e, const int32_t* r, const int32_t* c,
                     const RunEpilogue& q);
void epilogue_avx2(float* dst, int64_t n, const int32_t* s, const int32_t* e, const int32_t* r, const int32_t* c,
                   const RunEpilogue& q);
void epilogue_plain(float* dst, int64_t n, const int32_t* s, const int32_t* e, const int32_t* r, const int32_t* c,
                    const RunEpilogue& q);

bool float_to_bytes_avx512(const float* src, uint8_t* dst, int64_t n, float lo, float hi);
bool quantize_bytes_avx512(const float* src, uint8_t* dst, int64_t n, float scale, float zero, float qmin,
                           float qmax);
bool quantize_bytes_avx2(const float* src, uint8_t* dst, int64_t n, float scale, float zero, float qmin, float qmax);

}  // namespace lutgen
