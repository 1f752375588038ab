// Causal softmax attention (GQA, optional sliding window) on the GPU: a plain flash-style
// first version in fp32 arithmetic (FlashAttention's tiling and online softmax, no tensor
// cores). Memory stays O(L) per head: the forward keeps only the log-sum-exp of each row,
// and the backward recomputes the probabilities from it.
//
// Work layout, shared by the three tiled kernels: a block of 8 warps owns 32 "rows" (queries
// in the forward and dQ kernels, keys in the dK/dV kernel), 4 per warp, and walks 32-wide
// tiles of the other side staged in shared memory (fp32). Inside a tile, lane j owns column j
// of the score tile: it computes the dot products of its column with the warp's 4 rows
// together, so every float4 it reads from its own (padded, bank-conflict-free) row is used 4
// times and the rows' float4s are warp-wide broadcasts. The head-dim accumulators of a row are
// spread over the lanes, lane l holding dims l, l+32, .. (NPL = ceil(D/32) registers per row);
// probabilities move from the lane that computed them to every lane by shuffles, and each
// staged value read in that accumulation serves the warp's 4 rows.
// Only tiles that can hold a visible (causal / window) pair are visited, and no atomics are
// used: dQ and dK/dV come from two kernels, each recomputing P from lse; the dK/dV kernel
// loops over the query heads of its KV group, so GQA sums in a fixed order.
// BF16 inputs with head dim 64 or 128 take the tensor-core kernels of flash_attention.cu
// instead (flash_supported); F32 and other head dims stay here.
#include <algorithm>
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/flash_attention.h"
#include "cuda/op_util.cuh"

