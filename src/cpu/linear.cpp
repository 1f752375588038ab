// Linear (y = x W^T through BLAS) and embedding lookup.
#include "cpu/blas.h"
#include "cpu/common.h"
#include "cpu/cpu_ops.h"

namespace lt2::cpu {

Tensor linear(const Tensor& x, const Tensor& w) {
  check_cpu_real(x, "linear", "x");
  check_same_dtype(x, w, "linear");
  LT2_CHECK(w.ndim() == 2 && x.ndim() >= 1 && x.dim(-1) == w.dim(1), "linear: x ", shape_str(x.shape()),
            " does not match weight ", shape_str(w.shape()), " (expected x[.., ", w.dim(1), "])");
  Shape ys = x.shape();
  ys.back() = w.dim(0);
  Tensor y = Tensor::empty(ys, x.dtype());
  const int64_t M = rows_of(x), N = w.dim(0), K = w.dim(1);
  dispatch_real(x.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_); gemm(false, true, M, N, K, R(1), x.data<R>(), K, w.data<R>(), K, R(0), y.data<R>(), N); });
  return y;
}

Tensor linear_backward_dx(const Tensor& w, const Tensor& dy, Tensor* dx_acc) {
  check_cpu_real(dy, "linear_backward", "dy");
  check_same_dtype(dy, w, "linear_backward");
  LT2_CHECK(w.ndim() == 2 && dy.ndim() >= 1 && dy.dim(-1) == w.dim(0), "linear_backward: dy shape ",
            shape_str(dy.shape()), " does not match weight ", shape_str(w.shape()));
  const int64_t M = rows_of(dy), N = w.dim(0), K = w.dim(1);
  Shape xs = dy.shape();
  xs.back() = K;
  if (dx_acc) {
    LT2_CHECK(rows_of(*dx_acc) == M && dx_acc->dim(-1) == K, "linear_backward: dx_acc shape ", shape_str(dx_acc->shape()),
              " does not match ", shape_str(xs));
    check_same_dtype(dy, *dx_acc, "linear_backward dx_acc");
  }
  Tensor dx = dx_acc ? *dx_acc : Tensor::empty(xs, dy.dtype());
  dispatch_real(dy.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    gemm(false, false, M, K, N, R(1), dy.data<R>(), N, w.data<R>(), K, R(dx_acc ? 1 : 0), dx.data<R>(), K);
  });
  return dx;
}

void linear_backward_dw(const Tensor& x, const Tensor& dy, Tensor& dw) {
  check_cpu_real(x, "linear_backward", "x");
  check_same_dtype(x, dy, "linear_backward");
  LT2_CHECK(dw.ndim() == 2, "linear_backward: dw must be 2-d, got ", shape_str(dw.shape()));
  const int64_t M = rows_of(x), N = dw.dim(0), K = dw.dim(1);
  LT2_CHECK(x.dim(-1) == K && rows_of(dy) == M && dy.dim(-1) == N, "linear_backward: x ", shape_str(x.shape()),
            " and dy ", shape_str(dy.shape()), " do not match dw ", shape_str(dw.shape()));
  check_same_dtype(x, dw, "linear_backward dw");
  dispatch_real(x.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    gemm(true, false, N, K, M, R(1), dy.data<R>(), N, x.data<R>(), K, R(1), dw.data<R>(), K);
  });
}

Tensor linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dw, Tensor* dx_acc) {
  check_shape(dw, w.shape(), "linear_backward dw");
  LT2_CHECK(rows_of(dy) == rows_of(x) && x.dim(-1) == w.dim(1), "linear_backward: x ", shape_str(x.shape()),
            " does not match dy ", shape_str(dy.shape()), " and weight ", shape_str(w.shape()));
  Tensor dx = linear_backward_dx(w, dy, dx_acc).reshape(x.shape());
  linear_backward_dw(x, dy, dw);
  return dx;
}

Tensor embedding(const Tensor& ids, const Tensor& table, bool ids_checked) {
  LT2_CHECK(ids.dtype() == DType::I32, "embedding: ids must be I32");
  check_cpu_real(table, "embedding", "table");
  const int64_t V = table.dim(0), d = table.dim(1), n = ids.numel();
  Shape ys = ids.shape();
  ys.push_back(d);
  Tensor y = Tensor::empty(ys, table.dtype());
  if (!ids_checked) check_token_ids(ids, V);
  const int32_t* id = ids.data<int32_t>();
  dispatch_real(table.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* t = table.data<R>();
    R* out = y.data<R>();
    for (int64_t i = 0; i < n; ++i) std::copy(t + id[i] * d, t + (id[i] + 1) * d, out + i * d);
  });
  return y;
}

void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable) {
  const int64_t d = dtable.dim(1), n = ids.numel();
  const int32_t* id = ids.data<int32_t>();
  dispatch_real(dtable.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    R* dt = dtable.data<R>();
    const R* g = dy.data<R>();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < d; ++c) dt[id[i] * d + c] += g[i * d + c];
  });
}

}  // namespace lt2::cpu

namespace lt2::cpu {

// The reference: each part's plain linear, stacked.
Tensor linear_split(const Tensor& x, const Tensor& w, int64_t parts) {
  LT2_CHECK(w.ndim() == 2 && parts >= 1 && w.dim(0) % parts == 0, "linear_split: weight ", shape_str(w.shape()),
            " does not split into ", parts, " equal row blocks");
  const int64_t N = w.dim(0) / parts;
  Shape ys = x.shape();
  ys.back() = N;
  ys.insert(ys.begin(), parts);
  Tensor y = Tensor::empty(ys, x.dtype());
  for (int64_t i = 0; i < parts; ++i) y.select(i).copy_from(linear(x, w.narrow(i * N, N)));
  return y;
}

}  // namespace lt2::cpu
