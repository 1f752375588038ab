#include "nn/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cpu/dsa.h"
#include "ops/ops.h"

namespace lt2 {

struct AttentionMixer::Ctx : MixerCtx {
  Tensor q, k, v, a, lse, z;  // not the gated output: backward() rebuilds it from a and z
  int64_t window = 0;
  // dsa: the key set (undefined in the dense stage: every key), I on it, the indexer's tensors.
  Tensor idx, Isel;
  DsaIndexer::Ctx indexer;
};

AttentionMixer::AttentionMixer(const ModelConfig& c, int layer, const std::string& p, DType dt)
    : H_(c.num_attention_heads), Hkv_(c.num_key_value_heads), D_(c.head_dim), theta_(c.rope_theta),
      scale_(1.0 / std::sqrt(double(D_))), gated_(c.output_gate != "none"), topk_(c.layer_types.at(layer).topk),
      q_(p + ".q_proj.weight", {H_ * D_, c.hidden_size}, dt, Init::Normal, true),
      k_(p + ".k_proj.weight", {Hkv_ * D_, c.hidden_size}, dt, Init::Normal, true),
      v_(p + ".v_proj.weight", {Hkv_ * D_, c.hidden_size}, dt, Init::Normal, true),
      o_(p + ".o_proj.weight", {c.hidden_size, H_ * D_}, dt, Init::Normal, true) {
  for (int t = 0; t < c.num_loops; ++t) window_per_loop_.push_back(c.attention_window(layer, t));
  if (gated_)
    g_ = Param(p + ".g_proj.weight", {c.output_gate == "head" ? H_ : H_ * D_, c.hidden_size}, dt, Init::Zeros, true);
  if (c.layer_types.at(layer).kind == MixerSpec::Dsa) indexer_ = std::make_unique<DsaIndexer>(c, p, dt);
}

void AttentionMixer::collect_fused(std::vector<FusedProj*>& out) {
  // One batched GEMM needs equal widths: no GQA, a per-channel gate (or none). DSA layers keep
  // their separate projections (the sparse backward writes a dense dv).
  const bool equal = Hkv_ == H_ && (!gated_ || g_.value.dim(0) == H_ * D_);
  if (!equal || indexer_) return;
  qkvg_.parts = {&q_, &k_, &v_};
  if (gated_) qkvg_.parts.push_back(&g_);
  out.push_back(&qkvg_);
}

void AttentionMixer::project_fused(const Tensor& x, Tensor& q, Tensor& k, Tensor& v, Tensor& z) const {
  const int64_t B = x.dim(0), L = x.dim(1);
  const Tensor y = ops::linear_split(x, qkvg_.w, qkvg_.n());  // [parts, B, L, H * D]
  // RoPE in place: the rotated q, k take the unrotated ones' slabs.
  q = y.select(0).reshape({B, L, H_, D_});
  k = y.select(1).reshape({B, L, Hkv_, D_});
  const ColBlock q_out{q.reshape({B * L, H_ * D_}), 0}, k_out{k.reshape({B * L, Hkv_ * D_}), 0};
  ops::rope(q, theta_, 0, &q_out);
  ops::rope(k, theta_, 0, &k_out);
  v = y.select(2).reshape({B, L, Hkv_, D_});
  if (gated_) z = y.select(3);
}

Tensor AttentionMixer::backward_fused(const Tensor& x, const Tensor& dq, const Tensor& dk, const Tensor& dY) {
  const int64_t B = x.dim(0), L = x.dim(1), N = H_ * D_;
  const Tensor dY2 = dY.reshape({B * L, qkvg_.n() * N});
  const ColBlock dq_out{dY2, 0}, dk_out{dY2, N};
  ops::rope_backward(dq, theta_, 0, &dq_out);
  ops::rope_backward(dk, theta_, 0, &dk_out);
  return ops::linear_backward(x, qkvg_.w, dY, qkvg_.grad);
}

void AttentionMixer::collect(ParamList& out) {
  out.insert(out.end(), {&q_, &k_, &v_, &o_});
  if (gated_) out.push_back(&g_);
  if (indexer_) indexer_->collect(out);
}

Tensor AttentionMixer::sparse(const Tensor& x, const Tensor& q, const Tensor& k, const Tensor& v, Ctx* ctx,
                              Tensor* lse) const {
  DsaIndexer::Ctx ic = indexer_->project(x);
  Tensor Isel;
  const Tensor idx = ops::dsa_topk(indexer_->scores(ic), topk_, &Isel);
  Tensor a = ops::sparse_attention(q, k, v, idx, scale_, lse);
  if (ctx) ctx->idx = idx, ctx->Isel = Isel, ctx->indexer = std::move(ic);
  return a;
}

Tensor AttentionMixer::forward(const Tensor& x, int loop, std::unique_ptr<MixerCtx>* ctx) const {
  const int64_t B = x.dim(0), L = x.dim(1);
  const int64_t window = window_per_loop_.at(loop);
  Tensor q, k, v, z;
  if (qkvg_.packed()) {
    project_fused(x, q, k, v, z);
  } else {
    q = ops::rope(ops::linear(x, q_.w()).reshape({B, L, H_, D_}), theta_, 0);
    k = ops::rope(ops::linear(x, k_.w()).reshape({B, L, Hkv_, D_}), theta_, 0);
    v = ops::linear(x, v_.w()).reshape({B, L, Hkv_, D_});
  }
  auto c = ctx ? std::make_unique<Ctx>() : nullptr;
  Tensor lse, a;
  if (indexer_ && !dsa_dense_) {
    a = sparse(x, q, k, v, c.get(), &lse);
  } else {
    a = ops::attention(q, k, v, window, scale_, &lse);
    // DSA stage 1: the indexer learns on every key (its scores on the dense causal set are I itself).
    if (indexer_ && c) c->indexer = indexer_->project(x), c->Isel = indexer_->scores(c->indexer);
  }
  Tensor y = output(x, a, &z);
  if (c) {
    c->q = q, c->k = k, c->v = v, c->a = a, c->lse = lse, c->z = z;
    c->window = window;
    *ctx = std::move(c);
  }
  return y;
}

double AttentionMixer::first_token_mass(const MixerCtx& base) const {
  const auto& ctx = static_cast<const Ctx&>(base);
  struct { Tensor q, k, lse, idx; } c{ctx.q.to(Device::CPU), ctx.k.to(Device::CPU), ctx.lse.to(Device::CPU),
                                      ctx.idx.defined() ? ctx.idx.to(Device::CPU) : Tensor()};  // read per element
  const int64_t window = ctx.window;
  // A sparse row keeps key 0 iff its first slot holds it (slots are in increasing key order).
  auto keeps_first = [&](int64_t b, int64_t t) {
    return !c.idx.defined() || c.idx.data<int32_t>()[(b * c.q.dim(1) + t) * c.idx.dim(2)] == 0;
  };
  const int64_t B = c.q.dim(0), L = c.q.dim(1), grp = H_ / Hkv_;
  double total = 0;
  int64_t n = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H_; ++h)
      for (int64_t t = 0; t < L && (window == 0 || t < window); ++t) {  // queries that see key 0
        ++n;
        if (!keeps_first(b, t)) continue;
        double dot = 0;
        for (int64_t d = 0; d < D_; ++d)
          dot += c.q.item(((b * L + t) * H_ + h) * D_ + d) * c.k.item(((b * L) * Hkv_ + h / grp) * D_ + d);
        total += std::exp(dot * scale_ - c.lse.item((b * H_ + h) * L + t));  // p(t -> 0) = exp(s_t0 - lse_t)
      }
  return n ? total / double(n) : NAN;
}

