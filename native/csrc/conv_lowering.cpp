// The direct convolution: implicit im2col of a block of output positions straight into the code panel the
// kernels read, the kernels, the table's other parts and the quantised layer's epilogue, block by block.
#include "conv_lowering.h"

#include <ATen/Parallel.h>
#include <emmintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "lut_gemm_common.h"
#include "operands_isa.h"
#include "table_parts.h"

namespace lutgen {
namespace {

void fold_max(std::atomic<int>& target, int value) {
  int seen = target.load();
  while (value > seen && !target.compare_exchange_weak(seen, value)) {
  }
}

}  // namespace

void flip_codes(uint8_t* codes, int64_t count, uint8_t flip) {
  at::parallel_for(0, count, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) codes[i] ^= flip;
  });
}

int64_t max_code(const torch::Tensor& x, int64_t mask) {
  TORCH_CHECK(x.device().is_cpu() && (x.scalar_type() == torch::kUInt8 || x.scalar_type() == torch::kInt8),
              "x must be an int8/uint8 CPU tensor");
  // A dense tensor with non-negative strides (e.g. a transposed view of contiguous weights) holds its numel
  // elements in one run of memory from its first element, in some order: read them there, else a copy.
  const auto strides = x.strides();
  const bool dense = x.is_non_overlapping_and_dense() &&
                     std::all_of(strides.begin(), strides.end(), [](int64_t s) { return s >= 0; });
  const torch::Tensor run = dense ? x : x.contiguous();
  const uint8_t* src = static_cast<const uint8_t*>(run.data_ptr());
  const uint8_t code_mask = static_cast<uint8_t>(mask);
  std::atomic<int> found{0};
  at::parallel_for(0, x.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    uint8_t mx = 0;
    for (int64_t i = begin; i < end; ++i) {
      const uint8_t v = src[i] & code_mask;
      mx = v > mx ? v : mx;
    }
    fold_max(found, mx);
  });
  return found.load();
}

namespace {

// Below this many int8 products per lane (columns x rows), a block's exact product is a plain loop: a library
// GEMM call costs microseconds, more than the products of e.g. a depthwise conv's 9 taps.
constexpr int64_t kSmallInt8Products = 256;

// out[o][m] (+)= sum_r w[o * w_stride + r] * a[r][m], m < kLaneAlign, vectorised over m (one build per ISA).
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void small_int8_gemm(
    const int8_t* __restrict w, int64_t w_stride, const int8_t* __restrict a, int64_t rows, int64_t cols,
    int32_t* __restrict out, bool accumulate) {
  for (int64_t o = 0; o < cols; ++o) {
    int32_t* __restrict d = out + o * kLaneAlign;
    if (!accumulate) std::fill(d, d + kLaneAlign, 0);
    for (int64_t r = 0; r < rows; ++r) {
      const int32_t wv = w[o * w_stride + r];
      const int8_t* __restrict s = a + r * kLaneAlign;
      for (int64_t m = 0; m < kLaneAlign; ++m) d[m] += wv * s[m];
    }
  }
}

// out[i] = bit 7 of codes[i] (0 or 1), for the int8 GEMM of a folded plan.
void fold_bits_of(const uint8_t* codes, uint8_t* out, int64_t count) {
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i));
    const __m128i top = _mm_and_si128(_mm_srli_epi16(v, 7), _mm_set1_epi8(1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), top);
  }
  for (; i < count; ++i) out[i] = codes[i] >> 7;
}

// A problem with the kernel table's fields set (the caller sets the operands, the result and K; not accumulating).
GemmProblem table_problem(const KernelTable& kernel) {
  GemmProblem q{};
  q.table = static_cast<const uint8_t*>(kernel.table.data_ptr());
  q.col_stride = kernel.col_stride;
  q.plane_stride = kernel.plane_stride;
  q.bias = kernel.bias;
  q.plane_shift = kernel.plane_shift;
  q.fold_bit = kernel.fold_bit;
  q.hi_drop = kernel.hi_drop;
  q.bits_eff = kernel.bits_eff;
  return q;
}

// A run of consecutive output positions within a block of lanes (within one output row, or one sample).
struct Run {
  int64_t lane, n, oh, ow, length;
};

// The runs that cover lanes [m0, m0 + kLaneAlign) of the m = (n, oh, ow) order (up to M), each within a span of
// `span` positions: OW (one output row: the input rows a run reads are contiguous) or OH * OW (one sample:
// each output channel's plane holds a sample's positions in m order, so its outputs are contiguous).
std::vector<Run> block_runs(int64_t m0, int64_t M, int64_t OH, int64_t OW, int64_t span) {
  std::vector<Run> runs;
  const int64_t m1 = std::min(M, m0 + kLaneAlign);
  for (int64_t m = m0; m < m1;) {
    const int64_t n = m / (OH * OW), oh = (m / OW) % OH, ow = m % OW;
    const int64_t length = std::min(span - m % span, m1 - m);
    runs.push_back({m - m0, n, oh, ow, length});
    m += length;
  }
  return runs;
}

