// Gated DeltaNet core (SPEC §3) on the tensor cores: the chunked WY / UT form of
// cpu/gdn.cpp (gdn_chunk_forward / gdn_chunk_backward), C = 64, re-arranged for the GPU.
//
// Per chunk of C tokens (rows r, zero-padded to C; padded rows get g = 0 and β = 0, which
// makes them exact no-ops, so "the last row" is always row C−1) with entering state S:
//   γ_r = Σ_{s<=r} g_s,  e_r = e^{γ_r},  Γ[r,s] = e^{γ_r−γ_s} (s <= r),  Γl_r = Γ[C−1, r]
//   L[r,s] = β_r (k_r·k_s) Γ[r,s] (r > s),   A = (I + L)^{-1},   Au = A diag(β)
//   X = V − diag(e) K S                      (the values minus what the decayed state predicts)
//   Δ = Au X                                 (= U − W S of the CPU code, one product fewer)
//   O = diag(e) Q S + M Δ,   M = tril(Q Kᵀ) ⊙ Γ (diagonal included)
//   S' = e_{C−1} S + Kᵀ diag(Γl) Δ
// Backward (dS' = ∂loss/∂S', dO given): the CPU code's steps (a)–(g) in the same variables,
//   dΔ = diag(Γl) K dS' + Mᵀ dO,   dX = Auᵀ dΔ (= dv),   dS = e_{C−1} dS' + Qᵀ diag(e) dO − Kᵀ diag(e) dX
//   dQ = diag(e) dO Sᵀ + (dM ⊙ Γ) K,           dM = dO Δᵀ
//   dK = diag(Γl) Δ dS'ᵀ − diag(e) dX Sᵀ + (dM ⊙ Γ)ᵀ Q + (dKK + dKKᵀ) K
//   dAu = dΔ Xᵀ:  dβ_s += Σ_r dAu[r,s] A[r,s];  dL = −Aᵀ (dAu diag(β)) Aᵀ  →  dβ, dγ, dKK (step f)
//   dγ collects the gate terms of every product above; dg = reverse cumulative sum of dγ.
// Note that dS needs neither S nor Δ: the reverse scan over chunks is independent of the
// forward one.
//
// Global loads go by cp.async, a whole tile in flight at once, and the scan prefetches the next
// chunk's inputs while it computes the current one, so no phase waits on a round trip to memory.
// (Measured on an H100, that gained only ~5 %: the scan's time goes elsewhere, most likely to
// the per-element shared-memory fragment loads and the 8 warps per SM it runs with.)
//
// Kernels (each thread block 8 warps):
//   prep  (chunk, hv, b), parallel: γ, K Kᵀ, L and A = (I + L)^{-1} by column-parallel forward
//         substitution in fp32; writes A and γ per chunk (the only chunk-level scratch).
//   scan  (value tile of VT columns, hv, b): walks the chunks in order keeping the K×VT fp32
//         state in shared memory; per chunk X, Δ, O and the state update. In the backward op the
//         same launch also holds the reverse scan blocks (dS, dv, dh0): the two are independent,
//         so they share the machine. The forward blocks then store each chunk's entering state S
//         and the reverse blocks each chunk's dS' (fp32 checkpoints).
//   grad  (chunk, hv, b), parallel: everything that sums over the value columns (dq, dk, dβ, dg)
//         from S and dS' of its chunk, walking the value columns in blocks of VB.
// With grouped value heads, dq / dk of each value head go to fp32 scratch and a last kernel adds
// the group in a fixed order. No atomics anywhere: every reduction has a fixed order, so results
// are bitwise reproducible.
//
// Precision. Matrix products use mma.sync m16n8k8 with TF32 operands and fp32 accumulation;
// states, gate sums, A and every intermediate are kept in fp32 (bf16 inputs are exact in TF32,
// so only intermediates are rounded, to 11 significant bits). F32 inputs use three TF32 products
// per step (a = a_big + a_small; a·b ≈ a_s b_b + a_b b_s + a_b b_b), which gives fp32 accuracy.
// Operands are read from shared memory through small accessor lambdas, so transposes, row
// scalings (e, Γl, β) and the X = V − eKS difference are applied on the fly without extra copies.
#include "cuda/gdn_chunked.h"

#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "cuda/common.cuh"

namespace lt2::cuda {

namespace {

constexpr int kC = 64;  // chunk length (rows of every per-chunk matrix)
constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
constexpr size_t kSmemLimit = 232448;  // 227 KiB: the opt-in shared memory of one block on sm_90
constexpr unsigned kFull = 0xffffffffu;

// ---- tensor-core primitive --------------------------------------------------------------------

__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}

// big = x rounded to TF32; with SPLIT, small = the rest rounded to TF32 (x ≈ big + small to ~22 bits).
template <bool SPLIT>
__device__ __forceinline__ void split_tf32(float x, uint32_t& big, uint32_t& small) {
  big = to_tf32(x);
  small = SPLIT ? to_tf32(x - __uint_as_float(big)) : 0u;
}

// d += a b for one 16×8×8 step. Fragment layout (PTX m16n8k8 .tf32), g = lane / 4, t = lane % 4:
//   a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4);  b0 (t, g), b1 (t+4, g);
//   d0 (g, 2t), d1 (g, 2t+1), d2 (g+8, 2t), d3 (g+8, 2t+1).
__device__ __forceinline__ void mma_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <bool SPLIT>
__device__ __forceinline__ void mma_step(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&as)[4],
                                         const uint32_t (&b)[2], const uint32_t (&bs)[2]) {
  if constexpr (SPLIT) {  // small terms first, so they are not lost against the big one
    mma_tf32(d, as, b);
    mma_tf32(d, a, bs);
  }
  mma_tf32(d, a, b);
}

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int lane_g() { return (threadIdx.x & 31) >> 2; }
__device__ __forceinline__ int lane_t() { return threadIdx.x & 3; }

template <bool SPLIT, class FA>
__device__ __forceinline__ void load_a(const FA& A, int m0, int k, uint32_t (&a)[4], uint32_t (&as)[4]) {
  const int g = lane_g(), t = lane_t();
  split_tf32<SPLIT>(A(m0 + g, k + t), a[0], as[0]);
  split_tf32<SPLIT>(A(m0 + g + 8, k + t), a[1], as[1]);
  split_tf32<SPLIT>(A(m0 + g, k + t + 4), a[2], as[2]);
  split_tf32<SPLIT>(A(m0 + g + 8, k + t + 4), a[3], as[3]);
}
template <bool SPLIT, class FB>
__device__ __forceinline__ void load_b(const FB& B, int k, int n, uint32_t (&b)[2], uint32_t (&bs)[2]) {
  const int g = lane_g(), t = lane_t();
  split_tf32<SPLIT>(B(k + t, n + g), b[0], bs[0]);
  split_tf32<SPLIT>(B(k + t + 4, n + g), b[1], bs[1]);
}

// One warp: acc[j] (the 16×8 tile at rows m0.., columns n0 + 8j..) += Σ_{k0<=k<k1} A(row, k) B(k, col).
// A(i, k) and B(k, j) are accessors (lambdas reading shared memory); k0, k1 multiples of 8.
template <bool SPLIT, int NS, class FA, class FB>
__device__ __forceinline__ void warp_mma(float (&acc)[NS][4], const FA& A, const FB& B, int m0, int n0, int k0,
                                         int k1) {
#pragma unroll 2
  for (int k = k0; k < k1; k += 8) {
    uint32_t a[4], as[4];
    load_a<SPLIT>(A, m0, k, a, as);
#pragma unroll
    for (int j = 0; j < NS; ++j) {
      uint32_t b[2], bs[2];
      load_b<SPLIT>(B, k, n0 + 8 * j, b, bs);
      mma_step<SPLIT>(acc[j], a, as, b, bs);
    }
  }
}
// Two products sharing B (its fragments are read once): acc1 += A1 B, acc2 += A2 B.
template <bool SPLIT, int NS, class FA1, class FA2, class FB>
__device__ __forceinline__ void warp_mma_2a(float (&acc1)[NS][4], float (&acc2)[NS][4], const FA1& A1, const FA2& A2,
                                            const FB& B, int m0, int n0, int k0, int k1) {
#pragma unroll 2
  for (int k = k0; k < k1; k += 8) {
    uint32_t a1[4], as1[4], a2[4], as2[4];
    load_a<SPLIT>(A1, m0, k, a1, as1);
    load_a<SPLIT>(A2, m0, k, a2, as2);
#pragma unroll
    for (int j = 0; j < NS; ++j) {
      uint32_t b[2], bs[2];
      load_b<SPLIT>(B, k, n0 + 8 * j, b, bs);
      mma_step<SPLIT>(acc1[j], a1, as1, b, bs);
      mma_step<SPLIT>(acc2[j], a2, as2, b, bs);
    }
  }
}
// Two products sharing A: acc1 += A B1, acc2 += A B2.
template <bool SPLIT, int NS, class FA, class FB1, class FB2>
__device__ __forceinline__ void warp_mma_2b(float (&acc1)[NS][4], float (&acc2)[NS][4], const FA& A, const FB1& B1,
                                            const FB2& B2, int m0, int n0, int k0, int k1) {
#pragma unroll 2
  for (int k = k0; k < k1; k += 8) {
    uint32_t a[4], as[4];
    load_a<SPLIT>(A, m0, k, a, as);
#pragma unroll
    for (int j = 0; j < NS; ++j) {
      uint32_t b[2], bs[2];
      load_b<SPLIT>(B1, k, n0 + 8 * j, b, bs);
      mma_step<SPLIT>(acc1[j], a, as, b, bs);
      load_b<SPLIT>(B2, k, n0 + 8 * j, b, bs);
      mma_step<SPLIT>(acc2[j], a, as, b, bs);
    }
  }
}

