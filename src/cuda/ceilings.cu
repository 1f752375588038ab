// Measured ceilings of the card for benchmark reports (never assumed from a datasheet).
#include <algorithm>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/gemm.h"

namespace lt2::cuda {

double time_ms(const std::function<void()>& fn, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) fn();
  cudaEvent_t a, b;
  LT2_CUDA_CHECK(cudaEventCreate(&a));
  LT2_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    LT2_CUDA_CHECK(cudaEventRecord(a, stream()));
    fn();
    LT2_CUDA_CHECK(cudaEventRecord(b, stream()));
    LT2_CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    LT2_CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

double measure_gemm_tflops() {
  const int64_t n = 8192;
  Tensor A = Tensor::zeros({n, n}, DType::BF16, Device::CUDA), B = Tensor::zeros({n, n}, DType::BF16, Device::CUDA);
  Tensor C = Tensor::empty({n, n}, DType::BF16, Device::CUDA);
  const double ms = time_ms([&] {
    gemm(false, true, n, n, n, 1.f, A.bytes(), n, B.bytes(), n, DType::BF16, 0.f, C.bytes(), n, DType::BF16);
  });
  return 2.0 * double(n) * n * n / (ms * 1e-3) / 1e12;
}

double measure_copy_gbps() {
  const size_t bytes = size_t(1) << 30;
  Tensor src = Tensor::zeros({int64_t(bytes / 2)}, DType::BF16, Device::CUDA);
  Tensor dst = Tensor::empty({int64_t(bytes / 2)}, DType::BF16, Device::CUDA);
  const double ms = time_ms([&] { copy_on_device(dst.bytes(), src.bytes(), bytes); });
  return 2.0 * double(bytes) / (ms * 1e-3) / 1e9;
}

}  // namespace lt2::cuda
