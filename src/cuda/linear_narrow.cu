// linear's forward and weight gradient for layers with a handful of outputs (N <= 8: GDN's
// a / b gate projections, one output per value head). cuBLASLt runs those at ~5 TFLOP/s:
// 37-40 us for a 32768 x 768 BF16 input on an H100, about twice the time it takes to read the
// input once. These kernels read x once per call and are bandwidth-bound. Both sum in a fixed
// order (no atomics), so results are bitwise reproducible.
#include <algorithm>

#include "cuda/linear_narrow.h"
#include "cuda/op_util.cuh"

namespace lt2::cuda {

namespace {

constexpr int kFwdThreads = 256;
// dW: a block is kDwColLanes threads across columns (VEC columns each) times kDwRowLanes threads
// down the rows of its chunk; the row lanes' sums meet in shared memory in a fixed order.
constexpr int kDwColLanes = 32, kDwRowLanes = 16;
// Chunks of rows for dW's partial sums: few enough that the second pass (one thread per
// weight, summing the chunks in order) stays short, many enough that with K = 768 the blocks
// (3 per chunk) cover an H100's 132 SMs. A constant, so results do not depend on the GPU.
constexpr int64_t kDwChunks = 48;

template <class T>
constexpr int vec_of() {
  return int(16 / sizeof(T));
}

// y[r, j] = sum_k x[r, k] w[j, k]: a warp takes kFwdRows rows at a time, lane l the 16-byte
// vectors l, l + 32, ... of each. w sits in shared memory as fp32 with one padding float after
// every vector's VEC values, so the 32 lanes' reads of a vector fall in 32 different banks
// (unpadded, lanes 4 apart collided: 8-way conflicts, and the kernel took 87 us where cuBLASLt
// takes 37). Each w value read serves kFwdRows rows.
constexpr int kFwdRows = 2;
template <class T, class TW, int NMAX>
__global__ void __launch_bounds__(kFwdThreads) narrow_forward_kernel(const T* __restrict__ x, const TW* __restrict__ w,
                                                                     T* __restrict__ y, int64_t M, int K, int n) {
  constexpr int VEC = vec_of<T>(), PAD = VEC + 1;
  extern __shared__ float ws[];  // [n, K / VEC, PAD]
  const int vecs = K / VEC;
  for (int i = threadIdx.x; i < n * K; i += kFwdThreads) {
    const int j = i / K, k = i % K;
    ws[(j * vecs + k / VEC) * PAD + k % VEC] = ld(w[i]);
  }
  __syncthreads();
  const int lane = threadIdx.x % 32;
  const int64_t warp = int64_t(blockIdx.x) * (kFwdThreads / 32) + threadIdx.x / 32;
  const int64_t stride = int64_t(gridDim.x) * (kFwdThreads / 32) * kFwdRows;
  for (int64_t r0 = warp * kFwdRows; r0 < M; r0 += stride) {
    float acc[kFwdRows][NMAX] = {};
    for (int v = lane; v < vecs; v += 32) {
      float xv[kFwdRows][VEC];
#pragma unroll
      for (int q = 0; q < kFwdRows; ++q) {
        if (r0 + q < M) ld_vec<VEC>(x + (r0 + q) * K + v * VEC, xv[q]);
        else
#pragma unroll
          for (int i = 0; i < VEC; ++i) xv[q][i] = 0.f;
      }
#pragma unroll
      for (int j = 0; j < NMAX; ++j)
        if (j < n)
#pragma unroll
          for (int i = 0; i < VEC; ++i) {
            const float wv = ws[(j * vecs + v) * PAD + i];
#pragma unroll
            for (int q = 0; q < kFwdRows; ++q) acc[q][j] += xv[q][i] * wv;
          }
    }
#pragma unroll
    for (int q = 0; q < kFwdRows; ++q)
#pragma unroll
      for (int j = 0; j < NMAX; ++j)
        if (j < n) {  // n is the same for the whole warp, so every lane takes part in the sum
          const float s = warp_sum(acc[q][j]);
          if (lane == j && r0 + q < M) y[(r0 + q) * n + j] = st<T>(s);
        }
  }
}

// partial[chunk, j * K + k] = sum over the chunk's rows r of dy[r, j] x[r, k].
template <class T, int NMAX>
__global__ void __launch_bounds__(kDwColLanes* kDwRowLanes) narrow_dw_partial_kernel(
    const T* __restrict__ x, const T* __restrict__ dy, float* __restrict__ partial, int64_t M, int K, int n,
    int64_t rows_per_chunk) {
  constexpr int VEC = vec_of<T>();
  __shared__ float tile[kDwRowLanes][kDwColLanes][VEC + 1];  // +1: no bank conflicts in the column sums
  const int tx = threadIdx.x % kDwColLanes, ty = threadIdx.x / kDwColLanes;
  const int k0 = (blockIdx.x * kDwColLanes + tx) * VEC;
  const bool active = k0 < K;
  const int64_t r0 = blockIdx.y * rows_per_chunk, r1 = std::min(M, r0 + rows_per_chunk);
  float acc[NMAX][VEC] = {};
  if (active) {
#pragma unroll 8  // eight rows' loads in flight per thread: one block of 512 threads per SM
    for (int64_t r = r0 + ty; r < r1; r += kDwRowLanes) {
      float xv[VEC];
      ld_vec<VEC>(x + r * K + k0, xv);
#pragma unroll
      for (int j = 0; j < NMAX; ++j)
        if (j < n) {
          const float g = ld(dy[r * n + j]);
#pragma unroll
          for (int i = 0; i < VEC; ++i) acc[j][i] += g * xv[i];
        }
    }
  }
#pragma unroll
  for (int j = 0; j < NMAX; ++j) {
    if (j >= n) break;
#pragma unroll
    for (int i = 0; i < VEC; ++i) tile[ty][tx][i] = acc[j][i];
    __syncthreads();
    if (ty < VEC && active) {  // thread (tx, i = ty) adds the row lanes in order
      float s = 0.f;
      for (int l = 0; l < kDwRowLanes; ++l) s += tile[l][tx][ty];
      partial[blockIdx.y * int64_t(n) * K + int64_t(j) * K + k0 + ty] = s;
    }
    __syncthreads();
  }
}

// The forward's padded fp32 copy of w [n, K] (K a multiple of the vector width).
size_t forward_smem_bytes(DType dt, int64_t n, int64_t K) {
  const int64_t vec = int64_t(16 / dtype_size(dt));
  return size_t(n * (K / vec) * (vec + 1)) * sizeof(float);
}

template <class F>
void with_nmax(int64_t n, F&& f) {
  if (n <= 4) f(std::integral_constant<int, 4>{});
  else f(std::integral_constant<int, kMaxNarrowOutputs>{});
}

}  // namespace

bool narrow_linear_fits(const Tensor& x, int64_t N, int64_t K) {
  const size_t vec_bytes = 16;
  return N >= 1 && N <= kMaxNarrowOutputs && K % int64_t(vec_bytes / dtype_size(x.dtype())) == 0 &&
         forward_smem_bytes(x.dtype(), N, K) <= 48 * 1024 && aligned_to(vec_bytes, {x.bytes()});
}

void narrow_linear_forward(const Tensor& x, const Tensor& w, Tensor& y, int64_t M) {
  const int n = int(w.dim(0)), K = int(w.dim(1));
  if (M == 0) return;
  static const int sms = [] {
    int dev = 0, count = 0;
    LT2_CUDA_CHECK(cudaGetDevice(&dev));
    LT2_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev));
    return count;
  }();
  // Four blocks per SM: each loads w once, then its warps stride over the rows.
  const unsigned blocks =
      unsigned(std::clamp<int64_t>(blocks_for(M, kFwdThreads / 32 * kFwdRows), 1, int64_t(sms) * 4));
  const size_t smem = forward_smem_bytes(x.dtype(), n, K);
  dispatch_float(x.dtype(), [&](auto xt) {
    dispatch_float(w.dtype(), [&](auto wt) {
      using T = decltype(xt);
      using TW = decltype(wt);
      with_nmax(n, [&](auto nmax) {
        narrow_forward_kernel<T, TW, decltype(nmax)::value><<<blocks, kFwdThreads, smem, stream()>>>(
            x.data<T>(), w.data<TW>(), y.data<T>(), M, K, n);
      });
    });
  });
  check_launch("linear (narrow)");
}

