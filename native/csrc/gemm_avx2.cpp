// AVX2 LUT-GEMM kernels (compiled for AVX2 only; chosen at run time when the CPU has it).
//   gather: int32 columns, vpgatherdd, any table values and widths.
//   nibble: tables that span at most 2^16 values, stored minus a bias as two unsigned byte planes per column
//           (one plane when they span at most 256 values): each plane is a set of 16-entry sub-tables looked
//           up with vpshufb on the code's low nibble and merged by a tree of byte blends on its high bits (1
//           sub-table for codes < 16, 16 for 8-bit codes; code bits above the looked-up width are ignored, as
//           narrow plans need). Lanes run over m; byte sums are kept in 16-bit words without shuffles, as in the
//           VBMI kernel.
//   rows:   the nibble or fold layout in the rows order of rows_order.h, 32 columns per ymm register.
#pragma GCC target("avx2,fma,bmi2")
#include <immintrin.h>

#include "lut_gemm_common.h"
#include "rows_order.h"

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
        const int* col = reinterpret_cast<const int*>(p.table + bcg[k * p.bc_k + n * p.bc_n] * p.col_stride);
        const uint8_t* idx = atg + k * p.at_k + mb;
        for (int q = 0; q < 8; ++q) {
          __m256i i32 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(idx + 8 * q)));
          acc[q] = _mm256_add_epi32(acc[q], _mm256_i32gather_epi32(col, i32, 4));
        }
      }
      alignas(32) int32_t sums[64];
      for (int q = 0; q < 8; ++q) _mm256_store_si256(reinterpret_cast<__m256i*>(sums + 8 * q), acc[q]);
      store_lanes(ctg + n * p.ct_n + mb, sums, 64, p.accumulate);
    }
  }
}

