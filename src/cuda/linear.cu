// linear / linear_backward on cuBLASLt. x and w may differ in dtype (F32 master weights
// with BF16 activations in tests and tools): w is then cast once per call; the training
// path hands in BF16 weight copies so no cast happens there. Layers with a handful of outputs
// take linear_narrow.cu's kernels for the forward and dW instead (dx stays a GEMM: it writes a
// full-width result, which cuBLASLt does at bandwidth).
#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/gemm.h"
#include "cuda/linear_narrow.h"

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
  if (narrow_linear_fits(x, N, K)) {
    narrow_linear_forward(x, w, y, M);
    return y;
  }
  const Tensor wc = weight_as(w, x.dtype());
  gemm(false, true, M, N, K, 1.f, x.bytes(), K, wc.bytes(), K, x.dtype(), 0.f, y.bytes(), N, y.dtype());
  return y;
}

// One strided-batched GEMM: part i reads the shared x (stride 0) and w's i-th row block, and
// writes its own contiguous [M, N] slab of y.
Tensor linear_split(const Tensor& x, const Tensor& w, int64_t parts) {
  expect_cuda({&x, &w}, "linear_split");
  LT2_CHECK(w.ndim() == 2 && x.ndim() >= 1 && x.dim(-1) == w.dim(1) && parts >= 1 && w.dim(0) % parts == 0,
            "linear_split: x ", shape_str(x.shape()), " and weight ", shape_str(w.shape()), " do not make ", parts,
            " equal projections");
  const int64_t M = rows(x), N = w.dim(0) / parts, K = w.dim(1);
  Shape ys = x.shape();
  ys.back() = N;
  ys.insert(ys.begin(), parts);
  Tensor y = Tensor::empty(ys, x.dtype(), Device::CUDA);
  const Tensor wc = weight_as(w, x.dtype());
  gemm_strided_batched(false, true, M, N, K, 1.f, x.bytes(), K, 0, wc.bytes(), K, N * K, x.dtype(), 0.f, y.bytes(), N,
                       M * N, y.dtype(), parts);
  return y;
}

Tensor linear_backward_dx(const Tensor& w, const Tensor& dy, Tensor* dx_acc) {
  expect_cuda({&w, &dy}, "linear_backward");
  LT2_CHECK(w.ndim() == 2 && dy.ndim() >= 1 && dy.dim(-1) == w.dim(0), "linear_backward: dy shape ",
            shape_str(dy.shape()), " does not match weight ", shape_str(w.shape()));
  const int64_t M = rows(dy), N = w.dim(0), K = w.dim(1);
  Shape xs = dy.shape();
  xs.back() = K;
  if (dx_acc) {
    expect_cuda({dx_acc}, "linear_backward");
    LT2_CHECK(rows(*dx_acc) == M && dx_acc->dim(-1) == K, "linear_backward: dx_acc shape ", shape_str(dx_acc->shape()),
              " does not match ", shape_str(xs));
    check_same_dtype(dy, *dx_acc, "linear_backward dx_acc");
  }
  Tensor dx = dx_acc ? *dx_acc : Tensor::empty(xs, dy.dtype(), Device::CUDA);
  const Tensor wc = weight_as(w, dy.dtype());
  gemm(false, false, M, K, N, 1.f, dy.bytes(), N, wc.bytes(), K, dy.dtype(), dx_acc ? 1.f : 0.f, dx.bytes(), K,
       dx.dtype());
  return dx;
}

void linear_backward_dw(const Tensor& x, const Tensor& dy, Tensor& dw) {
  expect_cuda({&x, &dy, &dw}, "linear_backward");
  check_same_dtype(x, dy, "linear_backward");
  LT2_CHECK(dw.ndim() == 2, "linear_backward: dw must be 2-d, got ", shape_str(dw.shape()));
  const int64_t M = rows(x), N = dw.dim(0), K = dw.dim(1);
  LT2_CHECK(x.dim(-1) == K && rows(dy) == M && dy.dim(-1) == N, "linear_backward: x ", shape_str(x.shape()),
            " and dy ", shape_str(dy.shape()), " do not match dw ", shape_str(dw.shape()));
  if (dw.dtype() == DType::F32 && narrow_linear_fits(x, N, K)) {
    narrow_linear_backward_dw(x, dy, dw, M);
    return;
  }
  gemm(true, false, N, K, M, 1.f, dy.bytes(), N, x.bytes(), K, x.dtype(), 1.f, dw.bytes(), K, dw.dtype());
}

Tensor linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dw, Tensor* dx_acc) {
  check_shape(dw, w.shape(), "linear_backward dw");
  LT2_CHECK(rows(dy) == rows(x) && x.dim(-1) == w.dim(1), "linear_backward: x ", shape_str(x.shape()),
            " does not match dy ", shape_str(dy.shape()), " and weight ", shape_str(w.shape()));
  Tensor dx = linear_backward_dx(w, dy, dx_acc).reshape(x.shape());
  linear_backward_dw(x, dy, dw);
  return dx;
}

}  // namespace lt2::cuda