void narrow_linear_backward_dw(const Tensor& x, const Tensor& dy, Tensor& dw, int64_t M) {
  const int n = int(dw.dim(0)), K = int(dw.dim(1));
  if (M == 0) return;
  const int64_t rows_per_chunk = std::max<int64_t>(kDwRowLanes, (M + kDwChunks - 1) / kDwChunks);
  const int64_t chunks = (M + rows_per_chunk - 1) / rows_per_chunk;
  Tensor partial = Tensor::empty({chunks, int64_t(n) * K}, DType::F32, Device::CUDA);  // freed in stream order
  dispatch_float(x.dtype(), [&](auto xt) {
    using T = decltype(xt);
    const dim3 grid(unsigned(blocks_for(K, kDwColLanes * vec_of<T>())), unsigned(chunks));
    with_nmax(n, [&](auto nmax) {
      narrow_dw_partial_kernel<T, decltype(nmax)::value><<<grid, kDwColLanes * kDwRowLanes, 0, stream()>>>(
          x.data<T>(), dy.data<T>(), partial.data<float>(), M, K, n, rows_per_chunk);
    });
  });
  check_launch("linear_backward dw (narrow)");
  colsum_finish_kernel<<<unsigned(blocks_for(int64_t(n) * K, 256)), 256, 0, stream()>>>(
      partial.data<float>(), chunks, int64_t(n) * K, dw.data<float>());
  check_launch("linear_backward dw (narrow)");
}

}  // namespace lt2::cuda
