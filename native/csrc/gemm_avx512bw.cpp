// AVX-512 (F + BW) LUT-GEMM kernels, chosen at run time when the CPU has them.
//   gather: int32 columns, vpgatherdd on 16 lanes; any table values and widths (also used by the VBMI path).
//   i16:    tables that fit int16: the column of the current weight code (64..256 int16 entries) is held in
//           2..8 zmm registers and looked up with vpermi2w on 32 lanes; pairs of k summed with vpmaddwd.
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi2")
#include <immintrin.h>

#include "lut_gemm_common.h"

namespace lutgen {
namespace {

void avx512_gather(const GemmProblem& p, int64_t g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const uint8_t* atg = p.at + g * p.at_g;
  const uint8_t* bcg = p.bc + g * p.bc_g;
  int32_t* ctg = p.ct + g * p.ct_g;
  for (int64_t mb = m0; mb < m1; mb += 128) {
    for (int64_t n = n0; n < n1; ++n) {
      __m512i acc[8];
      for (auto& a : acc) a = _mm512_setzero_si512();
      for (int64_t k = 0; k < p.K; ++k) {
        const int* col = reinterpret_cast<const int*>(p.table + bcg[k * p.bc_k + n * p.bc_n] * p.col_stride);
        const uint8_t* idx = atg + k * p.at_k + mb;
        for (int q = 0; q < 8; ++q) {
          __m512i i32 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(idx + 16 * q)));
          acc[q] = _mm512_add_epi32(acc[q], _mm512_i32gather_epi32(i32, col, 4));
        }
      }
      alignas(64) int32_t sums[128];
      for (int q = 0; q < 8; ++q) _mm512_store_si512(sums + 16 * q, acc[q]);
      store_lanes(ctg + n * p.ct_n + mb, sums, 128, p.accumulate);
    }
  }
}

// 32 word lanes looked up in a column of 32*R int16 entries held in R registers.
template <int R>
inline __m512i lookup16(__m512i idx, const __m512i* t) {
  if (R == 1) return _mm512_permutexvar_epi16(idx, t[0]);
  if (R == 2) return _mm512_permutex2var_epi16(t[0], idx, t[1]);
  const __mmask32 b6 = _mm512_test_epi16_mask(idx, _mm512_set1_epi16(64));
  __m512i lo = _mm512_mask_blend_epi16(b6, _mm512_permutex2var_epi16(t[0], idx, t[1]),
                                       _mm512_permutex2var_epi16(t[2], idx, t[3]));
  if (R == 4) return lo;
  __m512i hi = _mm512_mask_blend_epi16(b6, _mm512_permutex2var_epi16(t[4], idx, t[5]),
                                       _mm512_permutex2var_epi16(t[6], idx, t[7]));
  return _mm512_mask_blend_epi16(_mm512_test_epi16_mask(idx, _mm512_set1_epi16(128)), lo, hi);
}

template <int R, int V>
void avx512bw_i16(const GemmProblem& p, int64_t g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  constexpr int kBlock = 64 * V;
  const uint8_t* atg = p.at + g * p.at_g;
  const uint8_t* bcg = p.bc + g * p.bc_g;
  int32_t* ctg = p.ct + g * p.ct_g;
  const __m512i ones = _mm512_set1_epi16(1);
  // acc[v][2h + s] dword d holds lane 32h + 8L + j + 4s of vector v (L = d/4, j = d%4).
  int perm[64];
  for (int q = 0; q < 4; ++q)
    for (int d = 0; d < 16; ++d) perm[16 * q + d] = 32 * (q >> 1) + 8 * (d / 4) + d % 4 + 4 * (q & 1);
  for (int64_t mb = m0; mb < m1; mb += kBlock) {
    for (int64_t n = n0; n < n1; ++n) {
      __m512i acc[V][4];
      for (auto& av : acc)
        for (auto& a : av) a = _mm512_setzero_si512();
      auto step = [&](int64_t k, __m512i (*w)[2]) {
        const __m512i* col = reinterpret_cast<const __m512i*>(p.table + bcg[k * p.bc_k + n * p.bc_n] * p.col_stride);
        __m512i t[R];
        for (int r = 0; r < R; ++r) t[r] = _mm512_loadu_si512(col + r);
        const uint8_t* idx = atg + k * p.at_k + mb;
        for (int v = 0; v < V; ++v)
          for (int h = 0; h < 2; ++h) {
            __m512i i16 = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + 64 * v + 32 * h)));
            w[v][h] = lookup16<R>(i16, t);
          }
      };
      auto accumulate = [&](__m512i (*x)[2], __m512i (*y)[2]) {
        for (int v = 0; v < V; ++v)
          for (int h = 0; h < 2; ++h) {
            acc[v][2 * h] = _mm512_add_epi32(acc[v][2 * h], _mm512_madd_epi16(_mm512_unpacklo_epi16(x[v][h], y[v][h]), ones));
            acc[v][2 * h + 1] =
                _mm512_add_epi32(acc[v][2 * h + 1], _mm512_madd_epi16(_mm512_unpackhi_epi16(x[v][h], y[v][h]), ones));
          }
      };
      int64_t k = 0;
      for (; k + 1 < p.K; k += 2) {
        __m512i x[V][2], y[V][2];
        step(k, x);
        step(k + 1, y);
        accumulate(x, y);
      }
      if (k < p.K) {
        __m512i x[V][2], y[V][2];
        step(k, x);
        for (auto& yv : y)
          for (auto& yy : yv) yy = _mm512_setzero_si512();
        accumulate(x, y);
      }
      int32_t* out = ctg + n * p.ct_n + mb;
      for (int v = 0; v < V; ++v) {
        alignas(64) int32_t tmp[64];
        int32_t sums[64];
        for (int q = 0; q < 4; ++q) _mm512_store_si512(tmp + 16 * q, acc[v][q]);
        // Entries are stored as T - bias: add bias back per product (|biased sum| <= 2^15 * kKBlock).
        const int64_t offset = p.bias * p.K;
        for (int i = 0; i < 64; ++i) sums[perm[i]] = static_cast<int32_t>(tmp[i] + offset);
        store_lanes(out + 64 * v, sums, 64, p.accumulate);
      }
    }
  }
}

}  // namespace

GemmKernel avx512_gather_kernel(int) { return avx512_gather; }

GemmKernel avx512bw_i16_kernel(int bits_eff) {
  if (bits_eff <= 5) return avx512bw_i16<1, 2>;
  if (bits_eff == 6) return avx512bw_i16<2, 2>;
  if (bits_eff == 7) return avx512bw_i16<4, 2>;
  return avx512bw_i16<8, 2>;
}

}  // namespace lutgen
