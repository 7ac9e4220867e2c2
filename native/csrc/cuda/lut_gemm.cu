// LUT-GEMM CUDA kernels (see lut_gemm_cuda.h for the contract). Plain CUDA, no torch headers.
//
// Forward (shared-memory kernel): the whole table, transposed and as int16 (128 KiB for 8x8), sits in
// dynamic shared memory. A block computes a 128x64 tile of C with 512 threads: each warp owns 4 output
// columns and each lane 4 output rows (register-blocked 4x4 int32 accumulators). For every k the four
// weight codes of a warp are uniform across its lanes, so a look-up T[a][b] reads column b of the
// transposed table (one 2^bits_a-entry stretch of shared memory) at the lane's own activation code.
// A and B are staged through shared memory in 32-wide slices of K.
#include "lut_gemm_cuda.h"

namespace {

constexpr int kWarps = 16;
constexpr int kThreads = 32 * kWarps;
constexpr int kTM = 4;               // rows per lane
constexpr int kTN = 4;               // columns per warp
constexpr int kBM = 32 * kTM;        // 128 rows per block
constexpr int kBN = kWarps * kTN;    // 64 columns per block
constexpr int kBK = 32;              // K slice staged in shared memory
constexpr int kMaxGridZ = 65535;
constexpr int kTile = 16;            // naive and backward kernels: 16x16 thread blocks
constexpr int kRed = 32;             // backward: reduction slice staged in shared memory

inline int ceil_div(int x, int y) { return (x + y - 1) / y; }

__global__ void __launch_bounds__(kThreads)
forward_smem_kernel(const uint8_t* __restrict__ a, const uint8_t* __restrict__ b, const int16_t* __restrict__ table_t,
                    int32_t* __restrict__ c, int m_count, int k_count, int n_count, int bits_a, int bits_b) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int table_bytes = 2 << (bits_a + bits_b);
  int16_t* t_s = reinterpret_cast<int16_t*>(smem);
  uint8_t* a_s = smem + table_bytes;   // [kBK][kBM]
  uint8_t* b_s = a_s + kBK * kBM;      // [kBK][kBN]

  const size_t g = blockIdx.z;
  a += g * m_count * k_count;
  b += g * k_count * n_count;
  c += g * m_count * n_count;
  const int m0 = blockIdx.x * kBM;
  const int n0 = blockIdx.y * kBN;
  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;

  // The transposed table: 16-byte copies (table_bytes >= 32 and a multiple of 16).
  const int4* t_src = reinterpret_cast<const int4*>(table_t);
  int4* t_dst = reinterpret_cast<int4*>(t_s);
  for (int i = tid; i < table_bytes / 16; i += kThreads) t_dst[i] = t_src[i];

  int32_t acc[kTM][kTN];
#pragma unroll
  for (int i = 0; i < kTM; ++i)
#pragma unroll
    for (int j = 0; j < kTN; ++j) acc[i][j] = 0;

