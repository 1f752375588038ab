// Gated DeltaNet core recurrence (SPEC §3): token-by-token oracle and chunked WY/UT form.
#include "cpu/gdn.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "cpu/blas.h"

namespace lt2::cpu {

namespace {

void check_dims(const GdnDims& d, int64_t chunk) {
  LT2_CHECK(d.B >= 1 && d.L >= 1 && d.H >= 1 && d.HV >= 1 && d.K >= 1 && d.V >= 1,
            "gdn: all dims must be >= 1, got B=", d.B, " L=", d.L, " H=", d.H, " HV=", d.HV, " K=", d.K,
            " V=", d.V);
  LT2_CHECK(d.HV % d.H == 0, "gdn: value heads HV=", d.HV, " must be a multiple of key heads H=", d.H);
  LT2_CHECK(chunk >= 1, "gdn: chunk size must be >= 1, got ", chunk);
}

template <class R>
inline R dot(const R* a, const R* b, int64_t n) {
  R s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

// ================================================================================================
// Token-by-token recurrence
// ================================================================================================

template <class R>
void gdn_recurrent_forward(const GdnDims& d, const R* q, const R* k, const R* v, const R* beta, const R* g,
                           const R* h0, R* o, R* hT) {
  check_dims(d, 1);
  const int64_t B = d.B, L = d.L, H = d.H, HV = d.HV, K = d.K, V = d.V, G = HV / H;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t j = 0; j < HV; ++j) {
      const int64_t h = j / G;
      std::vector<R> S(K * V, R(0)), u(V);
      if (h0) std::memcpy(S.data(), h0 + (b * HV + j) * K * V, sizeof(R) * K * V);
      for (int64_t t = 0; t < L; ++t) {
        const R* qt = q + ((b * L + t) * H + h) * K;
        const R* kt = k + ((b * L + t) * H + h) * K;
        const R* vt = v + ((b * L + t) * HV + j) * V;
        const R bt = beta[(b * L + t) * HV + j];
        const R at = std::exp(g[(b * L + t) * HV + j]);
        for (auto& x : S) x *= at;                        // S <- α S
        for (int64_t c = 0; c < V; ++c) u[c] = vt[c];     // u = β (v − Sᵀk)
        for (int64_t i = 0; i < K; ++i)
          for (int64_t c = 0; c < V; ++c) u[c] -= S[i * V + c] * kt[i];
        for (int64_t c = 0; c < V; ++c) u[c] *= bt;
        for (int64_t i = 0; i < K; ++i)                   // S <- S + k uᵀ
          for (int64_t c = 0; c < V; ++c) S[i * V + c] += kt[i] * u[c];
        R* ot = o + ((b * L + t) * HV + j) * V;           // o = Sᵀ q
        for (int64_t c = 0; c < V; ++c) ot[c] = 0;
        for (int64_t i = 0; i < K; ++i)
          for (int64_t c = 0; c < V; ++c) ot[c] += S[i * V + c] * qt[i];
      }
      if (hT) std::memcpy(hT + (b * HV + j) * K * V, S.data(), sizeof(R) * K * V);
    }
  }
}

// Reverse mode of one step (S_prev -> S), with Sa = α S_prev, p = Saᵀk, u = β(v − p),
// S = Sa + k uᵀ, o = Sᵀq. Given dS (from the future) and do:
//   dS += q doᵀ,  dq = S do
//   dSa = dS, dk = dS u, du = dSᵀ k
//   dβ = du·(v − p), dv = β du, dp = −β du
//   dSa += k dpᵀ, dk += Sa dp
//   dα = <dSa, S_prev>, dg = α dα, dS_prev = α dSa
// Parallel over (b, key head) so that the grouped value heads accumulate dq/dk serially.
template <class R>
void gdn_recurrent_backward(const GdnDims& d, const R* q, const R* k, const R* v, const R* beta, const R* g,
                            const R* h0, const R* dout, const R* dhT, R* dq, R* dk, R* dv, R* dbeta, R* dg,
                            R* dh0) {
  check_dims(d, 1);
  const int64_t B = d.B, L = d.L, H = d.H, HV = d.HV, K = d.K, V = d.V, G = HV / H, KV = K * V;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t t = 0; t < L; ++t) {
        std::fill_n(dq + ((b * L + t) * H + h) * K, K, R(0));
        std::fill_n(dk + ((b * L + t) * H + h) * K, K, R(0));
      }
      // states[t+1] = state after token t, states[0] = initial state
      std::vector<R> states((L + 1) * KV), dS(KV), Sa(KV), u(V), p(V), du(V), dp(V);
      for (int64_t j = h * G; j < (h + 1) * G; ++j) {
        // forward, storing all states
        if (h0)
          std::memcpy(states.data(), h0 + (b * HV + j) * KV, sizeof(R) * KV);
        else
          std::fill_n(states.data(), KV, R(0));
        for (int64_t t = 0; t < L; ++t) {
          const R* kt = k + ((b * L + t) * H + h) * K;
          const R* vt = v + ((b * L + t) * HV + j) * V;
          const R bt = beta[(b * L + t) * HV + j];
          const R at = std::exp(g[(b * L + t) * HV + j]);
          const R* Sp = states.data() + t * KV;
          R* Sn = states.data() + (t + 1) * KV;
          for (int64_t x = 0; x < KV; ++x) Sn[x] = at * Sp[x];
          for (int64_t c = 0; c < V; ++c) u[c] = vt[c];
          for (int64_t i = 0; i < K; ++i)
            for (int64_t c = 0; c < V; ++c) u[c] -= Sn[i * V + c] * kt[i];
          for (int64_t c = 0; c < V; ++c) u[c] *= bt;
          for (int64_t i = 0; i < K; ++i)
            for (int64_t c = 0; c < V; ++c) Sn[i * V + c] += kt[i] * u[c];
        }
        // reverse sweep
        if (dhT)
          std::memcpy(dS.data(), dhT + (b * HV + j) * KV, sizeof(R) * KV);
        else
          std::fill_n(dS.data(), KV, R(0));
        for (int64_t t = L - 1; t >= 0; --t) {
          const R* qt = q + ((b * L + t) * H + h) * K;
          const R* kt = k + ((b * L + t) * H + h) * K;
          const R* vt = v + ((b * L + t) * HV + j) * V;
          const R* dot_ = dout + ((b * L + t) * HV + j) * V;
          const R bt = beta[(b * L + t) * HV + j];
          const R at = std::exp(g[(b * L + t) * HV + j]);
          const R* Sp = states.data() + t * KV;
          const R* Sn = states.data() + (t + 1) * KV;
          R* dqt = dq + ((b * L + t) * H + h) * K;
          R* dkt = dk + ((b * L + t) * H + h) * K;
          R* dvt = dv + ((b * L + t) * HV + j) * V;
          // recompute Sa, p, u
          for (int64_t x = 0; x < KV; ++x) Sa[x] = at * Sp[x];
          std::fill(p.begin(), p.end(), R(0));
          for (int64_t i = 0; i < K; ++i)
            for (int64_t c = 0; c < V; ++c) p[c] += Sa[i * V + c] * kt[i];
          for (int64_t c = 0; c < V; ++c) u[c] = bt * (vt[c] - p[c]);
          // output read: o = Sᵀ q
          for (int64_t i = 0; i < K; ++i) {
            dqt[i] += dot(Sn + i * V, dot_, V);
            for (int64_t c = 0; c < V; ++c) dS[i * V + c] += qt[i] * dot_[c];
          }
          // S = Sa + k uᵀ
          std::fill(du.begin(), du.end(), R(0));
          for (int64_t i = 0; i < K; ++i) {
            dkt[i] += dot(dS.data() + i * V, u.data(), V);
            for (int64_t c = 0; c < V; ++c) du[c] += dS[i * V + c] * kt[i];
          }
          // u = β (v − p)
          R db = 0;
          for (int64_t c = 0; c < V; ++c) {
            db += du[c] * (vt[c] - p[c]);
            dvt[c] = bt * du[c];
            dp[c] = -bt * du[c];
          }
          dbeta[(b * L + t) * HV + j] = db;
          // p = Saᵀ k  (dSa = dS + k dpᵀ)
          for (int64_t i = 0; i < K; ++i) {
            dkt[i] += dot(Sa.data() + i * V, dp.data(), V);
            for (int64_t c = 0; c < V; ++c) dS[i * V + c] += kt[i] * dp[c];
          }
          // Sa = α S_prev
          const R da = dot(dS.data(), Sp, KV);
          dg[(b * L + t) * HV + j] = at * da;
          for (auto& x : dS) x *= at;
        }
        if (dh0) std::memcpy(dh0 + (b * HV + j) * KV, dS.data(), sizeof(R) * KV);
      }
    }
  }
}

