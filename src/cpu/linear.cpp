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

Tensor linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dw, Tensor* dx_acc) {
  const int64_t M = rows_of(x), N = w.dim(0), K = w.dim(1);
  LT2_CHECK(rows_of(dy) == M && dy.dim(-1) == N, "linear_backward: dy shape ", shape_str(dy.shape()));
  check_shape(dw, w.shape(), "linear_backward dw");
  if (dx_acc) {
    check_shape(*dx_acc, x.shape(), "linear_backward dx_acc");
    check_same_dtype(x, *dx_acc, "linear_backward dx_acc");
  }
  Tensor dx = dx_acc ? *dx_acc : Tensor::empty(x.shape(), x.dtype());
  dispatch_real(x.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    gemm(false, false, M, K, N, R(1), dy.data<R>(), N, w.data<R>(), K, R(dx_acc ? 1 : 0), dx.data<R>(), K);
    gemm(true, false, N, K, M, R(1), dy.data<R>(), N, x.data<R>(), K, R(1), dw.data<R>(), K);
  });
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
