// The lightning indexer's backward over every causal pair (cuda/dsa_masked.cu says when):
// with the gradient dI of the scores as a dense [B, L, L] matrix (zero off the key sets),
//   G_j[t, s] = w_scale dI[t, s] w[t, j] [qI[t, j] . kI[s] > 0]
//   dqI[t, j] = sum_s G_j[t, s] kI[s],  dw[t, j] = w_scale sum_s dI[t, s] relu(qI[t, j] . kI[s]),
//   dkI[s]    = sum_t sum_j G_j[t, s] qI[t, j].
// Two tiled fp32 kernels like the scores kernel (64 x 64 (query, key) tiles, 4 x 4 scores per
// thread): one owns a query tile and walks the key tiles up to the diagonal (dqI, dw), the other
// owns a key tile and walks the query tiles from it (dkI), so every output has one owner and
// the sums have a fixed order. The gather kernels of dsa.cu read H_I query rows per (query,
// slot) and build a transposed index first; this does L / 2k times their pairs with no gathers,
// which pays only for dense or nearly dense sets (dsa_masked.cu has the measured rule).
// BF16 inputs with d_I in {16, 32, 48, 64} take the tensor-core kernels of
// dsa_indexer_dense_mma.cu instead (LT2_DSA_INDEXER_SIMT=1 forces these for comparison).
#include <cstdlib>

#include "cuda/common.cuh"
#include "cuda/dsa_masked.h"

namespace lt2::cuda {

namespace {

constexpr int kT = 64;         // tile edge
constexpr int kThreadsT = 256;  // 16 x 16 threads, 4 x 4 pairs each

struct DenseShape {
  int64_t L, HI, dI;
  float w_scale;
};

// Shared layout: A [64][dI + 1] (query rows), Bk [64][dI + 1] (key rows), G [64][65].
size_t dense_smem(int64_t dI) { return sizeof(float) * size_t(2 * kT * (dI + 1) + kT * (kT + 1)); }

// rows [r0, r0 + 64) of src (row stride stride, dI used columns) into dst [64][dI + 1]; zeros past L.
template <class T>
__device__ __forceinline__ void load_tile(float* dst, const T* src, int64_t stride, int64_t r0, const DenseShape& d) {
  for (int64_t e = threadIdx.x; e < kT * d.dI; e += kThreadsT) {
    const int64_t r = e / d.dI, c = e % d.dI;
    dst[r * (d.dI + 1) + c] = r0 + r < d.L ? ld(src[(r0 + r) * stride + c]) : 0.f;
  }
}

// The tile's G_j into G (rows t0 + r, columns s0 + c), from A = qI_j rows and Bk = kI rows; the
// thread's dw terms (rows ty + 16 i) are added to dw_part when given.
template <class T>
__device__ __forceinline__ void tile_gradient(const float* A, const float* Bk, float* G, const float* dI, const T* w,
                                              int64_t b, int64_t j, int64_t t0, int64_t s0, const DenseShape& d,
                                              float (*dw_part)) {
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t P = d.dI + 1;
  float sc[4][4] = {};
  for (int64_t c = 0; c < d.dI; ++c) {
    float a[4], k4[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i] = A[(ty + 16 * i) * P + c], k4[i] = Bk[(tx + 16 * i) * P + c];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) sc[i][jj] += a[i] * k4[jj];
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t t = t0 + ty + 16 * i;
    const float wt = t < d.L ? ld(w[(b * d.L + t) * d.HI + j]) : 0.f;
#pragma unroll
    for (int jj = 0; jj < 4; ++jj) {
      const int64_t s = s0 + tx + 16 * jj;
      const float g = s <= t && t < d.L ? dI[(b * d.L + t) * d.L + s] * d.w_scale : 0.f;
      G[(ty + 16 * i) * (kT + 1) + tx + 16 * jj] = sc[i][jj] > 0.f ? g * wt : 0.f;
      if (dw_part) dw_part[i] += g * fmaxf(sc[i][jj], 0.f);
    }
  }
}

// Block (query tile, b): for each head j, walks the key tiles up to the diagonal.
template <class T>
__global__ void __launch_bounds__(kThreadsT) indexer_dq_dense_kernel(const T* __restrict__ qI,
                                                                     const T* __restrict__ kI, const T* __restrict__ w,
                                                                     const float* __restrict__ dI, DenseShape d,
                                                                     T* __restrict__ dqI, T* __restrict__ dw) {
  extern __shared__ float sm[];
  float *A = sm, *Bk = A + kT * (d.dI + 1), *G = Bk + kT * (d.dI + 1);
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t b = blockIdx.y, t0 = int64_t(blockIdx.x) * kT, P = d.dI + 1;
  for (int64_t j = 0; j < d.HI; ++j) {
    float dq[4][4] = {}, dw_part[4] = {};  // rows ty + 16 i, columns tx + 16 cc (dI <= 64)
    load_tile(A, qI + (b * d.L * d.HI + j) * d.dI, d.HI * d.dI, t0, d);
    for (int64_t s0 = 0; s0 <= t0; s0 += kT) {
      load_tile(Bk, kI + b * d.L * d.dI, d.dI, s0, d);
      __syncthreads();
      tile_gradient(A, Bk, G, dI, w, b, j, t0, s0, d, dw_part);
      __syncthreads();
      for (int s = 0; s < kT; ++s) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float g = G[(ty + 16 * i) * (kT + 1) + s];
#pragma unroll
          for (int cc = 0; cc < 4; ++cc)
            if (tx + 16 * cc < d.dI) dq[i][cc] += g * Bk[s * P + tx + 16 * cc];
        }
      }
      __syncthreads();  // Bk and G are refilled next
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t t = t0 + ty + 16 * i;
      float part = dw_part[i];  // the 16 threads of a row group are 16 consecutive lanes
      for (int o = 8; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o);
      if (t >= d.L) continue;
#pragma unroll
      for (int cc = 0; cc < 4; ++cc)
        if (tx + 16 * cc < d.dI) dqI[((b * d.L + t) * d.HI + j) * d.dI + tx + 16 * cc] = st<T>(dq[i][cc]);
      if (tx == 0) dw[(b * d.L + t) * d.HI + j] = st<T>(part);
    }
  }
}

