// Small elementwise helpers for layers on the GPU: residual adds, the loop's rho gate and
// its gradient, the sum of squares (gradient norms) and in-place scaling.
#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/op_util.cuh"

namespace lt2::cuda {

namespace {

// y[r, c] = a[r, c] + rho[c] * b[r, c]
template <class T, class P>
__global__ void add_scaled_channels_kernel(const T* a, const P* rho, const T* b, T* y, int64_t total, int64_t n) {
  LT2_GRID_STRIDE(i, total)
    y[i] = st<T>(ld(a[i]) + ld(rho[i % n]) * ld(b[i]));
}

// drho's per-element term for colsum_accumulate: dy[r, c] * b[r, c].
template <class T>
struct DyTimesB {
  const T* dy;
  const T* b;
  int64_t n;
  __device__ float operator()(int64_t r, int64_t c) const { return ld(dy[r * n + c]) * ld(b[r * n + c]); }
};

// Pass 1 of sum_squares: each block writes its partial sum (in double: the total is a
// norm over every parameter and may span many orders of magnitude).
template <class T>
__global__ void sum_squares_partial_kernel(const T* x, int64_t n, double* partial) {
  double acc = 0;
  LT2_GRID_STRIDE(i, n) {
    const double v = ld(x[i]);
    acc += v * v;
  }
  acc = block_sum_double(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Pass 2: one block adds the partials in a fixed order (same result on every run).
// *out = the partials' sum in a fixed order, or *out += it (accumulate).
__global__ void sum_partials_kernel(const double* partial, int64_t n, double* out, bool accumulate) {
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
  acc = block_sum_double(acc);
  if (threadIdx.x == 0) *out = accumulate ? *out + acc : acc;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  expect_cuda({&a, &b}, "add");
  LT2_CHECK(b.shape() == a.shape(), "add: shape ", shape_str(b.shape()), " != ", shape_str(a.shape()));
  check_same_dtype(a, b, "add");
  Tensor y = Tensor::empty_like(a);
  const int64_t n = a.numel();
  if (n == 0) return y;
  dispatch_float(a.dtype(), [&](auto t) {
    using T = decltype(t);
    ew_map<T>(n, {a.bytes(), b.bytes(), y.bytes()}, Add<T>{a.data<T>(), b.data<T>(), y.data<T>()}, "add");
  });
  return y;
}

Tensor add_scaled_channels(const Tensor& a, const Tensor& rho, const Tensor& b) {
  expect_cuda({&a, &rho, &b}, "add_scaled_channels");
  check_shape(b, a.shape(), "add_scaled_channels b");
  check_same_dtype(a, b, "add_scaled_channels");
  const int64_t n = a.dim(-1), total = a.numel();
  check_shape(rho, {n}, "add_scaled_channels rho");
  Tensor y = Tensor::empty_like(a);
  if (total == 0) return y;
  dispatch_float(a.dtype(), [&](auto t) {
    dispatch_float(rho.dtype(), [&](auto p) {
      using T = decltype(t);
      using P = decltype(p);
      add_scaled_channels_kernel<<<ew_grid(total), kEwThreads, 0, stream()>>>(a.data<T>(), rho.data<P>(), b.data<T>(),
                                                                            y.data<T>(), total, n);
    });
  });
  check_launch("add_scaled_channels");
  return y;
}

void add_scaled_channels_backward_rho(const Tensor& dy, const Tensor& b, Tensor& drho) {
  expect_cuda({&dy, &b, &drho}, "add_scaled_channels_backward_rho");
  check_shape(b, dy.shape(), "add_scaled_channels b");
  check_same_dtype(dy, b, "add_scaled_channels_backward_rho");
  const int64_t n = dy.dim(-1), rows = rows_of(dy);
  check_shape(drho, {n}, "add_scaled_channels drho");
  expect_f32(drho, "add_scaled_channels_backward_rho", "drho");
  dispatch_float(dy.dtype(), [&](auto t) {
    using T = decltype(t);
    colsum_accumulate(DyTimesB<T>{dy.data<T>(), b.data<T>(), n}, rows, n, drho, "add_scaled_channels_backward_rho");
  });
}

// *out (= or +=) sum(x^2): per-block partials, then a fixed-order sum; nothing read back.
static void sum_squares_into(const Tensor& x, double* out, bool accumulate) {
  const int64_t n = x.numel();
  const int blocks = std::min(ew_grid(n), 1024);  // depends on n only: reproducible
  Tensor partial = Tensor::empty({blocks}, DType::F64, Device::CUDA);
  double* pp = partial.data<double>();
  dispatch_float(x.dtype(), [&](auto t) {
    using T = decltype(t);
    sum_squares_partial_kernel<<<blocks, kEwThreads, 0, stream()>>>(x.data<T>(), n, pp);
  });
  check_launch("sum_squares");
  sum_partials_kernel<<<1, 1024, 0, stream()>>>(pp, blocks, out, accumulate);
  check_launch("sum_squares");
}

double sum_squares(const Tensor& x) {
  expect_cuda({&x}, "sum_squares");
  if (x.numel() == 0) return 0.0;
  Tensor total = Tensor::empty({1}, DType::F64, Device::CUDA);
  sum_squares_into(x, total.data<double>(), false);
  double host = 0;
  copy_to_host(&host, total.data<double>(), sizeof(double));  // the one synchronisation: the caller wants a number
  return host;
}

void accumulate_sum_squares(const Tensor& x, Tensor& acc) {
  expect_cuda({&x, &acc}, "accumulate_sum_squares");
  LT2_CHECK(acc.dtype() == DType::F64 && acc.numel() >= 1, "accumulate_sum_squares: acc must be F64");
  if (x.numel() > 0) sum_squares_into(x, acc.data<double>(), true);
}

}  // namespace lt2::cuda
