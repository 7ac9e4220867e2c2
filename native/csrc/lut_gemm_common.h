// Shared definitions of the CPU LUT-GEMM kernels: the problem descriptor and the per-ISA entry points.
//
// Layout (prepared by approxlut/native/engines.py):
//   at    uint8 codes of operand a, transposed: a[g][m][k] at at[g*at_g + k*at_k + m]; lanes run over m,
//         m is padded to a multiple of kLaneAlign with code 0 (the padded outputs are discarded).
//   bc    uint8 codes of operand b: b[g][k][n] at bc[g*bc_g + k*bc_k + n*bc_n] (the binding passes them
//         n-major, bc_k = 1, so that a column's codes over k are consecutive bytes).
//   table the LUT by columns (a fixed code of b selects column T[:, b]); the layout depends on the kernel:
//         i32   int32 T[a][b] at table[b*col_stride + 4*a] (bytes)
//         i16   int16 column padded to >= 64 entries: T[a][b] - bias at table[b*col_stride + 2*a]
//         bytes T - bias as unsigned 16-bit, two byte planes per column, each padded to >= 64 entries: low
//               byte at table[b*col_stride + a], high byte at table[b*col_stride + plane_stride + a]
//         bytes1 T - bias as unsigned 8-bit (tables spanning <= 256 values): the low plane alone
//         (bytes, 8-bit codes, hi_drop > 0: the high plane holds 256 >> hi_drop rows, read at code >> hi_drop)
//         fold  bytes or bytes1 of the rows whose code has bit fold_bit clear, then one register per plane of
//               the column's fold byte at table[b*col_stride + (planes + i)*plane_stride], added to plane i's
//               looked-up byte where the code has that bit set (VBMI: any bit of 8-bit codes; AVX2: the top
//               bit, bits_eff - 1)
//   (for i16 and bytes every product is stored minus `bias`; kernels add bias per product back)
//   ct    int32 result, transposed: C[g][m][n] at ct[g*ct_g + n*ct_n + m].
// This header holds plain C++ only (no torch), so that ISA-specific translation units never compile
// torch's inline functions with wider instruction sets than the CPU may have.
#pragma once

#include <cstdint>
#include <string>

