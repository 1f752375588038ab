// Split-half RoPE ("rotate_half", NeoX / Hugging Face layout) on the GPU: channel i pairs
// with i + D/2. The backward is the inverse rotation (sin negated).
#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/op_util.cuh"

namespace lt2::cuda {

namespace {

// cos / sin table [L, D/2], computed in double as on the CPU: the angle (pos0 + t) * freq
// reaches thousands of radians, where fp32 would lose the phase.
__global__ void rope_table_kernel(float* cs, float* sn, int64_t L, int64_t D, double theta, int64_t pos0,
                                  double sign) {
  const int64_t half = D / 2;
  LT2_GRID_STRIDE(idx, L * half) {
    const int64_t t = idx / half, i = idx % half;
    const double ang = double(pos0 + t) * pow(theta, -2.0 * double(i) / double(D));
    double s, c;
    sincos(ang, &s, &c);
    cs[idx] = float(c);
    sn[idx] = float(sign * s);
  }
}

// One thread per channel pair (b, t, h, i) of x [B, L, H, D].
template <class T>
__global__ void rope_apply_kernel(const T* x, T* y, const float* cs, const float* sn, int64_t pairs, int64_t L,
                                  int64_t H, int64_t D) {
  const int64_t half = D / 2;
  LT2_GRID_STRIDE(p, pairs) {
    const int64_t i = p % half, row = p / half;  // row = (b * L + t) * H + h
    const int64_t t = (row / H) % L, o = row * D;
    const float c = cs[t * half + i], s = sn[t * half + i];
    const float x1 = ld(x[o + i]), x2 = ld(x[o + i + half]);
    y[o + i] = st<T>(x1 * c - x2 * s);
    y[o + i + half] = st<T>(x2 * c + x1 * s);
  }
}

Tensor rotate(const Tensor& x, double theta, int64_t pos0, double sign, const char* op) {
  expect_cuda({&x}, op);
  LT2_CHECK(x.ndim() == 4 && x.dim(3) % 2 == 0, "rope: x must be [B, L, H, D] with even D, got ",
            shape_str(x.shape()));
  const int64_t L = x.dim(1), H = x.dim(2), D = x.dim(3), half = D / 2;
  Tensor y = Tensor::empty_like(x);
  const int64_t pairs = x.numel() / 2;
  if (pairs == 0) return y;
  Tensor table = Tensor::empty({2, L, half}, DType::F32, Device::CUDA);  // cos, then sin
  float* cs = table.data<float>();
  float* sn = cs + L * half;
  rope_table_kernel<<<ew_grid(L * half), kEwThreads, 0, stream()>>>(cs, sn, L, D, theta, pos0, sign);
  check_launch(op);
  dispatch_float(x.dtype(), [&](auto t) {
    using T = decltype(t);
    rope_apply_kernel<<<ew_grid(pairs), kEwThreads, 0, stream()>>>(x.data<T>(), y.data<T>(), cs, sn, pairs, L, H, D);
  });
  check_launch(op);
  return y;
}

}  // namespace

Tensor rope(const Tensor& x, double theta, int64_t pos0) { return rotate(x, theta, pos0, 1.0, "rope"); }
Tensor rope_backward(const Tensor& dy, double theta, int64_t pos0) {
  return rotate(dy, theta, pos0, -1.0, "rope_backward");
}

}  // namespace lt2::cuda
