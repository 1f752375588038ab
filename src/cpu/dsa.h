#pragma once
// DeepSeek Sparse Attention (SPEC §2, dsa(k)), CPU reference: the op-set functions are declared
// in ops/op_list.inc (dsa_indexer_scores, dsa_topk, sparse_attention, dsa_indexer_kl,
// dsa_decode, ...). This header adds what only the tests need.
#include "core/tensor.h"

namespace lt2::cpu {

// The indexer's target computed directly, without a saved lse: each head's softmax over the
// key set idx (undefined = every s <= t), averaged over heads, as a dense p [B, L, L] (zero off
// the set). An independent check of the lse-based target inside dsa_indexer_kl.
Tensor dsa_attention_target(const Tensor& q, const Tensor& k, const Tensor& idx, double scale);

}  // namespace lt2::cpu
