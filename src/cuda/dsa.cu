// DeepSeek sparse attention on the GPU (ops declared in ops/op_list.inc; the CPU reference is
// cpu/dsa.cpp). Inputs F32 or BF16, fp32 math; the indexer scores, their values on a key set
// and their gradients are F32 (top-k on rounded BF16 scores would be mostly ties).
//
// Every gradient that collects over queries (dk, dv of the sparse attention, dkI of the
// indexer) is summed per key from a transposed index ("key lists": for each key the (query,
// slot) pairs that kept it, in query order), not with atomics, so results are reproducible.
#include <algorithm>
#include <cstdlib>

#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "cuda/dsa_masked.h"
#include "cuda/flash_attention.h"
#include "cuda/op_util.cuh"

namespace lt2::cuda {

namespace {
constexpr int kMaxD = 256;            // head sizes (attention D, indexer dI) up to 256
constexpr int kWarps = 4;             // warps per block of the row-per-warp kernels
constexpr int kMaxIndexerWidth = 1024;  // HI * dI of the indexer backward's per-warp accumulator

// Rows of width n <= 32 * NPL spread over a warp's lanes: element d = lane + 32 j, j < NPL.
// The kernels below take NPL as a template parameter (1, 2, 4 or 8 by the row width) so the
// per-lane arrays live in registers, and they walk keys C at a time: all C rows' loads are
// issued before any is used, which keeps C loads in flight per lane instead of one (the
// gathers of sparse attention are latency-bound otherwise).
__device__ __forceinline__ int lane_id() { return threadIdx.x & 31; }
template <int NPL, class T>
__device__ __forceinline__ void load_row(const T* p, int64_t n, float scale, float (&r)[NPL]) {
#pragma unroll
  for (int j = 0; j < NPL; ++j) r[j] = lane_id() + 32 * j < n ? ld(p[lane_id() + 32 * j]) * scale : 0.f;
}
template <int NPL> __device__ __forceinline__ float dot_lanes(const float (&a)[NPL], const float (&b)[NPL]) {
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < NPL; ++j) s += a[j] * b[j];
  return warp_sum(s);
}
template <int NPL, class T>
__device__ __forceinline__ void store_row(T* p, int64_t n, const float (&r)[NPL], float scale) {
#pragma unroll
  for (int j = 0; j < NPL; ++j)
    if (lane_id() + 32 * j < n) p[lane_id() + 32 * j] = st<T>(r[j] * scale);
}
// Keys per step of the gather loops: 8, or 4 for the widest rows (register budget).
template <int NPL> constexpr int chunk_of() { return NPL >= 8 ? 4 : 8; }

// Calls f(std::integral_constant<int, NPL>) with NPL = ceil(n / 32) rounded up to 1, 2, 4, 8.
template <class F> void with_npl(int64_t n, F&& f) {
  if (n <= 32) f(std::integral_constant<int, 1>{});
  else if (n <= 64) f(std::integral_constant<int, 2>{});
  else if (n <= 128) f(std::integral_constant<int, 4>{});
  else f(std::integral_constant<int, 8>{});
}

__device__ __forceinline__ int64_t warp_row() { return int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5); }
unsigned warp_blocks(int64_t rows) { return unsigned((rows + kWarps - 1) / kWarps); }

// Used slots of an index row (keys first, then -1), counted 32 at a time by the warp.
__device__ __forceinline__ int64_t count_slots(const int32_t* sel, int64_t K) {
  int64_t n = 0;
  for (int64_t i0 = 0; i0 < K; i0 += 32) {
    const unsigned full = __ballot_sync(0xffffffffu, i0 + lane_id() < K && sel[i0 + lane_id()] >= 0);
    n += __popc(full);
    if (full != 0xffffffffu) break;
  }
  return n;
}

// ---- indexer scores: 64 x 64 (query, key) tiles, 4 x 4 outputs per thread ----------------
constexpr int kTile = 64, kChunk = 32;
template <class T>
__global__ void indexer_scores_kernel(const T* qI, const T* kI, const T* w, int64_t L, int64_t HI, int64_t dI,
                                      float w_scale, float* I) {
  const int64_t b = blockIdx.z, t0 = int64_t(blockIdx.y) * kTile, s0 = int64_t(blockIdx.x) * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float* out = I + b * L * L;
  if (s0 > t0 + kTile - 1) {  // wholly above the diagonal
    for (int e = threadIdx.x; e < kTile * kTile; e += blockDim.x) {
      const int64_t t = t0 + e / kTile, s = s0 + e % kTile;
      if (t < L && s < L) out[t * L + s] = -INFINITY;
    }
    return;
  }
  __shared__ float qs[kTile][kChunk + 1], ks[kTile][kChunk + 1];
  float acc[4][4] = {};
  for (int64_t j = 0; j < HI; ++j) {
    float dot[4][4] = {};
    for (int64_t c0 = 0; c0 < dI; c0 += kChunk) {
      for (int e = threadIdx.x; e < kTile * kChunk; e += blockDim.x) {
        const int r = e / kChunk, c = e % kChunk;
        const int64_t t = t0 + r, s = s0 + r, cc = c0 + c;
        qs[r][c] = t < L && cc < dI ? ld(qI[((b * L + t) * HI + j) * dI + cc]) : 0.f;
        ks[r][c] = s < L && cc < dI ? ld(kI[(b * L + s) * dI + cc]) : 0.f;
      }
      __syncthreads();
#pragma unroll 8
      for (int c = 0; c < kChunk; ++c) {
        float a[4], k4[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) a[i] = qs[ty + 16 * i][c], k4[i] = ks[tx + 16 * i][c];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int jj = 0; jj < 4; ++jj) dot[i][jj] += a[i] * k4[jj];
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t t = t0 + ty + 16 * i;
      const float wt = t < L ? ld(w[(b * L + t) * HI + j]) : 0.f;
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) acc[i][jj] += wt * fmaxf(dot[i][jj], 0.f);
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int jj = 0; jj < 4; ++jj) {
      const int64_t t = t0 + ty + 16 * i, s = s0 + tx + 16 * jj;
      if (t < L && s < L) out[t * L + s] = s <= t ? acc[i][jj] * w_scale : -INFINITY;
    }
}

