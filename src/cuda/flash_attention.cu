// Tensor-core causal attention (BF16, head dim 64 / 128): the FlashAttention-2 algorithm on
// mma.sync.m16n8k16 (bf16 inputs, fp32 accumulators), with K/V (or Q/dO) tiles streamed
// through shared memory by cp.async, two to four stages deep. On Hopper the forward and the
// backward run the same passes on warpgroup MMA instead, their streamed tiles copied by TMA
// (the section "Hopper kernels" below); other GPUs take the mma.sync kernels described here.
//
// Forward: a block of 8 warps owns 128 queries of one (batch, head), each warp 16 of them;
// it walks the 64-key tiles that hold a visible key (causal and window band only, so a window
// costs O(L w)), keeping the online-softmax state (running max m, running sum l, the output
// accumulator) in registers. Scores live in the exp2 domain (scaled by scale * log2 e) so that
// every exponential is one ex2 instruction.
//
// Backward (no floating-point atomics, deterministic):
//   delta = rowsum(dO * O)                                 one pass over O, dO
//   one fused kernel: block per 128 keys, walks the query tiles of every query head of the KV
//   group in a fixed order:                                dV = P^T dO, dK = scale * dS^T Q,
//   and adds its keys' share of dQ = scale * dS K into an fp32 accumulator, key tiles in
//   ascending order (per-query-tile counters in global memory; see flash_bwd_kernel)
// where P = exp(S * scale - lse) is recomputed from the forward's lse and
// dS = P * (dO V^T - delta). The backward on Hopper runs two kernels instead (dQ, then dK / dV,
// each recomputing S and dP) on warpgroup MMA.
//
// Every tiled kernel takes its tile from block_tile(): the longest tiles of a group of 16
// (batch, head) pairs first, so that no long tile starts last and runs alone at the end.
//
// Measured on an H100 (lt2 bench attn, bf16, full causal; bench/RESULTS.md), the mma.sync
// kernels: B8 L2048 H12 D64 fwd + bwd 1.37-1.38 ms (bwd 1.09-1.10) with the two-kernel
// backward, bwd 1.06 with the fused one (bench/gpu/attn_fused_bm_s5_h100.txt); PyTorch's SDPA
// (FlashAttention-2) 0.70 / 2.20 ms at B8 L2048 H12 D64 / B4 L4096 H16 D128. The Hopper
// kernels: see their section.
//
// Fragment layouts: cuda/mma_sync.cuh. The C fragments of two adjacent 8-column blocks, packed
// to bf16 pairs, are exactly the A fragment of the 16-wide k-step that follows, so P and dS
// stay in registers for the products of their own warp (dS^T goes through shared memory only
// for the fused backward's dQ, which needs every warp's keys).
// Shared-memory tiles are row-major with rows padded by 16 bytes: the 8 row addresses of an
// ldmatrix phase then fall on 8 different 16-byte bank groups (no conflicts, no swizzle).
#include "cuda/flash_attention.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/mma_sync.cuh"
#include "cuda/tma.h"

namespace lt2::cuda {

namespace {

constexpr int kThreads = 256;  // 8 warps in every tiled kernel
constexpr int kPad = 8;        // bf16 elements of padding per shared-memory row (16 bytes)
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct FlashParams {
  const bf16* q;
  const bf16* k;
  const bf16* v;
  const bf16* o;     // backward: the forward's output
  const bf16* dout;  // backward: dL/dO
  bf16* out;         // forward: O; dQ kernel: dQ
  bf16* dk;
  bf16* dv;
  int64_t dv_ld;       // backward: dv's row stride (Hkv * D, or a fused projection's packed gradient width)
  float* lse;          // forward: written when non-null
  const float* lse_in; // backward
  float* delta;        // backward: rowsum(dO * O), [B, H, L]
  float* lse2;         // backward: lse * log2(e), [B, H, L] (written with delta, read by the wgmma kernels)
  float* dq_acc;       // fused backward: fp32 dQ partial sums, [B, H, query tile, warp, lane, D / 8]
  unsigned* dq_cnt;    // fused backward: contributions added so far, [B, H, query tile, warp]
  int L, H, Hkv, G;    // G = H / Hkv query heads per KV head
  int window;          // 0: full causal (also used for windows >= L)
  // DSA: bit s of row (b, t) (mask_words 32-bit words per row) says whether query t attends to
  // key s; null: every causal / window key.
  const uint32_t* mask;
  const uint32_t* mask_t;  // backward: the same bits transposed (row s, bit t), for the dK/dV kernels
  int mask_words;
  float scale;         // softmax scale
  float scale_log2;    // scale * log2(e)
};

// ---- shared-memory tiles -----------------------------------------------------------------------

// Copies rows [row0, row0 + ROWS) of a bf16 matrix with row stride ld (elements D of each row)
// into a padded shared tile. Rows at or past row_end are zero-filled: they must add nothing,
// not even NaN from stale shared memory, to the products.
template <int ROWS, int D, int T = kThreads>
__device__ __forceinline__ void load_rows(bf16* dst, const bf16* src, int64_t ld, int row0, int row_end) {
  constexpr int kChunks = D / 8, S = D + kPad;
  static_assert(ROWS * kChunks % T == 0, "every thread copies the same number of chunks");
#pragma unroll
  for (int j = 0; j < ROWS * kChunks / T; ++j) {
    const int i = threadIdx.x + j * T, r = i / kChunks, c = (i % kChunks) * 8;
    const bool ok = row0 + r < row_end;
    cp_async16(dst + r * S + c, ok ? src + int64_t(row0 + r) * ld + c : src, ok);
  }
}
template <int ROWS, int T = kThreads>
__device__ __forceinline__ void load_floats(float* dst, const float* src, int row0, int row_end) {
  for (int i = threadIdx.x; i < ROWS; i += T) {
    const bool ok = row0 + i < row_end;
    cp_async4(dst + i, ok ? src + row0 + i : src, ok);
  }
}

// Query t sees key s when the pair is causal and inside the window (0: none), in_band, and,
// with a DSA mask, its bit is set (visible_w / visible_t below). Rows past L (a ragged last
// tile) see nothing under a mask.
// (Bitwise, not short-circuit: the kernels evaluate these per score, and && can compile to branches.)
__device__ __forceinline__ bool in_band(const FlashParams& p, int t, int s) {
  return (s <= t) & ((p.window == 0) | (t - s < p.window));
}
// Word w of row `row` of batch b's bit matrix m (the mask, or its transpose): all ones without a
// mask, zeros past the end.
__device__ __forceinline__ uint32_t mask_word(const FlashParams& p, const uint32_t* m, int b, int row, int w) {
  if (!m) return ~0u;
  if (row >= p.L || w >= p.mask_words) return 0u;
  return __ldg(m + (int64_t(b) * p.L + row) * p.mask_words + w);
}
// Words [w0, w0 + W) of rows `row` and `row + 8` (a thread's two fragment rows) into mw.
template <int W>
__device__ __forceinline__ void mask_words(const FlashParams& p, const uint32_t* m, int b, int row, int w0,
                                           uint32_t (&mw)[2][W]) {
#pragma unroll
  for (int r = 0; r < 2; ++r)
#pragma unroll
    for (int w = 0; w < W; ++w) mw[r][w] = mask_word(p, m, b, row + 8 * r, w0 + w);
}

// ---- block order -------------------------------------------------------------------------------
// The tiled kernels run a grid of (tiles, heads, batch) blocks whose tiles differ in length by up
// to the sequence length (the causal band). In launch order (tiles of one (batch, head) pair,
// then the next pair) the last pair's longest tile starts near the end and runs alone at the
// tail: measured on an H100, the SMs sat idle 11-14% of each backward kernel's time (ncu, SM
// active / elapsed cycles, B8 L2048 H12 D64). Blocks are therefore handed out longest first
// inside groups of kLptPairs (batch, head) pairs: rank 0 (the longest tile) of every pair of the
// group, then rank 1, ... The group keeps the pairs in flight, and so the K / V (or Q / dO) rows
// the blocks share through L2, to a few megabytes.
constexpr int kLptPairs = 16;
struct BlockTile {
  int rank;  // 0 = the longest tile of its (batch, head) pair
  int head;
  int batch;
};
__device__ __forceinline__ BlockTile block_tile() {  // 32-bit: flash_supported bounds the grid
  const unsigned n_tiles = gridDim.x, heads = gridDim.y, pairs = gridDim.y * gridDim.z;
  const unsigned lin = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned group_blocks = n_tiles * kLptPairs, first = lin / group_blocks * kLptPairs;
  const unsigned in = lin % group_blocks, size = min(unsigned(kLptPairs), pairs - first);
  const unsigned pair = first + in % size;
  return {int(in / size), int(pair % heads), int(pair / heads)};
}
// With the row's mask word for s in hand: tiles start at multiples of 32 keys, so the loops
// below read a row's words once per tile, not once per score.
__device__ __forceinline__ bool visible_w(const FlashParams& p, int t, int s, uint32_t word) {
  return in_band(p, t, s) & bool((word >> (s & 31)) & 1u);
}
// The dK/dV kernels' form, with key s's transposed word (bits by query) in hand.
__device__ __forceinline__ bool visible_t(const FlashParams& p, int t, int s, uint32_t word_t) {
  return in_band(p, t, s) & bool((word_t >> (t & 31)) & 1u);
}

// The keys that a thread's two fragment rows (wr0 + g, wr0 + g + 8) do not see in the tile of
// BN keys from s0 get `fill`. One warp-uniform test whether the tile needs it (it crosses the
// diagonal or the window edge, or there is a mask), then a select per score: the test per score
// (`need_mask && !visible`) had compiled to a branch per score, which ncu charged with 42 % of
// the wgmma forward's stall samples.
template <int BN>
__device__ __forceinline__ void mask_tile_rows(const FlashParams& p, int b, int wr0, int g, int tq, int s0,
                                               float (&s)[BN / 8][4], float fill) {
  const bool need_mask = p.mask != nullptr || s0 + BN - 1 > wr0 || (p.window > 0 && wr0 + 15 - s0 >= p.window);
  if (!need_mask) return;
  uint32_t mw[2][(BN + 31) / 32];  // rows g, g + 8: their mask words for this tile (all ones unmasked)
  mask_words(p, p.mask, b, wr0 + g, s0 >> 5, mw);
#pragma unroll
  for (int nb = 0; nb < BN / 8; ++nb)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const bool vis = visible_w(p, wr0 + g + 8 * (i >> 1), s0 + nb * 8 + 2 * tq + (i & 1), mw[i >> 1][nb >> 2]);
      s[nb][i] = vis ? s[nb][i] : fill;
    }
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// ---- forward -----------------------------------------------------------------------------------
// Block (query tile, head, batch). Shared: Qs [128][S], Ks [2][64][S], Vs [2][64][S].
constexpr int kFwdRows = 128, kFwdKeys = 64;

template <int D>
constexpr size_t fwd_smem() {
  return sizeof(bf16) * size_t(kFwdRows + 4 * kFwdKeys) * (D + kPad);
}
// D = 64 runs two blocks per SM (128 registers with 40 bytes of spill; measured 8% faster than
// one block on an H100); D = 128 needs ~210 registers for S, O and the Q fragments.
template <int D>
constexpr int fwd_min_blocks() {
  return D == 64 ? 2 : 1;
}

template <int D, int MinBlocks>
__global__ void __launch_bounds__(kThreads, MinBlocks) flash_fwd_kernel(const FlashParams p) {
  constexpr int BM = kFwdRows, BN = kFwdKeys, S = D + kPad;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);
  bf16* Ks = Qs + BM * S;
  bf16* Vs = Ks + 2 * BN * S;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int n_qt = (p.L + BM - 1) / BM;
  const BlockTile bt = block_tile();
  const int t0 = (n_qt - 1 - bt.rank) * BM;  // the longest rows (most key tiles) start first
  const int h = bt.head, b = bt.batch, hk = h / p.G;
  const int64_t q_ld = int64_t(p.H) * D, kv_ld = int64_t(p.Hkv) * D;
  const int64_t q_off = (int64_t(b) * p.L * p.H + h) * D;
  const int64_t kv_off = (int64_t(b) * p.L * p.Hkv + hk) * D;
  const bf16* kg = p.k + kv_off;
  const bf16* vg = p.v + kv_off;
  // Key tiles holding a key visible to some row of the block: from the first row's window
  // start to the last row.
  const int t_last = min(p.L, t0 + BM) - 1;
  const int kt_begin = p.window > 0 ? max(0, t0 - p.window + 1) / BN : 0;
  const int kt_end = t_last / BN + 1;

  load_rows<BM, D>(Qs, p.q + q_off, q_ld, t0, p.L);
  load_rows<BN, D>(Ks, kg, kv_ld, kt_begin * BN, p.L);
  load_rows<BN, D>(Vs, vg, kv_ld, kt_begin * BN, p.L);
  cp_async_commit();

