// SwiGLU, the sigmoid output gate, and GDN's beta / decay gates.
#include "cpu/common.h"
#include "cpu/cpu_ops.h"

namespace lt2::cpu {

Tensor swiglu(const Tensor& g, const Tensor& u) {
  check_cpu_real(g, "swiglu", "gate");
  check_shape(u, g.shape(), "swiglu up");
  Tensor h = Tensor::empty(g.shape(), g.dtype());
  const int64_t n = g.numel();
  dispatch_real(g.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* gp = g.data<R>();
    const R* up = u.data<R>();
    R* hp = h.data<R>();
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) hp[i] = silu(gp[i]) * up[i];
  });
  return h;
}

void swiglu_backward(const Tensor& g, const Tensor& u, const Tensor& dh, Tensor& dg, Tensor& du, Tensor* h,
                     const ColBlock* dg_out, const ColBlock* du_out) {
  check_cpu_real(g, "swiglu_backward", "gate");
  check_shape(u, g.shape(), "swiglu up");
  check_shape(dh, g.shape(), "swiglu dh");
  dg = Tensor::empty(g.shape(), g.dtype());
  du = Tensor::empty(u.shape(), u.dtype());
  if (h) *h = Tensor::empty(g.shape(), g.dtype());
  const int64_t n = g.numel();
  dispatch_real(g.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* gp = g.data<R>();
    const R* up = u.data<R>();
    const R* d = dh.data<R>();
    R* dgp = dg.data<R>();
    R* dup = du.data<R>();
    R* hp = h ? h->data<R>() : nullptr;
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) {
      dgp[i] = d[i] * up[i] * silu_grad(gp[i]);
      dup[i] = d[i] * silu(gp[i]);
      if (hp) hp[i] = silu(gp[i]) * up[i];
    }
  });
  if (dg_out) put_cols(dg, *dg_out, "swiglu_backward dg"), dg = Tensor();
  if (du_out) put_cols(du, *du_out, "swiglu_backward du"), du = Tensor();
}

// Per channel when z has as many elements as a, per head when it has one per D-group.
static int64_t gate_group(const Tensor& a, const Tensor& z) {
  check_cpu_real(a, "sigmoid_gate", "a");
  check_same_dtype(a, z, "sigmoid_gate");
  LT2_CHECK(a.ndim() == 4, "sigmoid_gate: a must be [B, L, H, D], got ", shape_str(a.shape()));
  if (z.numel() == a.numel()) return 1;
  LT2_CHECK(z.numel() * a.dim(3) == a.numel(), "sigmoid_gate: gate ", shape_str(z.shape()),
            " is neither per channel nor per head for ", shape_str(a.shape()));
  return a.dim(3);
}

Tensor sigmoid_gate(const Tensor& a, const Tensor& z) {
  const int64_t grp = gate_group(a, z), n = a.numel();
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  dispatch_real(a.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* ap = a.data<R>();
    const R* zp = z.data<R>();
    R* yp = y.data<R>();
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) yp[i] = ap[i] * sigmoid(zp[i / grp]);
  });
  return y;
}

void sigmoid_gate_backward(const Tensor& a, const Tensor& z, const Tensor& dy, Tensor& da, Tensor& dz, Tensor* y,
                           const ColBlock* dz_out) {
  const int64_t grp = gate_group(a, z), nz = z.numel();
  check_shape(dy, a.shape(), "sigmoid_gate dy");
  da = Tensor::empty(a.shape(), a.dtype());
  dz = Tensor::empty(z.shape(), z.dtype());
  if (y) *y = Tensor::empty(a.shape(), a.dtype());
  dispatch_real(a.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* ap = a.data<R>();
    const R* zp = z.data<R>();
    const R* g = dy.data<R>();
    R* dap = da.data<R>();
    R* dzp = dz.data<R>();
    R* yp = y ? y->data<R>() : nullptr;
#pragma omp parallel for
    for (int64_t j = 0; j < nz; ++j) {
      const R s = sigmoid(zp[j]);
      R acc = 0;
      for (int64_t i = j * grp; i < (j + 1) * grp; ++i) {
        dap[i] = g[i] * s;
        acc += g[i] * ap[i];
        if (yp) yp[i] = ap[i] * s;
      }
      dzp[j] = acc * s * (R(1) - s);
    }
  });
  if (dz_out) put_cols(dz, *dz_out, "sigmoid_gate_backward dz"), dz = Tensor();
}

void gdn_gates(const Tensor& a, const Tensor& b, const Tensor& A_log, const Tensor& dt_bias, Tensor& beta, Tensor& g) {
  check_cpu_real(a, "gdn_gates", "a");
  check_shape(b, a.shape(), "gdn_gates b");
  const int64_t HV = a.dim(-1), rows = rows_of(a);
  check_shape(A_log, {HV}, "gdn_gates A_log");
  check_shape(dt_bias, {HV}, "gdn_gates dt_bias");
  beta = Tensor::empty(a.shape(), a.dtype());
  g = Tensor::empty(a.shape(), a.dtype());
  dispatch_real(a.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* ap = a.data<R>();
    const R* bp = b.data<R>();
    const R* al = A_log.data<R>();
    const R* dt = dt_bias.data<R>();
    R* betap = beta.data<R>();
    R* gp = g.data<R>();
#pragma omp parallel for
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t h = 0; h < HV; ++h) {
        const int64_t i = r * HV + h;
        betap[i] = sigmoid(bp[i]);
        gp[i] = -std::exp(al[h]) * softplus(ap[i] + dt[h]);
      }
  });
}

void gdn_gates_backward(const Tensor& a, const Tensor& b, const Tensor& A_log, const Tensor& dt_bias,
                        const Tensor& dbeta, const Tensor& dg, Tensor& da, Tensor& db, Tensor& dA_log,
                        Tensor& ddt_bias) {
  const int64_t HV = a.dim(-1), rows = rows_of(a);
  da = Tensor::empty(a.shape(), a.dtype());
  db = Tensor::empty(b.shape(), b.dtype());
  dispatch_real(a.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* ap = a.data<R>();
    const R* bp = b.data<R>();
    const R* al = A_log.data<R>();
    const R* dt = dt_bias.data<R>();
    const R* gb = dbeta.data<R>();
    const R* gg = dg.data<R>();
    R* dap = da.data<R>();
    R* dbp = db.data<R>();
    R* dal = dA_log.data<R>();
    R* ddt = ddt_bias.data<R>();
    for (int64_t h = 0; h < HV; ++h) {
      const R A = std::exp(al[h]);
      double acc_A = 0, acc_dt = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = r * HV + h;
        const R s = sigmoid(bp[i]);
        dbp[i] = gb[i] * s * (R(1) - s);
        const R x = ap[i] + dt[h];
        // g = -A softplus(x): dg/dx = -A sigmoid(x); dg/dA_log = g
        dap[i] = -gg[i] * A * sigmoid(x);
        acc_dt += dap[i];
        acc_A += double(gg[i]) * (-A * softplus(x));
      }
      dal[h] += R(acc_A);
      ddt[h] += R(acc_dt);
    }
  });
}

}  // namespace lt2::cpu
