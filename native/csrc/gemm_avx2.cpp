// AVX2 LUT-GEMM kernels (compiled for AVX2 only; chosen at run time when the CPU has it).
//   gather: int32 columns, vpgatherdd, any table values and widths.
//   nibble: tables that fit int16 with activations below 2^6: the column is split into 16-entry
//           sub-tables held in registers (low and high byte planes), looked up with vpshufb; pairs of
//           k are summed with vpmaddwd. Lanes run over m.
#pragma GCC target("avx2,fma,bmi2")
#include <immintrin.h>

#include "lut_gemm_common.h"

namespace lutgen {
namespace {

void avx2_gather(const GemmProblem& p, int64_t g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const uint8_t* atg = p.at + g * p.at_g;
  const uint8_t* bcg = p.bc + g * p.bc_g;
  int32_t* ctg = p.ct + g * p.ct_g;
  for (int64_t mb = m0; mb < m1; mb += 64) {
    for (int64_t n = n0; n < n1; ++n) {
      __m256i acc[8];
      for (auto& a : acc) a = _mm256_setzero_si256();
      for (int64_t k = 0; k < p.K; ++k) {
        const int* col = reinterpret_cast<const int*>(p.table + bcg[k * p.bc_k + n] * p.col_stride);
        const uint8_t* idx = atg + k * p.at_k + mb;
        for (int q = 0; q < 8; ++q) {
          __m256i i32 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(idx + 8 * q)));
          acc[q] = _mm256_add_epi32(acc[q], _mm256_i32gather_epi32(col, i32, 4));
        }
      }
      int32_t* out = ctg + n * p.ct_n + mb;
      for (int q = 0; q < 8; ++q) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8 * q), acc[q]);
    }
  }
}

// Look-up of 32 byte lanes in a column of S 16-entry sub-tables (codes < 16*S).
template <int S>
inline __m256i nibble_lookup(__m256i idx, const __m256i* t, const __m256i* sel) {
  if (S == 1) return _mm256_shuffle_epi8(t[0], idx);
  __m256i r = _mm256_shuffle_epi8(t[0], sel[0]);
  for (int s = 1; s < S; ++s) r = _mm256_or_si256(r, _mm256_shuffle_epi8(t[s], sel[s]));
  return r;
}

// sel[s]: idx with bit 7 set in every lane whose code is outside sub-table s (vpshufb then yields 0).
template <int S>
inline void nibble_select(__m256i idx, __m256i* sel) {
  const __m256i bias = _mm256_set1_epi8(0x70);
  for (int s = 0; s < S; ++s) {
    sel[s] = _mm256_adds_epu8(_mm256_xor_si256(idx, _mm256_set1_epi8(static_cast<char>(16 * s))), bias);
  }
}

template <int S>
void avx2_nibble(const GemmProblem& p, int64_t g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const uint8_t* atg = p.at + g * p.at_g;
  const uint8_t* bcg = p.bc + g * p.bc_g;
  int32_t* ctg = p.ct + g * p.ct_g;
  const __m256i ones = _mm256_set1_epi16(1);
  // Lane order of the accumulators: acc[q] dword d holds lane 16L + j + 4(q&1) + 8(q>>1), L = d/4, j = d%4.
  int perm[32];
  for (int q = 0; q < 4; ++q)
    for (int d = 0; d < 8; ++d) perm[8 * q + d] = 16 * (d / 4) + d % 4 + 4 * (q & 1) + 8 * (q >> 1);
  for (int64_t mb = m0; mb < m1; mb += 32) {
    for (int64_t n = n0; n < n1; ++n) {
      __m256i acc[4];
      for (auto& a : acc) a = _mm256_setzero_si256();
      auto step = [&](int64_t k, __m256i* w16) {
        const uint8_t* col = p.table + bcg[k * p.bc_k + n] * p.col_stride;
        __m256i tl[S], th[S], sel[S];
        for (int s = 0; s < S; ++s) {
          tl[s] = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(col + 16 * s)));
          th[s] = _mm256_broadcastsi128_si256(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(col + p.plane_stride + 16 * s)));
        }
        __m256i idx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(atg + k * p.at_k + mb));
        nibble_select<S>(idx, sel);
        __m256i lo = nibble_lookup<S>(idx, tl, sel), hi = nibble_lookup<S>(idx, th, sel);
        w16[0] = _mm256_unpacklo_epi8(lo, hi);
        w16[1] = _mm256_unpackhi_epi8(lo, hi);
      };
      auto accumulate = [&](const __m256i* x, const __m256i* y) {
        for (int h = 0; h < 2; ++h) {
          acc[2 * h] = _mm256_add_epi32(acc[2 * h], _mm256_madd_epi16(_mm256_unpacklo_epi16(x[h], y[h]), ones));
          acc[2 * h + 1] =
              _mm256_add_epi32(acc[2 * h + 1], _mm256_madd_epi16(_mm256_unpackhi_epi16(x[h], y[h]), ones));
        }
      };
      int64_t k = 0;
      for (; k + 1 < p.K; k += 2) {
        __m256i x[2], y[2];
        step(k, x);
        step(k + 1, y);
        accumulate(x, y);
      }
      if (k < p.K) {
        __m256i x[2], y[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        step(k, x);
        accumulate(x, y);
      }
      alignas(32) int32_t tmp[32];
      for (int q = 0; q < 4; ++q) _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8 * q), acc[q]);
      int32_t* out = ctg + n * p.ct_n + mb;
      for (int i = 0; i < 32; ++i) out[perm[i]] = tmp[i];
    }
  }
}

}  // namespace

GemmKernel avx2_gather_kernel(int) { return avx2_gather; }

GemmKernel avx2_nibble_kernel(int bits_eff) {
  if (bits_eff <= 4) return avx2_nibble<1>;
  if (bits_eff == 5) return avx2_nibble<2>;
  if (bits_eff == 6) return avx2_nibble<4>;
  if (bits_eff == 7) return avx2_nibble<8>;
  return avx2_nibble<16>;
}

}  // namespace lutgen
