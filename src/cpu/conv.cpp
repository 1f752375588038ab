// Causal depthwise convolution (width W, no bias) followed by SiLU, as in GDN's short conv.
// Loops run over channels innermost (contiguous in [B, L, C]) so they vectorise.
#include <cstring>
#include <vector>

#include "cpu/common.h"
#include "cpu/cpu_ops.h"

namespace lt2::cpu {

namespace {
void check_conv(const Tensor& x, const Tensor& w) {
  check_cpu_real(x, "conv_silu", "x");
  check_same_dtype(x, w, "conv_silu");
  LT2_CHECK(x.ndim() == 3, "conv_silu: x must be [B, L, C], got ", shape_str(x.shape()));
  LT2_CHECK(w.ndim() == 2 && w.dim(0) == x.dim(2), "conv_silu: weight ", shape_str(w.shape()), " does not match C = ",
            x.dim(2));
}

// Pre-activation row t of batch b: pre[c] = sum_j w[c, j] x[b, t - (W-1) + j, c] (zero before t = 0).
// wt is the weight transposed to [W, C].
template <class R>
void conv_row(const R* x, const R* wt, int64_t L, int64_t C, int64_t W, int64_t b, int64_t t, R* pre) {
  for (int64_t c = 0; c < C; ++c) pre[c] = 0;
  for (int64_t j = 0; j < W; ++j) {
    const int64_t ts = t - (W - 1) + j;
    if (ts < 0) continue;
    const R* xr = x + (b * L + ts) * C;
    const R* wr = wt + j * C;
    for (int64_t c = 0; c < C; ++c) pre[c] += wr[c] * xr[c];
  }
}

template <class R>
std::vector<R> transpose_weight(const R* w, int64_t C, int64_t W) {
  std::vector<R> wt(W * C);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t j = 0; j < W; ++j) wt[j * C + c] = w[c * W + j];
  return wt;
}
}  // namespace

Tensor conv_silu(const Tensor& x, const Tensor& w) {
  check_conv(x, w);
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2), W = w.dim(1);
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_real(x.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R* xp = x.data<R>();
    const std::vector<R> wt = transpose_weight(w.data<R>(), C, W);
    R* yp = y.data<R>();
#pragma omp parallel for collapse(2)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < L; ++t) {
        R* yr = yp + (b * L + t) * C;
        conv_row(xp, wt.data(), L, C, W, b, t, yr);
        for (int64_t c = 0; c < C; ++c) yr[c] = silu(yr[c]);
      }
  });
  return y;
}

Tensor conv_silu_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dw, const ColBlock* dx_out) {
  check_conv(x, w);
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2), W = w.dim(1);
  Tensor dx = Tensor::zeros(x.shape(), x.dtype());
  dispatch_real(x.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R* xp = x.data<R>();
    const std::vector<R> wt = transpose_weight(w.data<R>(), C, W);
    const R* g = dy.data<R>();
    R* dxp = dx.data<R>();
    // dpre = dy * silu'(pre); dx[t - (W-1) + j] += w[:, j] dpre[t]; dw[:, j] += dpre[t] x[t - (W-1) + j].
    // A thread owns a batch row (its dx rows are its own); dw is reduced per thread afterwards.
    std::vector<std::vector<R>> dw_thread;
#pragma omp parallel
    {
#pragma omp single
      dw_thread.assign(omp_threads(), std::vector<R>(W * C, R(0)));
      std::vector<R>& dwt = dw_thread[omp_thread()];
      std::vector<R> pre(C);
#pragma omp for
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < L; ++t) {
          conv_row(xp, wt.data(), L, C, W, b, t, pre.data());
          const R* gr = g + (b * L + t) * C;
          for (int64_t c = 0; c < C; ++c) pre[c] = gr[c] * silu_grad(pre[c]);
          for (int64_t j = 0; j < W; ++j) {
            const int64_t ts = t - (W - 1) + j;
            if (ts < 0) continue;
            R* dxr = dxp + (b * L + ts) * C;
            const R* xr = xp + (b * L + ts) * C;
            const R* wr = wt.data() + j * C;
            R* dwr = dwt.data() + j * C;
            for (int64_t c = 0; c < C; ++c) {
              dxr[c] += wr[c] * pre[c];
              dwr[c] += pre[c] * xr[c];
            }
          }
        }
    }
    R* dwp = dw.data<R>();
    for (const auto& dwt : dw_thread)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t j = 0; j < W; ++j) dwp[c * W + j] += dwt[j * C + c];
  });
  if (!dx_out) return dx;
  put_cols(dx, *dx_out, "conv_silu_backward dx");
  return Tensor();
}

// The reference composes the two ops (the conv output as an intermediate tensor).
Tensor conv_silu_l2norm(const Tensor& x, const Tensor& w, int64_t head, double scale) {
  const Shape heads = conv_head_shape(x, head, "conv_silu_l2norm");
  return l2norm(conv_silu(x, w).reshape(heads), scale).reshape(x.shape());
}

Tensor conv_silu_l2norm_backward(const Tensor& x, const Tensor& w, int64_t head, double scale, const Tensor& dy,
                                 Tensor& dw, const ColBlock* dx_out) {
  const Shape heads = conv_head_shape(x, head, "conv_silu_l2norm_backward");
  check_shape(dy, x.shape(), "conv_silu_l2norm_backward dy");
  const Tensor y = conv_silu(x, w).reshape(heads);
  return conv_silu_backward(x, w, l2norm_backward(y, scale, dy.reshape(heads)).reshape(x.shape()), dw, dx_out);
}

Tensor conv_silu_step(const Tensor& x, Tensor& cache, const Tensor& w) {
  check_conv(x, w);
  const int64_t B = x.dim(0), C = x.dim(2), W = w.dim(1);
  LT2_CHECK(x.dim(1) == 1, "conv_silu_step: x must be [B, 1, C]");
  check_shape(cache, {B, W - 1, C}, "conv_silu_step cache");
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_real(x.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R* xp = x.data<R>();
    const R* wp = w.data<R>();
    R* cp = cache.data<R>();
    R* yp = y.data<R>();
    for (int64_t b = 0; b < B; ++b) {
      R* cb = cp + b * (W - 1) * C;
      for (int64_t c = 0; c < C; ++c) {
        R acc = wp[c * W + W - 1] * xp[b * C + c];
        for (int64_t j = 0; j < W - 1; ++j) acc += wp[c * W + j] * cb[j * C + c];
        yp[b * C + c] = silu(acc);
      }
      if (W > 1) {  // shift: drop the oldest row, append x
        std::memmove(cb, cb + C, size_t((W - 2) * C) * sizeof(R));
        std::memcpy(cb + (W - 2) * C, xp + b * C, size_t(C) * sizeof(R));
      }
    }
  });
  return y;
}

}  // namespace lt2::cpu
