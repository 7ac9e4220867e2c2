// Torch-side helpers of the direct conv path (see conv_lowering.cpp); bound in lut_gemm.cpp.
#pragma once

#include <torch/extension.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace lutgen {

// The first `count` elements of `buffer` (grown as needed), from a 64-byte boundary: a std::vector's storage is
// only 16-byte aligned, so the kernels' 64-byte loads of a panel could straddle cache lines, and their speed
// moved by up to 16 % with where an allocation happened to fall.
template <class T>
T* aligned_elements(std::vector<T>& buffer, int64_t count) {
  const size_t pad = 64 / sizeof(T);
  if (buffer.size() < static_cast<size_t>(count) + pad) buffer.resize(static_cast<size_t>(count) + pad);
  const auto address = reinterpret_cast<uintptr_t>(buffer.data());
  return buffer.data() + (64 - address % 64) % 64 / sizeof(T);
}

// XOR every one of `count` codes with `flip` (in parallel).
void flip_codes(uint8_t* codes, int64_t count, uint8_t flip);

// Checks a kernel's arguments against its table: the plane shift (other than 8 for the VBMI kernels only),
// the fold bit, the high plane's dropped bits, and that every column the codes of `bc` select lies inside
// `table` with all the bytes the kernel reads there (an error otherwise).
void check_kernel_table(const std::string& kernel, int bits_eff, int planes, int64_t plane_shift, int fold_bit,
                        int hi_drop, const torch::Tensor& table, int64_t col_stride, int64_t plane_stride,
                        const torch::Tensor& bc);

// Largest code (value & mask) of an int8/uint8 tensor (read in place where it is dense, e.g. transposed).
int64_t max_code(const torch::Tensor& x, int64_t mask);

// Geometry of a 2-D convolution: kernel, stride, zero padding (top, bottom, left, right), dilation, groups.
struct ConvGeometry {
  int64_t kh, kw, sh, sw, top, bottom, left, right, dh, dw, groups;
};

// The LUT-GEMM kernel and its table (layouts in lut_gemm_common.h).
// rows_order: run the kernel's rows order (avx2/nibble and avx2/fold; see rows_order.h) over spans of
// thousands of output positions, each ahead of its blocks.
struct KernelTable {
  std::string name;
  int bits_eff, planes, group_lo, group_hi, plane_shift, fold_bit, hi_drop;
  torch::Tensor table;
  int64_t col_stride, plane_stride, bias;
  bool rows_order;
};

// What surrounds the kernel (see table_parts.h and approxlut/native/plan.py): stored codes are
// (value & mask) ^ flip, padding takes value `pad_value`; the kernel's sums are multiplied by `scale`; plus the
// int8 exact product (on the same panel), the row offsets (a one-column table of one or two planes, or empty, with
// its bias), the column offsets (int64 per stored code of b, or empty) and `bias` per product; plus a float exact
// product shaped like the output (or empty); then the layer's epilogue per output channel (empty tensors where
// none). The panel holds k_slice rows of k at a time. With exact_shift > 0 the int8 product reads each stored code
// as int8(((code << exact_shift) & 0xFF) ^ exact_flip): a coarse table's codes (a >> L) as the values
// a & ~(2^L - 1). An affine epilogue (out_zero and out_offset float64 per output channel, sum_codes the layer's
// activation codes shaped like x, before any shift, padded by code sum_pad; all empty where not) takes the
// zero-point terms off before its rescale (see RunEpilogue), with each output's sum of codes over its receptive
// field summed block by block.
struct ConvParts {
  int64_t mask, flip, k_slice, scale;
  bool exact_int8;
  torch::Tensor row_table;
  int64_t row_bias;
  torch::Tensor col_offset;
  int64_t bias;
  torch::Tensor exact_nchw, out_scale, out_bias, out_extra;
  torch::Tensor fold_weights;  // int8 [256] by b's stored code, or empty (see conv_run)
  int64_t exact_shift, exact_flip;
  int64_t pad_value;
  torch::Tensor out_zero, out_offset, sum_codes;
  int64_t sum_pad;
};

// out [N, O, OH, OW] (float32, contiguous) of the LUT convolution of x [N, C, H, W] (int8/uint8 values,
// contiguous) with the stored weight codes bc [G, Cg*kh*kw, O/G], in one parallel pass over blocks of
// kLaneAlign output positions: each block's panel of codes stays in the core's cache while the kernel, the
// exact product and the row offsets read it. In the rows order, span by span of positions (up to 32 MiB of their
// codes), the kernel's sums come first and the span's blocks then add the other parts.
void conv_run(const torch::Tensor& x, const ConvGeometry& geometry, const KernelTable& kernel,
              const torch::Tensor& bc, const ConvParts& parts, torch::Tensor& out);

}  // namespace lutgen
