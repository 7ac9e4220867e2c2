// Torch-side helpers of the direct conv path (see conv_lowering.cpp); bound in lut_gemm.cpp.
#pragma once

#include <torch/extension.h>

#include <cstdint>
#include <tuple>
#include <vector>

namespace lutgen {

// XOR every one of `count` codes with `flip` (in parallel).
void flip_codes(uint8_t* codes, int64_t count, uint8_t flip);

// Implicit im2col: codes (value & mask) of x [N, C, H, W] (int8/uint8, contiguous) as the K-major panel
// [G, Cg*kh*kw, Mp] (m = (n, oh, ow), padded to a multiple of kLaneAlign; those lanes are discarded), XOR
// `flip` when a code reaches it (flip > 0); also an upper bound of the panel's stored codes and whether the
// flip was applied.
// padding is (top, bottom, left, right); positions outside the input are value 0 (code 0).
// The panel is a view into `workspace` (a uint8 tensor, grown in place when too small): reusing one buffer
// across calls spares the page faults of a fresh multi-megabyte allocation, which cost as much as the
// packing itself. The view is valid until the next call with the same workspace.
std::tuple<torch::Tensor, int64_t, bool> conv2d_pack(const torch::Tensor& x, int64_t kh, int64_t kw,
                                               std::vector<int64_t> stride, std::vector<int64_t> padding,
                                               std::vector<int64_t> dilation, int64_t groups, int64_t mask,
                                               int64_t flip, torch::Tensor workspace);

// out [N, O, OH, OW] float32 (contiguous) from the kernel's transposed result ct [G, O/G, Mp] int32 and the
// table's other parts (see table_parts.h; empty tensors for parts a plan does not have), plus `exact_nchw`
// (float32/float64 exact integer products shaped like out, or empty) when the exact product came from a
// native float convolution. A quantised layer's epilogue follows, per output channel (each may be empty):
// y = sum * out_scale[o], then + out_bias[o], then + out_extra[o], in float32 as torch computes them.
void conv_output(const torch::Tensor& ct, torch::Tensor& out, int64_t scale, const torch::Tensor& exact,
                 const torch::Tensor& rows, const torch::Tensor& col_offset, const torch::Tensor& bc,
                 int64_t constant, const torch::Tensor& exact_nchw, const torch::Tensor& out_scale,
                 const torch::Tensor& out_bias, const torch::Tensor& out_extra);

}  // namespace lutgen
