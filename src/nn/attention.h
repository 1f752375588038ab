#pragma once
// Softmax attention mixer (full or sliding window) with RoPE, GQA and the output gate
// o = W_o [ Attn(q, k, v) * sigmoid(x W_g^T) ] (SPEC §2), W_g zero-initialised.
#include "model/config.h"
#include "nn/mixer.h"

namespace lt2 {

class AttentionMixer : public Mixer {
 public:
  AttentionMixer(const ModelConfig& cfg, int layer, const std::string& prefix, DType dt);
  Tensor forward(const Tensor& x, int loop, std::unique_ptr<MixerCtx>* ctx) const override;
  Tensor backward(MixerCtx& ctx, const Tensor& dy) override;
  void collect(ParamList& out) override;
  double first_token_mass(const MixerCtx& ctx) const override;
  std::unique_ptr<LayerCache> make_cache(int loop, int64_t batch, int64_t context) const override;
  Tensor run(const Tensor& x, int loop, LayerCache& cache, const CacheRun& r) const override;

 private:
  struct Ctx;
  // o_proj( a * sigmoid(g_proj x) ); the gate pre-activation and gated output are returned for backward.
  Tensor output(const Tensor& x, const Tensor& a, Tensor* z, Tensor* gated) const;
  int64_t H_, Hkv_, D_;
  double theta_;
  bool gated_;
  std::vector<int64_t> window_per_loop_;  // 0 = full causal
  Param q_, k_, v_, o_, g_;
};

}  // namespace lt2
