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

// One thread per VEC adjacent channel pairs (b, t, h, i .. i + VEC) of x [B, L, H, D]: both
// halves move as 8- or 16-byte accesses and the index arithmetic is paid once per VEC pairs
// (one scalar pair per thread with 64-bit divisions ran at about a third of DRAM bandwidth).
// y's token rows are y_ld apart: H * D, or wider when y is a column block of a fused
// projection's packed gradient.
template <class T, int VEC>
__global__ void rope_apply_kernel(const T* x, T* y, int64_t y_ld, const float* cs, const float* sn, int64_t groups,
                                  int64_t L, int64_t H, int64_t D) {
  const int64_t half = D / 2, per_row = half / VEC;
  LT2_GRID_STRIDE(g, groups) {
    const int64_t i = (g % per_row) * VEC, row = g / per_row;  // row = (b * L + t) * H + h
    const int64_t bt = row / H, t = bt % L, o = row * D, oy = bt * y_ld + (row - bt * H) * D;
    float c[VEC], s[VEC], x1[VEC], x2[VEC], y1[VEC], y2[VEC];
    ld_vec<VEC>(cs + t * half + i, c);
    ld_vec<VEC>(sn + t * half + i, s);
    ld_vec<VEC>(x + o + i, x1);
    ld_vec<VEC>(x + o + i + half, x2);
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      y1[j] = x1[j] * c[j] - x2[j] * s[j];
      y2[j] = x2[j] * c[j] + x1[j] * s[j];
    }
    st_vec<VEC>(y + oy + i, y1);
    st_vec<VEC>(y + oy + i + half, y2);
  }
}

// With out, the result goes into that column block (as [B * L, H * D]) and y stays undefined.
Tensor rotate(const Tensor& x, double theta, int64_t pos0, double sign, const char* op, const ColBlock* out = nullptr) {
  expect_cuda({&x}, op);
  LT2_CHECK(x.ndim() == 4 && x.dim(3) % 2 == 0, "rope: x must be [B, L, H, D] with even D, got ",
            shape_str(x.shape()));
  const int64_t L = x.dim(1), H = x.dim(2), D = x.dim(3), half = D / 2;
  Tensor y, block;
  std::byte* yb = nullptr;
  int64_t y_ld = H * D;
  if (out) {
    expect_cuda({&out->t}, op);
    check_col_block(*out, x.dim(0) * L, H * D, x.dtype(), op);
    block = out->t;  // a handle on the block's storage
    yb = block.bytes() + out->col * int64_t(dtype_size(x.dtype()));
    y_ld = out->ld();
  } else {
    y = Tensor::empty_like(x);
    yb = y.bytes();
  }
  const int64_t pairs = x.numel() / 2;
  if (pairs == 0) return y;
  Tensor table = Tensor::empty({2, L, half}, DType::F32, Device::CUDA);  // cos, then sin
  float* cs = table.data<float>();
  float* sn = cs + L * half;
  rope_table_kernel<<<ew_grid(L * half), kEwThreads, 0, stream()>>>(cs, sn, L, D, theta, pos0, sign);
  check_launch(op);
  dispatch_float(x.dtype(), [&](auto t) {
    using T = decltype(t);
    auto launch = [&](auto vec) {
      constexpr int V = decltype(vec)::value;
      const int64_t groups = pairs / V;
      rope_apply_kernel<T, V><<<ew_grid(groups), kEwThreads, 0, stream()>>>(
          x.data<T>(), reinterpret_cast<T*>(yb), y_ld, cs, sn, groups, L, H, D);
    };
    // The widest group of pairs that divides D/2 and keeps every access aligned (table rows
    // are D/2 floats, so V floats stay aligned when the T accesses do; y's row stride too).
    auto fits = [&](int v) {
      return half % v == 0 && y_ld % v == 0 && aligned_to(v * sizeof(T), {x.data<T>(), yb});
    };
    if (fits(8)) launch(std::integral_constant<int, 8>{});
    else if (fits(4)) launch(std::integral_constant<int, 4>{});
    else if (fits(2)) launch(std::integral_constant<int, 2>{});
    else launch(std::integral_constant<int, 1>{});
  });
  check_launch(op);
  return y;
}

}  // namespace

Tensor rope(const Tensor& x, double theta, int64_t pos0, const ColBlock* out) {
  return rotate(x, theta, pos0, 1.0, "rope", out);
}
Tensor rope_backward(const Tensor& dy, double theta, int64_t pos0, const ColBlock* out) {
  return rotate(dy, theta, pos0, -1.0, "rope_backward", out);
}

}  // namespace lt2::cuda