  for (int k0 = 0; k0 < k_count; k0 += kBK) {
    __syncthreads();  // the previous slice has been consumed
    for (int i = tid; i < kBM * kBK; i += kThreads) {
      const int r = i / kBK, kk = i % kBK;
      const int m = m0 + r, k = k0 + kk;
      a_s[kk * kBM + r] = (m < m_count && k < k_count) ? a[(size_t)m * k_count + k] : 0;
    }
    for (int i = tid; i < kBK * kBN; i += kThreads) {
      const int kk = i / kBN, j = i % kBN;
      const int k = k0 + kk, n = n0 + j;
      b_s[kk * kBN + j] = (k < k_count && n < n_count) ? b[(size_t)k * n_count + n] : 0;
    }
    __syncthreads();  // slice (and, the first time, the table) visible to all
    const int k_here = min(kBK, k_count - k0);  // never add padding codes: T[0][b] need not be 0
    for (int kk = 0; kk < k_here; ++kk) {
      int ar[kTM];
#pragma unroll
      for (int i = 0; i < kTM; ++i) ar[i] = a_s[kk * kBM + lane + 32 * i];
#pragma unroll
      for (int j = 0; j < kTN; ++j) {
        const int16_t* column = t_s + (static_cast<int>(b_s[kk * kBN + warp * kTN + j]) << bits_a);
#pragma unroll
        for (int i = 0; i < kTM; ++i) acc[i][j] += column[ar[i]];
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kTM; ++i) {
    const int m = m0 + lane + 32 * i;
#pragma unroll
    for (int j = 0; j < kTN; ++j) {
      const int n = n0 + warp * kTN + j;
      if (m < m_count && n < n_count) c[(size_t)m * n_count + n] = acc[i][j];
    }
  }
}

__global__ void forward_naive_kernel(const uint8_t* __restrict__ a, const uint8_t* __restrict__ b,
                                     const int32_t* __restrict__ table, int32_t* __restrict__ c, int m_count,
                                     int k_count, int n_count, int bits_b) {
  const size_t g = blockIdx.z;
  const int m = blockIdx.x * kTile + threadIdx.y;
  const int n = blockIdx.y * kTile + threadIdx.x;
  if (m >= m_count || n >= n_count) return;
  const uint8_t* a_row = a + g * m_count * k_count + (size_t)m * k_count;
  const uint8_t* b_col = b + g * k_count * n_count + n;
  int32_t acc = 0;
  for (int k = 0; k < k_count; ++k) {
    acc += __ldg(table + ((static_cast<int>(a_row[k]) << bits_b) | b_col[(size_t)k * n_count]));
  }
  c[g * m_count * n_count + (size_t)m * n_count + n] = acc;
}

// gA[m, k] = sum_n gC[m, n] * Ga[a[m, k]][b[k, n]]; threads: x -> k, y -> m; reduction over n in slices.
__global__ void backward_a_kernel(const uint8_t* __restrict__ a, const uint8_t* __restrict__ b,
                                  const float* __restrict__ grad_c, const float* __restrict__ ga_table,
                                  float* __restrict__ grad_a, int m_count, int k_count, int n_count, int bits_b) {
  __shared__ float gc_s[kTile][kRed + 1];
  __shared__ int b_s[kTile][kRed + 1];
  const size_t g = blockIdx.z;
  a += g * m_count * k_count;
  b += g * k_count * n_count;
  grad_c += g * m_count * n_count;
  grad_a += g * m_count * k_count;
  const int m0 = blockIdx.x * kTile, k0 = blockIdx.y * kTile;
  const int m = m0 + threadIdx.y, k = k0 + threadIdx.x;
  const int tid = threadIdx.y * kTile + threadIdx.x;
  const bool inside = m < m_count && k < k_count;
  const float* row = ga_table + (inside ? (static_cast<int>(a[(size_t)m * k_count + k]) << bits_b) : 0);
  float acc = 0.0f;
  for (int n0 = 0; n0 < n_count; n0 += kRed) {
    __syncthreads();
    for (int i = tid; i < kTile * kRed; i += kTile * kTile) {
      const int r = i / kRed, nn = i % kRed, n = n0 + nn;
      gc_s[r][nn] = (m0 + r < m_count && n < n_count) ? grad_c[(size_t)(m0 + r) * n_count + n] : 0.0f;
      b_s[r][nn] = (k0 + r < k_count && n < n_count) ? b[(size_t)(k0 + r) * n_count + n] : 0;
    }
    __syncthreads();
    const int n_here = min(kRed, n_count - n0);
    for (int nn = 0; nn < n_here; ++nn) acc += gc_s[threadIdx.y][nn] * __ldg(row + b_s[threadIdx.x][nn]);
  }
  if (inside) grad_a[(size_t)m * k_count + k] = acc;
}

// gB[k, n] = sum_m gC[m, n] * Gb[a[m, k]][b[k, n]]; threads: x -> n, y -> k; reduction over m in slices.
__global__ void backward_b_kernel(const uint8_t* __restrict__ a, const uint8_t* __restrict__ b,
                                  const float* __restrict__ grad_c, const float* __restrict__ gb_table_t,
                                  float* __restrict__ grad_b, int m_count, int k_count, int n_count, int bits_a) {
  __shared__ float gc_s[kRed][kTile + 1];
  __shared__ int a_s[kRed][kTile + 1];
  const size_t g = blockIdx.z;
  a += g * m_count * k_count;
  b += g * k_count * n_count;
  grad_c += g * m_count * n_count;
  grad_b += g * k_count * n_count;
  const int n0 = blockIdx.x * kTile, k0 = blockIdx.y * kTile;
  const int n = n0 + threadIdx.x, k = k0 + threadIdx.y;
  const int tid = threadIdx.y * kTile + threadIdx.x;
  const bool inside = k < k_count && n < n_count;
  const float* column = gb_table_t + (inside ? (static_cast<int>(b[(size_t)k * n_count + n]) << bits_a) : 0);
  float acc = 0.0f;
  for (int mm0 = 0; mm0 < m_count; mm0 += kRed) {
    __syncthreads();
    for (int i = tid; i < kRed * kTile; i += kTile * kTile) {
      const int r = i / kTile, cc = i % kTile, mm = mm0 + r;
      gc_s[r][cc] = (mm < m_count && n0 + cc < n_count) ? grad_c[(size_t)mm * n_count + n0 + cc] : 0.0f;
      a_s[r][cc] = (mm < m_count && k0 + cc < k_count) ? a[(size_t)mm * k_count + k0 + cc] : 0;
    }
    __syncthreads();
    const int m_here = min(kRed, m_count - mm0);
    for (int r = 0; r < m_here; ++r) acc += gc_s[r][threadIdx.x] * __ldg(column + a_s[r][threadIdx.y]);
  }
  if (inside) grad_b[(size_t)k * n_count + n] = acc;
}

bool bad_shape(int groups, int m, int k, int n, int bits_a, int bits_b) {
  return groups < 0 || m < 0 || k < 0 || n < 0 || bits_a < 1 || bits_a > 8 || bits_b < 1 || bits_b > 8;
}

}  // namespace

extern "C" size_t lutgemm_smem_bytes(int bits_a, int bits_b) {
  return (size_t{2} << (bits_a + bits_b)) + kBK * kBM + kBK * kBN;
}

extern "C" int lutgemm_forward_smem(const uint8_t* a, const uint8_t* b, const int16_t* table_t, int32_t* c,
                                    int groups, int m, int k, int n, int bits_a, int bits_b, cudaStream_t stream) {
  if (bad_shape(groups, m, k, n, bits_a, bits_b) || bits_a + bits_b < 4) return cudaErrorInvalidValue;
  if (groups == 0 || m == 0 || n == 0) return cudaSuccess;
  const size_t smem = lutgemm_smem_bytes(bits_a, bits_b);
  cudaError_t err = cudaFuncSetAttribute(forward_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem));
  if (err != cudaSuccess) return err;
  for (int g0 = 0; g0 < groups; g0 += kMaxGridZ) {
    const dim3 grid(ceil_div(m, kBM), ceil_div(n, kBN), min(kMaxGridZ, groups - g0));
    forward_smem_kernel<<<grid, kThreads, smem, stream>>>(a + (size_t)g0 * m * k, b + (size_t)g0 * k * n, table_t,
                                                          c + (size_t)g0 * m * n, m, k, n, bits_a, bits_b);
    err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

extern "C" int lutgemm_forward_naive(const uint8_t* a, const uint8_t* b, const int32_t* table, int32_t* c,
                                     int groups, int m, int k, int n, int bits_a, int bits_b, cudaStream_t stream) {
  if (bad_shape(groups, m, k, n, bits_a, bits_b)) return cudaErrorInvalidValue;
  if (groups == 0 || m == 0 || n == 0) return cudaSuccess;
  for (int g0 = 0; g0 < groups; g0 += kMaxGridZ) {
    const dim3 grid(ceil_div(m, kTile), ceil_div(n, kTile), min(kMaxGridZ, groups - g0));
    forward_naive_kernel<<<grid, dim3(kTile, kTile), 0, stream>>>(
        a + (size_t)g0 * m * k, b + (size_t)g0 * k * n, table, c + (size_t)g0 * m * n, m, k, n, bits_b);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

extern "C" int lutgemm_backward_a(const uint8_t* a, const uint8_t* b, const float* grad_c, const float* ga_table,
                                  float* grad_a, int groups, int m, int k, int n, int bits_a, int bits_b,
                                  cudaStream_t stream) {
  if (bad_shape(groups, m, k, n, bits_a, bits_b)) return cudaErrorInvalidValue;
  if (groups == 0 || m == 0 || k == 0) return cudaSuccess;
  for (int g0 = 0; g0 < groups; g0 += kMaxGridZ) {
    const dim3 grid(ceil_div(m, kTile), ceil_div(k, kTile), min(kMaxGridZ, groups - g0));
    backward_a_kernel<<<grid, dim3(kTile, kTile), 0, stream>>>(a + (size_t)g0 * m * k, b + (size_t)g0 * k * n,
                                                              grad_c + (size_t)g0 * m * n, ga_table,
                                                              grad_a + (size_t)g0 * m * k, m, k, n, bits_b);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

extern "C" int lutgemm_backward_b(const uint8_t* a, const uint8_t* b, const float* grad_c, const float* gb_table_t,
                                  float* grad_b, int groups, int m, int k, int n, int bits_a, int bits_b,
                                  cudaStream_t stream) {
  if (bad_shape(groups, m, k, n, bits_a, bits_b)) return cudaErrorInvalidValue;
  if (groups == 0 || k == 0 || n == 0) return cudaSuccess;
  for (int g0 = 0; g0 < groups; g0 += kMaxGridZ) {
    const dim3 grid(ceil_div(n, kTile), ceil_div(k, kTile), min(kMaxGridZ, groups - g0));
    backward_b_kernel<<<grid, dim3(kTile, kTile), 0, stream>>>(a + (size_t)g0 * m * k, b + (size_t)g0 * k * n,
                                                              grad_c + (size_t)g0 * m * n, gb_table_t,
                                                              grad_b + (size_t)g0 * k * n, m, k, n, bits_a);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}