// Calls f(row, col, element&) for every accumulator element this lane holds.
template <int NS, class F>
__device__ __forceinline__ void for_acc(float (&acc)[NS][4], int m0, int n0, const F& f) {
  const int g = lane_g(), t = lane_t();
#pragma unroll
  for (int j = 0; j < NS; ++j)
#pragma unroll
    for (int q = 0; q < 4; ++q) f(m0 + g + 8 * (q >> 1), n0 + 8 * j + 2 * t + (q & 1), acc[j][q]);
}

// out[row] = Σ over the warp's columns of acc(row, col) · other(row, col), for its 16 rows.
// The 4 lanes sharing a row add by xor-shuffles (the same bits in each), lane t == 0 writes.
template <int NS, class F>
__device__ __forceinline__ void row_dot(const float (&acc)[NS][4], int m0, int n0, const F& other, float* out) {
  const int g = lane_g(), t = lane_t();
  float s0 = 0.f, s1 = 0.f;
#pragma unroll
  for (int j = 0; j < NS; ++j)
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const float x = acc[j][q] * other(m0 + g + 8 * (q >> 1), n0 + 8 * j + 2 * t + (q & 1));
      if (q < 2) s0 += x;
      else s1 += x;
    }
  s0 += __shfl_xor_sync(kFull, s0, 1);
  s0 += __shfl_xor_sync(kFull, s0, 2);
  s1 += __shfl_xor_sync(kFull, s1, 1);
  s1 += __shfl_xor_sync(kFull, s1, 2);
  if (t == 0) {
    out[m0 + g] = s0;
    out[m0 + g + 8] = s1;
  }
}

// ---- tiles between global and shared memory ----------------------------------------------------

// cp.async: 16 bytes global -> shared without holding registers; src_bytes 0 writes zeros.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// dst[r][c] (row stride LD) = src[r * stride + c] for r < nr, c < nc, zero elsewhere in R × W.
// Rows that allow it go by cp.async, all in flight at once (the caller commits and waits, then
// synchronises the block); other shapes fall back to plain loads, complete on return.
template <int R, int W, int LD, class T>
__device__ __forceinline__ void load_tile_async(T* dst, const T* src, int64_t stride, int nr, int nc) {
  constexpr int VEC = 16 / int(sizeof(T));
  static_assert(W % VEC == 0 && LD % VEC == 0, "tile rows must hold whole 16-byte vectors");
  const bool vec = nc % VEC == 0 && stride % VEC == 0 && (reinterpret_cast<uintptr_t>(src) & 15) == 0;
  if (vec) {
    for (int idx = threadIdx.x; idx < R * (W / VEC); idx += kThreads) {
      const int r = idx / (W / VEC), c = (idx % (W / VEC)) * VEC;
      const bool ok = r < nr && c < nc;
      cp_async16(dst + r * LD + c, ok ? src + r * stride + c : src, ok);  // src itself is always a valid address
    }
  } else {
    for (int idx = threadIdx.x; idx < R * W; idx += kThreads) {
      const int r = idx / W, c = idx % W;
      dst[r * LD + c] = (r < nr && c < nc) ? src[r * stride + c] : st<T>(0.f);
    }
  }
}

// dst (R × W, contiguous) = src (row stride LD), fp32.
template <int R, int W, int LD>
__device__ __forceinline__ void store_tile_f32(float* dst, const float* src) {
  for (int idx = threadIdx.x; idx < R * (W / 4); idx += kThreads) {
    const int r = idx / (W / 4), c = (idx % (W / 4)) * 4;
    *reinterpret_cast<float4*>(dst + r * W + c) = *reinterpret_cast<const float4*>(src + r * LD + c);
  }
}

// ---- shapes and shared-memory layouts -------------------------------------------------------------

struct GdnDims {
  int64_t B, L, H, HV, K, V, G, NC;  // G = HV / H value heads per key head; NC chunks
};

// Row padding of q / k tiles: rows start 16-byte aligned and successive rows land on other banks.
template <class T> constexpr int row_pad() { return sizeof(T) == 2 ? 8 : 4; }
constexpr size_t up16(size_t x) { return (x + 15) / 16 * 16; }
constexpr int kLDA = 68;  // row stride of the 64×64 fp32 matrices

template <class T, int KP>
struct PrepLayout {
  static constexpr int LDK = KP + row_pad<T>(), LDL = 68, LDA = 72;  // A is read by columns: stride 8 mod 32
  static constexpr size_t K = 0;
  static constexpr size_t L = up16(K + sizeof(T) * kC * LDK);
  static constexpr size_t A = L + 4 * kC * LDL;
  static constexpr size_t BET = A + 4 * kC * LDA;
  static constexpr size_t GAM = BET + 4 * kC;
  static constexpr size_t bytes = GAM + 4 * kC;
};

// Scan blocks: the K×VT state (S or dS), NBUF copies of the chunk inputs (q, k and a VT-column
// tile of v or dout: with two, the next chunk's arrive while this one computes), A, M, one
// 64×VT buffer (X then Δ, or dΔ then dX) and the per-row gate vectors.
template <class T, int KP, int VT>
struct ScanLayout {
  static constexpr int LDK = KP + row_pad<T>(), LDS = VT + 8, LDV = VT + 8;
  static constexpr size_t S = 0;
  static constexpr size_t BUF = S + 4 * size_t(KP) * LDS;
  static constexpr size_t BK = up16(sizeof(T) * kC * LDK);  // offsets inside one input buffer (q at 0)
  static constexpr size_t BV = BK + up16(sizeof(T) * kC * LDK);
  static constexpr size_t BUF_BYTES = BV + up16(sizeof(T) * kC * LDV);
  static constexpr size_t bytes_with(int nbuf) { return BUF + nbuf * BUF_BYTES + 8 * kC * kLDA + 4 * kC * LDS + 16 * kC; }
  static constexpr int NBUF = bytes_with(2) + 1024 <= kSmemLimit ? 2 : 1;
  static constexpr size_t A = BUF + NBUF * BUF_BYTES;
  static constexpr size_t M = A + 4 * kC * kLDA;
  static constexpr size_t XD = M + 4 * kC * kLDA;
  static constexpr size_t VEC = XD + 4 * kC * LDS;  // β, γ, e, Γl
  static constexpr size_t bytes = VEC + 4 * 4 * kC;
  static_assert(bytes == bytes_with(NBUF), "layout and size disagree");
};

// Grad blocks: q, k, A, M and the dM / dAu accumulators for the whole chunk; per value block the
// S / dS' blocks (KP×VB), e·KS, dΔ, Δ, dX (64×VB fp32) and v / dout (64×VB); the tail reuses the
// value-block region for Aᵀ dA, K Kᵀ and dKK + dKKᵀ.
template <class T, int KP, int VB>
struct GradLayout {
  static constexpr int LDK = KP + row_pad<T>(), LDB = VB + 8, LDV = VB + 8;
  static constexpr size_t Q = 0;
  static constexpr size_t Kk = up16(Q + sizeof(T) * kC * LDK);
  static constexpr size_t A = up16(Kk + sizeof(T) * kC * LDK);
  static constexpr size_t M = A + 4 * kC * kLDA;
  static constexpr size_t DM = M + 4 * kC * kLDA;
  static constexpr size_t DAU = DM + 4 * kC * kLDA;
  static constexpr size_t R = DAU + 4 * kC * kLDA;  // union of the two layouts below
  static constexpr size_t SB = R;
  static constexpr size_t DSB = SB + 4 * size_t(KP) * LDB;
  static constexpr size_t EKS = DSB + 4 * size_t(KP) * LDB;
  static constexpr size_t GD = EKS + 4 * kC * LDB;
  static constexpr size_t DL = GD + 4 * kC * LDB;
  static constexpr size_t DX = DL + 4 * kC * LDB;
  static constexpr size_t R_VALUES = DX + 4 * kC * LDB;
  static constexpr size_t TM = R;
  static constexpr size_t KK = TM + 4 * kC * kLDA;
  static constexpr size_t DS = KK + 4 * kC * kLDA;
  static constexpr size_t R_TAIL = DS + 4 * kC * kLDA;
  static constexpr size_t VB_ = R_VALUES > R_TAIL ? R_VALUES : R_TAIL;  // v block
  static constexpr size_t DOB = up16(VB_ + sizeof(T) * kC * LDV);
  static constexpr size_t VEC = up16(DOB + sizeof(T) * kC * LDV);  // 9 vectors of 64
  static constexpr size_t PART = VEC + 4 * 9 * kC;                  // 3 × 2 × 64 row partials
  static constexpr size_t bytes = PART + 4 * 6 * kC;
};

template <class T, int KP> constexpr int grad_vb() { return GradLayout<T, KP, 32>::bytes <= kSmemLimit ? 32 : 16; }
// Whether every kernel of this (dtype, padded K) fits in shared memory (the smallest tiles).
template <class T, int KP> constexpr bool config_fits() {
  return GradLayout<T, KP, 16>::bytes + 256 <= kSmemLimit && ScanLayout<T, KP, 64>::bytes <= kSmemLimit &&
         PrepLayout<T, KP>::bytes <= kSmemLimit;
}

// ---- prep: γ and A = (I + L)^{-1} per chunk ------------------------------------------------------

