#pragma once
// Launch shapes and a deterministic per-channel reduction shared by the elementwise,
// activation and norm kernels.
#include <algorithm>

#include "cuda/common.cuh"
#include "ops/op_types.h"

namespace lt2::cuda {

// Grid-stride elementwise kernels: enough blocks to fill the GPU, capped so the grid stays small.
constexpr int kEwThreads = 256;
inline int ew_grid(int64_t n) { return int(std::clamp<int64_t>(blocks_for(n, kEwThreads), 1, 65535)); }

// One block per row of width n: a multiple of 32 threads (block_sum needs whole warps),
// at most 256 so short rows do not leave most threads idle.
inline int row_threads(int64_t n) { return int(std::clamp<int64_t>((n + 31) / 32 * 32, 32, 256)); }

// Activation functions in fp32, with the CPU reference's formulas (cpu/common.h). The sigmoid
// takes the hardware exp2 (__expf, a few ulp) and reciprocal (__fdividef: one MUFU.RCP, 1 ulp;
// 1 / inf = 0, so sigmoid(-inf) = 0) instead of expf and an IEEE division (~20 instructions a
// value, enough to make the short conv issue-bound); its error stays ~1e-7 relative, far inside
// the fp32 parity bound.
__device__ __forceinline__ float sigmoid_f(float x) { return __fdividef(1.f, 1.f + __expf(-x)); }
__device__ __forceinline__ float silu_f(float x) { return x * sigmoid_f(x); }
// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x)
__device__ __forceinline__ float silu_grad_f(float x) {
  const float s = sigmoid_f(x);
  return s * (1.f + x * (1.f - s));
}
// Same cut-over as the CPU: above 20, log1p(exp(x)) rounds to x.
__device__ __forceinline__ float softplus_f(float x) { return x > 20.f ? x : log1pf(expf(x)); }

// Rows of the last dimension: a tensor [.., n] viewed as [rows, n].
inline int64_t rows_of(const Tensor& t) { return t.ndim() == 0 ? 1 : t.numel() / t.dim(-1); }

#define LT2_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// ---- vectorised elementwise maps -------------------------------------------------------
// f.template apply<V>(i) handles elements [i, i + V) of flat arrays. The bulk goes 16 bytes
// of T at a time when every address allows it; the last n % V elements go one by one.
template <int VEC, class F>
__global__ void __launch_bounds__(kEwThreads) ew_map_kernel(F f, int64_t n) {
  const int64_t nv = n / VEC;
  LT2_GRID_STRIDE(j, nv) f.template apply<VEC>(j * VEC);
  if (blockIdx.x == 0 && threadIdx.x < n - nv * VEC) f.template apply<1>(nv * VEC + threadIdx.x);
}
// wide_ok = false keeps every access one element wide (an output block whose rows do not split
// into whole 16-byte vectors, see Out).
template <class T, class F>
void ew_map(int64_t n, std::initializer_list<const void*> ptrs, const F& f, const char* op, bool wide_ok = true) {
  if (n == 0) return;
  constexpr int kWide = 16 / sizeof(T);
  if (wide_ok && aligned_to(16, ptrs)) ew_map_kernel<kWide><<<ew_grid(std::max<int64_t>(1, n / kWide)), kEwThreads, 0, stream()>>>(f, n);
  else ew_map_kernel<1><<<ew_grid(n), kEwThreads, 0, stream()>>>(f, n);
  check_launch(op);
}

// y = a + b (y may be a: each element is read before it is written).
template <class T>
struct Add {
  const T *a, *b;
  T* y;
  template <int V>
  __device__ void apply(int64_t i) const {
    float av[V], bv[V];
    ld_vec<V>(a + i, av);
    ld_vec<V>(b + i, bv);
#pragma unroll
    for (int k = 0; k < V; ++k) av[k] += bv[k];
    st_vec<V>(y + i, av);
  }
};

// dst = src converted (the vector width follows the wider type: ew_map<wider>).
template <class S, class D>
struct Cast {
  const S* src;
  D* dst;
  template <int V>
  __device__ void apply(int64_t i) const {
    float v[V];
    ld_vec<V>(src + i, v);
    st_vec<V>(dst + i, v);
  }
};

// Block-wide sum in double (for the host-visible totals: loss, sum of squares), same rules as block_sum.
__device__ __forceinline__ double block_sum_double(double v) {
  __shared__ double part[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) part[warp] = v;
  __syncthreads();
  const int nw = (blockDim.x + 31) >> 5;
  v = lane < nw ? part[lane] : 0.0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// ---- grad[c] += sum over rows r of f(r, c), bitwise reproducible ---------------------
// Parameter gradients (norm weights, rho, GDN gate parameters) reduce over every row.
// Atomics would make the sum order, hence the result, vary from run to run, so:
// pass 1 gives each block a tile of 32 channels and a fixed chunk of rows and writes one
// partial sum per (chunk, channel); pass 2 adds the chunks in order into the F32 gradient.
// The chunking depends only on (rows, n), never on the hardware.
constexpr int kColTile = 32, kRowLanes = 8;

// F: a functor with `__device__ float operator()(int64_t r, int64_t c) const`.
template <class F>
__global__ void colsum_partial_kernel(F f, int64_t rows, int64_t n, int64_t rows_per_chunk, float* partial) {
  __shared__ float tile[kRowLanes][kColTile];
  const int64_t c = blockIdx.x * int64_t(kColTile) + threadIdx.x;
  const int64_t r0 = blockIdx.y * rows_per_chunk, r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  float acc = 0.f;
  if (c < n)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowLanes) acc += f(r, c);
  tile[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < n) {
    float s = 0.f;
    for (int k = 0; k < kRowLanes; ++k) s += tile[k][threadIdx.x];
    partial[blockIdx.y * n + c] = s;
  }
}

template <int = 0>  // a template so every .cu file may include this header
__global__ void colsum_finish_kernel(const float* partial, int64_t chunks, int64_t n, float* grad) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= n) return;
  float s = 0.f;
  for (int64_t k = 0; k < chunks; ++k) s += partial[k * n + c];
  grad[c] += s;
}

