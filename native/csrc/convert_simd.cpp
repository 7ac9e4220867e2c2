// AVX-512 and AVX2 loops of the operand conversions (operands.cpp picks one by the ISA path). Each handles
// [0, n) and reports whether every value was valid; the results equal the scalar loops' (operands_isa.h).
#include <immintrin.h>

#include "operands_isa.h"

namespace lutgen {

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) bool float_to_bytes_avx512(const float* src, uint8_t* dst, int64_t n, float lo, float hi) {
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  __mmask16 bad = 0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(src + i);
    // Ordered comparisons: NaN is outside. Inside the range, an integer equals its truncation.
    const __mmask16 inside = _mm512_cmp_ps_mask(v, vlo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(v, vhi, _CMP_LE_OQ);
    const __m512 c = _mm512_mask_blend_ps(inside, vlo, v);
    const __m512 t = _mm512_roundscale_ps(c, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    bad |= static_cast<__mmask16>(~inside) | _mm512_cmp_ps_mask(t, c, _CMP_NEQ_UQ);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(t)));
  }
  bool ok = bad == 0;
  for (; i < n; ++i) ok &= float_to_byte(src[i], dst + i, lo, hi);
  return ok;
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) bool quantize_bytes_avx512(const float* src, uint8_t* dst, int64_t n, float scale, float zero, float qmin,
                           float qmax) {
  const __m512 vs = _mm512_set1_ps(scale), vz = _mm512_set1_ps(zero);
  const __m512 vlo = _mm512_set1_ps(qmin), vhi = _mm512_set1_ps(qmax);
  __mmask16 nan = 0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_add_ps(_mm512_div_ps(_mm512_loadu_ps(src + i), vs), vz);
    v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    v = _mm512_min_ps(_mm512_max_ps(v, vlo), vhi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
  }
  bool ok = nan == 0;
  for (; i < n; ++i) ok &= quantize_byte(src[i], dst + i, scale, zero, qmin, qmax);
  return ok;
}

__attribute__((target("avx2,fma"))) bool quantize_bytes_avx2(const float* src, uint8_t* dst, int64_t n,
                                                             float scale, float zero, float qmin, float qmax) {
  const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(zero);
  const __m256 vlo = _mm256_set1_ps(qmin), vhi = _mm256_set1_ps(qmax);
  const __m256i low_byte = _mm256_set1_epi32(0xFF);
  __m256 nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i q[4];
    for (int j = 0; j < 4; ++j) {
      __m256 v = _mm256_add_ps(_mm256_div_ps(_mm256_loadu_ps(src + i + 8 * j), vs), vz);
      v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      v = _mm256_min_ps(_mm256_max_ps(v, vlo), vhi);
      q[j] = _mm256_and_si256(_mm256_cvtps_epi32(v), low_byte);  // two's complement bytes, 0..255
    }
    // Unsigned packs are exact for 0..255; they interleave 128-bit lanes, which the permute undoes.
    const __m256i words = _mm256_packus_epi16(_mm256_packus_epi32(q[0], q[1]), _mm256_packus_epi32(q[2], q[3]));
    const __m256i bytes = _mm256_permutevar8x32_epi32(words, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), bytes);
  }
  bool ok = _mm256_movemask_ps(nan) == 0;
  for (; i < n; ++i) ok &= quantize_byte(src[i], dst + i, scale, zero, qmin, qmax);
  return ok;
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) void epilogue_avx512(
    float* dst, int64_t n, const int32_t* s, const int32_t* e, const int32_t* r, const int32_t* c,
    const RunEpilogue& q) {
  epilogue_loop(dst, n, s, e, r, c, q);
}

__attribute__((target("avx2"))) void epilogue_avx2(float* dst, int64_t n, const int32_t* s, const int32_t* e,
                                                   const int32_t* r, const int32_t* c, const RunEpilogue& q) {
  epilogue_loop(dst, n, s, e, r, c, q);
}

void epilogue_plain(float* dst, int64_t n, const int32_t* s, const int32_t* e, const int32_t* r, const int32_t* c,
                    const RunEpilogue& q) {
  epilogue_loop(dst, n, s, e, r, c, q);
}

}  // namespace lutgen
