// Torch bindings of the CPU LUT-GEMM kernels: kernel lookup by name, threading through torch's intra-op
// pool (at::parallel_for, so torch.set_num_threads applies), and the backward GEMMs.
#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <emmintrin.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "conv_lowering.h"
#include "lut_gemm_common.h"
#include "operands.h"
#include "table_parts.h"

namespace lutgen {

GemmKernel find_kernel(const std::string& name, int bits_eff, int planes, int group_lo, int group_hi, int hi_drop) {
  if (hi_drop != 0 && name != "avx512vbmi/planes" && name != "avx2/nibble") return nullptr;
  if (name == "scalar/i32") return scalar_i32_kernel(bits_eff);
  if (name == "avx2/gather") return avx2_gather_kernel(bits_eff);
  if (name == "avx2/nibble") {
    return planes == 1 ? avx2_nibble1_kernel(bits_eff, group_lo) : avx2_nibble_kernel(bits_eff, hi_drop);
  }
  if (name == "avx2/fold") return avx2_fold_kernel(bits_eff, planes, group_lo);
  if (name == "avx512/gather") return avx512_gather_kernel(bits_eff);
  if (name == "avx512bw/i16") return avx512bw_i16_kernel(bits_eff);
  if (name == "avx512vbmi/planes") return avx512vbmi_planes_kernel(bits_eff, planes, group_lo, group_hi, hi_drop);
  if (name == "avx512vbmi/fold") return avx512vbmi_fold_kernel(planes, group_lo, group_hi);
  return nullptr;
}

GemmKernel find_rows_kernel(const std::string& name, int bits_eff, int planes) {
  if (name != "avx2/nibble" && name != "avx2/fold") return nullptr;
  return avx2_rows_kernel(bits_eff, planes, name == "avx2/fold");
}

uint8_t* rows_scratch(int slot, int64_t bytes) {
  thread_local std::vector<uint8_t> buffers[kRowsScratchSlots];
  return aligned_elements(buffers[slot], bytes);
}

void run_rows_order(const GemmProblem& p, GemmKernel fn, int64_t G, int64_t rows, int64_t N) {
  // Spans of lanes: long enough to pay for each slice's transposes, short enough to give every thread tasks.
  const int64_t want = 2 * static_cast<int64_t>(at::get_num_threads());
  const int64_t n_blocks = (N + 31) / 32;
  int64_t span = 2048;
  while (span > 256 && G * n_blocks * ((rows + span - 1) / span) < want) span /= 2;
  const int64_t m_spans = (rows + span - 1) / span;
  at::parallel_for(0, G * m_spans * n_blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t nbi = t % n_blocks, mi = t / n_blocks % m_spans, g = t / (n_blocks * m_spans);
      fn(p, g, mi * span, std::min(rows, (mi + 1) * span), nbi * 32, std::min(N, (nbi + 1) * 32));
    }
  });
}

namespace {

// Bytes of one column of `table` that the kernel `name` reads (layouts in lut_gemm_common.h), after checking
// the strides it reads them at: the planes (and a folded plan's fold registers) at `plane_stride`.
int64_t column_extent(const std::string& name, int bits_eff, int planes, int fold_bit, int64_t plane_stride) {
  const int64_t rows = int64_t{1} << bits_eff;
  if (name == "scalar/i32" || name == "avx2/gather" || name == "avx512/gather") return 4 * rows;
  if (name == "avx512bw/i16") return 2 * std::max<int64_t>(32, rows);
  const bool fold = name == "avx2/fold" || name == "avx512vbmi/fold";
  const bool vbmi = name.rfind("avx512vbmi", 0) == 0;
  // Look-ups per plane: the rows below 2^bits_eff (half of them folded), whole registers of 64 (VBMI) or
  // 16-entry sub-tables (AVX2); a folded plan's fold registers (64 or 32 bytes) follow the planes.
  const int64_t looked_up = std::max<int64_t>(vbmi ? 64 : 16, fold ? rows / 2 : rows);
  const int64_t registers = fold ? 2 * planes : planes;
  TORCH_CHECK(!fold || (vbmi ? bits_eff == 8 : fold_bit == bits_eff - 1), "a folded ", name,
              " plan folds on bit ", vbmi ? "0..7 of 8-bit codes" : "bits_eff - 1", " (bits_eff ", bits_eff,
              ", fold_bit ", fold_bit, ")");
  TORCH_CHECK(registers <= 1 || plane_stride >= looked_up, "plane_stride ", plane_stride, " is below the ",
              looked_up, " bytes a plane of ", name, " spans");
  return (registers - 1) * plane_stride + (fold ? (vbmi ? 64 : 32) : looked_up);
}

}  // namespace