template <class T, int KP>
__global__ void __launch_bounds__(kThreads) gdn_prep_kernel(const T* __restrict__ k, const float* __restrict__ beta,
                                                            const float* __restrict__ g, GdnDims d,
                                                            float* __restrict__ A_out, float* __restrict__ gam_out) {
  using Lay = PrepLayout<T, KP>;
  constexpr bool SPLIT = std::is_same<T, float>::value;
  extern __shared__ __align__(16) unsigned char smem[];
  T* ks = reinterpret_cast<T*>(smem + Lay::K);
  float* Lm = reinterpret_cast<float*>(smem + Lay::L);
  float* Am = reinterpret_cast<float*>(smem + Lay::A);
  float* bet = reinterpret_cast<float*>(smem + Lay::BET);
  float* gam = reinterpret_cast<float*>(smem + Lay::GAM);
  const int c = blockIdx.x, tid = threadIdx.x, warp = tid >> 5;
  const int64_t hv = blockIdx.y, b = blockIdx.z, h = hv / d.G, bhv = b * d.HV + hv;
  const int64_t t0 = int64_t(c) * kC;
  const int n = int(min64(kC, d.L - t0));

  load_tile_async<kC, KP, Lay::LDK>(ks, k + ((b * d.L + t0) * d.H + h) * d.K, d.H * d.K, n, int(d.K));
  cp_async_commit();
  if (tid < kC) {
    const int64_t off = (b * d.L + t0 + tid) * d.HV + hv;
    bet[tid] = tid < n ? beta[off] : 0.f;
    gam[tid] = tid < n ? g[off] : 0.f;
  }
  cp_async_wait<0>();
  __syncthreads();
  if (tid == 0) {  // inclusive prefix sum, one fixed order for every kernel (they all read it back)
    float acc = 0.f;
    for (int r = 0; r < kC; ++r) {
      acc += gam[r];
      gam[r] = acc;
    }
  }
  __syncthreads();
  {  // L[r,s] = β_r (k_r·k_s) Γ[r,s] for s < r, else 0
    const int m0 = 16 * (warp & 3), n0 = 32 * (warp >> 2);
    float acc[4][4] = {};
    auto Ka = [&](int r, int i) { return ld(ks[r * Lay::LDK + i]); };
    auto Kt = [&](int i, int s) { return ld(ks[s * Lay::LDK + i]); };
    warp_mma<SPLIT>(acc, Ka, Kt, m0, n0, 0, KP);
    for_acc(acc, m0, n0, [&](int r, int s, float& x) {
      Lm[r * Lay::LDL + s] = s < r ? bet[r] * x * expf(gam[r] - gam[s]) : 0.f;
    });
  }
  __syncthreads();
  {
    // Column s of A solves (I + L) a = e_s: a[r] = δ_rs − Σ_{j<r} L[r,j] a[j], row by row.
    // Four lanes per column split the sum over j (j ≡ p mod 4) and add by shuffles; lane
    // p = r % 4 stores a[r], and only lane j % 4 ever reads a[j] back: no barrier needed.
    // The sum runs in four independent partial sums so that its loads are in flight together
    // (the 64 rows are a dependent chain; this loop is the kernel's critical path).
    const int s = tid >> 2, p = tid & 3;
    for (int r = 0; r < kC; ++r) {
      const float* Lr = Lm + r * Lay::LDL;
      float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
      int j = p;
      for (; j + 12 < r; j += 16) {
        a0 += Lr[j] * Am[j * Lay::LDA + s];
        a1 += Lr[j + 4] * Am[(j + 4) * Lay::LDA + s];
        a2 += Lr[j + 8] * Am[(j + 8) * Lay::LDA + s];
        a3 += Lr[j + 12] * Am[(j + 12) * Lay::LDA + s];
      }
      for (; j < r; j += 4) a0 += Lr[j] * Am[j * Lay::LDA + s];
      float acc = (a0 + a1) + (a2 + a3);
      acc += __shfl_xor_sync(kFull, acc, 1);
      acc += __shfl_xor_sync(kFull, acc, 2);
      if (p == (r & 3)) Am[r * Lay::LDA + s] = (r == s ? 1.f : 0.f) - acc;
    }
  }
  __syncthreads();
  float* Ao = A_out + (bhv * d.NC + c) * (kC * kC);
  for (int idx = tid; idx < kC * kC; idx += kThreads) Ao[idx] = Am[(idx / kC) * Lay::LDA + idx % kC];
  if (tid < kC) gam_out[(bhv * d.NC + c) * kC + tid] = gam[tid];
}

// ---- scan: the sequential walk over chunks -------------------------------------------------------

struct ScanArgs {
  const void* q;
  const void* k;
  const void* v;
  const void* dout;
  const float* beta;
  const float* A;
  const float* gam;
  const float* h0;   // null: zero
  const float* dhT;  // null: zero
  void* o;           // forward role outputs, each may be null
  float* hT;
  float* ckS;
  void* dv;  // reverse role outputs
  float* dh0;
  float* ckD;
  GdnDims d;
  int tiles;       // value tiles of VT columns
  int first_role;  // role = first_role + blockIdx.x / tiles: 0 forward, 1 reverse
};

// Chunk inputs are fetched ahead of use. q, k and the value tile (v or dout) of the next chunk
// are issued at the top of a chunk into the other input buffer (NBUF = 2; with one buffer, the
// current chunk's are issued there instead); A of the next chunk as soon as the current one's A
// is last read; the gates into registers a chunk ahead. Everything of chunk c has landed after
// the cp.async wait at the top of chunk c.
template <class T, int KP, int VT>
__device__ __forceinline__ void scan_issue_inputs(const ScanArgs& a, int c, int buf, int64_t b, int64_t hv,
                                                  int64_t col0, int ncol, bool want_q, const T* src,
                                                  unsigned char* smem) {
  using Lay = ScanLayout<T, KP, VT>;
  const GdnDims& d = a.d;
  const int64_t h = hv / d.G, t0 = int64_t(c) * kC;
  const int n = int(min64(kC, d.L - t0));
  unsigned char* base = smem + Lay::BUF + buf * Lay::BUF_BYTES;
  const int64_t qk_off = ((b * d.L + t0) * d.H + h) * d.K;
  if (want_q)
    load_tile_async<kC, KP, Lay::LDK>(reinterpret_cast<T*>(base), static_cast<const T*>(a.q) + qk_off,
                                      d.H * d.K, n, int(d.K));
  load_tile_async<kC, KP, Lay::LDK>(reinterpret_cast<T*>(base + Lay::BK), static_cast<const T*>(a.k) + qk_off,
                                    d.H * d.K, n, int(d.K));
  load_tile_async<kC, VT, Lay::LDV>(reinterpret_cast<T*>(base + Lay::BV),
                                    src + ((b * d.L + t0) * d.HV + hv) * d.V + col0, d.HV * d.V, n, ncol);
}
template <class T, int KP, int VT>
__device__ __forceinline__ void scan_issue_A(const ScanArgs& a, int c, int64_t bhv, unsigned char* smem) {
  using Lay = ScanLayout<T, KP, VT>;
  load_tile_async<kC, kC, kLDA>(reinterpret_cast<float*>(smem + Lay::A), a.A + (bhv * a.d.NC + c) * (kC * kC), kC,
                                kC, kC);
}

struct Gates {
  float beta = 0.f, gam = 0.f, glast = 0.f;  // row threadIdx.x (< 64) of a chunk
};
__device__ __forceinline__ Gates fetch_gates(const ScanArgs& a, int c, int64_t b, int64_t hv) {
  Gates gt;
  const int r = threadIdx.x;
  if (r < kC) {
    const GdnDims& d = a.d;
    const int64_t t0 = int64_t(c) * kC;
    const float* gc = a.gam + ((b * d.HV + hv) * d.NC + c) * kC;
    gt.gam = gc[r];
    gt.glast = gc[kC - 1];
    gt.beta = t0 + r < d.L ? a.beta[(b * d.L + t0 + r) * d.HV + hv] : 0.f;
  }
  return gt;
}
// vec = [β | γ | e | Γl], 64 each.
__device__ __forceinline__ void put_gates(float* vec, const Gates& gt) {
  const int r = threadIdx.x;
  if (r < kC) {
    vec[r] = gt.beta;
    vec[kC + r] = gt.gam;
    vec[2 * kC + r] = expf(gt.gam);
    vec[3 * kC + r] = expf(gt.glast - gt.gam);
  }
}

