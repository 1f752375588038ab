#pragma once
// Softmax attention mixer (full, sliding window or DeepSeek sparse attention) with RoPE, GQA
// and the output gate o = W_o [ Attn(q, k, v) * sigmoid(x W_g^T) ] (SPEC §2), W_g
// zero-initialised. dsa(k) adds a lightning indexer that picks each query's k keys; in its
// dense stage (set_dsa_dense) the layer attends densely while the indexer learns.
#include "model/config.h"
#include "nn/dsa_indexer.h"
#include "nn/mixer.h"

namespace lt2 {

class AttentionMixer : public Mixer {
 public:
  AttentionMixer(const ModelConfig& cfg, int layer, const std::string& prefix, DType dt);
  Tensor forward(const Tensor& x, int loop, std::unique_ptr<MixerCtx>* ctx) const override;
  Tensor backward(MixerCtx& ctx, const Tensor& x, const Tensor& dy) override;
  void collect(ParamList& out) override;
  void collect_fused(std::vector<FusedProj*>& out) override;
  double first_token_mass(const MixerCtx& ctx) const override;
  double topk_mass(const MixerCtx& ctx) const override;
  std::unique_ptr<LayerCache> make_cache(int loop, int64_t batch, int64_t context) const override;
  Tensor run(const Tensor& x, int loop, LayerCache& cache, const CacheRun& r) const override;
  void set_dsa_dense(bool dense) override { dsa_dense_ = dense; }
  void set_indexer_grad_scale(double s) override {
    if (indexer_) indexer_->set_grad_scale(s);
  }
  void take_indexer_kl(double& sum, int64_t& terms) override {
    if (indexer_) indexer_->take_kl(sum, terms);
  }

 private:
  struct Ctx;
  // DSA's sparse attention: the indexer's top-k keys and the attention over them.
  Tensor sparse(const Tensor& x, const Tensor& q, const Tensor& k, const Tensor& v, Ctx* ctx, Tensor* lse) const;
  // o_proj( a * sigmoid(g_proj x) ); the gate pre-activation z = g_proj x is returned for backward
  // (or, already defined, taken as it is: the fused projection computed it).
  Tensor output(const Tensor& x, const Tensor& a, Tensor* z) const;
  // q, k (RoPE applied), v and z = g_proj x from one GEMM (qkvg_ packed).
  void project_fused(const Tensor& x, Tensor& q, Tensor& k, Tensor& v, Tensor& z) const;
  // The backward of project_fused given dq, dk (before RoPE's backward) and the packed gradient
  // dY whose v and g blocks are already written; returns dx.
  Tensor backward_fused(const Tensor& x, const Tensor& dq, const Tensor& dk, const Tensor& dY);
  int64_t H_, Hkv_, D_;
  double theta_, scale_;
  bool gated_;
  int64_t topk_ = 0;         // dsa(k): keys per query; 0 for full / window
  bool dsa_dense_ = false;   // DSA stage 1: dense attention while the indexer learns
  std::unique_ptr<DsaIndexer> indexer_;
  std::vector<int64_t> window_per_loop_;  // 0 = full causal
  Param q_, k_, v_, o_, g_;
  FusedProj qkvg_;  // q, k, v (and g): registered only when all are equally wide, without DSA
};

}  // namespace lt2