void check_kernel_table(const std::string& kernel, int bits_eff, int planes, int64_t plane_shift, int fold_bit,
                        int hi_drop, const torch::Tensor& table, int64_t col_stride, int64_t plane_stride,
                        const torch::Tensor& bc) {
  const bool planes_layout = kernel == "avx512vbmi/planes" || kernel == "avx512vbmi/fold" ||
                             kernel == "avx2/nibble" || kernel == "avx2/fold";
  TORCH_CHECK(plane_shift == 8 || (planes_layout && plane_shift >= 1 && plane_shift < 8), "plane_shift ",
              plane_shift, " is 8, or 1..7 for the byte-plane kernels");
  TORCH_CHECK(fold_bit >= 0 && fold_bit <= 7, "fold_bit must be 0..7");
  TORCH_CHECK(bits_eff >= 1 && bits_eff <= 8, "bits_eff must be 1..8");
  const int most_dropped = kernel == "avx512vbmi/planes" ? 2 : kernel == "avx2/nibble" ? 4 : 0;
  TORCH_CHECK(hi_drop == 0 || (planes == 2 && bits_eff == 8 && hi_drop >= 1 && hi_drop <= most_dropped), "hi_drop ",
              hi_drop, " is 0, or for two planes of 8-bit codes 1..2 on avx512vbmi/planes, 1..4 on avx2/nibble");
  TORCH_CHECK(table.device().is_cpu() && table.is_contiguous(), "table must be a contiguous CPU tensor");
  if (planes == 0 || bc.numel() == 0) return;
  // Every column a code of b selects must lie inside the table, with the bytes the kernel reads there.
  const int64_t extent = column_extent(kernel, bits_eff, planes, fold_bit, plane_stride);
  TORCH_CHECK(col_stride >= extent, "col_stride ", col_stride, " is below the ", extent, " bytes a column of ",
              kernel, " spans");
  const int64_t top = max_code(bc, 0xFF);
  TORCH_CHECK(top * col_stride + extent <= static_cast<int64_t>(table.nbytes()), "the table (", table.nbytes(),
              " bytes) does not hold column ", top, " of ", kernel, " (", col_stride, " bytes apart)");
}

namespace {

void check_codes(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kUInt8 && t.dim() == 3, what,
              " must be a 3-D uint8 CPU tensor");
  TORCH_CHECK(t.size(2) <= 1 || t.stride(2) == 1, what, " must be contiguous in its last dimension");
}