  const int wr0 = t0 + warp * 16;  // the warp's first query
  const uint32_t q_base = smem_u32(Qs) + 2 * (warp * 16 * S + lane_off_a<S>(lane));
  const int off_a = lane_off_a<S>(lane), off_b = lane_off_b<S>(lane);
  uint32_t qf[D / 16][4];  // the warp's 16 x D query block as A fragments, loaded once
  float acc[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY};  // running row max (exp2 domain), rows g and g + 8
  float l[2] = {0.f, 0.f};              // this thread's part of the running row sum

  for (int kt = kt_begin; kt < kt_end; ++kt) {
    const int buf = (kt - kt_begin) & 1;
    if (kt + 1 < kt_end) {  // prefetch the next tile into the other stage
      load_rows<BN, D>(Ks + (buf ^ 1) * BN * S, kg, kv_ld, (kt + 1) * BN, p.L);
      load_rows<BN, D>(Vs + (buf ^ 1) * BN * S, vg, kv_ld, (kt + 1) * BN, p.L);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (kt == kt_begin) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) ldsm_x4(qf[kk], q_base + 2 * kk * 16);
    }
    const int s0 = kt * BN;
    // Warp-uniform: no key of the tile is visible to the warp's rows (diagonal / window edge).
    const bool skip = s0 > wr0 + 15 || (p.window > 0 && wr0 - (s0 + BN - 1) >= p.window);
    if (!skip) {
      const uint32_t k_base = smem_u32(Ks + buf * BN * S) + 2 * off_b;
      const uint32_t v_base = smem_u32(Vs + buf * BN * S) + 2 * off_a;
      float s[BN / 8][4];
#pragma unroll
      for (int i = 0; i < BN / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
        for (int nb = 0; nb < BN / 16; ++nb) {
          uint32_t kf[4];
          ldsm_x4(kf, k_base + 2 * (nb * 16 * S + kk * 16));
          mma(s[2 * nb], qf[kk], kf[0], kf[1]);
          mma(s[2 * nb + 1], qf[kk], kf[2], kf[3]);
        }
      }
      // The mask as a select (mask_tile_rows): as a per-score test it had compiled to branches
      // here too. Measured on an H100 with LT2_FLASH_MMA=1 (same call, 3 rounds): forward
      // B4 L4096 H16 D128 1.42 -> 1.11 ms, B8 L2048 H12 D64 0.31-0.33 -> 0.25 ms.
      mask_tile_rows<BN>(p, b, wr0, g, tq, s0, s, -INFINITY);
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int nb = 0; nb < BN / 8; ++nb)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          s[nb][i] *= p.scale_log2;  // -inf stays -inf: the scale is positive
          mx[i >> 1] = fmaxf(mx[i >> 1], s[nb][i]);
        }
      float m_use[2], corr[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float m_new = fmaxf(m[r], quad_max(mx[r]));
        // A row with nothing visible so far keeps m = -inf; subtract 0 instead so that
        // exp2(-inf - m) is 0, not NaN.
        m_use[r] = m_new == -INFINITY ? 0.f : m_new;
        corr[r] = exp2f(m[r] - m_use[r]);
        m[r] = m_new;
      }
      float ls[2] = {0.f, 0.f};
#pragma unroll
      for (int nb = 0; nb < BN / 8; ++nb)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float e = exp2f(s[nb][i] - m_use[i >> 1]);
          s[nb][i] = e;
          ls[i >> 1] += e;
        }
#pragma unroll
      for (int r = 0; r < 2; ++r) l[r] = l[r] * corr[r] + ls[r];
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        acc[i][0] *= corr[0];
        acc[i][1] *= corr[0];
        acc[i][2] *= corr[1];
        acc[i][3] *= corr[1];
      }
      // O += P V: P (bf16) straight from the score registers, V as transposed B fragments.
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        uint32_t pa[4];
        c_to_a(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
        for (int nd = 0; nd < D / 16; ++nd) {
          uint32_t vf[4];
          ldsm_x4_t(vf, v_base + 2 * (kk * 16 * S + nd * 16));
          mma(acc[2 * nd], pa, vf[0], vf[1]);
          mma(acc[2 * nd + 1], pa, vf[2], vf[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with this stage before it is refilled
  }

  const int64_t lse_off = (int64_t(b) * p.H + h) * p.L;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int t = wr0 + g + 8 * r;
    const float lsum = quad_sum(l[r]);  // all lanes take part in the shuffles
    if (t >= p.L) continue;
    const float inv = 1.f / lsum;  // lsum >= 1: every row sees its own key
    bf16* orow = p.out + q_off + int64_t(t) * q_ld + 2 * tq;
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
      *reinterpret_cast<uint32_t*>(orow + i * 8) = pack_bf16(acc[i][2 * r] * inv, acc[i][2 * r + 1] * inv);
    if (p.lse && tq == 0) p.lse[lse_off + t] = (m[r] + log2f(lsum)) * kLn2;
  }
}

// ---- DSA mask, transposed for the dK/dV kernels ------------------------------------------------
// mask_t[b, s, t / 32] bit t % 32 = mask[b, t, s / 32] bit s % 32. One warp per 32 x 32 bit
// block: lane l holds row t0 + l's word, and ballot j gathers bit j of every lane, which is the
// transposed word of column s0 + j.
__global__ void transpose_mask_kernel(const uint32_t* __restrict__ mask, uint32_t* __restrict__ mask_t, int L, int W,
                                      int64_t blocks) {
  const int64_t wid = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (wid >= blocks) return;  // whole warps leave together
  const int lane = threadIdx.x & 31;
  const int64_t b = wid / (int64_t(W) * W);
  const int rb = int(wid / W % W), cb = int(wid % W);
  const int t = rb * 32 + lane;
  const uint32_t w = t < L ? mask[(b * L + t) * W + cb] : 0u;
  uint32_t mine = 0;
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    const uint32_t col = __ballot_sync(0xffffffffu, (w >> j) & 1u);
    if (lane == j) mine = col;
  }
  const int s = cb * 32 + lane;
  if (s < L) mask_t[(b * L + s) * W + rb] = mine;
}

// ---- DSA: head-averaged attention probabilities ----------------------------------------------------
// probs[b, t, s] = mean over heads h of exp(q[b,t,h] . k[b,s,h/G] * scale - lse[b,h,t]) for s <= t:
// the dense form of DSA's KL target (dsa_indexer_kl then reads it at each query's selected keys
// instead of gathering H key rows per slot). Block (64-key tile, 128-query tile, batch), 8 warps
// x 16 rows, one block per causal tile pair; it walks the heads, S = Q_h K_h^T on the tensor
// cores, and sums the exponentials in registers, with the next head's Q / K tiles loading while
// one head computes. Entries above the diagonal are written as 0 inside the tiles it visits, and
// tiles wholly above it are not written. (One block per query tile walking every key tile, the
// earlier form, left the diagonal's longest tiles to a few blocks.) Two blocks an SM, also at
// D = 128 (128 registers, 40 bytes of spill). Measured on an H100, DSA's KL op at B1 L16K H16
// D128 k512: 13.4 ms in the earlier form; 4.35 ms now against 5.22 ms with one block an SM at
// D = 128 (same call).
constexpr int kProbRows = 128, kProbKeys = 64;

template <int D>
constexpr size_t probs_smem() {
  return 2 * sizeof(bf16) * size_t(kProbRows + kProbKeys) * (D + kPad);  // two stages of Q and K
}

