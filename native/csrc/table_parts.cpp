// See table_parts.h.
#include "table_parts.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "operands_isa.h"

namespace lutgen {

namespace {

// The sum of c[codes[k * stride]] over k < count (a column's offsets), vectorised (gathers) once per ISA.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) int64_t offsets_sum(
    const int64_t* __restrict c, const uint8_t* __restrict codes, int64_t stride, int64_t count) {
  int64_t sum = 0;
  if (stride == 1) {
    for (int64_t k = 0; k < count; ++k) sum += c[codes[k]];
  } else {
    for (int64_t k = 0; k < count; ++k) sum += c[codes[k * stride]];
  }
  return sum;
}

}  // namespace

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
        parts.cols[t] += offsets_sum(c, codes + (t / N) * sg + (t % N) * sn, sk, K);
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
  // bc^T [N][K] is a view when the codes are n-major (weights), else a copy. Its row stride must be K even for
  // one column: torch's CPU int8 GEMM misreads a [1, K] operand whose row stride is 1, which is what
  // contiguous() leaves of the transpose of k-major codes [K, 1].
  auto wt = bc.transpose(1, 2);
  if (wt.stride(1) != bc.size(1) || wt.stride(2) != 1) wt = wt.clone(at::MemoryFormat::Contiguous);
  const auto a8 = at.view(torch::kInt8).narrow(2, 0, valid);
  const auto w8 = wt.view(torch::kInt8);
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

namespace {

// One column's values over lanes [0, count) as float32: the kernel's sums times `scale` plus the column's sum of
// offsets and the lanes' exact product (int32 where E, integer-valued float64 where F) and row offsets (where R);
// false when one lies outside int32. Written so that the compiler vectorises it (a widening multiply, int64 adds,
// a min/max reduction), once per ISA.
template <bool E, bool R, bool F>
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) bool column_values(
    const int32_t* __restrict sums, int32_t scale, int64_t col, const int32_t* __restrict exact,
    const double* __restrict exact_float, const int32_t* __restrict rows, int64_t count, float* __restrict dst) {
  int64_t low = 0, high = 0;
  for (int64_t m = 0; m < count; ++m) {
    int64_t v = static_cast<int64_t>(sums[m]) * scale + col;
    if constexpr (E) v += exact[m];
    if constexpr (F) v += static_cast<int64_t>(exact_float[m]);
    if constexpr (R) v += rows[m];
    low = v < low ? v : low;
    high = v > high ? v : high;
    dst[m] = static_cast<float>(static_cast<int32_t>(v));
  }
  return low >= INT32_MIN && high <= INT32_MAX;
}

template <bool E, bool R>
bool column_values_with(const int32_t* sums, int32_t scale, int64_t col, const int32_t* exact,
                        const double* exact_float, const int32_t* rows, int64_t count, float* dst) {
  return exact_float != nullptr ? column_values<E, R, true>(sums, scale, col, exact, exact_float, rows, count, dst)
                                : column_values<E, R, false>(sums, scale, col, exact, exact_float, rows, count, dst);
}

bool column_values_of(const int32_t* sums, int64_t scale, int64_t col, const int32_t* exact,
                      const double* exact_float, const int32_t* rows, int64_t count, float* dst) {
  const auto s = static_cast<int32_t>(scale);
  if (exact != nullptr) {
    return rows != nullptr ? column_values_with<true, true>(sums, s, col, exact, exact_float, rows, count, dst)
                           : column_values_with<true, false>(sums, s, col, exact, exact_float, rows, count, dst);
  }
  return rows != nullptr ? column_values_with<false, true>(sums, s, col, exact, exact_float, rows, count, dst)
                         : column_values_with<false, false>(sums, s, col, exact, exact_float, rows, count, dst);
}

