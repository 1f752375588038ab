#pragma once
// linear's kernels for layers with at most kMaxNarrowOutputs outputs (see linear_narrow.cu);
// cuda/linear.cu routes to them. The callers check shapes and dtypes; M is x's row count.
#include "core/tensor.h"

namespace lt2::cuda {

constexpr int64_t kMaxNarrowOutputs = 8;

// Whether x [M, K] times a weight of N rows takes these kernels: N <= kMaxNarrowOutputs, rows
// of x in 16-byte vectors, and the weight as fp32 within 48 KiB of shared memory.
bool narrow_linear_fits(const Tensor& x, int64_t N, int64_t K);
// y [M, N] = x [M, K] w[N, K]^T
void narrow_linear_forward(const Tensor& x, const Tensor& w, Tensor& y, int64_t M);
// dw [N, K] (F32) += dy [M, N]^T x [M, K]
void narrow_linear_backward_dw(const Tensor& x, const Tensor& dy, Tensor& dw, int64_t M);

}  // namespace lt2::cuda
