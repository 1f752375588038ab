#pragma once
// Finite-difference gradient checking in float64 for ops, layers and whole models.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "core/rng.h"
#include "core/tensor.h"

namespace lt2::test {

inline Tensor randn(const Shape& s, uint64_t seed, double scale = 1.0, DType dt = DType::F64) {
  Tensor t = Tensor::empty(s, dt);
  CounterRng rng{seed, 7};
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, scale * rng.normal(i));
  return t;
}

inline Tensor uniform(const Shape& s, uint64_t seed, double lo, double hi, DType dt = DType::F64) {
  Tensor t = Tensor::empty(s, dt);
  CounterRng rng{seed, 11};
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, lo + (hi - lo) * rng.uniform(i));
  return t;
}

// sum(a * w): turns a tensor output into a scalar loss with random weights w.
inline double dot(const Tensor& a, const Tensor& w) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += a.item(i) * w.item(i);
  return s;
}

// Compares `analytic` with central differences of `loss` w.r.t. every element of `x`
// (x is perturbed in place and restored). Fails on NaN. Returns the max abs error.
inline double check_grad(const std::string& what, const std::function<double()>& loss, Tensor& x,
                         const Tensor& analytic, double eps = 1e-6, double rtol = 1e-5, double atol = 1e-8) {
  EXPECT_EQ(x.shape(), analytic.shape()) << what;
  double worst = 0;
  int reported = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double x0 = x.item(i);
    x.set(i, x0 + eps);
    const double lp = loss();
    x.set(i, x0 - eps);
    const double lm = loss();
    x.set(i, x0);
    const double num = (lp - lm) / (2 * eps), ana = analytic.item(i);
    const double err = std::abs(num - ana);
    worst = std::max(worst, err);
    const bool ok = std::isfinite(num) && std::isfinite(ana) && err <= atol + rtol * std::max(std::abs(num), std::abs(ana));
    if (!ok && reported++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: numeric " << num << " vs analytic " << ana;
  }
  return worst;
}

// Relative L2 distance ||a - b|| / max(||b||, tiny); NaN anywhere gives +inf.
inline double rel_l2(const Tensor& a_any, const Tensor& b_any) {
  EXPECT_EQ(a_any.shape(), b_any.shape());
  const Tensor a = a_any.on_cuda() ? a_any.to(Device::CPU) : a_any;  // one copy, not one per element
  const Tensor b = b_any.on_cuda() ? b_any.to(Device::CPU) : b_any;
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.item(i), y = b.item(i);
    if (!std::isfinite(x) || !std::isfinite(y)) return INFINITY;
    num += (x - y) * (x - y);
    den += y * y;
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

}  // namespace lt2::test
