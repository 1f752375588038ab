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
// `count` independent GEMMs of one shape: the i-th reads A + i * stride_a, B + i * stride_b and
// writes C + i * stride_c (strides in elements; stride 0 shares one matrix), in one launch.
void gemm_strided_batched(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
                          int64_t stride_a, const void* B, int64_t ldb, int64_t stride_b, DType ab_dtype, float beta,
                          void* C, int64_t ldc, int64_t stride_c, DType c_dtype, int64_t count);
// Benchmarks only: the same GEMM with each of the heuristic's first `count` algorithms (the
// first is the one gemm() uses), the median ms of `reps` runs each.
std::vector<double> gemm_algo_ms(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
                                 const void* B, int64_t ldb, DType ab_dtype, float beta, void* C, int64_t ldc,
                                 DType c_dtype, int count, int reps);
}  // namespace lt2::cuda
