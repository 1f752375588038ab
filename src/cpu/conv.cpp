// Causal depthwise convolution (width W, no bias) followed by SiLU, as in GDN's short conv.
#include <vector>

#include "cpu/common.h"
#include "ops/ops.h"

namespace lt2::ops {
using namespace lt2::cpu;

namespace {
// Pre-activation y[b, t, c] = sum_j w[c, j] x[b, t - (W-1) + j, c].
template <class R>
R conv_at(const R* x, const R* w, int64_t L, int64_t C, int64_t W, int64_t b, int64_t t, int64_t c) {
  R acc = 0;
  for (int64_t j = 0; j < W; ++j) {
    const int64_t ts = t - (W - 1) + j;
    if (ts >= 0) acc += w[c * W + j] * x[(b * L + ts) * C + c];
  }
  return acc;
}

void check_conv(const Tensor& x, const Tensor& w) {
  check_cpu_real(x, "conv_silu", "x");
  check_same_dtype(x, w, "conv_silu");
  LT2_CHECK(x.ndim() == 3, "conv_silu: x must be [B, L, C], got ", shape_str(x.shape()));
  LT2_CHECK(w.ndim() == 2 && w.dim(0) == x.dim(2), "conv_silu: weight ", shape_str(w.shape()), " does not match C = ",
            x.dim(2));
}
}  // namespace

Tensor conv_silu(const Tensor& x, const Tensor& w) {
  check_conv(x, w);
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2), W = w.dim(1);
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_real(x.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* xp = x.data<R>();
    const R* wp = w.data<R>();
    R* yp = y.data<R>();
#pragma omp parallel for collapse(2)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < L; ++t)
        for (int64_t c = 0; c < C; ++c) yp[(b * L + t) * C + c] = silu(conv_at(xp, wp, L, C, W, b, t, c));
  });
  return y;
}

Tensor conv_silu_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dw) {
  check_conv(x, w);
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2), W = w.dim(1);
  Tensor dx = Tensor::zeros(x.shape(), x.dtype());
  dispatch_real(x.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* xp = x.data<R>();
    const R* wp = w.data<R>();
    const R* g = dy.data<R>();
    R* dxp = dx.data<R>();
    R* dwp = dw.data<R>();
    // A thread owns a channel: its dx column and its dw row are written by nobody else.
#pragma omp parallel
    {
      std::vector<R> dpre(L);
#pragma omp for
      for (int64_t c = 0; c < C; ++c)
        for (int64_t b = 0; b < B; ++b) {
          for (int64_t t = 0; t < L; ++t)
            dpre[t] = g[(b * L + t) * C + c] * silu_grad(conv_at(xp, wp, L, C, W, b, t, c));
          for (int64_t t = 0; t < L; ++t)
            for (int64_t j = 0; j < W; ++j) {
              const int64_t ts = t - (W - 1) + j;
              if (ts < 0) continue;
              dxp[(b * L + ts) * C + c] += wp[c * W + j] * dpre[t];
              dwp[c * W + j] += dpre[t] * xp[(b * L + ts) * C + c];
            }
        }
    }
  });
  return dx;
}

}  // namespace lt2::ops
