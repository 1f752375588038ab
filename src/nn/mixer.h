#pragma once
// A sequence mixer (softmax attention, GDN, ...). forward() takes the block's normed
// input [B, L, d]; when `ctx` is given it saves what backward() needs there, except that input:
// the block rebuilds it (one norm pass) and hands it to backward(), so a training context does
// not hold a d-wide tensor per layer twice. backward() returns dx and accumulates its
// parameters' gradients.
#include <cmath>
#include <memory>

#include "nn/cache.h"
#include "nn/param.h"

namespace lt2 {

struct ModelConfig;

struct MixerCtx {
  virtual ~MixerCtx() = default;
};

class Mixer {
 public:
  virtual ~Mixer() = default;
  virtual Tensor forward(const Tensor& x, int loop, std::unique_ptr<MixerCtx>* ctx) const = 0;
  virtual Tensor backward(MixerCtx& ctx, const Tensor& x, const Tensor& dy) = 0;
  virtual void collect(ParamList& out) = 0;
  // Projections this mixer runs as one GEMM when the model packs them (see FusedProj).
  virtual void collect_fused(std::vector<FusedProj*>& /*out*/) {}
  // Diagnostics from a forward context: mean attention probability on the first token over
  // every (batch, head, query) that can see it; NaN for mixers without softmax attention.
  virtual double first_token_mass(const MixerCtx&) const { return NAN; }
  // DSA only (NaN otherwise): the share of the dense attention distribution (averaged over
  // heads) that falls on the indexer's top-k keys, mean over (batch, query).
  virtual double topk_mass(const MixerCtx&) const { return NAN; }
  // DSA only: stage 1 (dense attention, only the indexer learns) or stage 2 (sparse).
  virtual void set_dsa_dense(bool) {}
  // DSA only: the scale of the indexer's gradients (see DsaIndexer::set_grad_scale).
  virtual void set_indexer_grad_scale(double) {}
  // DSA only: adds the indexer losses since the last call and their count.
  virtual void take_indexer_kl(double& /*sum*/, int64_t& /*terms*/) {}

  // Inference. make_cache allocates this mixer's state for loop `loop`. run() is forward()
  // that also reads / writes the cache: Prefill takes x [1, L, d] (a whole prompt, positions
  // 0..L-1) into batch slot run.slot; Decode takes x [B, 1, d], one token per sequence.
  virtual std::unique_ptr<LayerCache> make_cache(int loop, int64_t batch, int64_t context) const = 0;
  virtual Tensor run(const Tensor& x, int loop, LayerCache& cache, const CacheRun& r) const = 0;
};

// Builds the mixer of layer `layer` (names under `prefix`, e.g. "model.layers.3.attn").
std::unique_ptr<Mixer> make_mixer(const ModelConfig& cfg, int layer, const std::string& prefix, DType dt);

}  // namespace lt2