template <int D>
__global__ void __launch_bounds__(kThreads, 2) head_mean_probs_kernel(const FlashParams p, float* __restrict__ probs) {
  constexpr int BM = kProbRows, BN = kProbKeys, S = D + kPad, kStage = (BM + BN) * S;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* stages = reinterpret_cast<bf16*>(smem);  // [2][Q rows BM, then K rows BN]
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int s0 = int(blockIdx.x) * BN, t0 = int(blockIdx.y) * BM, b = blockIdx.z, wr0 = t0 + warp * 16;
  if (s0 > min(p.L, t0 + BM) - 1) return;  // wholly above the diagonal (or past the end)
  const int64_t q_ld = int64_t(p.H) * D, kv_ld = int64_t(p.Hkv) * D;
  auto load_head = [&](int h, int st) {
    bf16* Qs = stages + st * kStage;
    load_rows<BM, D>(Qs, p.q + (int64_t(b) * p.L * p.H + h) * D, q_ld, t0, p.L);
    load_rows<BN, D>(Qs + BM * S, p.k + (int64_t(b) * p.L * p.Hkv + h / p.G) * D, kv_ld, s0, p.L);
    cp_async_commit();
  };
  const bool any_visible = s0 <= wr0 + 15;  // warp-uniform: some key of the tile is at or before a row of the warp
  float acc[BN / 8][4];
#pragma unroll
  for (int i = 0; i < BN / 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
  load_head(0, 0);
  for (int h = 0; h < p.H; ++h) {
    if (h + 1 < p.H) {
      load_head(h + 1, (h + 1) & 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    float lse2[2];  // the rows' lse in the exp2 domain
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int t = wr0 + g + 8 * r;
      lse2[r] = t < p.L ? p.lse_in[(int64_t(b) * p.H + h) * p.L + t] * kLog2e : 0.f;
    }
    if (any_visible) {
      const bf16* Qs = stages + (h & 1) * kStage;
      const uint32_t q_base = smem_u32(Qs) + 2 * (warp * 16 * S + lane_off_a<S>(lane));
      const uint32_t k_base = smem_u32(Qs + BM * S) + 2 * lane_off_b<S>(lane);
      float sc[BN / 8][4];
#pragma unroll
      for (int i = 0; i < BN / 8; ++i) sc[i][0] = sc[i][1] = sc[i][2] = sc[i][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t qf[4];
        ldsm_x4(qf, q_base + 2 * kk * 16);
#pragma unroll
        for (int nb = 0; nb < BN / 16; ++nb) {
          uint32_t kf[4];
          ldsm_x4(kf, k_base + 2 * (nb * 16 * S + kk * 16));
          mma(sc[2 * nb], qf, kf[0], kf[1]);
          mma(sc[2 * nb + 1], qf, kf[2], kf[3]);
        }
      }
      // Every score's exponential is added, the unseen ones (above the diagonal, rows past L)
      // too; they are dropped once, when the tile is written, so no branch per score here.
#pragma unroll
      for (int nb = 0; nb < BN / 8; ++nb)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[nb][i] += exp2f(sc[nb][i] * p.scale_log2 - lse2[i >> 1]);
    }
    __syncthreads();  // every warp is done with this head's stage before head h + 2 refills it
  }
  const float inv_heads = 1.f / float(p.H);
#pragma unroll
  for (int nb = 0; nb < BN / 8; ++nb)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int t = wr0 + g + 8 * r, s = s0 + nb * 8 + 2 * tq;
      if (t >= p.L || s >= p.L) continue;
      float* dst = probs + (int64_t(b) * p.L + t) * p.L + s;
      dst[0] = s <= t ? acc[nb][2 * r] * inv_heads : 0.f;
      if (s + 1 < p.L) dst[1] = s + 1 <= t ? acc[nb][2 * r + 1] * inv_heads : 0.f;
    }
}

// ---- backward: delta ---------------------------------------------------------------------------
// delta[b, h, t] = sum_d dO[b, t, h, d] O[b, t, h, d]; D / 8 threads per row, 16 bytes each.
template <int D>
__global__ void flash_delta_kernel(const FlashParams p, int64_t rows) {
  constexpr int kLanes = D / 8;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t row = i / kLanes;  // (b * L + t) * H + h
  const int c = int(i % kLanes) * 8;
  float sum = 0.f;
  if (row < rows) {
    const uint4 ov = *reinterpret_cast<const uint4*>(p.o + row * D + c);
    const uint4 gv = *reinterpret_cast<const uint4*>(p.dout + row * D + c);
    const __nv_bfloat162* o2 = reinterpret_cast<const __nv_bfloat162*>(&ov);
    const __nv_bfloat162* g2 = reinterpret_cast<const __nv_bfloat162*>(&gv);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 a = __bfloat1622float2(o2[j]), d = __bfloat1622float2(g2[j]);
      sum += a.x * d.x + a.y * d.y;
    }
  }
#pragma unroll
  for (int o = kLanes / 2; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (row < rows && c == 0) {
    const int64_t h = row % p.H, t = (row / p.H) % p.L, b = row / (int64_t(p.H) * p.L);
    const int64_t at = (b * p.H + h) * p.L + t;
    p.delta[at] = sum;
    p.lse2[at] = p.lse_in[at] * kLog2e;
  }
}

// ---- backward: dK, dV and dQ in one pass -------------------------------------------------------
// Block (key tile of 128, KV head, batch), 8 warps x 16 keys; walks 32-query tiles (the dK and
// dV accumulators already take 2 x D / 2 registers) of each query head of the group. The warp
// computes S^T = K Q^T and dP^T = V dO^T directly (keys as rows), so P^T and dS^T are already A
// fragments for dV += P^T dO and dK += dS^T Q. dS^T then goes to shared memory, and the block
// computes the tile's share of dQ = dS K (its 128 keys) as 8 warps x (16 queries x D / 4).
// Five matrix products per tile instead of the seven of separate dQ and dK/dV kernels (which
// recompute S and dP twice).
//
// dQ without atomics: every key tile adds its share into an fp32 accumulator in global memory
// in a fixed order, ascending key tile, so the sums are the same bits on every run. Each warp
// owns a counter per query tile: key tile kb waits until the counter says that kb - 1 (the
// tiles before it) added theirs, adds, and bumps it; the first contributor stores without
// reading, the last (the tile holding the diagonal) writes dQ in bf16 instead. Waiting only
// on blocks of lower rank, which block_tile() launches earlier, cannot deadlock: those are
// running or done (blocks are dispatched in launch order). Query tiles are walked last one
// first: every key tile of a (batch, head) starts at the same query tile and the key tiles then
// move down in step, each a little behind the one before (a first-tile-first walk would make
// key tile kb wait for kb - 1 to walk 4 tiles before it could add its first).
// The accumulator is stored in fragment order (each thread's D / 8 floats contiguous), so the
// read-modify-write is whole 16-byte loads and stores; its lines stay in L2 between the
// neighbouring key tiles that touch them.
// Shared: Ks, Vs [128][S]; Qs, dOs [NS][BM][S]; dS^T [128][BM + pad]; lse, delta [NS][BM] (fp32).
// Four query stages: tiles are loaded two ahead into the stage that the tile before last used,
// which every warp has left once it passed the previous tile's barrier, so one barrier per tile
// suffices for the stages (a second one waits for the block's dS^T).
//
// Measured on an H100 (lt2 bench attn, bwd ms, same call; bench/gpu/attn_fused_*_s5_h100.txt):
// B8 L2048 H12 D64 1.09-1.10 (two kernels) -> 1.05-1.06, B16 2.13-2.21 -> 2.05, window 512
// 0.61 -> 0.58. Tried and slower: 64-query tiles with one block per SM (255 registers, K and V
// fragments kept in registers) 1.43; fire-and-forget float atomics for dQ 1.48; a fence in
// every lane before the counter moves 1.14. The block order (kLptPairs 16, 32, 64 or all pairs)
// changed nothing beyond noise. D = 128 (mma.sync; Hopper runs the wgmma kernels) is slower
// fused than the two kernels were (LT2_FLASH_MMA=1, B4 L4096 H16, bwd 6.01 vs 5.23 ms): at one
// block per SM (251 registers) the ordered read-modify-write is likely what stays exposed
// (not profiled).
constexpr int kBwdKeys = 128, kBwdRows = 32, kBwdStages = 4;
template <int D, int NS>
constexpr size_t bwd_smem() {
  return sizeof(bf16) * (size_t(2 * kBwdKeys + 2 * NS * kBwdRows) * (D + kPad) +
                         size_t(kBwdKeys) * (kBwdRows + kPad)) +
         sizeof(float) * 2 * NS * kBwdRows;
}
// D = 64 fits in 128 registers, so two blocks share an SM; D = 128 needs ~240 registers.
template <int D>
constexpr int bwd_min_blocks() {
  return D == 64 ? 2 : 1;
}

__device__ __forceinline__ unsigned ld_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void st_release(unsigned* p, unsigned v) {
  asm volatile("st.release.gpu.global.u32 [%0], %1;\n" ::"l"(p), "r"(v) : "memory");
}

template <int D, int MinBlocks, int NS>
__global__ void __launch_bounds__(kThreads, MinBlocks) flash_bwd_kernel(const FlashParams p) {
  // SD: dS^T rows of 40 bf16 (80 bytes): conflict-free 32-bit stores and ldmatrix phases.
  constexpr int BN = kBwdKeys, BM = kBwdRows, S = D + kPad, SD = BM + kPad;
  static_assert(NS >= 3, "a stage is refilled only after the barrier of the tile that followed it");
  constexpr int kAhead = NS - 2;  // tiles loaded ahead of the one in use
  constexpr int kQCols = D / 4;   // dQ columns per warp (warps: 2 query halves x 4 column blocks)
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Ks = reinterpret_cast<bf16*>(smem);
  bf16* Vs = Ks + BN * S;
  bf16* Qs = Vs + BN * S;       // [NS][BM][S]
  bf16* dOs = Qs + NS * BM * S;  // [NS][BM][S]
  bf16* dSt = dOs + NS * BM * S;  // [BN][SD]: dS^T of the current tile, bf16
  float* lse_s = reinterpret_cast<float*>(dSt + BN * SD);  // [NS][BM]
  float* dl_s = lse_s + NS * BM;                            // [NS][BM]
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const BlockTile bt = block_tile();
  const int kb = bt.rank, s0 = kb * BN;  // the first key tiles are seen by the most queries: they start first
  const int hk = bt.head, b = bt.batch;
  const int64_t q_ld = int64_t(p.H) * D, kv_ld = int64_t(p.Hkv) * D;
  const int64_t kv_off = (int64_t(b) * p.L * p.Hkv + hk) * D;
  // Queries that can see a key of the tile: s0 <= t < (last key) + window.
  const int s_last = min(p.L, s0 + BN) - 1;
  const int q_end = p.window > 0 ? min(p.L, s_last + p.window) : p.L;
  const int qt_begin = s0 / BM, n_qt = (q_end - 1) / BM + 1 - qt_begin;
  const int n_iter = p.G * n_qt;             // (head of the group, query tile), heads outer
  const int n_qtiles = (p.L + BM - 1) / BM;  // query tiles per head (dQ accumulator, counters)
  auto head_of = [&](int it) { return hk * p.G + it / n_qt; };
  auto tile_of = [&](int it) { return qt_begin + n_qt - 1 - it % n_qt; };  // last tile first

  auto load_queries = [&](int it, int buf) {
    const int h = head_of(it), qt0 = tile_of(it) * BM;
    const int64_t q_off = (int64_t(b) * p.L * p.H + h) * D, row_off = (int64_t(b) * p.H + h) * p.L;
    load_rows<BM, D>(Qs + buf * BM * S, p.q + q_off, q_ld, qt0, p.L);
    load_rows<BM, D>(dOs + buf * BM * S, p.dout + q_off, q_ld, qt0, p.L);
    load_floats<BM>(lse_s + buf * BM, p.lse_in + row_off, qt0, p.L);
    load_floats<BM>(dl_s + buf * BM, p.delta + row_off, qt0, p.L);
  };
  load_rows<BN, D>(Ks, p.k + kv_off, kv_ld, s0, p.L);
  load_rows<BN, D>(Vs, p.v + kv_off, kv_ld, s0, p.L);
  load_queries(0, 0);
  cp_async_commit();
#pragma unroll
  for (int j = 1; j < kAhead; ++j) {
    if (j < n_iter) load_queries(j, j);
    cp_async_commit();  // possibly empty: keeps the group count fixed
  }

  const int wk0 = s0 + warp * 16;  // the warp's first key
  const int off_a = lane_off_a<S>(lane), off_b = lane_off_b<S>(lane);
  const uint32_t k_base = smem_u32(Ks) + 2 * (warp * 16 * S + off_a);
  const uint32_t v_base = smem_u32(Vs) + 2 * (warp * 16 * S + off_a);
  // dQ = dS K: the warp's 16 queries (A, read transposed from dS^T) and D / 4 columns of K (B).
  const int m0 = (warp & 1) * 16, n0 = (warp >> 1) * kQCols;
  const uint32_t ds_base = smem_u32(dSt) + 2 * (lane_off_b<SD>(lane) + m0);
  const uint32_t kq_base = smem_u32(Ks) + 2 * (off_a + n0);
  bf16* ds_row = dSt + (warp * 16 + g) * SD + 2 * tq;  // where this thread's dS^T pairs go
  float acc_k[D / 8][4], acc_v[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc_k[i][j] = acc_v[i][j] = 0.f;

  for (int it = 0; it < n_iter; ++it) {
    const int buf = it % NS;
    if (it + kAhead < n_iter) load_queries(it + kAhead, (it + kAhead) % NS);
    cp_async_commit();        // possibly empty: keeps the group count fixed
    cp_async_wait<kAhead>();  // tile it landed
    __syncthreads();          // ... for every thread; and every warp has left tile it - 1
    const int h = head_of(it), qt = tile_of(it), qt0 = qt * BM;
    // Warp-uniform: every query of the tile is before the warp's keys or past their window.
    const bool skip = wk0 >= p.L || qt0 + BM - 1 < wk0 || (p.window > 0 && qt0 - (wk0 + 15) >= p.window);
    if (!skip) {
      const uint32_t qb_base = smem_u32(Qs + buf * BM * S) + 2 * off_b;  // Q as B of S^T = K Q^T
      const uint32_t qt_base = smem_u32(Qs + buf * BM * S) + 2 * off_a;  // Q as B of dK += dS^T Q
      const uint32_t gb_base = smem_u32(dOs + buf * BM * S) + 2 * off_b;
      const uint32_t gt_base = smem_u32(dOs + buf * BM * S) + 2 * off_a;
      const float* lse_t = lse_s + buf * BM;
      const float* dl_t = dl_s + buf * BM;
      float s[BM / 8][4], dp[BM / 8][4];
#pragma unroll
      for (int i = 0; i < BM / 8; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) s[i][j] = dp[i][j] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t ka[4], va[4];
        ldsm_x4(ka, k_base + 2 * kk * 16);
        ldsm_x4(va, v_base + 2 * kk * 16);
#pragma unroll
        for (int nb = 0; nb < BM / 16; ++nb) {
          uint32_t qf[4], gf[4];
          ldsm_x4(qf, qb_base + 2 * (nb * 16 * S + kk * 16));
          ldsm_x4(gf, gb_base + 2 * (nb * 16 * S + kk * 16));
          mma(s[2 * nb], ka, qf[0], qf[1]);
          mma(s[2 * nb + 1], ka, qf[2], qf[3]);
          mma(dp[2 * nb], va, gf[0], gf[1]);
          mma(dp[2 * nb + 1], va, gf[2], gf[3]);
        }
      }
      // Per-element test where the tile crosses the diagonal, the window edge or the end.
      const bool need_mask = p.mask != nullptr ||
          qt0 + BM > p.L || wk0 + 15 > qt0 || (p.window > 0 && qt0 + BM - 1 - wk0 >= p.window);
      uint32_t mwt[2][(BM + 31) / 32];  // keys g, g + 8: their words for this query tile (all ones unmasked)
      mask_words(p, p.mask_t, b, wk0 + g, qt0 >> 5, mwt);
#pragma unroll
      for (int nb = 0; nb < BM / 8; ++nb)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int col = nb * 8 + 2 * tq + (i & 1), t = qt0 + col;
          const bool vis = !need_mask || (t < p.L && visible_t(p, t, wk0 + g + 8 * (i >> 1), mwt[i >> 1][nb >> 2]));
          const float pr = vis ? exp2f(s[nb][i] * p.scale_log2 - lse_t[col] * kLog2e) : 0.f;
          s[nb][i] = pr;
          dp[nb][i] = pr * (dp[nb][i] - dl_t[col]);  // dS^T (scale applied at the end)
        }
#pragma unroll
      for (int kk = 0; kk < BM / 16; ++kk) {
        uint32_t pa[4], sa[4];
        c_to_a(pa, s[2 * kk], s[2 * kk + 1]);
        c_to_a(sa, dp[2 * kk], dp[2 * kk + 1]);
        // dS^T pairs (consecutive queries) to shared memory, [key][query]: the A fragment's
        // own registers, rows g and g + 8, query columns 16 kk + 2 tq and + 8.
        *reinterpret_cast<uint32_t*>(ds_row + kk * 16) = sa[0];
        *reinterpret_cast<uint32_t*>(ds_row + 8 * SD + kk * 16) = sa[1];
        *reinterpret_cast<uint32_t*>(ds_row + kk * 16 + 8) = sa[2];
        *reinterpret_cast<uint32_t*>(ds_row + 8 * SD + kk * 16 + 8) = sa[3];
#pragma unroll
        for (int nd = 0; nd < D / 16; ++nd) {
          uint32_t gf[4], qf[4];
          ldsm_x4_t(gf, gt_base + 2 * (kk * 16 * S + nd * 16));
          mma(acc_v[2 * nd], pa, gf[0], gf[1]);
          mma(acc_v[2 * nd + 1], pa, gf[2], gf[3]);
          ldsm_x4_t(qf, qt_base + 2 * (kk * 16 * S + nd * 16));
          mma(acc_k[2 * nd], sa, qf[0], qf[1]);
          mma(acc_k[2 * nd + 1], sa, qf[2], qf[3]);
        }
      }
    } else {
#pragma unroll
      for (int c = 0; c < BM; c += 8) {  // keys that see none of the tile add nothing to dQ
        *reinterpret_cast<uint32_t*>(ds_row + c) = 0u;
        *reinterpret_cast<uint32_t*>(ds_row + 8 * SD + c) = 0u;
      }
    }
    __syncthreads();  // dS^T of every warp is in shared memory

    // Ordered accumulation (see above). The key tiles adding to query tile qt are first..last.
    const int first = p.window > 0 ? max(0, qt0 - p.window + 1) / BN : 0;
    const int last = (min(qt0 + BM, p.L) - 1) / BN;
    const int order = kb - first;
    const int64_t slot = ((int64_t(b) * p.H + h) * n_qtiles + qt) * 8 + warp;
    float4* acc = reinterpret_cast<float4*>(p.dq_acc + (slot * 32 + lane) * (kQCols / 2));
    unsigned* cnt = p.dq_cnt + slot;
    float4 prev[kQCols / 8];
    // Wait for the key tiles before this one, then fetch their sum; the load's latency hides
    // behind the products below.
    if (order > 0) {
      while (ld_acquire(cnt) < unsigned(order)) __nanosleep(32);
#pragma unroll
      for (int i = 0; i < kQCols / 8; ++i) prev[i] = __ldcg(acc + i);
    }
    // This key tile's share of the tile's dQ: 16 queries x D / 4 columns per warp.
    float dq[kQCols / 8][4];
#pragma unroll
    for (int i = 0; i < kQCols / 8; ++i) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t a[4];
      ldsm_x4_t(a, ds_base + 2 * kk * 16 * SD);
#pragma unroll
      for (int nd = 0; nd < kQCols / 16; ++nd) {
        uint32_t kf[4];
        ldsm_x4_t(kf, kq_base + 2 * (kk * 16 * S + nd * 16));
        mma(dq[2 * nd], a, kf[0], kf[1]);
        mma(dq[2 * nd + 1], a, kf[2], kf[3]);
      }
    }
    if (order > 0) {
#pragma unroll
      for (int i = 0; i < kQCols / 8; ++i) {
        dq[i][0] += prev[i].x;
        dq[i][1] += prev[i].y;
        dq[i][2] += prev[i].z;
        dq[i][3] += prev[i].w;
      }
    }
    if (kb == last) {
      const int64_t q_off = (int64_t(b) * p.L * p.H + h) * D;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int t = qt0 + m0 + g + 8 * r;
        if (t >= p.L) continue;
        bf16* row = p.out + q_off + int64_t(t) * q_ld + n0 + 2 * tq;
#pragma unroll
        for (int i = 0; i < kQCols / 8; ++i)
          *reinterpret_cast<uint32_t*>(row + i * 8) = pack_bf16(dq[i][2 * r] * p.scale, dq[i][2 * r + 1] * p.scale);
      }
    } else {
#pragma unroll
      for (int i = 0; i < kQCols / 8; ++i) __stcg(acc + i, make_float4(dq[i][0], dq[i][1], dq[i][2], dq[i][3]));
      // The warp barrier orders every lane's stores before lane 0's release (cumulativity), as
      // a block barrier before one thread's release does in CUTLASS's semaphores. Measured on an
      // H100 (B8 L2048 H12 D64, bwd ms): a fence in every lane instead 1.14, this 1.05;
      // fire-and-forget float atomics (not deterministic) 1.48.
      __syncwarp();
      if (lane == 0) st_release(cnt, unsigned(order + 1));
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int s = wk0 + g + 8 * r;
    if (s >= p.L) continue;
    const int64_t off = kv_off + int64_t(s) * kv_ld + 2 * tq;
    const int64_t dv_off = (int64_t(b) * p.L + s) * p.dv_ld + int64_t(hk) * D + 2 * tq;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      *reinterpret_cast<uint32_t*>(p.dk + off + i * 8) =
          pack_bf16(acc_k[i][2 * r] * p.scale, acc_k[i][2 * r + 1] * p.scale);
      *reinterpret_cast<uint32_t*>(p.dv + dv_off + i * 8) = pack_bf16(acc_v[i][2 * r], acc_v[i][2 * r + 1]);
    }
  }
}

