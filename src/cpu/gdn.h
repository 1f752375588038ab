#pragma once
// Gated DeltaNet core recurrence on already-activated inputs (SPEC §3), CPU.
//
// Per batch b, value head j (key head h = j / (HV/H)), token t, state S ∈ R^{K×V}:
//     S  <- α_t S                 α_t = exp(g_t), g_t <= 0 the log decay
//     u  =  β_t (v_t − Sᵀ k_t)
//     S  <- S + k_t uᵀ
//     o_t = Sᵀ q_t                (read after the write)
// q is used exactly as given (the caller has L2-normalised and scaled it).
//
// Two implementations with identical semantics:
//   * gdn_recurrent_*  token by token; the backward stores every per-token state and is the exact
//                      reverse-mode derivative of the loop above (the oracle for tests).
//   * gdn_chunk_*      the chunked WY / UT form of SPEC §3 with chunk size C (any L; the last chunk
//                      may be partial); parallel over (b, value head) with OpenMP, chunk-level
//                      products through BLAS.
//
// Layouts (row-major, contiguous):
//   q, k   [B, L, H,  K]
//   v      [B, L, HV, V]
//   beta,g [B, L, HV]
//   h0, hT [B, HV, K, V]     (h0 nullable = zero initial state; hT nullable = not wanted)
//   o      [B, L, HV, V]
// Backward: dout like o, dhT like hT (nullable = zero). Gradients are WRITTEN (overwritten, never
// accumulated into); dq / dk sum over the value heads sharing a key head; dh0 is nullable.
// The state is kept in R precision (float for float).
#include <cstdint>

namespace lt2::cpu {

struct GdnDims {
  int64_t B, L, H, HV, K, V;  // H key heads, HV value heads, HV % H == 0
};

template <class R>
void gdn_recurrent_forward(const GdnDims& d, const R* q, const R* k, const R* v, const R* beta, const R* g,
                           const R* h0, R* o, R* hT);

template <class R>
void gdn_recurrent_backward(const GdnDims& d, const R* q, const R* k, const R* v, const R* beta, const R* g,
                            const R* h0, const R* dout, const R* dhT, R* dq, R* dk, R* dv, R* dbeta, R* dg,
                            R* dh0);

template <class R>
void gdn_chunk_forward(const GdnDims& d, const R* q, const R* k, const R* v, const R* beta, const R* g,
                       const R* h0, R* o, R* hT, int64_t chunk = 64);

template <class R>
void gdn_chunk_backward(const GdnDims& d, const R* q, const R* k, const R* v, const R* beta, const R* g,
                        const R* h0, const R* dout, const R* dhT, R* dq, R* dk, R* dv, R* dbeta, R* dg, R* dh0,
                        int64_t chunk = 64);

}  // namespace lt2::cpu
