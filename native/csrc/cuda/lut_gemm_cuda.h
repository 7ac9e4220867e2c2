// LUT-GEMM CUDA kernels: plain CUDA with an extern "C" launcher API (no torch headers), so the kernels
// compile and can be checked with nvcc alone; native/csrc/cuda/torch_binding.cu wraps them for torch.
//
// Operands are bit-pattern codes (uint8, value & (2^bits - 1)), row-major and contiguous per group:
//   a [G, M, K], b [G, K, N]; forward C[g, m, n] = sum_k T[a[g, m, k], b[g, k, n]] (int32).
// The caller guarantees K * max|T| < 2^31 (it splits K otherwise), so int32 accumulation never wraps.
// Backward (float32): gA[g, m, k] = sum_n gC[g, m, n] * Ga[a, b]; gB[g, k, n] = sum_m gC[g, m, n] * Gb[a, b].
// Every launcher returns a cudaError_t value (0 = success) and runs on the given stream.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Bytes of dynamic shared memory the shared-memory forward kernel needs for these widths.
size_t lutgemm_smem_bytes(int bits_a, int bits_b);

// Forward, table in shared memory. table_t: int16 [2^bits_b][2^bits_a], the TRANSPOSED table
// (table_t[(b << bits_a) | a] = T[a][b]): a warp shares one weight code b, so its 32 look-ups fall
// into one 2^bits_a-entry column. Needs every T value to fit int16.
int lutgemm_forward_smem(const uint8_t* a, const uint8_t* b, const int16_t* table_t, int32_t* c, int groups, int m,
                         int k, int n, int bits_a, int bits_b, cudaStream_t stream);

// Forward, the way public GPU emulators do it: one output per thread, 16x16 thread blocks, every
// look-up a read-only global-memory fetch of table [2^bits_a][2^bits_b] int32. Any int32 values.
int lutgemm_forward_naive(const uint8_t* a, const uint8_t* b, const int32_t* table, int32_t* c, int groups, int m,
                          int k, int n, int bits_a, int bits_b, cudaStream_t stream);

// gA: ga_table float32 [2^bits_a][2^bits_b]; grad_c float32 [G, M, N]; grad_a float32 [G, M, K].
int lutgemm_backward_a(const uint8_t* a, const uint8_t* b, const float* grad_c, const float* ga_table, float* grad_a,
                       int groups, int m, int k, int n, int bits_a, int bits_b, cudaStream_t stream);

// gB: gb_table_t float32 [2^bits_b][2^bits_a] (TRANSPOSED Gb); grad_b float32 [G, K, N].
int lutgemm_backward_b(const uint8_t* a, const uint8_t* b, const float* grad_c, const float* gb_table_t,
                       float* grad_b, int groups, int m, int k, int n, int bits_a, int bits_b, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
