// Gated DeltaNet core (SPEC §3) on the GPU: a first version that runs the token-by-token
// recurrence with an fp32 state, the same math as cpu::gdn_recurrent_* (the oracle).
//
//     S <- α_t S;   u = β_t (v_t − Sᵀ k_t);   S <- S + k_t uᵀ;   o_t = Sᵀ q_t
//
// The `chunked` flag selects between two forms of the same exact math on the CPU; here it is
// ignored: the op picks by size. Sequences of at least kMinChunkedL tokens go to the chunked
// tensor-core kernels (cuda/gdn_chunked.cu) where they support the dtype and K; shorter ones
// (decode steps) and the rest run the recurrence below. LT2_GDN_RECURRENT=1 forces the
// recurrence (benchmarks compare the two with it).
//
// Parallel layout. Column c of the K×V state only ever mixes with itself: with s = S[:, c],
//     s <- α s;  u_c = β (v_c − s·k);  s <- s + u_c k;  o_c = s·q,
// so each (batch, value head, tile of 32 value columns) gets one block of 8 warps; a warp
// holds 4 columns and each column's K-vector is split over 8 lanes (lane p holds rows
// p, p+8, .., E = ceil(K/8) registers). The dot products over K are 3 xor-shuffles inside
// the 8 lanes. The per-token q, k, v, β, α are staged in shared memory a few tokens at a time.
// Value head hv reads key head hv / (HV/H), as on the CPU.
//
// Backward (reverse mode of the loop above, see cpu/gdn.cpp for the formulas). It needs
// S_{t-1} at every t, walking t backwards. One kernel, per block:
//   1. re-runs the forward and checkpoints the state every kChunk tokens (global scratch);
//   2. walks the chunks from the last: recomputes the chunk's per-token states from its
//      checkpoint into global scratch, then runs the reverse step over them, carrying dS
//      (from dhT) in registers; what is left at t = 0 is dh0.
// Scratch is private to each thread (it reads back only what it wrote), so it needs no
// synchronisation and is laid out [slot][element][thread] for coalescing.
// dv is per column and written directly. dq, dk (sums over all V columns and over the value
// heads sharing a key head), dβ and dg (sums over the columns) are reduced deterministically:
// inside a warp by xor-shuffles, across the block's 8 warps in shared memory in a fixed
// order, then one fp32 partial per column tile goes to global scratch and a second kernel
// adds the tiles (and grouped value heads) in a fixed order. No atomics anywhere.
// Memory: scratch is O(B·HV·K·V·(L/kChunk + kChunk)) for the states plus
// O(B·HV·tiles·L·K) for the dq / dk partials, all freed when the op returns.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/gdn_chunked.h"