double AttentionMixer::topk_mass(const MixerCtx& base) const {
  const auto& ctx = static_cast<const Ctx&>(base);
  if (!indexer_ || !ctx.Isel.defined()) return NAN;
  // The dense distribution from the same q, k, and the key set the indexer picks (in the dense
  // stage Isel is the full score matrix, so the set is chosen here).
  const Tensor q = ctx.q.to(Device::CPU, DType::F32), k = ctx.k.to(Device::CPU, DType::F32);
  const Tensor idx = ctx.idx.defined() ? ctx.idx.to(Device::CPU)
                                       : cpu::dsa_topk(ctx.Isel.to(Device::CPU, DType::F32), topk_, nullptr);
  const Tensor p = cpu::dsa_attention_target(q, k, Tensor(), scale_);
  const int64_t B = q.dim(0), L = q.dim(1), K = idx.dim(2);
  const float* pp = p.data<float>();
  const int32_t* ix = idx.data<int32_t>();
  double total = 0;
  for (int64_t r = 0; r < B * L; ++r)
    for (int64_t i = 0; i < K && ix[r * K + i] >= 0; ++i) total += pp[r * L + ix[r * K + i]];
  return total / double(B * L);
}

Tensor AttentionMixer::output(const Tensor& x, const Tensor& a, Tensor* z) const {
  Tensor gated = a;
  if (gated_) {
    if (!z->defined()) *z = ops::linear(x, g_.w());
    gated = ops::sigmoid_gate(a, *z);
  }
  return ops::linear(gated.reshape({x.dim(0), x.dim(1), H_ * D_}), o_.w());
}