// Forward walk for value columns [col0, col0 + VT): S ← h0; per chunk X, Δ, O, S ← S'.
template <class T, int KP, int VT>
__device__ __forceinline__ void scan_forward(const ScanArgs& a, int tile, unsigned char* smem) {
  using Lay = ScanLayout<T, KP, VT>;
  constexpr bool SPLIT = std::is_same<T, float>::value;
  constexpr int NS = VT / 16, LDK = Lay::LDK, LDS = Lay::LDS, LDV = Lay::LDV, NB = Lay::NBUF;
  float* S = reinterpret_cast<float*>(smem + Lay::S);
  const float* Am = reinterpret_cast<const float*>(smem + Lay::A);
  float* Mm = reinterpret_cast<float*>(smem + Lay::M);
  float* XD = reinterpret_cast<float*>(smem + Lay::XD);
  float* vec = reinterpret_cast<float*>(smem + Lay::VEC);
  const float* bet = vec;
  const float* gam = vec + kC;
  const float* e = vec + 2 * kC;
  const float* gl = vec + 3 * kC;
  const GdnDims& d = a.d;
  const int64_t hv = blockIdx.y, b = blockIdx.z, bhv = b * d.HV + hv;
  const int tid = threadIdx.x, warp = tid >> 5, NC = int(d.NC);
  const int64_t col0 = int64_t(tile) * VT;
  const int ncol = int(min64(VT, d.V - col0));
  const T* vsrc = static_cast<const T*>(a.v);
  T* o = static_cast<T*>(a.o);
  const bool want_o = o != nullptr;

  scan_issue_inputs<T, KP, VT>(a, 0, 0, b, hv, col0, ncol, want_o, vsrc, smem);
  scan_issue_A<T, KP, VT>(a, 0, bhv, smem);
  cp_async_commit();
  Gates gt = fetch_gates(a, 0, b, hv);
  for (int idx = tid; idx < KP * VT; idx += kThreads) {
    const int i = idx / VT, c = idx % VT;
    S[i * LDS + c] = (a.h0 && i < d.K && c < ncol) ? a.h0[(bhv * d.K + i) * d.V + col0 + c] : 0.f;
  }
  // This warp's 16 × VT/2 tile of the 64 × VT products, and 16 × 32 tile of the 64 × 64 ones.
  const int m0 = 16 * (warp & 3), n0 = (warp >> 2) * (VT / 2), nM = 32 * (warp >> 2);
  const bool m_tile = (warp >> 2) == 0 || (warp & 3) >= 2;  // tiles strictly above the diagonal are never read

  const T* qs = nullptr;  // this chunk's input buffer (the accessors read these pointers)
  const T* ks = nullptr;
  const T* vs = nullptr;
  auto Sb = [&](int i, int c) { return S[i * LDS + c]; };
  auto Ka = [&](int r, int i) { return ld(ks[r * LDK + i]); };
  auto Qa = [&](int r, int i) { return ld(qs[r * LDK + i]); };
  auto Kt = [&](int i, int s) { return ld(ks[s * LDK + i]); };
  auto XDb = [&](int s, int c) { return XD[s * LDS + c]; };
  auto Aua = [&](int r, int s) { return Am[r * kLDA + s] * bet[s]; };
  auto Ma = [&](int r, int s) { return Mm[r * kLDA + s]; };
  auto KglT = [&](int i, int r) { return ld(ks[r * LDK + i]) * gl[r]; };

  for (int c = 0; c < NC; ++c) {
    const int64_t t0 = int64_t(c) * kC;
    const int n = int(min64(kC, d.L - t0));
    const int buf = NB == 2 ? (c & 1) : 0;
    const bool next = c + 1 < NC;
    const unsigned char* in = smem + Lay::BUF + buf * Lay::BUF_BYTES;
    qs = reinterpret_cast<const T*>(in);
    ks = reinterpret_cast<const T*>(in + Lay::BK);
    vs = reinterpret_cast<const T*>(in + Lay::BV);
    __syncthreads();  // the previous chunk is done with every buffer
    if (NB == 1 && c > 0) {
      scan_issue_inputs<T, KP, VT>(a, c, 0, b, hv, col0, ncol, want_o, vsrc, smem);
      cp_async_commit();
    }
    if (NB == 2 && next) {
      scan_issue_inputs<T, KP, VT>(a, c + 1, buf ^ 1, b, hv, col0, ncol, want_o, vsrc, smem);
      cp_async_commit();
    }
    put_gates(vec, gt);
    if (next) gt = fetch_gates(a, c + 1, b, hv);
    if (a.ckS) store_tile_f32<KP, VT, LDS>(a.ckS + ((bhv * d.NC + c) * a.tiles + tile) * (KP * VT), S);
    if (NB == 2 && next) cp_async_wait<1>();  // all but the next chunk's inputs
    else cp_async_wait<0>();
    __syncthreads();
    // X = V − diag(e) K S;  P = diag(e) Q S (kept in registers for O);  M = tril(Q Kᵀ) ⊙ Γ.
    float accO[NS][4] = {};
    {
      float accK[NS][4] = {};
      if (want_o) warp_mma_2a<SPLIT>(accK, accO, Ka, Qa, Sb, m0, n0, 0, KP);
      else warp_mma<SPLIT>(accK, Ka, Sb, m0, n0, 0, KP);
      for_acc(accK, m0, n0, [&](int r, int cc, float& x) { XD[r * LDS + cc] = ld(vs[r * LDV + cc]) - e[r] * x; });
    }
    if (want_o) {
      for_acc(accO, m0, n0, [&](int r, int, float& x) { x *= e[r]; });
      if (m_tile) {
        float accM[4][4] = {};
        warp_mma<SPLIT>(accM, Qa, Kt, m0, nM, 0, KP);
        for_acc(accM, m0, nM, [&](int r, int s, float& x) {
          Mm[r * kLDA + s] = s <= r ? x * expf(gam[r] - gam[s]) : 0.f;
        });
      }
    }
    __syncthreads();
    {  // Δ = Au X (Au is lower triangular: columns s < m0 + 16 only)
      float accD[NS][4] = {};
      warp_mma<SPLIT>(accD, Aua, XDb, m0, n0, 0, m0 + 16);
      __syncthreads();  // every warp has read X and A
      if (next) {
        scan_issue_A<T, KP, VT>(a, c + 1, bhv, smem);
        cp_async_commit();
      }
      for_acc(accD, m0, n0, [&](int r, int cc, float& x) { XD[r * LDS + cc] = x; });
    }
    __syncthreads();
    if (want_o) {  // O = P + M Δ
      warp_mma<SPLIT>(accO, Ma, XDb, m0, n0, 0, m0 + 16);
      for_acc(accO, m0, n0, [&](int r, int cc, float& x) {
        if (r < n && cc < ncol) o[((b * d.L + t0 + r) * d.HV + hv) * d.V + col0 + cc] = st<T>(x);
      });
    }
    // S ← e_{C−1} S + Kᵀ diag(Γl) Δ; each warp owns whole tiles of S (nobody else reads S now).
    const float el = e[kC - 1];
    for (int tt = warp; tt < (KP / 16) * 2; tt += kWarps) {
      const int mS = 16 * (tt >> 1), nS = (tt & 1) * (VT / 2);
      float acc[NS][4];
      for_acc(acc, mS, nS, [&](int i, int cc, float& x) { x = el * S[i * LDS + cc]; });
      warp_mma<SPLIT>(acc, KglT, XDb, mS, nS, 0, kC);
      for_acc(acc, mS, nS, [&](int i, int cc, float& x) { S[i * LDS + cc] = x; });
    }
  }
  if (a.hT) {
    __syncthreads();
    for (int idx = tid; idx < KP * VT; idx += kThreads) {
      const int i = idx / VT, c = idx % VT;
      if (i < d.K && c < ncol) a.hT[(bhv * d.K + i) * d.V + col0 + c] = S[i * LDS + c];
    }
  }
}

// Reverse walk for value columns [col0, col0 + VT): dS ← dhT; per chunk (last first) dΔ, dX = dv,
// dS ← e_{C−1} dS + Qᵀ diag(e) dO − Kᵀ diag(e) dX. Needs no forward state.
template <class T, int KP, int VT>
__device__ __forceinline__ void scan_reverse(const ScanArgs& a, int tile, unsigned char* smem) {
  using Lay = ScanLayout<T, KP, VT>;
  constexpr bool SPLIT = std::is_same<T, float>::value;
  constexpr int NS = VT / 16, LDK = Lay::LDK, LDS = Lay::LDS, LDV = Lay::LDV, NB = Lay::NBUF;
  float* dS = reinterpret_cast<float*>(smem + Lay::S);
  const float* Am = reinterpret_cast<const float*>(smem + Lay::A);
  float* Mm = reinterpret_cast<float*>(smem + Lay::M);
  float* XD = reinterpret_cast<float*>(smem + Lay::XD);
  float* vec = reinterpret_cast<float*>(smem + Lay::VEC);
  const float* bet = vec;
  const float* gam = vec + kC;
  const float* e = vec + 2 * kC;
  const float* gl = vec + 3 * kC;
  const GdnDims& d = a.d;
  const int64_t hv = blockIdx.y, b = blockIdx.z, bhv = b * d.HV + hv;
  const int tid = threadIdx.x, warp = tid >> 5, NC = int(d.NC);
  const int64_t col0 = int64_t(tile) * VT;
  const int ncol = int(min64(VT, d.V - col0));
  const T* dosrc = static_cast<const T*>(a.dout);
  T* dv = static_cast<T*>(a.dv);

  scan_issue_inputs<T, KP, VT>(a, NC - 1, 0, b, hv, col0, ncol, true, dosrc, smem);
  scan_issue_A<T, KP, VT>(a, NC - 1, bhv, smem);
  cp_async_commit();
  Gates gt = fetch_gates(a, NC - 1, b, hv);
  for (int idx = tid; idx < KP * VT; idx += kThreads) {
    const int i = idx / VT, c = idx % VT;
    dS[i * LDS + c] = (a.dhT && i < d.K && c < ncol) ? a.dhT[(bhv * d.K + i) * d.V + col0 + c] : 0.f;
  }
  const int m0 = 16 * (warp & 3), n0 = (warp >> 2) * (VT / 2), nM = 32 * (warp >> 2);
  // Mᵀ is read at rows >= m0 of M only, which never touches the tiles strictly above the diagonal.
  const bool m_tile = (warp >> 2) == 0 || (warp & 3) >= 2;

  const T* qs = nullptr;
  const T* ks = nullptr;
  const T* dos = nullptr;
  auto dSb = [&](int i, int c) { return dS[i * LDS + c]; };
  auto Ka = [&](int r, int i) { return ld(ks[r * LDK + i]); };
  auto Qa = [&](int r, int i) { return ld(qs[r * LDK + i]); };
  auto Kt = [&](int i, int s) { return ld(ks[s * LDK + i]); };
  auto MtA = [&](int r, int s) { return Mm[s * kLDA + r]; };
  auto dOb = [&](int s, int c) { return ld(dos[s * LDV + c]); };
  auto XDb = [&](int s, int c) { return XD[s * LDS + c]; };
  auto AutA = [&](int r, int s) { return Am[s * kLDA + r] * bet[r]; };
  auto QeT = [&](int i, int r) { return ld(qs[r * LDK + i]) * e[r]; };
  auto KeTn = [&](int i, int r) { return -ld(ks[r * LDK + i]) * e[r]; };

  for (int it = 0; it < NC; ++it) {
    const int c = NC - 1 - it;
    const int64_t t0 = int64_t(c) * kC;
    const int n = int(min64(kC, d.L - t0));
    const int buf = NB == 2 ? (it & 1) : 0;
    const bool next = it + 1 < NC;  // the next chunk is c − 1
    const unsigned char* in = smem + Lay::BUF + buf * Lay::BUF_BYTES;
    qs = reinterpret_cast<const T*>(in);
    ks = reinterpret_cast<const T*>(in + Lay::BK);
    dos = reinterpret_cast<const T*>(in + Lay::BV);
    __syncthreads();
    if (NB == 1 && it > 0) {
      scan_issue_inputs<T, KP, VT>(a, c, 0, b, hv, col0, ncol, true, dosrc, smem);
      cp_async_commit();
    }
    if (NB == 2 && next) {
      scan_issue_inputs<T, KP, VT>(a, c - 1, buf ^ 1, b, hv, col0, ncol, true, dosrc, smem);
      cp_async_commit();
    }
    put_gates(vec, gt);
    if (next) gt = fetch_gates(a, c - 1, b, hv);
    if (a.ckD) store_tile_f32<KP, VT, LDS>(a.ckD + ((bhv * d.NC + c) * a.tiles + tile) * (KP * VT), dS);
    if (NB == 2 && next) cp_async_wait<1>();
    else cp_async_wait<0>();
    __syncthreads();
    float accG[NS][4] = {};  // dΔ
    if (m_tile) {
      float accM[4][4] = {};
      warp_mma<SPLIT>(accM, Qa, Kt, m0, nM, 0, KP);
      for_acc(accM, m0, nM, [&](int r, int s, float& x) {
        Mm[r * kLDA + s] = s <= r ? x * expf(gam[r] - gam[s]) : 0.f;
      });
    }
    warp_mma<SPLIT>(accG, Ka, dSb, m0, n0, 0, KP);
    for_acc(accG, m0, n0, [&](int r, int, float& x) { x *= gl[r]; });
    __syncthreads();
    warp_mma<SPLIT>(accG, MtA, dOb, m0, n0, m0, kC);  // Mᵀ is upper triangular: rows s >= m0
    for_acc(accG, m0, n0, [&](int r, int cc, float& x) { XD[r * LDS + cc] = x; });
    __syncthreads();
    {
      float accX[NS][4] = {};  // dX = Auᵀ dΔ
      warp_mma<SPLIT>(accX, AutA, XDb, m0, n0, m0, kC);
      __syncthreads();  // every warp has read dΔ and A
      if (next) {
        scan_issue_A<T, KP, VT>(a, c - 1, bhv, smem);
        cp_async_commit();
      }
      for_acc(accX, m0, n0, [&](int r, int cc, float& x) {
        XD[r * LDS + cc] = x;
        if (r < n && cc < ncol) dv[((b * d.L + t0 + r) * d.HV + hv) * d.V + col0 + cc] = st<T>(x);
      });
    }
    __syncthreads();
    const float el = e[kC - 1];
    for (int tt = warp; tt < (KP / 16) * 2; tt += kWarps) {
      const int mS = 16 * (tt >> 1), nS = (tt & 1) * (VT / 2);
      float acc[NS][4];
      for_acc(acc, mS, nS, [&](int i, int cc, float& x) { x = el * dS[i * LDS + cc]; });
      warp_mma<SPLIT>(acc, QeT, dOb, mS, nS, 0, kC);
      warp_mma<SPLIT>(acc, KeTn, XDb, mS, nS, 0, kC);
      for_acc(acc, mS, nS, [&](int i, int cc, float& x) { dS[i * LDS + cc] = x; });
    }
  }
  if (a.dh0) {
    __syncthreads();
    for (int idx = tid; idx < KP * VT; idx += kThreads) {
      const int i = idx / VT, c = idx % VT;
      if (i < d.K && c < ncol) a.dh0[(bhv * d.K + i) * d.V + col0 + c] = dS[i * LDS + c];
    }
  }
}

