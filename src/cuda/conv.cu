// Causal depthwise convolution (width W, no bias) followed by SiLU, as in GDN's short conv,
// and its decode step. Every output element is independent: one thread per (row, channel),
// channels innermost so a warp reads 32 consecutive channels of a row. W is tiny (4), so
// each thread simply re-reads its W inputs.
// The weight may be F32 or the activations' dtype; its gradient is F32 and accumulated
// (+=) through op_util's deterministic column sum (partials per row chunk, fixed-order
// reduce, no atomics).
#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/op_util.cuh"

namespace lt2::cuda {

namespace {

// Bound on the conv width: the per-thread loops unroll to it (GDN uses W = 4).
constexpr int kMaxConvWidth = 16;

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

// Pre-activation of element idx = (b*L + t)*C + c:  sum_j w[c, j] x[b, t-(W-1)+j, c], zero before t = 0.
template <class T, class TW>
__device__ __forceinline__ float conv_pre(const T* x, const TW* w, int64_t idx, int64_t t, int64_t c, int64_t C,
                                          int W) {
  float acc = 0.f;
#pragma unroll
  for (int j = 0; j < kMaxConvWidth; ++j) {
    if (j >= W) break;
    const int64_t back = (W - 1) - j;  // how many rows before t
    if (t >= back) acc += ld(w[c * W + j]) * ld(x[idx - back * C]);
  }
  return acc;
}

template <class T, class TW>
__global__ void conv_silu_kernel(const T* x, const TW* w, T* y, int64_t n, int64_t L, int64_t C, int W) {
  LT2_GRID_STRIDE(idx, n) {
    const int64_t c = idx % C, t = (idx / C) % L;
    y[idx] = st<T>(silu_f(conv_pre(x, w, idx, t, c, C, W)));
  }
}

// dpre = dy * silu'(pre), kept in fp32 for the dx and dw passes.
template <class T, class TW>
__global__ void conv_dpre_kernel(const T* x, const TW* w, const T* dy, float* dpre, int64_t n, int64_t L,
                                 int64_t C, int W) {
  LT2_GRID_STRIDE(idx, n) {
    const int64_t c = idx % C, t = (idx / C) % L;
    dpre[idx] = ld(dy[idx]) * silu_grad_f(conv_pre(x, w, idx, t, c, C, W));
  }
}

// dx[b, s, c] = sum_j w[c, j] dpre[b, s + (W-1) - j, c] over the rows that exist (< L).
// Each element is gathered by one thread, so there are no write conflicts.
template <class T, class TW>
__global__ void conv_dx_kernel(const float* dpre, const TW* w, T* dx, int64_t n, int64_t L, int64_t C, int W) {
  LT2_GRID_STRIDE(idx, n) {
    const int64_t c = idx % C, s = (idx / C) % L;
    float acc = 0.f;
#pragma unroll
    for (int j = 0; j < kMaxConvWidth; ++j) {
      if (j >= W) break;
      const int64_t fwd = (W - 1) - j;  // the output row s + fwd read x[s] through tap j
      if (s + fwd < L) acc += ld(w[c * W + j]) * dpre[idx + fwd * C];
    }
    dx[idx] = st<T>(acc);
  }
}

// dw[c, j] = sum over rows r = (b, t) of dpre[r, c] x[b, t-(W-1)+j, c]. As a column sum over
// the flattened index cc = c*W + j, which is exactly dw's [C, W] layout.
template <class T>
struct ConvDw {
  const float* dpre;
  const T* x;
  int64_t L, C;
  int W;
  __device__ float operator()(int64_t r, int64_t cc) const {
    const int64_t c = cc / W, back = (W - 1) - cc % W, t = r % L;
    if (t < back) return 0.f;
    return dpre[r * C + c] * ld(x[(r - back) * C + c]);
  }
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
  const int64_t L = x.dim(1), C = x.dim(2), n = x.numel();
  const int W = int(w.dim(1));
  Tensor y = Tensor::empty_like(x);
  if (n == 0) return y;
  dispatch_conv(x.dtype(), w.dtype(), [&](auto x_tag, auto w_tag) {
    using T = decltype(x_tag);
    using TW = decltype(w_tag);
    conv_silu_kernel<<<ew_grid(n), kEwThreads, 0, stream()>>>(x.data<T>(), w.data<TW>(), y.data<T>(), n, L, C, W);
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
  const int64_t L = x.dim(1), C = x.dim(2), n = x.numel();
  const int W = int(w.dim(1));
  Tensor dx = Tensor::empty_like(x);
  if (n == 0) return dx;
  Tensor dpre = Tensor::empty(x.shape(), DType::F32, Device::CUDA);
  dispatch_conv(x.dtype(), w.dtype(), [&](auto x_tag, auto w_tag) {
    using T = decltype(x_tag);
    using TW = decltype(w_tag);
    conv_dpre_kernel<<<ew_grid(n), kEwThreads, 0, stream()>>>(x.data<T>(), w.data<TW>(), dy.data<T>(),
                                                               dpre.data<float>(), n, L, C, W);
    check_launch("conv_silu_backward dpre");
    conv_dx_kernel<<<ew_grid(n), kEwThreads, 0, stream()>>>(dpre.data<float>(), w.data<TW>(), dx.data<T>(), n, L,
                                                             C, W);
    check_launch("conv_silu_backward dx");
    colsum_accumulate(ConvDw<T>{dpre.data<float>(), x.data<T>(), L, C, W}, x.dim(0) * L, C * W, dw,
                      "conv_silu_backward dw");
  });
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
