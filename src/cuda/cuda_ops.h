#pragma once
// The CUDA backend of the op set (F32 or BF16 storage, fp32 arithmetic). Callers use
// lt2::ops (ops/ops.h), which sends CUDA tensors here. Conventions beyond ops.h:
// parameters may be F32 or the activations' dtype; parameter gradients, rstd / lse,
// GDN beta, g and states are F32; outputs and input gradients take the activations' dtype.
// Kernels run on cuda::stream() and never wait for the host, except the ops that return a
// host number (cross_entropy, sum_squares) and embedding's 4-byte check for bad token ids
// (skipped when the caller checked them on the host, as the model does).
// The training step uses the *_stats / accumulate_* variants and reads back once per step.
#include "core/tensor.h"
#include "ops/op_types.h"

namespace lt2::cuda {

#include "ops/op_list.inc"

// Whether conv_silu_l2norm runs its fused kernels for this shape (otherwise it composes
// conv_silu and l2norm); the GPU tests check that the cases meant for them take them.
bool conv_silu_l2norm_fused(const Tensor& x, const Tensor& w, int64_t head);

}  // namespace lt2::cuda