// ---- Hopper (sm_90a) kernels: warpgroup MMA ----------------------------------------------------
// The same three passes, with every matrix product on wgmma: a warpgroup (4 warps, 128
// threads) multiplies a 64-row A by a B of N columns in one instruction per 16-wide k-step,
// B (and Q / dO / K / V as A) read straight from shared memory through a descriptor, so the
// operand traffic of the mma.sync path (every warp re-reading the same B fragments through
// ldmatrix, 1 load per 2 MMAs) disappears. The accumulator and register-A fragment layouts of
// wgmma equal those of mma.m16n8k16 per warp (warp w of the group owns rows 16w..16w+15), so
// the softmax / masking code and the C -> A conversion (P, dS stay in registers) are unchanged.
//
// Tiles use wgmma's 128-byte swizzled layout: an R x D tile is D / 64 blocks of R rows x 64
// columns; row r of a block is one 128-byte line whose 16-byte chunk c sits in slot c ^ (r % 8).
// The same tile serves as a K-major operand (rows = M or N, columns = k) and, with the
// transpose flag, as an MN-major one (rows = k, columns = N). Tiles start 1024-byte aligned.
// (The unswizzled "interleaved" layout computed the same results but ran the forward 25%
// slower than the mma.sync kernel on an H100, the swizzled one 14% faster; bank conflicts of
// the unswizzled reads are the likely cause, not profiled.)
//
// The tiles a block streams (K / V in the forward and dQ kernels, Q / dO in the dK / dV kernel)
// come by TMA: one thread issues the box copies of a stage onto its mbarrier, and the other
// threads compute no addresses. With cp.async, each thread's per-tile address arithmetic took
// most of the instructions at 255 registers (ncu, dK / dV kernel: ~1300 instructions per warp
// and tile, 2 % of them wgmma; with TMA ~730, and the kernel 2.3x faster).
// Measured on an H100 (lt2 bench attn, full causal, fwd / fwd + bwd): B4 L4096 H16 D128 0.91 /
// 2.72 ms, B8 L2048 H12 D64 0.23 / 0.79 ms in the ninth session; then (tenth session) the
// mask as a select instead of a branch per score, the exponent as one FFMA, descriptors as a
// base plus a constant in uniform registers, ping-pong in the D = 128 forward, branch-free
// copies in the dK/dV kernel and Q in registers in the dQ kernel and the D = 128 forward: 0.53 /
// 2.15-2.32 and 0.15 / 0.63-0.70 ms, the spread from card to card and run to run
// (bench/RESULTS.md).
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define LT2_FLASH_SM90A 1
#endif
#ifdef LT2_FLASH_SM90A  // the helpers below exist only where the kernels use them

// Copies rows [row0, row0 + ROWS) (D elements each) into a swizzled tile (see above): thread i
// moves the 16-byte chunk i % (D / 8) of row i / (D / 8), so a warp reads whole rows and the 8
// chunks of a row land in 8 different 16-byte slots of one 128-byte line (conflict-free).
// Rows at or past row_end are zero-filled.
template <int ROWS, int D, int T = kThreads>
__device__ __forceinline__ void load_rows_sw(bf16* dst, const bf16* src, int64_t ld, int row0, int row_end) {
  constexpr int kChunks = D / 8;
  static_assert(ROWS * kChunks % T == 0, "every thread copies the same number of chunks");
#pragma unroll
  for (int j = 0; j < ROWS * kChunks / T; ++j) {
    const int i = threadIdx.x + j * T, r = i / kChunks, ch = i % kChunks;
    const bool ok = row0 + r < row_end;
    bf16* d = dst + (ch >> 3) * ROWS * 64 + r * 64 + ((ch ^ r) & 7) * 8;
    cp_async16(d, ok ? src + int64_t(row0 + r) * ld + ch * 8 : src, ok);
  }
}

// Shared-memory matrix descriptor with the 128-byte swizzle: start address, LBO, SBO (16-byte
// units), layout type 1 in bits 62-63.
__device__ __forceinline__ uint64_t gmma_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(lbo >> 4) << 16) | (uint64_t(sbo >> 4) << 32) |
         (uint64_t(1) << 62);
}
// The descriptor `bytes` further on: added to the 14-bit address field in the low word, which
// cannot carry (shared memory ends below 256 KB). The k-steps of one tile then share one
// descriptor and each adds a constant (one instruction; ncu counted ~6 uniform-datapath
// instructions per wgmma when every step rebuilt its descriptor from the address).
__device__ __forceinline__ uint64_t desc_offset(uint64_t d, uint32_t bytes) {
  return (d & 0xFFFFFFFF00000000ull) | uint32_t(uint32_t(d) + (bytes >> 4));
}
// An R-row tile as a K-major operand (its rows are M or N, its columns k): rows r0.. (multiple
// of 8; row groups of 8 are 1024 bytes apart = SBO), k-step kk: 32 bytes further inside a
// 64-column block, R * 128 bytes to the next block. LBO is unused for K-major swizzled layouts.
template <int R>
__device__ __forceinline__ uint64_t desc_kmajor(uint32_t tile, int r0, int kk) {
  return desc_offset(gmma_desc(tile, 16, 1024), (kk >> 2) * R * 128 + (kk & 3) * 32 + r0 * 128);
}
// The same tile as an MN-major operand (rows = k, columns = N), k-step kk = rows 16 kk ..:
// two 1024-byte row groups per step; the next 64 columns (N) are R * 128 bytes on (LBO), the
// next 8 rows (k) 1024 bytes (SBO).
template <int R>
__device__ __forceinline__ uint64_t desc_mnmajor(uint32_t tile, int kk) {
  return desc_offset(gmma_desc(tile, R * 128, 1024), kk * 2048);
}
// The warp's 16 rows r0.. of an R-row swizzled tile as register A fragments of its D / 16
// k-steps (the mma.m16n8k16 A layout, which wgmma's register A operand shares), by ldmatrix:
// lanes 0-7 / 8-15 / 16-23 / 24-31 address rows 0-7 / 8-15 / 0-7 / 8-15 at columns +0 / +0 /
// +8 / +8 of the k-step.
template <int R, int D>
__device__ __forceinline__ void load_a_frags(uint32_t (&a)[D / 16][4], uint32_t tile, int r0, int lane) {
  const int r = r0 + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const int c = kk * 16 + (lane >> 4) * 8;
    ldsm_x4(a[kk], tile + (c >> 6) * R * 128 + r * 128 + ((((c & 63) >> 3) ^ (r & 7)) << 4));
  }
}
// threadIdx.x / 128, broadcast from lane 0 so that the compiler knows it is the same in the
// whole warp: the descriptors built from it then stay in uniform registers, not rebuilt in
// every thread's registers and moved over before each wgmma.
__device__ __forceinline__ int warpgroup_index() { return __shfl_sync(~0u, int(threadIdx.x) >> 7, 0); }
// Dynamic shared memory rounded up to the 1024-byte alignment the swizzle pattern assumes
// (the kernels ask for 1 KiB more than their tiles need).
__device__ __forceinline__ unsigned char* align1k(unsigned char* p) {
  return p + ((1024u - (smem_u32(p) & 1023u)) & 1023u);
}

// ---- TMA copies completing on an mbarrier (see tma.h for the host-side maps) ----
__device__ __forceinline__ void mbar_init(uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// One arrival that also announces `bytes` to come from the copies issued against this phase.
__device__ __forceinline__ void mbar_arrive_expect(uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, unsigned parity) {
  asm volatile(
      "{\n.reg .pred done;\nLT2_MBAR_WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra LT2_MBAR_WAIT_%=;\n}\n" ::"r"(smem_u32(bar)), "r"(parity) : "memory");
}
// One arrival (no bytes announced): a consumer is done with a stage.
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}
// Named barriers (ids 1.. ; 0 is __syncthreads) over n threads: sync waits, arrive does not.
__device__ __forceinline__ void named_bar_sync(int id, int n) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void named_bar_arrive(int id, int n) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
// Box (c0, c1, c2, c3) of a rank-4 map into shared memory at dst (1024-byte aligned for the swizzle).
__device__ __forceinline__ void tma_load_4d(void* dst, const CUtensorMap& map, uint64_t* bar, int c0, int c1, int c2,
                                            int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(
          smem_u32(dst)),
      "l"(reinterpret_cast<uint64_t>(&map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_u32(bar))
      : "memory");
}

// mbar_arrive_expect and tma_load_4d issued only where `on`, by a predicate instead of a branch:
// ptxas serializes the wgmma of a kernel that branches on the thread while one is in flight
// (C7515), and the dK/dV kernel ran faster with them; the forward and dQ kernels ran slower
// (they issue from one thread in a branch, with nothing in flight).
__device__ __forceinline__ void mbar_arrive_expect_if(bool on, uint64_t* bar, unsigned bytes) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %2, 0;\n@p mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n}\n" ::"r"(
                   smem_u32(bar)),
               "r"(bytes), "r"(int(on))
               : "memory");
}
__device__ __forceinline__ void tma_load_4d_if(bool on, void* dst, const CUtensorMap& map, uint64_t* bar, int c0,
                                               int c1, int c2, int c3) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %7, 0;\n"
      "@p cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n}\n" ::"r"(
          smem_u32(dst)),
      "l"(reinterpret_cast<uint64_t>(&map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_u32(bar)), "r"(int(on))
      : "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// cp.async fills shared memory through the generic proxy; wgmma reads it through the async
// proxy, which needs this fence (each writing thread, before the barrier).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// The accumulators are written asynchronously: this pins every use after the wait.
template <int N>
__device__ __forceinline__ void reg_fence(float (&d)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) asm volatile("" : "+f"(d[i][j])::"memory");
}
// The same for register A operands: keeps them live (and unshared) until the product is done.
template <int N>
__device__ __forceinline__ void reg_fence(uint32_t (&a)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) asm volatile("" : "+r"(a[i][j])::"memory");
}