namespace lt2::cuda {

namespace {

constexpr int kCols = 32;         // value columns per block
constexpr int kWarps = 8;         // 4 columns per warp
constexpr int kThreads = kWarps * 32;
constexpr int kLanesPerCol = 8;   // lanes sharing one column's K-vector
constexpr int64_t kChunk = 64;    // backward checkpoint interval (tokens)
constexpr int64_t kMaxK = 256;
constexpr unsigned kFull = 0xffffffffu;

// Tokens staged at once: forward 256/E and backward 128/E, so the staged K-rows always take
// 2048 (forward) or 1024 (backward) floats per tensor whatever K is. Both divide kChunk.
template <int E> constexpr int fwd_stage() { return 256 / E; }
template <int E> constexpr int bwd_stage() { return 128 / E; }

struct GdnShape {
  int64_t B, L, H, HV, K, V, tiles;
};

template <class T>
struct GdnIn {
  const T* q;
  const T* k;
  const T* v;
  const float* beta;
  const float* g;
  const float* h0;   // null: zero initial state
  const T* dout;     // backward only
  const float* dhT;  // backward only; null: zero
};

// Sum over the 8 lanes of a column (every lane gets the same bits: a+b == b+a at each level).
__device__ __forceinline__ float col_sum(float x) {
  x += __shfl_xor_sync(kFull, x, 1);
  x += __shfl_xor_sync(kFull, x, 2);
  x += __shfl_xor_sync(kFull, x, 4);
  return x;
}
// Sum over the warp's 4 columns of the value each lane holds (lanes p, p+8, p+16, p+24).
__device__ __forceinline__ float cross_col_sum(float x) {
  x += __shfl_xor_sync(kFull, x, 8);
  x += __shfl_xor_sync(kFull, x, 16);
  return x;
}

// Which part of the state this thread holds.
struct Lane {
  int tid, lane, warp, p, cw, col;  // p: row lane in the column; cw: column in the warp; col: column in the tile
  int64_t c;                        // value column
  bool col_ok;                      // c < V
};
__device__ __forceinline__ Lane lane_info(const GdnShape& d) {
  Lane ln;
  ln.tid = threadIdx.x;
  ln.lane = ln.tid & 31;
  ln.warp = ln.tid >> 5;
  ln.p = ln.lane & (kLanesPerCol - 1);
  ln.cw = ln.lane / kLanesPerCol;
  ln.col = ln.warp * 4 + ln.cw;
  ln.c = int64_t(blockIdx.x) * kCols + ln.col;
  ln.col_ok = ln.c < d.V;
  return ln;
}

// Loads this thread's slice (rows p + 8i, column c) of a [B, HV, K, V] F32 state, zero if absent.
template <int E>
__device__ __forceinline__ void load_state(const float* src, const GdnShape& d, int64_t b, int64_t hv,
                                           const Lane& ln, float (&s)[E]) {
#pragma unroll
  for (int i = 0; i < E; ++i) {
    const int64_t kk = ln.p + kLanesPerCol * i;
    s[i] = (src && ln.col_ok && kk < d.K) ? src[((b * d.HV + hv) * d.K + kk) * d.V + ln.c] : 0.f;
  }
}
template <int E>
__device__ __forceinline__ void store_state(float* dst, const GdnShape& d, int64_t b, int64_t hv, const Lane& ln,
                                            const float (&s)[E]) {
  if (!ln.col_ok) return;
#pragma unroll
  for (int i = 0; i < E; ++i) {
    const int64_t kk = ln.p + kLanesPerCol * i;
    if (kk < d.K) dst[((b * d.HV + hv) * d.K + kk) * d.V + ln.c] = s[i];
  }
}

// Stages tokens [ta, ta + n) for this block: k (and q) rows padded with zeros to KP = 8E,
// the tile's 32 columns of v (and dout), β and α = exp(g). qs / dos may be null.
template <class T, int E>
__device__ void stage_tokens(const GdnIn<T>& in, const GdnShape& d, int64_t b, int64_t hv, int64_t ta, int n,
                             float* ks, float* qs, float* vs, float* dos, float* bs, float* as) {
  constexpr int KP = kLanesPerCol * E;
  const int64_t h = hv / (d.HV / d.H);
  for (int idx = threadIdx.x; idx < n * KP; idx += kThreads) {
    const int r = idx / KP, x = idx % KP;
    const int64_t off = ((b * d.L + ta + r) * d.H + h) * d.K + x;
    ks[idx] = x < d.K ? ld(in.k[off]) : 0.f;
    if (qs) qs[idx] = x < d.K ? ld(in.q[off]) : 0.f;
  }
  for (int idx = threadIdx.x; idx < n * kCols; idx += kThreads) {
    const int r = idx / kCols;
    const int64_t c = int64_t(blockIdx.x) * kCols + idx % kCols;
    const int64_t off = ((b * d.L + ta + r) * d.HV + hv) * d.V + c;
    vs[idx] = c < d.V ? ld(in.v[off]) : 0.f;
    if (dos) dos[idx] = c < d.V ? ld(in.dout[off]) : 0.f;
  }
  for (int r = threadIdx.x; r < n; r += kThreads) {
    const int64_t off = (b * d.L + ta + r) * d.HV + hv;
    bs[r] = in.beta[off];
    as[r] = expf(in.g[off]);
  }
}

// One forward step of this thread's column slice for staged token r: s <- α s, u = β (v − s·k),
// s <- s + u k.
template <int E>
__device__ __forceinline__ void fwd_step(float (&s)[E], const float* ks, const float* vs, const float* bs,
                                         const float* as, int r, const Lane& ln) {
  constexpr int KP = kLanesPerCol * E;
  const float* kr = ks + r * KP + ln.p;
  const float a = as[r];
  float dot = 0.f;
#pragma unroll
  for (int i = 0; i < E; ++i) {
    s[i] *= a;
    dot += s[i] * kr[kLanesPerCol * i];
  }
  const float u = bs[r] * (vs[r * kCols + ln.col] - col_sum(dot));
#pragma unroll
  for (int i = 0; i < E; ++i) s[i] += kr[kLanesPerCol * i] * u;
}

// ---- forward ----------------------------------------------------------------------------------
template <class T, int E>
__global__ void __launch_bounds__(kThreads) gdn_fwd_kernel(GdnIn<T> in, GdnShape d, T* o, float* hT) {
  constexpr int NT = fwd_stage<E>(), KP = kLanesPerCol * E;
  __shared__ float ks[NT * KP], qs[NT * KP], vs[NT * kCols], os[NT * kCols], bs[NT], as[NT];
  const Lane ln = lane_info(d);
  const int64_t hv = blockIdx.y, b = blockIdx.z;
  float s[E];
  load_state(in.h0, d, b, hv, ln, s);
  for (int64_t ta = 0; ta < d.L; ta += NT) {
    const int n = int(min(int64_t(NT), d.L - ta));
    __syncthreads();  // the previous stage's inputs and outputs are consumed
    stage_tokens<T, E>(in, d, b, hv, ta, n, ks, qs, vs, nullptr, bs, as);
    __syncthreads();
    for (int r = 0; r < n; ++r) {
      fwd_step(s, ks, vs, bs, as, r, ln);
      const float* qr = qs + r * KP + ln.p;
      float ov = 0.f;
#pragma unroll
      for (int i = 0; i < E; ++i) ov += s[i] * qr[kLanesPerCol * i];
      ov = col_sum(ov);
      if (ln.p == 0) os[r * kCols + ln.col] = ov;
    }
    __syncthreads();
    // Coalesced store of the stage's outputs: 32 consecutive columns per token.
    for (int idx = threadIdx.x; idx < n * kCols; idx += kThreads) {
      const int64_t c = int64_t(blockIdx.x) * kCols + idx % kCols;
      if (c < d.V) o[((b * d.L + ta + idx / kCols) * d.HV + hv) * d.V + c] = st<T>(os[idx]);
    }
  }
  if (hT) store_state(hT, d, b, hv, ln, s);
}

// ---- backward ---------------------------------------------------------------------------------
template <int E>
constexpr int64_t bwd_smem_floats() {
  constexpr int64_t NT = bwd_stage<E>(), KP = kLanesPerCol * E;
  // ks, qs | vs, dos, dvs | β, α | dq, dk per (token, warp) | dβ, dα per (token, warp)
  return 2 * NT * KP + 3 * NT * kCols + 2 * NT + 2 * NT * kWarps * KP + 2 * NT * kWarps;
}

struct GdnScratch {
  float* ckpt;     // [blocks][NC][E][kThreads]: state entering each chunk
  float* states;   // [blocks][kChunk][E][kThreads]: state before each token of the current chunk
  float* part_dq;  // [blocks][L][K], blocks = (b * HV + hv) * tiles + tile
  float* part_dk;
  float* part_db;  // [blocks][L]
  float* part_da;  // [blocks][L]: sum over the tile of <dS, S_prev> (dg = α · that)
};

template <class T, int E>
__global__ void __launch_bounds__(kThreads) gdn_bwd_kernel(GdnIn<T> in, GdnShape d, GdnScratch sc, T* dv,
                                                            float* dh0) {
  constexpr int NT = bwd_stage<E>(), KP = kLanesPerCol * E;
  extern __shared__ float smem[];
  float* ks = smem;
  float* qs = ks + NT * KP;
  float* vs = qs + NT * KP;
  float* dos = vs + NT * kCols;
  float* dvs = dos + NT * kCols;
  float* bs = dvs + NT * kCols;
  float* as = bs + NT;
  float* rq = as + NT;              // [NT][kWarps][KP]
  float* rk = rq + NT * kWarps * KP;
  float* rb = rk + NT * kWarps * KP;  // [NT][kWarps]
  float* ra = rb + NT * kWarps;

  const Lane ln = lane_info(d);
  const int64_t hv = blockIdx.y, b = blockIdx.z;
  const int64_t blk = (b * d.HV + hv) * d.tiles + blockIdx.x;
  const int64_t NC = (d.L + kChunk - 1) / kChunk;
  float* ckpt = sc.ckpt + blk * NC * E * kThreads + ln.tid;
  float* states = sc.states + blk * kChunk * E * kThreads + ln.tid;
  float* pdq = sc.part_dq + blk * d.L * d.K;
  float* pdk = sc.part_dk + blk * d.L * d.K;
  float* pdb = sc.part_db + blk * d.L;
  float* pda = sc.part_da + blk * d.L;

  // 1. Forward, checkpointing the state entering every chunk (the last chunk's tokens are
  //    not needed: phase 2 starts from its checkpoint).
  float s[E];
  load_state(in.h0, d, b, hv, ln, s);
  const int64_t last_start = (NC - 1) * kChunk;
  for (int64_t ta = 0; ta < last_start; ta += NT) {  // NT divides kChunk: full stages only
    if (ta % kChunk == 0) {
#pragma unroll
      for (int i = 0; i < E; ++i) ckpt[((ta / kChunk) * E + i) * kThreads] = s[i];
    }
    __syncthreads();
    stage_tokens<T, E>(in, d, b, hv, ta, NT, ks, nullptr, vs, nullptr, bs, as);
    __syncthreads();
    for (int r = 0; r < NT; ++r) fwd_step(s, ks, vs, bs, as, r, ln);
  }
#pragma unroll
  for (int i = 0; i < E; ++i) ckpt[((NC - 1) * E + i) * kThreads] = s[i];

  // 2. Reverse over chunks, carrying ds = dLoss/dS (this thread's slice).
  float ds[E];
  load_state(in.dhT, d, b, hv, ln, ds);
  for (int64_t ch = NC - 1; ch >= 0; --ch) {
    const int64_t t0 = ch * kChunk;
    const int n = int(min(kChunk, d.L - t0));
    // 2a. Per-token states of the chunk: slot r holds S_{t0+r-1}, the state before token t0+r.
#pragma unroll
    for (int i = 0; i < E; ++i) s[i] = ckpt[(ch * E + i) * kThreads];
    for (int sa = 0; sa < n; sa += NT) {
      const int m = min(NT, n - sa);
      __syncthreads();
      stage_tokens<T, E>(in, d, b, hv, t0 + sa, m, ks, nullptr, vs, nullptr, bs, as);
      __syncthreads();
      for (int r = 0; r < m; ++r) {
#pragma unroll
        for (int i = 0; i < E; ++i) states[((sa + r) * E + i) * kThreads] = s[i];
        fwd_step(s, ks, vs, bs, as, r, ln);
      }
    }
    // 2b. Reverse steps, one stage at a time from the chunk's end.
    for (int sa = ((n - 1) / NT) * NT; sa >= 0; sa -= NT) {
      const int m = min(NT, n - sa);
      __syncthreads();  // the previous stage's reductions are flushed
      stage_tokens<T, E>(in, d, b, hv, t0 + sa, m, ks, qs, vs, dos, bs, as);
      __syncthreads();
      for (int r = m - 1; r >= 0; --r) {
        const float* kr = ks + r * KP + ln.p;
        const float* qr = qs + r * KP + ln.p;
        const float a = as[r], bt = bs[r];
        const float vc = vs[r * kCols + ln.col], doc = dos[r * kCols + ln.col];
        float sp[E];  // S_{t-1}
#pragma unroll
        for (int i = 0; i < E; ++i) sp[i] = states[((sa + r) * E + i) * kThreads];
        // Recompute p = (α S_{t-1})ᵀ k and u = β (v − p) for this column.
        float pk = 0.f;
#pragma unroll
        for (int i = 0; i < E; ++i) pk += a * sp[i] * kr[kLanesPerCol * i];
        pk = col_sum(pk);
        const float u = bt * (vc - pk);
        float* rq_r = rq + (r * kWarps + ln.warp) * KP + ln.p;
        float* rk_r = rk + (r * kWarps + ln.warp) * KP + ln.p;
        // o = S_tᵀ q:  dq += S_t do (summed over columns);  dS += q doᵀ.
        // Then S_t = Sa + k uᵀ:  du = dSᵀ k.
        float dup = 0.f;
#pragma unroll
        for (int i = 0; i < E; ++i) {
          const float kv = kr[kLanesPerCol * i];
          const float x = cross_col_sum((a * sp[i] + kv * u) * doc);
          if ((i & 3) == ln.cw) rq_r[kLanesPerCol * i] = x;  // the 4 columns share the stores
          ds[i] += qr[kLanesPerCol * i] * doc;
          dup += ds[i] * kv;
        }
        const float du = col_sum(dup);
        // u = β (v − p):  dβ = du (v − p), dv = β du, dp = −β du.
        // dk += dS u + Sa dp;  dSa = dS + k dpᵀ;  dα = <dSa, S_{t-1}>;  dS_{t-1} = α dSa.
        const float dp = -bt * du;
        float dal = 0.f;
#pragma unroll
        for (int i = 0; i < E; ++i) {
          const float kv = kr[kLanesPerCol * i];
          const float y = cross_col_sum(ds[i] * u + a * sp[i] * dp);
          if ((i & 3) == ln.cw) rk_r[kLanesPerCol * i] = y;
          ds[i] += kv * dp;
          dal += ds[i] * sp[i];
          ds[i] *= a;
        }
        dal = warp_sum(dal);                           // rows and the warp's 4 columns
        const float dbp = cross_col_sum(du * (vc - pk));  // identical in the 8 lanes of a column
        if (ln.lane == 0) {
          rb[r * kWarps + ln.warp] = dbp;
          ra[r * kWarps + ln.warp] = dal;
        }
        if (ln.p == 0) dvs[r * kCols + ln.col] = bt * du;
      }
      __syncthreads();
      // Flush the stage: per-tile partials (warps added in a fixed order) and dv.
      for (int idx = threadIdx.x; idx < m * KP; idx += kThreads) {
        const int r = idx / KP, x = idx % KP;
        if (x >= d.K) continue;
        float sq = 0.f, sk = 0.f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) {
          sq += rq[(r * kWarps + w) * KP + x];
          sk += rk[(r * kWarps + w) * KP + x];
        }
        pdq[(t0 + sa + r) * d.K + x] = sq;
        pdk[(t0 + sa + r) * d.K + x] = sk;
      }
      for (int r = threadIdx.x; r < m; r += kThreads) {
        float sb = 0.f, sa_ = 0.f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) {
          sb += rb[r * kWarps + w];
          sa_ += ra[r * kWarps + w];
        }
        pdb[t0 + sa + r] = sb;
        pda[t0 + sa + r] = sa_;
      }
      for (int idx = threadIdx.x; idx < m * kCols; idx += kThreads) {
        const int64_t c = int64_t(blockIdx.x) * kCols + idx % kCols;
        if (c < d.V) dv[((b * d.L + t0 + sa + idx / kCols) * d.HV + hv) * d.V + c] = st<T>(dvs[idx]);
      }
    }
  }
  if (dh0) store_state(dh0, d, b, hv, ln, ds);
}