namespace lt2::cuda {

namespace {

constexpr int kWarps = 8;
constexpr int kRowsPerWarp = 4;
constexpr int kRows = kWarps * kRowsPerWarp;  // rows a block owns
constexpr int kTile = 32;                     // columns of a staged tile: one per lane
constexpr int kThreads = kWarps * 32;
constexpr int64_t kMaxHeadDim = 256;
constexpr unsigned kFull = 0xffffffffu;

struct AttnShape {
  int64_t B, L, H, Hkv, D, window;  // window <= 0: full causal
  float scale;
};

AttnShape attn_shape(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window, double scale,
                     const char* op) {
  expect_cuda({&q, &k, &v}, op);
  LT2_CHECK(q.ndim() == 4 && k.ndim() == 4, op, ": q, k, v must be [B, L, H, D]");
  AttnShape s{q.dim(0), q.dim(1), q.dim(2), k.dim(2), q.dim(3), window, float(scale)};
  check_shape(k, {s.B, s.L, s.Hkv, s.D}, "attention k");
  check_shape(v, {s.B, s.L, s.Hkv, s.D}, "attention v");
  check_same_dtype(q, k, "attention k");
  check_same_dtype(q, v, "attention v");
  LT2_CHECK(s.Hkv > 0 && s.H % s.Hkv == 0, op, ": query heads ", s.H, " not a multiple of kv heads ", s.Hkv);
  LT2_CHECK(s.D >= 1 && s.D <= kMaxHeadDim, op, ": head dim ", s.D, " must be in 1..", kMaxHeadDim, " on CUDA");
  LT2_CHECK(s.H <= 65535 && s.B <= 65535, op, ": too many heads or batch rows for the launch grid");
  return s;
}

// Query t sees key s.
__device__ __forceinline__ bool visible(int64_t t, int64_t s, int64_t window) {
  return s <= t && (window <= 0 || t - s < window);
}

// Calls f(std::integral_constant<int, NPL>) with NPL = ceil(D / 32) rounded up to 1, 2, 4 or 8.
template <class F>
void with_npl(int64_t D, F&& f) {
  if (D <= 32) f(std::integral_constant<int, 1>{});
  else if (D <= 64) f(std::integral_constant<int, 2>{});
  else if (D <= 128) f(std::integral_constant<int, 4>{});
  else f(std::integral_constant<int, 8>{});
}

// Shared-memory row strides (floats). Rows read as warp-wide broadcasts use Dq = D rounded up
// to a multiple of 4 (float4 loads; the padding is zero). Rows that lane j reads on its own
// use Dl = Dq, plus 4 when Dq/4 is even, so that Dl/4 is odd and the 8 lanes of a float4
// access phase fall on 8 different 16-byte bank groups.
__host__ __device__ __forceinline__ int pad4(int64_t D) { return int((D + 3) / 4 * 4); }
__host__ __device__ __forceinline__ int lane_stride(int64_t D) {
  const int dq = pad4(D);
  return (dq / 4) % 2 == 0 ? dq + 4 : dq;
}

__device__ __forceinline__ float dot4(const float4 a, const float4 b) {
  return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}

// Stages rows [r0, r0 + rows) of a tensor with row stride src_ld, dims [0, D), into a shared
// array with row stride `stride`; rows at or past r_end and the padding columns up to pad4(D)
// are zero (so they add nothing to the float4 dot products).
template <class T>
__device__ __forceinline__ void stage_rows(const T* src, int64_t src_ld, int64_t r0, int64_t r_end, int rows, int D,
                                           float* dst, int stride) {
  const int dq = pad4(D);
  for (int idx = threadIdx.x; idx < rows * dq; idx += kThreads) {
    const int j = idx / dq, d = idx % dq;
    const int64_t r = r0 + j;
    dst[j * stride + d] = (r < r_end && d < D) ? ld(src[r * src_ld + d]) : 0.f;
  }
}

// ---- forward ------------------------------------------------------------------------------
// Block (query tile, head, batch). Shared: Qs [kRows][Dq], Ks [kTile][Dl], Vs [kTile][Dq].
template <class T, int NPL>
__global__ void __launch_bounds__(kThreads) attn_fwd_kernel(const T* q, const T* k, const T* v, T* o, float* lse,
                                                             AttnShape sh) {
  extern __shared__ float4 smem4[];
  const int D = int(sh.D), Dq = pad4(D), Dl = lane_stride(D);
  float* Qs = reinterpret_cast<float*>(smem4);
  float* Ks = Qs + kRows * Dq;
  float* Vs = Ks + kTile * Dl;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, rbase = warp * kRowsPerWarp;
  const int64_t b = blockIdx.z, h = blockIdx.y, t0 = int64_t(blockIdx.x) * kRows, hk = h / (sh.H / sh.Hkv);
  const int64_t q_ld = sh.H * D, kv_ld = sh.Hkv * D;
  const int64_t q_base = (b * sh.L * sh.H + h) * D;  // row t at q_base + t * q_ld
  const T* kb = k + (b * sh.L * sh.Hkv + hk) * D;
  const T* vb = v + (b * sh.L * sh.Hkv + hk) * D;
  const int64_t t_end = min(sh.L, t0 + kRows);

  stage_rows(q + q_base, q_ld, t0, t_end, kRows, D, Qs, Dq);
  float acc[kRowsPerWarp][NPL], m[kRowsPerWarp], l[kRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0.f;
#pragma unroll
    for (int i = 0; i < NPL; ++i) acc[rr][i] = 0.f;
  }

  // Keys [first key of row t0, last row]: everything earlier is outside every row's window.
  const int64_t k_begin = sh.window > 0 ? max(int64_t(0), t0 - sh.window + 1) : 0;
  for (int64_t s0 = k_begin; s0 < t_end; s0 += kTile) {
    __syncthreads();  // the previous tile is consumed (and Qs is complete on the first pass)
    stage_rows(kb, kv_ld, s0, t_end, kTile, D, Ks, Dl);
    stage_rows(vb, kv_ld, s0, t_end, kTile, D, Vs, Dq);
    __syncthreads();
    const int64_t s = s0 + lane;
    bool vis[kRowsPerWarp], any = false;
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int64_t t = t0 + rbase + rr;
      vis[rr] = t < sh.L && visible(t, s, sh.window);
      any |= vis[rr];
    }
    if (!__any_sync(kFull, any)) continue;  // nothing of this tile is visible to the warp's rows

    float sc[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) sc[rr] = 0.f;
    const float4* k4 = reinterpret_cast<const float4*>(Ks + lane * Dl);
    const float4* q4 = reinterpret_cast<const float4*>(Qs + rbase * Dq);
    for (int d4 = 0; d4 < Dq / 4; ++d4) {
      const float4 kk = k4[d4];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) sc[rr] += dot4(q4[rr * (Dq / 4) + d4], kk);
    }
    // Online softmax per row: rescale what was accumulated under the old maximum.
    float p[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const float score = vis[rr] ? sc[rr] * sh.scale : -INFINITY;
      const float tile_max = warp_max(score);
      p[rr] = 0.f;
      if (tile_max == -INFINITY) continue;  // this row sees nothing here (warp-uniform)
      const float m_new = fmaxf(m[rr], tile_max);
      const float corr = expf(m[rr] - m_new);  // 0 on the row's first visible tile (m = -inf)
      p[rr] = vis[rr] ? expf(score - m_new) : 0.f;
      l[rr] = l[rr] * corr + warp_sum(p[rr]);
      m[rr] = m_new;
#pragma unroll
      for (int i = 0; i < NPL; ++i) acc[rr][i] *= corr;
    }
    const int nj = int(min(int64_t(kTile), t_end - s0));
    for (int j = 0; j < nj; ++j) {
      float pj[kRowsPerWarp];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) pj[rr] = __shfl_sync(kFull, p[rr], j);
      const float* vr = Vs + j * Dq;
#pragma unroll
      for (int i = 0; i < NPL; ++i) {
        const int d = lane + 32 * i;
        if (d < D) {
          const float vv = vr[d];
#pragma unroll
          for (int rr = 0; rr < kRowsPerWarp; ++rr) acc[rr][i] += pj[rr] * vv;
        }
      }
    }
  }

