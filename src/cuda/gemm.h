#pragma once
// Row-major GEMM on the GPU through cuBLASLt, the same shape convention as the CPU's
// cpu/blas.h: C[M, N] = alpha * op(A) op(B) + beta * C, op = transpose when ta / tb.
// A and B share one dtype (F32 or BF16); C may be F32 or that dtype (F32 C with BF16
// inputs is how shared weights accumulate their gradient in fp32). Arithmetic is fp32
// (no TF32). Runs on cuda::stream(); no host synchronisation.
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace lt2::cuda {
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda, const void* B,
          int64_t ldb, DType ab_dtype, float beta, void* C, int64_t ldc, DType c_dtype);
// Benchmarks only: the same GEMM with each of the heuristic's first `count` algorithms (the
// first is the one gemm() uses), the median ms of `reps` runs each.
std::vector<double> gemm_algo_ms(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
                                 const void* B, int64_t ldb, DType ab_dtype, float beta, void* C, int64_t ldc,
                                 DType c_dtype, int count, int reps);
}  // namespace lt2::cuda