// d (+)= A B for a 64 x N x 16 step: _ss with A from shared memory (K-major descriptor), _rs
// with A in registers (the mma.m16n8k16 A fragment of the warp's 16 rows). accumulate = 0
// overwrites d. TransB = 1: B is MN-major.
template <int TransB>
__device__ __forceinline__ void wgmma_ss_n64(float (&d)[8][4], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, %35;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate), "n"(TransB));
}
template <int TransB>
__device__ __forceinline__ void wgmma_rs_n64(float (&d)[8][4], const uint32_t (&a)[4], uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate), "n"(TransB));
}
template <int TransB>
__device__ __forceinline__ void wgmma_ss_n128(float (&d)[16][4], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, %67;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate), "n"(TransB));
}
template <int TransB>
__device__ __forceinline__ void wgmma_rs_n128(float (&d)[16][4], const uint32_t (&a)[4], uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate), "n"(TransB));
}

template <int N, int TransB>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 8][4], uint64_t a, uint64_t b, int accumulate) {
  if constexpr (N == 64) wgmma_ss_n64<TransB>(d, a, b, accumulate);
  else wgmma_ss_n128<TransB>(d, a, b, accumulate);
}
template <int N, int TransB>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t b, int accumulate) {
  if constexpr (N == 64) wgmma_rs_n64<TransB>(d, a, b, accumulate);
  else wgmma_rs_n128<TransB>(d, a, b, accumulate);
}
#endif  // LT2_FLASH_SM90A

// -- forward: block = 2 warpgroups x 64 queries, 64-key tiles.
constexpr int kWgFwdRows = 128, kWgFwdKeys = 64;
// D = 64 fits two blocks per SM (128 registers, a few bytes of spill).
template <int D>
constexpr int wg_fwd_min_blocks() {
  return D == 64 ? 2 : 1;
}

// -- forward, software-pipelined (the FlashAttention-3 ordering inside a warpgroup): each
// step issues S_{j+1} = Q K_{j+1}^T and O += P_j V_j back to back, waits for S_{j+1} only, and
// runs its softmax while the tensor cores still work on P_j V_j; O is rescaled once that
// product is done. S_{j+1} needs K_{j+1} while P_j V_j reads V_j, and the load of tile j + 2
// goes into the stage tile j - 1 freed: three K/V stages. P_j (a register operand) stays
// untouched until its product is done, so P is double-buffered.
// Shared: Qs [128][D], Ks [3][BN][D], Vs [3][BN][D], 3 mbarriers (K / V by TMA, one thread).
template <int D, int BN>
constexpr size_t wg_fwd_smem() {
  return sizeof(bf16) * size_t(kWgFwdRows + 6 * BN) * D + 6 * sizeof(uint64_t) + 1024;
}
// The K and V maps: [B, L, Hkv, D] bf16 in boxes of 64 columns x 64 rows of one (batch, head).
struct KvMaps {
  CUtensorMap k, v;
};
#ifdef LT2_FLASH_SM90A
// The mbarriers of N stages filled by TMA: full[N] (one arrival, the copy's bytes) and, in the
// ping-pong kernels, empty[N] = full + N (the 256 consumer threads, once their products have
// read the stage). The forward and dQ kernels have three K / V stages, the dK/dV kernel two
// Q / dO stages.
template <bool PP, int N = 3>
__device__ __forceinline__ void init_stage_barriers(uint64_t* full) {
  if (threadIdx.x == 0) {
#pragma unroll
    for (int i = 0; i < N; ++i) {
      mbar_init(&full[i], 1);
      if constexpr (PP) mbar_init(&full[N + i], kThreads);
    }
  }
  __syncthreads();
}
// Thread 0 only: K and V rows s0 .. s0 + BN - 1 of (batch b, KV head hk) into stage st, by TMA.
template <int BN, int D>
__device__ __forceinline__ void load_kv_stage(const KvMaps& maps, uint64_t* full, bf16* Ks, bf16* Vs, int st, int s0,
                                              int hk, int b) {
  mbar_arrive_expect(&full[st], 2 * BN * D * sizeof(bf16));
#pragma unroll
  for (int c = 0; c < D / 64; ++c) {
    tma_load_4d(Ks + st * BN * D + c * BN * 64, maps.k, &full[st], c * 64, s0, hk, b);
    tma_load_4d(Vs + st * BN * D + c * BN * 64, maps.v, &full[st], c * 64, s0, hk, b);
  }
}
// Ping-pong (FlashAttention-3), in the forward at D = 128: a producer warpgroup issues the
// K / V copies, each stage freed by its empty mbarrier (no block barrier per tile), and the two
// consumer warpgroups take turns issuing their products (named barriers 1 and 2), so that one
// group's softmax runs while the other's products do. The producer keeps 24 registers and the
// consumers take 240 (setmaxnreg), enough to hold their Q rows as register A operands of S
// (half the shared-memory reads of that product). Measured on an H100 (B4 L4096 H16 D128, same
// call each): forward 0.62 -> 0.56 ms with a ninth warp as producer, then 0.54-0.56 -> 0.53 ms
// (16K: 1.88-1.90 -> 1.82-1.86) with the producer warpgroup and Q in registers; ping-pong in the
// dQ kernel gained nothing (see there). D = 64 runs two blocks per SM, which leave no registers
// for a producer.
// The producer's first lane: tile j + 3 into the stage that tile j freed (tiles 0-2 are issued
// before the roles split).
template <int BN, int D>
__device__ __forceinline__ void kv_producer(const KvMaps& maps, uint64_t* full, bf16* Ks, bf16* Vs, int kt_begin,
                                            int n_kt, int hk, int b) {
  if ((threadIdx.x & 31) != 0) return;
  for (int j = 0; j + 3 < n_kt; ++j) {
    mbar_wait(&full[3 + j % 3], (j / 3) & 1);
    load_kv_stage<BN, D>(maps, full, Ks, Vs, j % 3, (kt_begin + j + 3) * BN, hk, b);
  }
}
// Registers moved between warpgroups (whole warpgroups execute these): a producer group gives
// its registers back, the consumer groups take them.
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
// This warpgroup's turn to issue its products; then the other group's turn.
__device__ __forceinline__ void pp_turn_begin(int wg) { named_bar_sync(1 + wg, kThreads); }
__device__ __forceinline__ void pp_turn_end(int wg) { named_bar_arrive(1 + (wg ^ 1), kThreads); }
#endif
// PP: ping-pong, with a producer warpgroup (its first thread issues the copies) that hands its
// registers to the two consumer groups, which hold their Q rows as register A operands of S.
template <bool PP>
constexpr int wg_threads() {
  return PP ? kThreads + 128 : kThreads;
}
template <int D, int BN, int MinBlocks, bool PP>
__global__ void __launch_bounds__(wg_threads<PP>(), MinBlocks)
    wg_fwd_kernel(const FlashParams p, const __grid_constant__ KvMaps maps) {
#ifdef LT2_FLASH_SM90A
  constexpr int BM = kWgFwdRows;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  unsigned char* smem = align1k(smem_raw);
  bf16* Qs = reinterpret_cast<bf16*>(smem);
  bf16* Ks = Qs + BM * D;
  bf16* Vs = Ks + 3 * BN * D;
  uint64_t* full = reinterpret_cast<uint64_t*>(Vs + 3 * BN * D);  // [3] (+ [3] empty with PP)
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int wg = warpgroup_index();
  const int n_qt = (p.L + BM - 1) / BM;
  const BlockTile bt = block_tile();
  const int t0 = (n_qt - 1 - bt.rank) * BM;
  const int h = bt.head, b = bt.batch, hk = h / p.G;
  const int64_t q_ld = int64_t(p.H) * D;
  const int64_t q_off = (int64_t(b) * p.L * p.H + h) * D;
  const int t_last = min(p.L, t0 + BM) - 1;
  const int kt_begin = p.window > 0 ? max(0, t0 - p.window + 1) / BN : 0;
  const int n_kt = t_last / BN + 1 - kt_begin;
  const int wr0 = t0 + warp * 16;
  const uint32_t q_tile = smem_u32(Qs);
  constexpr int kIssuer = PP ? kThreads : 0;  // the thread that issues the copies (the producer group's first)
  init_stage_barriers<PP>(full);
  auto load_tile = [&](int j) {  // tile kt_begin + j into stage j % 3
    if (threadIdx.x == kIssuer) load_kv_stage<BN, D>(maps, full, Ks, Vs, j % 3, (kt_begin + j) * BN, hk, b);
  };
  auto wait_tile = [&](int j) { mbar_wait(&full[j % 3], (j / 3) & 1); };
  auto turn_begin = [&] {
    if constexpr (PP) pp_turn_begin(wg);
  };
  auto turn_end = [&] {
    if constexpr (PP) pp_turn_end(wg);
  };
  float m[2] = {-INFINITY, -INFINITY};  // running row maxima in the exp2 domain (scores * scale * log2 e)
  float l[2] = {0.f, 0.f};
  // Softmax of tile j's scores s (raw): updates m, l, returns the rescale factor of O in corr
  // and P as bf16 A fragments in pa. The maximum is taken over the raw scores (the scale is
  // positive), so each exponent is one FFMA: s * scale_log2 - m.
  auto softmax = [&](float (&s)[BN / 8][4], int j, uint32_t (&pa)[BN / 16][4], float (&corr)[2]) {
    mask_tile_rows<BN>(p, b, wr0, g, tq, (kt_begin + j) * BN, s, -INFINITY);
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nb = 0; nb < BN / 8; ++nb)
#pragma unroll
      for (int i = 0; i < 4; ++i) mx[i >> 1] = fmaxf(mx[i >> 1], s[nb][i]);  // raw: the scale is positive
    float ms[2];  // -m, the FFMA's addend (0 for a row that has seen no key yet: exp2(-inf) = 0)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float m_new = fmaxf(m[r], quad_max(mx[r]) * p.scale_log2);
      ms[r] = m_new == -INFINITY ? 0.f : -m_new;
      corr[r] = exp2_sfu(m[r] + ms[r]);  // exp2(-inf) = 0, not NaN
      m[r] = m_new;
    }
    float ls[2] = {0.f, 0.f};
