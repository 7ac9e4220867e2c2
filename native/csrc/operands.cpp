// See operands.h.
#include "operands.h"

#include <ATen/Parallel.h>
#include <emmintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "operands_isa.h"

namespace lutgen {
namespace {

// 16 values at a time with SSE2 (every x86-64 CPU): the clamp, conversion and checks of float_to_byte, then
// saturating packs that are exact for values within [lo, hi].
bool float_to_bytes_sse2(const float* src, uint8_t* dst, int64_t n, float lo, float hi, bool is_signed) {
  const __m128 vlo = _mm_set1_ps(lo), vhi = _mm_set1_ps(hi);
  __m128 flags = _mm_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m128i q[4];
    for (int j = 0; j < 4; ++j) {
      const __m128 v = _mm_loadu_ps(src + i + 4 * j);
      const __m128 inside = _mm_and_ps(_mm_cmpge_ps(v, vlo), _mm_cmple_ps(v, vhi));
      const __m128 c = _mm_or_ps(_mm_and_ps(inside, v), _mm_andnot_ps(inside, vlo));
      q[j] = _mm_cvttps_epi32(c);
      flags = _mm_or_ps(flags, _mm_or_ps(_mm_andnot_ps(inside, _mm_castsi128_ps(_mm_set1_epi32(-1))),
                                         _mm_cmpneq_ps(_mm_cvtepi32_ps(q[j]), c)));
    }
    const __m128i w0 = _mm_packs_epi32(q[0], q[1]), w1 = _mm_packs_epi32(q[2], q[3]);
    const __m128i b = is_signed ? _mm_packs_epi16(w0, w1) : _mm_packus_epi16(w0, w1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), b);
  }
  bool ok = _mm_movemask_ps(flags) == 0;
  for (; i < n; ++i) ok &= float_to_byte(src[i], dst + i, lo, hi);
  return ok;
}

bool quantize_bytes_scalar(const float* src, uint8_t* dst, int64_t n, float scale, float zero, float qmin,
                           float qmax) {
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) ok &= quantize_byte(src[i], dst + i, scale, zero, qmin, qmax);
  return ok;
}

// The sum of `count` codes (vectorised once per ISA).
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) int32_t codes_sum(
    const uint8_t* __restrict codes, int64_t count) {
  int32_t sum = 0;
  for (int64_t k = 0; k < count; ++k) sum += codes[k];
  return sum;
}

// The quantiser loop of `isa` over [0, n).
bool quantize_loop(const std::string& isa, const float* src, uint8_t* dst, int64_t n, float s, float z, float lo,
                   float hi) {
  if (isa.rfind("avx512", 0) == 0) return quantize_bytes_avx512(src, dst, n, s, z, lo, hi);
  if (isa == "avx2") return quantize_bytes_avx2(src, dst, n, s, z, lo, hi);
  return quantize_bytes_scalar(src, dst, n, s, z, lo, hi);
}

// Runs `loop(src, dst, count)` over parallel chunks of a contiguous float32 tensor into a fresh byte tensor.
template <typename Loop>
std::tuple<torch::Tensor, bool> convert(const torch::Tensor& x, bool is_signed, Loop loop) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.is_contiguous(),
              "x must be a contiguous float32 CPU tensor");
  auto out = torch::empty(x.sizes(), torch::dtype(is_signed ? torch::kInt8 : torch::kUInt8));
  const float* src = x.data_ptr<float>();
  uint8_t* dst = static_cast<uint8_t*>(out.data_ptr());
  std::atomic<bool> ok{true};
  at::parallel_for(0, x.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    if (!loop(src + begin, dst + begin, end - begin)) ok.store(false);
  });
  return {out, ok.load()};
}

}  // namespace

std::tuple<torch::Tensor, bool> float_to_values(const torch::Tensor& x, int64_t vmin, int64_t vmax,
                                                const std::string& isa) {
  TORCH_CHECK(-128 <= vmin && vmin <= vmax && vmax <= 255, "operand range must lie within int8 or uint8");
  const float lo = static_cast<float>(vmin), hi = static_cast<float>(vmax);
  const bool is_signed = vmin < 0;
  const bool wide = isa.rfind("avx512", 0) == 0;
  return convert(x, is_signed, [&](const float* src, uint8_t* dst, int64_t n) {
    return wide ? float_to_bytes_avx512(src, dst, n, lo, hi) : float_to_bytes_sse2(src, dst, n, lo, hi, is_signed);
  });
}

std::tuple<torch::Tensor, bool> quantize_codes(const torch::Tensor& x, double scale, double zero, int64_t qmin,
                                               int64_t qmax, const std::string& isa) {
  TORCH_CHECK(-128 <= qmin && qmin <= qmax && qmax <= 255, "code range must lie within int8 or uint8");
  const float s = static_cast<float>(scale), z = static_cast<float>(zero);
  const float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  return convert(x, qmin < 0, [&](const float* src, uint8_t* dst, int64_t n) {
    return quantize_loop(isa, src, dst, n, s, z, lo, hi);
  });
}

std::tuple<torch::Tensor, torch::Tensor, bool> quantize_code_rows(const torch::Tensor& x, double scale, double zero,
                                                                  int64_t qmin, int64_t qmax, int64_t row,
                                                                  const std::string& isa) {
  TORCH_CHECK(0 <= qmin && qmin <= qmax && qmax <= 255, "code range must lie within uint8");
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.is_contiguous(),
              "x must be a contiguous float32 CPU tensor");
  TORCH_CHECK(row >= 1 && row <= INT32_MAX / 255 && x.numel() % row == 0,
              "rows of ", row, " values do not tile x, or their sums exceed int32");
  const float s = static_cast<float>(scale), z = static_cast<float>(zero);
  const float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  auto out = torch::empty(x.sizes(), torch::dtype(torch::kUInt8));
  const int64_t rows = x.numel() / row;
  auto sums = torch::empty({rows}, torch::dtype(torch::kInt32));
  const float* src = x.data_ptr<float>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  int32_t* sum = sums.data_ptr<int32_t>();
  std::atomic<bool> ok{true};
  at::parallel_for(0, rows, std::max<int64_t>(1, (1 << 16) / row), [&](int64_t begin, int64_t end) {
    if (!quantize_loop(isa, src + begin * row, dst + begin * row, (end - begin) * row, s, z, lo, hi)) ok.store(false);
    for (int64_t r = begin; r < end; ++r) sum[r] = codes_sum(dst + r * row, row);
  });
  return {out, sums, ok.load()};
}

}  // namespace lutgen
