// Operand conversions shared by operands.cpp and its per-ISA loops: plain C++ only (no torch), so that ISA
// translation units never compile torch's inline functions with wider instruction sets than the CPU has.
#pragma once

#include <algorithm>
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

// The affine scheme's zero-point terms and rescale, as its step-by-step path does them, on `count` (<= 256)
// float32 values (integer sums already rounded to float32): v - (offset + zero * sums) in float64, times scale
// (may be null), rounded once to float32. zero, offset and scale are one per value where Step is 1, else one for
// all; sums (exact integers) the other way round. Where `small` (|offset| + zero * sums below 2^30 for all of
// them) and there is a scale, in 32 bits where that gives the same: values and differences within 2^24 (their
// float32 is themselves, and a difference's product with the scale, exact in float64, rounds to float32 as the
// float32 product does). The one copy of this arithmetic: the direct conv's runs, the GEMM's output pass and the
// conv's int64 fallback call it.
template <int Step>
__attribute__((always_inline)) inline void affine_rescale(float* __restrict v, int64_t count,
                                                          const double* __restrict zero,
                                                          const double* __restrict offset,
                                                          const float* __restrict scale,
                                                          const int32_t* __restrict sums, bool small) {
  constexpr int64_t S = 1 - Step;
  if (small && scale != nullptr) {
    float out[256];
    uint32_t inexact = 0;
    for (int64_t m = 0; m < count; ++m) {
      const float f = v[m];
      const float inside = std::min(std::max(f, -0x1p24f), 0x1p24f);  // (converts to int32 defined)
      const auto z = static_cast<uint32_t>(static_cast<int32_t>(zero[m * Step]));
      const auto base = static_cast<uint32_t>(static_cast<int32_t>(offset[m * Step]));
      const uint32_t terms = base + z * static_cast<uint32_t>(sums[m * S]);
      const uint32_t d = static_cast<uint32_t>(static_cast<int32_t>(inside)) - terms;
      inexact |= static_cast<uint32_t>(inside != f) | static_cast<uint32_t>(d + (1u << 24) >= (1u << 25));
      out[m] = static_cast<float>(static_cast<int32_t>(d)) * scale[m * Step];
    }
    if (inexact == 0) {
      std::copy(out, out + count, v);
      return;
    }
  }
  for (int64_t m = 0; m < count; ++m) {
    const double rest = static_cast<double>(v[m]) - (offset[m * Step] + zero[m * Step] * sums[m * S]);
    v[m] = static_cast<float>(scale != nullptr ? rest * static_cast<double>(scale[m * Step]) : rest);
  }
}

// The outputs of one run of a direct conv (n <= 256 consecutive positions of one channel): the integer sum
// col + scale * s[t] + e[t] + r[t] (each of s, e, r may be null), exact in 32 bits because the caller bounds
// it by the int32 range (the parts may wrap on the way), rounded once to float32; then the layer's epilogue
// y * mul, + add, + extra where present, one float32 operation at a time as torch does them. With `affine`
// (unsigned codes, zero points), the rescale is instead affine_rescale's, with c[t] each position's sum of
// activation codes. `small_terms`: the caller bounds |offset| + zero * c[t] below 2^30.
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
  for (int64_t t = 0; t < n; ++t) dst[t] = static_cast<float>(static_cast<int32_t>(v[t]));
  if (q.affine) affine_rescale<0>(dst, n, &q.zero, &q.offset, q.has_mul ? &q.mul : nullptr, c, q.small_terms);
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