#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int64_t t = t0 + rbase + rr;
    if (t >= sh.L) break;
    const float inv = 1.f / l[rr];  // l >= 1: every row sees its own key
    T* orow = o + q_base + t * q_ld;
#pragma unroll
    for (int i = 0; i < NPL; ++i) {
      const int d = lane + 32 * i;
      if (d < D) orow[d] = st<T>(acc[rr][i] * inv);
    }
    if (lse && lane == 0) lse[(b * sh.H + h) * sh.L + t] = m[rr] + logf(l[rr]);
  }
}

// ---- backward ------------------------------------------------------------------------------
// delta[b, h, t] = sum_d dO[t, d] O[t, d] (= sum_s P_ts dP_ts). One warp per row.
template <class T>
__global__ void attn_delta_kernel(const T* o, const T* dout, float* delta, AttnShape sh) {
  const int64_t rows = sh.B * sh.L * sh.H;
  const int64_t row = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);  // (b * L + t) * H + h
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;  // warp-uniform
  const T* orow = o + row * sh.D;
  const T* grow = dout + row * sh.D;
  float s = 0.f;
  for (int64_t d = lane; d < sh.D; d += 32) s += ld(orow[d]) * ld(grow[d]);
  s = warp_sum(s);
  if (lane == 0) {
    const int64_t h = row % sh.H, t = (row / sh.H) % sh.L, b = row / (sh.H * sh.L);
    delta[(b * sh.H + h) * sh.L + t] = s;
  }
}

