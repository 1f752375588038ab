#include "nn/block.h"

#include "ops/ops.h"

namespace lt2 {

static std::string layer_prefix(int layer) { return "model.layers." + std::to_string(layer); }

Block::Block(const ModelConfig& c, int layer, DType dt)
    : eps_(c.rms_norm_eps), sandwich_(c.sandwich_norm),
      norm1_(layer_prefix(layer) + ".input_layernorm.weight", {c.hidden_size}, dt, Init::Ones, false),
      norm3_(layer_prefix(layer) + ".post_attention_layernorm.weight", {c.hidden_size}, dt, Init::Ones, false),
      mixer_(make_mixer(c, layer, layer_prefix(layer) + ".attn", dt)),
      ffn_(layer_prefix(layer) + ".mlp", c.hidden_size, c.intermediate_size, dt) {
  if (sandwich_) {  // Ouro's names: input_layernorm_2 on the mixer output, post_attention_layernorm_2 on the FFN's
    norm2_ = Param(layer_prefix(layer) + ".input_layernorm_2.weight", {c.hidden_size}, dt, Init::Ones, false);
    norm4_ = Param(layer_prefix(layer) + ".post_attention_layernorm_2.weight", {c.hidden_size}, dt, Init::Ones, false);
  }
}

void Block::collect_fused(std::vector<FusedProj*>& out) {
  mixer_->collect_fused(out);
  ffn_.collect_fused(out);
}

void Block::collect(ParamList& out) {
  out.push_back(&norm1_);
  mixer_->collect(out);
  if (sandwich_) out.push_back(&norm2_);
  out.push_back(&norm3_);
  ffn_.collect(out);
  if (sandwich_) out.push_back(&norm4_);
}

Tensor Block::forward_impl(const Tensor& h, int loop, Ctx* ctx, LayerCache* cache, const CacheRun* r) const {
  Tensor rstd1, rstd2, rstd3, rstd4;
  Tensor xn1 = ops::rmsnorm(h, norm1_.w(), eps_, &rstd1);
  Tensor mix = cache ? mixer_->run(xn1, loop, *cache, *r) : mixer_->forward(xn1, loop, ctx ? &ctx->mixer : nullptr);
  Tensor mix_out = sandwich_ ? ops::rmsnorm(mix, norm2_.w(), eps_, &rstd2) : mix;
  Tensor hmid;  // h + mix_out, the residual stream between mixer and FFN
  Tensor xn3 = ops::add_rmsnorm(h, mix_out, norm3_.w(), eps_, hmid, &rstd3);
  Tensor f = ffn_.forward(xn3, ctx ? &ctx->ffn : nullptr);
  Tensor f_out = sandwich_ ? ops::rmsnorm(f, norm4_.w(), eps_, &rstd4) : f;
  if (ctx) {
    ctx->h = h, ctx->rstd1 = rstd1, ctx->hmid = hmid, ctx->rstd3 = rstd3;
    // The sandwich norms' inputs are kept only when those norms exist: otherwise they would hold
    // two d-wide tensors per block that no backward reads.
    if (sandwich_) ctx->mix = mix, ctx->rstd2 = rstd2, ctx->ffn_out = f, ctx->rstd4 = rstd4;
  }
  return ops::add(hmid, f_out);
}

Tensor Block::backward(Ctx& c, const Tensor& dout) {
  Tensor df = sandwich_ ? ops::rmsnorm_backward(c.ffn_out, norm4_.w(), c.rstd4, dout, norm4_.grad) : dout;
  // The normed inputs of the FFN and the mixer are not kept: one pass each rebuilds them.
  Tensor dxn3 = ffn_.backward(c.ffn, ops::rmsnorm(c.hmid, norm3_.w(), eps_, nullptr), df);
  // hmid and h each feed a norm and the residual path: the norm backward adds the latter's gradient.
  Tensor dhmid = ops::rmsnorm_backward(c.hmid, norm3_.w(), c.rstd3, dxn3, norm3_.grad, dout);
  Tensor dmix = sandwich_ ? ops::rmsnorm_backward(c.mix, norm2_.w(), c.rstd2, dhmid, norm2_.grad) : dhmid;
  Tensor dxn1 = mixer_->backward(*c.mixer, ops::rmsnorm(c.h, norm1_.w(), eps_, nullptr), dmix);
  Tensor dh = ops::rmsnorm_backward(c.h, norm1_.w(), c.rstd1, dxn1, norm1_.grad, dhmid);
  c = Ctx{};
  return dh;
}

}  // namespace lt2