// Block (key tile, b): walks the query tiles from the diagonal on, every head of each.
template <class T>
__global__ void __launch_bounds__(kThreadsT) indexer_dk_dense_kernel(const T* __restrict__ qI,
                                                                     const T* __restrict__ kI, const T* __restrict__ w,
                                                                     const float* __restrict__ dI, DenseShape d,
                                                                     T* __restrict__ dkI) {
  extern __shared__ float sm[];
  float *A = sm, *Bk = A + kT * (d.dI + 1), *G = Bk + kT * (d.dI + 1);
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t b = blockIdx.y, s0 = int64_t(blockIdx.x) * kT, P = d.dI + 1;
  float dk[4][4] = {};  // keys ty + 16 i, columns tx + 16 cc
  load_tile(Bk, kI + b * d.L * d.dI, d.dI, s0, d);
  for (int64_t t0 = s0; t0 < d.L; t0 += kT)
    for (int64_t j = 0; j < d.HI; ++j) {
      load_tile(A, qI + (b * d.L * d.HI + j) * d.dI, d.HI * d.dI, t0, d);
      __syncthreads();
      tile_gradient(A, Bk, G, dI, w, b, j, t0, s0, d, static_cast<float*>(nullptr));
      __syncthreads();
      for (int t = 0; t < kT; ++t) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float g = G[t * (kT + 1) + ty + 16 * i];
#pragma unroll
          for (int cc = 0; cc < 4; ++cc)
            if (tx + 16 * cc < d.dI) dk[i][cc] += g * A[t * P + tx + 16 * cc];
        }
      }
      __syncthreads();  // A and G are refilled next
    }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t s = s0 + ty + 16 * i;
    if (s >= d.L) continue;
#pragma unroll
    for (int cc = 0; cc < 4; ++cc)
      if (tx + 16 * cc < d.dI) dkI[(b * d.L + s) * d.dI + tx + 16 * cc] = st<T>(dk[i][cc]);
  }
}

// dense[b, t, idx[b, t, i]] = dIsel[b, t, i] (empty slots skipped); the rest stays 0.
__global__ void scatter_rows_kernel(const int32_t* __restrict__ idx, const float* __restrict__ dIsel, int64_t slots,
                                    int64_t K, int64_t L, float* __restrict__ dense) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < slots; i += int64_t(gridDim.x) * blockDim.x) {
    const int32_t s = idx[i];
    if (s >= 0) dense[(i / K) * L + s] = dIsel[i];
  }
}

}  // namespace

void indexer_backward_dense(const Tensor& qI, const Tensor& kI, const Tensor& w, double w_scale, const Tensor& idx,
                            const Tensor& dIsel, Tensor& dqI, Tensor& dkI, Tensor& dw) {
  const int64_t B = qI.dim(0), L = qI.dim(1), HI = qI.dim(2), dI_ = qI.dim(3);
  LT2_CHECK(dI_ >= 1 && dI_ <= kMaxDenseIndexerDim, "indexer_backward_dense: d_I ", dI_, " above ",
            kMaxDenseIndexerDim);
  Tensor dense = dIsel;  // the dense set's gradient is [B, L, L] already
  if (idx.defined()) {
    dense = Tensor::zeros({B, L, L}, DType::F32, Device::CUDA);
    const int64_t slots = idx.numel();
    if (slots > 0)
      scatter_rows_kernel<<<unsigned(std::min<int64_t>((slots + 255) / 256, 65535)), 256, 0, stream()>>>(
          idx.data<int32_t>(), dIsel.data<float>(), slots, idx.dim(2), L, dense.data<float>());
    check_launch("dsa indexer backward scatter");
  }
  if (std::getenv("LT2_DSA_INDEXER_SIMT") == nullptr &&
      indexer_backward_dense_mma(qI, kI, w, w_scale, dense.data<float>(), dqI, dkI, dw))
    return;
  const DenseShape d{L, HI, dI_, float(w_scale)};
  const size_t smem = dense_smem(dI_);
  const dim3 grid(unsigned((L + kT - 1) / kT), unsigned(B));
  dispatch_float(qI.dtype(), [&](auto tag) {
    using T = decltype(tag);
    allow_smem(indexer_dq_dense_kernel<T>, smem);
    allow_smem(indexer_dk_dense_kernel<T>, smem);
    indexer_dq_dense_kernel<T><<<grid, kThreadsT, smem, stream()>>>(qI.data<T>(), kI.data<T>(), w.data<T>(),
                                                                    dense.data<float>(), d, dqI.data<T>(),
                                                                    dw.data<T>());
    check_launch("dsa indexer backward (dqI, dw)");
    indexer_dk_dense_kernel<T><<<grid, kThreadsT, smem, stream()>>>(qI.data<T>(), kI.data<T>(), w.data<T>(),
                                                                    dense.data<float>(), d, dkI.data<T>());
    check_launch("dsa indexer backward (dkI)");
  });
}

}  // namespace lt2::cuda