// ---- top-k: radix select per row -----------------------------------------------------------
// A float's bits mapped so that unsigned order is numeric order; -0 counts as +0 (the CPU
// compares them equal, so they must tie here too).
__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t u = f == 0.f ? 0u : __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Exclusive prefix sum of one int per thread over the block (blockDim.x a multiple of 32);
// *total receives the block's sum.
__device__ int block_exclusive_scan(int v, int* total) {
  __shared__ int warp_tot[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  int inc = v;
  for (int o = 1; o < 32; o <<= 1) {
    const int n = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += n;
  }
  __syncthreads();  // warp_tot may still be read by a previous call
  if (lane == 31) warp_tot[warp] = inc;
  __syncthreads();
  int before = 0, sum = 0;
  for (int w = 0; w < nw; ++w) {
    if (w < warp) before += warp_tot[w];
    sum += warp_tot[w];
  }
  *total = sum;
  return before + inc - v;
}

constexpr int kTopkThreads = 256, kTopkWarps = kTopkThreads / 32;  // one histogram bin per thread
// Candidates of a row kept in shared memory as order keys (64 KiB): the radix passes below then
// read them there instead of from global memory; longer rows read global memory on each pass.
constexpr int64_t kTopkStaged = 16384;

// hist[bin] += 1 for every lane with `on`, called by the whole warp: lanes with the same bin add
// together, one shared atomic per distinct bin (the top bytes of scores of one magnitude are
// mostly a single bin).
__device__ __forceinline__ void hist_add(unsigned* hist, uint32_t bin, bool on) {
  const unsigned active = __ballot_sync(0xffffffffu, on);
  if (!on) return;
  const unsigned peers = __match_any_sync(active, bin);
  if (int(threadIdx.x & 31) == __ffs(peers) - 1) atomicAdd(&hist[bin], unsigned(__popc(peers)));
}

// Row r = b * Lq + t of scores (stride ld) has n = pos + 1 candidates, pos = positions[b] when
// given (decode) else t. Keeps the k best (equal scores: the later key), in increasing order.
// The k-th largest order key is found one byte at a time from the top (radix select); then each
// warp walks its stretch of the row twice, counting the keys above it and equal to it, then
// writing the kept ones at slots that ballots and the warps' counts give, so the output is in
// key order with no per-chunk block scans.
__global__ void __launch_bounds__(kTopkThreads) topk_kernel(const float* I, int64_t ld, int64_t Lq,
                                                            const int32_t* positions, int64_t k, int64_t staged_cap,
                                                            int32_t* idx, float* values) {
  extern __shared__ uint32_t staged_keys[];  // [staged_cap]
  const int64_t r = blockIdx.x, b = r / Lq, t = r % Lq;
  const int64_t n = (positions ? positions[b] : t) + 1;
  const float* row = I + r * ld;
  int32_t* out = idx + r * k;
  float* vout = values ? values + r * k : nullptr;
  if (n <= k) {  // every key, then empty slots
    for (int64_t i = threadIdx.x; i < k; i += blockDim.x) {
      out[i] = i < n ? int32_t(i) : -1;
      if (vout) vout[i] = i < n ? row[i] : 0.f;
    }
    return;
  }
  const bool staged = n <= staged_cap;
  if (staged)
    for (int64_t s = threadIdx.x; s < n; s += kTopkThreads) staged_keys[s] = order_key(row[s]);
  auto key_at = [&](int64_t s) { return staged ? staged_keys[s] : order_key(row[s]); };

  // The k-th largest key, one byte at a time from the top; `remaining` is its rank among the
  // candidates that share the prefix found so far.
  __shared__ unsigned hist[256];
  __shared__ int s_bin;
  __shared__ long long s_remaining;
  const int64_t n_warps = (n + kTopkThreads - 1) / kTopkThreads * kTopkThreads;  // whole warps in each pass
  uint32_t prefix = 0, mask = 0;
  int64_t remaining = k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    hist[threadIdx.x] = 0;
    __syncthreads();  // also: the staged keys are in
    for (int64_t s = threadIdx.x; s < n_warps; s += kTopkThreads) {
      const uint32_t u = s < n ? key_at(s) : 0u;
      hist_add(hist, (u >> shift) & 255u, s < n && (u & mask) == prefix);
    }
    __syncthreads();
    // Thread i holds bin 255 - i: the scan gives the count in the bins above it, and the one
    // bin where the running count reaches `remaining` is the threshold's.
    const unsigned h = hist[255 - threadIdx.x];
    int total;
    const int64_t above = block_exclusive_scan(int(h), &total);
    if (above < remaining && remaining <= above + int64_t(h))
      s_bin = 255 - int(threadIdx.x), s_remaining = remaining - above;
    __syncthreads();
    prefix |= uint32_t(s_bin) << shift, mask |= 255u << shift, remaining = s_remaining;
  }
  // Candidates equal to the threshold: keep the last `remaining` (ranks >= threshold_rank).
  const int64_t threshold_rank = int64_t(hist[prefix & 255u]) - remaining;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const unsigned lanes_below = (1u << lane) - 1u;
  const int64_t per_warp = (n + kTopkThreads - 1) / kTopkThreads * 32;
  const int64_t w0 = warp * per_warp, w1 = min(n, w0 + per_warp);
  __shared__ long long s_equal[kTopkWarps], s_above[kTopkWarps];
  int64_t equal = 0, above = 0;
  for (int64_t s0 = w0; s0 < w1; s0 += 32) {
    const int64_t s = s0 + lane;
    const uint32_t u = s < w1 ? key_at(s) : 0u;
    equal += __popc(__ballot_sync(0xffffffffu, s < w1 && u == prefix));
    above += __popc(__ballot_sync(0xffffffffu, s < w1 && u > prefix));
  }
  if (lane == 0) s_equal[warp] = equal, s_above[warp] = above;
  __syncthreads();
  int64_t eq_rank = 0, slot = 0;  // of the warp's first equal candidate; its first output slot
  for (int w = 0; w < warp; ++w) {
    const int64_t kept_from = threshold_rank > eq_rank ? threshold_rank : eq_rank, end = eq_rank + s_equal[w];
    slot += s_above[w] + (end > kept_from ? end - kept_from : 0);  // warp w's equal candidates that are kept
    eq_rank += s_equal[w];
  }
  for (int64_t s0 = w0; s0 < w1; s0 += 32) {
    const int64_t s = s0 + lane;
    const uint32_t u = s < w1 ? key_at(s) : 0u;
    const bool eq = s < w1 && u == prefix;
    const unsigned eq_lanes = __ballot_sync(0xffffffffu, eq);
    const bool sel = (s < w1 && u > prefix) || (eq && eq_rank + __popc(eq_lanes & lanes_below) >= threshold_rank);
    const unsigned sel_lanes = __ballot_sync(0xffffffffu, sel);
    if (sel) {
      const int64_t o = slot + __popc(sel_lanes & lanes_below);
      out[o] = int32_t(s);
      if (vout) vout[o] = row[s];
    }
    slot += __popc(sel_lanes), eq_rank += __popc(eq_lanes);
  }
}