// The epilogue on `count` values in the order torch's in-place ops take: v * scale, + bias, + extra; each an
// array over the values (`step` 1) or one value for all of them (`step` 0), or null.
void epilogue_steps(float* __restrict v, int64_t count, const float* scale, const float* bias, const float* extra,
                    int64_t step) {
  if (scale != nullptr) {
    for (int64_t m = 0; m < count; ++m) v[m] *= scale[m * step];
  }
  for (const float* part : {bias, extra}) {
    if (part == nullptr) continue;
    for (int64_t m = 0; m < count; ++m) v[m] += part[m * step];
  }
}

// affine_rescale (operands_isa.h) compiled once per ISA for the output pass.
template <int Step>
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void affine_steps(
    float* __restrict v, int64_t count, const double* __restrict zero, const double* __restrict offset,
    const float* __restrict scale, const int32_t* __restrict sums, bool small) {
  affine_rescale<Step>(v, count, zero, offset, scale, sums, small);
}

const float* epilogue_part(const torch::Tensor& t, int64_t count, const char* what) {
  if (t.numel() == 0) return nullptr;
  TORCH_CHECK(t.scalar_type() == torch::kFloat32 && t.is_contiguous() && t.numel() == count, what,
              " must be empty or float32 with ", count, " values");
  return t.data_ptr<float>();
}

}  // namespace