#pragma unroll
    for (int nb = 0; nb < BN / 8; ++nb)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float e = exp2_sfu(fmaf(s[nb][i], p.scale_log2, ms[i >> 1]));
        s[nb][i] = e;
        ls[i >> 1] += e;
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) l[r] = l[r] * corr[r] + ls[r];
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) c_to_a(pa[kk], s[2 * kk], s[2 * kk + 1]);
  };

  uint32_t qa[PP ? D / 16 : 1][4];  // PP: the warp's Q rows as register A operands of S
  if constexpr (PP) {
    load_tile(0);
    if (n_kt > 1) load_tile(1);
    if (n_kt > 2) load_tile(2);
    if (threadIdx.x < kThreads) load_rows_sw<BM, D>(Qs, p.q + q_off, q_ld, t0, p.L);
    cp_async_commit();
    cp_async_wait<0>();
    fence_proxy_async();  // Q came by cp.async, through the generic proxy
    __syncthreads();
    if (wg == 2) {
      setmaxnreg_dec<24>();
      if (warp == kThreads / 32) kv_producer<BN, D>(maps, full, Ks, Vs, kt_begin, n_kt, hk, b);
      return;
    }
    setmaxnreg_inc<240>();
    load_a_frags<BM, D>(qa, q_tile, warp * 16, lane);
    wait_tile(0);
    if (wg == 1) named_bar_arrive(1, kThreads);  // group 0 issues first
  } else {
    load_rows_sw<BM, D>(Qs, p.q + q_off, q_ld, t0, p.L);
    cp_async_commit();
    load_tile(0);
    if (n_kt > 1) load_tile(1);
    cp_async_wait<0>();
    wait_tile(0);
    fence_proxy_async();  // Q came by cp.async, through the generic proxy
    __syncthreads();
  }

  float acc[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
  // Every tile of the block's band goes through both warpgroups, also one whose keys the
  // group cannot see (masked to P = 0): a wgmma under a thread-dependent branch makes ptxas
  // serialize all of them (C7520), which costs more than the one extra tile at the diagonal.
  float s_nx[BN / 8][4];
  uint32_t pa[BN / 16][4];  // P_j, read by the product in flight
  {
    turn_begin();
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
      if constexpr (PP) wgmma_rs<BN, 0>(s_nx, qa[kk], desc_kmajor<BN>(smem_u32(Ks), 0, kk), kk);
      else wgmma_ss<BN, 0>(s_nx, desc_kmajor<BM>(q_tile, wg * 64, kk), desc_kmajor<BN>(smem_u32(Ks), 0, kk), kk);
    wgmma_commit();
    turn_end();
    wgmma_wait<0>();
    reg_fence(s_nx);
    float corr[2];
    softmax(s_nx, 0, pa, corr);  // O is still zero: nothing to rescale
  }

  for (int j = 0; j + 1 < n_kt; ++j) {
    wait_tile(j + 1);
    if constexpr (!PP) {
      __syncthreads();  // every group is done with tile j - 1's stage, which tile j + 2 takes
      if (j + 2 < n_kt) load_tile(j + 2);
    }
    const uint32_t k_tile = smem_u32(Ks + ((j + 1) % 3) * BN * D), v_tile = smem_u32(Vs + (j % 3) * BN * D);
    turn_begin();
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
      if constexpr (PP) wgmma_rs<BN, 0>(s_nx, qa[kk], desc_kmajor<BN>(k_tile, 0, kk), kk);
      else wgmma_ss<BN, 0>(s_nx, desc_kmajor<BM>(q_tile, wg * 64, kk), desc_kmajor<BN>(k_tile, 0, kk), kk);
    wgmma_commit();
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) wgmma_rs<D, 1>(acc, pa[kk], desc_mnmajor<BN>(v_tile, kk), 1);
    wgmma_commit();
    turn_end();
    wgmma_wait<1>();  // S_{j+1} done; P_j V_j may still run
    reg_fence(s_nx);
    float s[BN / 8][4];
#pragma unroll
    for (int i = 0; i < BN / 8; ++i)
#pragma unroll
      for (int c = 0; c < 4; ++c) s[i][c] = s_nx[i][c];
    float corr[2];
    uint32_t pa_nx[BN / 16][4];
    softmax(s, j + 1, pa_nx, corr);
    wgmma_wait<0>();
    reg_fence(acc);
    reg_fence(pa);  // P_j is read by the product until here: P_{j+1} must not take its registers
    if constexpr (PP) mbar_arrive(&full[3 + j % 3]);  // K_j and V_j are read: the stage is empty
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      acc[i][0] *= corr[0];
      acc[i][1] *= corr[0];
      acc[i][2] *= corr[1];
      acc[i][3] *= corr[1];
    }
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk)
#pragma unroll
      for (int c = 0; c < 4; ++c) pa[kk][c] = pa_nx[kk][c];
  }
  {  // the last tile's P V
    const uint32_t v_tile = smem_u32(Vs + ((n_kt - 1) % 3) * BN * D);
    turn_begin();
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) wgmma_rs<D, 1>(acc, pa[kk], desc_mnmajor<BN>(v_tile, kk), 1);
    wgmma_commit();
    if (wg == 0) turn_end();  // group 1's last turn is its last: no arrival left pending at exit
    wgmma_wait<0>();
    reg_fence(acc);
  }

  const int64_t lse_off = (int64_t(b) * p.H + h) * p.L;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int t = wr0 + g + 8 * r;
    const float lsum = quad_sum(l[r]);
    if (t >= p.L) continue;
    const float inv = 1.f / lsum;
    bf16* orow = p.out + q_off + int64_t(t) * q_ld + 2 * tq;
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
      *reinterpret_cast<uint32_t*>(orow + i * 8) = pack_bf16(acc[i][2 * r] * inv, acc[i][2 * r + 1] * inv);
    if (p.lse && tq == 0) p.lse[lse_off + t] = (m[r] + log2f(lsum)) * kLn2;
  }
#else
  __trap();
#endif
}

// -- backward dQ: block = 2 warpgroups x 64 queries, 64-key tiles.
constexpr int kWgDqRows = 128, kWgDqKeys = 64;

// Software-pipelined like wg_fwd_kernel: S_{j+1}, dP_{j+1} and dQ += dS_j K_j are issued
// together (three commit groups, in that order); P_{j+1} is computed while dP_{j+1} runs, and
// dS_{j+1} while dS_j K_j runs. Three K/V stages, filled by TMA
// (one thread, four box copies onto the stage's mbarrier; see wg_dkv_kernel for why).
// Shared: Qs, dOs [128][D], Ks, Vs [3][64][D], 3 mbarriers. (Ping-pong as in the forward gained
// nothing here: B4 L4096 H16 D128 bwd 1.72-1.78 ms either way, H100.)
template <int D>
constexpr size_t wg_dq_smem() {
  return sizeof(bf16) * size_t(2 * kWgDqRows + 6 * kWgDqKeys) * D + 3 * sizeof(uint64_t) + 1024;
}
template <int D, int MinBlocks>
__global__ void __launch_bounds__(kThreads, MinBlocks)
    wg_dq_kernel(const FlashParams p, const __grid_constant__ KvMaps maps) {
#ifdef LT2_FLASH_SM90A
  constexpr int BM = kWgDqRows, BN = kWgDqKeys;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  unsigned char* smem = align1k(smem_raw);
  bf16* Qs = reinterpret_cast<bf16*>(smem);
  bf16* dOs = Qs + BM * D;
  bf16* Ks = dOs + BM * D;
  bf16* Vs = Ks + 3 * BN * D;
  uint64_t* full = reinterpret_cast<uint64_t*>(Vs + 3 * BN * D);  // [3] (+ [3] empty with PP)
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int wg = warpgroup_index();
  const int n_qt = (p.L + BM - 1) / BM;
  const BlockTile bt = block_tile();
  const int t0 = (n_qt - 1 - bt.rank) * BM;
  const int h = bt.head, b = bt.batch, hk = h / p.G;
  const int64_t q_ld = int64_t(p.H) * D;
  const int64_t q_off = (int64_t(b) * p.L * p.H + h) * D;
  const int t_last = min(p.L, t0 + BM) - 1;
  const int kt_begin = p.window > 0 ? max(0, t0 - p.window + 1) / BN : 0;
  const int n_kt = t_last / BN + 1 - kt_begin;
  const int wr0 = t0 + warp * 16;
  init_stage_barriers<false>(full);
  auto load_tile = [&](int j) {  // tile kt_begin + j into stage j % 3
    if (threadIdx.x == 0) load_kv_stage<BN, D>(maps, full, Ks, Vs, j % 3, (kt_begin + j) * BN, hk, b);
  };
  auto wait_tile = [&](int j) { mbar_wait(&full[j % 3], (j / 3) & 1); };
  load_rows_sw<BM, D>(Qs, p.q + q_off, q_ld, t0, p.L);
  load_rows_sw<BM, D>(dOs, p.dout + q_off, q_ld, t0, p.L);
  cp_async_commit();
  load_tile(0);
  if (n_kt > 1) load_tile(1);

  const int64_t row_off = (int64_t(b) * p.H + h) * p.L;
  float lse2[2], dl[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int t = wr0 + g + 8 * r;
    lse2[r] = t < p.L ? p.lse2[row_off + t] : 0.f;
    dl[r] = t < p.L ? p.delta[row_off + t] : 0.f;
  }
  const uint32_t q_tile = smem_u32(Qs), do_tile = smem_u32(dOs);
  // S_j and dP_j as two commit groups: P is computed while dP still runs.
  // The warp's Q rows as register A operands of S = Q K^T, loaded once: with both operands
  // from shared memory a 64 x 64 x 16 step reads 4 KB in the ~31 cycles of its arithmetic, at
  // the limit of shared memory's 128 bytes a cycle. Measured on an H100 (same call, 4 rounds):
  // B4 L4096 H16 D128 fwd + bwd 2.19-2.32 -> 2.15-2.19 ms; D64 unchanged (dO stays in shared
  // memory: its fragments would take the registers of the pipelining).
  uint32_t qa[D / 16][4];
  auto issue_s_dp = [&](float (&s)[BN / 8][4], float (&dp)[BN / 8][4], int j) {
    const uint32_t k_tile = smem_u32(Ks + (j % 3) * BN * D), v_tile = smem_u32(Vs + (j % 3) * BN * D);
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) wgmma_rs<BN, 0>(s, qa[kk], desc_kmajor<BN>(k_tile, 0, kk), kk);
    wgmma_commit();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
      wgmma_ss<BN, 0>(dp, desc_kmajor<BM>(do_tile, wg * 64, kk), desc_kmajor<BN>(v_tile, 0, kk), kk);
    wgmma_commit();
  };
  // P of tile j from the raw S accumulators, in place; the keys a query does not see
  // (diagonal, window edge, mask, end) get 0 by a select, not a branch.
  auto make_p = [&](float (&s)[BN / 8][4], int j) {
#pragma unroll
    for (int nb = 0; nb < BN / 8; ++nb)
#pragma unroll
      for (int i = 0; i < 4; ++i) s[nb][i] = exp2_sfu(fmaf(s[nb][i], p.scale_log2, -lse2[i >> 1]));
    mask_tile_rows<BN>(p, b, wr0, g, tq, (kt_begin + j) * BN, s, 0.f);
  };
  // dS = P (dP - delta) (unscaled) as bf16 A fragments.
  auto make_ds = [&](const float (&pr)[BN / 8][4], const float (&dp)[BN / 8][4], uint32_t (&sa)[BN / 16][4]) {
    float ds[BN / 8][4];
#pragma unroll
    for (int nb = 0; nb < BN / 8; ++nb)
#pragma unroll
      for (int i = 0; i < 4; ++i) ds[nb][i] = pr[nb][i] * (dp[nb][i] - dl[i >> 1]);
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) c_to_a(sa[kk], ds[2 * kk], ds[2 * kk + 1]);
  };

  cp_async_wait<0>();
  wait_tile(0);
  fence_proxy_async();  // Q / dO came by cp.async, through the generic proxy
  __syncthreads();
  load_a_frags<BM, D>(qa, q_tile, warp * 16, lane);
  float acc[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
  float s_nx[BN / 8][4], dp_nx[BN / 8][4];
  uint32_t sa[BN / 16][4];  // dS_j, read by the product in flight
  wgmma_fence();
  issue_s_dp(s_nx, dp_nx, 0);
  wgmma_wait<0>();
  reg_fence(s_nx);
  reg_fence(dp_nx);
  make_p(s_nx, 0);
  make_ds(s_nx, dp_nx, sa);

  for (int j = 0; j + 1 < n_kt; ++j) {
    wait_tile(j + 1);
    __syncthreads();  // every warp is done with tile j - 1, whose stage tile j + 2 takes
    if (j + 2 < n_kt) load_tile(j + 2);
    wgmma_fence();
    issue_s_dp(s_nx, dp_nx, j + 1);
    const uint32_t k_tile = smem_u32(Ks + (j % 3) * BN * D);
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) wgmma_rs<D, 1>(acc, sa[kk], desc_mnmajor<BN>(k_tile, kk), 1);
    wgmma_commit();
    wgmma_wait<2>();  // S_{j+1}; dP_{j+1} and dS_j K_j may still run
    reg_fence(s_nx);
    float s[BN / 8][4], dp[BN / 8][4];
#pragma unroll
    for (int i = 0; i < BN / 8; ++i)
#pragma unroll
      for (int c = 0; c < 4; ++c) s[i][c] = s_nx[i][c];
    make_p(s, j + 1);
    wgmma_wait<1>();  // dP_{j+1}
    reg_fence(dp_nx);
#pragma unroll
    for (int i = 0; i < BN / 8; ++i)
#pragma unroll
      for (int c = 0; c < 4; ++c) dp[i][c] = dp_nx[i][c];
    uint32_t sa_nx[BN / 16][4];
    make_ds(s, dp, sa_nx);
    wgmma_wait<0>();
    reg_fence(acc);
    reg_fence(sa);
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk)
#pragma unroll
      for (int c = 0; c < 4; ++c) sa[kk][c] = sa_nx[kk][c];
  }
  {
    const uint32_t k_tile = smem_u32(Ks + ((n_kt - 1) % 3) * BN * D);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) wgmma_rs<D, 1>(acc, sa[kk], desc_mnmajor<BN>(k_tile, kk), 1);
    wgmma_commit();
    wgmma_wait<0>();
    reg_fence(acc);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int t = wr0 + g + 8 * r;
    if (t >= p.L) continue;
    bf16* row = p.out + q_off + int64_t(t) * q_ld + 2 * tq;
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
      *reinterpret_cast<uint32_t*>(row + i * 8) = pack_bf16(acc[i][2 * r] * p.scale, acc[i][2 * r + 1] * p.scale);
  }
#else
  __trap();
#endif
}

