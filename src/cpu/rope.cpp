// Split-half RoPE ("rotate_half", NeoX / Hugging Face layout): channel i pairs with i + D/2.
#include <vector>

#include "cpu/common.h"
#include "cpu/cpu_ops.h"

namespace lt2::cpu {

// sign = +1 rotates forward, -1 rotates back (the backward is the inverse rotation).
static Tensor rotate(const Tensor& x, double theta, int64_t pos0, double sign) {
  check_cpu_real(x, "rope", "x");
  LT2_CHECK(x.ndim() == 4 && x.dim(3) % 2 == 0, "rope: x must be [B, L, H, D] with even D, got ",
            shape_str(x.shape()));
  const int64_t B = x.dim(0), L = x.dim(1), H = x.dim(2), D = x.dim(3), half = D / 2;
  std::vector<double> cs(L * half), sn(L * half);
  for (int64_t t = 0; t < L; ++t)
    for (int64_t i = 0; i < half; ++i) {
      double ang = double(pos0 + t) * std::pow(theta, -2.0 * i / D);
      cs[t * half + i] = std::cos(ang);
      sn[t * half + i] = sign * std::sin(ang);
    }
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_real(x.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* xp = x.data<R>();
    R* yp = y.data<R>();
#pragma omp parallel for collapse(2)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < L; ++t)
        for (int64_t h = 0; h < H; ++h) {
          const int64_t o = ((b * L + t) * H + h) * D;
          for (int64_t i = 0; i < half; ++i) {
            const R c = R(cs[t * half + i]), s = R(sn[t * half + i]);
            const R x1 = xp[o + i], x2 = xp[o + i + half];
            yp[o + i] = x1 * c - x2 * s;
            yp[o + i + half] = x2 * c + x1 * s;
          }
        }
  });
  return y;
}

// With out: the rotation is computed whole first, so out may share x's storage.
static Tensor rotate_to(const Tensor& x, double theta, int64_t pos0, double sign, const ColBlock* out,
                        const char* op) {
  Tensor y = rotate(x, theta, pos0, sign);
  if (!out) return y;
  put_cols(y.reshape({y.dim(0) * y.dim(1), y.dim(2) * y.dim(3)}), *out, op);
  return Tensor();
}

Tensor rope(const Tensor& x, double theta, int64_t pos0, const ColBlock* out) {
  return rotate_to(x, theta, pos0, 1.0, out, "rope");
}
Tensor rope_backward(const Tensor& dy, double theta, int64_t pos0, const ColBlock* out) {
  return rotate_to(dy, theta, pos0, -1.0, out, "rope_backward");
}

}  // namespace lt2::cpu
