// Causal depthwise convolution (width W, no bias) followed by SiLU, as in GDN's short conv,
// and its decode step.
// Training kernels tile each sequence into runs of kConvRows rows, one thread block per run and
// 32 · VEC channels. Each warp takes a sub-run of kSubRows rows; a thread owns VEC adjacent
// channels of it and walks it in order with the last W inputs in registers, so every input is
// read once from DRAM (the W-1 row halo of a sub-run is its neighbour's, mostly an L1 hit) by
// wide loads, and a warp covers consecutive channels of a row. Short sub-runs give the GPU four
// times the threads of one walk per run: measured on an H100, a 32-row walk per thread left the
// forward at 27 % and the backward at 21 % of DRAM bandwidth (latency-bound, 32 % / 16 % of the
// warp slots busy); sub-runs of 8 rows took the forward to 33-43 % and the conv's share of a
// small-125m step from 35 to 27 ms. The backward walks its sub-run in reverse, computing dpre = dy silu'(pre)
// once per row and keeping the last W of them for dx, sums dw over its rows in registers, and
// the block adds its four sub-runs in shared memory in a fixed order. The weight may be F32 or
// the activations' dtype; its gradient is F32 and accumulated (+=) from the runs' partial sums
// through op_util's deterministic column sum (no atomics). W = 4 (GDN's) is a compile-time
// constant of its kernels, so the tap arrays and their reversals cost no extra registers.
#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/op_util.cuh"