void launch_topk(const float* I, int64_t ld, int64_t rows, int64_t Lq, const int32_t* positions, int64_t k,
                 int32_t* idx, float* values) {
  if (rows == 0) return;
  static const bool smem_allowed = (allow_smem(topk_kernel, kTopkStaged * sizeof(uint32_t)), true);
  (void)smem_allowed;
  // LT2_DSA_TOPK_STAGED=n keeps rows of up to n candidates in shared memory (read per call: the
  // tests set 0 to run the path of rows longer than kTopkStaged).
  const char* env = std::getenv("LT2_DSA_TOPK_STAGED");
  const int64_t cap = env ? std::clamp<int64_t>(std::atoll(env), 0, kTopkStaged) : kTopkStaged;
  const int64_t staged_cap = std::min(ld, cap);
  topk_kernel<<<unsigned(rows), kTopkThreads, size_t(staged_cap) * sizeof(uint32_t), stream()>>>(
      I, ld, Lq, positions, k, staged_cap, idx, values);
  check_launch("dsa_topk");
}

// ---- sparse attention forward: one warp per (b, t, h) -------------------------------------
struct SparseShape {
  int64_t B, Lq, Lk, H, Hkv, D, K;  // queries [B, Lq, H, D]; keys [B, Lk, Hkv, D]; K slots per query
  __host__ __device__ int64_t rows() const { return B * Lq * H; }
  __host__ __device__ int64_t group() const { return H / Hkv; }
};

// The K and V rows (kv head hk) of slots i0 .. i0 + C - 1 of an index row, all loads issued
// together; slots at or past n are zeros with valid[c] = false.
template <int C, int NPL, class T>
__device__ __forceinline__ void load_kv_chunk(const T* k, const T* v, const int32_t* sel, int64_t i0, int64_t n,
                                              int64_t b, int64_t hk, const SparseShape& sh, bool (&valid)[C],
                                              float (&kr)[C][NPL], float (&vr)[C][NPL]) {
#pragma unroll
  for (int c = 0; c < C; ++c) {
    valid[c] = i0 + c < n;
    const int64_t off = valid[c] ? ((b * sh.Lk + sel[i0 + c]) * sh.Hkv + hk) * sh.D : 0;
    load_row<NPL>(k + off, valid[c] ? sh.D : 0, 1.f, kr[c]);
    load_row<NPL>(v + off, valid[c] ? sh.D : 0, 1.f, vr[c]);
  }
}

template <class T, int NPL>
__global__ void sparse_fwd_kernel(const T* q, const T* k, const T* v, const int32_t* idx, SparseShape sh, float scale,
                                  T* o, float* lse) {
  constexpr int C = chunk_of<NPL>();
  const int64_t row = warp_row();
  if (row >= sh.rows()) return;
  const int64_t h = row % sh.H, bt = row / sh.H, b = bt / sh.Lq, t = bt % sh.Lq, hk = h / sh.group();
  float qv[NPL], acc[NPL] = {};
  load_row<NPL>(q + row * sh.D, sh.D, scale, qv);
  float m = -INFINITY, l = 0.f;
  const int32_t* sel = idx + bt * sh.K;
  const int64_t n = count_slots(sel, sh.K);
  for (int64_t i0 = 0; i0 < n; i0 += C) {
    bool valid[C];
    float kr[C][NPL], vr[C][NPL], s[C];
    load_kv_chunk(k, v, sel, i0, n, b, hk, sh, valid, kr, vr);
    float mc = -INFINITY;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      s[c] = dot_lanes(qv, kr[c]);
      if (valid[c]) mc = fmaxf(mc, s[c]);
    }
    const float m_new = fmaxf(m, mc), corr = expf(m - m_new);
    l *= corr;
#pragma unroll
    for (int j = 0; j < NPL; ++j) acc[j] *= corr;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const float p = valid[c] ? expf(s[c] - m_new) : 0.f;
      l += p;
#pragma unroll
      for (int j = 0; j < NPL; ++j) acc[j] += p * vr[c][j];
    }
    m = m_new;
  }
  store_row<NPL>(o + row * sh.D, sh.D, acc, l > 0 ? 1.f / l : 0.f);
  if (lse && lane_id() == 0) lse[(b * sh.H + h) * sh.Lq + t] = l > 0 ? m + logf(l) : -INFINITY;
}

template <class T>
void launch_sparse_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const int32_t* idx, const SparseShape& sh,
                       double scale, Tensor& o, float* lse) {
  if (sh.rows() == 0) return;
  with_npl(sh.D, [&](auto npl) {
    sparse_fwd_kernel<T, decltype(npl)::value><<<warp_blocks(sh.rows()), 32 * kWarps, 0, stream()>>>(
        q.data<T>(), k.data<T>(), v.data<T>(), idx, sh, float(scale), o.data<T>(), lse);
  });
  check_launch("sparse_attention");
}

// ---- key lists: the transposed index ------------------------------------------------------
// For batch b and key s, entries[b * Lq * K + offsets[b * (Lk + 1) + s] ...] are the codes
// t * K + i of the (query, slot) pairs that kept s, in increasing order.
struct KeyLists {
  Tensor offsets, entries;  // I32 [B, Lk + 1], I32 [B, Lq * K]
};

__global__ void count_keys_kernel(const int32_t* idx, SparseShape sh, int32_t* counts) {
  LT2_GRID_STRIDE(e, sh.B * sh.Lq * sh.K) {
    const int32_t s = idx[e];
    if (s >= 0) atomicAdd(&counts[(e / (sh.Lq * sh.K)) * (sh.Lk + 1) + s + 1], 1);  // integer: order-free
  }
}
// One block per batch: counts (shifted by one) -> exclusive offsets, in place.
__global__ void scan_offsets_kernel(int32_t* offsets, int64_t n) {
  int32_t* o = offsets + int64_t(blockIdx.x) * n;
  int carry = 0;
  for (int64_t c0 = 0; c0 < n; c0 += blockDim.x) {
    const int64_t i = c0 + threadIdx.x;
    const int v = i < n ? o[i] : 0;
    int chunk;
    const int before = block_exclusive_scan(v, &chunk);
    if (i < n) o[i] = carry + before + v;  // inclusive: offsets[s + 1] = keys before s + 1
    carry += chunk;
  }
}
__global__ void fill_keys_kernel(const int32_t* idx, SparseShape sh, const int32_t* offsets, int32_t* cursor,
                                 int32_t* entries) {
  LT2_GRID_STRIDE(e, sh.B * sh.Lq * sh.K) {
    const int32_t s = idx[e];
    if (s < 0) continue;
    const int64_t b = e / (sh.Lq * sh.K), local = e % (sh.Lq * sh.K);
    const int64_t at = offsets[b * (sh.Lk + 1) + s] + atomicAdd(&cursor[b * sh.Lk + s], 1);
    entries[b * sh.Lq * sh.K + at] = int32_t(local);
  }
}
// One block per (b, key): bitonic sort of the key's list in shared memory (fills above come in
// any order; sorting makes every later sum run in query order).
__global__ void sort_keys_kernel(const int32_t* offsets, SparseShape sh, int32_t* entries) {
  extern __shared__ int32_t buf[];
  const int64_t b = blockIdx.x / sh.Lk, s = blockIdx.x % sh.Lk;
  const int32_t lo = offsets[b * (sh.Lk + 1) + s], n = offsets[b * (sh.Lk + 1) + s + 1] - lo;
  if (n <= 1) return;
  int32_t* list = entries + b * sh.Lq * sh.K + lo;
  int n2 = 1;
  while (n2 < n) n2 <<= 1;
  for (int i = threadIdx.x; i < n2; i += blockDim.x) buf[i] = i < n ? list[i] : INT32_MAX;
  __syncthreads();
  for (int size = 2; size <= n2; size <<= 1)
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int i = threadIdx.x; i < n2; i += blockDim.x) {
        const int j = i ^ stride;
        if (j > i) {
          const bool up = (i & size) == 0;
          if ((buf[i] > buf[j]) == up) {
            const int32_t x = buf[i];
            buf[i] = buf[j], buf[j] = x;
          }
        }
      }
      __syncthreads();
    }
  for (int i = threadIdx.x; i < n; i += blockDim.x) list[i] = buf[i];
}

