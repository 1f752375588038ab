// AdamW with decoupled weight decay on the GPU (same update as cpu/optim.cpp), all F32.
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/op_util.cuh"

namespace lt2::cuda {

namespace {

// ibc1, ibc2: the inverse bias corrections 1 / (1 - beta^step), computed on the host in double.
// norm_sq (may be null): the squared global gradient norm; the gradient is scaled by
// min(1, max_norm / norm) here, so clipping needs no host round trip.
__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, float b1, float b2, float lr,
                             float wd, float eps, float ibc1, float ibc2, const double* norm_sq, float max_norm) {
  float clip = 1.f;
  if (norm_sq && max_norm > 0) {
    const double norm = sqrt(*norm_sq);
    if (norm > max_norm) clip = float(max_norm / norm);
  }
  LT2_GRID_STRIDE(i, n) {
    const float gi = g[i] * clip;
    const float mi = b1 * m[i] + (1.f - b1) * gi;
    const float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float upd = (mi * ibc1) / (sqrtf(vi * ibc2) + eps);
    p[i] -= lr * (upd + wd * p[i]);
  }
}

}  // namespace

void adamw_step(Tensor& p, const Tensor& grad, Tensor& m, Tensor& v, const AdamWParams& hp) {
  expect_cuda({&p, &grad, &m, &v}, "adamw");
  check_shape(grad, p.shape(), "adamw grad");
  check_shape(m, p.shape(), "adamw m");
  check_shape(v, p.shape(), "adamw v");
  expect_f32(p, "adamw", "param");
  expect_f32(grad, "adamw", "grad");
  expect_f32(m, "adamw", "m");
  expect_f32(v, "adamw", "v");
  LT2_CHECK(hp.step >= 1, "adamw: step counts from 1");
  const double bc1 = 1.0 - std::pow(hp.beta1, double(hp.step));
  const double bc2 = 1.0 - std::pow(hp.beta2, double(hp.step));
  const int64_t n = p.numel();
  if (n == 0) return;
  const double* norm_sq = nullptr;
  if (hp.max_norm > 0 && hp.norm_sq) {
    expect_cuda({hp.norm_sq}, "adamw");
    LT2_CHECK(hp.norm_sq->dtype() == DType::F64, "adamw: norm_sq must be F64");
    norm_sq = hp.norm_sq->data<double>();
  }
  adamw_kernel<<<ew_grid(n), kEwThreads, 0, stream()>>>(p.data<float>(), grad.data<float>(), m.data<float>(),
                                                        v.data<float>(), n, float(hp.beta1), float(hp.beta2),
                                                        float(hp.lr), float(hp.weight_decay), float(hp.eps),
                                                        float(1 / bc1), float(1 / bc2), norm_sq, float(hp.max_norm));
  check_launch("adamw");
}

}  // namespace lt2::cuda