// ================================================================================================
// Chunked WY / UT form
// ================================================================================================
//
// Inside a chunk of n <= C tokens (rows r = 0..n−1) with entering state S_c, let
// γ_r = Σ_{s<=r} g_s, e_r = e^{γ_r}, Γ[r,s] = e^{γ_r−γ_s} (s <= r; always <= 1, computed as a
// difference so strong decay never overflows). Unrolling the recurrence,
//   S_r = e_r S_c + Σ_{s<=r} Γ[r,s] k_s u_sᵀ,
//   u_r = β_r v_r − β_r e_r S_cᵀ k_r − Σ_{s<r} β_r (k_r·k_s) Γ[r,s] u_s,
// i.e. (I + L) Δ = diag(β) V − diag(βe) K S_c with L[r,s] = β_r (k_r·k_s) Γ[r,s] (r > s), so
//   A = (I + L)^{-1},  W = A diag(βe) K,  U = A diag(β) V,  Δ = U − W S_c   (Δ_r = u_r)
//   O = diag(e) Q S_c + M Δ,            M = tril(Q Kᵀ) ⊙ Γ   (diagonal included)
//   S_{c+1} = e_{n−1} S_c + Kᵀ diag(Γ[n−1,:]) Δ.
namespace {

// Per-thread scratch for one (b, value head).
template <class R>
struct ChunkBufs {
  int64_t C, K, V;
  std::vector<R> gam, e, Gam, Kb, Vb, M, Qe, Kd;
  ChunkBufs(int64_t C_, int64_t K_, int64_t V_)
      : C(C_), K(K_), V(V_), gam(C_), e(C_), Gam(C_ * C_), Kb(C_ * K_), Vb(C_ * V_), M(C_ * C_), Qe(C_ * K_),
        Kd(C_ * K_) {}
};

// γ, e = e^γ and Γ (lower triangle incl. diagonal; zero above) for a chunk of n tokens.
template <class R>
void chunk_gates(int64_t n, int64_t C, const R* gc, int64_t ldg, R* gam, R* e, R* Gam) {
  R acc = 0;
  for (int64_t r = 0; r < n; ++r) {
    acc += gc[r * ldg];
    gam[r] = acc;
    e[r] = std::exp(acc);
  }
  for (int64_t r = 0; r < n; ++r) {
    R* Gr = Gam + r * C;
#pragma omp simd
    for (int64_t s = 0; s <= r; ++s) Gr[s] = std::exp(gam[r] - gam[s]);
    for (int64_t s = r + 1; s < n; ++s) Gr[s] = 0;
  }
}

// Kb = diag(β e) K and Vb = diag(β) V (contiguous, ld K and V).
template <class R>
void chunk_scaled(int64_t n, int64_t K, int64_t V, const R* kc, int64_t ldk, const R* vc, int64_t ldv,
                  const R* bc, int64_t ldb, const R* e, R* Kb, R* Vb) {
  for (int64_t r = 0; r < n; ++r) {
    const R br = bc[r * ldb], be = br * e[r];
#pragma omp simd
    for (int64_t i = 0; i < K; ++i) Kb[r * K + i] = be * kc[r * ldk + i];
#pragma omp simd
    for (int64_t c = 0; c < V; ++c) Vb[r * V + c] = br * vc[r * ldv + c];
  }
}

// Everything of a chunk that does not depend on S_c: γ, e, Γ, KK = K Kᵀ, A = (I+L)^{-1}, W, U.
template <class R>
void chunk_setup(int64_t n, ChunkBufs<R>& cb, const R* kc, int64_t ldk, const R* vc, int64_t ldv, const R* bc,
                 const R* gc, int64_t ldbg, R* KK, R* A, R* W, R* U) {
  const int64_t C = cb.C, K = cb.K, V = cb.V;
  chunk_gates(n, C, gc, ldbg, cb.gam.data(), cb.e.data(), cb.Gam.data());
  gemm(false, true, n, n, K, R(1), kc, ldk, kc, ldk, R(0), KK, C);
  // A is unit lower triangular; row r of (I + L) A = I gives, for s < r,
  //   A[r,s] = −Σ_{s<=j<r} L[r,j] A[j,s]   (forward substitution, row by row).
  for (int64_t r = 0; r < n; ++r) {
    R* Ar = A + r * C;
    std::fill_n(Ar, n, R(0));
    Ar[r] = 1;
    const R br = bc[r * ldbg];
    for (int64_t j = 0; j < r; ++j) {
      const R l = br * KK[r * C + j] * cb.Gam[r * C + j];
      const R* Aj = A + j * C;
#pragma omp simd
      for (int64_t s = 0; s <= j; ++s) Ar[s] -= l * Aj[s];
    }
  }
  chunk_scaled(n, K, V, kc, ldk, vc, ldv, bc, ldbg, cb.e.data(), cb.Kb.data(), cb.Vb.data());
  gemm(false, false, n, K, n, R(1), A, C, cb.Kb.data(), K, R(0), W, K);
  gemm(false, false, n, V, n, R(1), A, C, cb.Vb.data(), V, R(0), U, V);
}

// Given Δ (in D) and S = S_c, advance S to S_{c+1} = e_{n−1} S + (diag(Γ[n−1,:]) K)ᵀ Δ.
template <class R>
void chunk_state_update(int64_t n, ChunkBufs<R>& cb, const R* kc, int64_t ldk, const R* D, R* S) {
  const int64_t C = cb.C, K = cb.K, V = cb.V;
  const R* Gl = cb.Gam.data() + (n - 1) * C;
  for (int64_t r = 0; r < n; ++r)
#pragma omp simd
    for (int64_t i = 0; i < K; ++i) cb.Kd[r * K + i] = Gl[r] * kc[r * ldk + i];
  const R el = cb.e[n - 1];
  for (int64_t x = 0; x < K * V; ++x) S[x] *= el;
  gemm(true, false, K, V, n, R(1), cb.Kd.data(), K, D, V, R(1), S, V);
}

// M = tril(Q Kᵀ) ⊙ Γ (zero above the diagonal).
template <class R>
void chunk_qk(int64_t n, ChunkBufs<R>& cb, const R* qc, int64_t ldq, const R* kc, int64_t ldk, R* M) {
  const int64_t C = cb.C;
  gemm(false, true, n, n, cb.K, R(1), qc, ldq, kc, ldk, R(0), M, C);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t s = 0; s < n; ++s) M[r * C + s] *= cb.Gam[r * C + s];
}

}  // namespace

