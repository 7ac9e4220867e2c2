// AVX-512 VBMI LUT-GEMM kernel (with AVX512-VNNI), chosen at run time when the CPU has them.
// For tables that fit int16: the column of the current weight code is split into a low-byte plane
// (uint8) and a high-byte plane (int8) of 64..256 entries each, held in 1..4 zmm registers per plane and
// looked up with vpermb / vpermi2b on 64 byte lanes (lanes run over m). The planes are interleaved back to
// int16, pairs of k are interleaved and summed into int32 with vpdpwssd. Each loaded column serves V
// vectors of 64 rows.
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512vnni,avx2,fma,bmi2")
#include <immintrin.h>

#include "lut_gemm_common.h"

namespace lutgen {
namespace {

template <int R>
inline __m512i lookup8(__m512i idx, const __m512i* t, __mmask64 bit7) {
  if (R == 1) return _mm512_permutexvar_epi8(idx, t[0]);
  if (R == 2) return _mm512_permutex2var_epi8(t[0], idx, t[1]);
  return _mm512_mask_blend_epi8(bit7, _mm512_permutex2var_epi8(t[0], idx, t[1]),
                                _mm512_permutex2var_epi8(t[2], idx, t[3]));
}

template <int R, int V>
void avx512vbmi_bytes(const GemmProblem& p, int64_t g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  constexpr int kBlock = 64 * V;
  const uint8_t* atg = p.at + g * p.at_g;
  const uint8_t* bcg = p.bc + g * p.bc_g;
  int32_t* ctg = p.ct + g * p.ct_g;
  const __m512i ones = _mm512_set1_epi16(1);
  // acc[v][q] dword d holds byte lane 16L + j + 4(q&1) + 8(q>>1) of vector v (L = d/4, j = d%4).
  int perm[64];
  for (int q = 0; q < 4; ++q)
    for (int d = 0; d < 16; ++d) perm[16 * q + d] = 16 * (d / 4) + d % 4 + 4 * (q & 1) + 8 * (q >> 1);
  for (int64_t mb = m0; mb < m1; mb += kBlock) {
    for (int64_t n = n0; n < n1; ++n) {
      __m512i acc[V][4];
      for (auto& av : acc)
        for (auto& a : av) a = _mm512_setzero_si512();
      auto step = [&](int64_t k, __m512i (*w)[2]) {
        const uint8_t* col = p.table + bcg[k * p.bc_k + n] * p.col_stride;
        __m512i tl[R], th[R];
        for (int r = 0; r < R; ++r) {
          tl[r] = _mm512_loadu_si512(col + 64 * r);
          th[r] = _mm512_loadu_si512(col + p.plane_stride + 64 * r);
        }
        const uint8_t* idx = atg + k * p.at_k + mb;
        for (int v = 0; v < V; ++v) {
          __m512i i8 = _mm512_loadu_si512(idx + 64 * v);
          __mmask64 bit7 = R == 4 ? _mm512_movepi8_mask(i8) : 0;
          __m512i lo = lookup8<R>(i8, tl, bit7), hi = lookup8<R>(i8, th, bit7);
          w[v][0] = _mm512_unpacklo_epi8(lo, hi);
          w[v][1] = _mm512_unpackhi_epi8(lo, hi);
        }
      };
      auto accumulate = [&](__m512i (*x)[2], __m512i (*y)[2]) {
        for (int v = 0; v < V; ++v)
          for (int h = 0; h < 2; ++h) {
            acc[v][2 * h] = _mm512_dpwssd_epi32(acc[v][2 * h], _mm512_unpacklo_epi16(x[v][h], y[v][h]), ones);
            acc[v][2 * h + 1] = _mm512_dpwssd_epi32(acc[v][2 * h + 1], _mm512_unpackhi_epi16(x[v][h], y[v][h]), ones);
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
        for (int q = 0; q < 4; ++q) _mm512_store_si512(tmp + 16 * q, acc[v][q]);
        for (int i = 0; i < 64; ++i) out[64 * v + perm[i]] = tmp[i];
      }
    }
  }
}

}  // namespace

GemmKernel avx512vbmi_bytes_kernel(int bits_eff) {
  if (bits_eff <= 6) return avx512vbmi_bytes<1, 4>;
  if (bits_eff == 7) return avx512vbmi_bytes<2, 4>;
  return avx512vbmi_bytes<4, 2>;
}

}  // namespace lutgen
