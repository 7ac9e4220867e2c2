// AVX-512 VBMI LUT-GEMM kernel, chosen at run time when the CPU has it.
// For tables that span at most 2^16 values: entries are stored minus a bias (unsigned 16-bit) and split
// into a low-byte and a high-byte plane of 64..256 entries each per column (the low plane alone when they
// span at most 256 values). The column of the current weight
// code is held in 1..4 zmm registers per plane and looked up with vpermb / vpermi2b on 64 byte lanes
// (lanes run over m). Byte sums are kept in 16-bit words without any shuffle: word j accumulates lanes
// 2j and 2j+1 as (even + 256*odd) mod 2^16 and a second word the odd lanes alone, for up to 256 k steps;
// then both are split exactly and added to int32 sums. Each loaded column serves V vectors of 64 rows.
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx2,fma,bmi2")
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

template <int R, int V, int P>
void avx512vbmi_bytes(const GemmProblem& p, int64_t g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  constexpr int kBlock = 64 * V;
  constexpr int64_t kChunk = 256;  // k steps per 16-bit accumulation (byte sums stay below 2^16)
  const uint8_t* atg = p.at + g * p.at_g;
  const uint8_t* bcg = p.bc + g * p.bc_g;
  int32_t* ctg = p.ct + g * p.ct_g;
  for (int64_t mb = m0; mb < m1; mb += kBlock) {
    for (int64_t n = n0; n < n1; ++n) {
      alignas(64) int32_t acc[kBlock] = {};
      for (int64_t k0 = 0; k0 < p.K; k0 += kChunk) {
        const int64_t k1 = k0 + kChunk < p.K ? k0 + kChunk : p.K;
        // Word j of w* sums byte lanes 2j and 2j+1 as (even + 256*odd) mod 2^16; o* sums the odd lanes.
        __m512i wl[V], ol[V], wh[V], oh[V];
        for (int v = 0; v < V; ++v) wl[v] = ol[v] = wh[v] = oh[v] = _mm512_setzero_si512();
        for (int64_t k = k0; k < k1; ++k) {
          const uint8_t* col = p.table + bcg[k * p.bc_k + n * p.bc_n] * p.col_stride;
          __m512i tl[R], th[R];
          for (int r = 0; r < R; ++r) {
            tl[r] = _mm512_loadu_si512(col + 64 * r);
            if constexpr (P == 2) th[r] = _mm512_loadu_si512(col + p.plane_stride + 64 * r);
          }
          const uint8_t* idx = atg + k * p.at_k + mb;
          for (int v = 0; v < V; ++v) {
            __m512i i8 = _mm512_loadu_si512(idx + 64 * v);
            __mmask64 bit7 = R == 4 ? _mm512_movepi8_mask(i8) : 0;
            const __m512i lo = lookup8<R>(i8, tl, bit7);
            wl[v] = _mm512_add_epi16(wl[v], lo);
            ol[v] = _mm512_add_epi16(ol[v], _mm512_srli_epi16(lo, 8));
            if constexpr (P == 2) {
              const __m512i hi = lookup8<R>(i8, th, bit7);
              wh[v] = _mm512_add_epi16(wh[v], hi);
              oh[v] = _mm512_add_epi16(oh[v], _mm512_srli_epi16(hi, 8));
            }
          }
        }
        // Entries are stored as T - bias (both planes unsigned): add bias back per product. The chunk's
        // true sum fits int32 (the caller bounds max|T| * K), the biased parts are at most 2^24 each.
        const int64_t offset = p.bias * (k1 - k0);
        for (int v = 0; v < V; ++v) {
          alignas(64) uint16_t el[32], od[32], eh[32], oh16[32];
          _mm512_store_si512(el, _mm512_sub_epi16(wl[v], _mm512_slli_epi16(ol[v], 8)));
          _mm512_store_si512(od, ol[v]);
          _mm512_store_si512(eh, _mm512_sub_epi16(wh[v], _mm512_slli_epi16(oh[v], 8)));
          _mm512_store_si512(oh16, oh[v]);
          int32_t* a = acc + 64 * v;
          for (int j = 0; j < 32; ++j) {
            a[2 * j] += static_cast<int32_t>(el[j] + 256 * eh[j] + offset);
            a[2 * j + 1] += static_cast<int32_t>(od[j] + 256 * oh16[j] + offset);
          }
        }
      }
      store_lanes(ctg + n * p.ct_n + mb, acc, kBlock, p.accumulate);
    }
  }
}

template <int P>
GemmKernel bytes_for(int bits_eff) {
  if (bits_eff <= 6) return avx512vbmi_bytes<1, 4, P>;
  if (bits_eff == 7) return avx512vbmi_bytes<2, 4, P>;
  return avx512vbmi_bytes<4, 4, P>;
}

}  // namespace

GemmKernel avx512vbmi_bytes_kernel(int bits_eff) { return bytes_for<2>(bits_eff); }
GemmKernel avx512vbmi_bytes1_kernel(int bits_eff) { return bytes_for<1>(bits_eff); }

}  // namespace lutgen