// dq[b, t, h, :] = sum over the group's value heads and the column tiles (fixed order); same for dk.
template <class T>
__global__ void gdn_reduce_qk_kernel(const float* part_dq, const float* part_dk, T* dq, T* dk, GdnShape d) {
  const int64_t n = d.B * d.L * d.H * d.K, G = d.HV / d.H;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n; idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t x = idx % d.K, h = (idx / d.K) % d.H, t = (idx / (d.K * d.H)) % d.L, b = idx / (d.K * d.H * d.L);
    float sq = 0.f, sk = 0.f;
    for (int64_t hv = h * G; hv < (h + 1) * G; ++hv)
      for (int64_t tile = 0; tile < d.tiles; ++tile) {
        const int64_t off = (((b * d.HV + hv) * d.tiles + tile) * d.L + t) * d.K + x;
        sq += part_dq[off];
        sk += part_dk[off];
      }
    dq[idx] = st<T>(sq);
    dk[idx] = st<T>(sk);
  }
}

// dβ = sum over tiles; dg = α · sum over tiles of <dSa, S_prev>.
__global__ void gdn_reduce_gates_kernel(const float* part_db, const float* part_da, const float* g, float* dbeta,
                                        float* dg, GdnShape d) {
  const int64_t n = d.B * d.L * d.HV;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n; idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t hv = idx % d.HV, t = (idx / d.HV) % d.L, b = idx / (d.HV * d.L);
    float sb = 0.f, sa = 0.f;
    for (int64_t tile = 0; tile < d.tiles; ++tile) {
      const int64_t off = ((b * d.HV + hv) * d.tiles + tile) * d.L + t;
      sb += part_db[off];
      sa += part_da[off];
    }
    dbeta[idx] = sb;
    dg[idx] = expf(g[idx]) * sa;
  }
}

