// Tensor-level entry points of the GDN core: shape checks, then the kernels of cpu/gdn.h.
#include "cpu/common.h"
#include "cpu/gdn.h"
#include "cpu/cpu_ops.h"

namespace lt2::cpu {

namespace {
GdnDims gdn_dims(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
                 const Tensor& h0) {
  check_cpu_real(q, "gdn", "q");
  LT2_CHECK(q.ndim() == 4 && v.ndim() == 4, "gdn: q, k, v must be [B, L, heads, dim]");
  GdnDims d{q.dim(0), q.dim(1), q.dim(2), v.dim(2), q.dim(3), v.dim(3)};
  check_shape(k, q.shape(), "gdn k");
  LT2_CHECK(v.dim(0) == d.B && v.dim(1) == d.L, "gdn: v ", shape_str(v.shape()), " does not match q ",
            shape_str(q.shape()));
  LT2_CHECK(d.H > 0 && d.HV % d.H == 0, "gdn: value heads ", d.HV, " must be a multiple of key heads ", d.H);
  check_shape(beta, {d.B, d.L, d.HV}, "gdn beta");
  check_shape(g, {d.B, d.L, d.HV}, "gdn g");
  if (h0.defined()) check_shape(h0, {d.B, d.HV, d.K, d.V}, "gdn initial state");
  return d;
}
}  // namespace

Tensor gdn(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g, const Tensor& h0,
           Tensor* hT, bool chunked, Tensor* states) {
  const GdnDims d = gdn_dims(q, k, v, beta, g, h0);
  if (states) *states = Tensor();  // the CPU's backward recomputes what it needs
  Tensor o = Tensor::empty({d.B, d.L, d.HV, d.V}, q.dtype());
  Tensor h = hT ? Tensor::empty({d.B, d.HV, d.K, d.V}, q.dtype()) : Tensor();
  dispatch_real(q.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* h0p = h0.defined() ? h0.data<R>() : nullptr;
    R* hTp = hT ? h.data<R>() : nullptr;
    if (chunked)
      gdn_chunk_forward<R>(d, q.data<R>(), k.data<R>(), v.data<R>(), beta.data<R>(), g.data<R>(), h0p, o.data<R>(), hTp);
    else
      gdn_recurrent_forward<R>(d, q.data<R>(), k.data<R>(), v.data<R>(), beta.data<R>(), g.data<R>(), h0p,
                               o.data<R>(), hTp);
  });
  if (hT) *hT = h;
  return o;
}

GdnGrads gdn_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
                      const Tensor& h0, const Tensor& dout, const Tensor& dhT, bool chunked, const Tensor&) {
  const GdnDims d = gdn_dims(q, k, v, beta, g, h0);
  check_shape(dout, {d.B, d.L, d.HV, d.V}, "gdn dout");
  if (dhT.defined()) check_shape(dhT, {d.B, d.HV, d.K, d.V}, "gdn dhT");
  GdnGrads gr{Tensor::empty(q.shape(), q.dtype()), Tensor::empty(k.shape(), q.dtype()),
              Tensor::empty(v.shape(), q.dtype()),  Tensor::empty(beta.shape(), q.dtype()),
              Tensor::empty(g.shape(), q.dtype()),  h0.defined() ? Tensor::empty(h0.shape(), q.dtype()) : Tensor()};
  dispatch_real(q.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* h0p = h0.defined() ? h0.data<R>() : nullptr;
    const R* dhTp = dhT.defined() ? dhT.data<R>() : nullptr;
    R* dh0p = h0.defined() ? gr.dh0.data<R>() : nullptr;
    if (chunked)
      gdn_chunk_backward<R>(d, q.data<R>(), k.data<R>(), v.data<R>(), beta.data<R>(), g.data<R>(), h0p,
                            dout.data<R>(), dhTp, gr.dq.data<R>(), gr.dk.data<R>(), gr.dv.data<R>(),
                            gr.dbeta.data<R>(), gr.dg.data<R>(), dh0p);
    else
      gdn_recurrent_backward<R>(d, q.data<R>(), k.data<R>(), v.data<R>(), beta.data<R>(), g.data<R>(), h0p,
                                dout.data<R>(), dhTp, gr.dq.data<R>(), gr.dk.data<R>(), gr.dv.data<R>(),
                                gr.dbeta.data<R>(), gr.dg.data<R>(), dh0p);
  });
  return gr;
}

}  // namespace lt2::cpu
