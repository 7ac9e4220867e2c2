// Thin torch binding of the LUT-GEMM CUDA launchers (lut_gemm_cuda.h); built only where torch has CUDA.
// Checks dtypes, devices and contiguity, runs on torch's current stream and turns CUDA errors into
// Python exceptions. All index math lives in lut_gemm.cu.
#include <torch/extension.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "lut_gemm_cuda.h"

namespace {

void check(const torch::Tensor& t, torch::ScalarType dtype, const char* name) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
  TORCH_CHECK(t.scalar_type() == dtype, name, " has the wrong dtype");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

void ok(int err, const char* what) {
  TORCH_CHECK(err == 0, what, " failed: ", cudaGetErrorString(static_cast<cudaError_t>(err)));
}

torch::Tensor forward(torch::Tensor a, torch::Tensor b, torch::Tensor table, int64_t bits_a, int64_t bits_b,
                      bool naive) {
  check(a, torch::kUInt8, "a");
  check(b, torch::kUInt8, "b");
  check(table, naive ? torch::kInt32 : torch::kInt16, "table");
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(1), "bad shapes");
  const c10::cuda::CUDAGuard guard(a.device());
  auto c = torch::empty({a.size(0), a.size(1), b.size(2)}, a.options().dtype(torch::kInt32));
  const auto stream = c10::cuda::getCurrentCUDAStream().stream();
  const int g = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  if (naive) {
    ok(lutgemm_forward_naive(a.data_ptr<uint8_t>(), b.data_ptr<uint8_t>(), table.data_ptr<int32_t>(),
                             c.data_ptr<int32_t>(), g, m, k, n, bits_a, bits_b, stream),
       "lutgemm_forward_naive");
  } else {
    ok(lutgemm_forward_smem(a.data_ptr<uint8_t>(), b.data_ptr<uint8_t>(),
                            reinterpret_cast<const int16_t*>(table.data_ptr<int16_t>()), c.data_ptr<int32_t>(), g, m,
                            k, n, bits_a, bits_b, stream),
       "lutgemm_forward_smem");
  }
  return c;
}

std::vector<torch::Tensor> backward(torch::Tensor a, torch::Tensor b, torch::Tensor grad_c, torch::Tensor ga_table,
                                    torch::Tensor gb_table_t, int64_t bits_a, int64_t bits_b) {
  check(a, torch::kUInt8, "a");
  check(b, torch::kUInt8, "b");
  check(grad_c, torch::kFloat32, "grad_c");
  check(ga_table, torch::kFloat32, "ga_table");
  check(gb_table_t, torch::kFloat32, "gb_table_t");
  const c10::cuda::CUDAGuard guard(a.device());
  const int g = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  auto grad_a = torch::empty_like(a, a.options().dtype(torch::kFloat32));
  auto grad_b = torch::empty_like(b, b.options().dtype(torch::kFloat32));
  const auto stream = c10::cuda::getCurrentCUDAStream().stream();
  ok(lutgemm_backward_a(a.data_ptr<uint8_t>(), b.data_ptr<uint8_t>(), grad_c.data_ptr<float>(),
                        ga_table.data_ptr<float>(), grad_a.data_ptr<float>(), g, m, k, n, bits_a, bits_b, stream),
     "lutgemm_backward_a");
  ok(lutgemm_backward_b(a.data_ptr<uint8_t>(), b.data_ptr<uint8_t>(), grad_c.data_ptr<float>(),
                        gb_table_t.data_ptr<float>(), grad_b.data_ptr<float>(), g, m, k, n, bits_a, bits_b, stream),
     "lutgemm_backward_b");
  return {grad_a, grad_b};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "LUT-GEMM forward (shared-memory kernel, or the naive one with naive=True)");
  m.def("backward", &backward, "LUT-GEMM backward through the gradient tables");
}
