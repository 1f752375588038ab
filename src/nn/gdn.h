#pragma once
// The Gated DeltaNet mixer layer (SPEC §3):
//   q, k, v = silu(conv4(x W^T)); q, k L2-normalised per head, q scaled by 1/sqrt(K);
//   beta = sigmoid(x W_b^T); g = -exp(A_log) softplus(x W_a^T + dt_bias);
//   o = GDN core; y = W_o [ RMSNorm_V(o) * w_norm * silu(x W_g^T) ].
#include <cmath>

#include "model/config.h"
#include "nn/mixer.h"

namespace lt2 {

class GdnMixer : public Mixer {
 public:
  GdnMixer(const ModelConfig& cfg, const std::string& prefix, DType dt);
  Tensor forward(const Tensor& x, int loop, std::unique_ptr<MixerCtx>* ctx) const override;
  Tensor backward(MixerCtx& ctx, const Tensor& x, const Tensor& dy) override;
  void collect(ParamList& out) override;
  void collect_fused(std::vector<FusedProj*>& out) override;
  std::unique_ptr<LayerCache> make_cache(int loop, int64_t batch, int64_t context) const override;
  Tensor run(const Tensor& x, int loop, LayerCache& cache, const CacheRun& r) const override;

 private:
  struct Ctx;
  // The input projections of x: q, k, v before the conv ([B, L, C]) and the output gate's z
  // ([B, L, HV, V]); two strided-batched GEMMs (q, k and v, g) when packed.
  void project(const Tensor& x, Tensor& qp, Tensor& kp, Tensor& vp, Tensor& z) const;
  // q, k, v from the projections [B, L, C], shaped per head: silu(conv4(.)), q and k
  // L2-normalised per head in the same op (q also scaled by q_scale()).
  void convolve(const Tensor& qp, const Tensor& kp, const Tensor& vp, Tensor& q, Tensor& k, Tensor& v) const;
  // v alone (the backward rebuilds it; it keeps q, k).
  Tensor convolve_v(const Tensor& vp) const;
  // q and k from already convolved qc, kc (the decode step's path).
  void normalize(const Tensor& qc, const Tensor& kc, Tensor& q, Tensor& k) const;
  // The core's gates from the gate projections of x.
  void gates(const Tensor& x, Tensor& a, Tensor& b, Tensor& beta, Tensor& g) const;
  double q_scale() const { return 1.0 / std::sqrt(double(K_)); }
  // o_proj( RMSNorm(o) * w * silu(z) ), z = g_proj x from project().
  Tensor output(const Tensor& o, const Tensor& z) const;
  int64_t H_, HV_, K_, V_, W_;
  double eps_;
  bool chunked_;
  Param q_, k_, v_, a_, b_, g_, o_, q_conv_, k_conv_, v_conv_, A_log_, dt_bias_, o_norm_;
  Tensor conv_w(const Param& p) const { return p.value.reshape({p.value.dim(0), W_}); }
  // q, k (each H K wide) and v, g (each HV V wide) as two fused pairs; the narrow a, b gates
  // stay apart (their own kernels, linear_narrow).
  FusedProj qk_, vg_;
};

}  // namespace lt2
