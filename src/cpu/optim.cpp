// AdamW with decoupled weight decay (Loshchilov & Hutter), bias-corrected moments.
#include <cmath>

#include "cpu/common.h"
#include "cpu/cpu_ops.h"

namespace lt2::cpu {

void adamw_step(Tensor& p, const Tensor& grad, Tensor& m, Tensor& v, const AdamWParams& hp) {
  check_cpu_real(p, "adamw", "param");
  check_shape(grad, p.shape(), "adamw grad");
  check_shape(m, p.shape(), "adamw m");
  check_shape(v, p.shape(), "adamw v");
  LT2_CHECK(hp.step >= 1, "adamw: step counts from 1");
  const double bc1 = 1.0 - std::pow(hp.beta1, double(hp.step));
  const double bc2 = 1.0 - std::pow(hp.beta2, double(hp.step));
  const int64_t n = p.numel();
  double clip = 1;
  if (hp.max_norm > 0 && hp.norm_sq) {
    const double norm = std::sqrt(hp.norm_sq->item(0));
    if (norm > hp.max_norm) clip = hp.max_norm / norm;
  }
  dispatch_real(p.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    R* pp = p.data<R>();
    const R* g = grad.data<R>();
    R* mp = m.data<R>();
    R* vp = v.data<R>();
    const R b1 = R(hp.beta1), b2 = R(hp.beta2), lr = R(hp.lr), wd = R(hp.weight_decay), eps = R(hp.eps);
    const R ibc1 = R(1 / bc1), ibc2 = R(1 / bc2), scale = R(clip);
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) {
      const R gi = clip == 1 ? g[i] : g[i] * scale;
      mp[i] = b1 * mp[i] + (R(1) - b1) * gi;
      vp[i] = b2 * vp[i] + (R(1) - b2) * gi * gi;
      const R upd = (mp[i] * ibc1) / (std::sqrt(vp[i] * ibc2) + eps);
      pp[i] -= lr * (upd + wd * pp[i]);
    }
  });
}

}  // namespace lt2::cpu