template <class R>
void gdn_chunk_forward(const GdnDims& d, const R* q, const R* k, const R* v, const R* beta, const R* g,
                       const R* h0, R* o, R* hT, int64_t chunk) {
  check_dims(d, chunk);
  const int64_t B = d.B, L = d.L, H = d.H, HV = d.HV, K = d.K, V = d.V, G = HV / H;
  const int64_t C = std::min(chunk, L);
  const int64_t ldq = H * K, ldv = HV * V, ldb = HV;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t j = 0; j < HV; ++j) {
      const int64_t h = j / G;
      ChunkBufs<R> cb(C, K, V);
      std::vector<R> S(K * V, R(0)), KK(C * C), A(C * C), W(C * K), D(C * V);
      if (h0) std::memcpy(S.data(), h0 + (b * HV + j) * K * V, sizeof(R) * K * V);
      for (int64_t t0 = 0; t0 < L; t0 += C) {
        const int64_t n = std::min(C, L - t0);
        const R* qc = q + ((b * L + t0) * H + h) * K;
        const R* kc = k + ((b * L + t0) * H + h) * K;
        const R* vc = v + ((b * L + t0) * HV + j) * V;
        const R* bc = beta + (b * L + t0) * HV + j;
        const R* gc = g + (b * L + t0) * HV + j;
        R* oc = o + ((b * L + t0) * HV + j) * V;
        chunk_setup(n, cb, kc, ldq, vc, ldv, bc, gc, ldb, KK.data(), A.data(), W.data(), D.data());
        // Δ = U − W S_c
        gemm(false, false, n, V, K, R(-1), W.data(), K, S.data(), V, R(1), D.data(), V);
        // O = diag(e) Q S_c + M Δ
        for (int64_t r = 0; r < n; ++r)
#pragma omp simd
          for (int64_t i = 0; i < K; ++i) cb.Qe[r * K + i] = cb.e[r] * qc[r * ldq + i];
        gemm(false, false, n, V, K, R(1), cb.Qe.data(), K, S.data(), V, R(0), oc, ldv);
        chunk_qk(n, cb, qc, ldq, kc, ldq, cb.M.data());
        gemm(false, false, n, V, n, R(1), cb.M.data(), C, D.data(), V, R(1), oc, ldv);
        chunk_state_update(n, cb, kc, ldq, D.data(), S.data());
      }
      if (hT) std::memcpy(hT + (b * HV + j) * K * V, S.data(), sizeof(R) * K * V);
    }
  }
}

