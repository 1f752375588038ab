#include <cuda_runtime.h>

#include "cuda/runtime.h"

namespace lt2::cuda {
int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;  // no driver / no GPU: CPU only
  return n;
}
std::string device_name(int index) {
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, index) != cudaSuccess) return "unavailable";
  return p.name;
}
}  // namespace lt2::cuda
