// AVX-512 VBMI LUT-GEMM kernel, chosen at run time when the CPU has it.
// The table is one or two unsigned byte planes per column (see lut_gemm_common.h, layout "bytes"), 64..256
// entries each. The column of the current weight code is held in 1..4 zmm registers per plane and looked up
// with vpermb / vpermi2b on 64 byte lanes (lanes run over m), which read the low 6 / 7 bits of the codes (a
// narrow plan's table repeats its rows up to 64 and leaves the higher bits to row offsets). Byte sums are kept
// in 16-bit words without any shuffle: word j accumulates lanes 2j and 2j+1 as (even + 256*odd) mod 2^16 and a
// second word the odd lanes alone, for up to 256 k steps; then both are split exactly and added to int32 sums.
// Widening costs three instructions per vector. When a plane's entries are small (at most 255 / G), G looked
// up vectors are first summed as bytes and widened once ("groups"): the high plane of an error table that
// spans a few hundred values holds 0 or 1, and low-error planes hold small values. Each k step loads the codes
// of V vectors once and serves C columns with them.
// Folded tables (8-bit codes): each plane holds the 128 rows of codes whose bit j = p.fold_bit is clear, and
// after the planes a register per plane of the column's fold byte, added (mod 256) where the bit is set; the
// look-up takes 7 bits: the code with bit 7 moved into place j (vpermi2b ignores bit 7).
// A two-plane table of 8-bit codes may hold its high plane by code >> p.hi_drop (1: 128 rows, RH = 2 registers;
// 2: 64 rows, one): each vector's codes are shifted as 16-bit words, and the bits a byte gets from its
// neighbour land above the 7 (6) bits vpermi2b (vpermb) reads.
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx2,fma,bmi2")
// No SLP vectoriser (the kernels are written in intrinsics): at -O3 it packed the C columns' table addresses
// into a vector through a stack round trip that stalled every k step (store forwarding of two bytes into a
// 16-byte load), 4 ns per looked-up vector on one vector of lanes (Zen 4) against 0.4 on four.
#pragma GCC optimize("no-tree-slp-vectorize")
#include <immintrin.h>

#include "lut_gemm_common.h"

