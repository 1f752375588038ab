// Cross-entropy over the vocabulary on the GPU: one block per row, an online (streaming)
// max / sum-of-exp in fp32, then the row's gradient. Three kernels, one copy to the host:
//   1. count the scored rows (the gradient's 1/count) and find the first invalid target;
//   2. per row: log-sum-exp, the row's loss, and dlogits;
//   3. sum the row losses in a fixed order (reproducible) and gather what the host needs.
#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/op_util.cuh"

namespace lt2::cuda {

namespace {

// info[0] = rows with target >= 0, info[1] = first row whose target is outside [-1, V) (N if none).
__global__ void ce_scan_targets_kernel(const int32_t* tg, int64_t N, int64_t V, int64_t* info) {
  __shared__ unsigned long long count;
  __shared__ unsigned long long first_bad;
  if (threadIdx.x == 0) {
    count = 0;
    first_bad = N;
  }
  __syncthreads();
  unsigned long long my_count = 0, my_bad = N;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    const int32_t t = tg[i];
    if (t < -1 || t >= V) my_bad = min(my_bad, (unsigned long long)i);
    else my_count += t >= 0;
  }
  atomicAdd(&count, my_count);  // integer sums: the order does not matter
  atomicMin(&first_bad, my_bad);
  __syncthreads();
  if (threadIdx.x == 0) {
    info[0] = int64_t(count);
    info[1] = int64_t(first_bad);
  }
}

// Row i: row_loss[i] = lse - logit[target]; dlogits (if given) = (softmax - onehot) * grad_scale / count.
// Ignored (and invalid) rows give a zero loss and a zero gradient row. VEC elements a thread
// step: 16-byte loads and stores where the row allows (VEC = 16 / sizeof(T)), else 1. One
// element at a time the kernel took about twice the time of its bytes (H100, vocabulary 32768).
template <class T, int VEC>
__global__ void ce_row_kernel(const T* logits, const int32_t* tg, int64_t V, const int64_t* info, float grad_scale,
                              T* dlogits, float* row_loss) {
  const int64_t i = blockIdx.x;
  const T* row = logits + i * V;
  T* drow = dlogits ? dlogits + i * V : nullptr;
  const int32_t t = tg[i];
  const int64_t step = int64_t(blockDim.x) * VEC;
  if (t < 0 || t >= V) {  // uniform over the block: no thread reaches the reductions below
    if (drow) {
      const float zero[VEC] = {};
      for (int64_t j = int64_t(threadIdx.x) * VEC; j < V; j += step) st_vec<VEC>(drow + j, zero);
    }
    if (threadIdx.x == 0) row_loss[i] = 0.f;
    return;
  }
  // Each thread keeps a running max m and sum s = sum exp(x - m) over its columns, rescaled
  // once per VEC values (to the max of the old m and the new values).
  float m = -INFINITY, s = 0.f;
  for (int64_t j = int64_t(threadIdx.x) * VEC; j < V; j += step) {
    float x[VEC];
    ld_vec<VEC>(row + j, x);
    float mx = x[0];
#pragma unroll
    for (int u = 1; u < VEC; ++u) mx = fmaxf(mx, x[u]);
    const float mn = fmaxf(m, mx);
    if (mn == -INFINITY) continue;  // all -inf so far: nothing to add (and no inf - inf)
    float add = 0.f;
#pragma unroll
    for (int u = 0; u < VEC; ++u) add += expf(x[u] - mn);
    s = (m == -INFINITY ? 0.f : s * expf(m - mn)) + add;
    m = mn;
  }
  const float M = block_max(m);
  const float S = block_sum(m == -INFINITY ? 0.f : s * expf(m - M));
  const float lse = M + logf(S);
  if (threadIdx.x == 0) row_loss[i] = lse - ld(row[t]);
  if (!drow) return;
  const float gs = grad_scale / float(info[0]);  // info[0] >= 1: this row is scored
  for (int64_t j = int64_t(threadIdx.x) * VEC; j < V; j += step) {
    float x[VEC];
    ld_vec<VEC>(row + j, x);
#pragma unroll
    for (int u = 0; u < VEC; ++u) x[u] = expf(x[u] - lse) * gs - (j + u == t ? gs : 0.f);
    st_vec<VEC>(drow + j, x);
  }
}

// out = {sum of row losses, scored rows, first invalid row}; one block, fixed order.
__global__ void ce_total_kernel(const float* row_loss, int64_t N, const int64_t* info, double* out) {
  double acc = 0;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) acc += row_loss[i];
  acc = block_sum_double(acc);
  if (threadIdx.x == 0) {
    out[0] = acc;
    out[1] = double(info[0]);
    out[2] = double(info[1]);
  }
}

}  // namespace

