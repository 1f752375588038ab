#pragma once
// Chunked (WY / UT form, C = 64) Gated DeltaNet core on the GPU's tensor cores; see the top of
// gdn_chunked.cu for the algorithm and the kernels. Same contract as lt2::cuda::gdn /
// gdn_backward (cuda_ops.h, cpu/gdn.h for layouts): q, k [B, L, H, K] and v [B, L, HV, V] in
// F32 or BF16; beta, g [B, L, HV] F32; h0 / hT [B, HV, K, V] F32 (h0 may be undefined);
// outputs in the activation dtype; dbeta, dg, dh0 F32. The caller checks shapes and dtypes
// (cuda/gdn.cu does, then routes here when gdn_chunked_supported says yes).
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "ops/op_types.h"

namespace lt2::cuda {

// True when these kernels take the problem: F32 or BF16 activations and K <= 256 (BF16) or
// K <= 128 (F32: its fp32 staging does not fit in shared memory beyond that). Any L, any V.
bool gdn_chunked_supported(DType dtype, int64_t K, int64_t V);

// The gradients' buffers as every GDN backward on the GPU returns them: dq, dk, dv in q's dtype;
// dbeta, dg F32; dh0 F32 when h0 is given, undefined otherwise.
inline GdnGrads empty_gdn_grads(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                const Tensor& g, const Tensor& h0) {
  return {Tensor::empty(q.shape(), q.dtype(), Device::CUDA), Tensor::empty(k.shape(), q.dtype(), Device::CUDA),
          Tensor::empty(v.shape(), q.dtype(), Device::CUDA), Tensor::empty(beta.shape(), DType::F32, Device::CUDA),
          Tensor::empty(g.shape(), DType::F32, Device::CUDA),
          h0.defined() ? Tensor::empty(h0.shape(), DType::F32, Device::CUDA) : Tensor()};
}

// value_tile: value columns per scan block, 32 or 64; 0 chooses (env LT2_GDN_VT overrides).
// states (ops::gdn's): the split-tile kernels write the forward scan's per-chunk checkpoints
// there, BF16 [B·HV·NC, tiles, 2 (hi, lo), KP, vt]; other modes leave it undefined. The
// backward uses a buffer of exactly its own checkpoints' shape and recomputes them otherwise.
Tensor gdn_chunked_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
                           const Tensor& h0, Tensor* hT, int value_tile = 0, Tensor* states = nullptr);
GdnGrads gdn_chunked_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
                              const Tensor& h0, const Tensor& dout, const Tensor& dhT, int value_tile = 0,
                              const Tensor& states = Tensor());

// Variable-length batch: N sequences packed along L of a batch of one. q, k [1, T, H, K],
// v / dout [1, T, HV, V], beta, g [1, T, HV]; cu_seqlens (host) holds N + 1 offsets, 0 = cu[0]
// <= cu[1] <= ... <= cu[N] = T, sequence n being tokens [cu[n], cu[n+1]). The state restarts at
// each sequence's first token from h0[n] (zero where h0 is undefined); h0, hT, dhT, dh0 are
// [N, HV, K, V] F32, hT[n] / dhT[n] the state after / its gradient at the sequence's last token
// (an empty sequence passes its state through). Each sequence runs the kernels above on views
// of the packed tensors, one after another; results are the same as separate calls.
Tensor gdn_chunked_forward_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                  const Tensor& g, const Tensor& h0, Tensor* hT,
                                  const std::vector<int64_t>& cu_seqlens, int value_tile = 0);
GdnGrads gdn_chunked_backward_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                     const Tensor& g, const Tensor& h0, const Tensor& dout, const Tensor& dhT,
                                     const std::vector<int64_t>& cu_seqlens, int value_tile = 0);

}  // namespace lt2::cuda