// grad: F32 [n] on the GPU, accumulated (+=).
template <class F>
void colsum_accumulate(const F& f, int64_t rows, int64_t n, Tensor& grad, const char* op) {
  if (rows == 0 || n == 0) return;
  const int64_t col_blocks = blocks_for(n, kColTile);
  // About 1024 blocks in pass 1, with at least 64 rows per chunk so the partials stay small.
  const int64_t max_chunks = std::max<int64_t>(1, blocks_for(rows, 64));
  const int64_t want = std::clamp<int64_t>(1024 / col_blocks, 1, max_chunks);
  const int64_t rows_per_chunk = (rows + want - 1) / want;
  const int64_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;  // <= 1024: fits grid.y
  Tensor partial = Tensor::empty({chunks, n}, DType::F32, Device::CUDA);  // freed in stream order
  colsum_partial_kernel<<<dim3(unsigned(col_blocks), unsigned(chunks)), dim3(kColTile, kRowLanes), 0, stream()>>>(
      f, rows, n, rows_per_chunk, partial.data<float>());
  check_launch(op);
  colsum_finish_kernel<<<unsigned(blocks_for(n, 256)), 256, 0, stream()>>>(partial.data<float>(), chunks, n,
                                                                          grad.data<float>());
  check_launch(op);
}

// ---- outputs written into a column block (ColBlock) ------------------------------------------
// Where element i of a [rows, w] result goes: p[i] when contiguous (ld == w), else row i / w of
// a wider row-major tensor, column i % w of the block that starts at p.
template <class T>
struct Out {
  T* p;
  int64_t w, ld;
  __device__ __forceinline__ T* at(int64_t i) const { return ld == w ? p + i : p + (i / w) * ld + i % w; }
  // A V-wide access [i, i + V) with V | i stays inside one row and aligned (given an aligned p).
  bool splits_into(int V) const { return w % V == 0 && ld % V == 0; }
};

// The destination of a result shaped like `like` ([.., w]): the block when one is given (then
// `dense` is left undefined), else `dense`, allocated here.
template <class T>
Out<T> make_out(const Tensor& like, Tensor& dense, const ColBlock* block, const char* op) {
  const int64_t w = like.ndim() == 0 ? 1 : like.dim(-1);
  if (!block) {
    dense = Tensor::empty_like(like);
    return {dense.data<T>(), w, w};
  }
  expect_cuda({&block->t}, op);
  check_col_block(*block, rows_of(like), w, like.dtype(), op);
  dense = Tensor();
  Tensor t = block->t;  // a handle on the block's storage
  return {t.data<T>() + block->col, w, block->ld()};
}

// Copies src [.., w] into its column block (a strided 2-D copy on the stream).
inline void put_cols(const Tensor& src, const ColBlock& dst, const char* op) {
  const int64_t w = src.dim(-1), es = int64_t(dtype_size(src.dtype()));
  check_col_block(dst, rows_of(src), w, src.dtype(), op);
  Tensor t = dst.t;
  LT2_CUDA_CHECK(cudaMemcpy2DAsync(t.bytes() + dst.col * es, size_t(dst.ld() * es), src.bytes(), size_t(w * es),
                                   size_t(w * es), size_t(rows_of(src)), cudaMemcpyDeviceToDevice, stream()));
}

}  // namespace lt2::cuda
