#include "nn/gdn.h"

#include <cmath>
#include <cstring>

#include "ops/ops.h"

namespace lt2 {

struct GdnMixer::Ctx : MixerCtx {
  // The projections before the conv (the conv backwards read them), and q, k after the conv and
  // the L2 norm: backward() rebuilds only v from vp. Keeping q, k costs 2·B·L·H·K activations a
  // call and saves rebuilding them (on an H100, ~3 ms of the small-125m hybrid's 0.25 s step); v,
  // twice their size with V = 2K, is rebuilt (one cheap pass).
  Tensor qp, kp, vp, q, k, a, b, beta, g, o, z;
  Tensor states;  // the GPU forward's per-chunk states, so the backward need not rebuild them
};

GdnMixer::GdnMixer(const ModelConfig& c, const std::string& p, DType dt)
    : H_(c.gdn_num_heads), HV_(c.gdn_num_v_heads), K_(c.gdn_head_k_dim), V_(c.gdn_head_v_dim), W_(c.gdn_conv_size),
      eps_(c.rms_norm_eps), chunked_(c.gdn_chunked),
      q_(p + ".q_proj.weight", {H_ * K_, c.hidden_size}, dt, Init::Normal, true),
      k_(p + ".k_proj.weight", {H_ * K_, c.hidden_size}, dt, Init::Normal, true),
      v_(p + ".v_proj.weight", {HV_ * V_, c.hidden_size}, dt, Init::Normal, true),
      a_(p + ".a_proj.weight", {HV_, c.hidden_size}, dt, Init::Normal, true),
      b_(p + ".b_proj.weight", {HV_, c.hidden_size}, dt, Init::Normal, true),
      g_(p + ".g_proj.weight", {HV_ * V_, c.hidden_size}, dt, Init::Normal, true),
      o_(p + ".o_proj.weight", {c.hidden_size, HV_ * V_}, dt, Init::Normal, true),
      // Hugging Face / fla store depthwise conv weights as [C, 1, W].
      q_conv_(p + ".q_conv1d.weight", {H_ * K_, 1, W_}, dt, Init::Normal, true),
      k_conv_(p + ".k_conv1d.weight", {H_ * K_, 1, W_}, dt, Init::Normal, true),
      v_conv_(p + ".v_conv1d.weight", {HV_ * V_, 1, W_}, dt, Init::Normal, true),
      A_log_(p + ".A_log", {HV_}, dt, Init::ALog, false),
      dt_bias_(p + ".dt_bias", {HV_}, dt, Init::DtBias, false),
      o_norm_(p + ".o_norm.weight", {V_}, dt, Init::Ones, false) {}

void GdnMixer::collect(ParamList& out) {
  out.insert(out.end(), {&q_, &k_, &v_, &a_, &b_, &g_, &o_, &q_conv_, &k_conv_, &v_conv_, &A_log_, &dt_bias_, &o_norm_});
}

void GdnMixer::collect_fused(std::vector<FusedProj*>& out) {
  qk_.parts = {&q_, &k_};  // set here, once the layer sits where it stays
  vg_.parts = {&v_, &g_};
  out.insert(out.end(), {&qk_, &vg_});
}

void GdnMixer::project(const Tensor& x, Tensor& qp, Tensor& kp, Tensor& vp, Tensor& z) const {
  const int64_t B = x.dim(0), L = x.dim(1);
  if (qk_.packed() && vg_.packed()) {
    // Each pair's outputs come out as contiguous [B, L, N] slabs: the convs read them unchanged.
    const Tensor qk = ops::linear_split(x, qk_.w, 2), vg = ops::linear_split(x, vg_.w, 2);
    qp = qk.select(0), kp = qk.select(1), vp = vg.select(0), z = vg.select(1);
  } else {
    qp = ops::linear(x, q_.w()), kp = ops::linear(x, k_.w()), vp = ops::linear(x, v_.w()), z = ops::linear(x, g_.w());
  }
  z = z.reshape({B, L, HV_, V_});
}

void GdnMixer::convolve(const Tensor& qp, const Tensor& kp, const Tensor& vp, Tensor& q, Tensor& k,
                        Tensor& v) const {
  const int64_t B = qp.dim(0), L = qp.dim(1);
  q = ops::conv_silu_l2norm(qp, conv_w(q_conv_), K_, q_scale()).reshape({B, L, H_, K_});
  k = ops::conv_silu_l2norm(kp, conv_w(k_conv_), K_, 1.0).reshape({B, L, H_, K_});
  v = convolve_v(vp);
}

Tensor GdnMixer::convolve_v(const Tensor& vp) const {
  return ops::conv_silu(vp, conv_w(v_conv_)).reshape({vp.dim(0), vp.dim(1), HV_, V_});
}

void GdnMixer::normalize(const Tensor& qc, const Tensor& kc, Tensor& q, Tensor& k) const {
  q = ops::l2norm(qc, q_scale());
  k = ops::l2norm(kc, 1.0);
}

void GdnMixer::gates(const Tensor& x, Tensor& a, Tensor& b, Tensor& beta, Tensor& g) const {
  a = ops::linear(x, a_.w());
  b = ops::linear(x, b_.w());
  ops::gdn_gates(a, b, A_log_.w(), dt_bias_.w(), beta, g);
}

Tensor GdnMixer::output(const Tensor& o, const Tensor& z) const {
  const int64_t B = z.dim(0), L = z.dim(1);
  return ops::linear(ops::gated_rmsnorm(o, z, o_norm_.w(), eps_).reshape({B, L, HV_ * V_}), o_.w());
}

Tensor GdnMixer::forward(const Tensor& x, int, std::unique_ptr<MixerCtx>* ctx) const {
  Tensor qp, kp, vp, z, q, k, v, a, b, beta, g, states;
  project(x, qp, kp, vp, z);
  convolve(qp, kp, vp, q, k, v);
  gates(x, a, b, beta, g);
  Tensor o = ops::gdn(q, k, v, beta, g, Tensor(), nullptr, chunked_, ctx ? &states : nullptr);
  Tensor y = output(o, z);
  if (ctx) {
    auto c = std::make_unique<Ctx>();
    c->states = states;
    c->qp = qp, c->kp = kp, c->vp = vp, c->q = q, c->k = k;
    c->a = a, c->b = b, c->beta = beta, c->g = g, c->o = o, c->z = z;
    *ctx = std::move(c);
  }
  return y;
}

std::unique_ptr<LayerCache> GdnMixer::make_cache(int, int64_t batch, int64_t) const {
  auto c = std::make_unique<GdnCache>();
  // Activations' dtype for the conv tails; the state stays in the master dtype (fp32 on the GPU).
  const DType dt = q_.w().dtype();
  const Device dev = q_.value.device();
  c->state = Tensor::zeros({batch, HV_, K_, V_}, q_.value.dtype(), dev);
  c->conv_q = Tensor::zeros({batch, W_ - 1, H_ * K_}, dt, dev);
  c->conv_k = Tensor::zeros({batch, W_ - 1, H_ * K_}, dt, dev);
  c->conv_v = Tensor::zeros({batch, W_ - 1, HV_ * V_}, dt, dev);
  return c;
}

// The last W-1 rows of a prompt's pre-conv input xp [1, L, C] (zeros before position 0)
// into batch slot `slot` of a conv cache [B, W-1, C].
static void keep_conv_tail(const Tensor& xp, Tensor& cache, int64_t slot) {
  const int64_t L = xp.dim(1), rows = cache.dim(1);
  Tensor dst = cache.select(slot);
  dst.zero();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = L - rows + r;
    if (t >= 0) dst.select(r).copy_from(xp.select(0).select(t));
  }
}