// -- backward dK, dV: block = one warpgroup x 64 keys, walking 64-query tiles of each query
// head of the KV group in a fixed order; S^T = K Q^T and dP^T = V dO^T with keys as rows, so
// P^T and dS^T are register A operands of dV += P^T dO and dK += dS^T Q. The four products of a
// tile are committed as four groups and each waited for only when its result is needed (P while
// dP runs, dS while dV runs); at D = 64 the next tile's S and dP are issued before dK (Ahead,
// below), at D = 128 no second tile is in flight (the dK and dV accumulators alone take 128
// registers a thread). Two blocks share an SM and run out of step, one block's softmax
// overlapping the other's products. Measured on an H100 (B4 L4096 H16 D128, bwd ms,
// same call): 2.57 against 2.80 with two warpgroups x 128 keys a block (one block per SM, half
// the Q / dO traffic); at D = 64 a third block per SM (170 registers, spilling) or two
// warpgroups lost too.
// The Q / dO tiles come by TMA (one thread issues four box copies onto the stage's mbarrier):
// with cp.async every thread computed 16 row addresses per tile, and at 255 registers ptxas
// rebuilt them each time (ncu: ~1300 instructions per warp and tile, 2 % of them wgmma). The
// copies of a tile branch on no thread (predicated TMA, lse2 / delta one row a thread): with
// the branch-free copy, B4 L4096 H16 D128 bwd went 1.72-1.89 -> 1.63-1.66 ms (H100, same call).
// Shared: Ks, Vs [64][D]; Qs, dOs [2][64][D]; lse2, delta [2][64] (fp32); 2 mbarriers.
constexpr int kWgDkvKeys = 64, kWgDkvRows = 64;
template <int D>
constexpr size_t wg_dkv_smem() {
  return sizeof(bf16) * size_t(2 * kWgDkvKeys + 4 * kWgDkvRows) * D + sizeof(float) * 4 * kWgDkvRows +
         2 * sizeof(uint64_t) + 1024;
}
// The Q and dO maps: [B, L, H, D] bf16 in boxes of 64 columns x 64 rows of one (batch, head).
struct QdoMaps {
  CUtensorMap q, dout;
};

template <int D, bool Ahead>
__global__ void __launch_bounds__(128, 2)
    wg_dkv_kernel(const FlashParams p, const __grid_constant__ QdoMaps maps) {
#ifdef LT2_FLASH_SM90A
  constexpr int BN = kWgDkvKeys, BM = kWgDkvRows, T = 128;
  constexpr unsigned kTileBytes = 2 * BM * D * sizeof(bf16);  // Q and dO of one tile
  extern __shared__ __align__(128) unsigned char smem_raw[];
  unsigned char* smem = align1k(smem_raw);
  bf16* Ks = reinterpret_cast<bf16*>(smem);
  bf16* Vs = Ks + BN * D;
  bf16* Qs = Vs + BN * D;       // [2][BM][D]
  bf16* dOs = Qs + 2 * BM * D;  // [2][BM][D]
  float* lse_s = reinterpret_cast<float*>(dOs + 2 * BM * D);  // [2][BM], log2 domain
  float* dl_s = lse_s + 2 * BM;                               // [2][BM]
  uint64_t* full = reinterpret_cast<uint64_t*>(dl_s + 2 * BM);  // [2]: the stage's Q / dO landed
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const BlockTile bt = block_tile();
  const int s0 = bt.rank * BN;
  const int hk = bt.head, b = bt.batch;
  const int64_t kv_ld = int64_t(p.Hkv) * D;
  const int64_t kv_off = (int64_t(b) * p.L * p.Hkv + hk) * D;
  const int s_last = min(p.L, s0 + BN) - 1;
  const int q_end = p.window > 0 ? min(p.L, s_last + p.window) : p.L;
  // Exactly the query tiles that see a key of the block (BM = BN: the first is the diagonal
  // tile, the last holds s_last + window - 1), so no tile is skipped.
  const int qt_begin = s0 / BM, n_qt = (q_end - 1) / BM + 1 - qt_begin;
  const int n_iter = p.G * n_qt;
  static_assert(BM == BN, "tile qt_begin starts at the block's first key");

  init_stage_barriers<false, 2>(full);
  // Tile (head h, rows qt0..) into stage buf: Q / dO by TMA, lse2 / delta by cp.async.
  // No branch on the thread (the copies are predicated, lse2 / delta one row a thread): it runs
  // while products are in flight.
  static_assert(T == 2 * BM, "threads 0-63 copy lse2, threads 64-127 delta");
  auto load_queries = [&](int h, int qt0, int buf) {
    const bool issuer = threadIdx.x == 0;
    mbar_arrive_expect_if(issuer, &full[buf], kTileBytes);
#pragma unroll
    for (int c = 0; c < D / 64; ++c) {
      tma_load_4d_if(issuer, Qs + buf * BM * D + c * BM * 64, maps.q, &full[buf], c * 64, qt0, h, b);
      tma_load_4d_if(issuer, dOs + buf * BM * D + c * BM * 64, maps.dout, &full[buf], c * 64, qt0, h, b);
    }
    const int i = threadIdx.x % BM;
    const bool ok = qt0 + i < p.L, is_delta = threadIdx.x >= BM;
    const float* src = (is_delta ? p.delta : p.lse2) + (int64_t(b) * p.H + h) * p.L;
    cp_async4((is_delta ? dl_s : lse_s) + buf * BM + i, ok ? src + qt0 + i : src, ok);
  };
  load_rows_sw<BN, D, T>(Ks, p.k + kv_off, kv_ld, s0, p.L);
  load_rows_sw<BN, D, T>(Vs, p.v + kv_off, kv_ld, s0, p.L);
  load_queries(hk * p.G, qt_begin * BM, 0);
  cp_async_commit();

  const int wk0 = s0 + warp * 16;  // the warp's first key
  const uint32_t k_tile = smem_u32(Ks), v_tile = smem_u32(Vs);
  float acc_k[D / 8][4], acc_v[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc_k[i][j] = acc_v[i][j] = 0.f;

  // The products of query tile (stage buf): S^T and dP^T as two commit groups; P and dS^T
  // (scale applied at the end) from them, the keys' unseen queries (diagonal, window edge, end,
  // mask) set to P = 0 by a select after the fact, not a branch per score.
  float s[BM / 8][4], dp[BM / 8][4];
  uint32_t pa[BM / 16][4], sa[BM / 16][4];  // A operands of dV and dK: untouched until those are done
  auto issue_s_dp = [&](int buf) {
    const uint32_t q_tile = smem_u32(Qs + buf * BM * D), do_tile = smem_u32(dOs + buf * BM * D);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
      wgmma_ss<BM, 0>(s, desc_kmajor<BN>(k_tile, 0, kk), desc_kmajor<BM>(q_tile, 0, kk), kk);
    wgmma_commit();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
      wgmma_ss<BM, 0>(dp, desc_kmajor<BN>(v_tile, 0, kk), desc_kmajor<BM>(do_tile, 0, kk), kk);
    wgmma_commit();
  };
  auto make_p = [&](const float2 (&lse_c)[BM / 8], int qt0) {
#pragma unroll
    for (int nb = 0; nb < BM / 8; ++nb)
#pragma unroll
      for (int i = 0; i < 4; ++i)
        s[nb][i] = exp2_sfu(fmaf(s[nb][i], p.scale_log2, -((i & 1) ? lse_c[nb].y : lse_c[nb].x)));
    const bool need_mask = p.mask != nullptr ||
        qt0 + BM > p.L || wk0 + 15 > qt0 || (p.window > 0 && qt0 + BM - 1 - wk0 >= p.window);
    if (need_mask) {
      uint32_t mwt[2][(BM + 31) / 32];  // keys g, g + 8: their words for this query tile (all ones unmasked)
      mask_words(p, p.mask_t, b, wk0 + g, qt0 >> 5, mwt);
#pragma unroll
      for (int nb = 0; nb < BM / 8; ++nb)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int t = qt0 + nb * 8 + 2 * tq + (i & 1);
          const bool vis = (t < p.L) & visible_t(p, t, wk0 + g + 8 * (i >> 1), mwt[i >> 1][nb >> 2]);
          s[nb][i] = vis ? s[nb][i] : 0.f;
        }
    }
#pragma unroll
    for (int kk = 0; kk < BM / 16; ++kk) c_to_a(pa[kk], s[2 * kk], s[2 * kk + 1]);
  };
  // acc += A B with A in registers (P^T or dS^T) and B a stage's dO or Q tile (MN-major).
  auto issue_rs = [&](float (&acc)[D / 8][4], const uint32_t (&a)[BM / 16][4], const bf16* tile) {
    const uint32_t b_tile = smem_u32(tile);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BM / 16; ++kk) wgmma_rs<D, 1>(acc, a[kk], desc_mnmajor<BM>(b_tile, kk), 1);
    wgmma_commit();
  };
  auto issue_dv = [&](int buf) { issue_rs(acc_v, pa, dOs + buf * BM * D); };
  auto make_ds = [&](const float2 (&dl_c)[BM / 8]) {
#pragma unroll
    for (int nb = 0; nb < BM / 8; ++nb)
#pragma unroll
      for (int i = 0; i < 4; ++i) dp[nb][i] = s[nb][i] * (dp[nb][i] - ((i & 1) ? dl_c[nb].y : dl_c[nb].x));
#pragma unroll
    for (int kk = 0; kk < BM / 16; ++kk) c_to_a(sa[kk], dp[2 * kk], dp[2 * kk + 1]);
  };
  auto issue_dk = [&](int buf) { issue_rs(acc_k, sa, Qs + buf * BM * D); };
  // The thread's 16 query columns (8 blocks x 2): their lse2 and delta.
  auto read_rows = [&](const float* v, float2 (&c)[BM / 8]) {
#pragma unroll
    for (int nb = 0; nb < BM / 8; ++nb) c[nb] = *reinterpret_cast<const float2*>(v + nb * 8 + 2 * tq);
  };

  int h = hk * p.G, qt = qt_begin;  // the tile of iteration it: heads outer, query tiles inner
  auto next_tile = [&](int hc, int qc, int& hn, int& qn) {  // the tile after (hc, qc)
    hn = qc + 1 < qt_begin + n_qt ? hc : hc + 1;
    qn = qc + 1 < qt_begin + n_qt ? qc + 1 : qt_begin;
  };
  if constexpr (Ahead) {
    // Ahead: tile it + 1's S^T and dP^T are issued ahead of tile it's dK, so that the three
    // products run back to back while the group waits once, and tile it + 1 starts with its
    // scores in hand. Measured on an H100 (same call): B8 L2048 H12 D64 bwd 0.49-0.50 -> 0.48
    // ms; at D = 128 the scores held across dK spill (255 registers) and bwd went 1.63-1.66 ->
    // 1.73-1.91 ms, so D = 128 keeps the loop below. (Issuing them behind dK instead, waited
    // for in the next iteration, makes ptxas serialize every wgmma of the kernel, C7515.)
    if (n_iter > 1) {  // tile 1 into stage 1
      int h1, qt1;
      next_tile(h, qt, h1, qt1);
      load_queries(h1, qt1 * BM, 1);
      cp_async_commit();
    }
    cp_async_wait<0>();
    mbar_wait(&full[0], 0);
    fence_proxy_async();  // K / V and lse2 / delta came by cp.async, through the generic proxy
    __syncthreads();
    issue_s_dp(0);
    wgmma_wait<0>();
    reg_fence(s);
    reg_fence(dp);
    for (int it = 0; it < n_iter; ++it) {
      const int buf = it & 1;
      int h_nx, qt_nx;
      next_tile(h, qt, h_nx, qt_nx);
      float2 lse_c[BM / 8], dl_c[BM / 8];
      read_rows(lse_s + buf * BM, lse_c);
      read_rows(dl_s + buf * BM, dl_c);
      make_p(lse_c, qt * BM);
      issue_dv(buf);
      make_ds(dl_c);
      if (it + 1 < n_iter) {
        cp_async_wait<0>();
        mbar_wait(&full[buf ^ 1], ((it + 1) >> 1) & 1);
        __syncthreads();  // lse2 / delta of tile it + 1 (cp.async) seen by every thread
        issue_s_dp(buf ^ 1);
      }
      issue_dk(buf);
      wgmma_wait<0>();
      reg_fence(acc_v);
      reg_fence(acc_k);
      reg_fence(pa);  // the A operands stay untouched until their products are done
      reg_fence(sa);
      reg_fence(s);
      reg_fence(dp);
      __syncthreads();  // every warp is done with stage buf, which tile it + 2 takes
      if (it + 2 < n_iter) {
        int h2, qt2;
        next_tile(h_nx, qt_nx, h2, qt2);
        load_queries(h2, qt2 * BM, buf);
        cp_async_commit();
      }
      h = h_nx;
      qt = qt_nx;
    }
  } else {
    for (int it = 0; it < n_iter; ++it) {
      const int buf = it & 1;
      int h_nx, qt_nx;
      next_tile(h, qt, h_nx, qt_nx);
      if (it + 1 < n_iter) {
        load_queries(h_nx, qt_nx * BM, buf ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      mbar_wait(&full[buf], (it >> 1) & 1);
      fence_proxy_async();  // K / V (first tile) came by cp.async, through the generic proxy
      __syncthreads();
      {
        // Four product groups, each waited for only when its result is needed: P = exp(S - lse)
        // is computed while dP^T = V dO^T runs, and dS^T = P (dP - delta) while dV += P^T dO runs.
        // lse2 / delta first: read behind the products' operand traffic, their shared-memory
        // loads held up the exponent (ncu: 12 % of stall samples on it, short scoreboard).
        float2 lse_c[BM / 8], dl_c[BM / 8];
        read_rows(lse_s + buf * BM, lse_c);
        read_rows(dl_s + buf * BM, dl_c);
        issue_s_dp(buf);
        wgmma_wait<1>();  // S^T
        reg_fence(s);
        make_p(lse_c, qt * BM);
        issue_dv(buf);
        wgmma_wait<1>();  // dP^T (dV may still run)
        reg_fence(dp);
        make_ds(dl_c);
        issue_dk(buf);
        wgmma_wait<0>();
        reg_fence(acc_v);
        reg_fence(acc_k);
        reg_fence(pa);  // the A operands stay untouched until their products are done
        reg_fence(sa);
      }
      __syncthreads();  // every warp is done with the stage that the next iteration refills
      h = h_nx;
      qt = qt_nx;
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int s = wk0 + g + 8 * r;
    if (s >= p.L) continue;
    const int64_t off = kv_off + int64_t(s) * kv_ld + 2 * tq;
    const int64_t dv_off = (int64_t(b) * p.L + s) * p.dv_ld + int64_t(hk) * D + 2 * tq;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      *reinterpret_cast<uint32_t*>(p.dk + off + i * 8) =
          pack_bf16(acc_k[i][2 * r] * p.scale, acc_k[i][2 * r + 1] * p.scale);
      *reinterpret_cast<uint32_t*>(p.dv + dv_off + i * 8) = pack_bf16(acc_v[i][2 * r], acc_v[i][2 * r + 1]);
    }
  }
#else
  __trap();
#endif
}

// ---- host side ---------------------------------------------------------------------------------

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.bytes()) % 16 == 0; }