// One chunk: below that the chunked kernels' fixed cost (three launches, per-chunk setup)
// buys nothing over the recurrence.
constexpr int64_t kMinChunkedL = 64;

bool recurrence_forced() {
  const char* s = std::getenv("LT2_GDN_RECURRENT");
  return s && *s && std::string(s) != "0";
}

GdnShape gdn_shape(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
                   const Tensor& h0, const char* op) {
  expect_cuda({&q, &k, &v, &beta, &g, &h0}, op);
  LT2_CHECK(q.ndim() == 4 && v.ndim() == 4, op, ": q, k, v must be [B, L, heads, dim]");
  GdnShape d{q.dim(0), q.dim(1), q.dim(2), v.dim(2), q.dim(3), v.dim(3), 0};
  check_shape(k, q.shape(), "gdn k");
  check_same_dtype(q, k, "gdn k");
  check_same_dtype(q, v, "gdn v");
  LT2_CHECK(v.dim(0) == d.B && v.dim(1) == d.L, op, ": v ", shape_str(v.shape()), " does not match q ",
            shape_str(q.shape()));
  LT2_CHECK(d.B >= 1 && d.L >= 1 && d.H >= 1 && d.HV >= 1 && d.K >= 1 && d.V >= 1, op,
            ": all dims must be >= 1, got q ", shape_str(q.shape()), " v ", shape_str(v.shape()));
  LT2_CHECK(d.HV % d.H == 0, op, ": value heads ", d.HV, " must be a multiple of key heads ", d.H);
  LT2_CHECK(d.K >= 1 && d.K <= kMaxK, op, ": key head dim ", d.K, " must be in 1..", kMaxK, " on CUDA");
  LT2_CHECK(d.HV <= 65535 && d.B <= 65535, op, ": too many value heads or batch rows for the launch grid");
  check_shape(beta, {d.B, d.L, d.HV}, "gdn beta");
  check_shape(g, {d.B, d.L, d.HV}, "gdn g");
  expect_f32(beta, op, "beta");
  expect_f32(g, op, "g");
  if (h0.defined()) check_shape(h0, {d.B, d.HV, d.K, d.V}, "gdn initial state");
  expect_f32(h0, op, "h0");
  d.tiles = (d.V + kCols - 1) / kCols;
  return d;
}

