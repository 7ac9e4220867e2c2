// Portable LUT-GEMM kernel: int32 column tables, any width, any table values. The last-resort path.
#include <cstring>

#include "lut_gemm_common.h"

namespace lutgen {
namespace {

constexpr int kLanes = 64;

void scalar_i32(const GemmProblem& p, int64_t g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const uint8_t* atg = p.at + g * p.at_g;
  const uint8_t* bcg = p.bc + g * p.bc_g;
  int32_t* ctg = p.ct + g * p.ct_g;
  for (int64_t mb = m0; mb < m1; mb += kLanes) {
    for (int64_t n = n0; n < n1; ++n) {
      int32_t acc[kLanes];
      std::memset(acc, 0, sizeof(acc));
      for (int64_t k = 0; k < p.K; ++k) {
        const int32_t* col = reinterpret_cast<const int32_t*>(p.table + bcg[k * p.bc_k + n * p.bc_n] * p.col_stride);
        const uint8_t* idx = atg + k * p.at_k + mb;
        for (int i = 0; i < kLanes; ++i) acc[i] += col[idx[i]];
      }
      store_lanes(ctg + n * p.ct_n + mb, acc, kLanes, p.accumulate);
    }
  }
}

}  // namespace

GemmKernel scalar_i32_kernel(int) { return scalar_i32; }

}  // namespace lutgen