std::unique_ptr<LayerCache> AttentionMixer::make_cache(int loop, int64_t batch, int64_t context) const {
  auto c = std::make_unique<KvCache>();
  const int64_t w = window_per_loop_.at(loop);
  c->window = w > 0 && w < context ? w : 0;  // a window wider than the context is a full cache
  const int64_t rows = c->window > 0 ? c->window : context;
  c->k = Tensor::zeros({batch, rows, Hkv_, D_}, q_.w().dtype(), q_.value.device());
  c->v = Tensor::zeros({batch, rows, Hkv_, D_}, q_.w().dtype(), q_.value.device());
  if (indexer_) c->kI = Tensor::zeros({batch, rows, indexer_->head_dim()}, q_.w().dtype(), q_.value.device());
  return c;
}

// Copies row `src_row` of x [B, L, Hkv, D] (batch `src_b`) into cache row `dst_row` of batch `dst_b`.
static void put_row(Tensor& cache, int64_t dst_b, int64_t dst_row, const Tensor& x, int64_t src_b, int64_t src_row) {
  cache.select(dst_b).select(dst_row).copy_from(x.select(src_b).select(src_row));
}

// Copies positions [p0, L) of a prompt's x [1, L, Hkv, D] into batch slot `slot` of the cache,
// as at most two contiguous blocks (a ring wraps once), not one copy per row.
static void put_rows(Tensor& cache, const KvCache& c, int64_t slot, const Tensor& x, int64_t p0) {
  const int64_t L = x.dim(1);
  for (int64_t p = p0; p < L;) {
    const int64_t row = c.row_of(p), n = std::min(L - p, c.rows() - row);
    cache.select(slot).narrow(row, n).copy_from(x.select(0).narrow(p, n));
    p += n;
  }
}