// dQ_t = scale * sum_s P_ts (dP_ts - delta_t) k_s, dP_ts = dO_t . v_s.
// Block (query tile, head, batch). Shared: Qs, dOs [kRows][Dq]; Ks, Vs [kTile][Dl].
template <class T, int NPL>
__global__ void __launch_bounds__(kThreads) attn_dq_kernel(const T* q, const T* k, const T* v, const float* lse,
                                                            const float* delta, const T* dout, T* dq, AttnShape sh) {
  extern __shared__ float4 smem4[];
  const int D = int(sh.D), Dq = pad4(D), Dl = lane_stride(D);
  float* Qs = reinterpret_cast<float*>(smem4);
  float* dOs = Qs + kRows * Dq;
  float* Ks = dOs + kRows * Dq;
  float* Vs = Ks + kTile * Dl;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, rbase = warp * kRowsPerWarp;
  const int64_t b = blockIdx.z, h = blockIdx.y, t0 = int64_t(blockIdx.x) * kRows, hk = h / (sh.H / sh.Hkv);
  const int64_t q_ld = sh.H * D, kv_ld = sh.Hkv * D;
  const int64_t q_base = (b * sh.L * sh.H + h) * D;
  const T* kb = k + (b * sh.L * sh.Hkv + hk) * D;
  const T* vb = v + (b * sh.L * sh.Hkv + hk) * D;
  const float* lse_row = lse + (b * sh.H + h) * sh.L;
  const float* delta_row = delta + (b * sh.H + h) * sh.L;
  const int64_t t_end = min(sh.L, t0 + kRows);

  stage_rows(q + q_base, q_ld, t0, t_end, kRows, D, Qs, Dq);
  stage_rows(dout + q_base, q_ld, t0, t_end, kRows, D, dOs, Dq);
  float acc[kRowsPerWarp][NPL], row_lse[kRowsPerWarp], row_delta[kRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int64_t t = t0 + rbase + rr;
    row_lse[rr] = t < sh.L ? lse_row[t] : 0.f;
    row_delta[rr] = t < sh.L ? delta_row[t] : 0.f;
#pragma unroll
    for (int i = 0; i < NPL; ++i) acc[rr][i] = 0.f;
  }

  const int64_t k_begin = sh.window > 0 ? max(int64_t(0), t0 - sh.window + 1) : 0;
  for (int64_t s0 = k_begin; s0 < t_end; s0 += kTile) {
    __syncthreads();
    stage_rows(kb, kv_ld, s0, t_end, kTile, D, Ks, Dl);
    stage_rows(vb, kv_ld, s0, t_end, kTile, D, Vs, Dl);
    __syncthreads();
    const int64_t s = s0 + lane;
    bool vis[kRowsPerWarp], any = false;
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int64_t t = t0 + rbase + rr;
      vis[rr] = t < sh.L && visible(t, s, sh.window);
      any |= vis[rr];
    }
    if (!__any_sync(kFull, any)) continue;

    float sc[kRowsPerWarp], dp[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) sc[rr] = dp[rr] = 0.f;
    const float4* k4 = reinterpret_cast<const float4*>(Ks + lane * Dl);
    const float4* v4 = reinterpret_cast<const float4*>(Vs + lane * Dl);
    const float4* q4 = reinterpret_cast<const float4*>(Qs + rbase * Dq);
    const float4* g4 = reinterpret_cast<const float4*>(dOs + rbase * Dq);
    for (int d4 = 0; d4 < Dq / 4; ++d4) {
      const float4 kk = k4[d4], vv = v4[d4];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        sc[rr] += dot4(q4[rr * (Dq / 4) + d4], kk);
        dp[rr] += dot4(g4[rr * (Dq / 4) + d4], vv);
      }
    }
    float ds[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr)
      ds[rr] = vis[rr] ? expf(sc[rr] * sh.scale - row_lse[rr]) * (dp[rr] - row_delta[rr]) * sh.scale : 0.f;
    const int nj = int(min(int64_t(kTile), t_end - s0));
    for (int j = 0; j < nj; ++j) {
      float dsj[kRowsPerWarp];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) dsj[rr] = __shfl_sync(kFull, ds[rr], j);
      const float* kr = Ks + j * Dl;
#pragma unroll
      for (int i = 0; i < NPL; ++i) {
        const int d = lane + 32 * i;
        if (d < D) {
          const float kv = kr[d];
#pragma unroll
          for (int rr = 0; rr < kRowsPerWarp; ++rr) acc[rr][i] += dsj[rr] * kv;
        }
      }
    }
  }