namespace lutgen {

constexpr int64_t kLaneAlign = 256;  // m padding: every kernel's lane block divides it
constexpr int64_t kKBlock = 1024;    // k steps per kernel call (cache blocking)

struct GemmProblem {
  const uint8_t* at;
  int64_t at_g, at_k;
  const uint8_t* bc;
  int64_t bc_g, bc_k, bc_n;
  const uint8_t* table;
  int64_t col_stride, plane_stride;
  int64_t bias;     // stored entry + bias = T (layouts i16 and bytes)
  int plane_shift;  // layout bytes: T - bias = low + (high << plane_shift), 1..8
  int fold_bit;     // layout fold: the bit of a's codes the fold kernels fold on (0..7)
  int hi_drop;      // layout bytes, two planes: the high plane is looked up on a's code >> hi_drop (0: the code)
  int32_t* ct;
  int64_t ct_g, ct_n;
  int64_t K;
  int bits_eff;     // every code of a is < 2^bits_eff
  bool accumulate;  // add to ct (a later block of K) instead of overwriting it
};

// Writes, or adds when accumulating over blocks of K, `count` lane sums to `out`.
static inline void store_lanes(int32_t* out, const int32_t* sums, int count, bool accumulate) {
  if (accumulate) {
    for (int i = 0; i < count; ++i) out[i] += sums[i];
  } else {
    for (int i = 0; i < count; ++i) out[i] = sums[i];
  }
}

// Processes group g, lanes [m0, m1) and output columns [n0, n1). m0 is a multiple of kLaneAlign; m1 may end
// inside a block (its valid rows), and the kernel then runs whole blocks of its own width (a divisor of
// kLaneAlign) up to it: the padded lanes it reads and writes are discarded.
using GemmKernel = void (*)(const GemmProblem&, int64_t g, int64_t m0, int64_t m1, int64_t n0, int64_t n1);

// The kernel `name` ("avx512vbmi/planes", "avx2/nibble", ...) for codes below 2^bits_eff; the byte-plane
// kernels also take the number of planes and the byte-sum groups of each; nullptr when unknown.
GemmKernel find_kernel(const std::string& name, int bits_eff, int planes, int group_lo, int group_hi, int hi_drop);
// A thread's scratch buffer number `slot` (< kRowsScratchSlots) of at least `bytes`, 64-byte aligned, kept for
// its next call (the rows order's; defined in lut_gemm.cpp, compiled for the baseline ISA).
constexpr int kRowsScratchSlots = 4;
uint8_t* rows_scratch(int slot, int64_t bytes);
// The rows-order kernel that reads the table of `name` (avx2/nibble or avx2/fold), or nullptr.
GemmKernel find_rows_kernel(const std::string& name, int bits_eff, int planes);
// Runs `fn`, a rows-order kernel, over groups [0, G), lanes [0, rows) and columns [0, N) of p (all of p.K):
// in parallel tasks of 32 columns and up to a few thousand lanes.
void run_rows_order(const GemmProblem& p, GemmKernel fn, int64_t G, int64_t rows, int64_t N);

// Each returns the kernel instantiated for bits_eff, or nullptr when that file was built without it.
GemmKernel scalar_i32_kernel(int bits_eff);
GemmKernel avx2_gather_kernel(int bits_eff);
// Two planes; 8-bit codes may take the high plane by code >> hi_drop (1..4; 0: by the code).
GemmKernel avx2_nibble_kernel(int bits_eff, int hi_drop);
// One byte plane (tables spanning <= 256 values), its entries at most 255 / group_lo (byte sums of group_lo k
// steps before widening).
GemmKernel avx2_nibble1_kernel(int bits_eff, int group_lo);
// Folded on bit bits_eff - 1 (see gemm_avx2.cpp): one or two planes of the rows with that bit clear (one:
// grouped as avx2_nibble1_kernel).
GemmKernel avx2_fold_kernel(int bits_eff, int planes, int group_lo);
// The rows order (see rows_order.h) of one or two planes of the avx2/nibble layout, or of avx2/fold's (fold),
// for codes of 5..8 bits; each call runs all of K over its lanes, which should number in the thousands.
GemmKernel avx2_rows_kernel(int bits_eff, int planes, bool fold);
GemmKernel avx512_gather_kernel(int bits_eff);
GemmKernel avx512bw_i16_kernel(int bits_eff);
// One or two byte planes; entries of the low (high) plane are at most 255 / group_lo (255 / group_hi), so
// that many looked-up vectors may be summed as bytes before widening (1: no such bound). Two planes take
// group_lo 1 or 8 and group_hi 1, 4, 8 or 16; one plane group_lo 1, 2, 4 or 8. Two planes of 8-bit codes may
// look the high plane up on code >> hi_drop (1 or 2; 0: on the code).
GemmKernel avx512vbmi_planes_kernel(int bits_eff, int planes, int group_lo, int group_hi, int hi_drop);
// One or two planes of a folded table (8-bit codes; see gemm_avx512vbmi.cpp): the planes hold 128 rows, then
// one register per plane of the column's fold byte.
GemmKernel avx512vbmi_fold_kernel(int planes, int group_lo, int group_hi);

// Backward GEMMs with float32 gradient tables (see lut_gemm_backward.cpp).
struct BackwardProblem {
  const uint8_t* ca;  // a codes, row-major: a[g][m][k] at ca[(g*M + m)*K + k]
  const uint8_t* at;  // a codes, transposed: at[(g*K + k)*M + m]
  const uint8_t* cb;  // b codes: b[g][k][n] at cb[(g*K + k)*N + n]
  const float* gc;    // grad_c[g][m][n] at gc[(g*M + m)*N + n]
  const float* gct;   // grad_c transposed: gct[(g*N + n)*M + m]
  const float* ga_rows;  // Ga[a][b] at ga_rows[a*NB + b]
  const float* gb_cols;  // Gb[a][b] at gb_cols[b*NA + a]
  const float* gb_rows;  // Gb[a][b] at gb_rows[a*NB + b]
  float* grad_a;         // [G][M][K]
  float* grad_b;         // [G][K][N]
  int64_t M, K, N, NA, NB;
};

void backward_grad_a(const BackwardProblem& p, int64_t row0, int64_t row1);  // rows (g, m), direct
void backward_grad_b(const BackwardProblem& p, int64_t row0, int64_t row1);  // rows (g, k), direct
// P_k[c][n] = Ga[c][b[g][k][n]] into out [NA][N].
void backward_build_p(const BackwardProblem& p, int64_t g, int64_t k, float* out);
// gA[g][m][k] for k in [k0, k1), m in [m0, m1) from tables [k1-k0][NA][N] built by backward_build_p.
void backward_grad_a_tables(const BackwardProblem& p, int64_t g, int64_t k0, int64_t k1, const float* tables,
                            int64_t m0, int64_t m1);
// gB rows (g, k) through per-code sums of grad_c rows; sums is scratch of NA*N floats.
void backward_grad_b_hist(const BackwardProblem& p, int64_t row0, int64_t row1, float* sums);

}  // namespace lutgen
