#pragma once
// DSA's dense paths: the sparse attention as the flash kernels with a key mask, the KL target
// and the indexer's backward over every causal pair (see dsa_masked.cu for when and why).
// cuda/dsa.cu's ops call these.
#include "core/tensor.h"

namespace lt2::cuda {

// Whether sparse attention of q over idx (and its backward, given o and dout) runs as masked
// flash attention: BF16 head dims the flash kernels take, and L at most a bounded multiple of k.
bool dsa_use_masked_flash(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& idx,
                          const Tensor* o = nullptr, const Tensor* dout = nullptr);

// Whether dsa_indexer_kl over idx (undefined: every causal key) reads its target from the dense
// head-averaged probabilities (flash_head_mean_probs) instead of gathering key rows per slot.
bool dsa_use_dense_target(const Tensor& q, const Tensor& k, const Tensor& idx);

// Whether dsa_indexer_scores_backward runs over every causal pair (indexer_backward_dense).
bool dsa_use_dense_indexer_backward(const Tensor& qI, const Tensor& idx);

// The indexer's backward over every causal pair with the key sets' gradient scattered into a
// dense [B, L, L] matrix (dsa_indexer_dense.cu): same contract as dsa_indexer_scores_backward,
// for index heads of width d_I <= kMaxDenseIndexerDim; the caller validates and allocates.
constexpr int64_t kMaxDenseIndexerDim = 64;
void indexer_backward_dense(const Tensor& qI, const Tensor& kI, const Tensor& w, double w_scale, const Tensor& idx,
                            const Tensor& dIsel, Tensor& dqI, Tensor& dkI, Tensor& dw);
// Its tensor-core kernels (dsa_indexer_dense_mma.cu) over the dense gradient `dense`: they take
// BF16 index vectors with d_I in {16, 32, 48, 64} (supported), and the call returns false
// without running for anything else (or views not 16-byte aligned).
bool indexer_dense_mma_supported(const Tensor& qI);
// The indexer's scores I [B, L, L] (F32, allocated by the caller) on the tensor cores, same
// contract as dsa_indexer_scores; false without running where the backward's kernels don't apply.
bool indexer_scores_mma(const Tensor& qI, const Tensor& kI, const Tensor& w, double w_scale, Tensor& I);
bool indexer_backward_dense_mma(const Tensor& qI, const Tensor& kI, const Tensor& w, double w_scale,
                                const float* dense, Tensor& dqI, Tensor& dkI, Tensor& dw);

// The index sets idx [B, L, k] (empty slots < 0) as the flash kernels' key mask
// I32 [B, L, flash_mask_words(L)].
Tensor dsa_key_mask(const Tensor& idx, int64_t L);

}  // namespace lt2::cuda
