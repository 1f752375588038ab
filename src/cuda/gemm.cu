// cuBLASLt behind cuda::gemm: one handle, one workspace, and a plan cached per (shape, dtypes,
// alignment) so steady-state calls do no planning. A large shape's algorithm is the fastest of
// the heuristic's candidates, timed once and kept in a cache file (gemm_tune.h).
#include <cublasLt.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/gemm.h"
#include "cuda/gemm_tune.h"

namespace lt2::cuda {

#define LT2_CUBLAS_CHECK(expr)                                                                   \
  do {                                                                                           \
    cublasStatus_t st_ = (expr);                                                                 \
    if (st_ != CUBLAS_STATUS_SUCCESS) ::lt2::fail(::lt2::cat("cuBLASLt error ", int(st_), " in ", #expr)); \
  } while (0)

namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;

cudaDataType_t cuda_type(DType t) {
  if (t == DType::F32) return CUDA_R_32F;
  if (t == DType::BF16) return CUDA_R_16BF;
  fail(cat("GPU GEMM takes F32 or BF16, got ", dtype_name(t)));
}

// Largest power of two (up to 256) dividing the address: cuBLASLt kernels assume the
// preference's alignment, and views into a tensor can start anywhere.
uint32_t alignment_of(const void* p) {
  uint32_t a = 256;
  while (a > 1 && reinterpret_cast<uintptr_t>(p) % a) a /= 2;
  return a;
}

struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, uint32_t, uint32_t,
                       uint32_t, bool, int64_t, int64_t, int64_t, int64_t>;

// A strided batch: `count` products, the i-th reading A + i * a, B + i * b and writing C + i * c
// (strides in elements; 0 reuses one matrix).
struct Batch {
  int64_t count = 1, a = 0, b = 0, c = 0;
};

void set_batch(cublasLtMatrixLayout_t layout, int64_t count, int64_t stride) {
  if (count == 1) return;
  const int32_t n = int32_t(count);
  LT2_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &n, sizeof(n)));
  LT2_CUBLAS_CHECK(
      cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
}

struct Lt {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::map<Key, Plan> plans;
  std::mutex mu;
  Lt() {
    LT2_CUBLAS_CHECK(cublasLtCreate(&handle));
    workspace = alloc(kWorkspaceBytes);
  }
};
Lt& lt() {
  static Lt* l = new Lt;  // lives for the process
  return *l;
}

// Plans a column-major D[m, n] = alpha op(A) op(B) + beta C, with C = D: the heuristic's first
// `count` algorithms (the first is the plan's; all of them land in *more).
Plan make_plan(cublasLtHandle_t h, cublasOperation_t opa, cublasOperation_t opb, int64_t m, int64_t n, int64_t k,
               int64_t lda, int64_t ldb, int64_t ldc, cudaDataType_t ab, cudaDataType_t ct, uint32_t align_a,
               uint32_t align_b, uint32_t align_c, bool accumulate, const Batch& batch, int count = 1,
               std::vector<cublasLtMatmulAlgo_t>* more = nullptr) {
  Plan p;
  LT2_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  LT2_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
  LT2_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
  // Stored shapes (column-major): op N keeps rows x cols, op T stores the transpose.
  LT2_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, ab, opa == CUBLAS_OP_N ? m : k, opa == CUBLAS_OP_N ? k : m, lda));
  LT2_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, ab, opb == CUBLAS_OP_N ? k : n, opb == CUBLAS_OP_N ? n : k, ldb));
  LT2_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, ct, m, n, ldc));
  set_batch(p.a, batch.count, batch.a);
  set_batch(p.b, batch.count, batch.b);
  set_batch(p.c, batch.count, batch.c);
  cublasLtMatmulPreference_t pref;
  LT2_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  size_t ws = kWorkspaceBytes;
  LT2_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  LT2_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a)));
  LT2_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b)));
  LT2_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof(align_c)));
  LT2_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof(align_c)));
  std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<size_t>(count));
  int found = 0;
  LT2_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(h, p.op, p.a, p.b, p.c, p.c, pref, count, results.data(), &found));
  cublasLtMatmulPreferenceDestroy(pref);
  LT2_CHECK(found > 0, "cuBLASLt has no algorithm for a ", m, "x", n, "x", k, " GEMM", accumulate ? " (accumulating)" : "");
  p.algo = results[0].algo;
  if (more)
    for (int i = 0; i < found; ++i) more->push_back(results[size_t(i)].algo);
  return p;
}

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: the plan of the swapped
// product, which run() then calls with B and A in that order.
Plan plan_row_major(cublasLtHandle_t h, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
                    const void* B, int64_t ldb, DType ab_dtype, float beta, const void* C, int64_t ldc, DType c_dtype,
                    const Batch& batch = {}, int count = 1, std::vector<cublasLtMatmulAlgo_t>* more = nullptr) {
  const cublasOperation_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  const Batch swapped{batch.count, batch.b, batch.a, batch.c};  // cuBLASLt's A is our B
  return make_plan(h, opa, opb, N, M, K, ldb, lda, ldc, cuda_type(ab_dtype), cuda_type(c_dtype), alignment_of(B),
                   alignment_of(A), alignment_of(C), beta != 0, swapped, count, more);
}

