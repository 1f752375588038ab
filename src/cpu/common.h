#pragma once
// Small numeric helpers shared by the CPU kernels.
#include <cmath>

#include <cstring>

#include "core/tensor.h"
#include "ops/op_types.h"

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

// Writes src [.., width] into its column block (see ColBlock) row by row.
inline void put_cols(const Tensor& src, const ColBlock& dst, const char* op) {
  const int64_t width = src.dim(-1), rows = rows_of(src), es = int64_t(dtype_size(src.dtype()));
  check_col_block(dst, rows, width, src.dtype(), op);
  const std::byte* s = src.bytes();
  Tensor out = dst.t;  // a handle on the same storage
  std::byte* d = out.bytes() + dst.col * es;
  for (int64_t r = 0; r < rows; ++r) std::memcpy(d + r * dst.ld() * es, s + r * width * es, size_t(width * es));
}

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
