#include "nn/attention.h"

#include <cmath>

#include "ops/ops.h"

namespace lt2 {

struct AttentionMixer::Ctx : MixerCtx {
  Tensor x, q, k, v, a, lse, z, gated;
  int64_t window = 0;
};

AttentionMixer::AttentionMixer(const ModelConfig& c, int layer, const std::string& p, DType dt)
    : H_(c.num_attention_heads), Hkv_(c.num_key_value_heads), D_(c.head_dim), theta_(c.rope_theta),
      gated_(c.output_gate != "none"),
      q_(p + ".q_proj.weight", {H_ * D_, c.hidden_size}, dt, Init::Normal, true),
      k_(p + ".k_proj.weight", {Hkv_ * D_, c.hidden_size}, dt, Init::Normal, true),
      v_(p + ".v_proj.weight", {Hkv_ * D_, c.hidden_size}, dt, Init::Normal, true),
      o_(p + ".o_proj.weight", {c.hidden_size, H_ * D_}, dt, Init::Normal, true) {
  for (int t = 0; t < c.num_loops; ++t) window_per_loop_.push_back(c.attention_window(layer, t));
  if (gated_)
    g_ = Param(p + ".g_proj.weight", {c.output_gate == "head" ? H_ : H_ * D_, c.hidden_size}, dt, Init::Zeros, true);
}

void AttentionMixer::collect(ParamList& out) {
  out.insert(out.end(), {&q_, &k_, &v_, &o_});
  if (gated_) out.push_back(&g_);
}

Tensor AttentionMixer::forward(const Tensor& x, int loop, std::unique_ptr<MixerCtx>* ctx) const {
  const int64_t B = x.dim(0), L = x.dim(1);
  const int64_t window = window_per_loop_.at(loop);
  Tensor q = ops::rope(ops::linear(x, q_.value).reshape({B, L, H_, D_}), theta_, 0);
  Tensor k = ops::rope(ops::linear(x, k_.value).reshape({B, L, Hkv_, D_}), theta_, 0);
  Tensor v = ops::linear(x, v_.value).reshape({B, L, Hkv_, D_});
  Tensor lse;
  Tensor a = ops::attention(q, k, v, window, 1.0 / std::sqrt(double(D_)), &lse);
  Tensor z, gated = a;
  if (gated_) {
    z = ops::linear(x, g_.value);
    gated = ops::sigmoid_gate(a, z);
  }
  Tensor y = ops::linear(gated.reshape({B, L, H_ * D_}), o_.value);
  if (ctx) {
    auto c = std::make_unique<Ctx>();
    c->x = x, c->q = q, c->k = k, c->v = v, c->a = a, c->lse = lse, c->z = z, c->gated = gated;
    c->window = window;
    *ctx = std::move(c);
  }
  return y;
}

Tensor AttentionMixer::backward(MixerCtx& base, const Tensor& dy) {
  auto& c = static_cast<Ctx&>(base);
  const int64_t B = c.x.dim(0), L = c.x.dim(1);
  Tensor dgated = ops::linear_backward(c.gated.reshape({B, L, H_ * D_}), o_.value, dy, o_.grad).reshape(c.a.shape());
  Tensor da = dgated, dx;
  if (gated_) {
    Tensor dz;
    ops::sigmoid_gate_backward(c.a, c.z, dgated, da, dz);
    dx = ops::linear_backward(c.x, g_.value, dz, g_.grad);
  }
  Tensor dq, dk, dv;
  ops::attention_backward(c.q, c.k, c.v, c.a, c.lse, da, c.window, 1.0 / std::sqrt(double(D_)), dq, dk, dv);
  dq = ops::rope_backward(dq, theta_, 0).reshape({B, L, H_ * D_});
  dk = ops::rope_backward(dk, theta_, 0).reshape({B, L, Hkv_ * D_});
  Tensor dxq = ops::linear_backward(c.x, q_.value, dq, q_.grad);
  if (dx.defined()) dxq.add_(dx);
  dxq.add_(ops::linear_backward(c.x, k_.value, dk, k_.grad));
  dxq.add_(ops::linear_backward(c.x, v_.value, dv.reshape({B, L, Hkv_ * D_}), v_.grad));
  return dxq;
}

}  // namespace lt2