namespace lt2::cuda {

namespace {

// Bound on the conv width (GDN uses W = 4; widths up to 4 take the register-lean kernels).
constexpr int kMaxConvWidth = 16;
// Rows per run (one block; dw partials are per run) and threads per block of the training
// kernels: 32 lanes across channels times four sub-runs of kSubRows rows.
constexpr int kConvRows = 32;
constexpr int kConvThreads = 128;
constexpr int kConvLanes = 32;
constexpr int kSubRuns = kConvThreads / kConvLanes;
constexpr int kSubRows = kConvRows / kSubRuns;

void check_conv(const Tensor& x, const Tensor& w, const char* op) {
  expect_cuda({&x, &w}, op);
  LT2_CHECK(x.ndim() == 3, op, ": x must be [B, L, C], got ", shape_str(x.shape()));
  LT2_CHECK(w.ndim() == 2 && w.dim(0) == x.dim(2), op, ": weight ", shape_str(w.shape()), " does not match C = ",
            x.dim(2));
  LT2_CHECK(w.dim(1) >= 1 && w.dim(1) <= kMaxConvWidth, op, ": conv width ", w.dim(1), " must be in 1..",
            kMaxConvWidth, " on CUDA");
  LT2_CHECK(w.dtype() == DType::F32 || w.dtype() == x.dtype(), op, ": weight must be F32 or ",
            dtype_name(x.dtype()), ", got ", dtype_name(w.dtype()));
}

// Calls f(T{}, TW{}) for activation dtype xt and weight dtype wt (F32 or xt).
template <class F>
void dispatch_conv(DType xt, DType wt, F&& f) {
  dispatch_float(xt, [&](auto x_tag) {
    dispatch_float(wt, [&](auto w_tag) { f(x_tag, w_tag); });
  });
}

// The sub-run a thread owns: channels [c0, c0 + VEC) of rows [t0, t1) of sequence b (empty,
// t1 = t0, past the sequence's end).
struct ConvRun {
  int64_t base, c0, t0, t1;  // base: offset of (b, t = 0, c0)
  int64_t run;               // index of the block's run (b, row tile), for dw partials
  bool active;
  __device__ ConvRun(int64_t L, int64_t C, int vec) {
    const int64_t tiles = (L + kConvRows - 1) / kConvRows;
    run = blockIdx.x;
    const int64_t b = run / tiles;
    t0 = (run % tiles) * kConvRows + int64_t(threadIdx.x / kConvLanes) * kSubRows;
    t1 = t0 + kSubRows < L ? t0 + kSubRows : L;
    if (t1 < t0) t1 = t0;
    c0 = (int64_t(blockIdx.y) * kConvLanes + threadIdx.x % kConvLanes) * vec;
    active = c0 < C;
    base = b * L * C + c0;
  }
};

// Loads x[t, c0 ..] (zeros before the sequence start) into v.
template <int VEC, class T>
__device__ __forceinline__ void load_row(const T* x, int64_t base, int64_t t, int64_t C, float (&v)[VEC]) {
  if (t >= 0) {
    ld_vec<VEC>(x + base + t * C, v);
  } else {
#pragma unroll
    for (int i = 0; i < VEC; ++i) v[i] = 0.f;
  }
}

// taps[f][i] = w[c0 + i, f] (reversed: w[c0 + i, W-1-f]), zero for f >= W.
template <int VEC, int WMAX, class TW>
__device__ __forceinline__ void load_taps(const TW* w, int64_t c0, int W, bool reversed, float (&taps)[WMAX][VEC]) {
#pragma unroll
  for (int f = 0; f < WMAX; ++f)
#pragma unroll
    for (int i = 0; i < VEC; ++i) taps[f][i] = f < W ? ld(w[(c0 + i) * W + (reversed ? W - 1 - f : f)]) : 0.f;
}

// sum over f < W of taps[f][i] vals[f][i]
template <int VEC, int WMAX>
__device__ __forceinline__ float tap_dot(const float (&taps)[WMAX][VEC], const float (&vals)[WMAX][VEC], int i,
                                         int W) {
  float acc = 0.f;
#pragma unroll
  for (int f = 0; f < WMAX; ++f)
    if (f < W) acc += taps[f][i] * vals[f][i];
  return acc;
}

// WMAX: compile-time bound on W (the register arrays' size); W itself is a runtime argument,
// unless EXACT (W == WMAX, known at compile time).
template <class T, class TW, int VEC, int WMAX, bool EXACT>
__global__ void __launch_bounds__(kConvThreads) conv_silu_kernel(const T* __restrict__ x, const TW* __restrict__ w,
                                                                  T* __restrict__ y, int64_t L, int64_t C, int w_arg) {
  const int W = EXACT ? WMAX : w_arg;
  const ConvRun r(L, C, VEC);
  if (!r.active || r.t0 == r.t1) return;  // an empty sub-run past L must not read its halo rows
  // back[f] = x[t - f] and wrev[f] = w[W-1-f], the tap that reads it (indices known at compile time).
  float wrev[WMAX][VEC], back[WMAX][VEC];
  load_taps(w, r.c0, W, true, wrev);
#pragma unroll
  for (int f = 1; f < WMAX; ++f)
    if (f < W) load_row<VEC>(x, r.base, r.t0 - f, C, back[f]);
#pragma unroll 4  // several rows' loads in flight per thread (the pointers are __restrict__)
  for (int64_t t = r.t0; t < r.t1; ++t) {
    ld_vec<VEC>(x + r.base + t * C, back[0]);
    float out[VEC];
#pragma unroll
    for (int i = 0; i < VEC; ++i) out[i] = silu_f(tap_dot(wrev, back, i, W));
    st_vec<VEC>(y + r.base + t * C, out);
#pragma unroll
    for (int f = WMAX - 1; f > 0; --f)
      if (f < W)
#pragma unroll
        for (int i = 0; i < VEC; ++i) back[f][i] = back[f - 1][i];
  }
}

// Walks a sub-run backwards from the last row whose dpre some dx of it needs (t1 + W - 2).
// dx[s] = sum_j w[j] dpre[s + (W-1) - j] for its rows; dw[j][i] += sum over its rows t of
// dpre[t] x[t - (W-1) + j] for channel c0 + i.
template <class T, class TW, int VEC, int WMAX>
__device__ __forceinline__ void conv_backward_walk(const T* __restrict__ x, const TW* __restrict__ w,
                                                   const T* __restrict__ dy, T* __restrict__ dx, const ConvRun& r,
                                                   int64_t L, int64_t C, int W, float (&dw)[WMAX][VEC]) {
  // dp[f] = dpre[t + f]; wrev[f] = w[W-1-f] (the tap through which x[t] reaches dpre[t + f])
  float wr[WMAX][VEC], wrev[WMAX][VEC], win[WMAX][VEC], dp[WMAX][VEC] = {};
  load_taps(w, r.c0, W, false, wr);
  load_taps(w, r.c0, W, true, wrev);
  const int64_t t_hi = (r.t1 + W - 1 < L ? r.t1 + W - 1 : L) - 1;
#pragma unroll
  for (int j = 0; j < WMAX; ++j)
    if (j < W) load_row<VEC>(x, r.base, t_hi - (W - 1) + j, C, win[j]);
#pragma unroll 4
  for (int64_t t = t_hi; t >= r.t0; --t) {
    float g[VEC];
    ld_vec<VEC>(dy + r.base + t * C, g);
#pragma unroll
    for (int f = WMAX - 1; f > 0; --f)
      if (f < W)
#pragma unroll
        for (int i = 0; i < VEC; ++i) dp[f][i] = dp[f - 1][i];
#pragma unroll
    for (int i = 0; i < VEC; ++i) dp[0][i] = g[i] * silu_grad_f(tap_dot(wr, win, i, W));
    if (t < r.t1) {
      float out[VEC];
#pragma unroll
      for (int i = 0; i < VEC; ++i) {
        out[i] = tap_dot(wrev, dp, i, W);
#pragma unroll
        for (int j = 0; j < WMAX; ++j)
          if (j < W) dw[j][i] += dp[0][i] * win[j][i];
      }
      st_vec<VEC>(dx + r.base + t * C, out);
    }
    // Slide the input window one row back: win[j] = x[t - 1 - (W-1) + j].
#pragma unroll
    for (int j = WMAX - 1; j > 0; --j)
      if (j < W)
#pragma unroll
        for (int i = 0; i < VEC; ++i) win[j][i] = win[j - 1][i];
    load_row<VEC>(x, r.base, t - W, C, win[0]);
  }
}

// One block per run: each warp walks its sub-run, then the block's dw partial of the run goes
// to partial[run, c * W + j].
template <class T, class TW, int VEC, int WMAX, bool EXACT>
__global__ void __launch_bounds__(kConvThreads) conv_silu_backward_kernel(
    const T* __restrict__ x, const TW* __restrict__ w, const T* __restrict__ dy, T* __restrict__ dx,
    float* __restrict__ partial, int64_t L, int64_t C, int w_arg) {
  const int W = EXACT ? WMAX : w_arg;
  const ConvRun r(L, C, VEC);
  float dw[WMAX][VEC] = {};
  if (r.active && r.t0 < r.t1) conv_backward_walk(x, w, dy, dx, r, L, C, W, dw);
  __shared__ float red[kSubRuns - 1][WMAX * VEC][kConvLanes];  // sub-runs 1.. hand dw to sub-run 0
  // dw of the block's run: sub-run 0 adds the others' in order 1, 2, 3 (deterministic).
  const int s = threadIdx.x / kConvLanes, lane = threadIdx.x % kConvLanes;
  if (s > 0)
#pragma unroll
    for (int j = 0; j < WMAX; ++j)
#pragma unroll
      for (int i = 0; i < VEC; ++i) red[s - 1][j * VEC + i][lane] = dw[j][i];
  __syncthreads();
  if (s > 0 || !r.active) return;
  float* pr = partial + r.run * C * W;
#pragma unroll
  for (int i = 0; i < VEC; ++i)
#pragma unroll
    for (int j = 0; j < WMAX; ++j)
      if (j < W) {
        float sum = dw[j][i];
#pragma unroll
        for (int o = 0; o < kSubRuns - 1; ++o) sum += red[o][j * VEC + i][lane];
        pr[(r.c0 + i) * W + j] = sum;
      }
}

// Calls launch(VEC, WMAX, EXACT) as integral constants: 4 channels per thread when the rows
// allow 4-wide accesses and W <= 4 (W = 4 exactly as a constant); wider convolutions take one
// channel per thread, which keeps their register arrays out of local memory.
template <class F>
void with_shape(bool vec4, int W, F&& launch) {
  using std::integral_constant;
  if (W > 4) launch(integral_constant<int, 1>{}, integral_constant<int, kMaxConvWidth>{}, std::false_type{});
  else if (vec4 && W == 4) launch(integral_constant<int, 4>{}, integral_constant<int, 4>{}, std::true_type{});
  else if (vec4) launch(integral_constant<int, 4>{}, integral_constant<int, 4>{}, std::false_type{});
  else launch(integral_constant<int, 1>{}, integral_constant<int, 4>{}, std::false_type{});
}

dim3 conv_grid(int64_t B, int64_t L, int64_t C, int vec) {
  return dim3(unsigned(B * ((L + kConvRows - 1) / kConvRows)), unsigned(blocks_for(blocks_for(C, vec), kConvLanes)));
}

// dw[c*W + j] += sum over runs of partial[run, c*W + j], in a fixed order.
struct ConvDwPartial {
  const float* partial;
  int64_t n;
  __device__ float operator()(int64_t r, int64_t c) const { return partial[r * n + c]; }
};

// One decode step per (b, c): y = silu(w[c, W-1] x + sum_{j<W-1} w[c, j] cache[j]), then the
// thread shifts its own cache column (no other thread touches it).
template <class T, class TW, class TC>
__global__ void conv_step_kernel(const T* x, TC* cache, const TW* w, T* y, int64_t n, int64_t C, int W) {
  LT2_GRID_STRIDE(idx, n) {
    const int64_t b = idx / C, c = idx % C;
    TC* cb = cache + b * (W - 1) * C + c;
    const float xv = ld(x[idx]);
    float acc = ld(w[c * W + W - 1]) * xv;
    for (int j = 0; j < W - 1; ++j) acc += ld(w[c * W + j]) * ld(cb[j * C]);
    y[idx] = st<T>(silu_f(acc));
    if (W > 1) {
      for (int j = 0; j < W - 2; ++j) cb[j * C] = cb[(j + 1) * C];
      cb[(W - 2) * C] = st<TC>(xv);
    }
  }
}

}  // namespace

Tensor conv_silu(const Tensor& x, const Tensor& w) {
  check_conv(x, w, "conv_silu");
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2);
  const int W = int(w.dim(1));
  Tensor y = Tensor::empty_like(x);
  if (x.numel() == 0) return y;
  const bool vec4 = vec_aligned(4, C, dtype_size(x.dtype()), {x.bytes(), y.bytes()});
  dispatch_conv(x.dtype(), w.dtype(), [&](auto x_tag, auto w_tag) {
    using T = decltype(x_tag);
    using TW = decltype(w_tag);
    with_shape(vec4, W, [&](auto vec, auto wmax, auto exact) {
      conv_silu_kernel<T, TW, vec(), wmax(), exact()><<<conv_grid(B, L, C, vec()), kConvThreads, 0, stream()>>>(
          x.data<T>(), w.data<TW>(), y.data<T>(), L, C, W);
    });
  });
  check_launch("conv_silu");
  return y;
}

