// One decode step of the Gated DeltaNet core on the CPU: the token-by-token recurrence of
// cpu/gdn.cpp run for a single token, reading the initial state from `state` and writing the
// final state back over it. Each (batch, value head) copies its slice into a private buffer
// before the step and writes it back after, so reading and writing the same memory is safe.
#include "cpu/common.h"
#include "cpu/cpu_ops.h"
#include "cpu/gdn.h"

namespace lt2::cpu {

Tensor gdn_step(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g, Tensor& state) {
  const char* names[] = {"q", "k", "v", "beta", "g", "state"};
  const Tensor* all[] = {&q, &k, &v, &beta, &g, &state};
  for (int i = 0; i < 6; ++i) check_cpu_real(*all[i], "gdn_step", names[i]);
  LT2_CHECK(q.ndim() == 4 && v.ndim() == 4 && q.dim(1) == 1, "gdn_step: q, k, v must be [B, 1, heads, dim], got q ",
            shape_str(q.shape()), " v ", shape_str(v.shape()));
  const GdnDims d{q.dim(0), 1, q.dim(2), v.dim(2), q.dim(3), v.dim(3)};
  check_shape(k, q.shape(), "gdn_step k");
  check_shape(v, {d.B, 1, d.HV, d.V}, "gdn_step v");
  LT2_CHECK(d.H > 0 && d.HV % d.H == 0, "gdn_step: value heads ", d.HV, " must be a multiple of key heads ", d.H);
  check_shape(beta, {d.B, 1, d.HV}, "gdn_step beta");
  check_shape(g, {d.B, 1, d.HV}, "gdn_step g");
  check_shape(state, {d.B, d.HV, d.K, d.V}, "gdn_step state");
  for (const Tensor* t : all) check_same_dtype(q, *t, "gdn_step");
  Tensor o = Tensor::empty({d.B, 1, d.HV, d.V}, q.dtype());
  dispatch_real(q.dtype(), [&](auto tag) {
    using R = decltype(tag);
    gdn_recurrent_forward<R>(d, q.data<R>(), k.data<R>(), v.data<R>(), beta.data<R>(), g.data<R>(), state.data<R>(),
                             o.data<R>(), state.data<R>());
  });
  return o;
}

}  // namespace lt2::cpu
