// RMSNorm, per-head L2 norm and GDN's gated RMSNorm on the GPU: one block per row, the
// row's statistics reduced in fp32 with block_sum; weight gradients by colsum_accumulate.
#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/op_util.cuh"

namespace lt2::cuda {

namespace {

// sum over the row of f(c), by the whole block.
template <class F>
__device__ __forceinline__ float row_sum(int64_t n, F f) {
  float acc = 0.f;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) acc += f(c);
  return block_sum(acc);
}

// ---- RMSNorm ---------------------------------------------------------------------------
// y = x * inv * w, inv = 1 / sqrt(mean(x^2) + eps); rstd (F32 [rows]) may be null.
template <class T, class P>
__global__ void rmsnorm_kernel(const T* x, const P* w, T* y, float* rstd, int64_t n, float eps) {
  const int64_t base = blockIdx.x * n;
  const T* xr = x + base;
  const float ss = row_sum(n, [&](int64_t c) { const float v = ld(xr[c]); return v * v; });
  const float inv = 1.f / sqrtf(ss / float(n) + eps);
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) y[base + c] = st<T>(ld(xr[c]) * inv * ld(w[c]));
  if (rstd && threadIdx.x == 0) rstd[blockIdx.x] = inv;
}

// dx = inv (dy w - x k), k = inv^2 mean(dy w x)
template <class T, class P>
__global__ void rmsnorm_backward_kernel(const T* x, const P* w, const float* rstd, const T* dy, T* dx, int64_t n) {
  const int64_t base = blockIdx.x * n;
  const T* xr = x + base;
  const T* gr = dy + base;
  const float dot = row_sum(n, [&](int64_t c) { return ld(gr[c]) * ld(w[c]) * ld(xr[c]); });
  const float inv = rstd[blockIdx.x], k = dot / float(n) * inv * inv;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x)
    dx[base + c] = st<T>(inv * (ld(gr[c]) * ld(w[c]) - ld(xr[c]) * k));
}

// dw[c] += sum_r dy x rstd
template <class T>
struct RmsnormDw {
  const T* dy;
  const T* x;
  const float* rstd;
  int64_t n;
  __device__ float operator()(int64_t r, int64_t c) const { return ld(dy[r * n + c]) * ld(x[r * n + c]) * rstd[r]; }
};

// ---- L2 norm ----------------------------------------------------------------------------
constexpr float kL2Eps = 1e-6f;

template <class T>
__global__ void l2norm_kernel(const T* x, T* y, int64_t n, float scale) {
  const int64_t base = blockIdx.x * n;
  const T* xr = x + base;
  const float ss = row_sum(n, [&](int64_t c) { const float v = ld(xr[c]); return v * v; });
  const float f = scale / sqrtf(ss + kL2Eps);
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) y[base + c] = st<T>(ld(xr[c]) * f);
}

// y = s x / nrm  =>  dx = s (g / nrm - x (g.x) / nrm^3)
template <class T>
__global__ void l2norm_backward_kernel(const T* x, const T* dy, T* dx, int64_t n, float scale) {
  const int64_t base = blockIdx.x * n;
  const T* xr = x + base;
  const T* gr = dy + base;
  const float ss = row_sum(n, [&](int64_t c) { const float v = ld(xr[c]); return v * v; });
  const float dot = row_sum(n, [&](int64_t c) { return ld(gr[c]) * ld(xr[c]); });
  const float nrm = sqrtf(ss + kL2Eps);
  const float a = scale / nrm, b = scale * dot / (nrm * nrm * nrm);
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) dx[base + c] = st<T>(ld(gr[c]) * a - ld(xr[c]) * b);
}

// ---- gated RMSNorm ------------------------------------------------------------------------
// y = o * inv * w * silu(z)
template <class T, class P>
__global__ void gated_rmsnorm_kernel(const T* o, const T* z, const P* w, T* y, int64_t n, float eps) {
  const int64_t base = blockIdx.x * n;
  const T* orow = o + base;
  const float ss = row_sum(n, [&](int64_t c) { const float v = ld(orow[c]); return v * v; });
  const float inv = 1.f / sqrtf(ss / float(n) + eps);
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x)
    y[base + c] = st<T>(ld(orow[c]) * inv * ld(w[c]) * silu_f(ld(z[base + c])));
}