// d[w] = s[w] (widened; `add`: d[w] += s[w]) for w < count, in blocks of 8 with a constant trip count (vectorised
// even where rows are a few values long, e.g. the 8-wide planes deep in a network), then the rest.
template <typename T, typename S, bool add>
__attribute__((always_inline)) inline void row_into(T* __restrict d, const S* __restrict s, int64_t count) {
  int64_t w = 0;
  for (; w + 8 <= count; w += 8) {
    for (int k = 0; k < 8; ++k) {
      if constexpr (add) {
        d[w + k] += static_cast<T>(s[w + k]);
      } else {
        d[w + k] = static_cast<T>(s[w + k]);
      }
    }
  }
  for (; w < count; ++w) {
    if constexpr (add) {
      d[w] += static_cast<T>(s[w]);
    } else {
      d[w] = static_cast<T>(s[w]);
    }
  }
}

// d[i] = sum over taps t < count of s[i + t * step], i < length (long runs: vectorised; up to three taps a pass).
__attribute__((always_inline)) inline void shifted_sums(int32_t* __restrict d, const int32_t* __restrict s,
                                                        int64_t length, int64_t count, int64_t step) {
  int64_t t = 0;
  for (; t < count; t += 3) {
    const int32_t* __restrict a = s + t * step;
    const int32_t* __restrict b = s + (t + 1) * step;
    const int32_t* __restrict c = s + (t + 2) * step;
    const int64_t taps = std::min<int64_t>(3, count - t);
    if (t == 0 && taps == 3) {
      for (int64_t i = 0; i < length; ++i) d[i] = a[i] + b[i] + c[i];
    } else if (t == 0 && taps == 2) {
      for (int64_t i = 0; i < length; ++i) d[i] = a[i] + b[i];
    } else if (t == 0) {
      for (int64_t i = 0; i < length; ++i) d[i] = a[i];
    } else if (taps == 3) {
      for (int64_t i = 0; i < length; ++i) d[i] += a[i] + b[i] + c[i];
    } else if (taps == 2) {
      for (int64_t i = 0; i < length; ++i) d[i] += a[i] + b[i];
    } else {
      for (int64_t i = 0; i < length; ++i) d[i] += a[i];
    }
  }
}

// The affine scheme's sums of activation codes over each receptive field, for the lanes of one block: the
// original codes (before any shift of a coarse table), their geometry and the code padding takes.
struct CodeSums {
  const uint8_t* codes;  // [N][C][H][W]
  int64_t C, H, W, Cg, Wp, OW;
  ConvGeometry geo;
  int32_t pad;  // Cg codes of padding
};

// A piece of a block: `length` output positions of group g from position p0 of sample n (lanes from `lane`), whose
// receptive fields cover padded rows [r0, r0 + rows), laid out at `offset` of the scratch.
struct SumsPiece {
  int64_t n, p0, length, lane, r0, rows, offset;
};