KeyLists key_lists(const Tensor& idx, const SparseShape& sh) {
  LT2_CHECK(sh.Lq * sh.K < (int64_t(1) << 31), "DSA backward: L * k = ", sh.Lq * sh.K, " above 2^31");
  LT2_CHECK(sh.Lq <= 32768, "DSA backward on the GPU supports L <= 32768, got ", sh.Lq);
  KeyLists kl{Tensor::zeros({sh.B, sh.Lk + 1}, DType::I32, Device::CUDA),
              Tensor::empty({sh.B, sh.Lq * sh.K}, DType::I32, Device::CUDA)};
  Tensor cursor = Tensor::zeros({sh.B, sh.Lk}, DType::I32, Device::CUDA);
  const int64_t n = sh.B * sh.Lq * sh.K;
  const int grid = int(std::clamp<int64_t>(blocks_for(n, 256), 1, 65535));
  count_keys_kernel<<<grid, 256, 0, stream()>>>(idx.data<int32_t>(), sh, kl.offsets.data<int32_t>());
  scan_offsets_kernel<<<unsigned(sh.B), 1024, 0, stream()>>>(kl.offsets.data<int32_t>(), sh.Lk + 1);
  fill_keys_kernel<<<grid, 256, 0, stream()>>>(idx.data<int32_t>(), sh, kl.offsets.data<int32_t>(),
                                                cursor.data<int32_t>(), kl.entries.data<int32_t>());
  // A key is kept at most once per query: a list holds at most Lq codes.
  int pow2 = 1;
  while (pow2 < sh.Lq) pow2 <<= 1;
  const size_t smem = sizeof(int32_t) * size_t(pow2);
  allow_smem(sort_keys_kernel, smem);
  sort_keys_kernel<<<unsigned(sh.B * sh.Lk), 512, smem, stream()>>>(kl.offsets.data<int32_t>(), sh,
                                                                     kl.entries.data<int32_t>());
  check_launch("dsa key lists");
  return kl;
}

// ---- sparse attention backward -------------------------------------------------------------
// delta[row] = dO . O (the softmax backward's row term).
template <class T, int NPL> __global__ void delta_kernel(const T* o, const T* dout, SparseShape sh, float* delta) {
  const int64_t row = warp_row();
  if (row >= sh.rows()) return;
  float a[NPL], g[NPL];
  load_row<NPL>(o + row * sh.D, sh.D, 1.f, a);
  load_row<NPL>(dout + row * sh.D, sh.D, 1.f, g);
  const float d = dot_lanes(a, g);
  if (lane_id() == 0) delta[row] = d;
}

// dq: one warp per (b, t, h) over its keys, C keys at a time.
template <class T, int NPL>
__global__ void sparse_dq_kernel(const T* q, const T* k, const T* v, const T* dout, const float* lse, const float* delta,
                                 const int32_t* idx, SparseShape sh, float scale, T* dq) {
  constexpr int C = chunk_of<NPL>();
  const int64_t row = warp_row();
  if (row >= sh.rows()) return;
  const int64_t h = row % sh.H, bt = row / sh.H, b = bt / sh.Lq, t = bt % sh.Lq, hk = h / sh.group();
  float qv[NPL], g[NPL], acc[NPL] = {};
  load_row<NPL>(q + row * sh.D, sh.D, 1.f, qv);
  load_row<NPL>(dout + row * sh.D, sh.D, 1.f, g);
  const float l = lse[(b * sh.H + h) * sh.Lq + t], dl = delta[row];
  const int32_t* sel = idx + bt * sh.K;
  const int64_t n = count_slots(sel, sh.K);
  for (int64_t i0 = 0; i0 < n; i0 += C) {
    bool valid[C];
    float kr[C][NPL], vr[C][NPL];
    load_kv_chunk(k, v, sel, i0, n, b, hk, sh, valid, kr, vr);
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const float p = valid[c] ? expf(dot_lanes(qv, kr[c]) * scale - l) : 0.f;
      const float ds = p * (dot_lanes(g, vr[c]) - dl) * scale;
#pragma unroll
      for (int j = 0; j < NPL; ++j) acc[j] += ds * kr[c][j];
    }
  }
  store_row<NPL>(dq + row * sh.D, sh.D, acc, 1.f);
}

// dk, dv: one warp per (b, key, kv head) over the (query, head) pairs that kept the key, C
// queries at a time.
template <class T, int NPL>
__global__ void sparse_dkdv_kernel(const T* q, const T* k, const T* v, const T* dout, const float* lse,
                                   const float* delta, const int32_t* offsets, const int32_t* entries, SparseShape sh,
                                   float scale, T* dk, T* dv) {
  constexpr int C = chunk_of<NPL>();
  const int64_t row = warp_row();  // (b * Lk + s) * Hkv + hk
  if (row >= sh.B * sh.Lk * sh.Hkv) return;
  const int64_t hk = row % sh.Hkv, bs = row / sh.Hkv, b = bs / sh.Lk, s = bs % sh.Lk;
  float kv[NPL], vv[NPL], dka[NPL] = {}, dva[NPL] = {};
  load_row<NPL>(k + row * sh.D, sh.D, 1.f, kv);
  load_row<NPL>(v + row * sh.D, sh.D, 1.f, vv);
  const int32_t lo = offsets[b * (sh.Lk + 1) + s], hi = offsets[b * (sh.Lk + 1) + s + 1];
  const int32_t* list = entries + b * sh.Lq * sh.K;
  for (int32_t e0 = lo; e0 < hi; e0 += C)
    for (int64_t h = hk * sh.group(); h < (hk + 1) * sh.group(); ++h) {
      int64_t t[C];
      float qr[C][NPL], gr[C][NPL];
#pragma unroll
      for (int c = 0; c < C; ++c) t[c] = e0 + c < hi ? list[e0 + c] / sh.K : -1;
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const int64_t qrow = (b * sh.Lq + max(t[c], int64_t(0))) * sh.H + h;
        load_row<NPL>(q + qrow * sh.D, t[c] >= 0 ? sh.D : 0, 1.f, qr[c]);
        load_row<NPL>(dout + qrow * sh.D, t[c] >= 0 ? sh.D : 0, 1.f, gr[c]);
      }
#pragma unroll
      for (int c = 0; c < C; ++c) {
        if (t[c] < 0) continue;
        const int64_t qrow = (b * sh.Lq + t[c]) * sh.H + h;
        const float p = expf(dot_lanes(kv, qr[c]) * scale - lse[(b * sh.H + h) * sh.Lq + t[c]]);
        const float ds = p * (dot_lanes(vv, gr[c]) - delta[qrow]) * scale;
#pragma unroll
        for (int j = 0; j < NPL; ++j) dka[j] += ds * qr[c][j], dva[j] += p * gr[c][j];
      }
    }
  store_row<NPL>(dk + row * sh.D, sh.D, dka, 1.f);
  store_row<NPL>(dv + row * sh.D, sh.D, dva, 1.f);
}