template <class T, int KP, int VT>
__global__ void __launch_bounds__(kThreads, 1) gdn_scan_kernel(ScanArgs a) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int role = a.first_role + int(blockIdx.x) / a.tiles, tile = int(blockIdx.x) % a.tiles;
  if (role == 0) scan_forward<T, KP, VT>(a, tile, smem);
  else scan_reverse<T, KP, VT>(a, tile, smem);
}

// ---- grad: per chunk, everything that sums over the value columns --------------------------------

struct GradArgs {
  const void* q;
  const void* k;
  const void* v;
  const void* dout;
  const float* beta;
  const float* A;
  const float* gam;
  const float* ckS;  // S entering each chunk, [B·HV][NC][tiles][KP][vt]
  const float* ckD;  // dS' leaving each chunk, same layout
  void* dq;          // [B, L, H, K] in the activation dtype (G == 1)
  void* dk;
  float* dq_part;  // [B, HV, L, K] fp32 per value head (G > 1)
  float* dk_part;
  float* dbeta;
  float* dg;
  GdnDims d;
  int tiles, vt;
};

template <class T, int KP, int VB>
__global__ void __launch_bounds__(kThreads, 1) gdn_grad_kernel(GradArgs a) {
  using Lay = GradLayout<T, KP, VB>;
  constexpr bool SPLIT = std::is_same<T, float>::value;
  // dq / dk columns per block: K = 256 is split over two blocks (the accumulators live in
  // registers); both redo the chunk's 64×64 work and only the first writes dβ, dg.
  constexpr int KO = KP < 128 ? KP : 128, KSPLIT = KP / KO;
  constexpr int NS1 = VB / 16, NSO = KO / 16;
  constexpr int LDK = Lay::LDK, LDB = Lay::LDB, LDV = Lay::LDV;
  extern __shared__ __align__(16) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem + Lay::Q);
  T* ks = reinterpret_cast<T*>(smem + Lay::Kk);
  float* Am = reinterpret_cast<float*>(smem + Lay::A);
  float* Mm = reinterpret_cast<float*>(smem + Lay::M);
  float* DM = reinterpret_cast<float*>(smem + Lay::DM);
  float* DAU = reinterpret_cast<float*>(smem + Lay::DAU);
  float* Sb = reinterpret_cast<float*>(smem + Lay::SB);
  float* dSb = reinterpret_cast<float*>(smem + Lay::DSB);
  float* Eks = reinterpret_cast<float*>(smem + Lay::EKS);  // e·(K S)
  float* Gd = reinterpret_cast<float*>(smem + Lay::GD);    // Γl·(K dS'), then dΔ
  float* Dl = reinterpret_cast<float*>(smem + Lay::DL);    // Δ
  float* dXs = reinterpret_cast<float*>(smem + Lay::DX);   // dX
  float* Tm = reinterpret_cast<float*>(smem + Lay::TM);    // tail: Aᵀ dA, then x = dL ⊙ KK ⊙ Γ
  float* KK = reinterpret_cast<float*>(smem + Lay::KK);    // tail: K Kᵀ, then P = dM ⊙ M
  float* Ds = reinterpret_cast<float*>(smem + Lay::DS);    // tail: dKK + dKKᵀ
  T* vbs = reinterpret_cast<T*>(smem + Lay::VB_);
  T* dos = reinterpret_cast<T*>(smem + Lay::DOB);
  float* bet = reinterpret_cast<float*>(smem + Lay::VEC);
  float* gam = bet + kC;
  float* e = bet + 2 * kC;
  float* gl = bet + 3 * kC;
  float* cacc = bet + 4 * kC;  // Σ_c Δ · Γl K dS'   (c_r)
  float* sacc = bet + 5 * kC;  // Σ_c e dO · Q S     (s_r)
  float* tacc = bet + 6 * kC;  // Σ_c dX · e K S     (t_r)
  float* dbe = bet + 7 * kC;
  float* dgam = bet + 8 * kC;
  float* part_s = reinterpret_cast<float*>(smem + Lay::PART);  // [2][64] per column half
  float* part_c = part_s + 2 * kC;
  float* part_t = part_s + 4 * kC;

  const GdnDims& d = a.d;
  const int c = blockIdx.x, tid = threadIdx.x, warp = tid >> 5, half = warp >> 2;
  const int64_t hv = blockIdx.y, b = blockIdx.z / KSPLIT, h = hv / d.G, bhv = b * d.HV + hv;
  const int kofs = int(blockIdx.z % KSPLIT) * KO;
  const bool first = kofs == 0;
  const int64_t t0 = int64_t(c) * kC;
  const int n = int(min64(kC, d.L - t0));
  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  const T* dout = static_cast<const T*>(a.dout);

  load_tile_async<kC, KP, LDK>(qs, q + ((b * d.L + t0) * d.H + h) * d.K, d.H * d.K, n, int(d.K));
  load_tile_async<kC, KP, LDK>(ks, k + ((b * d.L + t0) * d.H + h) * d.K, d.H * d.K, n, int(d.K));
  load_tile_async<kC, kC, kLDA>(Am, a.A + (bhv * d.NC + c) * (kC * kC), kC, kC, kC);
  cp_async_commit();
  for (int idx = tid; idx < kC * kLDA; idx += kThreads) {
    DM[idx] = 0.f;
    DAU[idx] = 0.f;
  }
  if (tid < kC) {
    const float* gc = a.gam + (bhv * d.NC + c) * kC;
    const float gr = gc[tid], glast = gc[kC - 1];
    bet[tid] = tid < n ? a.beta[(b * d.L + t0 + tid) * d.HV + hv] : 0.f;
    gam[tid] = gr;
    e[tid] = expf(gr);
    gl[tid] = expf(glast - gr);
    cacc[tid] = sacc[tid] = tacc[tid] = 0.f;
  }
  cp_async_wait<0>();
  __syncthreads();

  auto Ka = [&](int r, int i) { return ld(ks[r * LDK + i]); };
  auto Qa = [&](int r, int i) { return ld(qs[r * LDK + i]); };
  auto Kt = [&](int i, int s) { return ld(ks[s * LDK + i]); };
  const int m0 = 16 * (warp & 3);      // this warp's 16 rows of every 64-row product
  const int nM = 32 * half;            // its columns of the 64 × 64 ones
  const int n1 = half * (VB / 2);      // of the 64 × VB ones
  const int no = half * (KO / 2);      // of the 64 × KO ones (dq, dk)
  const bool lower_tile = half == 0 || (warp & 3) >= 2;
  {  // M = tril(Q Kᵀ) ⊙ Γ, all of it (zeros above the diagonal)
    float accM[4][4] = {};
    warp_mma<SPLIT>(accM, Qa, Kt, m0, nM, 0, KP);
    for_acc(accM, m0, nM, [&](int r, int s, float& x) { Mm[r * kLDA + s] = s <= r ? x * expf(gam[r] - gam[s]) : 0.f; });
  }

  float accQ[NSO][4] = {}, accK[NSO][4] = {};
  float dss = 0.f;  // this thread's share of <dS', S>
  auto Sbb = [&](int i, int cc) { return Sb[i * LDB + cc]; };
  auto dSbb = [&](int i, int cc) { return dSb[i * LDB + cc]; };
  auto Xb = [&](int s, int cc) { return ld(vbs[s * LDV + cc]) - Eks[s * LDB + cc]; };
  auto Aua = [&](int r, int s) { return Am[r * kLDA + s] * bet[s]; };
  auto AutA = [&](int r, int s) { return Am[s * kLDA + r] * bet[r]; };
  auto MtA = [&](int r, int s) { return Mm[s * kLDA + r]; };
  auto dOb = [&](int s, int cc) { return ld(dos[s * LDV + cc]); };
  auto Gdb = [&](int s, int cc) { return Gd[s * LDB + cc]; };

  const int nvb = int((d.V + VB - 1) / VB);
  for (int vb = 0; vb < nvb; ++vb) {
    const int64_t colb = int64_t(vb) * VB;
    const int tile = int(colb / a.vt), off = int(colb % a.vt);
    const int ncol = int(min64(VB, d.V - colb));
    __syncthreads();  // the previous block is done with every value-block buffer
    // All of the block's loads in flight at once: the S and dS' blocks (ckpt rows of vt floats)
    // and the v / dout columns.
    const int64_t base = ((bhv * d.NC + c) * a.tiles + tile) * (int64_t(KP) * a.vt) + off;
    for (int idx = tid; idx < KP * (VB / 4); idx += kThreads) {
      const int i = idx / (VB / 4), cc = (idx % (VB / 4)) * 4;
      cp_async16(Sb + i * LDB + cc, a.ckS + base + int64_t(i) * a.vt + cc, true);
      cp_async16(dSb + i * LDB + cc, a.ckD + base + int64_t(i) * a.vt + cc, true);
    }
    load_tile_async<kC, VB, LDV>(vbs, v + ((b * d.L + t0) * d.HV + hv) * d.V + colb, d.HV * d.V, n, ncol);
    load_tile_async<kC, VB, LDV>(dos, dout + ((b * d.L + t0) * d.HV + hv) * d.V + colb, d.HV * d.V, n, ncol);
    cp_async_commit();
    cp_async_wait<0>();
    for (int idx = tid; idx < KP * (VB / 4); idx += kThreads) {  // this thread's own copies: no barrier needed
      const int i = idx / (VB / 4), cc = (idx % (VB / 4)) * 4;
      const float4 s = *reinterpret_cast<const float4*>(Sb + i * LDB + cc);
      const float4 ds = *reinterpret_cast<const float4*>(dSb + i * LDB + cc);
      dss += s.x * ds.x + s.y * ds.y + s.z * ds.z + s.w * ds.w;
    }
    __syncthreads();
    {  // K S, K dS', Q S
      float aKS[NS1][4] = {}, aKD[NS1][4] = {}, aQS[NS1][4] = {};
      warp_mma_2b<SPLIT>(aKS, aKD, Ka, Sbb, dSbb, m0, n1, 0, KP);
      warp_mma<SPLIT>(aQS, Qa, Sbb, m0, n1, 0, KP);
      for_acc(aKS, m0, n1, [&](int r, int cc, float& x) { Eks[r * LDB + cc] = e[r] * x; });
      for_acc(aKD, m0, n1, [&](int r, int cc, float& x) { Gd[r * LDB + cc] = gl[r] * x; });
      row_dot(aQS, m0, n1, [&](int r, int cc) { return e[r] * ld(dos[r * LDV + cc]); }, part_s + half * kC);
    }
    __syncthreads();
    {  // Δ = Au X;  dΔ = Γl K dS' + Mᵀ dO
      float aD[NS1][4] = {}, aG[NS1][4];
      warp_mma<SPLIT>(aD, Aua, Xb, m0, n1, 0, m0 + 16);
      for_acc(aG, m0, n1, [&](int r, int cc, float& x) { x = Gd[r * LDB + cc]; });
      row_dot(aD, m0, n1, [&](int r, int cc) { return Gd[r * LDB + cc]; }, part_c + half * kC);
      warp_mma<SPLIT>(aG, MtA, dOb, m0, n1, m0, kC);
      for_acc(aD, m0, n1, [&](int r, int cc, float& x) { Dl[r * LDB + cc] = x; });
      for_acc(aG, m0, n1, [&](int r, int cc, float& x) { Gd[r * LDB + cc] = x; });  // own tile only
    }
    __syncthreads();
    {  // dX = Auᵀ dΔ
      float aX[NS1][4] = {};
      warp_mma<SPLIT>(aX, AutA, Gdb, m0, n1, m0, kC);
      for_acc(aX, m0, n1, [&](int r, int cc, float& x) { dXs[r * LDB + cc] = x; });
      row_dot(aX, m0, n1, [&](int r, int cc) { return Eks[r * LDB + cc]; }, part_t + half * kC);
    }
    __syncthreads();
    if (lower_tile) {  // dM += dO Δᵀ;  dAu += dΔ Xᵀ (only the lower triangle is ever used)
      auto dOa = [&](int r, int cc) { return ld(dos[r * LDV + cc]); };
      auto DlT = [&](int cc, int s) { return Dl[s * LDB + cc]; };
      auto Gda = [&](int r, int cc) { return Gd[r * LDB + cc]; };
      auto XT = [&](int cc, int s) { return ld(vbs[s * LDV + cc]) - Eks[s * LDB + cc]; };
      float acc[4][4];
      for_acc(acc, m0, nM, [&](int r, int s, float& x) { x = DM[r * kLDA + s]; });
      warp_mma<SPLIT>(acc, dOa, DlT, m0, nM, 0, VB);
      for_acc(acc, m0, nM, [&](int r, int s, float& x) { DM[r * kLDA + s] = x; });
      for_acc(acc, m0, nM, [&](int r, int s, float& x) { x = DAU[r * kLDA + s]; });
      warp_mma<SPLIT>(acc, Gda, XT, m0, nM, 0, VB);
      for_acc(acc, m0, nM, [&](int r, int s, float& x) { DAU[r * kLDA + s] = x; });
    }
    {  // dQ += diag(e) dO Sᵀ;  dK += diag(Γl) Δ dS'ᵀ − diag(e) dX Sᵀ   (columns kofs..)
      auto eDOa = [&](int r, int cc) { return e[r] * ld(dos[r * LDV + cc]); };
      auto glDa = [&](int r, int cc) { return gl[r] * Dl[r * LDB + cc]; };
      auto edXa = [&](int r, int cc) { return -e[r] * dXs[r * LDB + cc]; };
      auto ST = [&](int cc, int i) { return Sb[(kofs + i) * LDB + cc]; };
      auto dST = [&](int cc, int i) { return dSb[(kofs + i) * LDB + cc]; };
      warp_mma<SPLIT>(accQ, eDOa, ST, m0, no, 0, VB);
      warp_mma<SPLIT>(accK, glDa, dST, m0, no, 0, VB);
      warp_mma<SPLIT>(accK, edXa, ST, m0, no, 0, VB);
    }
    if (tid < kC) {  // fixed order: column half 0 then 1, value blocks in order
      sacc[tid] += part_s[tid] + part_s[kC + tid];
      cacc[tid] += part_c[tid] + part_c[kC + tid];
      tacc[tid] += part_t[tid] + part_t[kC + tid];
    }
  }
  dss = block_sum(dss);  // its barriers also end the last value block

  // ---- tail: the 64×64 gradients (steps e, f of the CPU code) and the dq / dk products ----
  {
    float acc[4][4] = {};
    warp_mma<SPLIT>(acc, Ka, Kt, m0, nM, 0, KP);
    for_acc(acc, m0, nM, [&](int r, int s, float& x) { KK[r * kLDA + s] = x; });
    // Tm = Aᵀ dA with dA = dAu diag(β); Aᵀ is upper triangular: rows i >= m0.
    auto AT = [&](int r, int i) { return Am[i * kLDA + r]; };
    auto dAb = [&](int i, int s) { return DAU[i * kLDA + s] * bet[s]; };
    float acc2[4][4] = {};
    warp_mma<SPLIT>(acc2, AT, dAb, m0, nM, m0, kC);
    for_acc(acc2, m0, nM, [&](int r, int s, float& x) { Tm[r * kLDA + s] = x; });
  }
  if (tid < kC) {  // dβ_s from Au = A diag(β): Σ_r dAu[r,s] A[r,s] (A lower: r >= s)
    const int s = tid;
    float acc = 0.f;
    for (int r = s; r < kC; ++r) acc += DAU[r * kLDA + s] * Am[r * kLDA + s];
    dbe[s] = acc;
  }
  __syncthreads();
  {  // dL = −Tm Aᵀ (Aᵀ upper triangular: only j <= s, i.e. j < nM + 32)
    auto Tma = [&](int r, int j) { return Tm[r * kLDA + j]; };
    auto AtB = [&](int j, int s) { return Am[s * kLDA + j]; };
    float acc[4][4] = {};
    warp_mma<SPLIT>(acc, Tma, AtB, m0, nM, 0, nM + 32);
    // dAu's last readers (Tm's product, dβ's column sums) were before the barrier above.
    for_acc(acc, m0, nM, [&](int r, int s, float& x) { DAU[r * kLDA + s] = -x; });
  }
  __syncthreads();
  for (int idx = tid; idx < kC * kC; idx += kThreads) {
    const int r = idx / kC, s = idx % kC;
    if (s < r) {
      const float G = expf(gam[r] - gam[s]);
      const float gx = DAU[r * kLDA + s] * G;  // dL ⊙ Γ
      Tm[r * kLDA + s] = gx * KK[r * kLDA + s];  // x
      Ds[r * kLDA + s] = bet[r] * gx;            // dKK (lower) and its transpose
      Ds[s * kLDA + r] = bet[r] * gx;
      const float dm = DM[r * kLDA + s];
      KK[r * kLDA + s] = dm * Mm[r * kLDA + s];  // P = dM ⊙ M
      DM[r * kLDA + s] = dm * G;                 // dQK = dM ⊙ Γ
    } else if (s == r) {
      Tm[r * kLDA + s] = 0.f;
      Ds[r * kLDA + s] = 0.f;
      KK[r * kLDA + s] = DM[r * kLDA + s] * Mm[r * kLDA + s];
    } else {
      Tm[r * kLDA + s] = 0.f;
      KK[r * kLDA + s] = 0.f;
      DM[r * kLDA + s] = 0.f;
    }
  }
  __syncthreads();
  if (tid < kC) {  // dγ_r and dβ_r, every sum in a fixed order
    const int r = tid;
    float rowP = 0.f, colP = 0.f, rowx = 0.f, colbx = 0.f;
    for (int s = 0; s <= r; ++s) rowP += KK[r * kLDA + s];
    for (int s = r; s < kC; ++s) colP += KK[s * kLDA + r];
    for (int s = 0; s < r; ++s) rowx += Tm[r * kLDA + s];
    for (int s = r + 1; s < kC; ++s) colbx += bet[s] * Tm[s * kLDA + r];
    float dgr = -cacc[r] + sacc[r] - tacc[r] + rowP - colP + bet[r] * rowx - colbx;
    if (r == kC - 1) {  // the chunk's last γ also scales the handed-on state
      float cs = 0.f;
      for (int s = 0; s < kC; ++s) cs += cacc[s];
      dgr += cs + e[kC - 1] * dss;
    }
    dgam[r] = dgr;
    if (first && r < n) a.dbeta[(b * d.L + t0 + r) * d.HV + hv] = dbe[r] + rowx;
  }
  {  // dQ += dQK K;  dK += dQKᵀ Q + (dKK + dKKᵀ) K
    auto dQKa = [&](int r, int s) { return DM[r * kLDA + s]; };
    auto dQKt = [&](int r, int s) { return DM[s * kLDA + r]; };
    auto Dsa = [&](int r, int s) { return Ds[r * kLDA + s]; };
    auto Kb = [&](int s, int i) { return ld(ks[s * LDK + kofs + i]); };
    auto Qb = [&](int s, int i) { return ld(qs[s * LDK + kofs + i]); };
    warp_mma<SPLIT>(accQ, dQKa, Kb, m0, no, 0, m0 + 16);
    warp_mma<SPLIT>(accK, dQKt, Qb, m0, no, m0, kC);
    warp_mma<SPLIT>(accK, Dsa, Kb, m0, no, 0, kC);
  }
  __syncthreads();
  if (first && tid == 0) {  // dg_s = Σ_{r >= s} dγ_r
    float acc = 0.f;
    for (int r = kC - 1; r >= 0; --r) {
      acc += dgam[r];
      if (r < n) a.dg[(b * d.L + t0 + r) * d.HV + hv] = acc;
    }
  }
  if (a.dq) {
    T* dq = static_cast<T*>(a.dq);
    T* dk = static_cast<T*>(a.dk);
    auto put = [&](T* dst) {
      return [&, dst](int r, int i, float& x) {
        if (r < n && kofs + i < d.K) dst[((b * d.L + t0 + r) * d.H + h) * d.K + kofs + i] = st<T>(x);
      };
    };
    for_acc(accQ, m0, no, put(dq));
    for_acc(accK, m0, no, put(dk));
  } else {
    auto put = [&](float* dst) {
      return [&, dst](int r, int i, float& x) {
        if (r < n && kofs + i < d.K) dst[(bhv * d.L + t0 + r) * d.K + kofs + i] = x;
      };
    };
    for_acc(accQ, m0, no, put(a.dq_part));
    for_acc(accK, m0, no, put(a.dk_part));
  }
}

