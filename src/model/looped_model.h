#pragma once
// The looped model (SPEC §1): h(0) = Embed(x); T times: h~ = F_N..F_1(h), h = h~ + rho_t * h
// (or h = Norm(h~) with norm_between_loops); logits = LMHead(RMSNorm(h(T))).
// forward() with a context keeps one Block::Ctx per (loop, layer) call; backward() walks
// them in reverse, accumulating the shared weights' gradients over every loop.
#include <memory>
#include <vector>

#include "model/config.h"
#include "nn/block.h"

namespace lt2 {

class LoopedModel {
 public:
  struct Ctx {
    Tensor ids;
    std::vector<Tensor> h_in;               // h(tau-1) per loop
    std::vector<Tensor> h_tilde, rstd_loop;  // norm_between_loops: pre-norm state per loop
    std::vector<Block::Ctx> blocks;          // [loop * N + layer]
    Tensor h_final, rstd_final, xf;
    // Set before forward(): keep every block's activations even with recompute_loops
    // (diagnostics read them; training does not need them).
    bool keep_activations = false;
  };

  LoopedModel(const ModelConfig& cfg, DType dt = DType::F32);
  LoopedModel(const LoopedModel&) = delete;

  const ModelConfig& config() const { return cfg_; }
  DType dtype() const { return dtype_; }    // the master weights' dtype
  Device device() const { return device_; }
  // Moves every parameter (master + gradient) to `device`. compute = BF16 gives the matrices
  // (GEMM weights, embedding, head) BF16 copies that forward/backward use; refresh_compute()
  // rewrites them after the masters change (optimizer step, checkpoint load).
  void to(Device device, DType compute);
  void refresh_compute();
  // Fused input projections (FusedProj): LowPrecision (the default; Off when LT2_FUSED_PROJ=0)
  // packs them where compute copies exist (BF16 on the GPU); Always also in the master dtype
  // (the CPU tests run the fused path in F64 that way); Off runs every projection alone.
  enum class Fusion { Off, LowPrecision, Always };
  void set_fusion(Fusion f);
  // How many fused projections are packed now (each runs as one GEMM a pass).
  int64_t packed_projections() const;
  // All parameters, in a fixed order (checkpoint order).
  const ParamList& params() const { return params_; }
  Param* find(const std::string& name) const;
  const Block& block(int layer) const { return *blocks_.at(size_t(layer)); }
  void init(uint64_t seed);
  void zero_grad();
  int64_t num_params(bool include_embeddings = true) const;

  // ids I32 [B, L] -> logits [B, L, V].
  Tensor forward(const Tensor& ids, Ctx* ctx) const { return forward_impl(ids, ctx, nullptr, nullptr); }
  // Inference: one cache per (loop, layer), index loop * N + layer, for `batch` sequences of
  // up to `context` tokens. run() is forward() through them: ids [1, L] prefills batch slot
  // r.slot with a prompt; ids [B, 1] decodes one token per sequence at r.positions.
  using Caches = std::vector<std::unique_ptr<LayerCache>>;
  Caches make_caches(int64_t batch, int64_t context) const;
  Tensor run(const Tensor& ids, Caches& caches, const CacheRun& r) const { return forward_impl(ids, nullptr, &caches, &r); }

  // dlogits [B, L, V]; accumulates every parameter's gradient and frees ctx.
  void backward(Ctx& ctx, const Tensor& dlogits);

  // Training: forward, cross-entropy and backward with the LM head and the loss fused over
  // chunks of rows, so the [B*L, V] logits never exist whole. targets I32 [B*L] on the host
  // (-1 = ignored); dlogits are scaled by grad_scale / (scored rows of the whole batch).
  // stats [loss_chunks(B*L), 3] on the model's device receives each chunk's
  // {loss sum, scored rows, first bad row} (see ops::cross_entropy_stats). Accumulates gradients.
  void loss_backward(const Tensor& ids, const Tensor& targets, double grad_scale, Tensor& stats);
  int64_t loss_chunks(int64_t rows) const;
  int64_t loss_chunk_rows() const;  // rows per chunk (the last one may be shorter)

  void set_loss_chunk_rows(int64_t rows) { loss_chunk_rows_ = rows; }  // 0: about 256 Mi logits per chunk

  // DSA layers (SPEC §2): stage 1 (dense attention; the trainer then updates only the
  // indexers) or stage 2 (sparse, the default).
  void set_dsa_dense(bool dense);
  // Mean indexer loss over every DSA (layer, loop) backward since the last call; NaN if none.
  double take_indexer_kl();

 private:
  Tensor forward_impl(const Tensor& ids, Ctx* ctx, Caches* caches, const CacheRun* r) const;
  // The trunk: embedding, T loops, final norm -> xf [B, L, d] (the LM head's input).
  Tensor trunk(const Tensor& ids, Ctx* ctx, Caches* caches, const CacheRun* r) const;
  // Backward from dxf (the gradient at the LM head's input).
  void backward_trunk(Ctx& ctx, Tensor dh);
  // Whether training recomputes loop t's activations in the backward instead of keeping them
  // (keep_all: the caller asked for every activation, Ctx::keep_activations).
  bool recomputed(int64_t t, bool keep_all) const {
    return !keep_all && cfg_.recompute_loops && t < cfg_.num_loops - cfg_.recompute_keep_loops;
  }
  ModelConfig cfg_;
  DType dtype_;
  Device device_ = Device::CPU;
  DType compute_dtype_;
  int64_t loss_chunk_rows_ = 0;
  Param embed_, rho_, norm_, head_;
  std::vector<std::unique_ptr<Block>> blocks_;
  ParamList params_;
  std::vector<FusedProj*> fused_;  // the layers' fused projections (packed on the BF16 path)
  Fusion fusion_ = Fusion::LowPrecision;
  const Tensor& head_weight() const { return cfg_.tie_word_embeddings ? embed_.w() : head_.w(); }
};

}  // namespace lt2
