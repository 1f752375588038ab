#pragma once
// Small numeric helpers shared by the CPU kernels.
#include <cmath>

#include "core/tensor.h"

namespace lt2::cpu {

template <class R> inline R sigmoid(R x) { return R(1) / (R(1) + std::exp(-x)); }
template <class R> inline R silu(R x) { return x * sigmoid(x); }
// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x)
template <class R> inline R silu_grad(R x) {
  R s = sigmoid(x);
  return s * (R(1) + x * (R(1) - s));
}
template <class R> inline R softplus(R x) { return x > R(20) ? x : std::log1p(std::exp(x)); }

// Rows of the last dimension: a tensor [.., n] viewed as [rows, n].
inline int64_t rows_of(const Tensor& t) { return t.ndim() == 0 ? 1 : t.numel() / t.dim(-1); }

inline void check_cpu_real(const Tensor& t, const char* op, const char* what) {
  LT2_CHECK(t.defined(), op, ": tensor '", what, "' is missing");
  LT2_CHECK(!t.on_cuda(), op, ": tensor '", what, "' is on the GPU but the op runs on the CPU");
  LT2_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64, op, ": tensor '", what,
            "' must be F32 or F64, got ", dtype_name(t.dtype()));
}

}  // namespace lt2::cpu

#include <omp.h>
namespace lt2::cpu {
inline int omp_threads() { return omp_get_num_threads(); }
inline int omp_thread() { return omp_get_thread_num(); }
}  // namespace lt2::cpu