// Chunked backward. Pass 1 re-runs the forward per (b, value head), keeping for every chunk S_c,
// A, KK, W and Δ. Pass 2 scans the chunks in reverse carrying dS = ∂loss/∂S_{c+1} (starts at dhT)
// and, per chunk, back-propagates through the forward formulas above:
//  (a) S_{c+1} = e_{n−1} S_c + Σ_r Γ[n−1,r] k_r Δ_rᵀ:
//        dΔ = diag(Γ_last) K dS',  dK = diag(Γ_last) Δ dS'ᵀ,  dS_c = e_{n−1} dS',
//        with c_r = Γ[n−1,r] k_r·(dS' Δ_r):  dγ_{n−1} += e_{n−1}<dS',S_c> + Σ_r c_r,  dγ_r −= c_r.
//  (b) O = diag(e) Q S_c + M Δ:
//        dQ = diag(e) dO S_cᵀ,  dS_c += (diag(e) Q)ᵀ dO,  dγ_r += e_r q_r·(S_c do_r),
//        dΔ += Mᵀ dO,  dM = dO Δᵀ (lower incl. diag);  P = dM ⊙ M: dγ_r += Σ_s P[r,s], dγ_s −= Σ_r P[r,s];
//        dQK = dM ⊙ Γ:  dQ += dQK K,  dK += dQKᵀ Q.
//  (c) Δ = U − W S_c:  dU = dΔ,  dW = −dΔ S_cᵀ,  dS_c −= Wᵀ dΔ.
//  (d) U = A Vb, W = A Kb:  dA = dU Vbᵀ + dW Kbᵀ,  dVb = Aᵀ dU,  dKb = Aᵀ dW;
//        dv_r = β_r dVb_r,  dβ_r += v_r·dVb_r;  dK += diag(βe) dKb,
//        with s_r = e_r k_r·dKb_r:  dβ_r += s_r,  dγ_r += β_r s_r.
//  (e) A = (I+L)^{-1}:  dA^{-1} = −A dL A  ⇒  dL = −Aᵀ dA Aᵀ, kept strictly lower (L's support).
//  (f) L[r,s] = β_r KK[r,s] Γ[r,s]:  x = dL ⊙ KK ⊙ Γ:  dβ_r += Σ_s x[r,s];  dγ_r += β_r Σ_s x[r,s],
//        dγ_s −= Σ_r β_r x[r,s];  dKK = dL ⊙ β_r Γ;  dK += (dKK + dKKᵀ) K.
//  (g) γ_r = Σ_{s<=r} g_s  ⇒  dg_s = Σ_{r>=s} dγ_r (reverse cumulative sum inside the chunk).
// dq / dk: with grouped value heads (HV > H) each (b, value head) writes its own scratch slice and
// a second parallel loop sums the group, so no two threads write the same element.
template <class R>
void gdn_chunk_backward(const GdnDims& d, const R* q, const R* k, const R* v, const R* beta, const R* g,
                        const R* h0, const R* dout, const R* dhT, R* dq, R* dk, R* dv, R* dbeta, R* dg, R* dh0,
                        int64_t chunk) {
  check_dims(d, chunk);
  const int64_t B = d.B, L = d.L, H = d.H, HV = d.HV, K = d.K, V = d.V, G = HV / H;
  const int64_t C = std::min(chunk, L), NC = (L + C - 1) / C, KV = K * V;
  const int64_t ldq = H * K, ldv = HV * V, ldb = HV;
  std::vector<R> dqs, dks;  // [B, HV, L, K] per-value-head dq / dk when G > 1
  if (G > 1) {
    dqs.resize(B * HV * L * K);
    dks.resize(B * HV * L * K);
  }
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t j = 0; j < HV; ++j) {
      const int64_t h = j / G;
      ChunkBufs<R> cb(C, K, V);
      std::vector<R> Sst(NC * KV), Ast(NC * C * C), KKst(NC * C * C), Wst(NC * C * K), Dst(NC * C * V);
      std::vector<R> S(KV, R(0));
      // ---- pass 1: forward, storing per-chunk quantities
      if (h0) std::memcpy(S.data(), h0 + (b * HV + j) * KV, sizeof(R) * KV);
      for (int64_t c = 0; c < NC; ++c) {
        const int64_t t0 = c * C, n = std::min(C, L - t0);
        const R* kc = k + ((b * L + t0) * H + h) * K;
        const R* vc = v + ((b * L + t0) * HV + j) * V;
        const R* bc = beta + (b * L + t0) * HV + j;
        const R* gc = g + (b * L + t0) * HV + j;
        R* D = Dst.data() + c * C * V;
        R* W = Wst.data() + c * C * K;
        std::memcpy(Sst.data() + c * KV, S.data(), sizeof(R) * KV);
        chunk_setup(n, cb, kc, ldq, vc, ldv, bc, gc, ldb, KKst.data() + c * C * C, Ast.data() + c * C * C, W, D);
        gemm(false, false, n, V, K, R(-1), W, K, S.data(), V, R(1), D, V);
        chunk_state_update(n, cb, kc, ldq, D, S.data());
      }
      // ---- pass 2: reverse scan over chunks
      std::vector<R>& dS = S;  // reuse: dS = ∂loss/∂(state leaving the current chunk)
      if (dhT)
        std::memcpy(dS.data(), dhT + (b * HV + j) * KV, sizeof(R) * KV);
      else
        std::fill(dS.begin(), dS.end(), R(0));
      std::vector<R> dD(C * V), dW(C * K), dQ(C * K), dK(C * K), tmp(C * std::max(K, V)), dgam(C), dbet(C);
      std::vector<R> T1(C * C), T2(C * C);
      for (int64_t c = NC - 1; c >= 0; --c) {
        const int64_t t0 = c * C, n = std::min(C, L - t0);
        const R* qc = q + ((b * L + t0) * H + h) * K;
        const R* kc = k + ((b * L + t0) * H + h) * K;
        const R* vc = v + ((b * L + t0) * HV + j) * V;
        const R* bc = beta + (b * L + t0) * HV + j;
        const R* gc = g + (b * L + t0) * HV + j;
        const R* doc = dout + ((b * L + t0) * HV + j) * V;
        const R* Sc = Sst.data() + c * KV;
        const R* A = Ast.data() + c * C * C;
        const R* KK = KKst.data() + c * C * C;
        const R* W = Wst.data() + c * C * K;
        const R* D = Dst.data() + c * C * V;
        const R* e = cb.e.data();
        const R* Gam = cb.Gam.data();
        chunk_gates(n, C, gc, ldb, cb.gam.data(), cb.e.data(), cb.Gam.data());
        std::fill_n(dgam.data(), n, R(0));
        std::fill_n(dbet.data(), n, R(0));

        // (a) state hand-off to the next chunk
        const R* Gl = Gam + (n - 1) * C;
        const R el = e[n - 1];
        for (int64_t r = 0; r < n; ++r)
#pragma omp simd
          for (int64_t i = 0; i < K; ++i) cb.Kd[r * K + i] = Gl[r] * kc[r * ldq + i];
        gemm(false, false, n, V, K, R(1), cb.Kd.data(), K, dS.data(), V, R(0), dD.data(), V);
        gemm(false, true, n, K, V, R(1), D, V, dS.data(), V, R(0), tmp.data(), K);  // Δ dS'ᵀ
        R dlast = el * dot(dS.data(), Sc, KV);
        for (int64_t r = 0; r < n; ++r) {
          const R cr = Gl[r] * dot(kc + r * ldq, tmp.data() + r * K, K);
          dlast += cr;
          dgam[r] -= cr;
#pragma omp simd
          for (int64_t i = 0; i < K; ++i) dK[r * K + i] = Gl[r] * tmp[r * K + i];
        }
        dgam[n - 1] += dlast;
        for (auto& x : dS) x *= el;

        // (b) outputs
        gemm(false, true, n, K, V, R(1), doc, ldv, Sc, V, R(0), tmp.data(), K);  // dO S_cᵀ
        for (int64_t r = 0; r < n; ++r) {
          dgam[r] += e[r] * dot(qc + r * ldq, tmp.data() + r * K, K);
#pragma omp simd
          for (int64_t i = 0; i < K; ++i) {
            dQ[r * K + i] = e[r] * tmp[r * K + i];
            cb.Qe[r * K + i] = e[r] * qc[r * ldq + i];
          }
        }
        gemm(true, false, K, V, n, R(1), cb.Qe.data(), K, doc, ldv, R(1), dS.data(), V);
        R* M = cb.M.data();
        chunk_qk(n, cb, qc, ldq, kc, ldq, M);
        gemm(true, false, n, V, n, R(1), M, C, doc, ldv, R(1), dD.data(), V);   // dΔ += Mᵀ dO
        R* dM = T1.data();
        gemm(false, true, n, n, V, R(1), doc, ldv, D, V, R(0), dM, C);          // dM = dO Δᵀ
        for (int64_t r = 0; r < n; ++r) {
          for (int64_t s = 0; s <= r; ++s) {
            const R P = dM[r * C + s] * M[r * C + s];
            dgam[r] += P;
            dgam[s] -= P;
            dM[r * C + s] *= Gam[r * C + s];
          }
          for (int64_t s = r + 1; s < n; ++s) dM[r * C + s] = 0;
        }
        gemm(false, false, n, K, n, R(1), dM, C, kc, ldq, R(1), dQ.data(), K);  // dQ += dQK K
        gemm(true, false, n, K, n, R(1), dM, C, qc, ldq, R(1), dK.data(), K);   // dK += dQKᵀ Q

        // (c) Δ = U − W S_c
        gemm(false, true, n, K, V, R(-1), dD.data(), V, Sc, V, R(0), dW.data(), K);
        gemm(true, false, K, V, n, R(-1), W, K, dD.data(), V, R(1), dS.data(), V);

        // (d) U = A Vb, W = A Kb
        chunk_scaled(n, K, V, kc, ldq, vc, ldv, bc, ldb, e, cb.Kb.data(), cb.Vb.data());
        R* dA = T1.data();
        gemm(false, true, n, n, V, R(1), dD.data(), V, cb.Vb.data(), V, R(0), dA, C);
        gemm(false, true, n, n, K, R(1), dW.data(), K, cb.Kb.data(), K, R(1), dA, C);
        R* dVb = cb.Vb.data();  // Vb no longer needed
        gemm(true, false, n, V, n, R(1), A, C, dD.data(), V, R(0), dVb, V);
        R* dKb = cb.Kb.data();
        gemm(true, false, n, K, n, R(1), A, C, dW.data(), K, R(0), dKb, K);
        for (int64_t r = 0; r < n; ++r) {
          const R br = bc[r * ldb];
          R* dvr = dv + ((b * L + t0 + r) * HV + j) * V;
#pragma omp simd
          for (int64_t x = 0; x < V; ++x) dvr[x] = br * dVb[r * V + x];
          dbet[r] += dot(vc + r * ldv, dVb + r * V, V);
          const R sr = e[r] * dot(kc + r * ldq, dKb + r * K, K);
          dbet[r] += sr;
          dgam[r] += br * sr;
          const R be = br * e[r];
#pragma omp simd
          for (int64_t i = 0; i < K; ++i) dK[r * K + i] += be * dKb[r * K + i];
        }

        // (e) dL = −Aᵀ dA Aᵀ
        gemm(true, false, n, n, n, R(1), A, C, dA, C, R(0), T2.data(), C);
        R* dL = T1.data();
        gemm(false, true, n, n, n, R(-1), T2.data(), C, A, C, R(0), dL, C);

        // (f) L = β_r KK ⊙ Γ (strictly lower); T2 := dKK + dKKᵀ
        R* Dsym = T2.data();
        for (int64_t r = 0; r < n; ++r) Dsym[r * C + r] = 0;
        for (int64_t r = 0; r < n; ++r) {
          const R br = bc[r * ldb];
          for (int64_t s = 0; s < r; ++s) {
            const R gx = dL[r * C + s] * Gam[r * C + s];
            const R x = gx * KK[r * C + s];
            dbet[r] += x;
            dgam[r] += br * x;
            dgam[s] -= br * x;
            Dsym[r * C + s] = Dsym[s * C + r] = br * gx;
          }
        }
        gemm(false, false, n, K, n, R(1), Dsym, C, kc, ldq, R(1), dK.data(), K);

        // (g) write β, g grads; dq / dk rows
        R acc = 0;
        for (int64_t r = n - 1; r >= 0; --r) {
          acc += dgam[r];
          dg[(b * L + t0 + r) * HV + j] = acc;
          dbeta[(b * L + t0 + r) * HV + j] = dbet[r];
        }
        R* dqd;
        R* dkd;
        int64_t ldd;
        if (G == 1) {
          dqd = dq + ((b * L + t0) * H + h) * K;
          dkd = dk + ((b * L + t0) * H + h) * K;
          ldd = ldq;
        } else {
          dqd = dqs.data() + ((b * HV + j) * L + t0) * K;
          dkd = dks.data() + ((b * HV + j) * L + t0) * K;
          ldd = K;
        }
        for (int64_t r = 0; r < n; ++r) {
          std::memcpy(dqd + r * ldd, dQ.data() + r * K, sizeof(R) * K);
          std::memcpy(dkd + r * ldd, dK.data() + r * K, sizeof(R) * K);
        }
      }
      if (dh0) std::memcpy(dh0 + (b * HV + j) * KV, dS.data(), sizeof(R) * KV);
    }
  }
  if (G > 1) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < L; ++t) {
        for (int64_t h = 0; h < H; ++h) {
          R* dqt = dq + ((b * L + t) * H + h) * K;
          R* dkt = dk + ((b * L + t) * H + h) * K;
          std::fill_n(dqt, K, R(0));
          std::fill_n(dkt, K, R(0));
          for (int64_t j = h * G; j < (h + 1) * G; ++j) {
            const R* sq = dqs.data() + ((b * HV + j) * L + t) * K;
            const R* sk = dks.data() + ((b * HV + j) * L + t) * K;
            for (int64_t i = 0; i < K; ++i) {
              dqt[i] += sq[i];
              dkt[i] += sk[i];
            }
          }
        }
      }
    }
  }
}

#define LT2_GDN_INSTANTIATE(R)                                                                                 \
  template void gdn_recurrent_forward<R>(const GdnDims&, const R*, const R*, const R*, const R*, const R*,     \
                                         const R*, R*, R*);                                                    \
  template void gdn_recurrent_backward<R>(const GdnDims&, const R*, const R*, const R*, const R*, const R*,    \
                                          const R*, const R*, const R*, R*, R*, R*, R*, R*, R*);               \
  template void gdn_chunk_forward<R>(const GdnDims&, const R*, const R*, const R*, const R*, const R*,         \
                                     const R*, R*, R*, int64_t);                                               \
  template void gdn_chunk_backward<R>(const GdnDims&, const R*, const R*, const R*, const R*, const R*,        \
                                      const R*, const R*, const R*, R*, R*, R*, R*, R*, R*, int64_t);

LT2_GDN_INSTANTIATE(float)
LT2_GDN_INSTANTIATE(double)
#undef LT2_GDN_INSTANTIATE

}  // namespace lt2::cpu