// dq[b, t, h, :] = Σ over the group's value heads (in order) of the fp32 partials; same for dk.
template <class T>
__global__ void gdn_group_sum_kernel(const float* __restrict__ dq_part, const float* __restrict__ dk_part, T* dq,
                                     T* dk, GdnDims d) {
  const int64_t total = d.B * d.L * d.H * d.K;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = idx % d.K, h = (idx / d.K) % d.H, t = (idx / (d.K * d.H)) % d.L, b = idx / (d.K * d.H * d.L);
    float sq = 0.f, sk = 0.f;
    for (int64_t hv = h * d.G; hv < (h + 1) * d.G; ++hv) {
      const int64_t off = ((b * d.HV + hv) * d.L + t) * d.K + i;
      sq += dq_part[off];
      sk += dk_part[off];
    }
    dq[idx] = st<T>(sq);
    dk[idx] = st<T>(sk);
  }
}

// ---- host side ---------------------------------------------------------------------------------

int padded_k(int64_t K) { return K <= 64 ? 64 : K <= 128 ? 128 : 256; }

// Calls f(T{}, integral_constant<KP>) for the dtype and padded K (only configurations that fit).
template <class F>
void with_config(DType dt, int64_t K, F&& f) {
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    auto run = [&](auto kp) {
      constexpr int KP = decltype(kp)::value;
      if constexpr (config_fits<T, KP>()) f(tag, kp);
      else fail(cat("gdn chunked: K ", K, " in ", dtype_name(dt), " does not fit the kernels' shared memory"));
    };
    switch (padded_k(K)) {
      case 64: run(std::integral_constant<int, 64>{}); break;
      case 128: run(std::integral_constant<int, 128>{}); break;
      default: run(std::integral_constant<int, 256>{}); break;
    }
  });
}

