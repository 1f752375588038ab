#pragma once
// GDN parity cases of the GPU tests (recurrence, chunked kernels, decode step): the inputs of
// ../gdn_inputs.h, the tolerances, and F32 copies for the fp32-only operands.
#include "../gdn_inputs.h"
#include "cuda_util.h"

namespace lt2::test {

// bf16: the bounds; F32: long fp32 recurrences (and three TF32 products per step).
struct GdnTols {
  double o, hT, dqkv, dh0, dgates;
};
inline GdnTols gdn_tols(DType dt) {
  if (dt == DType::BF16) return {5e-3, 5e-3, 8e-3, 8e-3, 2e-2};
  return {1e-4, 1e-4, 1e-4, 1e-4, 1e-4};
}

// F32 copies of the fp32-only inputs (gates, states); undefined stays undefined.
inline Tensor ref_f32(const Tensor& t) { return t.defined() ? rounded(t, DType::F32) : Tensor(); }
inline Tensor gpu_f32(const Tensor& t) { return t.defined() ? on_gpu(t, DType::F32) : Tensor(); }

}  // namespace lt2::test
