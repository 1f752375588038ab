// RMSNorm, per-head L2 norm, and GDN's gated RMSNorm. Row reductions accumulate in double.
#include "cpu/common.h"
#include "cpu/cpu_ops.h"

namespace lt2::cpu {

Tensor rmsnorm(const Tensor& x, const Tensor& w, double eps, Tensor* rstd) {
  check_cpu_real(x, "rmsnorm", "x");
  check_same_dtype(x, w, "rmsnorm");
  const int64_t n = x.dim(-1), rows = rows_of(x);
  check_shape(w, {n}, "rmsnorm weight");
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  Tensor rs = Tensor::empty({rows}, x.dtype());
  dispatch_real(x.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* xp = x.data<R>();
    const R* wp = w.data<R>();
    R* yp = y.data<R>();
    R* rp = rs.data<R>();
#pragma omp parallel for
    for (int64_t r = 0; r < rows; ++r) {
      const R* xr = xp + r * n;
      double ss = 0;
      for (int64_t c = 0; c < n; ++c) ss += double(xr[c]) * xr[c];
      R inv = R(1.0 / std::sqrt(ss / n + eps));
      rp[r] = inv;
      for (int64_t c = 0; c < n; ++c) yp[r * n + c] = xr[c] * inv * wp[c];
    }
  });
  if (rstd) *rstd = rs;
  return y;
}

Tensor rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, Tensor& dw,
                        const Tensor& dresidual) {
  const int64_t n = x.dim(-1), rows = rows_of(x);
  if (dresidual.defined()) {
    check_shape(dresidual, x.shape(), "rmsnorm_backward dresidual");
    check_same_dtype(x, dresidual, "rmsnorm_backward dresidual");
  }
  Tensor dx = Tensor::empty(x.shape(), x.dtype());
  dispatch_real(x.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* xp = x.data<R>();
    const R* wp = w.data<R>();
    const R* rp = rstd.data<R>();
    const R* g = dy.data<R>();
    const R* res = dresidual.defined() ? dresidual.data<R>() : nullptr;
    R* dxp = dx.data<R>();
    R* dwp = dw.data<R>();
    // dx = dresidual + r (gw - x r^2 mean(gw x)), gw = dy * w
#pragma omp parallel for
    for (int64_t r = 0; r < rows; ++r) {
      const R* xr = xp + r * n;
      const R* gr = g + r * n;
      double dot = 0;
      for (int64_t c = 0; c < n; ++c) dot += double(gr[c]) * wp[c] * xr[c];
      const R inv = rp[r], k = R(dot / n) * inv * inv;
      for (int64_t c = 0; c < n; ++c)
        dxp[r * n + c] = (res ? res[r * n + c] : R(0)) + inv * (gr[c] * wp[c] - xr[c] * k);
    }
    // dw[c] = sum_r dy x r  (columns split across threads: no races)
#pragma omp parallel for
    for (int64_t c = 0; c < n; ++c) {
      double acc = 0;
      for (int64_t r = 0; r < rows; ++r) acc += double(g[r * n + c]) * xp[r * n + c] * rp[r];
      dwp[c] += R(acc);
    }
  });
  return dx;
}

Tensor add_rmsnorm(const Tensor& a, const Tensor& b, const Tensor& w, double eps, Tensor& sum, Tensor* rstd) {
  check_shape(b, a.shape(), "add_rmsnorm b");
  check_same_dtype(a, b, "add_rmsnorm");
  sum = add(a, b);
  return rmsnorm(sum, w, eps, rstd);
}

Tensor l2norm(const Tensor& x, double scale) {
  check_cpu_real(x, "l2norm", "x");
  const int64_t n = x.dim(-1), rows = rows_of(x);
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_real(x.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* xp = x.data<R>();
    R* yp = y.data<R>();
#pragma omp parallel for
    for (int64_t r = 0; r < rows; ++r) {
      double ss = 0;
      for (int64_t c = 0; c < n; ++c) ss += double(xp[r * n + c]) * xp[r * n + c];
      R f = R(scale / std::sqrt(ss + 1e-6));
      for (int64_t c = 0; c < n; ++c) yp[r * n + c] = xp[r * n + c] * f;
    }
  });
  return y;
}

