// Backward LUT-GEMMs with float32 gradient tables:
//   gA[g][m][k] = sum_n gC[g][m][n] * Ga[a[g][m][k]][b[g][k][n]]
//   gB[g][k][n] = sum_m gC[g][m][n] * Gb[a[g][m][k]][b[g][k][n]]
// Each output is a dot product of a contiguous gradient row with a gathered table row/column. The loops
// are vectorised by the compiler (gathers) once per ISA via target_clones; the loader picks the clone at
// run time.
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

}  // namespace lutgen