Tensor conv_silu_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dw) {
  check_conv(x, w, "conv_silu_backward");
  expect_cuda({&dy, &dw}, "conv_silu_backward");
  check_shape(dy, x.shape(), "conv_silu_backward dy");
  check_same_dtype(x, dy, "conv_silu_backward dy");
  check_shape(dw, w.shape(), "conv_silu_backward dw");
  expect_f32(dw, "conv_silu_backward", "dw");
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2);
  const int W = int(w.dim(1));
  Tensor dx = Tensor::empty_like(x);
  if (x.numel() == 0) return dx;
  const int64_t runs = B * ((L + kConvRows - 1) / kConvRows);
  Tensor partial = Tensor::empty({runs, C * W}, DType::F32, Device::CUDA);
  const bool vec4 = vec_aligned(4, C, dtype_size(x.dtype()), {x.bytes(), dy.bytes(), dx.bytes()});
  dispatch_conv(x.dtype(), w.dtype(), [&](auto x_tag, auto w_tag) {
    using T = decltype(x_tag);
    using TW = decltype(w_tag);
    with_shape(vec4, W, [&](auto vec, auto wmax, auto exact) {
      conv_silu_backward_kernel<T, TW, vec(), wmax(), exact()><<<conv_grid(B, L, C, vec()), kConvThreads, 0, stream()>>>(
          x.data<T>(), w.data<TW>(), dy.data<T>(), dx.data<T>(), partial.data<float>(), L, C, W);
    });
  });
  check_launch("conv_silu_backward");
  colsum_accumulate(ConvDwPartial{partial.data<float>(), C * W}, runs, C * W, dw, "conv_silu_backward dw");
  return dx;
}

