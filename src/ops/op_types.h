#pragma once
// Plain structs in the op set's signatures (shared by every backend's namespace).
#include <cstdint>

#include "core/tensor.h"

namespace lt2 {
struct GdnGrads { Tensor dq, dk, dv, dbeta, dg, dh0; };
// step counts from 1. With max_norm > 0 and norm_sq (F64, element 0 = the squared global
// gradient norm, on the parameters' device) the gradient is scaled by min(1, max_norm / norm)
// inside the update: clipping without reading the norm back to the host.
struct AdamWParams {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;
  double max_norm = 0;
  const Tensor* norm_sq = nullptr;
};
}  // namespace lt2
