// Conv lowering without torch temporaries: implicit im2col straight into the K-major code panel the kernels
// read, and the kernel's transposed result (plus the table's other parts) written as a float32 NCHW output.
#include "conv_lowering.h"

#include <ATen/Parallel.h>
#include <emmintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "lut_gemm_common.h"
#include "table_parts.h"

namespace lutgen {
namespace {

void fold_max(std::atomic<int>& target, int value) {
  int seen = target.load();
  while (value > seen && !target.compare_exchange_weak(seen, value)) {
  }
}

// rows of W bytes at src + r*src_stride to dst + r*W (a fixed W compiles to plain moves).
template <int W>
inline void copy_rows(uint8_t* dst, const uint8_t* src, int64_t rows, int64_t src_stride) {
  for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * W, src + r * src_stride, W);
}

}  // namespace

void flip_codes(uint8_t* codes, int64_t count, uint8_t flip) {
  at::parallel_for(0, count, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) codes[i] ^= flip;
  });
}

std::tuple<torch::Tensor, int64_t, bool> conv2d_pack(const torch::Tensor& x, int64_t kh, int64_t kw,
                                               std::vector<int64_t> stride, std::vector<int64_t> padding,
                                               std::vector<int64_t> dilation, int64_t groups, int64_t mask,
                                               int64_t flip, torch::Tensor workspace) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 4 && x.is_contiguous() &&
                  (x.scalar_type() == torch::kUInt8 || x.scalar_type() == torch::kInt8),
              "x must be a contiguous 4-D int8/uint8 CPU tensor");
  TORCH_CHECK(stride.size() == 2 && padding.size() == 4 && dilation.size() == 2, "bad conv geometry");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  TORCH_CHECK(groups >= 1 && C % groups == 0, "groups must divide the channels");
  const int64_t sh = stride[0], sw = stride[1], top = padding[0], left = padding[2];
  const int64_t dh = dilation[0], dw = dilation[1];
  const int64_t Hp = H + padding[0] + padding[1], Wp = W + padding[2] + padding[3];
  const int64_t OH = (Hp - dh * (kh - 1) - 1) / sh + 1;
  const int64_t OW = (Wp - dw * (kw - 1) - 1) / sw + 1;
  TORCH_CHECK(OH >= 1 && OW >= 1, "the kernel does not fit the padded input");
  const int64_t Cg = C / groups, K = Cg * kh * kw, M = N * OH * OW;
  const int64_t Mp = std::max<int64_t>(1, (M + kLaneAlign - 1) / kLaneAlign) * kLaneAlign;
  const uint8_t* src = static_cast<const uint8_t*>(x.data_ptr());
  const uint8_t code_mask = static_cast<uint8_t>(mask);
  // Codes of the zero-padded input [N][C][Hp][Wp] (padding = value 0 = code 0), and the largest code of
  // the input (an upper bound of the panel's: strides may skip some pixels; any bound is exact).
  std::vector<uint8_t> xp(static_cast<size_t>(N * C * Hp * Wp), 0);
  std::atomic<int> max_code{0};
  at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
    uint8_t mx = 0;
    for (int64_t plane = begin; plane < end; ++plane) {
      for (int64_t h = 0; h < H; ++h) {
        const uint8_t* s = src + (plane * H + h) * W;
        uint8_t* d = xp.data() + (plane * Hp + top + h) * Wp + left;
        for (int64_t w = 0; w < W; ++w) {
          const uint8_t v = s[w] & code_mask;
          d[w] = v;
          mx = v > mx ? v : mx;
        }
      }
    }
    fold_max(max_code, mx);
  });
  // Stored codes: XOR `flip` (padding included) once a code reaches it; their bound is then 2 * flip - 1.
  const bool flipped = flip > 0 && max_code.load() >= flip;
  if (flipped) flip_codes(xp.data(), static_cast<int64_t>(xp.size()), static_cast<uint8_t>(flip));
  const int64_t bound = flipped ? 2 * flip - 1 : max_code.load();
  TORCH_CHECK(workspace.device().is_cpu() && workspace.scalar_type() == torch::kUInt8 && workspace.dim() == 1,
              "workspace must be a 1-D uint8 CPU tensor");
  if (workspace.numel() < groups * K * Mp) workspace.resize_({groups * K * Mp});
  auto at = workspace.narrow(0, 0, groups * K * Mp).view({groups, K, Mp});
  uint8_t* out = at.data_ptr<uint8_t>();
  // One task per row (g, k) of the panel: row k = (c, i, j) holds xp[n, c, oh*sh + i*dh, ow*sw + j*dw]
  // for every output position m = (n, oh, ow).
  at::parallel_for(0, groups * K, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t g = t / K, k = t % K;
      const int64_t c = g * Cg + k / (kh * kw), i = (k / kw) % kh, j = k % kw;
      uint8_t* row = out + t * Mp;
      for (int64_t n = 0; n < N; ++n) {
        const uint8_t* plane = xp.data() + (n * C + c) * Hp * Wp + i * dh * Wp + j * dw;
        uint8_t* dst = row + n * OH * OW;
        if (sw == 1) {
          switch (OW) {
            case 4: copy_rows<4>(dst, plane, OH, sh * Wp); break;
            case 8: copy_rows<8>(dst, plane, OH, sh * Wp); break;
            case 16: copy_rows<16>(dst, plane, OH, sh * Wp); break;
            case 32: copy_rows<32>(dst, plane, OH, sh * Wp); break;
            default:
              for (int64_t oh = 0; oh < OH; ++oh) std::memcpy(dst + oh * OW, plane + oh * sh * Wp, OW);
          }
        } else {
          for (int64_t oh = 0; oh < OH; ++oh) {
            const uint8_t* s = plane + oh * sh * Wp;
            uint8_t* d = dst + oh * OW;
            for (int64_t ow = 0; ow < OW; ++ow) d[ow] = s[ow * sw];
          }
        }
      }
      std::memset(row + M, 0, Mp - M);
    }
  });
  return {at, bound, flipped};
}