// ---- the indexer's loss on a key set -----------------------------------------------------
// A key set: an index [B, L, K] or, when idx is null, every key s <= t (slot i = key i, K = L).
__device__ __forceinline__ int64_t set_size(const int32_t* idx, int64_t r, int64_t t, int64_t K) {
  return idx ? count_slots(idx + r * K, K) : t + 1;
}
__device__ __forceinline__ int64_t set_key(const int32_t* idx, int64_t r, int64_t i, int64_t K) {
  return idx ? idx[r * K + i] : i;
}

// The target on slots i0 .. i0 + C - 1 of row r (mean over heads of exp(q.k * scale - lse)),
// gathering each slot's key rows.
template <int C, int NPL, class T>
__device__ __forceinline__ void gather_target(const T* q, const T* k, const float* lse, const int32_t* idx,
                                              const SparseShape& sh, int64_t r, int64_t b, int64_t t, int64_t n,
                                              int64_t i0, float scale, float (&p)[C]) {
  for (int64_t h = 0; h < sh.H; ++h) {
    float qv[NPL], kr[C][NPL];
    load_row<NPL>(q + ((b * sh.Lq + t) * sh.H + h) * sh.D, sh.D, scale, qv);
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t s = i0 + c < n ? set_key(idx, r, i0 + c, sh.K) : 0;
      load_row<NPL>(k + ((b * sh.Lk + s) * sh.Hkv + h / sh.group()) * sh.D, i0 + c < n ? sh.D : 0, 1.f, kr[c]);
    }
    const float l = lse[(b * sh.H + h) * sh.Lq + t];
#pragma unroll
    for (int c = 0; c < C; ++c) p[c] += expf(dot_lanes(qv, kr[c]) - l);
  }
#pragma unroll
  for (int c = 0; c < C; ++c) p[c] /= float(sh.H);
}

// One warp per (b, t): the target (mean over heads of exp(q.k * scale - lse)) is first written
// into dI, then replaced by the gradient (softmax(Isel) - target / sum) / rows; row_kl[r]
// receives the row's KL.
// With probs (the dense target [B, Lq, Lk], cuda/dsa_masked.cu) the target is read, not computed.
template <class T, int NPL>
__global__ void indexer_kl_kernel(const float* Isel, const T* q, const T* k, const float* lse, const int32_t* idx,
                                  const float* probs, SparseShape sh, float scale, float* dI, float* row_kl) {
  constexpr int C = chunk_of<NPL>();
  const int64_t r = warp_row();
  if (r >= sh.B * sh.Lq) return;
  const int64_t b = r / sh.Lq, t = r % sh.Lq, n = set_size(idx, r, t, sh.K);
  const int lane = lane_id();
  float pz = 0.f, m = -INFINITY;
  if (probs) {  // the dense target read at the slots, a slot per lane (the lanes' loads all in flight)
    for (int64_t i = lane; i < n; i += 32) {
      const float p = probs[r * sh.Lk + set_key(idx, r, i, sh.K)];
      dI[r * sh.K + i] = p;
      pz += p, m = fmaxf(m, Isel[r * sh.K + i]);
    }
    pz = warp_sum(pz), m = warp_max(m);
  } else {  // gathered: each chunk's targets are the whole warp's (lane-uniform) values
    for (int64_t i0 = 0; i0 < n; i0 += C) {
      float p[C] = {};
      gather_target<C, NPL>(q, k, lse, idx, sh, r, b, t, n, i0, scale, p);
#pragma unroll
      for (int c = 0; c < C; ++c)
        if (i0 + c < n) {
          if (lane == 0) dI[r * sh.K + i0 + c] = p[c];
          pz += p[c], m = fmaxf(m, Isel[r * sh.K + i0 + c]);
        }
    }
  }
  __syncwarp();
  float z = 0.f;
  for (int64_t i = lane; i < n; i += 32) z += expf(Isel[r * sh.K + i] - m);
  const float logz = m + logf(warp_sum(z)), inv_rows = 1.f / float(sh.B * sh.Lq);
  float kl = 0.f;
  for (int64_t i = lane; i < n; i += 32) {
    const float target = pz > 0.f ? dI[r * sh.K + i] / pz : 0.f, logq = Isel[r * sh.K + i] - logz;
    if (target > 0.f) kl += target * (logf(target) - logq);
    dI[r * sh.K + i] = (expf(logq) - target) * inv_rows;
  }
  kl = warp_sum(kl);
  if (lane == 0) row_kl[r] = kl;
}

// kl_sum[0] += mean of row_kl, summed in a fixed order by one block.
__global__ void add_mean_kernel(const float* row_kl, int64_t n, float* kl_sum) {
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += row_kl[i];
  s = block_sum_double(s);
  if (threadIdx.x == 0) kl_sum[0] += float(s / double(n));
}