inline __m256i load_subtable(const uint8_t* p) {
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// vpblendvb: b where the top bit of a mask byte is set, else a. (GCC's builtin first widens the mask to whole
// bytes with a compare: one needless instruction per blend.)
inline __m256i blend(__m256i a, __m256i b, __m256i mask) {
  __m256i out;
  asm("vpblendvb %3, %2, %1, %0" : "=x"(out) : "x"(a), "x"(b), "x"(mask));
  return out;
}

// Look-up of 32 byte lanes in S consecutive 16-entry sub-tables starting at `plane`: vpshufb on the low
// nibble per sub-table, then a tree of byte blends on bits 4.. of the code (masks[i] has bit 4+i in bit 7).
template <int S>
inline __m256i tree_lookup(const uint8_t* plane, __m256i low, const __m256i* masks) {
  if constexpr (S == 1) {
    return _mm256_shuffle_epi8(load_subtable(plane), low);
  } else {
    constexpr int level = S == 2 ? 0 : S == 4 ? 1 : S == 8 ? 2 : 3;
    return blend(tree_lookup<S / 2>(plane, low, masks), tree_lookup<S / 2>(plane + 8 * S, low, masks), masks[level]);
  }
}

// 32 lanes (rows m) times C columns n: each k step computes the code masks once for the C columns. Folded (F):
// the planes hold the rows whose top code bit (the one above the S sub-tables) is clear, and after them a
// register per plane of the column's fold byte, added where that bit is set. One plane (P == 1) sums its
// looked-up bytes over GL k steps before widening them (its entries are at most 255 / GL); a chunk's tail
// goes one step at a time. Two planes of 8-bit codes may hold the high plane by code >> DH (S >> DH
// sub-tables, looked up on that code's low nibble and the blend masks of its bits above).
template <int S, int P, int C, bool F = false, int GL = 1, int DH = 0>
void nibble_columns(const GemmProblem& p, const uint8_t* atg, const uint8_t* bcg, int32_t* ctg, int64_t mb, int64_t n) {
  static_assert(GL == 1 || P == 1, "two planes widen every step");
  static_assert(DH == 0 || (P == 2 && S == 16 && !F), "a high plane by fewer code bits: two planes of 8-bit codes");
  constexpr int fold_level = S == 1 ? 0 : S == 2 ? 1 : S == 4 ? 2 : 3;  // masks[i]: bit 4 + i in bit 7
  constexpr int64_t kChunk = 256;  // k steps per 16-bit accumulation (byte sums stay below 2^16)
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  alignas(32) int32_t acc[C][32] = {};
  for (int64_t k0 = 0; k0 < p.K; k0 += kChunk) {
    const int64_t k1 = k0 + kChunk < p.K ? k0 + kChunk : p.K;
    // Word j of w* sums byte lanes 2j and 2j+1 as (even + 256*odd) mod 2^16; o* sums the odd lanes; sl: the
    // low plane's byte sums of the current group.
    __m256i wl[C], ol[C], wh[C], oh[C], sl[C];
    for (int c = 0; c < C; ++c) wl[c] = ol[c] = wh[c] = oh[c] = sl[c] = _mm256_setzero_si256();
    // One k step (j: its place in a group of GL steps, or -1 ungrouped).
    auto step = [&](int64_t k, int j) {
      const __m256i idx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(atg + k * p.at_k + mb));
      __m256i masks[4];
      masks[0] = _mm256_slli_epi16(idx, 3);
      masks[1] = _mm256_slli_epi16(idx, 2);
      masks[2] = _mm256_slli_epi16(idx, 1);
      masks[3] = idx;
      const __m256i low = _mm256_and_si256(idx, nibble);  // (codes may have bits above the looked-up ones)
      // (16-bit shift: the bits a byte gets from its neighbour land above the nibble)
      const __m256i low_hi = DH == 0 ? low : _mm256_and_si256(_mm256_srli_epi16(idx, DH), nibble);
      for (int c = 0; c < C; ++c) {
        const uint8_t* col = p.table + bcg[k * p.bc_k + (n + c) * p.bc_n] * p.col_stride;
        __m256i lo = tree_lookup<S>(col, low, masks);
        if constexpr (F) {
          const __m256i fold = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col + P * p.plane_stride));
          lo = _mm256_add_epi8(lo, blend(_mm256_setzero_si256(), fold, masks[fold_level]));
        }
        if (GL > 1 && j >= 0) {
          sl[c] = j == 0 ? lo : _mm256_add_epi8(sl[c], lo);
        } else {
          wl[c] = _mm256_add_epi16(wl[c], lo);
          ol[c] = _mm256_add_epi16(ol[c], _mm256_srli_epi16(lo, 8));
        }
        if constexpr (P == 2) {
          __m256i hi = tree_lookup<(S >> DH)>(col + p.plane_stride, low_hi, masks + DH);
          if constexpr (F) {
            const __m256i fold = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col + 3 * p.plane_stride));
            hi = _mm256_add_epi8(hi, blend(_mm256_setzero_si256(), fold, masks[fold_level]));
          }
          wh[c] = _mm256_add_epi16(wh[c], hi);
          oh[c] = _mm256_add_epi16(oh[c], _mm256_srli_epi16(hi, 8));
        }
      }
    };
    int64_t k = k0;
    if constexpr (GL > 1) {
      for (; k + GL <= k1; k += GL) {
        for (int j = 0; j < GL; ++j) step(k + j, j);
        for (int c = 0; c < C; ++c) {
          wl[c] = _mm256_add_epi16(wl[c], sl[c]);
          ol[c] = _mm256_add_epi16(ol[c], _mm256_srli_epi16(sl[c], 8));
        }
      }
    }
    for (; k < k1; ++k) step(k, -1);
    // Entries are stored as T - bias = low + (high << p.plane_shift) (unsigned planes): add bias back per
    // product.
    const int64_t offset = p.bias * (k1 - k0);
    for (int c = 0; c < C; ++c) {
      alignas(32) uint16_t el[16], od[16], eh[16], oh16[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(el), _mm256_sub_epi16(wl[c], _mm256_slli_epi16(ol[c], 8)));
      _mm256_store_si256(reinterpret_cast<__m256i*>(od), ol[c]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(eh), _mm256_sub_epi16(wh[c], _mm256_slli_epi16(oh[c], 8)));
      _mm256_store_si256(reinterpret_cast<__m256i*>(oh16), oh[c]);
      for (int j = 0; j < 16; ++j) {
        acc[c][2 * j] += static_cast<int32_t>(el[j] + (static_cast<int64_t>(eh[j]) << p.plane_shift) + offset);
        acc[c][2 * j + 1] += static_cast<int32_t>(od[j] + (static_cast<int64_t>(oh16[j]) << p.plane_shift) + offset);
      }
    }
  }
  for (int c = 0; c < C; ++c) store_lanes(ctg + (n + c) * p.ct_n + mb, acc[c], 32, p.accumulate);
}

