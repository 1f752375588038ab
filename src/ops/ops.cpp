// The op set's front: each call goes to the backend that holds its first tensor argument.
#include "ops/ops.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "cpu/cpu_ops.h"
#include "cuda/runtime.h"
#include "ops/profile.h"
#if LT2_HAVE_CUDA
#include "cuda/cuda_ops.h"
#define LT2_ON(t, call) ((t).on_cuda() ? ::lt2::cuda::call : ::lt2::cpu::call)
#else
#define LT2_ON(t, call) (::lt2::cpu::call)
#endif

// One op call: time it under its phase (when profiling) and run it where `t` lives.
#define LT2_OP(phase, t, call)                 \
  PhaseTimer phase_timer_(Phase::phase, t, __func__); \
  return LT2_ON(t, call)

namespace lt2::ops {

namespace {
bool g_profiling = false;
std::array<double, kPhases> g_seconds{};
std::map<std::string, OpTime> g_ops;

// Adds the op's wall time (device work included) to its phase while profiling is on.
class PhaseTimer {
 public:
  PhaseTimer(Phase p, const Tensor& t, const char* name) : phase_(p), cuda_(t.on_cuda()), name_(name) {
    if (!g_profiling) return;
    if (cuda_) cuda::synchronize();
    t0_ = std::chrono::steady_clock::now();
  }
  ~PhaseTimer() {
    if (!g_profiling) return;
    if (cuda_) cuda::synchronize();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    g_seconds[int(phase_)] += s;
    OpTime& op = g_ops.try_emplace(name_, OpTime{name_, 0, 0}).first->second;
    op.seconds += s;
    op.calls += 1;
  }

