// The rows order of the byte-plane LUT-GEMM kernels, at a vector width W: lanes over W columns n instead of
// rows m. For each slice of k steps, the W columns' planes are transposed into rows by code (W bytes: one entry
// per column), and each row m of a then adds, per k step and plane, the row of its code: a load and a widening
// add per W look-ups at any code width, where AVX2's kernels with lanes over m need 16 vpshufb and 15 blends per
// 32 lanes of 8-bit codes. The transposes are paid over the rows of a call: its tasks should span a few
// thousand (run_rows_order). (With 64 columns per zmm register it ran 3x slower per look-up than VBMI's
// permutes on an AMD Zen 5, and slower per row than 32 columns per ymm; probably because a k step's rows of
// 8-bit codes take 16 KiB, so two steps fit L1 and each lane's 128 bytes of word sums go to L2 and back every
// two steps, four times the ymm order's traffic per look-up (a slice in L2 instead was no better: 9.2 against
// 11.2 ms). VBMI keeps its lanes over m.)
//
// Included by a kernel's translation unit, compiled for its ISA, with its vector traits V:
//   V::kWidth                    columns per vector (32 or 64); V::Vec, its type
//   V::zero(), V::load(p), V::store(p, v)   (aligned)
//   V::add_bytes(a, b)
//   V::add_words(even, odd, r)   even += the even bytes of r as 16-bit words; odd += its odd bytes
//   V::transpose16(cols, dst)    dst[a * kWidth + i] = cols[i][a] for a < kWidth, i < 16
//   V::widen(words, planes, offset, shift, out, add)
//                                a lane's even/odd word sums of each plane (low, then high << shift), plus
//                                offset, as kWidth int32 sums into out (added where `add`), in column order
// Plain C++ without library templates (std::vector, std::min): an inline function of the library compiled here,
// with the TU's instruction set, could be the copy the linker keeps for the other translation units too.
#pragma once

#include <cstdint>
#include <cstring>

#include "lut_gemm_common.h"