template <int S, int P, bool F = false, int GL = 1, int DH = 0>
void avx2_nibble(const GemmProblem& p, int64_t g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const uint8_t* atg = p.at + g * p.at_g;
  const uint8_t* bcg = p.bc + g * p.bc_g;
  int32_t* ctg = p.ct + g * p.ct_g;
  for (int64_t mb = m0; mb < m1; mb += 32) {
    int64_t n = n0;
    for (; n + 2 <= n1; n += 2) nibble_columns<S, P, 2, F, GL, DH>(p, atg, bcg, ctg, mb, n);
    if (n < n1) nibble_columns<S, P, 1, F, GL, DH>(p, atg, bcg, ctg, mb, n);
  }
}

// Vector traits of the rows order (rows_order.h): 32 columns per ymm register.
struct Rows32 {
  using Vec = __m256i;
  static constexpr int kWidth = 32;
  static Vec zero() { return _mm256_setzero_si256(); }
  static Vec load(const uint8_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store(uint8_t* p, Vec v) { _mm256_store_si256(reinterpret_cast<__m256i*>(p), v); }
  static Vec add_bytes(Vec a, Vec b) { return _mm256_add_epi8(a, b); }
  static void add_words(Vec& even, Vec& odd, Vec r) {
    even = _mm256_add_epi16(even, _mm256_and_si256(r, _mm256_set1_epi16(0xFF)));
    odd = _mm256_add_epi16(odd, _mm256_srli_epi16(r, 8));
  }
  // Two 16x16 byte transposes side by side in the lanes: four rounds of unpacking registers i and i + 8 rotate
  // the (register, byte) index bits by one each, so loading the columns in bit-reversed order puts them in
  // order at the end.
  static void transpose16(const uint8_t* const* cols, uint8_t* dst) {
    constexpr int rev[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
    __m256i t[16], u[16];
    for (int i = 0; i < 16; ++i) t[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cols[rev[i]]));
    for (int i = 0; i < 8; ++i) {
      u[2 * i] = _mm256_unpacklo_epi8(t[i], t[i + 8]);
      u[2 * i + 1] = _mm256_unpackhi_epi8(t[i], t[i + 8]);
    }
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm256_unpacklo_epi16(u[i], u[i + 8]);
      t[2 * i + 1] = _mm256_unpackhi_epi16(u[i], u[i + 8]);
    }
    for (int i = 0; i < 8; ++i) {
      u[2 * i] = _mm256_unpacklo_epi32(t[i], t[i + 8]);
      u[2 * i + 1] = _mm256_unpackhi_epi32(t[i], t[i + 8]);
    }
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm256_unpacklo_epi64(u[i], u[i + 8]);
      t[2 * i + 1] = _mm256_unpackhi_epi64(u[i], u[i + 8]);
    }
    for (int a = 0; a < 16; ++a) {  // (register a: entries a and a + 16 of the 16 columns)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + a * 32), _mm256_castsi256_si128(t[a]));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (a + 16) * 32), _mm256_extracti128_si256(t[a], 1));
    }
  }
  // Word j of the even (odd) sums is column 2j (2j + 1): interleaved per 128-bit lane, the low halves hold
  // columns 0-7 | 16-23 and the high ones 8-15 | 24-31, widened in column order.
  static void widen(const Vec* words, int planes, int32_t offset, int shift, int32_t* out, bool add) {
    __m256i sums[4];
    for (int pl = 0; pl < planes; ++pl) {
      const __m256i lo = _mm256_unpacklo_epi16(words[2 * pl], words[2 * pl + 1]);
      const __m256i hi = _mm256_unpackhi_epi16(words[2 * pl], words[2 * pl + 1]);
      const __m256i part[4] = {_mm256_cvtepu16_epi32(_mm256_castsi256_si128(lo)),
                               _mm256_cvtepu16_epi32(_mm256_castsi256_si128(hi)),
                               _mm256_cvtepu16_epi32(_mm256_extracti128_si256(lo, 1)),
                               _mm256_cvtepu16_epi32(_mm256_extracti128_si256(hi, 1))};
      for (int q = 0; q < 4; ++q) {
        sums[q] = pl == 0 ? _mm256_add_epi32(part[q], _mm256_set1_epi32(offset))
                          : _mm256_add_epi32(sums[q], _mm256_sll_epi32(part[q], _mm_cvtsi32_si128(shift)));
      }
    }
    __m256i* row = reinterpret_cast<__m256i*>(out);
    for (int q = 0; q < 4; ++q) row[q] = add ? _mm256_add_epi32(row[q], sums[q]) : sums[q];
  }
};

