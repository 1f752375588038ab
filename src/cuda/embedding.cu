// Embedding lookup and its gradient on the GPU; one block per token.
#include <climits>

#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/op_util.cuh"

namespace lt2::cuda {

namespace {

// Copies row ids[i] of table [V, d] to y[i]. An out-of-range id gives a zero row and records
// the smallest such position in *bad (initialised to UINT_MAX) for the host to report.
template <class T>
__global__ void embedding_kernel(const int32_t* ids, const T* table, T* y, int64_t V, int64_t d, unsigned* bad) {
  const int64_t i = blockIdx.x;
  const int32_t id = ids[i];
  T* out = y + i * d;
  if (id < 0 || id >= V) {
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) out[c] = st<T>(0.f);
    if (threadIdx.x == 0) atomicMin(bad, unsigned(i));
    return;
  }
  const T* row = table + int64_t(id) * d;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) out[c] = row[c];
}

// dtable[ids[i]] += dy[i]. Tokens repeat, so rows collide: fp32 atomics (the order, and so
// the last bits, may vary between runs). Out-of-range ids were reported by the forward.
template <class T>
__global__ void embedding_backward_kernel(const int32_t* ids, const T* dy, float* dtable, int64_t V, int64_t d) {
  const int64_t i = blockIdx.x;
  const int32_t id = ids[i];
  if (id < 0 || id >= V) return;
  float* row = dtable + int64_t(id) * d;
  const T* g = dy + i * d;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) atomicAdd(row + c, ld(g[c]));
}

}  // namespace

Tensor embedding(const Tensor& ids, const Tensor& table, bool ids_checked) {
  expect_cuda({&ids, &table}, "embedding");
  LT2_CHECK(ids.dtype() == DType::I32, "embedding: ids must be I32");
  LT2_CHECK(table.ndim() == 2, "embedding: table must be [V, d], got ", shape_str(table.shape()));
  const int64_t V = table.dim(0), d = table.dim(1), n = ids.numel();
  Shape ys = ids.shape();
  ys.push_back(d);
  Tensor y = Tensor::empty(ys, table.dtype(), Device::CUDA);
  if (n == 0 || d == 0) return y;
  LT2_CHECK(n <= INT_MAX, "embedding: too many ids (", n, ")");
  Tensor bad = Tensor::empty({1}, DType::I32, Device::CUDA);
  unsigned* badp = reinterpret_cast<unsigned*>(bad.data<int32_t>());
  LT2_CUDA_CHECK(cudaMemsetAsync(badp, 0xFF, sizeof(unsigned), stream()));  // UINT_MAX: none yet
  dispatch_float(table.dtype(), [&](auto t) {
    using T = decltype(t);
    embedding_kernel<<<unsigned(n), row_threads(d), 0, stream()>>>(ids.data<int32_t>(), table.data<T>(),
                                                                   y.data<T>(), V, d, badp);
  });
  check_launch("embedding");
  if (ids_checked) return y;
  // One small copy (it waits for the stream) so a bad id fails here, as on the CPU.
  unsigned first_bad = 0;
  copy_to_host(&first_bad, badp, sizeof(unsigned));
  if (first_bad != UINT_MAX) {
    const int64_t pos = first_bad;
    fail(cat("token id ", int64_t(ids.item(pos)), " at position ", pos, " is outside the vocabulary [0, ", V, ")"));
  }
  return y;
}

void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable) {
  expect_cuda({&ids, &dy, &dtable}, "embedding_backward");
  LT2_CHECK(ids.dtype() == DType::I32, "embedding: ids must be I32");
  LT2_CHECK(dtable.ndim() == 2, "embedding_backward: dtable must be [V, d], got ", shape_str(dtable.shape()));
  expect_f32(dtable, "embedding_backward", "dtable");
  const int64_t V = dtable.dim(0), d = dtable.dim(1), n = ids.numel();
  LT2_CHECK(dy.numel() == n * d, "embedding_backward: dy ", shape_str(dy.shape()), " does not match ", n,
            " ids of width ", d);
  if (n == 0 || d == 0) return;
  dispatch_float(dy.dtype(), [&](auto t) {
    using T = decltype(t);
    embedding_backward_kernel<<<unsigned(n), row_threads(d), 0, stream()>>>(ids.data<int32_t>(), dy.data<T>(),
                                                                            dtable.data<float>(), V, d);
  });
  check_launch("embedding_backward");
}

}  // namespace lt2::cuda