bool use_chunked(const GdnShape& d, DType dt) {
  return d.L >= kMinChunkedL && gdn_chunked_supported(dt, d.K, d.V) && !recurrence_forced();
}

// Calls f(std::integral_constant<int, E>) with E = rows per lane: K <= 64, 128 or 256.
template <class F>
void with_rows_per_lane(int64_t K, F&& f) {
  if (K <= 64) f(std::integral_constant<int, 8>{});
  else if (K <= 128) f(std::integral_constant<int, 16>{});
  else f(std::integral_constant<int, 32>{});
}

template <class T>
GdnIn<T> gdn_in(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
                const Tensor& h0, const Tensor* dout, const Tensor* dhT) {
  return GdnIn<T>{q.data<T>(),
                  k.data<T>(),
                  v.data<T>(),
                  beta.data<float>(),
                  g.data<float>(),
                  h0.defined() ? h0.data<float>() : nullptr,
                  dout ? dout->data<T>() : nullptr,
                  dhT && dhT->defined() ? dhT->data<float>() : nullptr};
}

}  // namespace

// `chunked` is ignored on CUDA: both forms compute the same recurrence (see the top of the file).
Tensor gdn(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g, const Tensor& h0,
           Tensor* hT, bool chunked, Tensor* states) {
  (void)chunked;
  const GdnShape d = gdn_shape(q, k, v, beta, g, h0, "gdn");
  if (states) *states = Tensor();
  if (use_chunked(d, q.dtype())) return gdn_chunked_forward(q, k, v, beta, g, h0, hT, 0, states);
  Tensor o = Tensor::empty({d.B, d.L, d.HV, d.V}, q.dtype(), Device::CUDA);
  Tensor h = hT ? Tensor::empty({d.B, d.HV, d.K, d.V}, DType::F32, Device::CUDA) : Tensor();
  dispatch_float(q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const GdnIn<T> in = gdn_in<T>(q, k, v, beta, g, h0, nullptr, nullptr);
    with_rows_per_lane(d.K, [&](auto e) {
      gdn_fwd_kernel<T, decltype(e)::value><<<dim3(unsigned(d.tiles), unsigned(d.HV), unsigned(d.B)), kThreads, 0,
                                               stream()>>>(in, d, o.data<T>(), hT ? h.data<float>() : nullptr);
    });
  });
  check_launch("gdn");
  if (hT) *hT = h;
  return o;
}

