// linear / linear_backward on cuBLASLt. x and w may differ in dtype (F32 master weights
// with BF16 activations in tests and tools): w is then cast once per call; the training
// path hands in BF16 weight copies so no cast happens there.
#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/gemm.h"

namespace lt2::cuda {

namespace {
Tensor weight_as(const Tensor& w, DType dt) { return w.dtype() == dt ? w : w.to(dt); }
int64_t rows(const Tensor& t) { return t.ndim() == 0 ? 1 : t.numel() / t.dim(-1); }
}  // namespace

Tensor linear(const Tensor& x, const Tensor& w) {
  expect_cuda({&x, &w}, "linear");
  LT2_CHECK(w.ndim() == 2 && x.ndim() >= 1 && x.dim(-1) == w.dim(1), "linear: x ", shape_str(x.shape()),
            " does not match weight ", shape_str(w.shape()), " (expected x[.., ", w.dim(1), "])");
  Shape ys = x.shape();
  ys.back() = w.dim(0);
  Tensor y = Tensor::empty(ys, x.dtype(), Device::CUDA);
  const int64_t M = rows(x), N = w.dim(0), K = w.dim(1);
  const Tensor wc = weight_as(w, x.dtype());
  gemm(false, true, M, N, K, 1.f, x.bytes(), K, wc.bytes(), K, x.dtype(), 0.f, y.bytes(), N, y.dtype());
  return y;
}

Tensor linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dw, Tensor* dx_acc) {
  expect_cuda({&x, &w, &dy, &dw}, "linear_backward");
  const int64_t M = rows(x), N = w.dim(0), K = w.dim(1);
  LT2_CHECK(rows(dy) == M && dy.dim(-1) == N, "linear_backward: dy shape ", shape_str(dy.shape()));
  check_shape(dw, w.shape(), "linear_backward dw");
  check_same_dtype(x, dy, "linear_backward");
  if (dx_acc) {
    expect_cuda({dx_acc}, "linear_backward");
    check_shape(*dx_acc, x.shape(), "linear_backward dx_acc");
    check_same_dtype(x, *dx_acc, "linear_backward dx_acc");
  }
  Tensor dx = dx_acc ? *dx_acc : Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
  const Tensor wc = weight_as(w, x.dtype());
  gemm(false, false, M, K, N, 1.f, dy.bytes(), N, wc.bytes(), K, x.dtype(), dx_acc ? 1.f : 0.f, dx.bytes(), K,
       dx.dtype());
  gemm(true, false, N, K, M, 1.f, dy.bytes(), N, x.bytes(), K, x.dtype(), 1.f, dw.bytes(), K, dw.dtype());
  return dx;
}

}  // namespace lt2::cuda