// Raises a kernel's dynamic shared-memory limit once per instantiation.
template <class Kern>
void allow_smem(Kern kernel, size_t bytes) {
  LT2_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

GdnDims dims_of(const Tensor& q, const Tensor& v) {
  GdnDims d{q.dim(0), q.dim(1), q.dim(2), v.dim(2), q.dim(3), v.dim(3), 0, 0};
  d.G = d.HV / d.H;
  d.NC = (d.L + kC - 1) / kC;
  return d;
}

// Value columns per scan block: 32 doubles the blocks of the sequential walk, 64 halves the
// k-side work (q, k loads, M, K S) repeated per column. 64 was faster on an H100 at both target
// shapes (lt2 bench gdn; LT2_GDN_VT or value_tile picks either).
int choose_vt(int requested) {
  if (requested == 32 || requested == 64) return requested;
  LT2_CHECK(requested == 0, "gdn chunked: value tile must be 0 (auto), 32 or 64, got ", requested);
  if (const char* s = std::getenv("LT2_GDN_VT")) {
    const int x = std::atoi(s);
    if (x == 32 || x == 64) return x;
  }
  return 64;
}

template <class T, int KP>
void launch_prep(const Tensor& k, const Tensor& beta, const Tensor& g, const GdnDims& d, Tensor& A, Tensor& gam) {
  constexpr size_t smem = PrepLayout<T, KP>::bytes;
  static const bool once = (allow_smem(gdn_prep_kernel<T, KP>, smem), true);
  (void)once;
  gdn_prep_kernel<T, KP><<<dim3(unsigned(d.NC), unsigned(d.HV), unsigned(d.B)), kThreads, smem, stream()>>>(
      k.data<T>(), beta.data<float>(), g.data<float>(), d, A.data<float>(), gam.data<float>());
  check_launch("gdn chunked prep");
}

template <class T, int KP, int VT>
void launch_scan_vt(const ScanArgs& a, int roles) {
  constexpr size_t smem = ScanLayout<T, KP, VT>::bytes;
  static const bool once = (allow_smem(gdn_scan_kernel<T, KP, VT>, smem), true);
  (void)once;
  gdn_scan_kernel<T, KP, VT><<<dim3(unsigned(a.tiles * roles), unsigned(a.d.HV), unsigned(a.d.B)), kThreads, smem,
                               stream()>>>(a);
  check_launch("gdn chunked scan");
}
template <class T, int KP>
void launch_scan(int vt, const ScanArgs& a, int roles) {
  if (vt == 32) launch_scan_vt<T, KP, 32>(a, roles);
  else launch_scan_vt<T, KP, 64>(a, roles);
}

Tensor f32_scratch(int64_t n) { return Tensor::empty({n}, DType::F32, Device::CUDA); }

}  // namespace

bool gdn_chunked_supported(DType dtype, int64_t K, int64_t V) {
  if (K < 1 || V < 1 || K > 256) return false;
  if (dtype == DType::BF16) return true;
  return dtype == DType::F32 && K <= 128;  // matches config_fits
}

Tensor gdn_chunked_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
                           const Tensor& h0, Tensor* hT, int value_tile) {
  const GdnDims d = dims_of(q, v);
  LT2_CHECK(gdn_chunked_supported(q.dtype(), d.K, d.V), "gdn chunked: unsupported K ", d.K, " / dtype ",
            dtype_name(q.dtype()));
  const int vt = choose_vt(value_tile);
  Tensor o = Tensor::empty({d.B, d.L, d.HV, d.V}, q.dtype(), Device::CUDA);
  Tensor h = hT ? Tensor::empty({d.B, d.HV, d.K, d.V}, DType::F32, Device::CUDA) : Tensor();
  // Scratch lives until the op returns; the allocator reuses it only in stream order.
  Tensor A = f32_scratch(d.B * d.HV * d.NC * kC * kC), gam = f32_scratch(d.B * d.HV * d.NC * kC);
  with_config(q.dtype(), d.K, [&](auto tag, auto kp) {
    using T = decltype(tag);
    constexpr int KP = decltype(kp)::value;
    launch_prep<T, KP>(k, beta, g, d, A, gam);
    ScanArgs a{};
    a.q = q.data<T>();
    a.k = k.data<T>();
    a.v = v.data<T>();
    a.beta = beta.data<float>();
    a.A = A.data<float>();
    a.gam = gam.data<float>();
    a.h0 = h0.defined() ? h0.data<float>() : nullptr;
    a.o = o.data<T>();
    a.hT = hT ? h.data<float>() : nullptr;
    a.d = d;
    a.tiles = int((d.V + vt - 1) / vt);
    a.first_role = 0;
    launch_scan<T, KP>(vt, a, 1);
  });
  if (hT) *hT = h;
  return o;
}