// lanes[piece.lane + t] = the sum of codes over the receptive field of each piece's positions (group g): the pieces'
// padded rows of channel sums (Cg * pad where padding) end to end in `plane`, the kernel's taps as offsets in that
// flat run, summed over the kernel's columns into `across`, then its rows back into `plane` (as long additions of
// shifted runs; the sums that straddle two rows or pieces are never read), read out at the strided positions.
// Compiled once per ISA.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void block_code_sums(
    const CodeSums& q, int64_t g, const SumsPiece* pieces, int64_t count, int64_t total, int32_t* __restrict plane,
    int32_t* __restrict across, int32_t* __restrict lanes) {
  const ConvGeometry& geo = q.geo;
  const int64_t Wp = q.Wp, H = q.H, W = q.W, col_reach = (geo.kw - 1) * geo.dw, row_reach = (geo.kh - 1) * geo.dh * Wp;
  for (int64_t i = 0; i < total; ++i) plane[i] = q.pad;
  for (int64_t k = 0; k < count; ++k) {
    const SumsPiece& piece = pieces[k];
    const int64_t h0 = std::max<int64_t>(0, piece.r0 - geo.top), h1 = std::min(H, piece.r0 + piece.rows - geo.top);
    if (h0 >= h1) continue;
    // (without padding left and right, the rows are one run)
    const int64_t runs = Wp == W ? 1 : h1 - h0, width = Wp == W ? (h1 - h0) * W : W;
    int32_t* d = plane + piece.offset + (h0 + geo.top - piece.r0) * Wp + geo.left;
    const uint8_t* s = q.codes + ((piece.n * q.C + g * q.Cg) * H + h0) * W;
    for (int64_t r = 0; r < runs; ++r) row_into<int32_t, uint8_t, false>(d + r * Wp, s + r * W, width);
    for (int64_t c = 1; c < q.Cg; ++c) {
      s += H * W;
      for (int64_t r = 0; r < runs; ++r) row_into<int32_t, uint8_t, true>(d + r * Wp, s + r * W, width);
    }
  }
  const int64_t heads = total - row_reach - col_reach;
  shifted_sums(across, plane, heads + row_reach, geo.kw, geo.dw);  // (the kernel's columns)
  shifted_sums(plane, across, heads, geo.kh, geo.dh * Wp);        // (its rows)
  for (int64_t k = 0; k < count; ++k) {
    const SumsPiece& piece = pieces[k];
    int32_t* out = lanes + piece.lane;
    const int32_t* row = plane + piece.offset;  // (the first output row's heads: padded row r0)
    int64_t ow = piece.p0 % q.OW;
    for (int64_t left = piece.length; left > 0; row += geo.sh * Wp, ow = 0) {
      const int64_t n = std::min(q.OW - ow, left);
      if (geo.sw == 1) {
        row_into<int32_t, int32_t, false>(out, row + ow, n);
      } else {
        for (int64_t t = 0; t < n; ++t) out[t] = row[(ow + t) * geo.sw];
      }
      out += n;
      left -= n;
    }
  }
}

}  // namespace