namespace lutgen {

constexpr int64_t kRowsCache = 32 * 1024;  // bytes of transposed rows per slice of k steps (about L1)

// The rows of W columns for one k step and plane `pl`, by code of the looked-up width (2^bits_eff rows): as the
// layout's kernels read them, with a fold's byte added to the rows of codes whose top bit is set (F; AVX2's
// fold layout) and a high plane of 8-bit codes by code >> hi_drop. `cols[j]`: column j's table entry (a
// block's columns past the last repeat a valid one: their sums are discarded). `spare`: 256 * W bytes.
template <class V, int P, bool F>
void rows_of(const GemmProblem& p, const uint8_t* const* cols, int pl, uint8_t* dst, uint8_t* spare) {
  constexpr int W = V::kWidth;
  const int64_t height = int64_t{1} << p.bits_eff;
  const int drop = pl == 1 ? p.hi_drop : 0;
  const int64_t stored = F ? height / 2 : height >> drop;
  uint8_t* out = drop > 0 ? spare : dst;
  const uint8_t* part[16];
  for (int64_t a0 = 0; a0 < stored; a0 += W) {  // (fewer than W stored rows: the extra ones are unused)
    for (int c0 = 0; c0 < W; c0 += 16) {
      for (int j = 0; j < 16; ++j) part[j] = cols[c0 + j] + pl * p.plane_stride + a0;
      V::transpose16(part, out + a0 * W + c0);
    }
  }
  if (drop > 0) {
    for (int64_t c = 0; c < height; ++c) V::store(dst + c * W, V::load(spare + (c >> drop) * W));
  }
  if constexpr (F) {
    alignas(64) uint8_t fold[W];
    for (int j = 0; j < W; ++j) fold[j] = cols[j][(P + pl) * p.plane_stride];
    const typename V::Vec f = V::load(fold);
    for (int64_t c = 0; c < stored; ++c) V::store(dst + (stored + c) * W, V::add_bytes(V::load(dst + c * W), f));
  }
}

// The rows order over lanes [m0, m1) (any count: no padding is read) and columns [n0, n1), all of K. Each
// lane's sums of even and odd columns are kept in 16-bit words per plane over chunks of 256 k steps (byte sums
// stay below 2^16), then widened into int32.
template <class V, int P, bool F>
void rows_order(const GemmProblem& p, int64_t g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  using Vec = typename V::Vec;
  constexpr int W = V::kWidth;
  const uint8_t* atg = p.at + g * p.at_g + m0;
  const uint8_t* bcg = p.bc + g * p.bc_g;
  int32_t* ctg = p.ct + g * p.ct_g + m0;
  const int64_t height = int64_t{1} << p.bits_eff, count = m1 - m0;
  const uint8_t mask = static_cast<uint8_t>(height - 1);
  const int64_t fit = kRowsCache / (P * height * W), slice = fit > 1 ? fit : 1;
  const int64_t plane_bytes = height * W, step_bytes = P * plane_bytes;
  // The slice's codes are copied to rows `pitch` apart: an odd number of cache lines, so that a lane's codes
  // of consecutive k fall in different cache sets (at the caller's stride, often a multiple of 4 KiB, they
  // would all share one set and evict each other).
  const int64_t lines = (count + 63) / 64;
  const int64_t pitch = (lines + (lines % 2 == 0 ? 1 : 0)) * 64;
  // The thread's buffers: the slice's rows and spare rows; its codes; each lane's words and int32 sums (W each).
  const int64_t cache_bytes = slice * step_bytes, words_bytes = count * 2 * P * static_cast<int64_t>(sizeof(Vec));
  uint8_t* const cache = rows_scratch(0, cache_bytes + 256 * W);
  uint8_t* const spare = cache + cache_bytes;
  uint8_t* const panel = rows_scratch(1, slice * pitch);
  Vec* const words = reinterpret_cast<Vec*>(rows_scratch(2, words_bytes));
  int32_t* const acc = reinterpret_cast<int32_t*>(rows_scratch(3, count * 4 * W));
  for (int64_t nb = n0; nb < n1; nb += W) {
    const int64_t width = n1 - nb < W ? n1 - nb : W;
    for (int64_t k0 = 0; k0 < p.K; k0 += 256) {
      const int64_t k1 = p.K - k0 < 256 ? p.K : k0 + 256;
      for (int64_t v = 0; v < count * 2 * P; ++v) words[v] = V::zero();
      for (int64_t kb = k0; kb < k1; kb += slice) {
        const int64_t steps = k1 - kb < slice ? k1 - kb : slice;
        for (int64_t s = 0; s < steps; ++s) {
          const uint8_t* cols[W];
          for (int j = 0; j < W; ++j) {
            cols[j] = p.table + bcg[(kb + s) * p.bc_k + (nb + (j < width ? j : 0)) * p.bc_n] * p.col_stride;
          }
          for (int pl = 0; pl < P; ++pl) {
            rows_of<V, P, F>(p, cols, pl, cache + s * step_bytes + pl * plane_bytes, spare);
          }
          std::memcpy(panel + s * pitch, atg + (kb + s) * p.at_k, static_cast<size_t>(count));
        }
        for (int64_t i = 0; i < count; ++i) {
          Vec w[2 * P];
          for (int v = 0; v < 2 * P; ++v) w[v] = words[i * 2 * P + v];
          const uint8_t* row = cache;
          for (int64_t s = 0; s < steps; ++s, row += step_bytes) {
            const uint8_t* r0 = row + static_cast<int64_t>(panel[s * pitch + i] & mask) * W;
            for (int pl = 0; pl < P; ++pl) V::add_words(w[2 * pl], w[2 * pl + 1], V::load(r0 + pl * plane_bytes));
          }
          for (int v = 0; v < 2 * P; ++v) words[i * 2 * P + v] = w[v];
        }
      }
      // Entries are stored as T - bias: bias per product back (int32 sums: the engine bounds the results by
      // that range).
      const int32_t offset = static_cast<int32_t>(p.bias * (k1 - k0));
      for (int64_t i = 0; i < count; ++i) V::widen(words + i * 2 * P, P, offset, p.plane_shift, acc + i * W, k0 > 0);
    }
    for (int64_t j = 0; j < width; ++j) {
      int32_t* out = ctg + (nb + j) * p.ct_n;
      const int32_t* sums = acc + j;
      if (p.accumulate) {
        for (int64_t i = 0; i < count; ++i) out[i] += sums[i * W];
      } else {
        for (int64_t i = 0; i < count; ++i) out[i] = sums[i * W];
      }
    }
  }
}

}  // namespace lutgen