Tensor AttentionMixer::run(const Tensor& x, int loop, LayerCache& base, const CacheRun& r) const {
  auto& c = static_cast<KvCache&>(base);
  const int64_t B = x.dim(0), L = x.dim(1), window = window_per_loop_.at(loop);
  Tensor q = ops::linear(x, q_.w()).reshape({B, L, H_, D_});
  Tensor k = ops::linear(x, k_.w()).reshape({B, L, Hkv_, D_});
  Tensor v = ops::linear(x, v_.w()).reshape({B, L, Hkv_, D_});
  Tensor a;
  if (r.mode == CacheRun::Prefill) {
    LT2_CHECK(B == 1, "attention prefill takes one prompt at a time");
    LT2_CHECK(c.window > 0 || L <= c.rows(), "prompt of ", L, " tokens exceeds the cache's context limit ", c.rows());
    q = ops::rope(q, theta_, 0);
    k = ops::rope(k, theta_, 0);
    const int64_t p0 = c.window > 0 ? std::max<int64_t>(0, L - c.window) : 0;  // a ring keeps the last w
    put_rows(c.k, c, r.slot, k, p0);
    put_rows(c.v, c, r.slot, v, p0);
    if (indexer_) {
      Ctx keep;  // the indexer keys go to the cache too
      a = sparse(x, q, k, v, &keep, nullptr);
      put_rows(c.kI, c, r.slot, keep.indexer.kI, 0);
    } else {
      a = ops::attention(q, k, v, window, scale_, nullptr);
    }
  } else {
    const std::vector<int64_t>& pos = *r.positions;
    LT2_CHECK(L == 1 && int64_t(pos.size()) == B, "attention decode takes one token per sequence");
    const DsaIndexer::Ctx ic = indexer_ ? indexer_->project(x) : DsaIndexer::Ctx{};
    for (int64_t b = 0; b < B; ++b) {
      LT2_CHECK(c.window > 0 || pos[b] < c.rows(), "sequence ", b, " reached the context limit ", c.rows());
      // RoPE at each sequence's own position.
      Tensor qb = ops::rope(q.select(b).reshape({1, 1, H_, D_}), theta_, pos[b]);
      Tensor kb = ops::rope(k.select(b).reshape({1, 1, Hkv_, D_}), theta_, pos[b]);
      q.select(b).copy_from(qb.reshape({1, H_, D_}));
      put_row(c.k, b, c.row_of(pos[b]), kb, 0, 0);
      put_row(c.v, b, c.row_of(pos[b]), v, b, 0);
      if (indexer_) put_row(c.kI, b, pos[b], ic.kI, b, 0);
    }
    a = indexer_ ? ops::dsa_decode(q, c.k, c.v, ic.qI, ic.w, c.kI, r.position_ids, topk_, indexer_->w_scale(), scale_)
                 : ops::attention_decode(q, c.k, c.v, r.position_ids, window, c.window > 0, scale_);
  }
  Tensor z;
  return output(x, a, &z);
}

Tensor AttentionMixer::backward(MixerCtx& base, const Tensor& x, const Tensor& dy) {
  auto& c = static_cast<Ctx&>(base);
  const int64_t B = x.dim(0), L = x.dim(1);
  // o_proj's input (the gated output) is not kept: the gate's backward pass rebuilds it for o_proj's dW.
  Tensor dgated = ops::linear_backward_dx(o_.w(), dy).reshape(c.a.shape());
  // Fused: dq, dk, dv, dz land side by side in dY [B, L, parts * H * D] (blocks in qkvg_'s order).
  const bool fused = qkvg_.packed();
  const int64_t N = H_ * D_;
  const Tensor dY = fused ? Tensor::empty({B, L, qkvg_.n() * N}, dgated.dtype(), dgated.device()) : Tensor();
  const ColBlock dv_out{dY, 2 * N}, dz_out{dY, 3 * N};
  Tensor da = dgated, dx, gated = c.a;
  if (gated_) {
    Tensor dz;
    ops::sigmoid_gate_backward(c.a, c.z, dgated, da, dz, &gated, fused ? &dz_out : nullptr);
    if (!fused) dx = ops::linear_backward(x, g_.w(), dz, g_.grad);
  }
  ops::linear_backward_dw(gated.reshape({B, L, H_ * D_}), dy, o_.grad);
  Tensor dq, dk, dv;
  if (c.idx.defined())
    ops::sparse_attention_backward(c.q, c.k, c.v, c.a, c.lse, c.idx, da, scale_, dq, dk, dv);
  else
    ops::attention_backward(c.q, c.k, c.v, c.a, c.lse, da, c.window, scale_, dq, dk, dv, fused ? &dv_out : nullptr);
  if (indexer_) indexer_->learn(x, c.indexer, c.Isel, c.idx, c.q, c.k, c.lse, scale_);
  if (fused) return backward_fused(x, dq, dk, dY);
  dq = ops::rope_backward(dq, theta_, 0).reshape({B, L, H_ * D_});
  dk = ops::rope_backward(dk, theta_, 0).reshape({B, L, Hkv_ * D_});
  dx = ops::linear_backward(x, q_.w(), dq, q_.grad, dx.defined() ? &dx : nullptr);
  ops::linear_backward(x, k_.w(), dk, k_.grad, &dx);
  ops::linear_backward(x, v_.w(), dv.reshape({B, L, Hkv_ * D_}), v_.grad, &dx);
  return dx;
}

}  // namespace lt2
