#pragma once
// The lightning indexer of a dsa(k) layer (SPEC §2): scores every earlier key,
//   I[t, s] = sum_j w[t, j] relu(qI[t, j] . kI[s]),  qI = x W_qI^T, kI = RMSNorm(x W_kI^T),
//   w = x W_w^T / sqrt(H_I),
// and learns only from its own loss KL(p_t || softmax(I_t)) against the main attention's
// distribution p_t. Its input x is detached from the main graph: no gradient of that loss
// reaches x or any other weight, and the LM loss never reaches the indexer.
#include "model/config.h"
#include "nn/param.h"

namespace lt2 {

class DsaIndexer {
 public:
  // What learn() needs from the forward.
  struct Ctx {
    Tensor qI, kp, kI, rstd, w;  // kp: x W_kI^T before its norm
  };
  DsaIndexer(const ModelConfig& cfg, const std::string& prefix, DType dt);
  void collect(ParamList& out);
  // qI [B, L, HI, dI], kI [B, L, dI], w [B, L, HI] of x [B, L, d].
  Ctx project(const Tensor& x) const;
  // Scores I [B, L, L] (-inf above the diagonal).
  Tensor scores(const Ctx& c) const;
  // The indexer's loss on the key set idx (undefined: every key s <= t) with Isel = I at that
  // set, against the main attention (q, k and its lse over the same set). Accumulates the
  // indexer's gradients and adds the loss to the running sum that take_kl() reports.
  void learn(const Tensor& x, const Ctx& c, const Tensor& Isel, const Tensor& idx, const Tensor& q, const Tensor& k,
             const Tensor& lse, double attn_scale);
  // Sum of the losses since the last call and how many there were (reads the GPU once).
  void take_kl(double& sum, int64_t& terms);
  // Scale of the gradients learn() accumulates: a training step of A micro-batches uses 1/A,
  // like the LM loss, so the indexer's gradient is that of the step's mean KL.
  void set_grad_scale(double s) { grad_scale_ = s; }
  int64_t heads() const { return HI_; }
  int64_t head_dim() const { return dI_; }
  double w_scale() const { return w_scale_; }

 private:
  int64_t HI_, dI_;
  double eps_, w_scale_, grad_scale_ = 1.0;
  Param q_, k_, k_norm_, w_;
  Tensor kl_sum_;  // [1] in the master weights' dtype, on their device
  int64_t kl_terms_ = 0;
};

// True for the parameters of a lightning indexer (the only ones that learn in DSA's stage 1).
bool is_dsa_indexer_param(const std::string& name);

}  // namespace lt2