void conv_run(const torch::Tensor& x, const ConvGeometry& geometry, const KernelTable& kernel,
              const torch::Tensor& bc, const ConvParts& parts, torch::Tensor& out) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 4 && x.is_contiguous() &&
                  (x.scalar_type() == torch::kUInt8 || x.scalar_type() == torch::kInt8),
              "x must be a contiguous 4-D int8/uint8 CPU tensor");
  TORCH_CHECK(out.device().is_cpu() && out.scalar_type() == torch::kFloat32 && out.dim() == 4 && out.is_contiguous(),
              "out must be a contiguous float32 [N, O, OH, OW] CPU tensor");
  const auto& [kh, kw, sh, sw, top, bottom, left, right, dh, dw, G] = geometry;
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  TORCH_CHECK(G >= 1 && C % G == 0 && out.size(1) % G == 0, "groups must divide the channels");
  const int64_t Hp = H + top + bottom, Wp = W + left + right;
  const int64_t OH = out.size(2), OW = out.size(3), O = out.size(1), Og = O / G, Cg = C / G;
  TORCH_CHECK((Hp - dh * (kh - 1) - 1) / sh + 1 == OH && (Wp - dw * (kw - 1) - 1) / sw + 1 == OW && out.size(0) == N,
              "out does not have the convolution's shape");
  const int64_t K = Cg * kh * kw, M = N * OH * OW, P = OH * OW;
  TORCH_CHECK(bc.scalar_type() == torch::kUInt8 && bc.dim() == 3 && bc.size(0) == G && bc.size(1) == K &&
                  bc.size(2) == Og,
              "bc must be uint8 [G, K, O/G]");
  const bool wide = kernel.name.rfind("avx512", 0) == 0, avx2 = kernel.name.rfind("avx2", 0) == 0;
  const auto epilogue = wide ? epilogue_avx512 : avx2 ? epilogue_avx2 : epilogue_plain;
  // Zero planes: a plan whose table is all offsets and exact product (no look-ups).
  GemmKernel fn = kernel.planes == 0
                      ? nullptr
                      : find_kernel(kernel.name, kernel.bits_eff, kernel.planes, kernel.group_lo, kernel.group_hi,
                                    kernel.hi_drop);
  TORCH_CHECK(fn != nullptr || kernel.planes == 0, "unknown LUT-GEMM kernel ", kernel.name);
  const GemmKernel order_fn =
      kernel.rows_order && kernel.planes > 0 ? find_rows_kernel(kernel.name, kernel.bits_eff, kernel.planes) : nullptr;
  TORCH_CHECK(order_fn != nullptr || !kernel.rows_order || kernel.planes == 0, "no rows-order kernel for ",
              kernel.name, " of ", kernel.planes, " planes and ", kernel.bits_eff, "-bit codes");
  check_kernel_table(kernel.name, kernel.bits_eff, kernel.planes, kernel.plane_shift, kernel.fold_bit,
                     kernel.hi_drop, kernel.table, kernel.col_stride, kernel.plane_stride, bc);
  // Weight codes n-major ([G][Og][K]: a column's codes over k are consecutive), and as int8 slices of k for
  // the exact product.
  const torch::Tensor bcn = bc.transpose(1, 2).contiguous();
  const int64_t slice = std::max<int64_t>(1, std::min<int64_t>(K, parts.k_slice));
  // A plan that folds bit 7 of a's codes into the exact product: each slice's int8 GEMM also sums
  // h * F[b] over k, h = bit 7 of the code (rows ks.. of the panel) and F the fold weight of b's code.
  const bool fold_rows = parts.fold_weights.numel() > 0;
  TORCH_CHECK(!fold_rows || (parts.exact_int8 && parts.fold_weights.scalar_type() == torch::kInt8 &&
                             parts.fold_weights.numel() == 256),
              "fold_weights must be int8 [256] beside an int8 exact product");
  TORCH_CHECK(parts.exact_shift >= 0 && parts.exact_shift < 8 && parts.exact_flip >= 0 && parts.exact_flip < 256 &&
                  (parts.exact_shift == 0 || (parts.exact_int8 && !fold_rows)),
              "exact_shift (0..7) applies to an int8 exact product without fold rows");
  const int exact_shift = static_cast<int>(parts.exact_shift);
  const uint8_t exact_flip = static_cast<uint8_t>(parts.exact_flip);
  std::vector<torch::Tensor> w8;
  if (parts.exact_int8) {
    const int8_t* fold_weight = fold_rows ? parts.fold_weights.data_ptr<int8_t>() : nullptr;
    const uint8_t* codes = bcn.data_ptr<uint8_t>();
    for (int64_t g = 0; g < G; ++g) {
      for (int64_t k0 = 0; k0 < K; k0 += slice) {
        const int64_t ks = std::min(slice, K - k0), width = (fold_rows ? 2 : 1) * ks;
        torch::Tensor w = torch::empty({Og, width}, torch::kInt8);
        int8_t* dst_w = w.data_ptr<int8_t>();
        at::parallel_for(0, Og, 16, [&](int64_t begin, int64_t end) {
          for (int64_t og = begin; og < end; ++og) {
            const uint8_t* src_w = codes + (g * Og + og) * K + k0;
            int8_t* row = dst_w + og * width;
            std::memcpy(row, src_w, static_cast<size_t>(ks));
            if (fold_weight != nullptr) {
              for (int64_t t = 0; t < ks; ++t) row[ks + t] = fold_weight[src_w[t]];
            }
          }
        });
        w8.push_back(w);
      }
    }
  }
  GemmKernel rows_fn = nullptr;
  if (parts.row_table.numel() > 0) {
    const std::string name = kernel.name == "avx512vbmi/fold" ? "avx512vbmi/planes"
                             : kernel.name == "avx2/fold"     ? "avx2/nibble"
                                                              : kernel.name;
    // (the row table covers every code of a: its rows give the width of its look-ups)
    const torch::Tensor& rt = parts.row_table;
    TORCH_CHECK(rt.scalar_type() == torch::kUInt8 && rt.dim() == 3 && (rt.size(1) == 1 || rt.size(1) == 2) &&
                    rt.size(2) >= 64 && rt.size(2) <= 256 && (rt.size(2) & (rt.size(2) - 1)) == 0,
                "row_table must be uint8 [columns, 1 or 2 planes, 64..256 rows (a power of two)]");
    const int rows_bits = 64 - __builtin_clzll(static_cast<uint64_t>(rt.size(2) - 1));
    rows_fn = find_kernel(name, rows_bits, static_cast<int>(rt.size(1)), 1, 1, 0);
    TORCH_CHECK(rows_fn != nullptr, "no kernel for the row offsets");
    check_kernel_table(name, rows_bits, static_cast<int>(rt.size(1)), 8, 7, 0, rt, rt.size(1) * rt.size(2), rt.size(2),
                       torch::zeros({1}, torch::kUInt8));
  }
  const Parts sums = make_parts(torch::empty({G, Og, 0}, torch::kInt32), parts.scale, torch::empty(0),
                                torch::empty(0), parts.col_offset, bc, K * parts.bias);
  const bool has_float = parts.exact_nchw.numel() > 0;
  const torch::Tensor addend64 = has_float ? parts.exact_nchw.to(torch::kFloat64).contiguous() : parts.exact_nchw;
  TORCH_CHECK(!has_float || addend64.sizes() == out.sizes(), "exact_nchw must be shaped like out");
  const double* addend = has_float ? addend64.data_ptr<double>() : nullptr;
  auto channel = [&](const torch::Tensor& t, const char* what) -> const float* {
    if (t.numel() == 0) return nullptr;
    TORCH_CHECK(t.scalar_type() == torch::kFloat32 && t.is_contiguous() && t.numel() == O, what,
                " must be a contiguous float32 tensor with one value per output channel");
    return t.data_ptr<float>();
  };
  const float* mul = channel(parts.out_scale, "out_scale");
  const float* add = channel(parts.out_bias, "out_bias");
  const float* extra = channel(parts.out_extra, "out_extra");
  // The affine scheme's zero-point terms: per output channel, and each position's sum of activation codes, summed
  // per block from the original codes.
  const bool affine = parts.sum_codes.numel() > 0;
  TORCH_CHECK(affine == (parts.out_zero.numel() > 0) && affine == (parts.out_offset.numel() > 0),
              "out_zero, out_offset and sum_codes come together");
  const double* zero_of = nullptr;
  const double* offset_of = nullptr;
  CodeSums code_sums{};
  if (affine) {
    for (const torch::Tensor* t : {&parts.out_zero, &parts.out_offset}) {
      TORCH_CHECK(t->scalar_type() == torch::kFloat64 && t->is_contiguous() && t->numel() == O,
                  "out_zero and out_offset must be contiguous float64 tensors with one value per output channel");
    }
    TORCH_CHECK(parts.sum_codes.scalar_type() == torch::kUInt8 && parts.sum_codes.is_contiguous() &&
                    parts.sum_codes.sizes() == x.sizes(),
                "sum_codes must be contiguous uint8 codes shaped like x");
    TORCH_CHECK(parts.sum_pad >= 0 && parts.sum_pad <= 255, "sum_pad ", parts.sum_pad, " is outside 0..255");
    TORCH_CHECK(K <= INT32_MAX / 255, "the receptive field is too large for int32 sums of codes");
    zero_of = parts.out_zero.data_ptr<double>();
    offset_of = parts.out_offset.data_ptr<double>();
    code_sums = {parts.sum_codes.data_ptr<uint8_t>(), C, H, W, Cg, Wp, OW, geometry,
                 static_cast<int32_t>(Cg * parts.sum_pad)};
  }
  // Stored codes of the padded input [N][C][Hp][Wp]: padding (value pad_value) is stored as (pad_value & mask) ^
  // flip.
  const uint8_t code_mask = static_cast<uint8_t>(parts.mask), code_flip = static_cast<uint8_t>(parts.flip);
  const uint8_t pad_code = static_cast<uint8_t>((parts.pad_value & parts.mask) ^ parts.flip);
  std::vector<uint8_t> xp(static_cast<size_t>(N * C * Hp * Wp), pad_code);
  const uint8_t* src = static_cast<const uint8_t*>(x.data_ptr());
  uint8_t* const xp_data = xp.data();
  at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
    // (local copies: byte stores may alias anything reached by reference, which would keep the loop scalar)
    const uint8_t mask_v = code_mask, flip_v = code_flip;
    const int64_t width = W;
    for (int64_t plane = begin; plane < end; ++plane) {
      for (int64_t h = 0; h < H; ++h) {
        const uint8_t* s = src + (plane * H + h) * width;
        uint8_t* d = xp_data + (plane * Hp + top + h) * Wp + left;
        for (int64_t w = 0; w < width; ++w) d[w] = (s[w] & mask_v) ^ flip_v;
      }
    }
  });
  const uint8_t* row_table = parts.row_table.numel() > 0 ? parts.row_table.data_ptr<uint8_t>() : nullptr;
  const std::vector<uint8_t> zero_codes(static_cast<size_t>(slice), 0);
  float* dst = out.data_ptr<float>();
  // One task per block of kLaneAlign output positions, group, and chunk of the group's output channels: its
  // panel of codes (a slice of k at a time, sized for the L2 cache), the kernel's sums for the chunk's columns,
  // the exact product and the row offsets, then the outputs. Blocks are split into chunks only where blocks
  // times groups are too few to keep every thread busy (small batches, many cores); each chunk builds the
  // block's panel. Each thread keeps its buffers.
  const int64_t blocks = (M + kLaneAlign - 1) / kLaneAlign;
  const int64_t threads = at::get_num_threads();
  const int64_t n_chunks =
      G * blocks >= 2 * threads
          ? 1
          : std::max<int64_t>(1, std::min((2 * threads + G * blocks - 1) / (G * blocks), (Og + 31) / 32));
  const int64_t og_step = (Og + n_chunks - 1) / n_chunks;
  // Rows k0..k0+ks of the codes of group g at the lanes of a block's runs (run_offset: each run's first input
  // pixel, channel 0, tap (0, 0)), each row `stride` bytes after the last.
  auto fill_codes = [&](uint8_t* out, int64_t stride, int64_t g, int64_t k0, int64_t ks, const std::vector<Run>& runs,
                        const std::vector<int64_t>& run_offset) {
    // Row k0 + k = (c, i, j) of the group's receptive field, counted up (no division per row).
    int64_t c = g * Cg + k0 / (kh * kw), i = (k0 / kw) % kh, j = k0 % kw;
    for (int64_t k = 0; k < ks; ++k, j = j + 1 == kw ? 0 : j + 1) {
      if (k > 0 && j == 0 && ++i == kh) {
        i = 0;
        ++c;
      }
      const uint8_t* base = xp.data() + (c * Hp + i * dh) * Wp + j * dw;
      uint8_t* row = out + k * stride;
      for (size_t q = 0; q < runs.size(); ++q) {
        const Run& r = runs[q];
        const uint8_t* s = base + run_offset[q];
        uint8_t* d = row + r.lane;
        if (sw != 1) {
          for (int64_t t = 0; t < r.length; ++t) d[t] = s[t * sw];
          continue;
        }
        switch (r.length) {  // the usual widths as fixed-size moves
          case 4: std::memcpy(d, s, 4); break;
          case 8: std::memcpy(d, s, 8); break;
          case 16: std::memcpy(d, s, 16); break;
          case 32: std::memcpy(d, s, 32); break;
          default: std::memcpy(d, s, static_cast<size_t>(r.length));
        }
      }
    }
  };
  auto runs_and_offsets = [&](int64_t m0, std::vector<Run>& runs, std::vector<int64_t>& run_offset) {
    runs = block_runs(m0, M, OH, OW, OW);
    run_offset.resize(runs.size());
    for (size_t q = 0; q < runs.size(); ++q) {
      run_offset[q] = (runs[q].n * C * Hp + runs[q].oh * sh) * Wp + runs[q].ow * sw;
    }
  };
  // Blocks [first, last): in the rows order, `order` holds the kernel's sums [G][Og][width] of the positions
  // from `from` on (else nullptr).
  auto run_blocks = [&](int64_t first, int64_t last, const int32_t* order, int64_t from, int64_t width) {
    at::parallel_for(first * G * n_chunks, last * G * n_chunks, 1, [&](int64_t begin, int64_t end) {
      thread_local std::vector<uint8_t> panel_buffer, shifted_buffer;
      thread_local std::vector<int32_t> ct_buffer, exact_buffer, tmp_buffer, rows_buffer, lane_sums_buffer;
      thread_local std::vector<int32_t> sums_plane, sums_across;
      thread_local std::vector<SumsPiece> pieces;
      uint8_t* const panel = aligned_elements(panel_buffer, (fold_rows ? 2 : 1) * slice * kLaneAlign);
      int32_t* const ct = aligned_elements(ct_buffer, Og * kLaneAlign);
      int32_t* const exact = parts.exact_int8 ? aligned_elements(exact_buffer, Og * kLaneAlign) : nullptr;
      int32_t* const tmp = parts.exact_int8 ? aligned_elements(tmp_buffer, Og * kLaneAlign) : nullptr;
      int32_t* const rows = aligned_elements(rows_buffer, kLaneAlign);
      int32_t* const lane_sums = affine ? aligned_elements(lane_sums_buffer, kLaneAlign) : nullptr;
      int64_t sums_of = -1;  // the block and group whose sums of codes lane_sums holds
      std::vector<Run> runs, out_runs;
      std::vector<int64_t> run_offset;  // of each run's first input pixel, channel 0, tap (0, 0)
      int64_t runs_of = -1;             // the block the runs describe (a thread's tasks mostly share blocks)
      for (int64_t task = begin; task < end; ++task) {
        const int64_t block = task / (G * n_chunks), g = task / n_chunks % G;
        const int64_t og0 = (task % n_chunks) * og_step, og1 = std::min(Og, og0 + og_step);
        if (og0 >= og1) continue;
        const int64_t m0 = block * kLaneAlign;
        if (block != runs_of) {
          runs_and_offsets(m0, runs, run_offset);
          out_runs = block_runs(m0, M, OH, OW, OH * OW);  // (the epilogue takes a few long runs, not one per row)
          runs_of = block;
        }
        const int64_t lanes = std::min(kLaneAlign, M - m0);
        // (in the rows order, the panel serves the exact product and the row offsets alone)
        const bool per_slice = order == nullptr || parts.exact_int8 || rows_fn != nullptr;
        for (int64_t k0 = 0; per_slice && k0 < K; k0 += slice) {
          const int64_t ks = std::min(slice, K - k0);
          fill_codes(panel, kLaneAlign, g, k0, ks, runs, run_offset);
          for (int64_t k = 0; k < ks; ++k) {
            std::memset(panel + k * kLaneAlign + lanes, code_flip, static_cast<size_t>(kLaneAlign - lanes));
          }
          GemmProblem q = table_problem(kernel);
          q.at = panel;
          q.at_k = kLaneAlign;
          q.bc = bcn.data_ptr<uint8_t>() + g * Og * K + k0;
          q.bc_k = 1;
          q.bc_n = K;
          q.ct = ct;
          q.ct_n = kLaneAlign;
          q.K = ks;
          q.accumulate = k0 > 0;
          // The kernels get the valid lanes and run whole blocks of their own width up to them (the widths divide
          // kLaneAlign; VBMI runs a last 128 lanes or fewer on two vectors, AVX2's blocks are 32 lanes wide).
          if (fn != nullptr && order == nullptr) fn(q, 0, 0, lanes, og0, og1);
          if (parts.exact_int8) {  // rows og0..og1 of the [Og][kLaneAlign] sums
            if (fold_rows) fold_bits_of(panel, panel + ks * kLaneAlign, ks * kLaneAlign);
            uint8_t* a8_codes = panel;
            if (exact_shift > 0) {  // a coarse table's codes as the values they stand for
              // Eight codes per 64-bit word: each byte shifted left, the bits it pushes into the next byte
              // masked off (raw pointers: a thread_local vector costs a TLS look-up per access).
              const uint8_t* src = panel;
              uint8_t* dst = aligned_elements(shifted_buffer, ks * kLaneAlign);
              const uint64_t bytes = 0x0101010101010101ULL;
              const uint64_t keep = bytes * ((0xFFu << exact_shift) & 0xFFu), flip = bytes * exact_flip;
              for (int64_t t = 0; t < ks * kLaneAlign; t += 8) {
                uint64_t word;
                std::memcpy(&word, src + t, 8);
                word = ((word << exact_shift) & keep) ^ flip;
                std::memcpy(dst + t, &word, 8);
              }
              a8_codes = dst;
            }
            const int64_t a8_rows = (fold_rows ? 2 : 1) * ks;
            const torch::Tensor& w = w8[g * ((K + slice - 1) / slice) + k0 / slice];
            if ((og1 - og0) * a8_rows <= kSmallInt8Products) {
              small_int8_gemm(w.data_ptr<int8_t>() + og0 * a8_rows, a8_rows, reinterpret_cast<const int8_t*>(a8_codes),
                              a8_rows, og1 - og0, exact + og0 * kLaneAlign, k0 > 0);
            } else {
              auto a8 = torch::from_blob(a8_codes, {a8_rows, kLaneAlign}, torch::kInt8);
              int32_t* into = (k0 == 0 ? exact : tmp) + og0 * kLaneAlign;
              auto part = torch::from_blob(into, {og1 - og0, kLaneAlign}, torch::kInt32);
              at::_int_mm_out(part, w.narrow(0, og0, og1 - og0), a8);
              if (k0 > 0) {
                for (int64_t t = og0 * kLaneAlign; t < og1 * kLaneAlign; ++t) exact[t] += tmp[t];
              }
            }
          }
          if (rows_fn != nullptr) {
            GemmProblem r = q;
            r.bc = zero_codes.data();
            r.bc_n = 0;
            r.table = row_table;
            r.col_stride = parts.row_table.size(1) * parts.row_table.size(2);
            r.bits_eff = 64 - __builtin_clzll(static_cast<uint64_t>(parts.row_table.size(2) - 1));
            r.plane_stride = parts.row_table.size(2);
            r.bias = parts.row_bias;
            r.plane_shift = 8;
            r.hi_drop = 0;
            r.ct = rows;
            rows_fn(r, 0, 0, lanes, 0, 1);
          }
        }
        if (affine && sums_of != block * G + g) {  // (each output run's receptive fields span whole padded rows)
          pieces.clear();
          int64_t total = 0;
          for (const Run& run : out_runs) {
            const int64_t p0 = run.oh * OW + run.ow, oh1 = (p0 + run.length - 1) / OW;
            const int64_t r0 = run.oh * sh, rows_needed = (oh1 - run.oh) * sh + (kh - 1) * dh + 1;
            pieces.push_back({run.n, p0, run.length, run.lane, r0, rows_needed, total});
            total += rows_needed * Wp;
          }
          sums_plane.resize(static_cast<size_t>(total));
          sums_across.resize(static_cast<size_t>(total));
          block_code_sums(code_sums, g, pieces.data(), static_cast<int64_t>(pieces.size()), total, sums_plane.data(),
                          sums_across.data(), lane_sums);
          sums_of = block * G + g;
        }
        // Outputs of the block: every part an exact integer, summed in int64 (and double with a float
        // exact product), rounded once to float32; then the epilogue, step by step as torch does it.
        for (int64_t og = og0; og < og1; ++og) {
          const int64_t o = g * Og + og;
          const int64_t col = sums.cols[g * Og + og];
          const int32_t* s = order != nullptr ? order + (g * Og + og) * width + (m0 - from)
                             : fn != nullptr      ? ct + og * kLaneAlign
                                                  : nullptr;
          const int32_t* e = parts.exact_int8 ? exact + og * kLaneAlign : nullptr;
          if (addend == nullptr) {  // in 32 bits (the engine bounds the sums by the int32 range), vectorised
            const RunEpilogue q{static_cast<int32_t>(parts.scale),
                                static_cast<uint32_t>(static_cast<uint64_t>(col)),
                                mul != nullptr,
                                add != nullptr,
                                extra != nullptr,
                                mul != nullptr ? mul[o] : 1.0f,
                                add != nullptr ? add[o] : 0.0f,
                                extra != nullptr ? extra[o] : 0.0f,
                                affine,
                                affine ? zero_of[o] : 0.0,
                                affine ? offset_of[o] : 0.0,
                                affine && std::abs(offset_of[o]) + zero_of[o] * 255.0 * K < 0x1p30};
            for (const Run& run : out_runs) {
              float* d = dst + (run.n * O + o) * P + run.oh * OW + run.ow;
              const int32_t* rr = rows_fn != nullptr ? rows + run.lane : nullptr;
              const int32_t* ss = s != nullptr ? s + run.lane : nullptr;
              const int32_t* ee = e != nullptr ? e + run.lane : nullptr;
              const int32_t* cc = affine ? lane_sums + run.lane : nullptr;
              epilogue(d, run.length, ss, ee, rr, cc, q);
            }
            continue;
          }
          for (const Run& run : out_runs) {
            const int64_t base = (run.n * O + o) * P + run.oh * OW + run.ow;
            const int32_t* cc = affine ? lane_sums + run.lane : nullptr;
            float* d = dst + base;
            for (int64_t t = 0; t < run.length; ++t) {
              const int64_t lane = run.lane + t;
              int64_t v = s != nullptr ? parts.scale * s[lane] + col : col;
              if (e != nullptr) v += e[lane];
              if (rows_fn != nullptr) v += rows[lane];
              float y = addend == nullptr ? static_cast<float>(v)
                                          : static_cast<float>(static_cast<double>(v) + addend[base + t]);
              if (affine) {
                affine_rescale<0>(&y, 1, zero_of + o, offset_of + o, mul != nullptr ? mul + o : nullptr, cc + t, false);
              } else if (mul != nullptr) {
                y = y * mul[o];
              }
              if (add != nullptr) y = y + add[o];
              if (extra != nullptr) y = y + extra[o];
              d[t] = y;
            }
          }
        }
      }
    });
  };
  if (order_fn == nullptr) {
    run_blocks(0, blocks, nullptr, 0, 0);
    return;
  }
  // The rows order, span by span of positions (up to 32 MiB of their codes, whole blocks): the codes of all K,
  // the kernel's sums, then the span's blocks.
  const int64_t span = std::max<int64_t>(1, (int64_t{1} << 25) / (G * K * kLaneAlign)) * kLaneAlign;
  const int64_t widest = std::min(span, blocks * kLaneAlign);
  std::vector<uint8_t> codes(static_cast<size_t>(G * K * widest));
  std::vector<int32_t> order_sums(static_cast<size_t>(G * Og * widest));
  for (int64_t s0 = 0; s0 < M; s0 += span) {
    const int64_t s1 = std::min(M, s0 + span), width = s1 - s0;
    const int64_t first = s0 / kLaneAlign, last = (s1 + kLaneAlign - 1) / kLaneAlign;
    at::parallel_for(0, (last - first) * G, 1, [&](int64_t begin, int64_t end) {
      std::vector<Run> runs;
      std::vector<int64_t> run_offset;
      for (int64_t t = begin; t < end; ++t) {
        const int64_t block = first + t / G, g = t % G;
        runs_and_offsets(block * kLaneAlign, runs, run_offset);
        fill_codes(codes.data() + g * K * width + block * kLaneAlign - s0, width, g, 0, K, runs, run_offset);
      }
    });
    GemmProblem q = table_problem(kernel);
    q.at = codes.data();
    q.at_g = K * width;
    q.at_k = width;
    q.bc = bcn.data_ptr<uint8_t>();
    q.bc_g = Og * K;
    q.bc_k = 1;
    q.bc_n = K;
    q.ct = order_sums.data();
    q.ct_g = Og * width;
    q.ct_n = width;
    q.K = K;
    run_rows_order(q, order_fn, G, width, Og);
    run_blocks(first, last, order_sums.data(), s0, width);
  }
}

}  // namespace lutgen
