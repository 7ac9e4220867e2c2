// See table_parts.h.
#include "table_parts.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <cstdint>

namespace lutgen {

Parts make_parts(const torch::Tensor& ct, int64_t scale, const torch::Tensor& exact, const torch::Tensor& rows,
                 const torch::Tensor& col_offset, const torch::Tensor& bc, int64_t constant) {
  TORCH_CHECK(ct.scalar_type() == torch::kInt32 && ct.dim() == 3 && ct.is_contiguous(), "ct must be int32 [G,N,Mp]");
  const int64_t G = ct.size(0), N = ct.size(1), Mp = ct.size(2);
  Parts parts;
  parts.scale = scale;
  parts.N = N;
  parts.Mp = Mp;
  parts.cols.assign(static_cast<size_t>(G * N), constant);
  if (exact.numel() > 0) {
    TORCH_CHECK(exact.scalar_type() == torch::kInt32 && exact.is_contiguous() && exact.dim() == 3 &&
                    exact.size(0) == G && exact.size(1) == N && exact.size(2) <= Mp,
                "exact must be int32 [G,N,lanes] with lanes <= ct's");
    parts.exact = exact.data_ptr<int32_t>();
    parts.exact_lanes = exact.size(2);
  }
  if (rows.numel() > 0) {
    TORCH_CHECK(rows.scalar_type() == torch::kInt32 && rows.is_contiguous() && rows.numel() == G * Mp,
                "rows must be int32 [G,1,Mp]");
    parts.rows = rows.data_ptr<int32_t>();
  }
  if (col_offset.numel() > 0) {
    TORCH_CHECK(col_offset.scalar_type() == torch::kInt64 && col_offset.is_contiguous() && col_offset.numel() == 256,
                "col_offset must be int64 [256]");
    TORCH_CHECK(bc.scalar_type() == torch::kUInt8 && bc.dim() == 3 && bc.size(0) == G && bc.size(2) == N,
                "bc must be uint8 [G,K,N]");
    const int64_t* c = col_offset.data_ptr<int64_t>();
    const uint8_t* codes = bc.data_ptr<uint8_t>();
    const int64_t K = bc.size(1), sg = bc.stride(0), sk = bc.stride(1), sn = bc.stride(2);
    at::parallel_for(0, G * N, 16, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const uint8_t* col = codes + (t / N) * sg + (t % N) * sn;
        int64_t sum = 0;
        for (int64_t k = 0; k < K; ++k) sum += c[col[k * sk]];
        parts.cols[t] += sum;
      }
    });
  }
  parts.trivial = scale == 1 && constant == 0 && parts.exact == nullptr && parts.rows == nullptr &&
                  col_offset.numel() == 0;
  return parts;
}

torch::Tensor exact_int8(const torch::Tensor& at, const torch::Tensor& bc, int64_t valid) {
  TORCH_CHECK(at.scalar_type() == torch::kUInt8 && at.dim() == 3 && at.is_contiguous(), "at must be uint8 [G,K,Mp]");
  TORCH_CHECK(bc.scalar_type() == torch::kUInt8 && bc.dim() == 3 && bc.size(0) == at.size(0) &&
                  bc.size(1) == at.size(1),
              "bc must be uint8 [G,K,N]");
  TORCH_CHECK(valid >= 0 && valid <= at.size(2), "valid ", valid, " is outside 0..", at.size(2));
  const int64_t G = at.size(0), N = bc.size(2);
  auto out = torch::empty({G, N, valid}, torch::dtype(torch::kInt32));
  if (valid == 0 || N == 0) return out;
  // Stored codes read as int8 are the values x and y of the plan (the valid lanes of at: a strided view);
  // bc^T [N][K] is a contiguous view when the codes are n-major (weights), else a copy.
  const auto a8 = at.view(torch::kInt8).narrow(2, 0, valid);
  const auto w8 = bc.transpose(1, 2).contiguous().view(torch::kInt8);
  for (int64_t g = 0; g < G; ++g) {
    auto part = out[g];
    at::_int_mm_out(part, w8[g], a8[g]);
  }
  return out;
}

bool finish_gemm(torch::Tensor& ct, int64_t valid, int64_t scale, const torch::Tensor& exact,
                 const torch::Tensor& rows, const torch::Tensor& col_offset, const torch::Tensor& bc,
                 int64_t constant) {
  const Parts parts = make_parts(ct, scale, exact, rows, col_offset, bc, constant);
  TORCH_CHECK(valid >= 0 && valid <= ct.size(2), "valid ", valid, " is outside 0..", ct.size(2));
  TORCH_CHECK(parts.exact == nullptr || parts.exact_lanes >= valid, "exact holds ", parts.exact_lanes,
              " lanes, fewer than the ", valid, " valid ones");
  if (parts.trivial) return true;
  const int64_t G = ct.size(0), N = ct.size(1), Mp = ct.size(2);
  int32_t* data = ct.data_ptr<int32_t>();
  std::atomic<bool> ok{true};
  at::parallel_for(0, G * N, 1, [&](int64_t begin, int64_t end) {
    bool fits = true;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t g = t / N, n = t % N;
      int32_t* row = data + t * Mp;
      for (int64_t m = 0; m < valid; ++m) {
        const int64_t v = parts.value(g, n, m, row[m]);
        fits &= v >= INT32_MIN && v <= INT32_MAX;
        row[m] = static_cast<int32_t>(v);
      }
    }
    if (!fits) ok.store(false);
  });
  return ok.load();
}

}  // namespace lutgen