// With dn = dy w silu(z): do = inv (dn - o k), k = inv^2 mean(dn o); dz = dy o inv w silu'(z).
// The row's inv goes to inv_out for the dw reduction.
template <class T, class P>
__global__ void gated_rmsnorm_backward_kernel(const T* o, const T* z, const P* w, const T* dy, T* do_, T* dz,
                                              float* inv_out, int64_t n, float eps) {
  const int64_t base = blockIdx.x * n;
  const T* orow = o + base;
  const T* zr = z + base;
  const T* gr = dy + base;
  const float ss = row_sum(n, [&](int64_t c) { const float v = ld(orow[c]); return v * v; });
  const float inv = 1.f / sqrtf(ss / float(n) + eps);
  const float dot = row_sum(n, [&](int64_t c) { return ld(gr[c]) * ld(w[c]) * silu_f(ld(zr[c])) * ld(orow[c]); });
  const float k = dot / float(n) * inv * inv;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    const float g = ld(gr[c]), ov = ld(orow[c]), zv = ld(zr[c]), wv = ld(w[c]);
    do_[base + c] = st<T>(inv * (g * wv * silu_f(zv) - ov * k));
    dz[base + c] = st<T>(g * ov * inv * wv * silu_grad_f(zv));
  }
  if (threadIdx.x == 0) inv_out[blockIdx.x] = inv;
}

// dw[c] += sum_r dy o inv silu(z)
template <class T>
struct GatedRmsnormDw {
  const T* dy;
  const T* o;
  const T* z;
  const float* inv;
  int64_t n;
  __device__ float operator()(int64_t r, int64_t c) const {
    const int64_t i = r * n + c;
    return ld(dy[i]) * ld(o[i]) * inv[r] * silu_f(ld(z[i]));
  }
};

}  // namespace

Tensor rmsnorm(const Tensor& x, const Tensor& w, double eps, Tensor* rstd) {
  expect_cuda({&x, &w}, "rmsnorm");
  const int64_t n = x.dim(-1), rows = rows_of(x);
  check_shape(w, {n}, "rmsnorm weight");
  Tensor y = Tensor::empty_like(x);
  Tensor rs = rstd ? Tensor::empty({rows}, DType::F32, Device::CUDA) : Tensor();
  if (rows > 0 && n > 0) {
    dispatch_float(x.dtype(), [&](auto t) {
      dispatch_float(w.dtype(), [&](auto p) {
        using T = decltype(t);
        using P = decltype(p);
        rmsnorm_kernel<<<unsigned(rows), row_threads(n), 0, stream()>>>(
            x.data<T>(), w.data<P>(), y.data<T>(), rstd ? rs.data<float>() : nullptr, n, float(eps));
      });
    });
    check_launch("rmsnorm");
  }
  if (rstd) *rstd = rs;
  return y;
}

Tensor rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, Tensor& dw) {
  expect_cuda({&x, &w, &rstd, &dy, &dw}, "rmsnorm_backward");
  const int64_t n = x.dim(-1), rows = rows_of(x);
  check_shape(w, {n}, "rmsnorm weight");
  check_shape(rstd, {rows}, "rmsnorm rstd");
  check_shape(dy, x.shape(), "rmsnorm dy");
  check_shape(dw, {n}, "rmsnorm dw");
  check_same_dtype(x, dy, "rmsnorm_backward");
  expect_f32(rstd, "rmsnorm_backward", "rstd");
  expect_f32(dw, "rmsnorm_backward", "dw");
  Tensor dx = Tensor::empty_like(x);
  if (rows == 0 || n == 0) return dx;
  dispatch_float(x.dtype(), [&](auto t) {
    dispatch_float(w.dtype(), [&](auto p) {
      using T = decltype(t);
      using P = decltype(p);
      rmsnorm_backward_kernel<<<unsigned(rows), row_threads(n), 0, stream()>>>(
          x.data<T>(), w.data<P>(), rstd.data<float>(), dy.data<T>(), dx.data<T>(), n);
    });
    check_launch("rmsnorm_backward");
    using T = decltype(t);
    colsum_accumulate(RmsnormDw<T>{dy.data<T>(), x.data<T>(), rstd.data<float>(), n}, rows, n, dw,
                      "rmsnorm_backward");
  });
  return dx;
}

