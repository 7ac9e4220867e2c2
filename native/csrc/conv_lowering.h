// Torch-side helpers of the direct conv path (see conv_lowering.cpp); bound in lut_gemm.cpp.
#pragma once

#include <torch/extension.h>

#include <cstdint>
#include <tuple>
#include <vector>

namespace lutgen {

// Values of a contiguous float32 tensor as int8 (vmin < 0) or uint8, and whether every value was an
// integer within [vmin, vmax] (when not, the returned values are meaningless).
std::tuple<torch::Tensor, bool> float_to_values(const torch::Tensor& x, int64_t vmin, int64_t vmax);

// Implicit im2col: codes (value & mask) of x [N, C, H, W] (int8/uint8, contiguous) as the K-major panel
// [G, Cg*kh*kw, Mp] (m = (n, oh, ow), padded with code 0 to a multiple of kLaneAlign) and the largest code
// of x (an upper bound of the panel's codes).
// padding is (top, bottom, left, right); positions outside the input get code 0.
// The panel is a view into `workspace` (a uint8 tensor, grown in place when too small): reusing one buffer
// across calls spares the page faults of a fresh multi-megabyte allocation, which cost as much as the
// packing itself. The view is valid until the next call with the same workspace.
std::tuple<torch::Tensor, int64_t> conv2d_pack(const torch::Tensor& x, int64_t kh, int64_t kw,
                                               std::vector<int64_t> stride, std::vector<int64_t> padding,
                                               std::vector<int64_t> dilation, int64_t groups, int64_t mask,
                                               torch::Tensor workspace);

// out [N, O, OH, OW] float32 (contiguous) from the kernel's transposed result ct [G, O/G, Mp] int32.
void conv_output(const torch::Tensor& ct, torch::Tensor& out);

}  // namespace lutgen