Tensor l2norm_backward(const Tensor& x, double scale, const Tensor& dy) {
  const int64_t n = x.dim(-1), rows = rows_of(x);
  Tensor dx = Tensor::empty(x.shape(), x.dtype());
  dispatch_real(x.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* xp = x.data<R>();
    const R* g = dy.data<R>();
    R* dxp = dx.data<R>();
    // y = s x / nrm  =>  dx = s (g / nrm - x (g.x) / nrm^3)
#pragma omp parallel for
    for (int64_t r = 0; r < rows; ++r) {
      double ss = 0, dot = 0;
      for (int64_t c = 0; c < n; ++c) {
        ss += double(xp[r * n + c]) * xp[r * n + c];
        dot += double(g[r * n + c]) * xp[r * n + c];
      }
      const double nrm = std::sqrt(ss + 1e-6);
      const R a = R(scale / nrm), b = R(scale * dot / (nrm * nrm * nrm));
      for (int64_t c = 0; c < n; ++c) dxp[r * n + c] = g[r * n + c] * a - xp[r * n + c] * b;
    }
  });
  return dx;
}

Tensor gated_rmsnorm(const Tensor& o, const Tensor& z, const Tensor& w, double eps) {
  check_cpu_real(o, "gated_rmsnorm", "o");
  const int64_t n = o.dim(-1), rows = rows_of(o);
  check_shape(z, o.shape(), "gated_rmsnorm gate");
  check_shape(w, {n}, "gated_rmsnorm weight");
  Tensor y = Tensor::empty(o.shape(), o.dtype());
  dispatch_real(o.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* op = o.data<R>();
    const R* zp = z.data<R>();
    const R* wp = w.data<R>();
    R* yp = y.data<R>();
#pragma omp parallel for
    for (int64_t r = 0; r < rows; ++r) {
      double ss = 0;
      for (int64_t c = 0; c < n; ++c) ss += double(op[r * n + c]) * op[r * n + c];
      R inv = R(1.0 / std::sqrt(ss / n + eps));
      for (int64_t c = 0; c < n; ++c) yp[r * n + c] = op[r * n + c] * inv * wp[c] * silu(zp[r * n + c]);
    }
  });
  return y;
}

void gated_rmsnorm_backward(const Tensor& o, const Tensor& z, const Tensor& w, double eps, const Tensor& dy,
                            Tensor& do_, Tensor& dz, Tensor& dw, Tensor* y, const ColBlock* dz_out) {
  const int64_t n = o.dim(-1), rows = rows_of(o);
  do_ = Tensor::empty(o.shape(), o.dtype());
  dz = Tensor::empty(z.shape(), z.dtype());
  if (y) *y = Tensor::empty(o.shape(), o.dtype());
  Tensor dw_rows = Tensor::empty({rows, n}, o.dtype());  // per-row dw, reduced below without races
  dispatch_real(o.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* op = o.data<R>();
    const R* zp = z.data<R>();
    const R* wp = w.data<R>();
    const R* g = dy.data<R>();
    R* dop = do_.data<R>();
    R* dzp = dz.data<R>();
    R* dwr = dw_rows.data<R>();
    R* yp = y ? y->data<R>() : nullptr;
#pragma omp parallel for
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = r * n;
      double ss = 0;
      for (int64_t c = 0; c < n; ++c) ss += double(op[b + c]) * op[b + c];
      const R inv = R(1.0 / std::sqrt(ss / n + eps));
      double dot = 0;  // sum(dnorm * o), dnorm = dy * w * silu(z)
      for (int64_t c = 0; c < n; ++c) {
        const R nrm = op[b + c] * inv, sz = silu(zp[b + c]);
        const R dn = g[b + c] * wp[c] * sz;
        dot += double(dn) * op[b + c];
        dwr[b + c] = g[b + c] * nrm * sz;
        dzp[b + c] = g[b + c] * nrm * wp[c] * silu_grad(zp[b + c]);
        if (yp) yp[b + c] = nrm * wp[c] * sz;  // as gated_rmsnorm computes it
      }
      const R k = R(dot / n) * inv * inv;
      for (int64_t c = 0; c < n; ++c) dop[b + c] = inv * (g[b + c] * wp[c] * silu(zp[b + c]) - op[b + c] * k);
    }
    R* dwp = dw.data<R>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < n; ++c) dwp[c] += dwr[r * n + c];
  });
  if (dz_out) {
    const int64_t width = col_block_width(*dz_out, dz.numel(), n, dz.dtype(), "gated_rmsnorm_backward dz");
    put_cols(dz.reshape({dz.numel() / width, width}), *dz_out, "gated_rmsnorm_backward dz");
    dz = Tensor();
  }
}

}  // namespace lt2::cpu