// C^T[g][n][m] for m-padded transposed codes at [G][K][Mp] and codes bc [G][K][N], computed for the first
// `rows` lanes m (the others are left unset): a block's kernel runs whole blocks of its own width up to them.
torch::Tensor lut_gemm(const std::string& kernel, const torch::Tensor& at, const torch::Tensor& bc, int64_t rows,
                       const torch::Tensor& table, int64_t col_stride, int64_t plane_stride, int64_t bias,
                       int64_t bits_eff, int64_t planes, int64_t group_lo, int64_t group_hi, int64_t plane_shift,
                       int64_t fold_bit, int64_t hi_drop, bool rows_order) {
  check_codes(at, "at");
  TORCH_CHECK(bc.device().is_cpu() && bc.scalar_type() == torch::kUInt8 && bc.dim() == 3,
              "bc must be a 3-D uint8 CPU tensor");
  check_kernel_table(kernel, static_cast<int>(bits_eff), static_cast<int>(planes), plane_shift,
                     static_cast<int>(fold_bit), static_cast<int>(hi_drop), table, col_stride, plane_stride, bc);
  const int64_t G = at.size(0), K = at.size(1), Mp = at.size(2), N = bc.size(2);
  TORCH_CHECK(bc.size(0) == G && bc.size(1) == K, "at and bc shapes differ");
  TORCH_CHECK(Mp % kLaneAlign == 0, "at must be padded to a multiple of ", kLaneAlign, " rows");
  TORCH_CHECK(rows >= 0 && rows <= Mp, "rows ", rows, " is outside 0..", Mp);
  // Zero planes: a plan whose table is all offsets and exact product; its look-up sums are zero.
  GemmKernel fn = planes == 0 ? nullptr
                              : find_kernel(kernel, static_cast<int>(bits_eff), static_cast<int>(planes),
                                            static_cast<int>(group_lo), static_cast<int>(group_hi),
                                            static_cast<int>(hi_drop));
  TORCH_CHECK(fn != nullptr || planes == 0, "unknown LUT-GEMM kernel ", kernel);
  GemmKernel rows_fn = nullptr;
  if (rows_order && planes > 0) {
    rows_fn = find_rows_kernel(kernel, static_cast<int>(bits_eff), static_cast<int>(planes));
    TORCH_CHECK(rows_fn != nullptr, "no rows-order kernel for ", kernel, " of ", planes, " planes and ", bits_eff,
                "-bit codes");
  }
  auto ct = torch::empty({G, N, Mp}, torch::dtype(torch::kInt32));
  if (G == 0 || N == 0 || rows == 0) return ct;
  if (K == 0 || planes == 0) return ct.zero_();
  GemmProblem p{};
  p.at = at.data_ptr<uint8_t>();
  p.at_g = at.stride(0);
  p.at_k = at.stride(1);
  // Codes of b n-major (k consecutive for a fixed column n, the order the kernels walk): as given when
  // they already are (a transposed view of [G][N][K] weights), else copied (K*N bytes).
  const auto bcn = bc.stride(1) == 1 ? bc : bc.transpose(1, 2).contiguous().transpose(1, 2);
  p.bc = bcn.data_ptr<uint8_t>();
  p.bc_g = bcn.stride(0);
  p.bc_k = bcn.stride(1);
  p.bc_n = bcn.stride(2);
  p.table = static_cast<const uint8_t*>(table.data_ptr());
  p.col_stride = col_stride;
  p.plane_stride = plane_stride;
  p.bias = bias;
  p.ct = ct.data_ptr<int32_t>();
  p.ct_g = N * Mp;
  p.ct_n = Mp;
  p.plane_shift = static_cast<int>(plane_shift);
  p.fold_bit = static_cast<int>(fold_bit);
  p.hi_drop = static_cast<int>(hi_drop);
  p.K = K;
  p.bits_eff = static_cast<int>(bits_eff);
  p.accumulate = false;
  if (rows_fn != nullptr) {
    run_rows_order(p, rows_fn, G, rows, N);
    return ct;
  }
  // Tasks: (g, block of kLaneAlign rows, chunk of columns), enough of them to keep every thread busy, of about
  // equal work: a last, partial block looks up fewer lanes (whole blocks of the kernel's width, counted here
  // in 64s), so its columns go in fewer chunks. The threads take consecutive runs of tasks.
  struct Task {
    int64_t g, mbi, n0, n1;
  };
  const int64_t m_blocks = (rows + kLaneAlign - 1) / kLaneAlign;
  auto block_lanes = [&](int64_t mbi) { return std::min(kLaneAlign, rows - mbi * kLaneAlign); };
  auto block_work = [&](int64_t mbi) { return (block_lanes(mbi) + 63) / 64; };
  const int64_t want = 8 * static_cast<int64_t>(at::get_num_threads());
  const int64_t total = G * ((m_blocks - 1) * (kLaneAlign / 64) + block_work(m_blocks - 1));
  std::vector<Task> tasks;
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t mbi = 0; mbi < m_blocks; ++mbi) {
      const int64_t chunks = std::clamp<int64_t>((want * block_work(mbi) + total - 1) / total, 1, N);
      const int64_t n_step = (N + chunks - 1) / chunks;
      for (int64_t n0 = 0; n0 < N; n0 += n_step) tasks.push_back({g, mbi, n0, std::min(N, n0 + n_step)});
    }
  }
  at::parallel_for(0, static_cast<int64_t>(tasks.size()), 1, [&](int64_t begin, int64_t end) {
    // The codes of a of one block of kLaneAlign rows are copied, a block of K at a time, into a contiguous
    // panel [kKBlock][kLaneAlign] (L2-sized): the kernels then read consecutive k at a short stride instead
    // of one M-wide row apart, which more than pays for the copy. The panel serves every task of this
    // range that shares the row block (they differ in their columns n).
    thread_local std::vector<uint8_t> panel_buffer;
    uint8_t* const panel = aligned_elements(panel_buffer, kKBlock * kLaneAlign);
    for (int64_t t0 = begin; t0 < end;) {
      const int64_t g = tasks[t0].g, mbi = tasks[t0].mbi;
      int64_t t1 = t0 + 1;
      while (t1 < end && tasks[t1].g == g && tasks[t1].mbi == mbi) ++t1;
      for (int64_t k0 = 0; k0 < K; k0 += kKBlock) {
        GemmProblem q = p;
        q.K = std::min(kKBlock, K - k0);
        const uint8_t* src = p.at + g * p.at_g + k0 * p.at_k + mbi * kLaneAlign;
        for (int64_t k = 0; k < q.K; ++k) {
          std::memcpy(panel + k * kLaneAlign, src + k * p.at_k, kLaneAlign);
        }
        q.at = panel;
        q.at_g = 0;
        q.at_k = kLaneAlign;
        q.bc = p.bc + g * p.bc_g + k0 * p.bc_k;
        q.bc_g = 0;
        q.ct = p.ct + g * p.ct_g + mbi * kLaneAlign;
        q.ct_g = 0;
        q.accumulate = k0 > 0;
        for (int64_t t = t0; t < t1; ++t) fn(q, 0, 0, block_lanes(mbi), tasks[t].n0, tasks[t].n1);
      }
      t0 = t1;
    }
  });
  return ct;
}