void cross_entropy_stats(const Tensor& logits, const Tensor& targets, Tensor* dlogits, double grad_scale,
                         Tensor& stats) {
  expect_cuda({&logits, &targets, &stats}, "cross_entropy");
  LT2_CHECK(stats.dtype() == DType::F64 && stats.numel() == 3, "cross_entropy_stats: stats must be F64 [3]");
  LT2_CHECK(logits.ndim() == 2, "cross_entropy: logits must be [N, V], got ", shape_str(logits.shape()));
  LT2_CHECK(targets.dtype() == DType::I32 && targets.numel() == logits.dim(0),
            "cross_entropy: targets must be I32 [", logits.dim(0), "]");
  const int64_t N = logits.dim(0), V = logits.dim(1);
  if (dlogits) *dlogits = Tensor::empty(logits.shape(), logits.dtype(), Device::CUDA);
  if (N == 0) {
    stats.zero();
    return;
  }
  LT2_CHECK(V > 0, "cross_entropy: empty vocabulary");
  // Scratch: info (2 int64 in 8-byte slots); the row losses.
  Tensor scratch = Tensor::empty({2}, DType::F64, Device::CUDA);
  int64_t* infop = reinterpret_cast<int64_t*>(scratch.data<double>());
  double* outp = stats.data<double>();
  Tensor row_loss = Tensor::empty({N}, DType::F32, Device::CUDA);
  const int32_t* tg = targets.data<int32_t>();

  ce_scan_targets_kernel<<<1, 1024, 0, stream()>>>(tg, N, V, infop);
  check_launch("cross_entropy");
  dispatch_float(logits.dtype(), [&](auto t) {
    using T = decltype(t);
    constexpr int VEC = 16 / int(sizeof(T));
    T* dl = dlogits ? dlogits->data<T>() : nullptr;
    const bool vec = vec_aligned(VEC, V, sizeof(T), {logits.bytes(), dl ? static_cast<const void*>(dl) : nullptr});
    if (vec)
      ce_row_kernel<T, VEC><<<unsigned(N), 512, 0, stream()>>>(logits.data<T>(), tg, V, infop, float(grad_scale), dl,
                                                               row_loss.data<float>());
    else
      ce_row_kernel<T, 1><<<unsigned(N), 512, 0, stream()>>>(logits.data<T>(), tg, V, infop, float(grad_scale), dl,
                                                             row_loss.data<float>());
  });
  check_launch("cross_entropy");
  ce_total_kernel<<<1, 1024, 0, stream()>>>(row_loss.data<float>(), N, infop, outp);
  check_launch("cross_entropy");
}

double cross_entropy(const Tensor& logits, const Tensor& targets, Tensor* dlogits, double grad_scale) {
  Tensor stats = Tensor::empty({3}, DType::F64, Device::CUDA);
  cross_entropy_stats(logits, targets, dlogits, grad_scale, stats);
  const int64_t N = logits.dim(0), V = logits.dim(1);
  if (N == 0) return 0.0;
  double out[3];
  copy_to_host(out, stats.data<double>(), sizeof(out));  // the one synchronisation: the caller wants the loss
  const int64_t count = int64_t(out[1]), first_bad = int64_t(out[2]);
  if (first_bad < N)
    fail(cat("cross_entropy: target ", int64_t(targets.item(first_bad)), " outside [-1, ", V, ")"));
  if (count == 0) return 0.0;
  return out[0] / double(count);
}

}  // namespace lt2::cuda
