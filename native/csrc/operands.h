// Float operands to the bytes the kernels read (torch side; the loops are in convert_simd.cpp).
#pragma once

#include <torch/extension.h>

#include <cstdint>
#include <string>
#include <tuple>

namespace lutgen {

// Values of a contiguous float32 tensor as int8 (vmin < 0) or uint8, and whether every value was an
// integer within [vmin, vmax] (when not, the returned values are meaningless). `isa` picks the loop
// ("avx512*", "avx2", else SSE2).
std::tuple<torch::Tensor, bool> float_to_values(const torch::Tensor& x, int64_t vmin, int64_t vmax,
                                                const std::string& isa);

// Codes clamp(round(x / scale + zero), qmin, qmax) of a contiguous float32 tensor, rounding half to even in
// float32 exactly as approxlut.nn.quant.quantize does, as int8 (qmin < 0) or uint8; false when x holds NaN.
std::tuple<torch::Tensor, bool> quantize_codes(const torch::Tensor& x, double scale, double zero, int64_t qmin,
                                               int64_t qmax, const std::string& isa);

// quantize_codes of unsigned codes (0 <= qmin), with each row's sum of codes (rows of `row` consecutive values:
// int32 [numel / row]), summed while the codes are in the cache: the affine scheme's sums of activation codes.
std::tuple<torch::Tensor, torch::Tensor, bool> quantize_code_rows(const torch::Tensor& x, double scale, double zero,
                                                                  int64_t qmin, int64_t qmax, int64_t row,
                                                                  const std::string& isa);

}  // namespace lutgen