void run(Lt& l, const Plan& p, const cublasLtMatmulAlgo_t& algo, float alpha, const void* A, const void* B, float beta,
         void* C) {
  LT2_CUBLAS_CHECK(cublasLtMatmul(l.handle, p.op, &alpha, B, p.a, A, p.b, &beta, C, p.c, C, p.c, &algo, l.workspace,
                                  kWorkspaceBytes, stream()));
}

}  // namespace

namespace {
constexpr int kCandidates = 8;  // the heuristic's first algorithms a large shape is timed with

// The plan's key as text, for the tuning cache file.
std::string key_text(const Key& k) {
  std::string s;
  std::apply([&](const auto&... f) { ((s += cat(s.empty() ? "" : " ", int64_t(f))), ...); }, k);
  return s;
}

// A new plan: the heuristic's candidates, then choose_algo's pick for a large shape, timed on
// the call's own A and B with the output in scratch memory (C may be an accumulator).
Plan new_plan(Lt& l, const Key& key, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
              int64_t lda, const void* B, int64_t ldb, DType ab_dtype, float beta, const void* C, int64_t ldc,
              DType c_dtype, const Batch& batch) {
  std::vector<cublasLtMatmulAlgo_t> algos;
  Plan p = plan_row_major(l.handle, ta, tb, M, N, K, A, lda, B, ldb, ab_dtype, beta, C, ldc, c_dtype, batch,
                          kCandidates, &algos);
  if (2.0 * double(M) * double(N) * double(K) * double(batch.count) < kTuneMinFlops) return p;
  // The timed runs' output, allocated at the first of them: a choice read from the cache file
  // times nothing and needs none.
  const size_t bytes = size_t((batch.count - 1) * batch.c + (M - 1) * ldc + N) * dtype_size(c_dtype);
  void* scratch = nullptr;
  p.algo = choose_algo(
      key_text(key), algos,
      [&](const cublasLtMatmulAlgo_t& a) {
        if (!scratch) {
          scratch = alloc(bytes);
          memset_zero(scratch, bytes);
        }
        return time_ms([&] { run(l, p, a, alpha, A, B, beta, scratch); }, 1, 5);
      },
      [&](const cublasLtMatmulAlgo_t& a) {
        cublasLtMatmulHeuristicResult_t r{};
        return cublasLtMatmulAlgoCheck(l.handle, p.op, p.a, p.b, p.c, p.c, &a, &r) == CUBLAS_STATUS_SUCCESS &&
               r.workspaceSize <= kWorkspaceBytes;
      });
  if (scratch) release(scratch);
  return p;
}

void gemm_batch(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
                const void* B, int64_t ldb, DType ab_dtype, float beta, void* C, int64_t ldc, DType c_dtype,
                const Batch& batch) {
  if (M == 0 || N == 0 || batch.count == 0) return;
  if (K == 0) fail("GPU GEMM with an empty inner dimension");
  Lt& l = lt();
  std::lock_guard<std::mutex> lock(l.mu);
  const Key key{ta, tb, M, N, K, lda, ldb, ldc, int(ab_dtype), int(c_dtype), alignment_of(B), alignment_of(A),
                alignment_of(C), beta != 0, batch.count, batch.a, batch.b, batch.c};
  auto it = l.plans.find(key);
  if (it == l.plans.end())
    it = l.plans.emplace(key, new_plan(l, key, ta, tb, M, N, K, alpha, A, lda, B, ldb, ab_dtype, beta, C, ldc, c_dtype,
                                       batch))
             .first;
  run(l, it->second, it->second.algo, alpha, A, B, beta, C);
  count_launch();
}
}  // namespace

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda, const void* B,
          int64_t ldb, DType ab_dtype, float beta, void* C, int64_t ldc, DType c_dtype) {
  gemm_batch(ta, tb, M, N, K, alpha, A, lda, B, ldb, ab_dtype, beta, C, ldc, c_dtype, Batch{});
}

void gemm_strided_batched(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
                          int64_t stride_a, const void* B, int64_t ldb, int64_t stride_b, DType ab_dtype, float beta,
                          void* C, int64_t ldc, int64_t stride_c, DType c_dtype, int64_t count) {
  LT2_CHECK(count >= 1 && count <= INT32_MAX, "GPU GEMM batch of ", count);
  gemm_batch(ta, tb, M, N, K, alpha, A, lda, B, ldb, ab_dtype, beta, C, ldc, c_dtype,
             Batch{count, stride_a, stride_b, stride_c});
}

std::vector<double> gemm_algo_ms(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
                                 const void* B, int64_t ldb, DType ab_dtype, float beta, void* C, int64_t ldc,
                                 DType c_dtype, int count, int reps) {
  Lt& l = lt();
  std::vector<cublasLtMatmulAlgo_t> algos;
  const Plan p = plan_row_major(l.handle, ta, tb, M, N, K, A, lda, B, ldb, ab_dtype, beta, C, ldc, c_dtype, Batch{},
                                count, &algos);
  std::vector<double> ms;
  for (const cublasLtMatmulAlgo_t& algo : algos)
    ms.push_back(time_ms([&] { run(l, p, algo, 1.f, A, B, beta, C); }, 1, reps));
  cublasLtMatmulDescDestroy(p.op);
  cublasLtMatrixLayoutDestroy(p.a);
  cublasLtMatrixLayoutDestroy(p.b);
  cublasLtMatrixLayoutDestroy(p.c);
  return ms;
}

}  // namespace lt2::cuda
