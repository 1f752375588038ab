#pragma once
// Pre-norm block: h' = h + [Norm](Mixer(RMSNorm(h))); F(h) = h' + [Norm](FFN(RMSNorm(h'))).
// The bracketed "sandwich" norms exist only when the config asks for them (Ouro).
#include <memory>

#include "model/config.h"
#include "nn/ffn.h"
#include "nn/mixer.h"

namespace lt2 {

class Block {
 public:
  struct Ctx {
    Tensor h, rstd1, hmid, rstd3, mix, rstd2, ffn_out, rstd4;  // the last four: sandwich norms only
    std::unique_ptr<MixerCtx> mixer;
    SwiGluFfn::Ctx ffn;
  };
  Block(const ModelConfig& cfg, int layer, DType dt);
  Tensor forward(const Tensor& h, int loop, Ctx* ctx) const { return forward_impl(h, loop, ctx, nullptr, nullptr); }
  // Inference through the mixer's cache (see Mixer::run).
  Tensor run(const Tensor& h, int loop, LayerCache& cache, const CacheRun& r) const {
    return forward_impl(h, loop, nullptr, &cache, &r);
  }
  std::unique_ptr<LayerCache> make_cache(int loop, int64_t batch, int64_t context) const {
    return mixer_->make_cache(loop, batch, context);
  }
  Tensor backward(Ctx& ctx, const Tensor& dout);  // returns dh, frees ctx
  void collect(ParamList& out);
  void collect_fused(std::vector<FusedProj*>& out);
  double first_token_mass(const Ctx& c) const { return mixer_->first_token_mass(*c.mixer); }
  Mixer& mixer() { return *mixer_; }
  const Mixer& mixer() const { return *mixer_; }

 private:
  Tensor forward_impl(const Tensor& h, int loop, Ctx* ctx, LayerCache* cache, const CacheRun* r) const;
  double eps_;
  bool sandwich_;
  Param norm1_, norm2_, norm3_, norm4_;
  std::unique_ptr<Mixer> mixer_;
  SwiGluFfn ffn_;
};

}  // namespace lt2