namespace lutgen {
namespace {

template <int R>
inline __m512i lookup8(__m512i idx, const __m512i* t) {
  if constexpr (R == 1) return _mm512_permutexvar_epi8(idx, t[0]);
  if constexpr (R == 2) return _mm512_permutex2var_epi8(t[0], idx, t[1]);
  const __mmask64 bit7 = _mm512_movepi8_mask(idx);
  return _mm512_mask_blend_epi8(bit7, _mm512_permutex2var_epi8(t[0], idx, t[1]),
                                _mm512_permutex2var_epi8(t[2], idx, t[3]));
}

// Word accumulators of one plane: w = (even + 256*odd) mod 2^16 per word, o = odd lanes.
inline void widen(__m512i& w, __m512i& o, __m512i bytes) {
  w = _mm512_add_epi16(w, bytes);
  o = _mm512_add_epi16(o, _mm512_srli_epi16(bytes, 8));
}

// C columns n.. of V vectors of 64 rows from mb, P planes (two: T - bias = low + (high << p.plane_shift)). The
// low plane's looked-up bytes are summed over GL k steps before widening, the high plane's over GH. k steps
// are taken in groups of G = max(GL, GH) (both powers of two); a chunk's tail goes one step at a time.
template <int R, int V, int C, int P, int GL, int GH, bool F = false, int RH = R>
void columns(const GemmProblem& p, const uint8_t* atg, const uint8_t* bcg, int32_t* ctg, int64_t mb, int64_t n) {
  static_assert(!F || R == 2, "folded tables hold 128 rows");
  static_assert(RH == R || (P == 2 && !F), "a high plane by fewer code bits: two planes, not folded");
  constexpr int kBlock = 64 * V;
  constexpr int64_t kChunk = 256;  // k steps per 16-bit accumulation (byte sums stay below 2^16)
  constexpr int G = GL > GH ? GL : GH;
  // int32 sums of the even lanes (2i) and of the odd lanes (2i + 1) of each vector, interleaved at the end.
  alignas(64) int32_t even[C][kBlock / 2] = {}, odd[C][kBlock / 2] = {};
  const uint8_t* cols[C];
  const bool move = F && p.fold_bit != 7;
  const __m512i move_by = _mm512_set1_epi16(static_cast<int16_t>(7 - p.fold_bit));
  const __m512i fold_mask = _mm512_set1_epi8(static_cast<char>(1 << p.fold_bit));
  const __m128i hi_drop = _mm_cvtsi32_si128(p.hi_drop);
  for (int64_t k0 = 0; k0 < p.K; k0 += kChunk) {
    const int64_t k1 = k0 + kChunk < p.K ? k0 + kChunk : p.K;
    __m512i wl[C][V], ol[C][V], wh[C][V], oh[C][V], sl[C][V], sh[C][V];
    for (int c = 0; c < C; ++c) {
      for (int v = 0; v < V; ++v) wl[c][v] = ol[c][v] = wh[c][v] = oh[c][v] = _mm512_setzero_si512();
    }
    // One k step: look up the codes of V vectors in each column; grouped planes collect byte sums in
    // `sl`/`sh` (j: the step's place in its group), the others are widened at once.
    auto step = [&](int64_t k, int j, bool grouped) {
      __m512i idx[V];
      __mmask64 top[V];
      for (int v = 0; v < V; ++v) idx[v] = _mm512_loadu_si512(atg + k * p.at_k + mb + 64 * v);
      if constexpr (F) {
        for (int v = 0; v < V; ++v) {
          if (move) {  // 16-bit shifts: a byte's bit j lands on its bit 7 and back without crossing bytes
            top[v] = _mm512_movepi8_mask(_mm512_sllv_epi16(idx[v], move_by));
            idx[v] = _mm512_ternarylogic_epi32(fold_mask, _mm512_srlv_epi16(idx[v], move_by), idx[v], 0xCA);
          } else {
            top[v] = _mm512_movepi8_mask(idx[v]);
          }
        }
      }
      for (int c = 0; c < C; ++c) cols[c] = p.table + bcg[k * p.bc_k + (n + c) * p.bc_n] * p.col_stride;
      for (int c = 0; c < C; ++c) {
        __m512i t[R];
        for (int r = 0; r < R; ++r) t[r] = _mm512_loadu_si512(cols[c] + 64 * r);
        __m512i fold = _mm512_setzero_si512();
        if constexpr (F) fold = _mm512_loadu_si512(cols[c] + P * p.plane_stride);
        for (int v = 0; v < V; ++v) {
          __m512i lo = lookup8<R>(idx[v], t);
          if constexpr (F) lo = _mm512_mask_add_epi8(lo, top[v], lo, fold);
          if (GL > 1 && grouped) {
            sl[c][v] = j % GL == 0 ? lo : _mm512_add_epi8(sl[c][v], lo);
          } else {
            widen(wl[c][v], ol[c][v], lo);
          }
        }
        if constexpr (P == 2) {
          for (int r = 0; r < RH; ++r) t[r] = _mm512_loadu_si512(cols[c] + p.plane_stride + 64 * r);
          if constexpr (F) fold = _mm512_loadu_si512(cols[c] + 3 * p.plane_stride);
          for (int v = 0; v < V; ++v) {
            __m512i hi = RH == R ? lookup8<R>(idx[v], t) : lookup8<RH>(_mm512_srl_epi16(idx[v], hi_drop), t);
            if constexpr (F) hi = _mm512_mask_add_epi8(hi, top[v], hi, fold);
            if (GH > 1 && grouped) {
              sh[c][v] = j % GH == 0 ? hi : _mm512_add_epi8(sh[c][v], hi);
            } else {
              widen(wh[c][v], oh[c][v], hi);
            }
          }
        }
      }
    };
    int64_t k = k0;
    if constexpr (G > 1) {
      for (; k + G <= k1; k += G) {
        for (int j = 0; j < G; ++j) {
          step(k + j, j, true);
          for (int c = 0; c < C; ++c) {
            for (int v = 0; v < V; ++v) {
              if (GL > 1 && (j + 1) % GL == 0) widen(wl[c][v], ol[c][v], sl[c][v]);
              if (P == 2 && GH > 1 && (j + 1) % GH == 0) widen(wh[c][v], oh[c][v], sh[c][v]);
            }
          }
        }
      }
    }
    for (; k < k1; ++k) step(k, 0, false);
    // Entries are stored as T - bias (unsigned planes): add bias back per product. The chunk's true sum
    // fits int32 (the caller bounds it), the biased parts are at most 2^24 each.
    const __m512i offset = _mm512_set1_epi32(static_cast<int32_t>(p.bias * (k1 - k0)));
    const __m128i shift = _mm_cvtsi32_si128(p.plane_shift);
    for (int c = 0; c < C; ++c) {
      for (int v = 0; v < V; ++v) {
        const __m512i words[4] = {_mm512_sub_epi16(wl[c][v], _mm512_slli_epi16(ol[c][v], 8)), ol[c][v],
                                  _mm512_sub_epi16(wh[c][v], _mm512_slli_epi16(oh[c][v], 8)), oh[c][v]};
        for (int half = 0; half < 2; ++half) {  // 16 words of each at a time, widened to int32
          __m512i sums[4];
          for (int w = 0; w < 4; ++w) {
            const __m256i part = half == 0 ? _mm512_castsi512_si256(words[w]) : _mm512_extracti64x4_epi64(words[w], 1);
            sums[w] = _mm512_cvtepu16_epi32(part);
          }
          int32_t* e = even[c] + 32 * v + 16 * half;
          int32_t* o = odd[c] + 32 * v + 16 * half;
          const __m512i add_e = _mm512_add_epi32(_mm512_add_epi32(sums[0], _mm512_sll_epi32(sums[2], shift)), offset);
          const __m512i add_o = _mm512_add_epi32(_mm512_add_epi32(sums[1], _mm512_sll_epi32(sums[3], shift)), offset);
          _mm512_store_si512(e, _mm512_add_epi32(_mm512_load_si512(e), add_e));
          _mm512_store_si512(o, _mm512_add_epi32(_mm512_load_si512(o), add_o));
        }
      }
    }
  }
  // Lane order: even and odd sums interleaved, 32 lanes from each 16 + 16.
  const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i second = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  alignas(64) int32_t acc[kBlock];
  for (int c = 0; c < C; ++c) {
    for (int b = 0; b < kBlock / 32; ++b) {
      const __m512i e = _mm512_load_si512(even[c] + 16 * b), o = _mm512_load_si512(odd[c] + 16 * b);
      _mm512_store_si512(acc + 32 * b, _mm512_permutex2var_epi32(e, first, o));
      _mm512_store_si512(acc + 32 * b + 16, _mm512_permutex2var_epi32(e, second, o));
    }
    store_lanes(ctg + (n + c) * p.ct_n + mb, acc, kBlock, p.accumulate);
  }
}

template <int R, int V, int C, int P, int GL, int GH, bool F = false, int RH = R>
void block(const GemmProblem& p, const uint8_t* atg, const uint8_t* bcg, int32_t* ctg, int64_t mb, int64_t n0,
           int64_t n1) {
  int64_t n = n0;
  for (; n + C <= n1; n += C) columns<R, V, C, P, GL, GH, F, RH>(p, atg, bcg, ctg, mb, n);
  for (; n < n1; ++n) columns<R, V, 1, P, GL, GH, F, RH>(p, atg, bcg, ctg, mb, n);
}

// Blocks of 64 * V lanes from m0; a last block of at most 128 (64) lanes runs on two vectors (one, where the
// table is not folded): the caller's panel and sums hold whole blocks of 256 lanes, and a block of 128 valid
// positions (attention over 128 tokens, a batch's last block) looks up half of what it would, a batch of at
// most 64 rows a quarter.
template <int R, int V, int C, int P, int GL, int GH, bool F = false, int RH = R>
void planes(const GemmProblem& p, int64_t g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const uint8_t* atg = p.at + g * p.at_g;
  const uint8_t* bcg = p.bc + g * p.bc_g;
  int32_t* ctg = p.ct + g * p.ct_g;
  for (int64_t mb = m0; mb < m1; mb += 64 * V) {
    if (V > 2 && !F && m1 - mb <= 64) {  // (a folded table's one vector costs what two do: it takes two)
      block<R, 1, P == 2 ? 1 : C, P, GL, GH, F, RH>(p, atg, bcg, ctg, mb, n0, n1);
      return;
    }
    if (V > 2 && m1 - mb <= 128) {
      block<R, 2, C, P, GL, GH, F, RH>(p, atg, bcg, ctg, mb, n0, n1);
      return;
    }
    block<R, V, C, P, GL, GH, F, RH>(p, atg, bcg, ctg, mb, n0, n1);
  }
}

// Two planes serve two columns per k step (their word accumulators spill, but most are touched once per group),
// except 8-bit codes with every look-up widened at once, which keep one, as does a last block of one vector
// (planes(); there two columns ran 0.8 times as fast as one).
template <int R, int GL, bool F = false, int RH = R>
GemmKernel two_planes(int group_hi) {
  constexpr int V = 4;
  if (group_hi >= 16) return planes<R, V, 2, 2, GL, 16, F, RH>;
  if (group_hi >= 8) return planes<R, V, 2, 2, GL, 8, F, RH>;
  if (group_hi >= 4) return planes<R, V, 2, 2, GL, 4, F, RH>;
  return planes<R, V, R == 4 && GL == 1 ? 1 : 2, 2, GL, 1, F, RH>;
}

// Two planes of 8-bit codes, the high one by code >> hi_drop: 7 bits (two registers) or 6 (one).
template <int RH>
GemmKernel high_by_fewer_bits(int group_lo, int group_hi) {
  return group_lo >= 8 ? two_planes<4, 8, false, RH>(group_hi) : two_planes<4, 1, false, RH>(group_hi);
}

// Register budget (32 zmm): word accumulators 2*P*C*V, byte sums, R*P table registers, V code vectors. One
// plane sums groups of 8, 2 or 1 (a group of 4 was no faster than 2 on the Xeon it was measured on; plan.py
// GROUPS_LOW), so a group of 4 asked for runs as 2. One plane of 8-bit codes serves two columns too, although
// its byte sums then spill a few accumulators (touched once per group): the code vectors and their bit-7 masks
// are shared, and the columns' look-ups overlap. On a Zen 5 (kernel alone, 1024 x 4608 x 128, two threads, timed
// against the one-column build) that ran 1.2-1.35 times as fast; two columns of two planes 1.07-1.35 times
// (8-bit codes widened every step: 0.96-0.98, so they keep one); four columns of a 6-7-bit plane 1.0-1.04 (not
// taken). Builds of the same kernels differ by up to 15 % on one thread there (code placement), so a change
// below that needs several builds to show.
template <int R>
GemmKernel for_width(int planes_count, int group_lo, int group_hi) {
  constexpr int V = 4;
  constexpr int C = 2;
  if (planes_count == 1) {
    if (group_lo >= 8) return planes<R, V, C, 1, 8, 1>;
    if (group_lo >= 2) return planes<R, V, C, 1, 2, 1>;
    return planes<R, V, C, 1, 1, 1>;
  }
  if (group_lo >= 8) return two_planes<R, 8>(group_hi);
  return two_planes<R, 1>(group_hi);
}

}  // namespace

GemmKernel avx512vbmi_fold_kernel(int planes_count, int group_lo, int group_hi) {
  if (planes_count == 2) return group_lo >= 8 ? two_planes<2, 8, true>(group_hi) : two_planes<2, 1, true>(group_hi);
  if (planes_count != 1) return nullptr;
  if (group_lo >= 8) return planes<2, 4, 2, 1, 8, 1, true>;
  if (group_lo >= 2) return planes<2, 4, 2, 1, 2, 1, true>;
  return planes<2, 4, 2, 1, 1, 1, true>;
}

GemmKernel avx512vbmi_planes_kernel(int bits_eff, int planes_count, int group_lo, int group_hi, int hi_drop) {
  if (planes_count != 1 && planes_count != 2) return nullptr;
  if (hi_drop != 0) {
    if (planes_count != 2 || bits_eff != 8 || hi_drop < 1 || hi_drop > 2) return nullptr;
    return hi_drop == 1 ? high_by_fewer_bits<2>(group_lo, group_hi) : high_by_fewer_bits<1>(group_lo, group_hi);
  }
  if (bits_eff <= 6) return for_width<1>(planes_count, group_lo, group_hi);
  if (bits_eff == 7) return for_width<2>(planes_count, group_lo, group_hi);
  return for_width<4>(planes_count, group_lo, group_hi);
}

}  // namespace lutgen