Tensor l2norm(const Tensor& x, double scale) {
  expect_cuda({&x}, "l2norm");
  const int64_t n = x.dim(-1), rows = rows_of(x);
  Tensor y = Tensor::empty_like(x);
  if (rows == 0 || n == 0) return y;
  dispatch_float(x.dtype(), [&](auto t) {
    using T = decltype(t);
    l2norm_kernel<<<unsigned(rows), row_threads(n), 0, stream()>>>(x.data<T>(), y.data<T>(), n, float(scale));
  });
  check_launch("l2norm");
  return y;
}

Tensor l2norm_backward(const Tensor& x, double scale, const Tensor& dy) {
  expect_cuda({&x, &dy}, "l2norm_backward");
  check_shape(dy, x.shape(), "l2norm dy");
  check_same_dtype(x, dy, "l2norm_backward");
  const int64_t n = x.dim(-1), rows = rows_of(x);
  Tensor dx = Tensor::empty_like(x);
  if (rows == 0 || n == 0) return dx;
  dispatch_float(x.dtype(), [&](auto t) {
    using T = decltype(t);
    l2norm_backward_kernel<<<unsigned(rows), row_threads(n), 0, stream()>>>(x.data<T>(), dy.data<T>(),
                                                                           dx.data<T>(), n, float(scale));
  });
  check_launch("l2norm_backward");
  return dx;
}

Tensor gated_rmsnorm(const Tensor& o, const Tensor& z, const Tensor& w, double eps) {
  expect_cuda({&o, &z, &w}, "gated_rmsnorm");
  const int64_t n = o.dim(-1), rows = rows_of(o);
  check_shape(z, o.shape(), "gated_rmsnorm gate");
  check_shape(w, {n}, "gated_rmsnorm weight");
  check_same_dtype(o, z, "gated_rmsnorm");
  Tensor y = Tensor::empty_like(o);
  if (rows == 0 || n == 0) return y;
  dispatch_float(o.dtype(), [&](auto t) {
    dispatch_float(w.dtype(), [&](auto p) {
      using T = decltype(t);
      using P = decltype(p);
      gated_rmsnorm_kernel<<<unsigned(rows), row_threads(n), 0, stream()>>>(o.data<T>(), z.data<T>(), w.data<P>(),
                                                                           y.data<T>(), n, float(eps));
    });
  });
  check_launch("gated_rmsnorm");
  return y;
}

void gated_rmsnorm_backward(const Tensor& o, const Tensor& z, const Tensor& w, double eps, const Tensor& dy,
                            Tensor& do_, Tensor& dz, Tensor& dw) {
  expect_cuda({&o, &z, &w, &dy, &dw}, "gated_rmsnorm_backward");
  const int64_t n = o.dim(-1), rows = rows_of(o);
  check_shape(z, o.shape(), "gated_rmsnorm gate");
  check_shape(dy, o.shape(), "gated_rmsnorm dy");
  check_shape(w, {n}, "gated_rmsnorm weight");
  check_shape(dw, {n}, "gated_rmsnorm dw");
  check_same_dtype(o, z, "gated_rmsnorm_backward");
  check_same_dtype(o, dy, "gated_rmsnorm_backward");
  expect_f32(dw, "gated_rmsnorm_backward", "dw");
  do_ = Tensor::empty_like(o);
  dz = Tensor::empty_like(z);
  if (rows == 0 || n == 0) return;
  Tensor inv = Tensor::empty({rows}, DType::F32, Device::CUDA);  // per-row 1/rms for the dw pass
  dispatch_float(o.dtype(), [&](auto t) {
    dispatch_float(w.dtype(), [&](auto p) {
      using T = decltype(t);
      using P = decltype(p);
      gated_rmsnorm_backward_kernel<<<unsigned(rows), row_threads(n), 0, stream()>>>(
          o.data<T>(), z.data<T>(), w.data<P>(), dy.data<T>(), do_.data<T>(), dz.data<T>(), inv.data<float>(), n,
          float(eps));
    });
    check_launch("gated_rmsnorm_backward");
    using T = decltype(t);
    colsum_accumulate(GatedRmsnormDw<T>{dy.data<T>(), o.data<T>(), z.data<T>(), inv.data<float>(), n}, rows, n, dw,
                      "gated_rmsnorm_backward");
  });
}

}  // namespace lt2::cuda