FlashParams make_params(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window, double scale,
                        const Tensor* mask) {
  FlashParams p{};
  if (mask) {
    LT2_CHECK(mask->dtype() == DType::I32 && mask->on_cuda() &&
                  mask->shape() == Shape({q.dim(0), q.dim(1), flash_mask_words(q.dim(1))}),
              "flash attention: the key mask must be I32 [B, L, ceil(L / 32)] on the GPU, got ",
              shape_str(mask->shape()));
    p.mask = reinterpret_cast<const uint32_t*>(mask->data<int32_t>());
    p.mask_words = int(mask->dim(2));
  }
  p.q = q.data<bf16>();
  p.k = k.data<bf16>();
  p.v = v.data<bf16>();
  p.L = int(q.dim(1));
  p.H = int(q.dim(2));
  p.Hkv = int(k.dim(2));
  p.G = p.H / p.Hkv;
  // A window of L or more hides nothing: run it as full causal (and keep the int math small).
  p.window = window <= 0 || window >= q.dim(1) ? 0 : int(window);
  p.scale = float(scale);
  p.scale_log2 = float(scale * 1.4426950408889634);
  return p;
}

// The wgmma kernels exist only in the sm_90a build (CMAKE_CUDA_ARCHITECTURES 90a-real); other
// GPUs (a newer one running the compute_90 PTX) take the mma.sync kernels, and so does an H100
// with LT2_FLASH_MMA=1 (to test and time them there).
bool flash_use_wgmma() {
  static const bool sm90 = [] {
    int dev = 0, major = 0, minor = 0;
    LT2_CUDA_CHECK(cudaGetDevice(&dev));
    LT2_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    LT2_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    return major == 9 && minor == 0;
  }();
  const char* force = std::getenv("LT2_FLASH_MMA");  // read per call: tests switch it
  return sm90 && !(force && std::string(force) == "1");
}

// A [B, L, H, D] bf16 tensor (q, k, v or dout) as a TMA map of boxes of 64 columns x `rows`
// rows of one (batch, head), in the swizzled tile layout of the wgmma kernels.
CUtensorMap head_rows_map(const bf16* base, int64_t B, int64_t L, int64_t H, int64_t D, int rows) {
  const uint64_t dims[4] = {uint64_t(D), uint64_t(L), uint64_t(H), uint64_t(B)};
  const uint64_t strides[3] = {uint64_t(H * D * 2), uint64_t(D * 2), uint64_t(L * H * D * 2)};
  const uint32_t box[4] = {64, uint32_t(rows), 1, 1};
  return tma_map_bf16_sw128(base, 4, dims, strides, box);
}

template <class F>
void with_head_dim(int64_t D, F&& f) {
  if (D == 64) f(std::integral_constant<int, 64>{});
  else f(std::integral_constant<int, 128>{});
}

}  // namespace

bool flash_supported(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* o, const Tensor* dout) {
  if (q.dtype() != DType::BF16 || k.dtype() != DType::BF16 || v.dtype() != DType::BF16) return false;
  if (q.ndim() != 4 || k.ndim() != 4 || v.ndim() != 4) return false;
  const int64_t B = q.dim(0), L = q.dim(1), H = q.dim(2), D = q.dim(3);
  if (D != 64 && D != 128) return false;
  if (L < 1 || B < 1 || B > 65535 || H > 65535 || L > (int64_t(1) << 30)) return false;
  // block_tile() numbers the blocks of a (tiles, heads, batch) grid in 32 bits (tiles of 128).
  if (((L + 127) / 128 + 1) * H * B * kLptPairs >= (int64_t(1) << 32)) return false;
  return aligned16(q) && aligned16(k) && aligned16(v) && (!o || aligned16(*o)) && (!dout || aligned16(*dout));
}

namespace {
// The forward's and dQ kernel's K / V maps: boxes of `rows` keys of one (batch, KV head).
KvMaps kv_maps(const FlashParams& p, int64_t B, int64_t D, int64_t rows) {
  return {head_rows_map(p.k, B, p.L, p.Hkv, D, rows), head_rows_map(p.v, B, p.L, p.Hkv, D, rows)};
}
}  // namespace

void flash_forward(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window, double scale, Tensor& o,
                   Tensor* lse, const Tensor* mask) {
  FlashParams p = make_params(q, k, v, window, scale, mask);
  p.out = o.data<bf16>();
  p.lse = lse ? lse->data<float>() : nullptr;
  const bool wg = flash_use_wgmma();
  with_head_dim(q.dim(3), [&](auto d) {
    constexpr int D = decltype(d)::value;
    if (wg) {
      const dim3 grid(unsigned((p.L + kWgFwdRows - 1) / kWgFwdRows), unsigned(p.H), unsigned(q.dim(0)));
      const KvMaps maps = kv_maps(p, q.dim(0), D, kWgFwdKeys);
      constexpr bool kPingPong = D == 128;
      auto kernel = wg_fwd_kernel<D, kWgFwdKeys, wg_fwd_min_blocks<D>(), kPingPong>;
      allow_smem(kernel, wg_fwd_smem<D, kWgFwdKeys>());
      kernel<<<grid, wg_threads<kPingPong>(), wg_fwd_smem<D, kWgFwdKeys>(), stream()>>>(p, maps);
    } else {
      const dim3 grid(unsigned((p.L + kFwdRows - 1) / kFwdRows), unsigned(p.H), unsigned(q.dim(0)));
      auto kernel = flash_fwd_kernel<D, fwd_min_blocks<D>()>;
      allow_smem(kernel, fwd_smem<D>());
      kernel<<<grid, kThreads, fwd_smem<D>(), stream()>>>(p);
    }
  });
  check_launch("flash attention forward");
}

namespace {

template <int D>
void launch_dq_wg(const FlashParams& p, int64_t B) {
  const KvMaps maps = kv_maps(p, B, D, kWgDqKeys);
  auto kernel = wg_dq_kernel<D, 1>;
  allow_smem(kernel, wg_dq_smem<D>());
  kernel<<<dim3(unsigned((p.L + kWgDqRows - 1) / kWgDqRows), unsigned(p.H), unsigned(B)), kThreads,
           wg_dq_smem<D>(), stream()>>>(p, maps);
}

template <int D>
void launch_dkv_wg(const FlashParams& p, int64_t B) {
  QdoMaps maps;
  maps.q = head_rows_map(p.q, B, p.L, p.H, D, kWgDkvRows);
  maps.dout = head_rows_map(p.dout, B, p.L, p.H, D, kWgDkvRows);
  auto kernel = wg_dkv_kernel<D, D == 64>;  // Ahead at D = 64 only (see the kernel)
  allow_smem(kernel, wg_dkv_smem<D>());
  kernel<<<dim3(unsigned((p.L + kWgDkvKeys - 1) / kWgDkvKeys), unsigned(p.Hkv), unsigned(B)), 128, wg_dkv_smem<D>(),
           stream()>>>(p, maps);
}

template <int D>
void launch_bwd_mma(const FlashParams& p, int64_t B) {
  auto kernel = flash_bwd_kernel<D, bwd_min_blocks<D>(), kBwdStages>;
  allow_smem(kernel, bwd_smem<D, kBwdStages>());
  kernel<<<dim3(unsigned((p.L + kBwdKeys - 1) / kBwdKeys), unsigned(p.Hkv), unsigned(B)), kThreads,
           bwd_smem<D, kBwdStages>(), stream()>>>(p);
}

}  // namespace

void flash_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                    const Tensor& dout, int64_t window, double scale, Tensor& dq, Tensor& dk, Tensor& dv,
                    const Tensor* mask, const ColBlock* dv_out) {
  FlashParams p = make_params(q, k, v, window, scale, mask);
  const int64_t B = q.dim(0), D = q.dim(3);
  Tensor delta = Tensor::empty({B, p.H, p.L}, DType::F32, Device::CUDA);
  p.o = o.data<bf16>();
  p.dout = dout.data<bf16>();
  p.lse_in = lse.data<float>();
  p.delta = delta.data<float>();
  Tensor lse2 = Tensor::empty({B, p.H, p.L}, DType::F32, Device::CUDA);
  p.lse2 = lse2.data<float>();
  p.out = dq.data<bf16>();
  p.dk = dk.data<bf16>();
  if (dv_out) {
    Tensor block = dv_out->t;  // a handle on the packed gradient's storage
    p.dv = block.data<bf16>() + dv_out->col;
    p.dv_ld = dv_out->ld();
  } else {
    p.dv = dv.data<bf16>();
    p.dv_ld = int64_t(p.Hkv) * D;
  }
  Tensor mask_t;
  if (mask) {
    mask_t = Tensor::empty(mask->shape(), DType::I32, Device::CUDA);
    const int64_t blocks = B * int64_t(p.mask_words) * p.mask_words;
    transpose_mask_kernel<<<unsigned((blocks * 32 + kThreads - 1) / kThreads), kThreads, 0, stream()>>>(
        p.mask, reinterpret_cast<uint32_t*>(mask_t.data<int32_t>()), p.L, p.mask_words, blocks);
    check_launch("flash attention mask transpose");
    p.mask_t = reinterpret_cast<const uint32_t*>(mask_t.data<int32_t>());
  }
  // Hopper runs the wgmma dQ and dK/dV kernels for both head sizes. With their tiles by TMA
  // they beat the fused mma.sync kernel at D = 64 too (B8 L2048 H12, bwd 1.06 -> 0.58 ms;
  // before TMA the wgmma pair had been slower, 1.17-1.23 ms).
  const bool wg = flash_use_wgmma();
  with_head_dim(D, [&](auto d) {
    constexpr int Dc = decltype(d)::value;
    const int64_t rows = B * p.L * p.H, threads = rows * (Dc / 8);
    flash_delta_kernel<Dc><<<unsigned((threads + kThreads - 1) / kThreads), kThreads, 0, stream()>>>(p, rows);
    check_launch("flash attention backward delta");
    if (wg) {
      launch_dq_wg<Dc>(p, B);
      check_launch("flash attention backward dq");
      launch_dkv_wg<Dc>(p, B);
      check_launch("flash attention backward dk dv");
      return;
    }
    // The fused kernel's dQ accumulator (fp32, fragment order) and its per-warp counters, which
    // must start at zero.
    const int64_t n_qtiles = (p.L + kBwdRows - 1) / kBwdRows;
    Tensor dq_acc = Tensor::empty({B * p.H * n_qtiles * kBwdRows * Dc}, DType::F32, Device::CUDA);
    Tensor dq_cnt = Tensor::zeros({B * p.H * n_qtiles * (kThreads / 32)}, DType::I32, Device::CUDA);
    p.dq_acc = dq_acc.data<float>();
    p.dq_cnt = reinterpret_cast<unsigned*>(dq_cnt.data<int32_t>());
    launch_bwd_mma<Dc>(p, B);
    check_launch("flash attention backward");
  });
}

void flash_head_mean_probs(const Tensor& q, const Tensor& k, const Tensor& lse, double scale, Tensor& probs) {
  FlashParams p = make_params(q, k, k, 0, scale, nullptr);
  p.lse_in = lse.data<float>();
  const int64_t B = q.dim(0);
  with_head_dim(q.dim(3), [&](auto d) {
    constexpr int D = decltype(d)::value;
    auto kernel = head_mean_probs_kernel<D>;
    allow_smem(kernel, probs_smem<D>());
    const dim3 grid(unsigned((p.L + kProbKeys - 1) / kProbKeys), unsigned((p.L + kProbRows - 1) / kProbRows),
                    unsigned(B));
    kernel<<<grid, kThreads, probs_smem<D>(), stream()>>>(p, probs.data<float>());
  });
  check_launch("flash head-mean probabilities");
}

}  // namespace lt2::cuda