// ---- indexer scores backward ---------------------------------------------------------------
// dqI, dw: one warp per query row over its set, C keys at a time; dqI accumulates in the
// warp's shared slice (each lane owns its columns).
template <class T, int NPL>
__global__ void indexer_dq_kernel(const T* qI, const T* kI, const T* w, const int32_t* idx, const float* dIsel,
                                  int64_t L, int64_t K, int64_t HI, int64_t dI, int64_t rows, float w_scale, T* dqI,
                                  T* dw) {
  constexpr int C = chunk_of<NPL>();
  __shared__ float dq_s[kWarps][kMaxIndexerWidth];
  const int64_t r = warp_row();
  const int warp = threadIdx.x >> 5, lane = lane_id();
  if (r >= rows) return;
  const int64_t b = r / L, t = r % L, n = set_size(idx, r, t, K);
  float* dq = dq_s[warp];
  for (int64_t e = lane; e < HI * dI; e += 32) dq[e] = 0.f;
  float dwa[2] = {0.f, 0.f};  // dw[j] for j = lane, lane + 32 (HI <= 64)
  __syncwarp();
  for (int64_t i0 = 0; i0 < n; i0 += C) {
    float kr[C][NPL], gi[C];
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const bool ok = i0 + c < n;
      gi[c] = ok ? dIsel[r * K + i0 + c] * w_scale : 0.f;
      load_row<NPL>(kI + (b * L + (ok ? set_key(idx, r, i0 + c, K) : 0)) * dI, gi[c] != 0.f ? dI : 0, 1.f, kr[c]);
    }
    for (int64_t j = 0; j < HI; ++j) {
      float qv[NPL];
      load_row<NPL>(qI + (r * HI + j) * dI, dI, 1.f, qv);
      const float wj = ld(w[r * HI + j]);
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const float s = dot_lanes(qv, kr[c]);
        if (gi[c] == 0.f || s <= 0.f) continue;  // ReLU: no gradient through a clipped score
        if (lane == j % 32) dwa[j / 32] += gi[c] * s;
#pragma unroll
        for (int e = 0; e < NPL; ++e)
          if (lane + 32 * e < dI) dq[j * dI + lane + 32 * e] += gi[c] * wj * kr[c][e];
      }
    }
  }
  __syncwarp();
  for (int64_t e = lane; e < HI * dI; e += 32) dqI[r * HI * dI + e] = st<T>(dq[e]);
  for (int j = lane; j < HI; j += 32) dw[r * HI + j] = st<T>(dwa[j / 32]);
}

// dkI: one warp per key over the (query, slot) pairs that kept it, C at a time: the key
// lists, or every query t >= s (slot s) for the dense set.
template <class T, int NPL>
__global__ void indexer_dk_kernel(const T* qI, const T* kI, const T* w, const float* dIsel, const int32_t* offsets,
                                  const int32_t* entries, int64_t L, int64_t K, int64_t HI, int64_t dI, int64_t rows,
                                  float w_scale, T* dkI) {
  constexpr int C = chunk_of<NPL>();
  const int64_t r = warp_row();  // b * L + s
  if (r >= rows) return;
  const int64_t b = r / L, s = r % L;
  float kv[NPL], acc[NPL] = {};
  load_row<NPL>(kI + r * dI, dI, 1.f, kv);
  const int64_t lo = offsets ? offsets[b * (L + 1) + s] : s, hi = offsets ? offsets[b * (L + 1) + s + 1] : L;
  for (int64_t e0 = lo; e0 < hi; e0 += C) {
    int64_t qrow[C];
    float gi[C];
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t e = e0 + c;
      const int64_t code = e >= hi ? -1 : offsets ? entries[b * L * K + e] : e * K + s;  // t * K + slot
      qrow[c] = code < 0 ? -1 : b * L + code / K;
      gi[c] = code < 0 ? 0.f : dIsel[qrow[c] * K + code % K] * w_scale;
    }
    for (int64_t j = 0; j < HI; ++j) {
      float qr[C][NPL];
#pragma unroll
      for (int c = 0; c < C; ++c)
        load_row<NPL>(qI + (max(qrow[c], int64_t(0)) * HI + j) * dI, gi[c] != 0.f ? dI : 0, 1.f, qr[c]);
#pragma unroll
      for (int c = 0; c < C; ++c) {
        if (gi[c] == 0.f || dot_lanes(kv, qr[c]) <= 0.f) continue;
        const float gd = gi[c] * ld(w[qrow[c] * HI + j]);
#pragma unroll
        for (int e = 0; e < NPL; ++e) acc[e] += gd * qr[c][e];
      }
    }
  }
  store_row<NPL>(dkI + r * dI, dI, acc, 1.f);
}

// ---- decode: the new token's scores over its cached indexer keys ----------------------------
template <class T>
__global__ void decode_scores_kernel(const T* qI, const T* w, const T* kI, const int32_t* positions, int64_t rows,
                                     int64_t HI, int64_t dI, float w_scale, float* scores) {
  extern __shared__ float qw[];  // qI row (HI * dI) then w (HI)
  const int64_t b = blockIdx.y, s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t e = threadIdx.x; e < HI * dI; e += blockDim.x) qw[e] = ld(qI[b * HI * dI + e]);
  for (int64_t e = threadIdx.x; e < HI; e += blockDim.x) qw[HI * dI + e] = ld(w[b * HI + e]);
  __syncthreads();
  if (s >= rows) return;
  float acc = -INFINITY;
  if (s <= positions[b]) {
    acc = 0.f;
    const T* kr = kI + (b * rows + s) * dI;
    for (int64_t j = 0; j < HI; ++j) {
      float d = 0.f;
      for (int64_t c = 0; c < dI; ++c) d += qw[j * dI + c] * ld(kr[c]);
      acc += qw[HI * dI + j] * fmaxf(d, 0.f);
    }
    acc *= w_scale;
  }
  scores[b * rows + s] = acc;
}

// Shapes shared by the attention-side host functions.
SparseShape sparse_shape(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& idx, const char* op) {
  check_same_dtype(q, k, op);
  check_same_dtype(q, v, op);
  LT2_CHECK(q.ndim() == 4 && k.ndim() == 4 && k.shape() == v.shape() && k.dim(0) == q.dim(0) && k.dim(3) == q.dim(3) &&
                q.dim(2) % k.dim(2) == 0,
            op, ": q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()));
  const SparseShape sh{q.dim(0), q.dim(1), k.dim(1), q.dim(2), k.dim(2), q.dim(3), idx.defined() ? idx.dim(2) : q.dim(1)};
  LT2_CHECK(sh.D <= kMaxD, op, ": head size ", sh.D, " above ", kMaxD);
  if (idx.defined())
    LT2_CHECK(idx.dtype() == DType::I32 && idx.ndim() == 3 && idx.dim(0) == sh.B && idx.dim(1) == sh.Lq, op,
              ": idx must be I32 [", sh.B, ", ", sh.Lq, ", k], got ", shape_str(idx.shape()));
  return sh;
}

struct IndexerShape {
  int64_t B, L, HI, dI;
};
IndexerShape indexer_shape(const Tensor& qI, const Tensor& kI, const Tensor& w, const char* op) {
  check_same_dtype(qI, kI, op);
  check_same_dtype(qI, w, op);
  LT2_CHECK(qI.ndim() == 4, op, ": qI must be [B, L, HI, dI], got ", shape_str(qI.shape()));
  const IndexerShape d{qI.dim(0), qI.dim(1), qI.dim(2), qI.dim(3)};
  check_shape(kI, {d.B, d.L, d.dI}, op);
  check_shape(w, {d.B, d.L, d.HI}, op);
  LT2_CHECK(d.dI <= kMaxD, op, ": indexer head size ", d.dI, " above ", kMaxD);
  return d;
}
}  // namespace

