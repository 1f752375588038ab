#pragma once
// Tensor-core causal attention for BF16 activations with head dim 64 or 128 (FlashAttention-2
// algorithm with fp32 accumulation): on Hopper (sm_90a) warpgroup MMA (wgmma) kernels fed by
// TMA, mma.sync kernels on other GPUs and, for every pass, with LT2_FLASH_MMA=1.
// lt2::cuda::attention and attention_backward (attention.cu) route here when flash_supported()
// says yes; every other case keeps the fp32 SIMT kernels there.
//
// Same contract as the op (ops/op_list.inc): q [B, L, H, D]; k, v [B, L, Hkv, D] with Hkv | H;
// window 0 = full causal, window w = query t sees keys t-w+1 .. t; lse [B, H, L] F32 is the
// natural-log log-sum-exp of the scaled scores. Callers validate shapes and allocate outputs.
#include <cstdint>

#include "core/tensor.h"
#include "ops/op_types.h"

namespace lt2::cuda {

// True for BF16 q, k, v with D in {64, 128}, L >= 1, grid-sized B and H, and 16-byte aligned
// data (the kernels move rows with 16-byte copies); the backward also passes o and dout, which
// must be aligned too.
bool flash_supported(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* o = nullptr,
                     const Tensor* dout = nullptr);

// A key mask restricts each query further (DSA's index sets, shared by all heads): I32
// [B, L, flash_mask_words(L)], bit s % 32 of word s / 32 of row (b, t) set when query t attends
// to key s. Every query must keep at least one key.
inline int64_t flash_mask_words(int64_t L) { return (L + 31) / 32; }

// o: BF16 like q (allocated); lse: F32 [B, H, L] (allocated) or nullptr (not written).
void flash_forward(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window, double scale, Tensor& o,
                   Tensor* lse, const Tensor* mask = nullptr);

// dq, dk, dv: BF16 like q, k, v (allocated; every element is written). lse from the forward.
// Deterministic: no atomics; GQA sums over the query heads of a group in a fixed order.
// dv_out (BF16, even column and row stride, checked by the caller): dv goes there instead.
void flash_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                    const Tensor& dout, int64_t window, double scale, Tensor& dq, Tensor& dk, Tensor& dv,
                    const Tensor* mask = nullptr, const ColBlock* dv_out = nullptr);

// DSA's KL target in dense form: probs F32 [B, L, L] (allocated) receives, for every s <= t, the
// mean over query heads of exp(q_t . k_s * scale - lse[b, h, t]); entries above the diagonal are
// unspecified. q, k as for flash_forward (flash_supported), lse from it.
void flash_head_mean_probs(const Tensor& q, const Tensor& k, const Tensor& lse, double scale, Tensor& probs);

}  // namespace lt2::cuda