bool finish_into(torch::Tensor& out, const torch::Tensor& ct, int64_t valid, int64_t scale,
                 const torch::Tensor& exact, const torch::Tensor& rows, const torch::Tensor& col_offset,
                 const torch::Tensor& bc, int64_t constant, const torch::Tensor& exact_float,
                 const torch::Tensor& ep_scale, const torch::Tensor& ep_bias, const torch::Tensor& ep_extra,
                 const torch::Tensor& ep_zero, const torch::Tensor& ep_offset, const torch::Tensor& code_sums,
                 bool ep_lanes) {
  const Parts parts = make_parts(ct, scale, exact, rows, col_offset, bc, constant);
  const int64_t G = ct.size(0), N = ct.size(1), Mp = ct.size(2);
  // A float exact product (integer values below 2^53) as float64 [G][N][lanes], its lanes contiguous.
  const bool has_float = exact_float.numel() > 0;
  const torch::Tensor float_lanes = has_float ? exact_float.to(torch::kFloat64).contiguous() : exact_float;
  TORCH_CHECK(!has_float || (float_lanes.dim() == 3 && float_lanes.size(0) == G && float_lanes.size(1) == N &&
                             float_lanes.size(2) >= valid),
              "exact_float must be [G, N, lanes >= valid]");
  const double* addend = has_float ? float_lanes.data_ptr<double>() : nullptr;
  const int64_t addend_lanes = has_float ? float_lanes.size(2) : 0;
  TORCH_CHECK(valid >= 0 && valid <= Mp, "valid ", valid, " is outside 0..", Mp);
  TORCH_CHECK(scale >= 1 && scale <= INT32_MAX, "scale ", scale, " is outside 1..2^31-1");
  TORCH_CHECK(parts.exact == nullptr || parts.exact_lanes >= valid, "exact holds ", parts.exact_lanes,
              " lanes, fewer than the ", valid, " valid ones");
  TORCH_CHECK(out.device().is_cpu() && out.scalar_type() == torch::kFloat32 && out.dim() == 3 && out.size(0) == G &&
                  out.size(1) == valid && out.size(2) == N,
              "out must be float32 [G, valid, N] on the CPU");
  const int64_t per = ep_lanes ? valid : N;
  const float* es = epilogue_part(ep_scale, per, "ep_scale");
  const float* eb = epilogue_part(ep_bias, per, "ep_bias");
  const float* ee = epilogue_part(ep_extra, per, "ep_extra");
  const bool affine = code_sums.numel() > 0;
  TORCH_CHECK(affine == (ep_zero.numel() > 0) && affine == (ep_offset.numel() > 0),
              "ep_zero, ep_offset and code_sums come together");
  const double* ez = nullptr;
  const double* eo = nullptr;
  const int32_t* cs = nullptr;
  if (affine) {
    for (const torch::Tensor* t : {&ep_zero, &ep_offset}) {
      TORCH_CHECK(t->scalar_type() == torch::kFloat64 && t->is_contiguous() && t->numel() == per,
                  "ep_zero and ep_offset must be float64 with ", per, " values");
    }
    TORCH_CHECK(code_sums.scalar_type() == torch::kInt32 && code_sums.is_contiguous() &&
                    code_sums.numel() == (ep_lanes ? N : valid),
                "code_sums must be int32 with ", ep_lanes ? N : valid, " values");
    ez = ep_zero.data_ptr<double>();
    eo = ep_offset.data_ptr<double>();
    cs = code_sums.data_ptr<int32_t>();
  }
  // Per channel: whether its zero-point terms stay within 2^30 for every sum of codes (32-bit arithmetic).
  std::vector<uint8_t> small(static_cast<size_t>(affine ? per : 0));
  if (affine) {
    const int32_t* last = cs + code_sums.numel();
    const double largest = code_sums.numel() > 0 ? std::max(0, *std::max_element(cs, last)) : 0;
    for (int64_t i = 0; i < per; ++i) small[i] = std::abs(eo[i]) + ez[i] * largest < 0x1p30;
  }
  const int32_t* sums = ct.data_ptr<int32_t>();
  float* dst = out.data_ptr<float>();
  const int64_t og = out.stride(0), om = out.stride(1), on = out.stride(2);
  // Tasks: a group's block of kTile columns by kLanes lanes. Each column's values are computed over the block's
  // lanes (contiguous in ct) into a buffer, then written: straight where out's lanes are contiguous (a swapped
  // GEMM), else as a transposed tile.
  constexpr int64_t kTile = 16, kLanes = 256;
  const int64_t n_tiles = (N + kTile - 1) / kTile, m_tiles = (valid + kLanes - 1) / kLanes;
  std::atomic<bool> ok{true};
  at::parallel_for(0, G * n_tiles * m_tiles, 1, [&](int64_t begin, int64_t end) {
    float buf[kTile][kLanes];
    bool fits = true;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t g = t / (n_tiles * m_tiles), n0 = (t / m_tiles) % n_tiles * kTile, m0 = t % m_tiles * kLanes;
      const int64_t n1 = std::min(N, n0 + kTile), count = std::min(kLanes, valid - m0);
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t c = g * N + n;
        const int32_t* e = parts.exact != nullptr ? parts.exact + c * parts.exact_lanes + m0 : nullptr;
        const int32_t* r = parts.rows != nullptr ? parts.rows + g * Mp + m0 : nullptr;
        const double* f = addend != nullptr ? addend + c * addend_lanes + m0 : nullptr;
        float* v = buf[n - n0];
        fits &= column_values_of(sums + c * Mp + m0, parts.scale, parts.cols[c], e, f, r, count, v);
        const int64_t at = ep_lanes ? m0 : n, step = ep_lanes ? 1 : 0;
        if (affine && ep_lanes) {
          const auto first = small.begin() + m0;
          const bool all_small = std::all_of(first, first + count, [](uint8_t b) { return b != 0; });
          affine_steps<1>(v, count, ez + m0, eo + m0, es ? es + m0 : nullptr, cs + n, all_small);
        } else if (affine) {
          affine_steps<0>(v, count, ez + n, eo + n, es ? es + n : nullptr, cs + m0, small[n] != 0);
        }
        epilogue_steps(v, count, es && !affine ? es + at : nullptr, eb ? eb + at : nullptr, ee ? ee + at : nullptr,
                       step);
      }
      float* base = dst + g * og + m0 * om;
      if (om == 1) {
        for (int64_t n = n0; n < n1; ++n) std::memcpy(base + n * on, buf[n - n0], count * sizeof(float));
      } else {
        for (int64_t m = 0; m < count; ++m) {
          for (int64_t n = n0; n < n1; ++n) base[m * om + n * on] = buf[n - n0][m];
        }
      }
    }
    if (!fits) ok.store(false);
  });
  return ok.load();
}

}  // namespace lutgen