#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int64_t t = t0 + rbase + rr;
    if (t >= sh.L) break;
    T* row = dq + q_base + t * q_ld;
#pragma unroll
    for (int i = 0; i < NPL; ++i) {
      const int d = lane + 32 * i;
      if (d < D) row[d] = st<T>(acc[rr][i]);
    }
  }
}

// dV_s = sum_{h in group, t} P_ts dO_t;  dK_s = scale * sum_{h, t} P_ts (dP_ts - delta_t) q_t.
// Block (key tile, kv head, batch): the roles of the forward swap, warps own keys and lane j
// the query j of the staged tile. Shared: Ks, Vs [kRows][Dq]; Qs, dOs [kTile][Dl]; lse, delta [kTile].
template <class T, int NPL>
__global__ void __launch_bounds__(kThreads) attn_dkv_kernel(const T* q, const T* k, const T* v, const float* lse,
                                                             const float* delta, const T* dout, T* dk, T* dv,
                                                             AttnShape sh) {
  extern __shared__ float4 smem4[];
  const int D = int(sh.D), Dq = pad4(D), Dl = lane_stride(D);
  float* Ks = reinterpret_cast<float*>(smem4);
  float* Vs = Ks + kRows * Dq;
  float* Qs = Vs + kRows * Dq;
  float* dOs = Qs + kTile * Dl;
  float* lse_s = dOs + kTile * Dl;
  float* delta_s = lse_s + kTile;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, rbase = warp * kRowsPerWarp;
  const int64_t b = blockIdx.z, hk = blockIdx.y, s0 = int64_t(blockIdx.x) * kRows, G = sh.H / sh.Hkv;
  const int64_t q_ld = sh.H * D, kv_ld = sh.Hkv * D;
  const int64_t kv_base = (b * sh.L * sh.Hkv + hk) * D;
  const int64_t s_end = min(sh.L, s0 + kRows);
  // Queries that can see a key of this tile: t >= s0, and t <= (last key) + window - 1.
  const int64_t q_end = sh.window > 0 ? min(sh.L, s_end - 1 + sh.window) : sh.L;

  stage_rows(k + kv_base, kv_ld, s0, s_end, kRows, D, Ks, Dq);
  stage_rows(v + kv_base, kv_ld, s0, s_end, kRows, D, Vs, Dq);
  float acc_k[kRowsPerWarp][NPL], acc_v[kRowsPerWarp][NPL];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr)