Tensor GdnMixer::run(const Tensor& x, int, LayerCache& base, const CacheRun& r) const {
  auto& c = static_cast<GdnCache&>(base);
  const int64_t B = x.dim(0), L = x.dim(1);
  Tensor qp, kp, vp, z, q, k, v;
  project(x, qp, kp, vp, z);
  if (r.mode == CacheRun::Prefill) {
    LT2_CHECK(B == 1, "GDN prefill takes one prompt at a time");
    convolve(qp, kp, vp, q, k, v);
    keep_conv_tail(qp, c.conv_q, r.slot);
    keep_conv_tail(kp, c.conv_k, r.slot);
    keep_conv_tail(vp, c.conv_v, r.slot);
  } else {
    LT2_CHECK(L == 1, "GDN decode takes one token per sequence");
    const Tensor qc = ops::conv_silu_step(qp, c.conv_q, conv_w(q_conv_)).reshape({B, L, H_, K_});
    const Tensor kc = ops::conv_silu_step(kp, c.conv_k, conv_w(k_conv_)).reshape({B, L, H_, K_});
    v = ops::conv_silu_step(vp, c.conv_v, conv_w(v_conv_)).reshape({B, L, HV_, V_});
    normalize(qc, kc, q, k);
  }
  Tensor a, b, beta, g, hT;
  gates(x, a, b, beta, g);
  Tensor o;
  if (r.mode == CacheRun::Prefill) {
    o = ops::gdn(q, k, v, beta, g, Tensor(), &hT, chunked_);
    c.state.select(r.slot).copy_from(hT.reshape({HV_, K_, V_}));
  } else {
    o = ops::gdn_step(q, k, v, beta, g, c.state);  // one token; the state is updated in place
  }
  return output(o, z);
}

