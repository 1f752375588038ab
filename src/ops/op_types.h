#pragma once
// Plain structs in the op set's signatures (shared by every backend's namespace).
#include <cstdint>

#include "core/tensor.h"

namespace lt2 {
struct GdnGrads { Tensor dq, dk, dv, dbeta, dg, dh0; };
struct AdamWParams { double lr, beta1, beta2, eps, weight_decay; int64_t step; };  // step counts from 1
}  // namespace lt2
