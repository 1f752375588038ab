#pragma once
// Plain structs in the op set's signatures (shared by every backend's namespace).
#include <cstdint>

#include "core/tensor.h"

namespace lt2 {
struct GdnGrads { Tensor dq, dk, dv, dbeta, dg, dh0; };
// Columns [col, col + width) of t viewed as [rows, t.dim(-1)], width being that of what is
// written there. A fused projection's backward has its ops write each input gradient straight
// into its block of one packed gradient [.., sum of widths], which a single GEMM then reads:
// no copy pass joins them.
struct ColBlock {
  Tensor t;
  int64_t col = 0;
  int64_t ld() const { return t.dim(-1); }
  int64_t rows() const { return t.ndim() == 0 ? 1 : t.numel() / t.dim(-1); }
};
// Checks that a result of `rows` rows of `width` values in dtype dt fits the block.
inline void check_col_block(const ColBlock& b, int64_t rows, int64_t width, DType dt, const char* op) {
  LT2_CHECK(b.t.defined() && b.t.ndim() >= 1, op, ": the output block's tensor is missing");
  LT2_CHECK(b.t.dtype() == dt, op, ": output block is ", dtype_name(b.t.dtype()), ", the result ", dtype_name(dt));
  LT2_CHECK(b.rows() == rows && b.col >= 0 && b.col + width <= b.ld(), op, ": a [", rows, ", ", width,
            "] result does not fit columns ", b.col, ".. of ", shape_str(b.t.shape()));
}
// The width a result of `numel` elements takes in block b when it fills the block's rows in
// order (a [B, L, H, D] result in a [B·L, ..] block: H·D), checked to fit; a multiple of `unit`,
// the op's own row length, so none of the op's rows straddles two of the block's.
inline int64_t col_block_width(const ColBlock& b, int64_t numel, int64_t unit, DType dt, const char* op) {
  LT2_CHECK(b.t.defined() && b.t.ndim() >= 1, op, ": the output block's tensor is missing");
  const int64_t rows = b.rows();
  LT2_CHECK(rows > 0 && numel % rows == 0 && unit > 0 && (numel / rows) % unit == 0, op, ": a result of ", numel,
            " elements in rows of ", unit, " does not fill the ", rows, " rows of ", shape_str(b.t.shape()));
  check_col_block(b, rows, numel / rows, dt, op);
  return numel / rows;
}
// conv_silu_l2norm's x [B, L, C] viewed per head: [B, L, C / head, head] (C a multiple of head).
inline Shape conv_head_shape(const Tensor& x, int64_t head, const char* op) {
  LT2_CHECK(x.ndim() == 3, op, ": x must be [B, L, C], got ", shape_str(x.shape()));
  LT2_CHECK(head >= 1 && x.dim(2) % head == 0, op, ": C = ", x.dim(2), " is not a multiple of the head size ", head);
  return {x.dim(0), x.dim(1), x.dim(2) / head, head};
}
// step counts from 1. With max_norm > 0 and norm_sq (F64, element 0 = the squared global
// gradient norm, on the parameters' device) the gradient is scaled by min(1, max_norm / norm)
// inside the update: clipping without reading the norm back to the host.
struct AdamWParams {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;
  double max_norm = 0;
  const Tensor* norm_sq = nullptr;
};
}  // namespace lt2