Tensor GdnMixer::backward(MixerCtx& base, const Tensor& x, const Tensor& dy) {
  auto& c = static_cast<Ctx&>(base);
  const int64_t B = x.dim(0), L = x.dim(1), NK = H_ * K_, NV = HV_ * V_;
  // Fused: the pairs' input gradients land side by side, [dq | dk] in dQK and [dv | dz] in dVG,
  // written there by the ops that make them; dx and each pair's dW are then one GEMM each.
  const bool fused = qk_.packed() && vg_.packed();
  const Tensor dQK = fused ? Tensor::empty({B, L, 2 * NK}, dy.dtype(), dy.device()) : Tensor();
  const Tensor dVG = fused ? Tensor::empty({B, L, 2 * NV}, dy.dtype(), dy.device()) : Tensor();
  const ColBlock dq_out{dQK, 0}, dk_out{dQK, NK}, dv_out{dVG, 0}, dz_out{dVG, NV};
  // o_proj's input is not kept: the norm's backward pass rebuilds it, for o_proj's dW after.
  Tensor dyn = ops::linear_backward_dx(o_.w(), dy).reshape({B, L, HV_, V_});
  Tensor d_o, dz, y, dx;
  ops::gated_rmsnorm_backward(c.o, c.z, o_norm_.w(), eps_, dyn, d_o, dz, o_norm_.grad, &y, fused ? &dz_out : nullptr);
  ops::linear_backward_dw(y.reshape({B, L, NV}), dy, o_.grad);
  if (!fused) dx = ops::linear_backward(x, g_.w(), dz.reshape({B, L, NV}), g_.grad);
  const Tensor v = convolve_v(c.vp);
  ops::GdnGrads gr = ops::gdn_backward(c.q, c.k, v, c.beta, c.g, Tensor(), d_o, Tensor(), chunked_, c.states);
  Tensor da, db;
  ops::gdn_gates_backward(c.a, c.b, A_log_.w(), dt_bias_.w(), gr.dbeta, gr.dg, da, db, A_log_.grad, dt_bias_.grad);
  Tensor qcw = conv_w(q_conv_), kcw = conv_w(k_conv_), vcw = conv_w(v_conv_);
  Tensor dqcw = q_conv_.grad.reshape(qcw.shape()), dkcw = k_conv_.grad.reshape(kcw.shape()),
         dvcw = v_conv_.grad.reshape(vcw.shape());
  Tensor dqp = ops::conv_silu_l2norm_backward(c.qp, qcw, K_, q_scale(), gr.dq.reshape({B, L, NK}), dqcw,
                                              fused ? &dq_out : nullptr);
  Tensor dkp = ops::conv_silu_l2norm_backward(c.kp, kcw, K_, 1.0, gr.dk.reshape({B, L, NK}), dkcw,
                                              fused ? &dk_out : nullptr);
  Tensor dvp = ops::conv_silu_backward(c.vp, vcw, gr.dv.reshape({B, L, NV}), dvcw, fused ? &dv_out : nullptr);
  if (fused) {
    dx = ops::linear_backward(x, vg_.w, dVG, vg_.grad);
    ops::linear_backward(x, qk_.w, dQK, qk_.grad, &dx);
  } else {
    ops::linear_backward(x, q_.w(), dqp, q_.grad, &dx);
    ops::linear_backward(x, k_.w(), dkp, k_.grad, &dx);
    ops::linear_backward(x, v_.w(), dvp, v_.grad, &dx);
  }
  ops::linear_backward(x, a_.w(), da, a_.grad, &dx);
  ops::linear_backward(x, b_.w(), db, b_.grad, &dx);
  return dx;
}

}  // namespace lt2
