// Small elementwise helpers for layers (residual adds, the loop's rho gate, norms of gradients).
#include "cpu/common.h"
#include "cpu/cpu_ops.h"

namespace lt2::cpu {

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = a.clone();
  y.add_(b);
  return y;
}

Tensor add_scaled_channels(const Tensor& a, const Tensor& rho, const Tensor& b) {
  check_shape(b, a.shape(), "add_scaled_channels b");
  const int64_t n = a.dim(-1), rows = rows_of(a);
  check_shape(rho, {n}, "add_scaled_channels rho");
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  dispatch_real(a.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* ap = a.data<R>();
    const R* bp = b.data<R>();
    const R* rp = rho.data<R>();
    R* yp = y.data<R>();
#pragma omp parallel for
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < n; ++c) yp[r * n + c] = ap[r * n + c] + rp[c] * bp[r * n + c];
  });
  return y;
}

void add_scaled_channels_backward_rho(const Tensor& dy, const Tensor& b, Tensor& drho) {
  const int64_t n = dy.dim(-1), rows = rows_of(dy);
  check_shape(drho, {n}, "add_scaled_channels drho");
  dispatch_real(dy.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* g = dy.data<R>();
    const R* bp = b.data<R>();
    R* dr = drho.data<R>();
#pragma omp parallel for
    for (int64_t c = 0; c < n; ++c) {
      double acc = 0;
      for (int64_t r = 0; r < rows; ++r) acc += double(g[r * n + c]) * bp[r * n + c];
      dr[c] += R(acc);
    }
  });
}

double sum_squares(const Tensor& x) {
  double s = 0;
  const int64_t n = x.numel();
  dispatch_real(x.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* p = x.data<R>();
#pragma omp parallel for reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += double(p[i]) * p[i];
  });
  return s;
}

void accumulate_sum_squares(const Tensor& x, Tensor& acc) {
  check_cpu_real(acc, "accumulate_sum_squares", "acc");
  acc.set(0, acc.item(0) + sum_squares(x));
}

}  // namespace lt2::cpu