// (grad_a [G][M][K], grad_b [G][K][N]) from codes ca [G][M][K], at [G][K][M], cb [G][K][N], grad_c
// [G][M][N] (float32) and its transpose, and gradient tables ga_rows [NA][NB], gb_cols [NB][NA] and
// gb_rows [NA][NB].
std::vector<torch::Tensor> lut_gemm_backward(const torch::Tensor& ca, const torch::Tensor& at,
                                             const torch::Tensor& cb, const torch::Tensor& gc,
                                             const torch::Tensor& gct, const torch::Tensor& ga_rows,
                                             const torch::Tensor& gb_cols, const torch::Tensor& gb_rows) {
  for (const auto* t : {&ca, &at, &cb, &gc, &gct, &ga_rows, &gb_cols, &gb_rows}) {
    TORCH_CHECK(t->device().is_cpu() && t->is_contiguous(), "backward operands must be contiguous CPU tensors");
  }
  const int64_t G = ca.size(0), M = ca.size(1), K = ca.size(2), N = cb.size(2);
  auto grad_a = torch::zeros({G, M, K}, torch::dtype(torch::kFloat32));
  auto grad_b = torch::zeros({G, K, N}, torch::dtype(torch::kFloat32));
  BackwardProblem p{};
  p.ca = ca.data_ptr<uint8_t>();
  p.at = at.data_ptr<uint8_t>();
  p.cb = cb.data_ptr<uint8_t>();
  p.gc = gc.data_ptr<float>();
  p.gct = gct.data_ptr<float>();
  p.ga_rows = ga_rows.data_ptr<float>();
  p.gb_cols = gb_cols.data_ptr<float>();
  p.gb_rows = gb_rows.data_ptr<float>();
  p.grad_a = grad_a.data_ptr<float>();
  p.grad_b = grad_b.data_ptr<float>();
  p.M = M;
  p.K = K;
  p.N = N;
  p.NA = ga_rows.size(0);
  p.NB = ga_rows.size(1);
  if (M >= p.NA) {
    // gA through per-k tables, a block of k at a time (the block's tables stay within ~1 MB).
    const int64_t k_block = std::max<int64_t>(1, std::min<int64_t>(K, (1 << 18) / std::max<int64_t>(1, p.NA * N)));
    std::vector<float> tables(static_cast<size_t>(k_block * p.NA * N));
    for (int64_t g = 0; g < G; ++g) {
      for (int64_t k0 = 0; k0 < K; k0 += k_block) {
        const int64_t k1 = std::min(K, k0 + k_block);
        at::parallel_for(k0, k1, 1, [&](int64_t b, int64_t e) {
          for (int64_t k = b; k < e; ++k) backward_build_p(p, g, k, tables.data() + (k - k0) * p.NA * N);
        });
        at::parallel_for(0, M, 64, [&](int64_t b, int64_t e) {
          backward_grad_a_tables(p, g, k0, k1, tables.data(), b, e);
        });
      }
    }
    at::parallel_for(0, G * K, 1, [&](int64_t b, int64_t e) {
      std::vector<float> sums(static_cast<size_t>(p.NA * N));
      backward_grad_b_hist(p, b, e, sums.data());
    });
  } else {
    at::parallel_for(0, G * M, 16, [&](int64_t b, int64_t e) { backward_grad_a(p, b, e); });
    at::parallel_for(0, G * K, 4, [&](int64_t b, int64_t e) { backward_grad_b(p, b, e); });
  }
  return {grad_a, grad_b};
}

