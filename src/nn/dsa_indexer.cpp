#include "nn/dsa_indexer.h"

#include <cmath>

#include "ops/ops.h"

namespace lt2 {

static const char* kIndexerTag = ".indexer.";

bool is_dsa_indexer_param(const std::string& name) { return name.find(kIndexerTag) != std::string::npos; }

DsaIndexer::DsaIndexer(const ModelConfig& c, const std::string& p, DType dt)
    : HI_(c.dsa_index_heads), dI_(c.dsa_index_head_dim), eps_(c.rms_norm_eps), w_scale_(1.0 / std::sqrt(double(HI_))),
      q_(p + kIndexerTag + "q_proj.weight", {HI_ * dI_, c.hidden_size}, dt, Init::Normal, true),
      k_(p + kIndexerTag + "k_proj.weight", {dI_, c.hidden_size}, dt, Init::Normal, true),
      k_norm_(p + kIndexerTag + "k_norm.weight", {dI_}, dt, Init::Ones, false),
      w_(p + kIndexerTag + "weights_proj.weight", {HI_, c.hidden_size}, dt, Init::Normal, true) {}

void DsaIndexer::collect(ParamList& out) { out.insert(out.end(), {&q_, &k_, &k_norm_, &w_}); }

DsaIndexer::Ctx DsaIndexer::project(const Tensor& x) const {
  const int64_t B = x.dim(0), L = x.dim(1);
  Ctx c;
  c.qI = ops::linear(x, q_.w()).reshape({B, L, HI_, dI_});
  c.kp = ops::linear(x, k_.w());
  c.kI = ops::rmsnorm(c.kp, k_norm_.w(), eps_, &c.rstd);
  c.w = ops::linear(x, w_.w());
  return c;
}

Tensor DsaIndexer::scores(const Ctx& c) const { return ops::dsa_indexer_scores(c.qI, c.kI, c.w, w_scale_); }

void DsaIndexer::learn(const Tensor& x, const Ctx& c, const Tensor& Isel, const Tensor& idx, const Tensor& q,
                       const Tensor& k, const Tensor& lse, double attn_scale) {
  if (!kl_sum_.defined() || kl_sum_.device() != q_.value.device())
    kl_sum_ = Tensor::zeros({1}, q_.value.dtype(), q_.value.device());
  const Tensor dIsel = ops::dsa_indexer_kl(Isel, q, k, lse, idx, attn_scale, kl_sum_);
  ++kl_terms_;
  Tensor dqI, dkI, dw;
  // The scores' backward is linear in w_scale * dIsel, so passing w_scale * grad_scale scales
  // every indexer gradient by grad_scale without another pass over dIsel.
  ops::dsa_indexer_scores_backward(c.qI, c.kI, c.w, w_scale_ * grad_scale_, idx, dIsel, dqI, dkI, dw);
  // The input gradients are dropped: the indexer's input is detached (SPEC §2).
  const int64_t B = x.dim(0), L = x.dim(1);
  ops::linear_backward(x, q_.w(), dqI.reshape({B, L, HI_ * dI_}), q_.grad);
  ops::linear_backward(x, k_.w(), ops::rmsnorm_backward(c.kp, k_norm_.w(), c.rstd, dkI, k_norm_.grad), k_.grad);
  ops::linear_backward(x, w_.w(), dw, w_.grad);
}

void DsaIndexer::take_kl(double& sum, int64_t& terms) {
  if (kl_terms_ == 0) return;
  sum += kl_sum_.to(Device::CPU).item(0);
  terms += kl_terms_;
  kl_sum_ = Tensor::zeros_like(kl_sum_);
  kl_terms_ = 0;
}

}  // namespace lt2
