#pragma once
// The op set: one declaration per op, forward and backward, the same on every backend.
// Shapes are explicit: activations [.., d] row-major, heads [B, L, H, Dh], weights [out, in].
// All ops accept F32 or F64 tensors (F64 for gradient checks). Backward functions
// WRITE input gradients and ACCUMULATE (+=) parameter gradients, so a weight shared
// across loops collects every loop's contribution.
// This build has only the CPU implementation (src/cpu/*.cpp); the CUDA backend adds
// a device switch behind the same declarations.
#include <cstdint>

#include "core/tensor.h"

namespace lt2::ops {

// ---- linear algebra -------------------------------------------------------------
// y[.., out] = x[.., in] W[out, in]^T
Tensor linear(const Tensor& x, const Tensor& w);
// dx = dy W (returned); dw += dy^T x
Tensor linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dw);

// ---- embedding ------------------------------------------------------------------
// ids I32 [N...], table [V, d] -> [N..., d]. Out-of-range ids raise an error.
Tensor embedding(const Tensor& ids, const Tensor& table);
void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable);

// ---- normalisation --------------------------------------------------------------
// y = x / sqrt(mean(x^2) + eps) * w over the last dim; rstd [rows] saved for backward.
Tensor rmsnorm(const Tensor& x, const Tensor& w, double eps, Tensor* rstd);
Tensor rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, Tensor& dw);
// Per-group L2 norm over the last dim: y = scale * x / sqrt(sum(x^2) + 1e-6).
Tensor l2norm(const Tensor& x, double scale);
Tensor l2norm_backward(const Tensor& x, double scale, const Tensor& dy);
// Gated RMSNorm of GDN's output: y = RMSNorm_D(o) * w * silu(z); o, z [.., D], w [D].
Tensor gated_rmsnorm(const Tensor& o, const Tensor& z, const Tensor& w, double eps);
// Writes do_, dz; accumulates dw.
void gated_rmsnorm_backward(const Tensor& o, const Tensor& z, const Tensor& w, double eps, const Tensor& dy,
                            Tensor& do_, Tensor& dz, Tensor& dw);

// ---- activations and gates ------------------------------------------------------
// h = silu(g) * u
Tensor swiglu(const Tensor& g, const Tensor& u);
void swiglu_backward(const Tensor& g, const Tensor& u, const Tensor& dh, Tensor& dg, Tensor& du);
// Output gate: y = a * sigmoid(z). a [B, L, H, D]; z [B, L, H*D] (per channel) or [B, L, H] (per head).
Tensor sigmoid_gate(const Tensor& a, const Tensor& z);
void sigmoid_gate_backward(const Tensor& a, const Tensor& z, const Tensor& dy, Tensor& da, Tensor& dz);
// GDN gates from projections: beta = sigmoid(b); g = -exp(A_log[h]) * softplus(a + dt_bias[h]).
// a, b [B, L, HV]; A_log, dt_bias [HV].
void gdn_gates(const Tensor& a, const Tensor& b, const Tensor& A_log, const Tensor& dt_bias, Tensor& beta, Tensor& g);
// Writes da, db; accumulates dA_log, ddt_bias.
void gdn_gates_backward(const Tensor& a, const Tensor& b, const Tensor& A_log, const Tensor& dt_bias,
                        const Tensor& dbeta, const Tensor& dg, Tensor& da, Tensor& db, Tensor& dA_log,
                        Tensor& ddt_bias);

// ---- positional -----------------------------------------------------------------
// Split-half ("rotate_half") RoPE on x [B, L, H, D] at positions pos0 + t.
Tensor rope(const Tensor& x, double theta, int64_t pos0);
Tensor rope_backward(const Tensor& dy, double theta, int64_t pos0);

// ---- mixers ---------------------------------------------------------------------
// Causal softmax attention, GQA (Hkv | H). q [B, L, H, D]; k, v [B, L, Hkv, D].
// window = 0: full causal; window = w: query t sees keys t-w+1 .. t.
// lse [B, H, L] (log-sum-exp of the scaled scores) is saved for the backward.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window, double scale, Tensor* lse);
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                        const Tensor& dout, int64_t window, double scale, Tensor& dq, Tensor& dk, Tensor& dv);
// Causal depthwise conv of width W followed by SiLU. x [B, L, C]; w [C, W] (HF stores [C, 1, W]).
// y[t, c] = silu( sum_j w[c, j] * x[t - (W-1) + j, c] ), zero padding before t = 0.
Tensor conv_silu(const Tensor& x, const Tensor& w);
Tensor conv_silu_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dw);
// One decode step of conv_silu: x [B, 1, C] is the newest input, cache [B, W-1, C] the W-1
// inputs before it (oldest first, zeros before the sequence start); the cache is shifted to end with x.
Tensor conv_silu_step(const Tensor& x, Tensor& cache, const Tensor& w);
// Gated DeltaNet core (SPEC §3) on activated inputs; see cpu/gdn.h for layouts.
// q, k [B, L, H, K]; v [B, L, HV, V]; beta, g [B, L, HV]; h0 [B, HV, K, V] or undefined.
// chunked = true uses the chunked (C = 64) form, false the token-by-token recurrence.
Tensor gdn(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
           const Tensor& h0, Tensor* hT, bool chunked);
struct GdnGrads { Tensor dq, dk, dv, dbeta, dg, dh0; };
GdnGrads gdn_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
                      const Tensor& h0, const Tensor& dout, const Tensor& dhT, bool chunked);

// ---- loss and optimiser ---------------------------------------------------------
// Mean cross-entropy over rows whose target >= 0 (target -1 = ignored). logits [N, V], targets I32 [N].
// Returns the loss; if dlogits is given, writes d(loss)/d(logits) scaled by grad_scale.
double cross_entropy(const Tensor& logits, const Tensor& targets, Tensor* dlogits, double grad_scale = 1.0);

struct AdamWParams { double lr, beta1, beta2, eps, weight_decay; int64_t step; };  // step counts from 1
// Decoupled weight decay: p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p).
void adamw_step(Tensor& p, const Tensor& grad, Tensor& m, Tensor& v, const AdamWParams& hp);

// ---- small helpers used by layers -----------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
// y = a + rho[row % ..] * b broadcast over the last dim: y[..., c] = a[..., c] + rho[c] * b[..., c]
Tensor add_scaled_channels(const Tensor& a, const Tensor& rho, const Tensor& b);
// Its rho gradient: drho[c] += sum over rows of dy[.., c] * b[.., c].
void add_scaled_channels_backward_rho(const Tensor& dy, const Tensor& b, Tensor& drho);
double sum_squares(const Tensor& x);
void scale_(Tensor& x, double s);

}  // namespace lt2::ops
