#include "model/looped_model.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "ops/ops.h"

namespace lt2 {

// LT2_FUSED_PROJ=0 runs fused projections part by part (to time the fusion against the unfused
// code in one binary).
static LoopedModel::Fusion fusion_from_env() {
  const char* s = std::getenv("LT2_FUSED_PROJ");
  return s && std::string(s) == "0" ? LoopedModel::Fusion::Off : LoopedModel::Fusion::LowPrecision;
}

LoopedModel::LoopedModel(const ModelConfig& cfg, DType dt)
    : cfg_(cfg), dtype_(dt), compute_dtype_(dt),
      embed_("model.embed_tokens.weight", {cfg.vocab_size, cfg.hidden_size}, dt, Init::Normal, true),
      norm_("model.norm.weight", {cfg.hidden_size}, dt, Init::Ones, false) {
  cfg_.validate("model config");
  fusion_ = fusion_from_env();
  params_.push_back(&embed_);
  for (int l = 0; l < cfg_.num_hidden_layers; ++l) {
    blocks_.push_back(std::make_unique<Block>(cfg_, l, dt));
    blocks_.back()->collect(params_);
    blocks_.back()->collect_fused(fused_);
  }
  if (!cfg_.norm_between_loops) {
    rho_ = Param("model.loop_residual", {cfg_.num_loops, cfg_.hidden_size}, dt, Init::Zeros, false);
    params_.push_back(&rho_);
  }
  params_.push_back(&norm_);
  if (!cfg_.tie_word_embeddings) {
    head_ = Param("lm_head.weight", {cfg_.vocab_size, cfg_.hidden_size}, dt, Init::Normal, true);
    params_.push_back(&head_);
  }
}

Param* LoopedModel::find(const std::string& name) const {
  for (Param* p : params_)
    if (p->name == name) return p;
  return nullptr;
}

void LoopedModel::init(uint64_t seed) {
  init_params(params_, seed, cfg_.initializer_range);
  refresh_compute();
}

// Matrices are what the GEMMs (and the embedding lookup) read; norms, rho, A_log, dt_bias
// and conv taps stay F32, which every CUDA kernel accepts.
static bool has_compute_copy(const Param& p) { return p.value.ndim() == 2 && p.decay; }

void LoopedModel::to(Device device, DType compute) {
  LT2_CHECK(compute == dtype_ || (device == Device::CUDA && compute == DType::BF16 && dtype_ == DType::F32),
            "unsupported precision: ", dtype_name(dtype_), " weights with ", dtype_name(compute), " compute on ",
            device_name(device));
  device_ = device;
  compute_dtype_ = compute;
  for (FusedProj* f : fused_) f->unpack();  // the move below gives each part its own tensors
  for (Param* p : params_) {
    if (p->value.device() != device) p->value = p->value.to(device), p->grad = p->grad.to(device);
    p->compute = Tensor();
  }
  refresh_compute();
}

void LoopedModel::set_fusion(Fusion f) {
  fusion_ = f;
  for (FusedProj* fp : fused_) fp->unpack();
  refresh_compute();
}

int64_t LoopedModel::packed_projections() const {
  return std::count_if(fused_.begin(), fused_.end(), [](const FusedProj* f) { return f->packed(); });
}

void LoopedModel::refresh_compute() {
  for (FusedProj* f : fused_) {
    const bool copies = compute_dtype_ != dtype_ &&
                        std::all_of(f->parts.begin(), f->parts.end(), [](Param* p) { return has_compute_copy(*p); });
    if (fusion_ == Fusion::Always || (copies && fusion_ == Fusion::LowPrecision)) f->pack(compute_dtype_);
  }
  for (Param* p : params_) {
    // A packed part has a compute copy (a view of its pack) whatever the dtypes.
    if (!p->compute.defined() && (compute_dtype_ == dtype_ || !has_compute_copy(*p))) continue;
    if (!p->compute.defined()) p->compute = Tensor::empty(p->value.shape(), compute_dtype_, device_);
    p->compute.copy_from(p->value);
  }
}

void LoopedModel::zero_grad() {
  for (Param* p : params_) p->grad.zero();
}

int64_t LoopedModel::num_params(bool include_embeddings) const {
  int64_t n = 0;
  for (const Param* p : params_)
    if (include_embeddings || (p != &embed_ && p != &head_)) n += p->value.numel();
  return n;
}

LoopedModel::Caches LoopedModel::make_caches(int64_t batch, int64_t context) const {
  LT2_CHECK(batch >= 1 && context >= 1, "caches need batch >= 1 and context >= 1");
  LT2_CHECK(context <= cfg_.max_position_embeddings, "context ", context, " exceeds the model's context limit ",
            cfg_.max_position_embeddings, " (max_position_embeddings)");
  Caches c;
  for (int t = 0; t < cfg_.num_loops; ++t)
    for (int l = 0; l < cfg_.num_hidden_layers; ++l) c.push_back(blocks_[l]->make_cache(t, batch, context));
  return c;
}

Tensor LoopedModel::forward_impl(const Tensor& ids, Ctx* ctx, Caches* caches, const CacheRun* r) const {
  const Tensor xf = trunk(ids, ctx, caches, r);
  const int64_t B = ids.dim(0), L = ids.dim(1);
  if (r && r->mode == CacheRun::Prefill && !r->all_logits)  // a prompt needs only its last prediction
    return ops::linear(xf.reshape({L, cfg_.hidden_size}).select(L - 1).reshape({1, 1, cfg_.hidden_size}).clone(),
                       head_weight());
  return ops::linear(xf, head_weight()).reshape({B, L, cfg_.vocab_size});
}

Tensor LoopedModel::trunk(const Tensor& ids, Ctx* ctx, Caches* caches, const CacheRun* r) const {
  LT2_CHECK(ids.dtype() == DType::I32 && ids.ndim() == 2, "model input must be I32 token ids [B, L], got ",
            dtype_name(ids.dtype()), " ", shape_str(ids.shape()));
  const int64_t L = ids.dim(1), T = cfg_.num_loops, N = cfg_.num_hidden_layers;
  LT2_CHECK(L <= cfg_.max_position_embeddings, "sequence length ", L, " exceeds the context limit ",
            cfg_.max_position_embeddings, " (max_position_embeddings)");
  const bool keep_all = ctx && ctx->keep_activations;
  if (ctx) {
    *ctx = Ctx{};
    ctx->keep_activations = keep_all;
    ctx->blocks.resize(T * N);
  }
  // Host ids are checked here, before the upload, so the GPU lookup need not read its own check
  // back (that would stall the step on the host).
  const bool host_ids = ids.device() != device_;
  if (host_ids) check_token_ids(ids, cfg_.vocab_size);
  const Tensor ids_dev = host_ids ? ids.to(device_) : ids;
  if (ctx) ctx->ids = ids_dev;
  Tensor h = ops::embedding(ids_dev, embed_.w(), host_ids);
  // Decode: every attention layer of every loop reads the positions from the device; upload them once.
  CacheRun run = r ? *r : CacheRun{};
  if (r && r->mode == CacheRun::Decode && !run.position_ids.defined()) {
    Tensor pos = Tensor::empty({int64_t(r->positions->size())}, DType::I32);
    for (size_t b = 0; b < r->positions->size(); ++b) pos.data<int32_t>()[b] = int32_t((*r->positions)[b]);
    run.position_ids = device_ == Device::CUDA ? pos.to(device_) : pos;
  }
  for (int t = 0; t < T; ++t) {
    Tensor x = h;
    // With recompute_loops the blocks keep no activations now (unless asked to, or the loop is one
    // of the last recompute_keep_loops); backward() reruns them.
    const bool keep = ctx && !recomputed(t, keep_all);
    for (int l = 0; l < N; ++l)
      x = caches ? blocks_[l]->run(x, t, *(*caches)[t * N + l], run)
                 : blocks_[l]->forward(x, t, keep ? &ctx->blocks[t * N + l] : nullptr);
    if (ctx) ctx->h_in.push_back(h);
    if (cfg_.norm_between_loops) {
      Tensor rstd;
      Tensor hn = ops::rmsnorm(x, norm_.w(), cfg_.rms_norm_eps, &rstd);
      if (ctx) ctx->h_tilde.push_back(x), ctx->rstd_loop.push_back(rstd);
      h = hn;
    } else {
      h = ops::add_scaled_channels(x, rho_.w().select(t), h);
    }
  }
  Tensor xf = h;
  if (!cfg_.norm_between_loops) {
    Tensor rstd;
    xf = ops::rmsnorm(h, norm_.w(), cfg_.rms_norm_eps, &rstd);
    if (ctx) ctx->rstd_final = rstd;
  }
  if (ctx) ctx->h_final = h, ctx->xf = xf;
  return xf;
}

void LoopedModel::backward(Ctx& c, const Tensor& dlogits) {
  Tensor& dhead = cfg_.tie_word_embeddings ? embed_.grad : head_.grad;
  backward_trunk(c, ops::linear_backward(c.xf, head_weight(), dlogits, dhead));
}

// Rows per loss chunk: about 256 Mi logits entries, whatever the vocabulary.
int64_t LoopedModel::loss_chunk_rows() const {
  return loss_chunk_rows_ > 0 ? loss_chunk_rows_ : std::max<int64_t>(64, (int64_t(1) << 28) / cfg_.vocab_size);
}
int64_t LoopedModel::loss_chunks(int64_t rows) const { return (rows + loss_chunk_rows() - 1) / loss_chunk_rows(); }

void LoopedModel::loss_backward(const Tensor& ids, const Tensor& targets, double grad_scale, Tensor& stats) {
  LT2_CHECK(!targets.on_cuda() && targets.dtype() == DType::I32 && targets.numel() == ids.numel(),
            "loss_backward: targets must be host I32 [", ids.numel(), "]");
  const int64_t rows = ids.numel(), d = cfg_.hidden_size, chunk = loss_chunk_rows();
  check_shape(stats, {loss_chunks(rows), 3}, "loss_backward stats");
  const int32_t* tg = targets.data<int32_t>();
  const int64_t scored = std::count_if(tg, tg + rows, [](int32_t t) { return t >= 0; });
  // Uploaded before the forward: an upload waits for the stream, and here that is still idle
  // (after the forward, the GPU would drain and then wait for the host's next kernels).
  const Tensor targets_dev = targets.reshape({rows}).to(device_);
  Ctx ctx;
  const Tensor xf = trunk(ids, &ctx, nullptr, nullptr).reshape({rows, d});
  Tensor dxf = Tensor::empty_like(xf);
  Tensor& dhead = cfg_.tie_word_embeddings ? embed_.grad : head_.grad;
  for (int64_t c = 0, r0 = 0; r0 < rows; ++c, r0 += chunk) {
    const int64_t n = std::min(chunk, rows - r0);
    const int64_t chunk_scored = std::count_if(tg + r0, tg + r0 + n, [](int32_t t) { return t >= 0; });
    const Tensor xc = xf.narrow(r0, n);
    Tensor dlogits, chunk_stats = stats.select(c);
    // cross_entropy_stats divides by the chunk's scored rows; the batch mean wants all of them.
    const double scale = scored > 0 ? grad_scale * double(chunk_scored) / double(scored) : 0.0;
    ops::cross_entropy_stats(ops::linear(xc, head_weight()), targets_dev.narrow(r0, n), &dlogits, scale, chunk_stats);
    dxf.narrow(r0, n).copy_from(ops::linear_backward(xc, head_weight(), dlogits, dhead));
  }
  // The indexers learn from their own loss, averaged over the step's micro-batches like the LM loss.
  for (auto& b : blocks_) b->mixer().set_indexer_grad_scale(grad_scale);
  backward_trunk(ctx, dxf.reshape({ids.dim(0), ids.dim(1), d}));
  for (auto& b : blocks_) b->mixer().set_indexer_grad_scale(1.0);
}

void LoopedModel::backward_trunk(Ctx& c, Tensor dh) {
  const int64_t T = cfg_.num_loops, N = cfg_.num_hidden_layers;
  if (!cfg_.norm_between_loops) dh = ops::rmsnorm_backward(c.h_final, norm_.w(), c.rstd_final, dh, norm_.grad);
  for (int t = int(T) - 1; t >= 0; --t) {
    Tensor dx;  // gradient w.r.t. the blocks' output h~ of this loop
    if (cfg_.norm_between_loops) {
      dx = ops::rmsnorm_backward(c.h_tilde[t], norm_.w(), c.rstd_loop[t], dh, norm_.grad);
      dh = Tensor();
    } else {
      // h = h~ + rho_t * h_prev: drho_t += sum_rows dh * h_prev; dh_prev = rho_t * dh (+ blocks' path)
      Tensor drho = rho_.grad.select(t);
      ops::add_scaled_channels_backward_rho(dh, c.h_in[t], drho);
      Tensor dprev = Tensor::zeros_like(dh);
      dx = dh;
      dh = ops::add_scaled_channels(dprev, rho_.w().select(t), dx);
    }
    if (recomputed(t, c.keep_activations)) {  // rerun this loop's blocks from its saved input, keeping activations
      Tensor x = c.h_in[t];
      for (int l = 0; l < N; ++l) x = blocks_[l]->forward(x, t, &c.blocks[t * N + l]);
    }
    for (int l = int(N) - 1; l >= 0; --l) dx = blocks_[l]->backward(c.blocks[t * N + l], dx);
    if (dh.defined()) dh.add_(dx);
    else dh = dx;
  }
  ops::embedding_backward(c.ids, dh, embed_.grad);
  c = Ctx{};
}

void LoopedModel::set_dsa_dense(bool dense) {
  for (auto& b : blocks_) b->mixer().set_dsa_dense(dense);
}

double LoopedModel::take_indexer_kl() {
  double sum = 0;
  int64_t terms = 0;
  for (auto& b : blocks_) b->mixer().take_indexer_kl(sum, terms);
  return terms ? sum / double(terms) : NAN;
}

}  // namespace lt2