void conv_output(const torch::Tensor& ct, torch::Tensor& out, int64_t scale, const torch::Tensor& exact,
                 const torch::Tensor& rows, const torch::Tensor& col_offset, const torch::Tensor& bc,
                 int64_t constant, const torch::Tensor& exact_nchw, const torch::Tensor& out_scale,
                 const torch::Tensor& out_bias, const torch::Tensor& out_extra) {
  TORCH_CHECK(ct.device().is_cpu() && ct.scalar_type() == torch::kInt32 && ct.dim() == 3 && ct.is_contiguous(),
              "ct must be a contiguous int32 [G, O/G, Mp] CPU tensor");
  TORCH_CHECK(out.device().is_cpu() && out.scalar_type() == torch::kFloat32 && out.dim() == 4 && out.is_contiguous(),
              "out must be a contiguous float32 [N, O, OH, OW] CPU tensor");
  const int64_t G = ct.size(0), Og = ct.size(1), Mp = ct.size(2);
  const int64_t N = out.size(0), O = out.size(1), P = out.size(2) * out.size(3);
  TORCH_CHECK(G * Og == O && N * P <= Mp, "ct and out shapes differ");
  const bool has_float = exact_nchw.numel() > 0;
  TORCH_CHECK(!has_float || (exact_nchw.sizes() == out.sizes() && exact_nchw.is_contiguous() &&
                             (exact_nchw.scalar_type() == torch::kFloat32 ||
                              exact_nchw.scalar_type() == torch::kFloat64)),
              "exact_nchw must be a contiguous float tensor shaped like out");
  const Parts parts = make_parts(ct, scale, exact, rows, col_offset, bc, constant);
  const torch::Tensor exact64 = has_float ? exact_nchw.to(torch::kFloat64) : exact_nchw;
  const double* addend = has_float ? exact64.data_ptr<double>() : nullptr;
  // The epilogue of a quantised layer, per output channel: y = sum * s[o], then + b[o], then + e[o], each a
  // float32 operation as torch does them one after the other (no FMA: built with -ffp-contract=off).
  auto channel = [&](const torch::Tensor& t, const char* what) -> const float* {
    if (t.numel() == 0) return nullptr;
    TORCH_CHECK(t.scalar_type() == torch::kFloat32 && t.is_contiguous() && t.numel() == O, what,
                " must be a contiguous float32 tensor with one value per output channel");
    return t.data_ptr<float>();
  };
  const float* mul = channel(out_scale, "out_scale");
  const float* add = channel(out_bias, "out_bias");
  const float* extra = channel(out_extra, "out_extra");
  const bool plain = parts.trivial && addend == nullptr && mul == nullptr && add == nullptr && extra == nullptr;
  const int32_t* src = ct.data_ptr<int32_t>();
  float* dst = out.data_ptr<float>();
  // out[n][o][p] = ct[o / Og][o % Og][n*P + p] (+ parts): rows of P contiguous values on both sides. Every part
  // is an exact integer (the float addend too), so the sum is exact in int64/double and rounded once.
  at::parallel_for(0, N * O, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, P)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / O, o = r % O;
      const int32_t* s = src + o * Mp + n * P;
      float* d = dst + r * P;
      if (plain) {
        for (int64_t p = 0; p < P; ++p) d[p] = static_cast<float>(s[p]);
        continue;
      }
      const int64_t g = o / Og, og = o % Og;
      for (int64_t p = 0; p < P; ++p) {
        const int64_t v = parts.value(g, og, n * P + p, s[p]);
        d[p] = addend == nullptr ? static_cast<float>(v) : static_cast<float>(static_cast<double>(v) + addend[r * P + p]);
      }
      if (mul != nullptr) {
        const float m = mul[o];
        for (int64_t p = 0; p < P; ++p) d[p] = d[p] * m;
      }
      if (add != nullptr) {
        const float b = add[o];
        for (int64_t p = 0; p < P; ++p) d[p] = d[p] + b;
      }
      if (extra != nullptr) {
        const float e = extra[o];
        for (int64_t p = 0; p < P; ++p) d[p] = d[p] + e;
      }
    }
  });
}

}  // namespace lutgen