GdnGrads gdn_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
                      const Tensor& h0, const Tensor& dout, const Tensor& dhT, bool chunked, const Tensor& states) {
  (void)chunked;
  const GdnShape d = gdn_shape(q, k, v, beta, g, h0, "gdn_backward");
  expect_cuda({&dout, &dhT}, "gdn_backward");
  check_shape(dout, {d.B, d.L, d.HV, d.V}, "gdn dout");
  check_same_dtype(q, dout, "gdn dout");
  if (dhT.defined()) check_shape(dhT, {d.B, d.HV, d.K, d.V}, "gdn dhT");
  expect_f32(dhT, "gdn_backward", "dhT");
  if (use_chunked(d, q.dtype())) return gdn_chunked_backward(q, k, v, beta, g, h0, dout, dhT, 0, states);
  GdnGrads gr = empty_gdn_grads(q, k, v, beta, g, h0);
  const int64_t blocks = d.B * d.HV * d.tiles, NC = (d.L + kChunk - 1) / kChunk;
  dispatch_float(q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const GdnIn<T> in = gdn_in<T>(q, k, v, beta, g, h0, &dout, &dhT);
    with_rows_per_lane(d.K, [&](auto e) {
      constexpr int E = decltype(e)::value;
      // Scratch tensors live until the op returns; the allocator hands their blocks out again
      // only in stream order, after the kernels below.
      Tensor ckpt = Tensor::empty({blocks, NC, E, kThreads}, DType::F32, Device::CUDA);
      Tensor states = Tensor::empty({blocks, kChunk, E, kThreads}, DType::F32, Device::CUDA);
      Tensor part_dq = Tensor::empty({blocks, d.L, d.K}, DType::F32, Device::CUDA);
      Tensor part_dk = Tensor::empty({blocks, d.L, d.K}, DType::F32, Device::CUDA);
      Tensor part_db = Tensor::empty({blocks, d.L}, DType::F32, Device::CUDA);
      Tensor part_da = Tensor::empty({blocks, d.L}, DType::F32, Device::CUDA);
      const GdnScratch sc{ckpt.data<float>(),    states.data<float>(),  part_dq.data<float>(),
                          part_dk.data<float>(), part_db.data<float>(), part_da.data<float>()};
      const size_t smem = sizeof(float) * size_t(bwd_smem_floats<E>());
      auto kernel = gdn_bwd_kernel<T, E>;
      allow_smem(kernel, smem);
      kernel<<<dim3(unsigned(d.tiles), unsigned(d.HV), unsigned(d.B)), kThreads, smem, stream()>>>(
          in, d, sc, gr.dv.data<T>(), h0.defined() ? gr.dh0.data<float>() : nullptr);
      check_launch("gdn_backward");
      const int64_t nqk = d.B * d.L * d.H * d.K, ng = d.B * d.L * d.HV;
      gdn_reduce_qk_kernel<T><<<unsigned(std::min<int64_t>(blocks_for(nqk, 256), 65535)), 256, 0, stream()>>>(
          part_dq.data<float>(), part_dk.data<float>(), gr.dq.data<T>(), gr.dk.data<T>(), d);
      check_launch("gdn_backward reduce dq dk");
      gdn_reduce_gates_kernel<<<unsigned(std::min<int64_t>(blocks_for(ng, 256), 65535)), 256, 0, stream()>>>(
          part_db.data<float>(), part_da.data<float>(), g.data<float>(), gr.dbeta.data<float>(), gr.dg.data<float>(),
          d);
      check_launch("gdn_backward reduce gates");
    });
  });
  return gr;
}

}  // namespace lt2::cuda