#pragma unroll
    for (int i = 0; i < NPL; ++i) acc_k[rr][i] = acc_v[rr][i] = 0.f;

  for (int64_t h = hk * G; h < (hk + 1) * G; ++h) {
    const int64_t q_base = (b * sh.L * sh.H + h) * D;
    const float* lse_row = lse + (b * sh.H + h) * sh.L;
    const float* delta_row = delta + (b * sh.H + h) * sh.L;
    for (int64_t qt0 = s0; qt0 < q_end; qt0 += kTile) {
      __syncthreads();  // the previous query tile is consumed (and Ks, Vs are complete)
      stage_rows(q + q_base, q_ld, qt0, q_end, kTile, D, Qs, Dl);
      stage_rows(dout + q_base, q_ld, qt0, q_end, kTile, D, dOs, Dl);
      if (threadIdx.x < kTile) {
        const int64_t t = qt0 + threadIdx.x;
        lse_s[threadIdx.x] = t < q_end ? lse_row[t] : 0.f;
        delta_s[threadIdx.x] = t < q_end ? delta_row[t] : 0.f;
      }
      __syncthreads();
      const int64_t t = qt0 + lane;
      bool vis[kRowsPerWarp], any = false;
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        const int64_t s = s0 + rbase + rr;
        vis[rr] = s < sh.L && t < q_end && visible(t, s, sh.window);
        any |= vis[rr];
      }
      if (!__any_sync(kFull, any)) continue;

      float sc[kRowsPerWarp], dp[kRowsPerWarp];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) sc[rr] = dp[rr] = 0.f;
      const float4* q4 = reinterpret_cast<const float4*>(Qs + lane * Dl);
      const float4* g4 = reinterpret_cast<const float4*>(dOs + lane * Dl);
      const float4* k4 = reinterpret_cast<const float4*>(Ks + rbase * Dq);
      const float4* v4 = reinterpret_cast<const float4*>(Vs + rbase * Dq);
      for (int d4 = 0; d4 < Dq / 4; ++d4) {
        const float4 qq = q4[d4], gg = g4[d4];
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) {
          sc[rr] += dot4(qq, k4[rr * (Dq / 4) + d4]);
          dp[rr] += dot4(gg, v4[rr * (Dq / 4) + d4]);
        }
      }
      float p[kRowsPerWarp], ds[kRowsPerWarp];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        p[rr] = vis[rr] ? expf(sc[rr] * sh.scale - lse_s[lane]) : 0.f;
        ds[rr] = p[rr] * (dp[rr] - delta_s[lane]) * sh.scale;
      }
      const int nj = int(min(int64_t(kTile), q_end - qt0));
      for (int j = 0; j < nj; ++j) {
        float pj[kRowsPerWarp], dsj[kRowsPerWarp];
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) {
          pj[rr] = __shfl_sync(kFull, p[rr], j);
          dsj[rr] = __shfl_sync(kFull, ds[rr], j);
        }
        const float* qr = Qs + j * Dl;
        const float* gr = dOs + j * Dl;
#pragma unroll
        for (int i = 0; i < NPL; ++i) {
          const int d = lane + 32 * i;
          if (d < D) {
            const float qv = qr[d], gv = gr[d];
#pragma unroll
            for (int rr = 0; rr < kRowsPerWarp; ++rr) {
              acc_v[rr][i] += pj[rr] * gv;
              acc_k[rr][i] += dsj[rr] * qv;
            }
          }
        }
      }
    }
  }

#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int64_t s = s0 + rbase + rr;
    if (s >= sh.L) break;
    const int64_t off = kv_base + s * kv_ld;
#pragma unroll
    for (int i = 0; i < NPL; ++i) {
      const int d = lane + 32 * i;
      if (d < D) {
        dk[off + d] = st<T>(acc_k[rr][i]);
        dv[off + d] = st<T>(acc_v[rr][i]);
      }
    }
  }
}

