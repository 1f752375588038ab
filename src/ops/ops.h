#pragma once
// The op set: one declaration per op, forward and backward, the same on every backend.
// Shapes are explicit: activations [.., d] row-major, heads [B, L, H, Dh], weights [out, in].
// On the CPU, ops accept F32 or F64 tensors (F64 for gradient checks). Backward functions
// WRITE input gradients and ACCUMULATE (+=) parameter gradients, so a weight shared
// across loops collects every loop's contribution.
// Every op runs on the device its inputs live on: ops.cpp sends each call to the CPU
// reference (lt2::cpu, src/cpu) or to the CUDA backend (lt2::cuda, src/cuda).
// On CUDA, activations are F32 or BF16 (fp32 arithmetic inside), parameters F32 or the
// activations' dtype, parameter gradients, norm statistics and GDN gates/states F32.
#include <cstdint>

#include "core/tensor.h"
#include "ops/op_types.h"

namespace lt2::ops {

#include "ops/op_list.inc"

}  // namespace lt2::ops