 private:
  Phase phase_;
  bool cuda_;
  const char* name_;
  std::chrono::steady_clock::time_point t0_;
};
}  // namespace

const char* phase_name(Phase p) {
  static const char* names[] = {"GEMMs", "attention", "GDN (conv, gates, recurrence)", "norms and elementwise",
                                "loss", "optimizer (grad norm, clip, AdamW)"};
  return names[int(p)];
}
void set_profiling(bool on) { g_profiling = on; }
std::array<double, kPhases> phase_seconds() { return g_seconds; }
void reset_phase_seconds() {
  g_seconds.fill(0);
  g_ops.clear();
}
std::vector<OpTime> op_times() {
  std::vector<OpTime> out;
  for (const auto& [name, op] : g_ops) out.push_back(op);
  std::sort(out.begin(), out.end(), [](const OpTime& a, const OpTime& b) { return a.seconds > b.seconds; });
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w) { LT2_OP(Gemm, x, linear(x, w)); }
Tensor linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dw, Tensor* dx_acc) {
  LT2_OP(Gemm, x, linear_backward(x, w, dy, dw, dx_acc));
}
Tensor linear_backward_dx(const Tensor& w, const Tensor& dy, Tensor* dx_acc) {
  LT2_OP(Gemm, dy, linear_backward_dx(w, dy, dx_acc));
}
void linear_backward_dw(const Tensor& x, const Tensor& dy, Tensor& dw) { LT2_OP(Gemm, x, linear_backward_dw(x, dy, dw)); }
Tensor linear_split(const Tensor& x, const Tensor& w, int64_t parts) { LT2_OP(Gemm, x, linear_split(x, w, parts)); }
Tensor embedding(const Tensor& ids, const Tensor& table, bool ids_checked) {
  LT2_OP(NormsElementwise, table, embedding(ids, table, ids_checked));
}
void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable) {
  LT2_OP(NormsElementwise, dy, embedding_backward(ids, dy, dtable));
}
Tensor rmsnorm(const Tensor& x, const Tensor& w, double eps, Tensor* rstd) { LT2_OP(NormsElementwise, x, rmsnorm(x, w, eps, rstd)); }
Tensor rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, Tensor& dw,
                        const Tensor& dresidual) {
  LT2_OP(NormsElementwise, x, rmsnorm_backward(x, w, rstd, dy, dw, dresidual));
}
Tensor add_rmsnorm(const Tensor& a, const Tensor& b, const Tensor& w, double eps, Tensor& sum, Tensor* rstd) {
  LT2_OP(NormsElementwise, a, add_rmsnorm(a, b, w, eps, sum, rstd));
}
Tensor l2norm(const Tensor& x, double scale) { LT2_OP(NormsElementwise, x, l2norm(x, scale)); }
Tensor l2norm_backward(const Tensor& x, double scale, const Tensor& dy) { LT2_OP(NormsElementwise, x, l2norm_backward(x, scale, dy)); }
Tensor gated_rmsnorm(const Tensor& o, const Tensor& z, const Tensor& w, double eps) {
  LT2_OP(NormsElementwise, o, gated_rmsnorm(o, z, w, eps));
}
void gated_rmsnorm_backward(const Tensor& o, const Tensor& z, const Tensor& w, double eps, const Tensor& dy,
                            Tensor& do_, Tensor& dz, Tensor& dw, Tensor* y, const ColBlock* dz_out) {
  LT2_OP(NormsElementwise, o, gated_rmsnorm_backward(o, z, w, eps, dy, do_, dz, dw, y, dz_out));
}
Tensor swiglu(const Tensor& g, const Tensor& u) { LT2_OP(NormsElementwise, g, swiglu(g, u)); }
void swiglu_backward(const Tensor& g, const Tensor& u, const Tensor& dh, Tensor& dg, Tensor& du, Tensor* h,
                     const ColBlock* dg_out, const ColBlock* du_out) {
  LT2_OP(NormsElementwise, g, swiglu_backward(g, u, dh, dg, du, h, dg_out, du_out));
}
Tensor sigmoid_gate(const Tensor& a, const Tensor& z) { LT2_OP(NormsElementwise, a, sigmoid_gate(a, z)); }
void sigmoid_gate_backward(const Tensor& a, const Tensor& z, const Tensor& dy, Tensor& da, Tensor& dz, Tensor* y,
                           const ColBlock* dz_out) {
  LT2_OP(NormsElementwise, a, sigmoid_gate_backward(a, z, dy, da, dz, y, dz_out));
}
void gdn_gates(const Tensor& a, const Tensor& b, const Tensor& A_log, const Tensor& dt_bias, Tensor& beta, Tensor& g) {
  LT2_OP(Gdn, a, gdn_gates(a, b, A_log, dt_bias, beta, g));
}
void gdn_gates_backward(const Tensor& a, const Tensor& b, const Tensor& A_log, const Tensor& dt_bias,
                        const Tensor& dbeta, const Tensor& dg, Tensor& da, Tensor& db, Tensor& dA_log,
                        Tensor& ddt_bias) {
  LT2_OP(Gdn, a, gdn_gates_backward(a, b, A_log, dt_bias, dbeta, dg, da, db, dA_log, ddt_bias));
}
Tensor rope(const Tensor& x, double theta, int64_t pos0, const ColBlock* out) {
  LT2_OP(NormsElementwise, x, rope(x, theta, pos0, out));
}
Tensor rope_backward(const Tensor& dy, double theta, int64_t pos0, const ColBlock* out) {
  LT2_OP(NormsElementwise, dy, rope_backward(dy, theta, pos0, out));
}
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window, double scale, Tensor* lse) {
  LT2_OP(Attention, q, attention(q, k, v, window, scale, lse));
}
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                        const Tensor& dout, int64_t window, double scale, Tensor& dq, Tensor& dk, Tensor& dv,
                        const ColBlock* dv_out) {
  LT2_OP(Attention, q, attention_backward(q, k, v, o, lse, dout, window, scale, dq, dk, dv, dv_out));
}
Tensor attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& positions,
                        int64_t window, bool ring, double scale) {
  LT2_OP(Attention, q, attention_decode(q, k_cache, v_cache, positions, window, ring, scale));
}
Tensor dsa_indexer_scores(const Tensor& qI, const Tensor& kI, const Tensor& w, double w_scale) {
  LT2_OP(Attention, qI, dsa_indexer_scores(qI, kI, w, w_scale));
}
void dsa_indexer_scores_backward(const Tensor& qI, const Tensor& kI, const Tensor& w, double w_scale, const Tensor& idx,
                                 const Tensor& dIsel, Tensor& dqI, Tensor& dkI, Tensor& dw) {
  LT2_OP(Attention, qI, dsa_indexer_scores_backward(qI, kI, w, w_scale, idx, dIsel, dqI, dkI, dw));
}
Tensor dsa_topk(const Tensor& I, int64_t k, Tensor* values) { LT2_OP(Attention, I, dsa_topk(I, k, values)); }
Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& idx, double scale, Tensor* lse) {
  LT2_OP(Attention, q, sparse_attention(q, k, v, idx, scale, lse));
}
void sparse_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                               const Tensor& idx, const Tensor& dout, double scale, Tensor& dq, Tensor& dk, Tensor& dv) {
  LT2_OP(Attention, q, sparse_attention_backward(q, k, v, o, lse, idx, dout, scale, dq, dk, dv));
}
Tensor dsa_indexer_kl(const Tensor& Isel, const Tensor& q, const Tensor& k, const Tensor& lse, const Tensor& idx,
                      double scale, Tensor& kl_sum) {
  LT2_OP(Attention, q, dsa_indexer_kl(Isel, q, k, lse, idx, scale, kl_sum));
}
Tensor dsa_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& qI, const Tensor& w,
                  const Tensor& kI_cache, const Tensor& positions, int64_t topk, double w_scale, double scale) {
  LT2_OP(Attention, q, dsa_decode(q, k_cache, v_cache, qI, w, kI_cache, positions, topk, w_scale, scale));
}
Tensor conv_silu(const Tensor& x, const Tensor& w) { LT2_OP(Gdn, x, conv_silu(x, w)); }
Tensor conv_silu_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dw, const ColBlock* dx_out) {
  LT2_OP(Gdn, x, conv_silu_backward(x, w, dy, dw, dx_out));
}
Tensor conv_silu_step(const Tensor& x, Tensor& cache, const Tensor& w) { LT2_OP(Gdn, x, conv_silu_step(x, cache, w)); }
Tensor conv_silu_l2norm(const Tensor& x, const Tensor& w, int64_t head, double scale) {
  LT2_OP(Gdn, x, conv_silu_l2norm(x, w, head, scale));
}
Tensor conv_silu_l2norm_backward(const Tensor& x, const Tensor& w, int64_t head, double scale, const Tensor& dy,
                                 Tensor& dw, const ColBlock* dx_out) {
  LT2_OP(Gdn, x, conv_silu_l2norm_backward(x, w, head, scale, dy, dw, dx_out));
}
Tensor gdn(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g, const Tensor& h0,
           Tensor* hT, bool chunked, Tensor* states) {
  LT2_OP(Gdn, q, gdn(q, k, v, beta, g, h0, hT, chunked, states));
}
GdnGrads gdn_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
                      const Tensor& h0, const Tensor& dout, const Tensor& dhT, bool chunked, const Tensor& states) {
  LT2_OP(Gdn, q, gdn_backward(q, k, v, beta, g, h0, dout, dhT, chunked, states));
}
Tensor gdn_step(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g, Tensor& state) {
  LT2_OP(Gdn, q, gdn_step(q, k, v, beta, g, state));
}
double cross_entropy(const Tensor& logits, const Tensor& targets, Tensor* dlogits, double grad_scale) {
  LT2_OP(Loss, logits, cross_entropy(logits, targets, dlogits, grad_scale));
}
void cross_entropy_stats(const Tensor& logits, const Tensor& targets, Tensor* dlogits, double grad_scale,
                         Tensor& stats) {
  LT2_OP(Loss, logits, cross_entropy_stats(logits, targets, dlogits, grad_scale, stats));
}
void adamw_step(Tensor& p, const Tensor& grad, Tensor& m, Tensor& v, const AdamWParams& hp) {
  LT2_OP(Optimizer, p, adamw_step(p, grad, m, v, hp));
}
Tensor add(const Tensor& a, const Tensor& b) { LT2_OP(NormsElementwise, a, add(a, b)); }
Tensor add_scaled_channels(const Tensor& a, const Tensor& rho, const Tensor& b) {
  LT2_OP(NormsElementwise, a, add_scaled_channels(a, rho, b));
}
void add_scaled_channels_backward_rho(const Tensor& dy, const Tensor& b, Tensor& drho) {
  LT2_OP(NormsElementwise, dy, add_scaled_channels_backward_rho(dy, b, drho));
}
double sum_squares(const Tensor& x) { LT2_OP(Optimizer, x, sum_squares(x)); }
void accumulate_sum_squares(const Tensor& x, Tensor& acc) { LT2_OP(Optimizer, x, accumulate_sum_squares(x, acc)); }

}  // namespace lt2::ops
