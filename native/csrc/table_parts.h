// The parts of a table that the LUT-GEMM kernels do not look up. A plan (approxlut/native/plan.py) writes a
// table as T[a][b] = x[a]*y[b] + r[a] + c[b] + bias + scale*Q[a][b] (a, b stored codes): the kernels sum the
// byte planes of Q; the exact int8 product x*y runs on the same code panel through torch's int8 GEMM (oneDNN:
// AMX or VNNI); the row offsets r are summed by a one-column LUT-GEMM; this file adds everything up.
#pragma once

#include <torch/extension.h>

#include <cstdint>
#include <vector>

namespace lutgen {

struct Parts {
  int64_t scale = 1;
  const int32_t* exact = nullptr;  // [G][N][exact_lanes] sums of x*y, or none
  int64_t exact_lanes = 0;
  const int32_t* rows = nullptr;   // [G][Mp] sums of r, or none
  std::vector<int64_t> cols;       // [G][N]: sums of c plus K*bias
  int64_t N = 0, Mp = 0;
  bool trivial = true;  // scale 1 and no other part: the kernel's sums are the result

  int64_t value(int64_t g, int64_t n, int64_t m, int32_t sum) const {
    int64_t v = scale * sum + cols[g * N + n];
    if (exact != nullptr) v += exact[(g * N + n) * exact_lanes + m];
    if (rows != nullptr) v += rows[g * Mp + m];
    return v;
  }
};

// The parts for a kernel result ct [G][N][Mp]: `exact` [G][N][lanes <= Mp] int32 and `rows` [G][1][Mp] int32 may be
// empty; the column sums come from `col_offset` (int64 per stored code of b, may be empty) over the codes bc
// [G][K][N].
Parts make_parts(const torch::Tensor& ct, int64_t scale, const torch::Tensor& exact, const torch::Tensor& rows,
                 const torch::Tensor& col_offset, const torch::Tensor& bc, int64_t constant);

// C^T [G][N][valid] = sum_k int8(bc[g][k][n]) * int8(at[g][k][m]) for the first `valid` lanes m of at
// [G][K][Mp], exactly in int32 (torch._int_mm per group).
torch::Tensor exact_int8(const torch::Tensor& at, const torch::Tensor& bc, int64_t valid);

// ct += the other parts, in place, on the first `valid` lanes (the padded ones are left as they are); false
// when a result lies outside int32 (ct is then meaningless).
bool finish_gemm(torch::Tensor& ct, int64_t valid, int64_t scale, const torch::Tensor& exact,
                 const torch::Tensor& rows, const torch::Tensor& col_offset, const torch::Tensor& bc,
                 int64_t constant);

// The result of a kernel call written once as float32: out[g][m][n] (any strides; m < valid, n < N) = the value of
// lane m, column n (ct plus the other parts, as finish_gemm sums them, plus a float exact product exact_float
// [G][N][lanes >= valid] of integer values where not empty), rounded to float32, then the epilogue
// step by step as torch does it: times ep_scale, plus ep_bias, plus ep_extra (each empty, or one per column, or
// one per lane where ep_lanes: a GEMM run with its operands swapped). An affine epilogue (ep_zero and ep_offset
// float64 on the epilogue's axis, code_sums int32 on the other; all empty where not) rescales as the affine
// scheme's step-by-step path does: in float64, the value minus (ep_offset + ep_zero * code_sums), times
// ep_scale, rounded once to float32; then the bias and extra term. False when a value lies outside int32 (out
// is then meaningless).
bool finish_into(torch::Tensor& out, const torch::Tensor& ct, int64_t valid, int64_t scale,
                 const torch::Tensor& exact, const torch::Tensor& rows, const torch::Tensor& col_offset,
                 const torch::Tensor& bc, int64_t constant, const torch::Tensor& exact_float,
                 const torch::Tensor& ep_scale, const torch::Tensor& ep_bias, const torch::Tensor& ep_extra,
                 const torch::Tensor& ep_zero, const torch::Tensor& ep_offset, const torch::Tensor& code_sums,
                 bool ep_lanes);

}  // namespace lutgen
