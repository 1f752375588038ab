#pragma once
// Inputs of the GPU kernel benchmarks: N(0, 1) values drawn on the host from the counter-based
// RNG (the same numbers on every run) and copied to the GPU in the dtype under test.
#include "core/rng.h"
#include "core/tensor.h"

namespace lt2::cli {

inline Tensor normal_on_gpu(const Shape& shape, uint64_t seed, DType dt) {
  Tensor t = Tensor::empty(shape, DType::F32);
  const CounterRng rng{seed, 3};
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(rng.normal(uint64_t(i)));
  return t.to(Device::CUDA, dt);
}

}  // namespace lt2::cli