dim3 tile_grid(int64_t L, int64_t heads, int64_t B) {
  return dim3(unsigned((L + kRows - 1) / kRows), unsigned(heads), unsigned(B));
}

}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window, double scale, Tensor* lse) {
  const AttnShape sh = attn_shape(q, k, v, window, scale, "attention");
  Tensor o = Tensor::empty(q.shape(), q.dtype(), Device::CUDA);
  Tensor l = lse ? Tensor::empty({sh.B, sh.H, sh.L}, DType::F32, Device::CUDA) : Tensor();
  if (sh.B * sh.L * sh.H > 0 && flash_supported(q, k, v)) {
    flash_forward(q, k, v, window, scale, o, lse ? &l : nullptr);  // BF16, D 64 / 128: tensor cores
  } else if (sh.B * sh.L * sh.H > 0) {
    const size_t smem = sizeof(float) * size_t(kRows * pad4(sh.D) + kTile * lane_stride(sh.D) + kTile * pad4(sh.D));
    dispatch_float(q.dtype(), [&](auto tag) {
      using T = decltype(tag);
      with_npl(sh.D, [&](auto npl) {
        auto kernel = attn_fwd_kernel<T, decltype(npl)::value>;
        allow_smem(kernel, smem);
        kernel<<<tile_grid(sh.L, sh.H, sh.B), kThreads, smem, stream()>>>(
            q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), lse ? l.data<float>() : nullptr, sh);
      });
    });
    check_launch("attention");
  }
  if (lse) *lse = l;
  return o;
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                        const Tensor& dout, int64_t window, double scale, Tensor& dq, Tensor& dk, Tensor& dv,
                        const ColBlock* dv_out) {
  const AttnShape sh = attn_shape(q, k, v, window, scale, "attention_backward");
  expect_cuda({&o, &lse, &dout}, "attention_backward");
  check_shape(o, q.shape(), "attention_backward o");
  check_shape(dout, q.shape(), "attention_backward dout");
  check_same_dtype(q, o, "attention_backward o");
  check_same_dtype(q, dout, "attention_backward dout");
  check_shape(lse, {sh.B, sh.H, sh.L}, "attention_backward lse");
  expect_f32(lse, "attention_backward", "lse");
  dq = Tensor::empty(q.shape(), q.dtype(), Device::CUDA);
  dk = Tensor::empty(k.shape(), k.dtype(), Device::CUDA);
  if (dv_out) {
    expect_cuda({&dv_out->t}, "attention_backward");
    check_col_block(*dv_out, sh.B * sh.L, sh.Hkv * sh.D, v.dtype(), "attention_backward dv");
  }
  // The flash kernels store dv in 4-byte pairs straight into a block with an even start and row
  // stride; every other case writes a dense dv, which finish() copies into the block.
  const bool flash = flash_supported(q, k, v, &o, &dout);
  const bool dv_direct = flash && dv_out && dv_out->col % 2 == 0 && dv_out->ld() % 2 == 0;
  if (!dv_direct) dv = Tensor::empty(v.shape(), v.dtype(), Device::CUDA);
  auto finish = [&] {
    if (dv_out && dv.defined()) put_cols(dv.reshape({sh.B * sh.L, sh.Hkv * sh.D}), *dv_out, "attention_backward dv");
    if (dv_out) dv = Tensor();
  };
  if (sh.B * sh.L * sh.H == 0) return finish();
  if (flash) {
    flash_backward(q, k, v, o, lse, dout, window, scale, dq, dk, dv, nullptr, dv_direct ? dv_out : nullptr);
    return finish();
  }
  Tensor delta = Tensor::empty({sh.B, sh.H, sh.L}, DType::F32, Device::CUDA);
  const size_t smem_dq = sizeof(float) * size_t(2 * kRows * pad4(sh.D) + 2 * kTile * lane_stride(sh.D));
  const size_t smem_dkv = sizeof(float) * size_t(2 * kRows * pad4(sh.D) + 2 * kTile * lane_stride(sh.D) + 2 * kTile);
  dispatch_float(q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = sh.B * sh.L * sh.H;
    attn_delta_kernel<T><<<unsigned((rows + kWarps - 1) / kWarps), kThreads, 0, stream()>>>(
        o.data<T>(), dout.data<T>(), delta.data<float>(), sh);
    check_launch("attention_backward delta");
    with_npl(sh.D, [&](auto npl) {
      constexpr int NPL = decltype(npl)::value;
      auto dq_kernel = attn_dq_kernel<T, NPL>;
      allow_smem(dq_kernel, smem_dq);
      dq_kernel<<<tile_grid(sh.L, sh.H, sh.B), kThreads, smem_dq, stream()>>>(
          q.data<T>(), k.data<T>(), v.data<T>(), lse.data<float>(), delta.data<float>(), dout.data<T>(),
          dq.data<T>(), sh);
      check_launch("attention_backward dq");
      auto dkv_kernel = attn_dkv_kernel<T, NPL>;
      allow_smem(dkv_kernel, smem_dkv);
      dkv_kernel<<<tile_grid(sh.L, sh.Hkv, sh.B), kThreads, smem_dkv, stream()>>>(
          q.data<T>(), k.data<T>(), v.data<T>(), lse.data<float>(), delta.data<float>(), dout.data<T>(),
          dk.data<T>(), dv.data<T>(), sh);
      check_launch("attention_backward dk dv");
    });
  });
  finish();
}

}  // namespace lt2::cuda