template <int P, bool F = false, int GL = 1>
GemmKernel nibble_for(int bits_eff) {
  if (bits_eff <= 4) return avx2_nibble<1, P, F, GL>;
  if (bits_eff == 5) return avx2_nibble<2, P, F, GL>;
  if (bits_eff == 6) return avx2_nibble<4, P, F, GL>;
  if (bits_eff == 7) return avx2_nibble<8, P, F, GL>;
  return avx2_nibble<16, P, F, GL>;
}

// One plane, its byte sums in groups of 8, 2 or 1 (as plan.py's GROUPS_LOW).
template <bool F = false>
GemmKernel one_plane(int bits_eff, int group_lo) {
  if (group_lo >= 8) return nibble_for<1, F, 8>(bits_eff);
  if (group_lo >= 2) return nibble_for<1, F, 2>(bits_eff);
  return nibble_for<1, F>(bits_eff);
}

}  // namespace

GemmKernel avx2_gather_kernel(int) { return avx2_gather; }
GemmKernel avx2_nibble_kernel(int bits_eff, int hi_drop) {
  if (hi_drop == 0) return nibble_for<2>(bits_eff);
  if (bits_eff != 8) return nullptr;
  switch (hi_drop) {
    case 1: return avx2_nibble<16, 2, false, 1, 1>;
    case 2: return avx2_nibble<16, 2, false, 1, 2>;
    case 3: return avx2_nibble<16, 2, false, 1, 3>;
    case 4: return avx2_nibble<16, 2, false, 1, 4>;
    default: return nullptr;
  }
}
GemmKernel avx2_nibble1_kernel(int bits_eff, int group_lo) { return one_plane(bits_eff, group_lo); }
GemmKernel avx2_rows_kernel(int bits_eff, int planes, bool fold) {
  if (bits_eff < 5 || bits_eff > 8) return nullptr;  // (rows of 32 entries and up; narrower: the nibble kernels)
  if (planes == 1) return fold ? rows_order<Rows32, 1, true> : rows_order<Rows32, 1, false>;
  if (planes == 2) return fold ? rows_order<Rows32, 2, true> : rows_order<Rows32, 2, false>;
  return nullptr;
}
GemmKernel avx2_fold_kernel(int bits_eff, int planes, int group_lo) {
  if (bits_eff < 5 || bits_eff > 8) return nullptr;  // folded on bit bits_eff - 1: sub-tables of the rest
  if (planes == 1) return one_plane<true>(bits_eff - 1, group_lo);
  return planes == 2 ? nibble_for<2, true>(bits_eff - 1) : nullptr;
}

}  // namespace lutgen
