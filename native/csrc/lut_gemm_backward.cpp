// Backward LUT-GEMMs with float32 gradient tables:
//   gA[g][m][k] = sum_n gC[g][m][n] * Ga[a[g][m][k]][b[g][k][n]]
//   gB[g][k][n] = sum_m gC[g][m][n] * Gb[a[g][m][k]][b[g][k][n]]
// Direct forms: each output is a dot product of a contiguous gradient row with a gathered table row or
// column (for few rows M). Table forms (for M at least the table height), without gathers in the hot loop:
//   gA: per k, P_k[c][n] = Ga[c][b[k][n]] is built once; gA[m][k] = dot(gC[m][:], P_k[a[m][k]][:]).
//   gB: per k, S[c][:] = sum of gC[m][:] over the rows m with a[m][k] = c; gB[k][n] = sum_c S[c][n] Gb[c][b[k][n]].
// The loops are vectorised by the compiler once per ISA via target_clones (picked at run time).
#include "lut_gemm_common.h"

namespace lutgen {

__attribute__((target_clones("avx512f", "avx2", "default"))) void backward_grad_a(const BackwardProblem& p,
                                                                                   int64_t row0, int64_t row1) {
  for (int64_t row = row0; row < row1; ++row) {  // row = g*M + m
    const int64_t g = row / p.M;
    const uint8_t* ca = p.ca + row * p.K;
    const float* gc = p.gc + row * p.N;
    float* out = p.grad_a + row * p.K;
    for (int64_t k = 0; k < p.K; ++k) {
      const float* table_row = p.ga_rows + static_cast<int64_t>(ca[k]) * p.NB;
      const uint8_t* cb = p.cb + (g * p.K + k) * p.N;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t n = 0; n < p.N; ++n) s += gc[n] * table_row[cb[n]];
      out[k] = s;
    }
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void backward_grad_b(const BackwardProblem& p,
                                                                                   int64_t row0, int64_t row1) {
  for (int64_t row = row0; row < row1; ++row) {  // row = g*K + k
    const int64_t g = row / p.K;
    const uint8_t* at = p.at + row * p.M;
    const uint8_t* cb = p.cb + row * p.N;
    float* out = p.grad_b + row * p.N;
    for (int64_t n = 0; n < p.N; ++n) {
      const float* table_col = p.gb_cols + static_cast<int64_t>(cb[n]) * p.NA;
      const float* gct = p.gct + (g * p.N + n) * p.M;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t m = 0; m < p.M; ++m) s += gct[m] * table_col[at[m]];
      out[n] = s;
    }
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void backward_build_p(const BackwardProblem& p,
                                                                                    int64_t g, int64_t k,
                                                                                    float* out) {
  const uint8_t* cb = p.cb + (g * p.K + k) * p.N;
  for (int64_t c = 0; c < p.NA; ++c) {
    const float* table_row = p.ga_rows + c * p.NB;
    float* row = out + c * p.N;
    for (int64_t n = 0; n < p.N; ++n) row[n] = table_row[cb[n]];
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void backward_grad_a_tables(
    const BackwardProblem& p, int64_t g, int64_t k0, int64_t k1, const float* tables, int64_t m0, int64_t m1) {
  for (int64_t m = m0; m < m1; ++m) {
    const int64_t row = g * p.M + m;
    const uint8_t* ca = p.ca + row * p.K;
    const float* gc = p.gc + row * p.N;
    float* out = p.grad_a + row * p.K;
    for (int64_t k = k0; k < k1; ++k) {
      const float* prow = tables + ((k - k0) * p.NA + ca[k]) * p.N;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t n = 0; n < p.N; ++n) s += gc[n] * prow[n];
      out[k] = s;
    }
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void backward_grad_b_hist(const BackwardProblem& p,
                                                                                        int64_t row0, int64_t row1,
                                                                                        float* sums) {
  for (int64_t row = row0; row < row1; ++row) {  // row = g*K + k
    const int64_t g = row / p.K;
    const uint8_t* at = p.at + row * p.M;
    const uint8_t* cb = p.cb + row * p.N;
    for (int64_t i = 0; i < p.NA * p.N; ++i) sums[i] = 0.0f;
    for (int64_t m = 0; m < p.M; ++m) {
      const float* gc = p.gc + (g * p.M + m) * p.N;
      float* bucket = sums + static_cast<int64_t>(at[m]) * p.N;
#pragma omp simd
      for (int64_t n = 0; n < p.N; ++n) bucket[n] += gc[n];
    }
    // out[n] = sum over c (in order) of sums[c][n] * Gb[c][b_n]: rows of sums and of Gb, consecutive in n.
    float* out = p.grad_b + row * p.N;
    for (int64_t n = 0; n < p.N; ++n) out[n] = 0.0f;
    for (int64_t c = 0; c < p.NA; ++c) {
      const float* bucket = sums + c * p.N;
      const float* table_row = p.gb_rows + c * p.NB;
#pragma omp simd
      for (int64_t n = 0; n < p.N; ++n) out[n] += bucket[n] * table_row[cb[n]];
    }
  }
}

}  // namespace lutgen