Tensor conv_silu_step(const Tensor& x, Tensor& cache, const Tensor& w) {
  check_conv(x, w, "conv_silu_step");
  expect_cuda({&cache}, "conv_silu_step");
  const int64_t B = x.dim(0), C = x.dim(2), W = w.dim(1);
  LT2_CHECK(x.dim(1) == 1, "conv_silu_step: x must be [B, 1, C]");
  check_shape(cache, {B, W - 1, C}, "conv_silu_step cache");
  LT2_CHECK(cache.dtype() == DType::F32 || cache.dtype() == x.dtype(), "conv_silu_step: cache must be F32 or ",
            dtype_name(x.dtype()), ", got ", dtype_name(cache.dtype()));
  Tensor y = Tensor::empty_like(x);
  const int64_t n = B * C;
  if (n == 0) return y;
  dispatch_conv(x.dtype(), w.dtype(), [&](auto x_tag, auto w_tag) {
    using T = decltype(x_tag);
    using TW = decltype(w_tag);
    dispatch_float(cache.dtype(), [&](auto c_tag) {
      using TC = decltype(c_tag);
      conv_step_kernel<<<ew_grid(n), kEwThreads, 0, stream()>>>(x.data<T>(), cache.data<TC>(), w.data<TW>(),
                                                                 y.data<T>(), n, C, int(W));
    });
  });
  check_launch("conv_silu_step");
  return y;
}

}  // namespace lt2::cuda