GdnGrads gdn_chunked_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
                              const Tensor& h0, const Tensor& dout, const Tensor& dhT, int value_tile) {
  const GdnDims d = dims_of(q, v);
  LT2_CHECK(gdn_chunked_supported(q.dtype(), d.K, d.V), "gdn chunked: unsupported K ", d.K, " / dtype ",
            dtype_name(q.dtype()));
  const int vt = choose_vt(value_tile);
  const int tiles = int((d.V + vt - 1) / vt);
  GdnGrads gr{Tensor::empty(q.shape(), q.dtype(), Device::CUDA),
              Tensor::empty(k.shape(), q.dtype(), Device::CUDA),
              Tensor::empty(v.shape(), q.dtype(), Device::CUDA),
              Tensor::empty(beta.shape(), DType::F32, Device::CUDA),
              Tensor::empty(g.shape(), DType::F32, Device::CUDA),
              h0.defined() ? Tensor::empty(h0.shape(), DType::F32, Device::CUDA) : Tensor()};
  const int KP = padded_k(d.K);
  Tensor A = f32_scratch(d.B * d.HV * d.NC * kC * kC), gam = f32_scratch(d.B * d.HV * d.NC * kC);
  const int64_t ck = d.B * d.HV * d.NC * tiles * int64_t(KP) * vt;
  Tensor ckS = f32_scratch(ck), ckD = f32_scratch(ck);
  Tensor dq_part, dk_part;
  if (d.G > 1) {
    dq_part = f32_scratch(d.B * d.HV * d.L * d.K);
    dk_part = f32_scratch(d.B * d.HV * d.L * d.K);
  }
  with_config(q.dtype(), d.K, [&](auto tag, auto kp) {
    using T = decltype(tag);
    constexpr int KPc = decltype(kp)::value;
    launch_prep<T, KPc>(k, beta, g, d, A, gam);
    // One launch: forward blocks store S per chunk, reverse blocks dS' per chunk, dv and dh0.
    ScanArgs a{};
    a.q = q.data<T>();
    a.k = k.data<T>();
    a.v = v.data<T>();
    a.dout = dout.data<T>();
    a.beta = beta.data<float>();
    a.A = A.data<float>();
    a.gam = gam.data<float>();
    a.h0 = h0.defined() ? h0.data<float>() : nullptr;
    a.dhT = dhT.defined() ? dhT.data<float>() : nullptr;
    a.ckS = ckS.data<float>();
    a.dv = gr.dv.data<T>();
    a.dh0 = h0.defined() ? gr.dh0.data<float>() : nullptr;
    a.ckD = ckD.data<float>();
    a.d = d;
    a.tiles = tiles;
    a.first_role = 0;
    launch_scan<T, KPc>(vt, a, 2);

    GradArgs ga{};
    ga.q = q.data<T>();
    ga.k = k.data<T>();
    ga.v = v.data<T>();
    ga.dout = dout.data<T>();
    ga.beta = beta.data<float>();
    ga.A = A.data<float>();
    ga.gam = gam.data<float>();
    ga.ckS = ckS.data<float>();
    ga.ckD = ckD.data<float>();
    if (d.G == 1) {
      ga.dq = gr.dq.data<T>();
      ga.dk = gr.dk.data<T>();
    } else {
      ga.dq_part = dq_part.data<float>();
      ga.dk_part = dk_part.data<float>();
    }
    ga.dbeta = gr.dbeta.data<float>();
    ga.dg = gr.dg.data<float>();
    ga.d = d;
    ga.tiles = tiles;
    ga.vt = vt;
    constexpr int VB = grad_vb<T, KPc>();
    constexpr int KSPLIT = KPc / (KPc < 128 ? KPc : 128);
    constexpr size_t smem = GradLayout<T, KPc, VB>::bytes;
    static const bool once = (allow_smem(gdn_grad_kernel<T, KPc, VB>, smem), true);
    (void)once;
    gdn_grad_kernel<T, KPc, VB><<<dim3(unsigned(d.NC), unsigned(d.HV), unsigned(d.B * KSPLIT)), kThreads, smem,
                                  stream()>>>(ga);
    check_launch("gdn chunked grad");
    if (d.G > 1) {
      const int64_t total = d.B * d.L * d.H * d.K;
      gdn_group_sum_kernel<T><<<unsigned(std::min<int64_t>(blocks_for(total, 256), 65535)), 256, 0, stream()>>>(
          dq_part.data<float>(), dk_part.data<float>(), gr.dq.data<T>(), gr.dk.data<T>(), d);
      check_launch("gdn chunked group sum");
    }
  });
  return gr;
}

// ---- variable-length batches -------------------------------------------------------------------

namespace {

// Tokens [t0, t0 + len) of a packed [1, T, ...] tensor as a [1, len, ...] view (same storage).
Tensor packed_rows(const Tensor& x, int64_t t0, int64_t len) {
  const Shape rest(x.shape().begin() + 1, x.shape().end());
  Shape s = rest;
  s[0] = len;
  s.insert(s.begin(), 1);
  return x.reshape(rest).narrow(t0, len).reshape(s);
}
// Entry n of a per-sequence [N, ...] tensor as a [1, ...] view; undefined stays undefined.
Tensor seq_entry(const Tensor& x, int64_t n) { return x.defined() ? x.narrow(n, 1) : Tensor(); }

void check_varlen(const Tensor& q, const std::vector<int64_t>& cu, std::initializer_list<const Tensor*> states) {
  LT2_CHECK(q.ndim() == 4 && q.dim(0) == 1, "gdn chunked varlen: packed inputs need batch 1, got ", shape_str(q.shape()));
  LT2_CHECK(cu.size() >= 2 && cu.front() == 0 && cu.back() == q.dim(1), "gdn chunked varlen: cu_seqlens must run from 0 to ",
            q.dim(1), " (", cu.size(), " offsets)");
  for (size_t i = 1; i < cu.size(); ++i) LT2_CHECK(cu[i] >= cu[i - 1], "gdn chunked varlen: cu_seqlens decreases at ", i);
  for (const Tensor* t : states)
    LT2_CHECK(!t->defined() || t->dim(0) == int64_t(cu.size()) - 1, "gdn chunked varlen: per-sequence state ",
              shape_str(t->shape()), " for ", cu.size() - 1, " sequences");
}

// dst = src, or zero where src is undefined (an empty sequence hands its state on unchanged).
void copy_or_zero(Tensor dst, const Tensor& src) {
  if (src.defined()) dst.copy_from(src);
  else dst.zero();
}

}  // namespace

Tensor gdn_chunked_forward_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                  const Tensor& g, const Tensor& h0, Tensor* hT,
                                  const std::vector<int64_t>& cu_seqlens, int value_tile) {
  check_varlen(q, cu_seqlens, {&h0});
  const int64_t N = int64_t(cu_seqlens.size()) - 1, HV = v.dim(2), K = q.dim(3), V = v.dim(3);
  Tensor o = Tensor::empty(v.shape(), q.dtype(), Device::CUDA);
  Tensor h = hT ? Tensor::empty({N, HV, K, V}, DType::F32, Device::CUDA) : Tensor();
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t0 = cu_seqlens[size_t(n)], len = cu_seqlens[size_t(n) + 1] - t0;
    if (len == 0) {
      if (hT) copy_or_zero(h.narrow(n, 1), seq_entry(h0, n));
      continue;
    }
    Tensor hn;
    const Tensor on = gdn_chunked_forward(packed_rows(q, t0, len), packed_rows(k, t0, len), packed_rows(v, t0, len),
                                          packed_rows(beta, t0, len), packed_rows(g, t0, len), seq_entry(h0, n),
                                          hT ? &hn : nullptr, value_tile);
    packed_rows(o, t0, len).copy_from(on);
    if (hT) h.narrow(n, 1).copy_from(hn);
  }
  if (hT) *hT = h;
  return o;
}

GdnGrads gdn_chunked_backward_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                     const Tensor& g, const Tensor& h0, const Tensor& dout, const Tensor& dhT,
                                     const std::vector<int64_t>& cu_seqlens, int value_tile) {
  check_varlen(q, cu_seqlens, {&h0, &dhT});
  const int64_t N = int64_t(cu_seqlens.size()) - 1;
  GdnGrads gr{Tensor::empty(q.shape(), q.dtype(), Device::CUDA),
              Tensor::empty(k.shape(), q.dtype(), Device::CUDA),
              Tensor::empty(v.shape(), q.dtype(), Device::CUDA),
              Tensor::empty(beta.shape(), DType::F32, Device::CUDA),
              Tensor::empty(g.shape(), DType::F32, Device::CUDA),
              h0.defined() ? Tensor::empty(h0.shape(), DType::F32, Device::CUDA) : Tensor()};
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t0 = cu_seqlens[size_t(n)], len = cu_seqlens[size_t(n) + 1] - t0;
    if (len == 0) {
      if (h0.defined()) copy_or_zero(gr.dh0.narrow(n, 1), seq_entry(dhT, n));
      continue;
    }
    const GdnGrads gn = gdn_chunked_backward(
        packed_rows(q, t0, len), packed_rows(k, t0, len), packed_rows(v, t0, len), packed_rows(beta, t0, len),
        packed_rows(g, t0, len), seq_entry(h0, n), packed_rows(dout, t0, len), seq_entry(dhT, n), value_tile);
    packed_rows(gr.dq, t0, len).copy_from(gn.dq);
    packed_rows(gr.dk, t0, len).copy_from(gn.dk);
    packed_rows(gr.dv, t0, len).copy_from(gn.dv);
    packed_rows(gr.dbeta, t0, len).copy_from(gn.dbeta);
    packed_rows(gr.dg, t0, len).copy_from(gn.dg);
    if (h0.defined()) gr.dh0.narrow(n, 1).copy_from(gn.dh0);
  }
  return gr;
}

}  // namespace lt2::cuda
