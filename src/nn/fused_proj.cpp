#include "nn/param.h"

namespace lt2 {

void FusedProj::pack(DType dt) {
  if (packed() || parts.empty()) return;
  const Param& p0 = *parts.front();
  const int64_t N = p0.value.dim(0), K = p0.value.dim(1);
  for (const Param* p : parts)
    LT2_CHECK(p->value.shape() == Shape({N, K}) && p->value.dtype() == p0.value.dtype() &&
                  p->value.device() == p0.value.device(),
              "fused projection: ", p->name, " does not match ", p0.name);
  w = Tensor::empty({n() * N, K}, dt, p0.value.device());
  grad = Tensor::empty({n() * N, K}, p0.grad.dtype(), p0.grad.device());
  for (int64_t i = 0; i < n(); ++i) {
    Param& p = *parts[size_t(i)];
    grad.narrow(i * N, N).copy_from(p.grad);
    p.grad = grad.narrow(i * N, N);
    p.compute = w.narrow(i * N, N);
  }
}

void FusedProj::unpack() {
  if (!packed()) return;
  for (Param* p : parts) p->grad = p->grad.clone(), p->compute = Tensor();
  w = grad = Tensor();
}

}  // namespace lt2
