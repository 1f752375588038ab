#pragma once
// Gated DeltaNet test inputs shared by the CPU and GPU tests: the case shape and inputs drawn as
// the layer feeds them (q, k L2-normalised, q scaled by 1/sqrt(K); beta in (0, 1);
// g = -softplus(.) in [-5, 0], or strong / exactly-zero decay).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "gradcheck.h"

namespace lt2::test {

enum class Decay { Normal, Strong, ZeroSteps };

struct GdnCase {
  int64_t B, L, H, HV, K, V;
  Decay decay;
  bool with_h0, with_dhT;
};

// Token t of x [B, L, ...] (a CPU tensor) as [B, 1, ...]: one decode step's input.
inline Tensor token(const Tensor& x, int64_t t) {
  Shape s = x.shape();
  const int64_t B = s[0], L = s[1], inner = x.numel() / (B * L);
  s[1] = 1;
  Tensor y = Tensor::empty(s, x.dtype());
  const size_t es = dtype_size(x.dtype());
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(y.bytes() + b * inner * es, x.bytes() + (b * L + t) * inner * es, inner * es);
  return y;
}

// Rows of the last dim scaled to L2 norm `scale` (F64, in place).
inline void l2_normalise_rows(Tensor& x, double scale) {
  const int64_t n = x.dim(-1), rows = x.numel() / n;
  double* p = x.data<double>();
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += p[r * n + i] * p[r * n + i];
    const double f = scale / std::sqrt(ss + 1e-6);
    for (int64_t i = 0; i < n; ++i) p[r * n + i] *= f;
  }
}

struct GdnInputs {
  Tensor q, k, v, beta, g, h0, dout, dhT;  // F64 on the CPU; h0 / dhT undefined unless asked for
};

inline GdnInputs make_gdn_inputs(const GdnCase& c, uint64_t seed) {
  GdnInputs in;
  in.q = randn({c.B, c.L, c.H, c.K}, seed);
  in.k = randn({c.B, c.L, c.H, c.K}, seed + 1);
  l2_normalise_rows(in.q, 1.0 / std::sqrt(double(c.K)));
  l2_normalise_rows(in.k, 1.0);
  in.v = randn({c.B, c.L, c.HV, c.V}, seed + 2);
  in.beta = uniform({c.B, c.L, c.HV}, seed + 3, 0.02, 0.98);
  in.g = randn({c.B, c.L, c.HV}, seed + 4, 1.5);
  for (int64_t i = 0; i < in.g.numel(); ++i) {
    const double x = in.g.item(i);
    double gi = -std::min(5.0, x > 20 ? x : std::log1p(std::exp(x)));  // -softplus, the model's range
    if (c.decay == Decay::Strong) gi = -3.0 - 2.0 * std::abs(std::tanh(x));  // alpha <= e^-3
    if (c.decay == Decay::ZeroSteps && i % 3 == 0) gi = 0.0;                 // alpha = 1 exactly
    in.g.set(i, gi);
  }
  if (c.with_h0) in.h0 = randn({c.B, c.HV, c.K, c.V}, seed + 5, 0.5);
  in.dout = randn({c.B, c.L, c.HV, c.V}, seed + 6);
  if (c.with_dhT) in.dhT = randn({c.B, c.HV, c.K, c.V}, seed + 7, 0.5);
  return in;
}

}  // namespace lt2::test
