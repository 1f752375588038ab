#pragma once
// DeepSeek Sparse Attention (SPEC §2, dsa(k)): the CPU reference of its pieces, F32 or F64.
// Not yet part of the op set: the CUDA half and the `dsa` mixer come with issue 6; these are
// the oracle they will be checked against.
//
//   indexer scores  I[b,t,s] = Σ_j w[b,t,j] · ReLU(qI[b,t,j,:] · kI[b,s,:]) for s ≤ t, −inf above
//   top-k           per query the k best s ≤ t (ties: the more recent key), all of them when t+1 ≤ k
//   sparse attention softmax attention of every head over exactly the selected keys
//   indexer loss    KL(p_t ‖ softmax(I_t)) over the selected set, p_t = the main attention
//                   probabilities summed over heads and renormalised on that set
//
// Layouts (row-major): qI [B, L, HI, dI]; kI [B, L, dI]; w [B, L, HI]; I, p [B, L, L];
// idx I32 [B, L, k] (selected key positions in increasing order, −1 = empty slot);
// q [B, L, H, D]; k, v [B, L, Hkv, D]; lse [B, H, L].
#include <cstdint>

#include "core/tensor.h"

namespace lt2::cpu {

Tensor dsa_indexer_scores(const Tensor& qI, const Tensor& kI, const Tensor& w);
// Given dI [B, L, L] (entries above the diagonal ignored), writes dqI, dkI, dw.
void dsa_indexer_scores_backward(const Tensor& qI, const Tensor& kI, const Tensor& w, const Tensor& dI, Tensor& dqI,
                                 Tensor& dkI, Tensor& dw);

Tensor dsa_topk(const Tensor& I, int64_t k);

// o [B, L, H, D]; lse (if given) [B, H, L].
Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& idx, double scale, Tensor* lse);
void sparse_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                               const Tensor& idx, const Tensor& dout, double scale, Tensor& dq, Tensor& dk, Tensor& dv);

// The indexer's target p [B, L, L]: each head's softmax over the selected keys, averaged over
// heads (a distribution on the set; zero elsewhere). No gradient flows into it.
Tensor dsa_attention_target(const Tensor& q, const Tensor& k, const Tensor& idx, double scale);
// Mean over (b, t) of KL(p_t ‖ softmax(I_t restricted to the set)); writes dI (zero off the set).
double dsa_indexer_kl(const Tensor& I, const Tensor& p, const Tensor& idx, Tensor* dI);

}  // namespace lt2::cpu