// Transposes a 16x16 byte block (SSE2, x86-64 baseline): four rounds of the perfect shuffle.
inline void transpose16(const uint8_t* src, int64_t src_stride, uint8_t* dst, int64_t dst_stride) {
  __m128i x[16], y[16];
  for (int r = 0; r < 16; ++r) x[r] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + r * src_stride));
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 8; ++i) {
      y[2 * i] = _mm_unpacklo_epi8(x[i], x[i + 8]);
      y[2 * i + 1] = _mm_unpackhi_epi8(x[i], x[i + 8]);
    }
    for (int r = 0; r < 16; ++r) x[r] = y[r];
  }
  for (int r = 0; r < 16; ++r) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + r * dst_stride), x[r]);
}

// Codes (value & mask) of an integer tensor a [G][M][K] (any strides), transposed and m-padded to [G][K][Mp]
// (the padded lanes are discarded), XOR `flip` when a code reaches it (flip > 0); also returns an upper bound
// of the stored codes (so callers can pick smaller tables) and whether the flip was applied.
std::tuple<torch::Tensor, int64_t, bool> pack_transposed(const torch::Tensor& a, int64_t mask, int64_t flip) {
  TORCH_CHECK(a.device().is_cpu() && a.dim() == 3, "a must be a 3-D CPU tensor");
  const int64_t G = a.size(0), M = a.size(1), K = a.size(2);
  const int64_t Mp = std::max<int64_t>(1, (M + kLaneAlign - 1) / kLaneAlign) * kLaneAlign;
  auto at = torch::empty({G, K, Mp}, torch::dtype(torch::kUInt8));
  uint8_t* out = at.data_ptr<uint8_t>();
  constexpr int64_t kTile = 64;
  const int64_t m_tiles = Mp / kTile, k_tiles = (K + kTile - 1) / kTile;
  std::atomic<int> max_code{0};
  const uint8_t code_mask = static_cast<uint8_t>(mask);  // codes are the low bits: truncation keeps them
  AT_DISPATCH_INTEGRAL_TYPES(a.scalar_type(), "pack_transposed", [&] {
    const scalar_t* src = a.data_ptr<scalar_t>();
    const int64_t sg = a.stride(0), sm = a.stride(1), sk = a.stride(2);
    if (sm == 1 && M > 1) {  // a is already k-major ([G][K][M] memory, e.g. unfolded images): copy rows
      at::parallel_for(0, G * K, 16, [&](int64_t begin, int64_t end) {
        uint8_t max_seen = 0;
        for (int64_t t = begin; t < end; ++t) {
          const scalar_t* row = src + (t / K) * sg + (t % K) * sk;
          uint8_t* out_row = out + t * Mp;
          for (int64_t m = 0; m < M; ++m) out_row[m] = static_cast<uint8_t>(row[m]) & code_mask;
          for (int64_t m = 0; m < M; ++m) max_seen = std::max(max_seen, out_row[m]);
          std::memset(out_row + M, 0, Mp - M);
        }
        const int local_max = max_seen;
        int seen = max_code.load();
        while (local_max > seen && !max_code.compare_exchange_weak(seen, local_max)) {
        }
      });
      return;
    }
    at::parallel_for(0, G * k_tiles * m_tiles, 16, [&](int64_t begin, int64_t end) {
      uint8_t max_seen = 0;
      uint8_t tile[kTile][kTile];  // tile[m][k]: read along k (contiguous in a), written out along m
      for (int64_t t = begin; t < end; ++t) {
        const int64_t mt = t % m_tiles, kt = (t / m_tiles) % k_tiles, g = t / (m_tiles * k_tiles);
        const int64_t k0 = kt * kTile, k_len = std::min(K, k0 + kTile) - k0;
        const int64_t m0 = mt * kTile, m_len = std::max<int64_t>(0, std::min(M, m0 + kTile) - m0);
        std::memset(tile, 0, sizeof(tile));
        for (int64_t i = 0; i < m_len; ++i) {
          const scalar_t* row = src + g * sg + (m0 + i) * sm + k0 * sk;
          uint8_t* dst = tile[i];
          if (sk == 1) {  // the common case, kept separate so that it vectorises
            for (int64_t j = 0; j < k_len; ++j) dst[j] = static_cast<uint8_t>(row[j]) & code_mask;
          } else {
            for (int64_t j = 0; j < k_len; ++j) dst[j] = static_cast<uint8_t>(row[j * sk]) & code_mask;
          }
          for (int64_t j = 0; j < k_len; ++j) max_seen = std::max(max_seen, dst[j]);
        }
        uint8_t* out_tile = out + (g * K + k0) * Mp + m0;
        for (int64_t j = 0; j < k_len; j += 16) {
          for (int64_t i = 0; i < kTile; i += 16) {
            if (j + 16 <= k_len) {
              transpose16(&tile[i][j], kTile, out_tile + j * Mp + i, Mp);
            } else {
              for (int64_t jj = j; jj < k_len; ++jj)
                for (int64_t ii = i; ii < i + 16; ++ii) out_tile[jj * Mp + ii] = tile[ii][jj];
            }
          }
        }
      }
      const int local_max = max_seen;
      int seen = max_code.load();
      while (local_max > seen && !max_code.compare_exchange_weak(seen, local_max)) {
      }
    });
  });
  if (flip > 0 && max_code.load() >= flip) {
    flip_codes(out, G * K * Mp, static_cast<uint8_t>(flip));
    return {at, 2 * flip - 1, true};
  }
  return {at, static_cast<int64_t>(max_code.load()), false};
}

