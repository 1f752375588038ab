#pragma once
// The CPU reference implementation of the op set (F32 and F64; F64 for gradient checks).
// Callers use lt2::ops (ops/ops.h), which sends CPU tensors here.
#include "core/tensor.h"
#include "ops/op_types.h"

namespace lt2::cpu {

#include "ops/op_list.inc"

}  // namespace lt2::cpu