Tensor dsa_indexer_scores(const Tensor& qI, const Tensor& kI, const Tensor& w, double w_scale) {
  expect_cuda({&qI, &kI, &w}, "dsa_indexer_scores");
  const IndexerShape d = indexer_shape(qI, kI, w, "dsa_indexer_scores");
  Tensor I = Tensor::empty({d.B, d.L, d.L}, DType::F32, Device::CUDA);
  if (I.numel() == 0 || indexer_scores_mma(qI, kI, w, w_scale, I)) return I;  // BF16, d_I 16..64: tensor cores
  const unsigned tiles = unsigned((d.L + kTile - 1) / kTile);
  dispatch_float(qI.dtype(), [&](auto tag) {
    using T = decltype(tag);
    indexer_scores_kernel<T><<<dim3(tiles, tiles, unsigned(d.B)), 256, 0, stream()>>>(
        qI.data<T>(), kI.data<T>(), w.data<T>(), d.L, d.HI, d.dI, float(w_scale), I.data<float>());
  });
  check_launch("dsa_indexer_scores");
  return I;
}

void dsa_indexer_scores_backward(const Tensor& qI, const Tensor& kI, const Tensor& w, double w_scale, const Tensor& idx,
                                 const Tensor& dIsel, Tensor& dqI, Tensor& dkI, Tensor& dw) {
  expect_cuda({&qI, &kI, &w, &idx, &dIsel}, "dsa_indexer_scores_backward");
  const IndexerShape d = indexer_shape(qI, kI, w, "dsa_indexer_scores_backward");
  LT2_CHECK(d.HI <= 64 && d.HI * d.dI <= kMaxIndexerWidth, "dsa_indexer_scores_backward: HI * dI = ", d.HI * d.dI,
            " above ", kMaxIndexerWidth, " (or HI above 64)");
  const int64_t K = idx.defined() ? idx.dim(2) : d.L;
  expect_f32(dIsel, "dsa_indexer_scores_backward", "dIsel");
  check_shape(dIsel, {d.B, d.L, K}, "dsa_indexer_scores_backward dIsel");
  dqI = Tensor::empty(qI.shape(), qI.dtype(), Device::CUDA);
  dkI = Tensor::empty(kI.shape(), kI.dtype(), Device::CUDA);
  dw = Tensor::empty(w.shape(), w.dtype(), Device::CUDA);
  const int64_t rows = d.B * d.L;
  if (rows == 0) return;
  if (dsa_use_dense_indexer_backward(qI, idx)) {
    indexer_backward_dense(qI, kI, w, w_scale, idx, dIsel, dqI, dkI, dw);
    return;
  }
  KeyLists kl;
  if (idx.defined()) kl = key_lists(idx, SparseShape{d.B, d.L, d.L, 1, 1, 1, K});
  const int32_t* ix = idx.defined() ? idx.data<int32_t>() : nullptr;
  dispatch_float(qI.dtype(), [&](auto tag) {
    using T = decltype(tag);
    with_npl(d.dI, [&](auto npl) {
      constexpr int NPL = decltype(npl)::value;
      indexer_dq_kernel<T, NPL><<<warp_blocks(rows), 32 * kWarps, 0, stream()>>>(
          qI.data<T>(), kI.data<T>(), w.data<T>(), ix, dIsel.data<float>(), d.L, K, d.HI, d.dI, rows, float(w_scale),
          dqI.data<T>(), dw.data<T>());
      indexer_dk_kernel<T, NPL><<<warp_blocks(rows), 32 * kWarps, 0, stream()>>>(
          qI.data<T>(), kI.data<T>(), w.data<T>(), dIsel.data<float>(), ix ? kl.offsets.data<int32_t>() : nullptr,
          ix ? kl.entries.data<int32_t>() : nullptr, d.L, K, d.HI, d.dI, rows, float(w_scale), dkI.data<T>());
    });
  });
  check_launch("dsa_indexer_scores_backward");
}

Tensor dsa_topk(const Tensor& I, int64_t k, Tensor* values) {
  expect_cuda({&I}, "dsa_topk");
  expect_f32(I, "dsa_topk", "I");
  LT2_CHECK(I.ndim() == 3 && I.dim(1) == I.dim(2), "dsa_topk: I must be [B, L, L], got ", shape_str(I.shape()));
  LT2_CHECK(k >= 1, "dsa_topk: k must be >= 1, got ", k);
  const int64_t B = I.dim(0), L = I.dim(1);
  Tensor idx = Tensor::empty({B, L, k}, DType::I32, Device::CUDA);
  if (values) *values = Tensor::empty({B, L, k}, DType::F32, Device::CUDA);
  launch_topk(I.data<float>(), L, B * L, L, nullptr, k, idx.data<int32_t>(), values ? values->data<float>() : nullptr);
  return idx;
}

Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& idx, double scale,
                        Tensor* lse) {
  expect_cuda({&q, &k, &v, &idx}, "sparse_attention");
  LT2_CHECK(idx.defined(), "sparse_attention: idx is missing");
  const SparseShape sh = sparse_shape(q, k, v, idx, "sparse_attention");
  LT2_CHECK(sh.Lk == sh.Lq, "sparse_attention: q and k lengths differ");
  Tensor o = Tensor::empty(q.shape(), q.dtype(), Device::CUDA);
  Tensor l = lse ? Tensor::empty({sh.B, sh.H, sh.Lq}, DType::F32, Device::CUDA) : Tensor();
  if (sh.rows() > 0 && dsa_use_masked_flash(q, k, v, idx)) {
    const Tensor mask = dsa_key_mask(idx, sh.Lk);
    flash_forward(q, k, v, 0, scale, o, lse ? &l : nullptr, &mask);
  } else {
    dispatch_float(q.dtype(), [&](auto tag) {
      launch_sparse_fwd<decltype(tag)>(q, k, v, idx.data<int32_t>(), sh, scale, o, lse ? l.data<float>() : nullptr);
    });
  }
  if (lse) *lse = l;
  return o;
}