std::vector<std::string> kernels() {
  return {"scalar/i32",   "avx2/gather",       "avx2/nibble",    "avx2/fold",
          "avx512/gather", "avx512bw/i16", "avx512vbmi/planes", "avx512vbmi/fold"};
}

}  // namespace
}  // namespace lutgen

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lut_gemm", &lutgen::lut_gemm, "LUT-GEMM C^T[g,n,m] = sum_k T[a[g,m,k], b[g,k,n]] with a named kernel");
  m.def("lut_gemm_backward", &lutgen::lut_gemm_backward, "Backward LUT-GEMMs with float32 gradient tables");
  m.def("pack_transposed", &lutgen::pack_transposed, "Masked codes of a [G,M,K], transposed and padded to [G,K,Mp]");
  m.def("float_to_values", &lutgen::float_to_values, "float32 operand values to int8/uint8, with a range+integer check");
  m.def("quantize_codes", &lutgen::quantize_codes, "clamp(round(x / scale + zero), qmin, qmax) as int8/uint8 codes");
  m.def("quantize_code_rows", &lutgen::quantize_code_rows,
        "clamp(round(x / scale + zero), qmin, qmax) as uint8 codes, with each row's sum of codes");
  m.def("max_code", &lutgen::max_code, "Largest code (value & mask) of an int8/uint8 tensor");
  m.def(
      "conv_run",
      [](const torch::Tensor& x, std::vector<int64_t> geometry, const std::string& kernel, int64_t bits_eff,
         int64_t planes, int64_t group_lo, int64_t group_hi, int64_t plane_shift, int64_t fold_bit,
         int64_t hi_drop, bool rows_order, const torch::Tensor& table, int64_t col_stride,
         int64_t plane_stride, int64_t table_bias, const torch::Tensor& bc, int64_t mask, int64_t flip,
         int64_t k_slice, int64_t scale, bool exact_int8, const torch::Tensor& row_table, int64_t row_bias,
         const torch::Tensor& col_offset, int64_t bias, const torch::Tensor& exact_nchw,
         const torch::Tensor& out_scale, const torch::Tensor& out_bias, const torch::Tensor& out_extra,
         const torch::Tensor& fold_weights, int64_t exact_shift, int64_t exact_flip, int64_t pad_value,
         const torch::Tensor& out_zero, const torch::Tensor& out_offset, const torch::Tensor& sum_codes,
         int64_t sum_pad, torch::Tensor out) {
        TORCH_CHECK(geometry.size() == 11, "geometry: kh, kw, sh, sw, top, bottom, left, right, dh, dw, groups");
        const auto& v = geometry;
        lutgen::conv_run(x, {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10]},
                         {kernel, static_cast<int>(bits_eff), static_cast<int>(planes), static_cast<int>(group_lo),
                          static_cast<int>(group_hi), static_cast<int>(plane_shift), static_cast<int>(fold_bit),
                          static_cast<int>(hi_drop),
                          table, col_stride, plane_stride, table_bias, rows_order},
                         bc,
                         {mask, flip, k_slice, scale, exact_int8, row_table, row_bias, col_offset, bias, exact_nchw,
                          out_scale, out_bias, out_extra, fold_weights, exact_shift, exact_flip, pad_value,
                          out_zero, out_offset, sum_codes, sum_pad},
                         out);
      },
      "Direct LUT convolution with the table's other parts and a layer epilogue, block by block into out");
  m.def("exact_int8", &lutgen::exact_int8, "C^T[g,n,m] = sum_k int8(bc[g,k,n]) int8(at[g,k,m]) (torch int8 GEMM)");
  m.def("finish_gemm", &lutgen::finish_gemm, "Add a table's other parts to a kernel result in place; false outside int32");
  m.def("finish_into", &lutgen::finish_into,
        "Write a kernel result with the table's other parts and an epilogue as float32; false outside int32");
  m.def("kernels", &lutgen::kernels, "Names of the compiled LUT-GEMM kernels");
}