void sparse_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                               const Tensor& idx, const Tensor& dout, double scale, Tensor& dq, Tensor& dk,
                               Tensor& dv) {
  expect_cuda({&q, &k, &v, &o, &lse, &idx, &dout}, "sparse_attention_backward");
  LT2_CHECK(idx.defined(), "sparse_attention_backward: idx is missing");
  const SparseShape sh = sparse_shape(q, k, v, idx, "sparse_attention_backward");
  check_shape(o, q.shape(), "sparse_attention_backward o");
  check_shape(dout, q.shape(), "sparse_attention_backward dout");
  check_same_dtype(q, dout, "sparse_attention_backward");
  expect_f32(lse, "sparse_attention_backward", "lse");
  check_shape(lse, {sh.B, sh.H, sh.Lq}, "sparse_attention_backward lse");
  dq = Tensor::empty(q.shape(), q.dtype(), Device::CUDA);
  dk = Tensor::empty(k.shape(), k.dtype(), Device::CUDA);
  dv = Tensor::empty(v.shape(), v.dtype(), Device::CUDA);
  if (sh.rows() == 0) return;
  if (dsa_use_masked_flash(q, k, v, idx, &o, &dout)) {
    const Tensor mask = dsa_key_mask(idx, sh.Lk);
    flash_backward(q, k, v, o, lse, dout, 0, scale, dq, dk, dv, &mask);
    return;
  }
  const KeyLists kl = key_lists(idx, sh);
  Tensor delta = Tensor::empty({sh.rows()}, DType::F32, Device::CUDA);
  dispatch_float(q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    with_npl(sh.D, [&](auto npl) {
      constexpr int NPL = decltype(npl)::value;
      delta_kernel<T, NPL><<<warp_blocks(sh.rows()), 32 * kWarps, 0, stream()>>>(o.data<T>(), dout.data<T>(), sh,
                                                                                   delta.data<float>());
      sparse_dq_kernel<T, NPL><<<warp_blocks(sh.rows()), 32 * kWarps, 0, stream()>>>(
          q.data<T>(), k.data<T>(), v.data<T>(), dout.data<T>(), lse.data<float>(), delta.data<float>(),
          idx.data<int32_t>(), sh, float(scale), dq.data<T>());
      sparse_dkdv_kernel<T, NPL><<<warp_blocks(sh.B * sh.Lk * sh.Hkv), 32 * kWarps, 0, stream()>>>(
          q.data<T>(), k.data<T>(), v.data<T>(), dout.data<T>(), lse.data<float>(), delta.data<float>(),
          kl.offsets.data<int32_t>(), kl.entries.data<int32_t>(), sh, float(scale), dk.data<T>(), dv.data<T>());
    });
  });
  check_launch("sparse_attention_backward");
}

Tensor dsa_indexer_kl(const Tensor& Isel, const Tensor& q, const Tensor& k, const Tensor& lse, const Tensor& idx,
                      double scale, Tensor& kl_sum) {
  expect_cuda({&Isel, &q, &k, &lse, &idx, &kl_sum}, "dsa_indexer_kl");
  const SparseShape sh = sparse_shape(q, k, k, idx, "dsa_indexer_kl");
  expect_f32(Isel, "dsa_indexer_kl", "Isel");
  expect_f32(lse, "dsa_indexer_kl", "lse");
  expect_f32(kl_sum, "dsa_indexer_kl", "kl_sum");
  check_shape(Isel, {sh.B, sh.Lq, sh.K}, "dsa_indexer_kl Isel");
  check_shape(lse, {sh.B, sh.H, sh.Lq}, "dsa_indexer_kl lse");
  LT2_CHECK(kl_sum.numel() >= 1, "dsa_indexer_kl: kl_sum must hold one element");
  Tensor dI = Tensor::zeros(Isel.shape(), DType::F32, Device::CUDA);  // slots outside the set stay 0
  const int64_t rows = sh.B * sh.Lq;
  if (rows == 0) return dI;
  Tensor row_kl = Tensor::empty({rows}, DType::F32, Device::CUDA);
  Tensor probs;
  if (dsa_use_dense_target(q, k, idx)) {
    probs = Tensor::empty({sh.B, sh.Lq, sh.Lk}, DType::F32, Device::CUDA);
    flash_head_mean_probs(q, k, lse, scale, probs);
  }
  dispatch_float(q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    with_npl(sh.D, [&](auto npl) {
      indexer_kl_kernel<T, decltype(npl)::value><<<warp_blocks(rows), 32 * kWarps, 0, stream()>>>(
          Isel.data<float>(), q.data<T>(), k.data<T>(), lse.data<float>(),
          idx.defined() ? idx.data<int32_t>() : nullptr, probs.defined() ? probs.data<float>() : nullptr, sh,
          float(scale), dI.data<float>(), row_kl.data<float>());
    });
  });
  add_mean_kernel<<<1, 256, 0, stream()>>>(row_kl.data<float>(), rows, kl_sum.data<float>());
  check_launch("dsa_indexer_kl");
  return dI;
}

Tensor dsa_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& qI, const Tensor& w,
                  const Tensor& kI_cache, const Tensor& positions, int64_t topk, double w_scale, double scale) {
  expect_cuda({&q, &k_cache, &v_cache, &qI, &w, &kI_cache, &positions}, "dsa_decode");
  const SparseShape sh0 = sparse_shape(q, k_cache, v_cache, Tensor(), "dsa_decode");
  LT2_CHECK(sh0.Lq == 1, "dsa_decode: q must be [B, 1, H, D], got ", shape_str(q.shape()));
  check_same_dtype(qI, kI_cache, "dsa_decode");
  check_same_dtype(qI, w, "dsa_decode");
  LT2_CHECK(qI.ndim() == 4 && qI.dim(0) == sh0.B && qI.dim(1) == 1, "dsa_decode: qI must be [B, 1, HI, dI]");
  const int64_t B = sh0.B, rows = sh0.Lk, HI = qI.dim(2), dI = qI.dim(3);
  check_shape(w, {B, 1, HI}, "dsa_decode w");
  check_shape(kI_cache, {B, rows, dI}, "dsa_decode kI_cache");
  LT2_CHECK(positions.dtype() == DType::I32 && positions.numel() == B, "dsa_decode: positions must be I32 [", B, "]");
  LT2_CHECK(topk >= 1, "dsa_decode: k must be >= 1");
  Tensor o = Tensor::empty(q.shape(), q.dtype(), Device::CUDA);
  if (B == 0) return o;
  Tensor scores = Tensor::empty({B, rows}, DType::F32, Device::CUDA);
  Tensor idx = Tensor::empty({B, 1, topk}, DType::I32, Device::CUDA);
  const size_t smem = sizeof(float) * size_t(HI * dI + HI);
  LT2_CHECK(smem <= 48 * 1024, "dsa_decode: indexer of ", HI, " x ", dI, " too wide");
  dispatch_float(qI.dtype(), [&](auto tag) {
    using T = decltype(tag);
    decode_scores_kernel<T><<<dim3(unsigned((rows + 255) / 256), unsigned(B)), 256, smem, stream()>>>(
        qI.data<T>(), w.data<T>(), kI_cache.data<T>(), positions.data<int32_t>(), rows, HI, dI, float(w_scale),
        scores.data<float>());
  });
  check_launch("dsa_decode scores");
  launch_topk(scores.data<float>(), rows, B, 1, positions.data<int32_t>(), topk, idx.data<int32_t>(), nullptr);
  SparseShape sh = sh0;
  sh.K = topk;
  dispatch_float(q.dtype(), [&](auto tag) {
    launch_sparse_fwd<decltype(tag)>(q, k_cache, v_cache, idx.data<int32_t>(), sh, scale, o, nullptr);
  });
  return o;
}

}  // namespace lt2::cuda
