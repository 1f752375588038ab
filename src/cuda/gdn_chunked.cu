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
// (Measured on an H100, that gained only ~5 %: the scan's time goes elsewhere.)
//
// Kernels (each thread block 8 warps; the warp-column scan 4 or 8):
//   prep  (chunk, hv, b), parallel: γ, K Kᵀ, L and A = (I + L)^{-1} by column-parallel forward
//         substitution in fp32 (a blocked tensor-core inverse in the BF16 modes); writes A and γ
//         per chunk (the only chunk-level scratch; for the split-tile kernels below, Au = A diag(β)
//         and A as hi / lo BF16 planes instead of A in fp32).
//   scan  (value tile of VT columns, hv, b): walks the chunks in order keeping the K×VT fp32
//         state in shared memory (in registers in the split-tile scan, and in the warp-column
//         scan of gdn_scan_warp.cuh that bf16 mode runs at VT 64); per chunk X, Δ, O and the
//         state update. In the backward op the same launch also holds the reverse scan blocks
//         (dS, dv, dh0): the two are independent, so they share the machine. The forward blocks
//         then store each chunk's entering state S and the reverse blocks each chunk's dS'
//         (fp32 checkpoints; hi / lo BF16 planes, the same bytes, in the split-tile scan).
//   grad  (chunk, hv, b), parallel: everything that sums over the value columns (dq, dk, dβ, dg)
//         from S and dS' of its chunk, walking the value columns in blocks of VB.
// With grouped value heads, dq / dk of each value head go to fp32 scratch and a last kernel adds
// the group in a fixed order. No atomics anywhere: every reduction has a fixed order, so results
// are bitwise reproducible.
//
// Precision (TF32 mode; the BF16 modes below). Matrix products use mma.sync m16n8k8 with TF32
// operands and fp32 accumulation;
// states, gate sums, A and every intermediate are kept in fp32 (bf16 inputs are exact in TF32,
// so only intermediates are rounded, to 11 significant bits). F32 inputs use three TF32 products
// per step (a = a_big + a_small; a·b ≈ a_s b_b + a_b b_s + a_b b_b), which gives fp32 accuracy.
// Operands are read from shared memory through small accessor lambdas, so transposes, row
// scalings (e, Γl, β) and the X = V − eKS difference are applied on the fly without extra copies.
//
// BF16 modes (K <= 128 with BF16 activations; LT2_GDN_MMA = bf16 (the default), bf16x2 or
// tf32): mma.sync m16n8k16 on BF16 operands, the raw q / k / v / dout tiles (exact in BF16) fed
// by ldmatrix; fp32 operands (states, A, Δ, dΔ, ...) split into hi + lo BF16 halves (bf16x2,
// ~16 bits, so raw × fp32 costs two mma and fp32 × fp32 three) or rounded to BF16 once (bf16);
// fp32 accumulation and fp32 states as before. With them come: A by a blocked inverse on the
// tensor cores in TF32x3 (the scalar solve made prep bound by its shared-memory loads), two scan
// blocks per SM at VT = 32, and in bf16 mode BF16 checkpoints with the grad kernel prefetching the
// next value block. K in (128, 256] keeps the TF32 path; F32 activations the TF32x3 one.
// Measured on an H100 (bench/gpu/gdn_bf16x2_h100.txt): bf16x2 passes every parity test at the
// output-rounding floor (o, dq, dk, dv ≈ 1.7e-3; hT, dh0, dβ, dg <= 1.5e-5, where TF32 gives
// 1e-4 to 4e-4) and takes fwd+bwd from 3.66 / 5.19 ms (TF32) to 3.07–3.13 / 4.04–4.15 ms at the
// two issue shapes; bf16 passes too (2.45–2.48 / 3.29–3.37 ms) with hT up to 3.6e-3 against
// the 5e-3 bound. (In the accessor kernels; the default is now bf16 in the split-tile grad kernel
// and, at VT 64, the warp-column scan.)
//
// Split-tile kernels (bf16 and bf16x2 with BF16 activations and K <= 128, bf16 the default since
// the seventh session; LT2_GDN_LEGACY=1 runs the accessor kernels above instead; in bf16 a split
// tile is its hi plane alone): gdn_scan_x2_kernel and gdn_grad_x2_kernel do the same
// work with the same split points, but every fp32 operand is written ONCE as a split tile (hi and
// lo BF16 planes in shared memory, row scalings folded in) by the warp that computes it, and
// every product reads its operands by ldmatrix; prep hands them Au = A diag(β) and A split, the
// scan keeps the state in registers and writes the checkpoints split, and the grad kernel moves
// row scalings and the product by Auᵀ out of its value loop (see their sections). Profiled with
// ncu, the accessor kernels spent their issue slots on per-element loads, splits and predicated
// 16-bit stores, not on the tensor cores. Measured on an H100 (bench/gpu/gdn_split_h100.txt).
// With one 8-warp block per SM (registers, shared memory) each warp issues only every ~7 cycles,
// so every instruction that is not an mma costs time: the value-block loads, the input tiles
// (load_tile_async) and the checkpoints go by 16-byte words with per-thread addresses set up once,
// and results are stored in pairs (bench/gpu/gdn_speed2_h100.txt: fwd+bwd 2.47 -> 2.06 ms and
// 3.47 -> 2.96 ms at the two issue shapes; more independent mma chains did not help). Sixteen
// warps per block did not help either (34d809e, bench/gpu/gdn_occ16_ncu_s5_h100.txt): the grad
// kernel issued 24 % more per cycle but ran 29 % more instructions and hit the shared-memory
// pipe (1.03 -> 1.07 ms); the scans gained nothing.
#include "cuda/gdn_chunked.h"

#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/mma_sync.cuh"  // cp.async, pack_bf16, c_to_a

namespace lt2::cuda {

namespace {

constexpr int kC = 64;  // chunk length (rows of every per-chunk matrix)
constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
constexpr size_t kSmemLimit = 232448;  // 227 KiB: the opt-in shared memory of one block on sm_90
constexpr unsigned kFull = 0xffffffffu;

// ---- tensor-core primitives --------------------------------------------------------------------
//
// Precision modes (template argument P of every kernel):
//   kTF32    m16n8k8 TF32, operands rounded to TF32 (11 bits)       - BF16 activations, old path
//   kTF32x3  three TF32 products per step (~22 bits)                - F32 activations
//   kBF16    m16n8k16 BF16, every operand rounded to BF16 (8 bits)
//   kBF16x2  m16n8k16 BF16; fp32 operands split into hi + lo BF16 (~16 bits), raw BF16 tiles
//            (q, k, v, dout as stored) used as they are, so a raw × raw product costs one mma,
//            raw × fp32 two and fp32 × fp32 three.
// Raw tiles are read by ldmatrix (one instruction per 8×8 block instead of one load per element);
// every other operand is an accessor lambda read per element and packed in pairs.
enum : int { kTF32 = 0, kTF32x3 = 1, kBF16 = 2, kBF16x2 = 3 };

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
// d += a b for one 16×8×16 step, BF16 operands (PTX m16n8k16 .bf16; each register holds two
// elements, the lower index in the low half): a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..),
// a3 (g+8, 2t+8..);  b0 (2t..2t+1, g), b1 (2t+8..2t+9, g);  d as for m16n8k8.
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
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

// e^x by the SFU: ex2.approx of x · log2 e, relative error ~1e-6 for the decays here (|x| < ~50),
// far below BF16's 4e-3. expf's range handling costs ~10 instructions and a branch each (ncu: half
// of the first warp-column scan's instructions were M's expf).
__device__ __forceinline__ float exp_sfu(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x * 1.4426950408889634f));
  return y;
}

// hi = (x0, x1) in BF16; with SPLIT, lo = the remainders in BF16 (x ≈ hi + lo to ~16 bits).
template <bool SPLIT>
__device__ __forceinline__ void split_bf16(float x0, float x1, uint32_t& hi, uint32_t& lo) {
  hi = pack_bf16(x0, x1);
  if constexpr (SPLIT) lo = pack_bf16(x0 - __uint_as_float(hi << 16), x1 - __uint_as_float(hi & 0xffff0000u));
  else lo = 0u;
}

// BF16 planes of a split tile in mode P: hi and lo (kBF16x2), or hi alone (kBF16, where every
// fp32 operand is rounded to BF16 once and the lo plane is never written nor read).
template <int P>
constexpr int planes() {
  return P == kBF16x2 ? 2 : 1;
}
// The split (hi, lo) of the pair (x0, x1) into element (r, c) of a split tile (c even); hi only in kBF16.
template <int P>
__device__ __forceinline__ void put_split(bf16* p, int s, int lo, int r, int c, float x0, float x1) {
  uint32_t hi, lw;
  split_bf16<P == kBF16x2>(x0, x1, hi, lw);
  *reinterpret_cast<uint32_t*>(p + r * s + c) = hi;
  if constexpr (P == kBF16x2) *reinterpret_cast<uint32_t*>(p + lo + r * s + c) = lw;
}
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void* p) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldsm_x2(uint32_t (&r)[2], const void* p) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
}
__device__ __forceinline__ void ldsm_x2_t(uint32_t (&r)[2], const void* p) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
}

// Raw tiles in shared memory (rows 16-byte aligned, columns read in blocks of 8): the inputs as
// stored, so exact in BF16. As accessors they read one element; in the BF16 modes whole
// fragments come by ldmatrix.
//   RowTile  op(r, c) = p[r·s + c]: an A operand (r = row, c = k) or, with .trans, a B operand (r = k)
//   ColTile  op(k, n) = p[n·s + k]: a B operand stored n-major (Kᵀ as the right factor)
template <class T>
struct RowTile {
  static constexpr bool raw = std::is_same<T, bf16>::value;  // F32 tiles are split like any fp32 operand
  const T* p;
  int s;
  __device__ __forceinline__ float operator()(int r, int c) const { return ld(p[r * s + c]); }
};
template <class T>
struct ColTile {
  static constexpr bool raw = std::is_same<T, bf16>::value;
  const T* p;
  int s;
  __device__ __forceinline__ float operator()(int k, int n) const { return ld(p[n * s + k]); }
};
template <class F, class = void>
struct is_raw : std::false_type {};
template <class F>
struct is_raw<F, std::void_t<decltype(F::raw)>> : std::integral_constant<bool, F::raw> {};
template <class F>
struct is_row_tile : std::false_type {};  // BF16 tiles only: ldmatrix moves 16-bit elements
template <>
struct is_row_tile<RowTile<bf16>> : std::true_type {};
template <class F>
struct is_col_tile : std::false_type {};
template <>
struct is_col_tile<ColTile<bf16>> : std::true_type {};

// Split tiles (the kBF16x2 scan and grad kernels): an fp32 operand converted ONCE into BF16
// hi and lo planes in shared memory (x ≈ hi + lo, ~16 bits; row scalings such as e, Γl, β folded
// in before the split), so that every product reads it by ldmatrix like a raw tile instead of
// loading, splitting and packing each element per use. lo is the lo plane's offset in elements.
//   COL = false: op(r, c) = p[r·s + c];  COL = true: op(r, c) = p[c·s + r] (the transpose as stored)
template <bool COL>
struct SplitTile {
  const bf16* p;
  int s, lo;
};
template <class F>
struct is_split : std::false_type {};
template <bool COL>
struct is_split<SplitTile<COL>> : std::true_type {};
template <class F>
struct split_col : std::false_type {};
template <>
struct split_col<SplitTile<true>> : std::true_type {};

// Checkpoint element type of mode P: in kBF16 every product rounds S and dS' to BF16 anyway,
// so the checkpoints are stored so (half the bytes between the scan and the grad kernel).
template <int P>
using ckpt_t = std::conditional_t<P == kBF16, bf16, float>;

template <int P>
constexpr int kstep() {
  return P >= kBF16 ? 16 : 8;
}

// A fragment (rows m0.., k..k+KSTEP) and, in the split modes, its small part.
template <int P, class FA>
__device__ __forceinline__ void load_a(const FA& A, int m0, int k, uint32_t (&a)[4], uint32_t (&as)[4]) {
  const int g = lane_g(), t = lane_t();
  if constexpr (P >= kBF16) {
    const int l = threadIdx.x & 31;
    if constexpr (is_row_tile<FA>::value) {  // matrices (rows +0/+8) × (k +0/+8), lane l gives row l % 16
      ldsm_x4(a, A.p + (m0 + (l & 15)) * A.s + k + 8 * (l >> 4));
      as[0] = as[1] = as[2] = as[3] = 0u;
    } else if constexpr (is_col_tile<FA>::value) {  // stored k-major (Aᵀ in memory): transposed on the way
      ldsm_x4_t(a, A.p + (k + (l & 7) + 8 * (l >> 4)) * A.s + m0 + 8 * ((l >> 3) & 1));
      as[0] = as[1] = as[2] = as[3] = 0u;
    } else if constexpr (is_split<FA>::value) {
      const bf16* q = split_col<FA>::value ? A.p + (k + (l & 7) + 8 * (l >> 4)) * A.s + m0 + 8 * ((l >> 3) & 1)
                                           : A.p + (m0 + (l & 15)) * A.s + k + 8 * (l >> 4);
      if constexpr (split_col<FA>::value) {
        ldsm_x4_t(a, q);
        if constexpr (P == kBF16x2) ldsm_x4_t(as, q + A.lo);
      } else {
        ldsm_x4(a, q);
        if constexpr (P == kBF16x2) ldsm_x4(as, q + A.lo);
      }
      if constexpr (P != kBF16x2) as[0] = as[1] = as[2] = as[3] = 0u;
    } else {
      constexpr bool S = P == kBF16x2 && !is_raw<FA>::value;
      split_bf16<S>(A(m0 + g, k + 2 * t), A(m0 + g, k + 2 * t + 1), a[0], as[0]);
      split_bf16<S>(A(m0 + g + 8, k + 2 * t), A(m0 + g + 8, k + 2 * t + 1), a[1], as[1]);
      split_bf16<S>(A(m0 + g, k + 2 * t + 8), A(m0 + g, k + 2 * t + 9), a[2], as[2]);
      split_bf16<S>(A(m0 + g + 8, k + 2 * t + 8), A(m0 + g + 8, k + 2 * t + 9), a[3], as[3]);
    }
  } else {
    constexpr bool S = P == kTF32x3;
    split_tf32<S>(A(m0 + g, k + t), a[0], as[0]);
    split_tf32<S>(A(m0 + g + 8, k + t), a[1], as[1]);
    split_tf32<S>(A(m0 + g, k + t + 4), a[2], as[2]);
    split_tf32<S>(A(m0 + g + 8, k + t + 4), a[3], as[3]);
  }
}
template <int P, class FB>
__device__ __forceinline__ void load_b(const FB& B, int k, int n, uint32_t (&b)[2], uint32_t (&bs)[2]) {
  const int g = lane_g(), t = lane_t();
  if constexpr (P >= kBF16) {
    const int l = threadIdx.x & 31;
    if constexpr (is_col_tile<FB>::value) {  // n-major: rows n + l % 8, k blocks +0/+8
      ldsm_x2(b, B.p + (n + (l & 7)) * B.s + k + 8 * ((l >> 3) & 1));
      bs[0] = bs[1] = 0u;
    } else if constexpr (is_row_tile<FB>::value) {  // k-major, transposed on the way: rows k + l % 16
      ldsm_x2_t(b, B.p + (k + (l & 15)) * B.s + n);
      bs[0] = bs[1] = 0u;
    } else if constexpr (is_split<FB>::value && P != kBF16x2) {  // the hi plane only
      if constexpr (split_col<FB>::value) ldsm_x2(b, B.p + (n + (l & 7)) * B.s + k + 8 * ((l >> 3) & 1));
      else ldsm_x2_t(b, B.p + (k + (l & 15)) * B.s + n);
      bs[0] = bs[1] = 0u;
    } else if constexpr (is_split<FB>::value) {  // hi (lanes 0–15) and lo (16–31) in one instruction
      uint32_t r[4];
      const bf16* q = (l & 16) ? B.p + B.lo : B.p;
      if constexpr (split_col<FB>::value) ldsm_x4(r, q + (n + (l & 7)) * B.s + k + 8 * ((l >> 3) & 1));
      else ldsm_x4_t(r, q + (k + (l & 15)) * B.s + n);
      b[0] = r[0];
      b[1] = r[1];
      bs[0] = r[2];
      bs[1] = r[3];
    } else {
      constexpr bool S = P == kBF16x2 && !is_raw<FB>::value;
      split_bf16<S>(B(k + 2 * t, n + g), B(k + 2 * t + 1, n + g), b[0], bs[0]);
      split_bf16<S>(B(k + 2 * t + 8, n + g), B(k + 2 * t + 9, n + g), b[1], bs[1]);
    }
  } else {
    constexpr bool S = P == kTF32x3;
    split_tf32<S>(B(k + t, n + g), b[0], bs[0]);
    split_tf32<S>(B(k + t + 4, n + g), b[1], bs[1]);
  }
}
// One k step of d += a b in mode P; SA / SB: whether a / b carry a small part.
template <int P, bool SA, bool SB>
__device__ __forceinline__ void mma_p(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&as)[4],
                                      const uint32_t (&b)[2], const uint32_t (&bs)[2]) {
  if constexpr (P >= kBF16) {
    if constexpr (P == kBF16x2 && SA) mma_bf16(d, as, b);  // small terms first
    if constexpr (P == kBF16x2 && SB) mma_bf16(d, a, bs);
    mma_bf16(d, a, b);
  } else {
    mma_step<P == kTF32x3>(d, a, as, b, bs);
  }
}
template <class F>
constexpr bool has_small() {
  return is_split<F>::value || !is_raw<F>::value;
}

// One warp: acc[j] (the 16×8 tile at rows m0.., columns n0 + 8j..) += Σ_{k0<=k<k1} A(row, k) B(k, col).
// A(i, k) and B(k, j) are accessors (lambdas reading shared memory, or raw tiles); k0, k1
// multiples of 16.
template <int P, int NS, class FA, class FB>
__device__ __forceinline__ void warp_mma(float (&acc)[NS][4], const FA& A, const FB& B, int m0, int n0, int k0,
                                         int k1) {
#pragma unroll 2
  for (int k = k0; k < k1; k += kstep<P>()) {
    uint32_t a[4], as[4];
    load_a<P>(A, m0, k, a, as);
#pragma unroll
    for (int j = 0; j < NS; ++j) {
      uint32_t b[2], bs[2];
      load_b<P>(B, k, n0 + 8 * j, b, bs);
      mma_p<P, has_small<FA>(), has_small<FB>()>(acc[j], a, as, b, bs);
    }
  }
}
// Two products sharing B (its fragments are read once): acc1 += A1 B, acc2 += A2 B.
template <int P, int NS, class FA1, class FA2, class FB>
__device__ __forceinline__ void warp_mma_2a(float (&acc1)[NS][4], float (&acc2)[NS][4], const FA1& A1, const FA2& A2,
                                            const FB& B, int m0, int n0, int k0, int k1) {
#pragma unroll 2
  for (int k = k0; k < k1; k += kstep<P>()) {
    uint32_t a1[4], as1[4], a2[4], as2[4];
    load_a<P>(A1, m0, k, a1, as1);
    load_a<P>(A2, m0, k, a2, as2);
#pragma unroll
    for (int j = 0; j < NS; ++j) {
      uint32_t b[2], bs[2];
      load_b<P>(B, k, n0 + 8 * j, b, bs);
      mma_p<P, has_small<FA1>(), has_small<FB>()>(acc1[j], a1, as1, b, bs);
      mma_p<P, has_small<FA2>(), has_small<FB>()>(acc2[j], a2, as2, b, bs);
    }
  }
}
// Two products sharing A: acc1 += A B1, acc2 += A B2.
template <int P, int NS, class FA, class FB1, class FB2>
__device__ __forceinline__ void warp_mma_2b(float (&acc1)[NS][4], float (&acc2)[NS][4], const FA& A, const FB1& B1,
                                            const FB2& B2, int m0, int n0, int k0, int k1) {
#pragma unroll 2
  for (int k = k0; k < k1; k += kstep<P>()) {
    uint32_t a[4], as[4];
    load_a<P>(A, m0, k, a, as);
#pragma unroll
    for (int j = 0; j < NS; ++j) {
      uint32_t b[2], bs[2];
      load_b<P>(B1, k, n0 + 8 * j, b, bs);
      mma_p<P, has_small<FA>(), has_small<FB1>()>(acc1[j], a, as, b, bs);
      load_b<P>(B2, k, n0 + 8 * j, b, bs);
      mma_p<P, has_small<FA>(), has_small<FB2>()>(acc2[j], a, as, b, bs);
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

// dst[r][c] (row stride LD) = src[r * stride + c] for r < nr, c < nc, zero elsewhere in R × W.
// Rows that allow it go by cp.async, all in flight at once (the caller commits and waits, then
// synchronises the block); other shapes fall back to plain loads, complete on return.
// NT: the threads of the block that share the copy.
template <int R, int W, int LD, class T, int NT = kThreads>
__device__ __forceinline__ void load_tile_async(T* dst, const T* src, int64_t stride, int nr, int nc) {
  constexpr int VEC = 16 / int(sizeof(T));
  static_assert(W % VEC == 0 && LD % VEC == 0, "tile rows must hold whole 16-byte vectors");
  const bool vec = nc % VEC == 0 && stride % VEC == 0 && (reinterpret_cast<uintptr_t>(src) & 15) == 0;
  constexpr int GPR = W / VEC;  // 16-byte groups per row
  if (vec) {
    if constexpr (NT % GPR == 0 && R % (NT / GPR) == 0) {
      // Each thread's column group and first row follow from its index and the passes are
      // unrolled, so the 64-bit row offsets are computed once (ncu, split-tile scans: the generic
      // loop below spent ~50 index and address instructions per 16-byte copy, a fifth of the
      // reverse scan's instructions).
      constexpr int RPP = NT / GPR;  // rows per pass
      const int r0 = int(threadIdx.x) / GPR, c = (int(threadIdx.x) % GPR) * VEC;
      const T* s = src + r0 * stride + c;
      T* dd = dst + r0 * LD + c;
      const bool col_ok = c < nc;
#pragma unroll
      for (int p = 0; p < R / RPP; ++p) {
        const bool ok = col_ok && r0 + RPP * p < nr;
        cp_async16(dd + RPP * p * LD, ok ? s + RPP * p * stride : src, ok);  // src itself is always a valid address
      }
    } else {
      for (int idx = threadIdx.x; idx < R * GPR; idx += NT) {
        const int r = idx / GPR, c = (idx % GPR) * VEC;
        const bool ok = r < nr && c < nc;
        cp_async16(dst + r * LD + c, ok ? src + r * stride + c : src, ok);
      }
    }
  } else {
    for (int idx = threadIdx.x; idx < R * W; idx += NT) {
      const int r = idx / W, c = idx % W;
      dst[r * LD + c] = (r < nr && c < nc) ? src[r * stride + c] : st<T>(0.f);
    }
  }
}

// dst (R × W, contiguous, fp32 or BF16) = src (fp32, row stride LD).
template <class CK, int R, int W, int LD>
__device__ __forceinline__ void store_tile(CK* dst, const float* src) {
  for (int idx = threadIdx.x; idx < R * (W / 4); idx += kThreads) {
    const int r = idx / (W / 4), c = (idx % (W / 4)) * 4;
    const float4 x = *reinterpret_cast<const float4*>(src + r * LD + c);
    if constexpr (std::is_same<CK, float>::value) {
      *reinterpret_cast<float4*>(dst + r * W + c) = x;
    } else {
      *reinterpret_cast<uint2*>(dst + r * W + c) = make_uint2(pack_bf16(x.x, x.y), pack_bf16(x.z, x.w));
    }
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
template <class T, int KP, int VT, int P>
struct ScanLayout {
  static constexpr int LDK = KP + row_pad<T>(), LDS = VT + 8, LDV = VT + 8;
  static constexpr size_t S = 0;
  static constexpr size_t BUF = S + 4 * size_t(KP) * LDS;
  static constexpr size_t BK = up16(sizeof(T) * kC * LDK);  // offsets inside one input buffer (q at 0)
  static constexpr size_t BV = BK + up16(sizeof(T) * kC * LDK);
  static constexpr size_t BUF_BYTES = BV + up16(sizeof(T) * kC * LDV);
  static constexpr size_t bytes_with(int nbuf) { return BUF + nbuf * BUF_BYTES + 8 * kC * kLDA + 4 * kC * LDS + 16 * kC; }
  // VT = 32 runs two blocks per SM where one input buffer lets two fit (228 KiB per SM, 1 KiB
  // of it reserved per block): the walk is latency-bound, and a second block hides more of it
  // than the prefetch does.
  // (The BF16 modes only: the TF32 ones keep the layout their parity was measured with.)
  static constexpr int MINB = P >= kBF16 && VT == 32 && 2 * (bytes_with(1) + 1024) <= 233472 ? 2 : 1;
  static constexpr int NBUF = MINB == 1 && bytes_with(2) + 1024 <= kSmemLimit ? 2 : 1;
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
template <class T, int KP, int VB, int P>
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
  // v / dout blocks: two copies of each with BF16 activations, for the prefetch of the next value
  // block in kBF16 mode (its S / dS' copies fit in the fp32-sized SB / DSB regions).
  static constexpr int NVBUF = P == kBF16 && sizeof(T) == 2 ? 2 : 1;
  static constexpr size_t VTILE = up16(sizeof(T) * kC * LDV);
  static constexpr size_t VB_ = R_VALUES > R_TAIL ? R_VALUES : R_TAIL;  // v block (buffer j at + 2j·VTILE)
  static constexpr size_t DOB = VB_ + VTILE;                            // dout block
  static constexpr size_t VEC = DOB + (2 * NVBUF - 1) * VTILE;       // 9 vectors of 64
  static constexpr size_t PART = VEC + 4 * 9 * kC;                  // 3 × 2 × 64 row partials
  static constexpr size_t bytes = PART + 4 * 6 * kC;
};

template <class T, int KP, int P> constexpr int grad_vb() {
  return GradLayout<T, KP, 32, P>::bytes <= kSmemLimit ? 32 : 16;
}
// Whether every kernel of this (dtype, padded K) fits in shared memory (the smallest tiles).
template <class T, int KP> constexpr bool config_fits() {
  return GradLayout<T, KP, 16, kTF32>::bytes + 256 <= kSmemLimit && ScanLayout<T, KP, 64, kTF32>::bytes <= kSmemLimit &&
         PrepLayout<T, KP>::bytes <= kSmemLimit;
}

// ---- prep: γ and A = (I + L)^{-1} per chunk ------------------------------------------------------

template <class T, int KP, int P>
__global__ void __launch_bounds__(kThreads) gdn_prep_kernel(const T* __restrict__ k, const float* __restrict__ beta,
                                                            const float* __restrict__ g, GdnDims d,
                                                            float* __restrict__ A_out, float* __restrict__ gam_out,
                                                            bf16* __restrict__ au2_out, bf16* __restrict__ a2_out) {
  using Lay = PrepLayout<T, KP>;
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
  if (P >= kBF16)  // the blocked inverse writes only the lower blocks; those above the diagonal stay 0
    for (int idx = tid; idx < kC * Lay::LDA; idx += kThreads) Am[idx] = 0.f;
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
    const RowTile<T> Ka{ks, Lay::LDK};
    const ColTile<T> Kt{ks, Lay::LDK};
    warp_mma<P>(acc, Ka, Kt, m0, n0, 0, KP);
    for_acc(acc, m0, n0, [&](int r, int s, float& x) {
      Lm[r * Lay::LDL + s] = s < r ? bet[r] * x * expf(gam[r] - gam[s]) : 0.f;
    });
  }
  __syncthreads();
  if constexpr (P >= kBF16) {
    // A = (I + L)^{-1}, blocked: the four 16×16 diagonal blocks by forward substitution in
    // registers, then two levels of block merges on the tensor cores,
    //   [[A11, 0], [L21, A22]]^{-1} = [[A11^{-1}, 0], [−A22^{-1} L21 A11^{-1}, A22^{-1}]],
    // first for the 16-row pairs (0,1) and (2,3), then for the two 32-row halves. (A scalar
    // column-by-column solve of all 64 rows made this kernel bound by its ~8000 shared-memory
    // loads per chunk.) The products T = L21 A11^{-1} go to the unused upper triangle of L.
    // Three TF32 products per step keep A at fp32 accuracy whatever the activation dtype.
    if (tid < kC) {  // phase 1: block b, column s; 16 rows in registers (Am's zero-fill is above)
      const int base = 16 * (tid >> 4), s = tid & 15;
      float a[16];
#pragma unroll
      for (int r = 0; r < 16; ++r) {
        const float* Lr = Lm + (base + r) * Lay::LDL + base;
        float acc = r == s ? 1.f : 0.f;
#pragma unroll
        for (int j = 0; j < r; ++j) acc -= Lr[j] * a[j];
        a[r] = acc;
      }
#pragma unroll
      for (int r = 0; r < 16; ++r) Am[(base + r) * Lay::LDA + base + s] = a[r];
    }
    __syncthreads();
    {  // level 1: warps 0–3, pair q = warp / 2 (rows lo = 32q, hi = lo + 16), 8 columns each
      const int lo = 32 * (warp >> 1), hi = lo + 16, n0 = 8 * (warp & 1);
      if (warp < 4) {
        auto L21 = [&](int r, int k) { return Lm[(hi + r) * Lay::LDL + lo + k]; };
        auto A11 = [&](int k, int n) { return Am[(lo + k) * Lay::LDA + lo + n]; };
        float acc[1][4] = {};
        warp_mma<kTF32x3>(acc, L21, A11, 0, n0, 0, 16);
        for_acc(acc, 0, n0, [&](int r, int n, float& x) { Lm[(lo + r) * Lay::LDL + hi + n] = x; });
      }
      __syncthreads();
      if (warp < 4) {
        auto A22 = [&](int r, int k) { return Am[(hi + r) * Lay::LDA + hi + k]; };
        auto Tb = [&](int k, int n) { return Lm[(lo + k) * Lay::LDL + hi + n]; };
        float acc[1][4] = {};
        warp_mma<kTF32x3>(acc, A22, Tb, 0, n0, 0, 16);
        for_acc(acc, 0, n0, [&](int r, int n, float& x) { Am[(hi + r) * Lay::LDA + lo + n] = -x; });
      }
      __syncthreads();
    }
    {  // level 2: rows 32..63 against columns 0..31; warp = one 16×8 tile of the 32×32 block
      const int m0 = 16 * (warp & 1), n0 = 8 * (warp >> 1);
      {
        auto L21 = [&](int r, int k) { return Lm[(32 + r) * Lay::LDL + k]; };
        auto A11 = [&](int k, int n) { return Am[k * Lay::LDA + n]; };
        float acc[1][4] = {};
        warp_mma<kTF32x3>(acc, L21, A11, m0, n0, 0, 32);
        for_acc(acc, m0, n0, [&](int r, int n, float& x) { Lm[r * Lay::LDL + 32 + n] = x; });
      }
      __syncthreads();
      {
        auto A22 = [&](int r, int k) { return Am[(32 + r) * Lay::LDA + 32 + k]; };
        auto Tb = [&](int k, int n) { return Lm[k * Lay::LDL + 32 + n]; };
        float acc[1][4] = {};
        warp_mma<kTF32x3>(acc, A22, Tb, m0, n0, 0, 32);
        for_acc(acc, m0, n0, [&](int r, int n, float& x) { Am[(32 + r) * Lay::LDA + n] = -x; });
      }
    }
    __syncthreads();
  } else {
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
  }
  if (A_out) {  // the accessor kernels read A in fp32 (the split-tile ones take the planes below)
    float* Ao = A_out + (bhv * d.NC + c) * (kC * kC);
    for (int idx = tid; idx < kC * kC; idx += kThreads) Ao[idx] = Am[(idx / kC) * Lay::LDA + idx % kC];
  }
  if (tid < kC) gam_out[(bhv * d.NC + c) * kC + tid] = gam[tid];
  if (au2_out) {  // Au = A diag(β) and A split into hi and lo BF16 planes, for the split-tile kernels
    bf16* dst = au2_out + (bhv * d.NC + c) * (planes<P>() * kC * kC);
    bf16* dsa = a2_out ? a2_out + (bhv * d.NC + c) * (planes<P>() * kC * kC) : nullptr;
    for (int idx = tid; idx < kC * kC / 2; idx += kThreads) {
      const int r = idx / (kC / 2), s = 2 * (idx % (kC / 2));
      put_split<P>(dst, kC, kC * kC, r, s, Am[r * Lay::LDA + s] * bet[s], Am[r * Lay::LDA + s + 1] * bet[s + 1]);
      if (a2_out) put_split<P>(dsa, kC, kC * kC, r, s, Am[r * Lay::LDA + s], Am[r * Lay::LDA + s + 1]);
    }
  }
}

// ---- scan: the sequential walk over chunks -------------------------------------------------------

struct ScanArgs {
  const void* q;
  const void* k;
  const void* v;
  const void* dout;
  const float* beta;
  const float* A;
  const bf16* Au2;  // split-tile scan: A diag(β) as BF16 planes per chunk (planes<P>())
  const float* gam;
  const float* h0;   // null: zero
  const float* dhT;  // null: zero
  void* o;           // forward role outputs, each may be null
  float* hT;
  void* ckS;  // ckpt_t<P>
  void* dv;  // reverse role outputs
  float* dh0;
  void* ckD;
  GdnDims d;
  int tiles;       // value tiles of VT columns
  int first_role;  // role = first_role + blockIdx.x / tiles: 0 forward, 1 reverse
};

// Chunk inputs are fetched ahead of use. q, k and the value tile (v or dout) of the next chunk
// are issued at the top of a chunk into the other input buffer (NBUF = 2; with one buffer, the
// current chunk's are issued there instead); A of the next chunk as soon as the current one's A
// is last read; the gates into registers a chunk ahead. Everything of chunk c has landed after
// the cp.async wait at the top of chunk c.
template <class T, int KP, int VT, int P>
__device__ __forceinline__ void scan_issue_inputs(const ScanArgs& a, int c, int buf, int64_t b, int64_t hv,
                                                  int64_t col0, int ncol, bool want_q, const T* src,
                                                  unsigned char* smem) {
  using Lay = ScanLayout<T, KP, VT, P>;
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
template <class T, int KP, int VT, int P>
__device__ __forceinline__ void scan_issue_A(const ScanArgs& a, int c, int64_t bhv, unsigned char* smem) {
  using Lay = ScanLayout<T, KP, VT, P>;
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
template <class T, int KP, int VT, int P>
__device__ __forceinline__ void scan_forward(const ScanArgs& a, int tile, unsigned char* smem) {
  using Lay = ScanLayout<T, KP, VT, P>;
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

  scan_issue_inputs<T, KP, VT, P>(a, 0, 0, b, hv, col0, ncol, want_o, vsrc, smem);
  scan_issue_A<T, KP, VT, P>(a, 0, bhv, smem);
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
    const RowTile<T> Ka{ks, LDK}, Qa{qs, LDK};
    const ColTile<T> Kt{ks, LDK};
    __syncthreads();  // the previous chunk is done with every buffer
    if (NB == 1 && c > 0) {
      scan_issue_inputs<T, KP, VT, P>(a, c, 0, b, hv, col0, ncol, want_o, vsrc, smem);
      cp_async_commit();
    }
    if (NB == 2 && next) {
      scan_issue_inputs<T, KP, VT, P>(a, c + 1, buf ^ 1, b, hv, col0, ncol, want_o, vsrc, smem);
      cp_async_commit();
    }
    put_gates(vec, gt);
    if (next) gt = fetch_gates(a, c + 1, b, hv);
    if (a.ckS)
      store_tile<ckpt_t<P>, KP, VT, LDS>(
          static_cast<ckpt_t<P>*>(a.ckS) + ((bhv * d.NC + c) * a.tiles + tile) * (KP * VT), S);
    if (NB == 2 && next) cp_async_wait<1>();  // all but the next chunk's inputs
    else cp_async_wait<0>();
    __syncthreads();
    // X = V − diag(e) K S;  P = diag(e) Q S (kept in registers for O);  M = tril(Q Kᵀ) ⊙ Γ.
    float accO[NS][4] = {};
    {
      float accK[NS][4] = {};
      if (want_o) warp_mma_2a<P>(accK, accO, Ka, Qa, Sb, m0, n0, 0, KP);
      else warp_mma<P>(accK, Ka, Sb, m0, n0, 0, KP);
      for_acc(accK, m0, n0, [&](int r, int cc, float& x) { XD[r * LDS + cc] = ld(vs[r * LDV + cc]) - e[r] * x; });
    }
    if (want_o) {
      for_acc(accO, m0, n0, [&](int r, int, float& x) { x *= e[r]; });
      if (m_tile) {
        float accM[4][4] = {};
        warp_mma<P>(accM, Qa, Kt, m0, nM, 0, KP);
        for_acc(accM, m0, nM, [&](int r, int s, float& x) {
          Mm[r * kLDA + s] = s <= r ? x * expf(gam[r] - gam[s]) : 0.f;
        });
      }
    }
    __syncthreads();
    {  // Δ = Au X (Au is lower triangular: columns s < m0 + 16 only)
      float accD[NS][4] = {};
      warp_mma<P>(accD, Aua, XDb, m0, n0, 0, m0 + 16);
      __syncthreads();  // every warp has read X and A
      if (next) {
        scan_issue_A<T, KP, VT, P>(a, c + 1, bhv, smem);
        cp_async_commit();
      }
      for_acc(accD, m0, n0, [&](int r, int cc, float& x) { XD[r * LDS + cc] = x; });
    }
    __syncthreads();
    if (want_o) {  // O = P + M Δ
      warp_mma<P>(accO, Ma, XDb, m0, n0, 0, m0 + 16);
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
      warp_mma<P>(acc, KglT, XDb, mS, nS, 0, kC);
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
template <class T, int KP, int VT, int P>
__device__ __forceinline__ void scan_reverse(const ScanArgs& a, int tile, unsigned char* smem) {
  using Lay = ScanLayout<T, KP, VT, P>;
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

  scan_issue_inputs<T, KP, VT, P>(a, NC - 1, 0, b, hv, col0, ncol, true, dosrc, smem);
  scan_issue_A<T, KP, VT, P>(a, NC - 1, bhv, smem);
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
  auto MtA = [&](int r, int s) { return Mm[s * kLDA + r]; };
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
    const RowTile<T> Ka{ks, LDK}, Qa{qs, LDK}, dOb{dos, LDV};  // dOb: a B operand (k = row)
    const ColTile<T> Kt{ks, LDK};
    __syncthreads();
    if (NB == 1 && it > 0) {
      scan_issue_inputs<T, KP, VT, P>(a, c, 0, b, hv, col0, ncol, true, dosrc, smem);
      cp_async_commit();
    }
    if (NB == 2 && next) {
      scan_issue_inputs<T, KP, VT, P>(a, c - 1, buf ^ 1, b, hv, col0, ncol, true, dosrc, smem);
      cp_async_commit();
    }
    put_gates(vec, gt);
    if (next) gt = fetch_gates(a, c - 1, b, hv);
    if (a.ckD)
      store_tile<ckpt_t<P>, KP, VT, LDS>(
          static_cast<ckpt_t<P>*>(a.ckD) + ((bhv * d.NC + c) * a.tiles + tile) * (KP * VT), dS);
    if (NB == 2 && next) cp_async_wait<1>();
    else cp_async_wait<0>();
    __syncthreads();
    float accG[NS][4] = {};  // dΔ
    if (m_tile) {
      float accM[4][4] = {};
      warp_mma<P>(accM, Qa, Kt, m0, nM, 0, KP);
      for_acc(accM, m0, nM, [&](int r, int s, float& x) {
        Mm[r * kLDA + s] = s <= r ? x * expf(gam[r] - gam[s]) : 0.f;
      });
    }
    warp_mma<P>(accG, Ka, dSb, m0, n0, 0, KP);
    for_acc(accG, m0, n0, [&](int r, int, float& x) { x *= gl[r]; });
    __syncthreads();
    warp_mma<P>(accG, MtA, dOb, m0, n0, m0, kC);  // Mᵀ is upper triangular: rows s >= m0
    for_acc(accG, m0, n0, [&](int r, int cc, float& x) { XD[r * LDS + cc] = x; });
    __syncthreads();
    {
      float accX[NS][4] = {};  // dX = Auᵀ dΔ
      warp_mma<P>(accX, AutA, XDb, m0, n0, m0, kC);
      __syncthreads();  // every warp has read dΔ and A
      if (next) {
        scan_issue_A<T, KP, VT, P>(a, c - 1, bhv, smem);
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
      warp_mma<P>(acc, QeT, dOb, mS, nS, 0, kC);
      warp_mma<P>(acc, KeTn, XDb, mS, nS, 0, kC);
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

template <class T, int KP, int VT, int P>
__global__ void __launch_bounds__(kThreads, ScanLayout<T, KP, VT, P>::MINB) gdn_scan_kernel(ScanArgs a) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int role = a.first_role + int(blockIdx.x) / a.tiles, tile = int(blockIdx.x) % a.tiles;
  if (role == 0) scan_forward<T, KP, VT, P>(a, tile, smem);
  else scan_reverse<T, KP, VT, P>(a, tile, smem);
}

// ---- scan, kBF16x2: split tiles and the state in registers ------------------------------------
//
// The walk of scan_forward / scan_reverse for the default mode, arranged so that no product
// reads an fp32 operand element by element (per element: a shared load, a split into hi + lo,
// a pack, for every use; that made the walk bound by instruction issue, not by the tensor
// cores). Every fp32 operand is written ONCE as a split tile (hi and lo BF16 planes) by the
// warp that computed it, with its row scaling folded in, and every product reads its operands by
// ldmatrix:
//   Au = A diag(β) comes split from prep;  X, M, Δ, Γl·Δ (forward) and e·dO, M, dΔ, −e·dX
//   (reverse) are written split as they are produced;  Kᵀ diag(Γl) Δ becomes Kᵀ (Γl Δ), so the
//   raw K tile serves (one mma less per step).
// Each warp keeps its tiles of the fp32 state (S or dS) in registers for the whole walk and
// writes only their split copy to shared memory, for the next chunk's products. Same values
// and the same split points as the accessor version, so the same accuracy. Three barriers per
// chunk forward, four in reverse (gates double-buffered, A fetched during the state update).
//
// Layout: two planes per split region in every mode, every input double-buffered, [q | k | v] per
// buffer: ~214 KB at VT = 64, one block per SM. (A lean layout of kBF16 with one plane and one
// copy of each input ran two blocks an SM, 16-23 % faster on grids larger than the GPU
// (bench/gpu/gdn_lean_scan_s7_h100.txt); the warp-column scan replaced it as kBF16's walk and it
// was removed.)
template <int KP, int VT>
struct ScanX2Layout {
  static constexpr int kKP = KP, kVT = VT;
  static constexpr int LDK = KP + 8, LDV = VT + 8, LDC = kC + 8;
  static constexpr int SPL = KP * LDV;  // elements per plane: the state,
  static constexpr int TPL = kC * LDV;  // a 64 × VT tile,
  static constexpr int CPL = kC * LDC;  // a 64 × 64 tile
  static constexpr size_t S = 0;
  static constexpr size_t BUF = S + 4 * size_t(SPL);
  static constexpr size_t QB = up16(2 * kC * LDK), VB = up16(2 * kC * LDV);  // one q (or k) tile, one value tile
  static constexpr size_t BUF_BYTES = 2 * QB + VB;  // [q | k | v]
  __host__ __device__ static constexpr size_t q_at(int buf) { return BUF + buf * BUF_BYTES; }
  __host__ __device__ static constexpr size_t k_at(int buf) { return q_at(buf) + QB; }
  __host__ __device__ static constexpr size_t v_at(int buf) { return q_at(buf) + 2 * QB; }
  static constexpr size_t AU = BUF + 2 * BUF_BYTES;
  static constexpr size_t M = AU + 4 * size_t(CPL);
  static constexpr size_t T1 = M + 4 * size_t(CPL);
  static constexpr size_t T2 = T1 + 4 * size_t(TPL);
  static constexpr size_t T3 = T2 + 4 * size_t(TPL);
  static constexpr size_t VEC = T3 + 4 * size_t(TPL);  // two gate buffers [β | γ | e | Γl]
  static constexpr size_t bytes = VEC + 2 * 4 * 4 * kC;
};
static_assert(ScanX2Layout<128, 32>::bytes == 169984 && ScanX2Layout<128, 64>::bytes == 219136,
              "the default layout is the one the VT 64 / kBF16x2 timings were measured with");

// f(row, col, x0, x1) for each pair of accumulator elements (col, col + 1) this lane holds.
// dst[0], dst[1] = x0, x1 as BF16 where column cc, cc + 1 < ncol (left = ncol − cc); one 4-byte
// store when both are in and pairs says dst is 4-byte aligned.
__device__ __forceinline__ void store_pair(bf16* dst, float x0, float x1, int left, bool pairs) {
  if (pairs && left >= 2) {
    *reinterpret_cast<uint32_t*>(dst) = pack_bf16(x0, x1);
  } else {
    if (left >= 1) dst[0] = st<bf16>(x0);
    if (left >= 2) dst[1] = st<bf16>(x1);
  }
}
template <int NS, class F>
__device__ __forceinline__ void for_pairs(float (&acc)[NS][4], int m0, int n0, const F& f) {
  const int g = lane_g(), t = lane_t();
#pragma unroll
  for (int j = 0; j < NS; ++j) {
    f(m0 + g, n0 + 8 * j + 2 * t, acc[j][0], acc[j][1]);
    f(m0 + g + 8, n0 + 8 * j + 2 * t, acc[j][2], acc[j][3]);
  }
}

// hi, lo = the split of s · x for 8 BF16 values x (one 16-byte word), the same values as put_split
// of each pair, stored as 16-byte words.
template <int P>
__device__ __forceinline__ void scale_split8(float s, const uint4& x, uint4* hi, uint4* lo) {
  const uint32_t in[4] = {x.x, x.y, x.z, x.w};
  uint32_t h[4], l[4];
#pragma unroll
  for (int w = 0; w < 4; ++w)
    split_bf16<P == kBF16x2>(s * __uint_as_float(in[w] << 16), s * __uint_as_float(in[w] & 0xffff0000u), h[w], l[w]);
  *hi = make_uint4(h[0], h[1], h[2], h[3]);
  if constexpr (P == kBF16x2) *lo = make_uint4(l[0], l[1], l[2], l[3]);
}

template <class Lay>
__device__ __forceinline__ void scan_x2_issue_inputs(const ScanArgs& a, int c, int buf, int64_t b, int64_t hv,
                                                     int64_t col0, int ncol, bool want_q, const bf16* src,
                                                     unsigned char* smem) {
  constexpr int KP = Lay::kKP, VT = Lay::kVT;
  const GdnDims& d = a.d;
  const int64_t h = hv / d.G, t0 = int64_t(c) * kC;
  const int n = int(min64(kC, d.L - t0));
  const int64_t qk_off = ((b * d.L + t0) * d.H + h) * d.K;
  if (want_q)
    load_tile_async<kC, KP, Lay::LDK>(reinterpret_cast<bf16*>(smem + Lay::q_at(buf)),
                                      static_cast<const bf16*>(a.q) + qk_off, d.H * d.K, n, int(d.K));
  load_tile_async<kC, KP, Lay::LDK>(reinterpret_cast<bf16*>(smem + Lay::k_at(buf)),
                                      static_cast<const bf16*>(a.k) + qk_off, d.H * d.K, n, int(d.K));
  load_tile_async<kC, VT, Lay::LDV>(reinterpret_cast<bf16*>(smem + Lay::v_at(buf)),
                                      src + ((b * d.L + t0) * d.HV + hv) * d.V + col0, d.HV * d.V, n, ncol);
}
// Au of chunk c (its BF16 planes from prep, 64 × 64 each: hi and lo, or hi alone in kBF16) as one tile.
template <class Lay, int P>
__device__ __forceinline__ void scan_x2_issue_Au(const ScanArgs& a, int c, int64_t bhv, unsigned char* smem) {
  constexpr int R = planes<P>() * kC;  // the planes as one tile of R rows
  load_tile_async<R, kC, Lay::LDC>(reinterpret_cast<bf16*>(smem + Lay::AU), a.Au2 + (bhv * a.d.NC + c) * (R * kC), kC,
                                   R, kC);
}

// Checkpoint (S or dS', [2][KP][VT] BF16 planes, as gdn_grad_x2_kernel reads them) = the split copy
// of the state in shared memory, which the previous chunk wrote and the barrier at the top of this
// one published (it is rewritten only after the chunk's last barrier). Every thread copies 16-byte
// words: coalesced stores, and no second split of the register tiles (the walk used to split them
// again and store 4-byte pairs to both planes).
template <class Lay, int P>
__device__ __forceinline__ void scan_x2_store_ckpt(bf16* dst, const bf16* Sp) {
  constexpr int KP = Lay::kKP, VT = Lay::kVT;
  constexpr int GPR = VT / 8, WORDS = planes<P>() * KP * GPR;  // 16-byte words per row, in all
  static_assert(WORDS % kThreads == 0, "checkpoint copy mapping");
#pragma unroll
  for (int it = 0; it < WORDS / kThreads; ++it) {
    const int w = int(threadIdx.x) + kThreads * it, row = w / GPR, c8 = 8 * (w % GPR);  // row = plane · KP + i
    const uint4 x = *reinterpret_cast<const uint4*>(Sp + (row / KP) * Lay::SPL + (row % KP) * Lay::LDV + c8);
    *reinterpret_cast<uint4*>(dst + row * VT + c8) = x;
  }
}

// Forward walk, value columns [col0, col0 + VT).
//
// Input schedule: all of chunk c + 1's tiles are issued at the top of chunk c into the other
// buffer.
template <int KP, int VT, int P>
__device__ __forceinline__ void scan_x2_forward(const ScanArgs& a, int tile, unsigned char* smem) {
  using Lay = ScanX2Layout<KP, VT>;
  constexpr int NS = VT / 16, LDK = Lay::LDK, LDV = Lay::LDV, LDC = Lay::LDC;
  constexpr int NT = KP / 64;  // state tiles of 16 × VT/2 per warp
  bf16* Sp = reinterpret_cast<bf16*>(smem + Lay::S);
  bf16* Mp = reinterpret_cast<bf16*>(smem + Lay::M);
  bf16* Xp = reinterpret_cast<bf16*>(smem + Lay::T1);
  bf16* Dp = reinterpret_cast<bf16*>(smem + Lay::T2);
  bf16* Gp = reinterpret_cast<bf16*>(smem + Lay::T3);
  float* vec0 = reinterpret_cast<float*>(smem + Lay::VEC);
  const SplitTile<false> Sb{Sp, LDV, Lay::SPL}, Xb{Xp, LDV, Lay::TPL}, Db{Dp, LDV, Lay::TPL}, Gb{Gp, LDV, Lay::TPL};
  const SplitTile<false> Aua{reinterpret_cast<const bf16*>(smem + Lay::AU), LDC, Lay::CPL}, Ma{Mp, LDC, Lay::CPL};
  const GdnDims& d = a.d;
  const int64_t hv = blockIdx.y, b = blockIdx.z, bhv = b * d.HV + hv;
  const int tid = threadIdx.x, warp = tid >> 5, NC = int(d.NC);
  const int64_t col0 = int64_t(tile) * VT;
  const int ncol = int(min64(VT, d.V - col0));
  const bf16* vsrc = static_cast<const bf16*>(a.v);
  bf16* o = static_cast<bf16*>(a.o);
  const bool want_o = o != nullptr;
  const bool pairs = (d.V & 1) == 0;  // (col0 + cc) is even: 4-byte stores of column pairs
  const int m0 = 16 * (warp & 3), n0 = (warp >> 2) * (VT / 2);
  // The six 16 × 32 tiles of M that O reads (those strictly above the diagonal never are), one to
  // each warp with rows m0 < 48, whose Δ = Au X (k < m0 + 16) is the shorter: tile
  // ti = 2 (warp % 4) + warp / 4 is rows 16 ti (ti < 4) or 32 + 16 (ti − 4), columns 0 or 32.
  const int ti = 2 * (warp & 3) + (warp >> 2);
  const bool m_tile = (warp & 3) != 3;
  const int mM = ti < 4 ? 16 * ti : 32 + 16 * (ti - 4), nMM = ti < 4 ? 0 : 32;

  scan_x2_issue_inputs<Lay>(a, 0, 0, b, hv, col0, ncol, want_o, vsrc, smem);
  scan_x2_issue_Au<Lay, P>(a, 0, bhv, smem);
  cp_async_commit();
  put_gates(vec0, fetch_gates(a, 0, b, hv));
  Gates gt;
  if (NC > 1) gt = fetch_gates(a, 1, b, hv);
  float St[NT][NS][4];
#pragma unroll
  for (int u = 0; u < NT; ++u) {
    const int tt = warp + kWarps * u, mS = 16 * (tt >> 1), nS = (tt & 1) * (VT / 2);
    for_acc(St[u], mS, nS, [&](int i, int cc, float& x) {
      x = (a.h0 && i < d.K && cc < ncol) ? a.h0[(bhv * d.K + i) * d.V + col0 + cc] : 0.f;
    });
    for_pairs(St[u], mS, nS, [&](int i, int cc, float x0, float x1) { put_split<P>(Sp, LDV, Lay::SPL, i, cc, x0, x1); });
  }

  for (int c = 0; c < NC; ++c) {
    const int64_t t0 = int64_t(c) * kC;
    const int n = int(min64(kC, d.L - t0));
    const int buf = c & 1;
    const bool next = c + 1 < NC;
    const bf16* qs = reinterpret_cast<const bf16*>(smem + Lay::q_at(buf));
    const bf16* ks = reinterpret_cast<const bf16*>(smem + Lay::k_at(buf));
    const bf16* vs = reinterpret_cast<const bf16*>(smem + Lay::v_at(buf));
    const float* vec = vec0 + buf * 4 * kC;
    const float* gam = vec + kC;
    const float* e = vec + 2 * kC;
    const float* gl = vec + 3 * kC;
    const RowTile<bf16> Ka{ks, LDK}, Qa{qs, LDK};
    const ColTile<bf16> Kt{ks, LDK};  // Kᵀ: the B operand of Q Kᵀ and the A operand of Kᵀ (Γl Δ)
    cp_async_wait<0>();
    __syncthreads();  // chunk c's inputs and gates are in; chunk c − 1 is done with every buffer
    if (next) {
      scan_x2_issue_inputs<Lay>(a, c + 1, buf ^ 1, b, hv, col0, ncol, want_o, vsrc, smem);
      cp_async_commit();
      put_gates(vec0 + (buf ^ 1) * 4 * kC, gt);
      if (c + 2 < NC) gt = fetch_gates(a, c + 2, b, hv);
    }
    if (a.ckS)
      scan_x2_store_ckpt<Lay, P>(static_cast<bf16*>(a.ckS) + ((bhv * d.NC + c) * a.tiles + tile) * (planes<P>() * KP * VT), Sp);
    // X = V − diag(e) K S (split);  P = diag(e) Q S kept for O;  M = tril(Q Kᵀ) ⊙ Γ (split).
    float accO[NS][4] = {};
    {
      float accK[NS][4] = {};
      if (want_o) warp_mma_2a<P>(accK, accO, Ka, Qa, Sb, m0, n0, 0, KP);
      else warp_mma<P>(accK, Ka, Sb, m0, n0, 0, KP);
      for_pairs(accK, m0, n0, [&](int r, int cc, float x0, float x1) {
        put_split<P>(Xp, LDV, Lay::TPL, r, cc, ld(vs[r * LDV + cc]) - e[r] * x0, ld(vs[r * LDV + cc + 1]) - e[r] * x1);
      });
    }
    if (want_o) for_acc(accO, m0, n0, [&](int r, int, float& x) { x *= e[r]; });
    __syncthreads();
    {  // Δ = Au X (Au lower triangular: columns s < m0 + 16 only); Δ and Γl Δ split
      float accD[NS][4] = {};
      warp_mma<P>(accD, Aua, Xb, m0, n0, 0, m0 + 16);
      for_pairs(accD, m0, n0, [&](int r, int cc, float x0, float x1) {
        put_split<P>(Dp, LDV, Lay::TPL, r, cc, x0, x1);
        put_split<P>(Gp, LDV, Lay::TPL, r, cc, gl[r] * x0, gl[r] * x1);
      });
    }
    if (want_o && m_tile) {  // M = tril(Q Kᵀ) ⊙ Γ here, not with K S: Δ's triangle leaves these warps time
      float accM[4][4] = {};
      warp_mma<P>(accM, Qa, Kt, mM, nMM, 0, KP);
      for_pairs(accM, mM, nMM, [&](int r, int s, float x0, float x1) {
        put_split<P>(Mp, LDC, Lay::CPL, r, s, s <= r ? x0 * expf(gam[r] - gam[s]) : 0.f,
                  s + 1 <= r ? x1 * expf(gam[r] - gam[s + 1]) : 0.f);
      });
    }
    __syncthreads();
    if (next) {  // Au is read only above
      scan_x2_issue_Au<Lay, P>(a, c + 1, bhv, smem);
      cp_async_commit();
    }
    if (want_o) {  // O = P + M Δ
      warp_mma<P>(accO, Ma, Db, m0, n0, 0, m0 + 16);
      for_pairs(accO, m0, n0, [&](int r, int cc, float x0, float x1) {
        if (r < n) store_pair(o + ((b * d.L + t0 + r) * d.HV + hv) * d.V + col0 + cc, x0, x1, ncol - cc, pairs);
      });
    }
    // S ← e_{C−1} S + Kᵀ (Γl Δ), in registers; then its split copy for the next chunk's products
    // (the copy is read only before the first barrier of a chunk).
    const float el = e[kC - 1];
#pragma unroll
    for (int u = 0; u < NT; ++u) {
      const int tt = warp + kWarps * u, mS = 16 * (tt >> 1), nS = (tt & 1) * (VT / 2);
      for_acc(St[u], mS, nS, [&](int, int, float& x) { x *= el; });
      warp_mma<P>(St[u], Kt, Gb, mS, nS, 0, kC);
      for_pairs(St[u], mS, nS, [&](int i, int cc, float x0, float x1) { put_split<P>(Sp, LDV, Lay::SPL, i, cc, x0, x1); });
    }
  }
  if (a.hT) {
#pragma unroll
    for (int u = 0; u < NT; ++u) {
      const int tt = warp + kWarps * u, mS = 16 * (tt >> 1), nS = (tt & 1) * (VT / 2);
      for_acc(St[u], mS, nS, [&](int i, int cc, float& x) {
        if (i < d.K && cc < ncol) a.hT[(bhv * d.K + i) * d.V + col0 + cc] = x;
      });
    }
  }
}

// Reverse walk, value columns [col0, col0 + VT): dS ← dhT; per chunk (last first)
// dΔ = Γl K dS + Mᵀ dO, dX = Auᵀ dΔ (= dv), dS ← e_{C−1} dS + Qᵀ (e dO) + Kᵀ (−e dX).
// Inputs as in the forward walk.
template <int KP, int VT, int P>
__device__ __forceinline__ void scan_x2_reverse(const ScanArgs& a, int tile, unsigned char* smem) {
  using Lay = ScanX2Layout<KP, VT>;
  constexpr int NS = VT / 16, LDK = Lay::LDK, LDV = Lay::LDV, LDC = Lay::LDC;
  constexpr int NT = KP / 64;
  bf16* Sp = reinterpret_cast<bf16*>(smem + Lay::S);
  bf16* Mp = reinterpret_cast<bf16*>(smem + Lay::M);
  bf16* Ep = reinterpret_cast<bf16*>(smem + Lay::T1);  // e dO
  bf16* Gp = reinterpret_cast<bf16*>(smem + Lay::T2);  // dΔ
  bf16* Xp = reinterpret_cast<bf16*>(smem + Lay::T3);  // −e dX
  float* vec0 = reinterpret_cast<float*>(smem + Lay::VEC);
  const SplitTile<false> dSb{Sp, LDV, Lay::SPL}, Eb{Ep, LDV, Lay::TPL}, Gb{Gp, LDV, Lay::TPL}, Xb{Xp, LDV, Lay::TPL};
  const SplitTile<true> AutA{reinterpret_cast<const bf16*>(smem + Lay::AU), LDC, Lay::CPL}, MtA{Mp, LDC, Lay::CPL};
  const GdnDims& d = a.d;
  const int64_t hv = blockIdx.y, b = blockIdx.z, bhv = b * d.HV + hv;
  const int tid = threadIdx.x, warp = tid >> 5, NC = int(d.NC);
  const int64_t col0 = int64_t(tile) * VT;
  const int ncol = int(min64(VT, d.V - col0));
  const bf16* dosrc = static_cast<const bf16*>(a.dout);
  bf16* dv = static_cast<bf16*>(a.dv);
  const bool pairs = (d.V & 1) == 0;
  const int m0 = 16 * (warp & 3), n0 = (warp >> 2) * (VT / 2), nM = 32 * (warp >> 2);
  const bool m_tile = (warp >> 2) == 0 || (warp & 3) >= 2;  // Mᵀ is read at rows >= m0 of M only

  scan_x2_issue_inputs<Lay>(a, NC - 1, 0, b, hv, col0, ncol, true, dosrc, smem);
  scan_x2_issue_Au<Lay, P>(a, NC - 1, bhv, smem);
  cp_async_commit();
  put_gates(vec0, fetch_gates(a, NC - 1, b, hv));
  Gates gt;
  if (NC > 1) gt = fetch_gates(a, NC - 2, b, hv);
  float St[NT][NS][4];
#pragma unroll
  for (int u = 0; u < NT; ++u) {
    const int tt = warp + kWarps * u, mS = 16 * (tt >> 1), nS = (tt & 1) * (VT / 2);
    for_acc(St[u], mS, nS, [&](int i, int cc, float& x) {
      x = (a.dhT && i < d.K && cc < ncol) ? a.dhT[(bhv * d.K + i) * d.V + col0 + cc] : 0.f;
    });
    for_pairs(St[u], mS, nS, [&](int i, int cc, float x0, float x1) { put_split<P>(Sp, LDV, Lay::SPL, i, cc, x0, x1); });
  }

  for (int it = 0; it < NC; ++it) {
    const int c = NC - 1 - it;
    const int64_t t0 = int64_t(c) * kC;
    const int n = int(min64(kC, d.L - t0));
    const int buf = it & 1;
    const bool next = it + 1 < NC;  // the next chunk is c − 1
    const bf16* qs = reinterpret_cast<const bf16*>(smem + Lay::q_at(buf));
    const bf16* ks = reinterpret_cast<const bf16*>(smem + Lay::k_at(buf));
    const bf16* dos = reinterpret_cast<const bf16*>(smem + Lay::v_at(buf));
    const float* vec = vec0 + buf * 4 * kC;
    const float* gam = vec + kC;
    const float* e = vec + 2 * kC;
    const float* gl = vec + 3 * kC;
    const RowTile<bf16> Ka{ks, LDK}, Qa{qs, LDK}, dOb{dos, LDV};  // dOb: a B operand (k = row)
    const ColTile<bf16> Kt{ks, LDK}, Qt{qs, LDK};                 // Kᵀ, Qᵀ (B of Q Kᵀ; A of the dS update)
    cp_async_wait<0>();
    __syncthreads();
    if (next) {
      scan_x2_issue_inputs<Lay>(a, c - 1, buf ^ 1, b, hv, col0, ncol, true, dosrc, smem);
      cp_async_commit();
      put_gates(vec0 + (buf ^ 1) * 4 * kC, gt);
      if (it + 2 < NC) gt = fetch_gates(a, c - 2, b, hv);
    }
    if (a.ckD)
      scan_x2_store_ckpt<Lay, P>(static_cast<bf16*>(a.ckD) + ((bhv * d.NC + c) * a.tiles + tile) * (planes<P>() * KP * VT), Sp);
    for (int idx = tid; idx < kC * (VT / 8); idx += kThreads) {  // e dO, split, 8 columns (16 bytes) at a time
      const int o = (idx / (VT / 8)) * LDV + 8 * (idx % (VT / 8));
      scale_split8<P>(e[idx / (VT / 8)], *reinterpret_cast<const uint4*>(dos + o), reinterpret_cast<uint4*>(Ep + o),
                   reinterpret_cast<uint4*>(Ep + Lay::TPL + o));
    }
    if (m_tile) {
      float accM[4][4] = {};
      warp_mma<P>(accM, Qa, Kt, m0, nM, 0, KP);
      for_pairs(accM, m0, nM, [&](int r, int s, float x0, float x1) {
        put_split<P>(Mp, LDC, Lay::CPL, r, s, s <= r ? x0 * expf(gam[r] - gam[s]) : 0.f,
                  s + 1 <= r ? x1 * expf(gam[r] - gam[s + 1]) : 0.f);
      });
    }
    float accG[NS][4] = {};  // dΔ
    warp_mma<P>(accG, Ka, dSb, m0, n0, 0, KP);
    for_acc(accG, m0, n0, [&](int r, int, float& x) { x *= gl[r]; });
    __syncthreads();
    warp_mma<P>(accG, MtA, dOb, m0, n0, m0, kC);  // Mᵀ is upper triangular: rows s >= m0
    for_pairs(accG, m0, n0, [&](int r, int cc, float x0, float x1) { put_split<P>(Gp, LDV, Lay::TPL, r, cc, x0, x1); });
    const float el = e[kC - 1];
#pragma unroll
    for (int u = 0; u < NT; ++u) {  // dS ← e_{C−1} dS + Qᵀ (e dO), in registers
      const int tt = warp + kWarps * u, mS = 16 * (tt >> 1), nS = (tt & 1) * (VT / 2);
      for_acc(St[u], mS, nS, [&](int, int, float& x) { x *= el; });
      warp_mma<P>(St[u], Qt, Eb, mS, nS, 0, kC);
    }
    __syncthreads();
    {
      float accX[NS][4] = {};  // dX = Auᵀ dΔ
      warp_mma<P>(accX, AutA, Gb, m0, n0, m0, kC);
      for_pairs(accX, m0, n0, [&](int r, int cc, float x0, float x1) {
        put_split<P>(Xp, LDV, Lay::TPL, r, cc, -e[r] * x0, -e[r] * x1);
        if (r < n) store_pair(dv + ((b * d.L + t0 + r) * d.HV + hv) * d.V + col0 + cc, x0, x1, ncol - cc, pairs);
      });
    }
    __syncthreads();
    if (next) {  // Au is read only above
      scan_x2_issue_Au<Lay, P>(a, c - 1, bhv, smem);
      cp_async_commit();
    }
#pragma unroll
    for (int u = 0; u < NT; ++u) {  // dS += Kᵀ (−e dX); its split copy for the next chunk
      const int tt = warp + kWarps * u, mS = 16 * (tt >> 1), nS = (tt & 1) * (VT / 2);
      warp_mma<P>(St[u], Kt, Xb, mS, nS, 0, kC);
      for_pairs(St[u], mS, nS, [&](int i, int cc, float x0, float x1) { put_split<P>(Sp, LDV, Lay::SPL, i, cc, x0, x1); });
    }
  }
  if (a.dh0) {
#pragma unroll
    for (int u = 0; u < NT; ++u) {
      const int tt = warp + kWarps * u, mS = 16 * (tt >> 1), nS = (tt & 1) * (VT / 2);
      for_acc(St[u], mS, nS, [&](int i, int cc, float& x) {
        if (i < d.K && cc < ncol) a.dh0[(bhv * d.K + i) * d.V + col0 + cc] = x;
      });
    }
  }
}

template <int KP, int VT, int P>
__global__ void __launch_bounds__(kThreads, 1) gdn_scan_x2_kernel(ScanArgs a) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int role = a.first_role + int(blockIdx.x) / a.tiles, tile = int(blockIdx.x) % a.tiles;
  if (role == 0) scan_x2_forward<KP, VT, P>(a, tile, smem);
  else scan_x2_reverse<KP, VT, P>(a, tile, smem);
}

#include "cuda/gdn_scan_warp.cuh"  // gdn_scan_warp_kernel: the default walk in kBF16 mode

// ---- grad: per chunk, everything that sums over the value columns --------------------------------

struct GradArgs {
  const void* q;
  const void* k;
  const void* v;
  const void* dout;
  const float* beta;
  const float* A;
  const float* gam;
  const void* ckS;  // S entering each chunk, [B·HV][NC][tiles][KP][vt], ckpt_t<P>
  const void* ckD;  // dS' leaving each chunk, same layout
  const bf16* Au2;  // gdn_grad_x2_kernel: Au split (as ScanArgs), checkpoints split too,
  const bf16* A2;   // and A split
  void* dq;          // [B, L, H, K] in the activation dtype (G == 1)
  void* dk;
  float* dq_part;  // [B, HV, L, K] fp32 per value head (G > 1)
  float* dk_part;
  float* dbeta;
  float* dg;
  GdnDims d;
  int tiles, vt;
};

template <class T, int KP, int VB, int P>
__global__ void __launch_bounds__(kThreads, 1) gdn_grad_kernel(GradArgs a) {
  using Lay = GradLayout<T, KP, VB, P>;
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
  using CK = ckpt_t<P>;  // the S / dS' blocks keep the checkpoints' type (the layout has room for fp32)
  CK* Sb = reinterpret_cast<CK*>(smem + Lay::SB);
  CK* dSb = reinterpret_cast<CK*>(smem + Lay::DSB);
  const CK* ckS = static_cast<const CK*>(a.ckS);
  const CK* ckD = static_cast<const CK*>(a.ckD);
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

  const RowTile<T> Ka{ks, LDK}, Qa{qs, LDK};
  const ColTile<T> Kt{ks, LDK};
  const int m0 = 16 * (warp & 3);      // this warp's 16 rows of every 64-row product
  const int nM = 32 * half;            // its columns of the 64 × 64 ones
  const int n1 = half * (VB / 2);      // of the 64 × VB ones
  const int no = half * (KO / 2);      // of the 64 × KO ones (dq, dk)
  const bool lower_tile = half == 0 || (warp & 3) >= 2;
  {  // M = tril(Q Kᵀ) ⊙ Γ, all of it (zeros above the diagonal)
    float accM[4][4] = {};
    warp_mma<P>(accM, Qa, Kt, m0, nM, 0, KP);
    for_acc(accM, m0, nM, [&](int r, int s, float& x) { Mm[r * kLDA + s] = s <= r ? x * expf(gam[r] - gam[s]) : 0.f; });
  }

  float accQ[NSO][4] = {}, accK[NSO][4] = {};
  float dss = 0.f;  // this thread's share of <dS', S>

  auto Xb = [&](int s, int cc) { return ld(vbs[s * LDV + cc]) - Eks[s * LDB + cc]; };
  auto Aua = [&](int r, int s) { return Am[r * kLDA + s] * bet[s]; };
  auto AutA = [&](int r, int s) { return Am[s * kLDA + r] * bet[r]; };
  auto MtA = [&](int r, int s) { return Mm[s * kLDA + r]; };
  auto Gdb = [&](int s, int cc) { return Gd[s * LDB + cc]; };

  const int nvb = int((d.V + VB - 1) / VB);
  // kBF16: the next value block's S / dS' / v / dout are fetched while this one computes (two
  // buffers); otherwise one buffer, loaded at the top of each value block.
  constexpr bool PREFETCH = std::is_same<CK, bf16>::value && Lay::NVBUF == 2;
  CK* const Sb0 = Sb;
  CK* const dSb0 = dSb;
  T* const vbs0 = vbs;
  T* const dos0 = dos;
  constexpr int CV = 16 / int(sizeof(CK));  // elements per 16-byte copy
  auto issue = [&](int vbi, int buf) {      // all of one value block's loads, in flight at once
    const int64_t colb = int64_t(vbi) * VB;
    const int tile = int(colb / a.vt), off = int(colb % a.vt);
    const int ncol = int(min64(VB, d.V - colb));
    const int64_t base = ((bhv * d.NC + c) * a.tiles + tile) * (int64_t(KP) * a.vt) + off;
    CK* sd = Sb0 + buf * KP * LDB;
    CK* dsd = dSb0 + buf * KP * LDB;
    for (int idx = tid; idx < KP * (VB / CV); idx += kThreads) {
      const int i = idx / (VB / CV), cc = (idx % (VB / CV)) * CV;
      cp_async16(sd + i * LDB + cc, ckS + base + int64_t(i) * a.vt + cc, true);
      cp_async16(dsd + i * LDB + cc, ckD + base + int64_t(i) * a.vt + cc, true);
    }
    T* vd = vbs0 + buf * 2 * (Lay::VTILE / sizeof(T));
    T* dd = dos0 + buf * 2 * (Lay::VTILE / sizeof(T));
    load_tile_async<kC, VB, LDV>(vd, v + ((b * d.L + t0) * d.HV + hv) * d.V + colb, d.HV * d.V, n, ncol);
    load_tile_async<kC, VB, LDV>(dd, dout + ((b * d.L + t0) * d.HV + hv) * d.V + colb, d.HV * d.V, n, ncol);
    cp_async_commit();
  };
  if (PREFETCH) issue(0, 0);
  for (int vb = 0; vb < nvb; ++vb) {
    __syncthreads();  // the previous block is done with every value-block buffer
    const int buf = PREFETCH ? (vb & 1) : 0;
    if (!PREFETCH) {
      issue(vb, 0);
      cp_async_wait<0>();
    } else if (vb + 1 < nvb) {
      issue(vb + 1, buf ^ 1);
      cp_async_wait<1>();  // all but the prefetch
    } else {
      cp_async_wait<0>();
    }
    Sb = Sb0 + buf * KP * LDB;
    dSb = dSb0 + buf * KP * LDB;
    vbs = vbs0 + buf * 2 * (Lay::VTILE / sizeof(T));
    dos = dos0 + buf * 2 * (Lay::VTILE / sizeof(T));
    const RowTile<CK> Sbb{Sb, LDB}, dSbb{dSb, LDB};  // B operands (k = row)
    const RowTile<T> dOb{dos, LDV};                  // a B operand (k = row)
    for (int idx = tid; idx < KP * (VB / CV); idx += kThreads) {  // this thread's own copies: no barrier needed
      const int i = idx / (VB / CV), cc = (idx % (VB / CV)) * CV;
      if constexpr (std::is_same<CK, float>::value) {
        const float4 s = *reinterpret_cast<const float4*>(Sb + i * LDB + cc);
        const float4 ds = *reinterpret_cast<const float4*>(dSb + i * LDB + cc);
        dss += s.x * ds.x + s.y * ds.y + s.z * ds.z + s.w * ds.w;
      } else {
        float part = 0.f;
#pragma unroll
        for (int u = 0; u < CV; ++u) part += ld(Sb[i * LDB + cc + u]) * ld(dSb[i * LDB + cc + u]);
        dss += part;
      }
    }
    __syncthreads();
    {  // K S, K dS', Q S
      float aKS[NS1][4] = {}, aKD[NS1][4] = {}, aQS[NS1][4] = {};
      warp_mma_2b<P>(aKS, aKD, Ka, Sbb, dSbb, m0, n1, 0, KP);
      warp_mma<P>(aQS, Qa, Sbb, m0, n1, 0, KP);
      for_acc(aKS, m0, n1, [&](int r, int cc, float& x) { Eks[r * LDB + cc] = e[r] * x; });
      for_acc(aKD, m0, n1, [&](int r, int cc, float& x) { Gd[r * LDB + cc] = gl[r] * x; });
      row_dot(aQS, m0, n1, [&](int r, int cc) { return e[r] * ld(dos[r * LDV + cc]); }, part_s + half * kC);
    }
    __syncthreads();
    {  // Δ = Au X;  dΔ = Γl K dS' + Mᵀ dO
      float aD[NS1][4] = {}, aG[NS1][4];
      warp_mma<P>(aD, Aua, Xb, m0, n1, 0, m0 + 16);
      for_acc(aG, m0, n1, [&](int r, int cc, float& x) { x = Gd[r * LDB + cc]; });
      row_dot(aD, m0, n1, [&](int r, int cc) { return Gd[r * LDB + cc]; }, part_c + half * kC);
      warp_mma<P>(aG, MtA, dOb, m0, n1, m0, kC);
      for_acc(aD, m0, n1, [&](int r, int cc, float& x) { Dl[r * LDB + cc] = x; });
      for_acc(aG, m0, n1, [&](int r, int cc, float& x) { Gd[r * LDB + cc] = x; });  // own tile only
    }
    __syncthreads();
    {  // dX = Auᵀ dΔ
      float aX[NS1][4] = {};
      warp_mma<P>(aX, AutA, Gdb, m0, n1, m0, kC);
      for_acc(aX, m0, n1, [&](int r, int cc, float& x) { dXs[r * LDB + cc] = x; });
      row_dot(aX, m0, n1, [&](int r, int cc) { return Eks[r * LDB + cc]; }, part_t + half * kC);
    }
    __syncthreads();
    if (lower_tile) {  // dM += dO Δᵀ;  dAu += dΔ Xᵀ (only the lower triangle is ever used)
      const RowTile<T> dOa{dos, LDV};
      auto DlT = [&](int cc, int s) { return Dl[s * LDB + cc]; };
      auto Gda = [&](int r, int cc) { return Gd[r * LDB + cc]; };
      auto XT = [&](int cc, int s) { return ld(vbs[s * LDV + cc]) - Eks[s * LDB + cc]; };
      float acc[4][4];
      for_acc(acc, m0, nM, [&](int r, int s, float& x) { x = DM[r * kLDA + s]; });
      warp_mma<P>(acc, dOa, DlT, m0, nM, 0, VB);
      for_acc(acc, m0, nM, [&](int r, int s, float& x) { DM[r * kLDA + s] = x; });
      for_acc(acc, m0, nM, [&](int r, int s, float& x) { x = DAU[r * kLDA + s]; });
      warp_mma<P>(acc, Gda, XT, m0, nM, 0, VB);
      for_acc(acc, m0, nM, [&](int r, int s, float& x) { DAU[r * kLDA + s] = x; });
    }
    {  // dQ += diag(e) dO Sᵀ;  dK += diag(Γl) Δ dS'ᵀ − diag(e) dX Sᵀ   (columns kofs..)
      auto eDOa = [&](int r, int cc) { return e[r] * ld(dos[r * LDV + cc]); };
      auto glDa = [&](int r, int cc) { return gl[r] * Dl[r * LDB + cc]; };
      auto edXa = [&](int r, int cc) { return -e[r] * dXs[r * LDB + cc]; };
      const ColTile<CK> ST{Sb + kofs * LDB, LDB}, dST{dSb + kofs * LDB, LDB};  // Sᵀ, dS'ᵀ
      warp_mma<P>(accQ, eDOa, ST, m0, no, 0, VB);
      warp_mma<P>(accK, glDa, dST, m0, no, 0, VB);
      warp_mma<P>(accK, edXa, ST, m0, no, 0, VB);
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
    warp_mma<P>(acc, Ka, Kt, m0, nM, 0, KP);
    for_acc(acc, m0, nM, [&](int r, int s, float& x) { KK[r * kLDA + s] = x; });
    // Tm = Aᵀ dA with dA = dAu diag(β); Aᵀ is upper triangular: rows i >= m0.
    auto AT = [&](int r, int i) { return Am[i * kLDA + r]; };
    auto dAb = [&](int i, int s) { return DAU[i * kLDA + s] * bet[s]; };
    float acc2[4][4] = {};
    warp_mma<P>(acc2, AT, dAb, m0, nM, m0, kC);
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
    warp_mma<P>(acc, Tma, AtB, m0, nM, 0, nM + 32);
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
    const RowTile<T> Kb{ks + kofs, LDK}, Qb{qs + kofs, LDK};  // B operands (k = row)
    warp_mma<P>(accQ, dQKa, Kb, m0, no, 0, m0 + 16);
    warp_mma<P>(accK, dQKt, Qb, m0, no, m0, kC);
    warp_mma<P>(accK, Dsa, Kb, m0, no, 0, kC);
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

// ---- grad, kBF16x2: split tiles ------------------------------------------------------------------
//
// gdn_grad_kernel's work for the default mode with the split-tile scheme of the x2 scan: the
// checkpoints arrive split (hi and lo planes, written so by gdn_scan_x2_kernel), Au split from
// prep, and every intermediate of a value block (X, Δ, dΔ) is written split once by the warp that
// computes it. Row scalings that the old accessors applied per element move to the end, and the
// product by Auᵀ leaves the value loop (dX Sᵀ = Auᵀ dΔ Sᵀ, Au being the same for every block):
//   dQ = diag(e) Σ_blocks dO Sᵀ,  dK = diag(Γl) Σ Δ dS'ᵀ − diag(e) Auᵀ Σ dΔ Sᵀ  (+ the tail's terms).
// e·KS, Γl·K dS' stay in registers (each warp owns the same 16 × VB/2 tile of every 64 × VB
// product, so the row dots need no shared copy); dX is formed only for its row dot with e·KS.
// S, dS' and dout come two buffers deep (the next value block's loads fly while this one
// computes; the grad kernel runs one block per SM, so an exposed load idles the SM); v goes
// straight to registers, also a value block ahead. The tail (the 64 × 64 gradients, once per chunk) is gdn_grad_kernel's,
// reading A again into the freed value-block region.
template <int KP, int VB>
struct GradX2Layout {
  static constexpr int LDK = KP + 8, LDB = VB + 8, LDC = kC + 8, LDY = KP + 8;
  static constexpr int SPL = KP * LDB, TPL = kC * LDB, CPL = kC * LDC, YPL = kC * LDY;  // elements per plane
  static constexpr size_t Q = 0;
  static constexpr size_t Kk = up16(Q + 2 * kC * LDK);
  static constexpr size_t AU = up16(Kk + 2 * kC * LDK);  // Au split
  static constexpr size_t MS = AU + 4 * size_t(CPL);     // M split
  // dM's row stride: 72 words ≡ 8 (mod 32), so the 8-byte accesses of acc_pairs (rows g = 0..3 of a
  // half warp, 8 words each) fall on disjoint banks; at kLDA = 68 ≡ 4 they overlapped (ncu, 8 warps:
  // shared stores 1.8-way conflicted). dAu keeps kLDA: the tail reads it by columns too, which
  // stride 72 would conflict 16-way.
  static constexpr int LDM = 72;
  static constexpr size_t DM = MS + 4 * size_t(CPL);
  static constexpr size_t DAU = DM + 4 * kC * LDM;
  static constexpr size_t R = DAU + 4 * kC * kLDA;  // union of the two layouts below
  // Value blocks: S and dS' split (KP × VB) and dout (64 × VB), two buffers so that the next
  // block's arrive while this one computes; then X, Δ, dΔ split (64 × VB).
  static constexpr size_t SBUF = 2 * 4 * size_t(SPL) + up16(2 * kC * LDB);  // S, dS', dout
  static constexpr size_t SB = R;
  static constexpr size_t XS = SB + 2 * SBUF;
  static constexpr size_t DLS = XS + 4 * size_t(TPL);
  static constexpr size_t GDS = DLS + 4 * size_t(TPL);
  static constexpr size_t R_VALUES = GDS + 4 * size_t(TPL);
  // Tail: x (fp32), K Kᵀ then P (fp32), A split, two split work tiles W1, W2 (first together
  // Y = Σ dΔ Sᵀ split, then dA and Tm, then dKK + dKKᵀ and dQK), dβ / dγ vectors.
  static constexpr size_t TM = R;
  static constexpr size_t KK = TM + 4 * kC * kLDA;
  static constexpr size_t AS = KK + 4 * kC * kLDA;
  static constexpr size_t W1 = AS + 4 * size_t(CPL);
  static constexpr size_t W2 = W1 + 4 * size_t(CPL);
  static constexpr size_t YS = W1;
  static_assert(4 * size_t(YPL) <= 8 * size_t(CPL), "Y fits in W1 and W2");
  static constexpr size_t DBE = W2 + 4 * size_t(CPL);
  // Row sums s, c, t over the value columns, one per column half, [3][2][64]: summed in registers
  // through the value loop and stored here only for the tail (which leaves room for LDM above).
  static constexpr size_t PART = DBE + 2 * 4 * kC;
  static constexpr size_t R_TAIL = PART + 4 * 6 * kC;
  static constexpr size_t VEC = R_VALUES > R_TAIL ? R_VALUES : R_TAIL;  // β, γ, e, Γl
  static constexpr size_t bytes = VEC + 4 * 4 * kC;
};

// out += Σ over the warp's columns of acc · other (both accumulator tiles of this lane), for rows
// m0 + g (out[0]) and m0 + g + 8 (out[1]); every lane of a row ends with the same sums.
template <int NS>
__device__ __forceinline__ void row_dot2(const float (&acc)[NS][4], const float (&other)[NS][4], float (&out)[2]) {
  float s0 = 0.f, s1 = 0.f;
#pragma unroll
  for (int j = 0; j < NS; ++j) {
    s0 += acc[j][0] * other[j][0] + acc[j][1] * other[j][1];
    s1 += acc[j][2] * other[j][2] + acc[j][3] * other[j][3];
  }
  s0 += __shfl_xor_sync(kFull, s0, 1);
  s0 += __shfl_xor_sync(kFull, s0, 2);
  s1 += __shfl_xor_sync(kFull, s1, 1);
  s1 += __shfl_xor_sync(kFull, s1, 2);
  out[0] += s0;
  out[1] += s1;
}
// out += Σ over the warp's columns of acc(row, col) · other(row, col) (row_dot2's rows and sums).
template <int NS, class F>
__device__ __forceinline__ void row_dot_acc(const float (&acc)[NS][4], int m0, int n0, const F& other, float (&out)[2]) {
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
  out[0] += s0;
  out[1] += s1;
}

// acc (this lane's elements of the 16 × 8·NS tile at m0, n0) loaded from (store = false) or stored to
// a 64 × 64 fp32 matrix of row stride ld, by column pairs (adjacent, even: one 8-byte access each).
template <int NS>
__device__ __forceinline__ void acc_pairs(float (&acc)[NS][4], float* p, int ld, int m0, int n0, bool store) {
  const int g = lane_g(), t = lane_t();
#pragma unroll
  for (int j = 0; j < NS; ++j)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      float2* q = reinterpret_cast<float2*>(p + (m0 + g + 8 * hh) * ld + n0 + 8 * j + 2 * t);
      if (store) {
        *q = make_float2(acc[j][2 * hh], acc[j][2 * hh + 1]);
      } else {
        const float2 x = *q;
        acc[j][2 * hh] = x.x;
        acc[j][2 * hh + 1] = x.y;
      }
    }
}

// Σ over 8 elements of (hi + lo) · (hi' + lo') (kBF16: hi · hi'), a and b at the same offset of
// their planes (lo = the lo plane's offset in elements), read as 16-byte words.
template <int P>
__device__ __forceinline__ float split_dot8(const bf16* a, const bf16* b, int lo) {
  auto word = [](const bf16* p) { return *reinterpret_cast<const uint4*>(p); };
  const uint4 ah = word(a), bh = word(b);
  const uint32_t xa[4] = {ah.x, ah.y, ah.z, ah.w}, xb[4] = {bh.x, bh.y, bh.z, bh.w};
  uint32_t ya[4] = {}, yb[4] = {};
  if constexpr (P == kBF16x2) {
    const uint4 al = word(a + lo), bl = word(b + lo);
    ya[0] = al.x, ya[1] = al.y, ya[2] = al.z, ya[3] = al.w;
    yb[0] = bl.x, yb[1] = bl.y, yb[2] = bl.z, yb[3] = bl.w;
  }
  float acc = 0.f;
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    float a0 = __uint_as_float(xa[w] << 16), a1 = __uint_as_float(xa[w] & 0xffff0000u);
    float b0 = __uint_as_float(xb[w] << 16), b1 = __uint_as_float(xb[w] & 0xffff0000u);
    if constexpr (P == kBF16x2) {
      a0 += __uint_as_float(ya[w] << 16);
      a1 += __uint_as_float(ya[w] & 0xffff0000u);
      b0 += __uint_as_float(yb[w] << 16);
      b1 += __uint_as_float(yb[w] & 0xffff0000u);
    }
    acc += a0 * b0 + a1 * b1;
  }
  return acc;
}

template <int KP, int VB, int P>
__global__ void __launch_bounds__(kThreads, 1) gdn_grad_x2_kernel(GradArgs a) {
  using Lay = GradX2Layout<KP, VB>;
  using T = bf16;
  constexpr int NS1 = VB / 16, NSO = KP / 16, NPL = planes<P>();
  constexpr int LDK = Lay::LDK, LDB = Lay::LDB, LDC = Lay::LDC;
  extern __shared__ __align__(16) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem + Lay::Q);
  T* ks = reinterpret_cast<T*>(smem + Lay::Kk);
  bf16* Aup = reinterpret_cast<bf16*>(smem + Lay::AU);
  bf16* Msp = reinterpret_cast<bf16*>(smem + Lay::MS);
  float* DM = reinterpret_cast<float*>(smem + Lay::DM);
  float* DAU = reinterpret_cast<float*>(smem + Lay::DAU);
  bf16* Xp = reinterpret_cast<bf16*>(smem + Lay::XS);
  bf16* Dp = reinterpret_cast<bf16*>(smem + Lay::DLS);
  bf16* Gp = reinterpret_cast<bf16*>(smem + Lay::GDS);
  float* Tm = reinterpret_cast<float*>(smem + Lay::TM);
  float* KK = reinterpret_cast<float*>(smem + Lay::KK);
  bf16* Asp = reinterpret_cast<bf16*>(smem + Lay::AS);
  bf16* W1 = reinterpret_cast<bf16*>(smem + Lay::W1);
  bf16* W2 = reinterpret_cast<bf16*>(smem + Lay::W2);
  bf16* Yp = reinterpret_cast<bf16*>(smem + Lay::YS);
  float* dbe = reinterpret_cast<float*>(smem + Lay::DBE);
  float* dgam = dbe + kC;
  float* bet = reinterpret_cast<float*>(smem + Lay::VEC);
  float* gam = bet + kC;
  float* e = bet + 2 * kC;
  float* gl = bet + 3 * kC;
  // Row sums over the value columns, one per column half (each (half, row) has one writer), for the tail:
  float* part_s = reinterpret_cast<float*>(smem + Lay::PART);  // Σ e dO · Q S
  float* part_c = part_s + 2 * kC;                             // Σ Δ · Γl K dS'
  float* part_t = part_s + 4 * kC;                             // Σ dX · e K S

  const GdnDims& d = a.d;
  const int c = blockIdx.x, tid = threadIdx.x, warp = tid >> 5, half = warp >> 2;
  const int64_t hv = blockIdx.y, b = blockIdx.z, h = hv / d.G, bhv = b * d.HV + hv;
  const int64_t t0 = int64_t(c) * kC;
  const int n = int(min64(kC, d.L - t0));
  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  const T* dout = static_cast<const T*>(a.dout);
  const bf16* ckS = static_cast<const bf16*>(a.ckS);
  const bf16* ckD = static_cast<const bf16*>(a.ckD);
  const int nvb = int((d.V + VB - 1) / VB);
  const int vt = a.vt, tiles = a.tiles;
  const int m0v = 16 * (warp & 3), n1v = half * (VB / 2);  // = m0, n1 below

  // All of one value block's loads (S, dS' split planes, dout) into buffer buf, in flight at once.
  // The value-block loads (S, dS' split planes, dout) into buffer buf, all in flight at once. Each
  // thread moves the same 16-byte column group of the same plane rows (row0 + RPP·pass) in every
  // block, so its addresses are set up once here and the passes are unrolled (ncu: the generic
  // loop's per-element index and 64-bit address arithmetic took ~14 % of the kernel's instructions).
  constexpr int GPR = VB / 8;          // 16-byte groups per row
  constexpr int RPP = kThreads / GPR;  // plane rows per pass
  static_assert(kThreads % GPR == 0 && KP % RPP == 0, "value-block load mapping");
  const int row0 = tid / GPR, cc8 = 8 * (tid % GPR);
  const int vt_shift = __ffs(vt) - 1;  // vt is 32 or 64 (choose_vt)
  const int64_t ck_thread = (bhv * d.NC + c) * tiles * (NPL * int64_t(KP) * vt) + int64_t(row0) * vt + cc8;
  const T* dout_c = dout + ((b * d.L + t0) * d.HV + hv) * d.V;
  auto issue = [&](int vbi, int buf) {
    unsigned char* base = smem + Lay::SB + buf * Lay::SBUF;
    bf16* sd = reinterpret_cast<bf16*>(base) + row0 * LDB + cc8;
    bf16* dsd = sd + 2 * Lay::SPL;
    T* dd = reinterpret_cast<T*>(base + 2 * 4 * size_t(Lay::SPL));
    const int colb = vbi * VB;  // tile colb / vt of the checkpoints, column colb % vt in it
    const int64_t blk = ck_thread + ((int64_t(colb >> vt_shift) * (NPL * KP)) << vt_shift) + (colb & (vt - 1));
#pragma unroll
    for (int pass = 0; pass < NPL * KP / RPP; ++pass) {
      const int row = RPP * pass;  // + row0: plane row / KP, row row % KP of it
      const int so = (row / KP) * Lay::SPL + (row % KP) * LDB;
      const int64_t go = blk + (int64_t(row) << vt_shift);
      cp_async16(sd + so, ckS + go, true);
      cp_async16(dsd + so, ckD + go, true);
    }
    load_tile_async<kC, VB, LDB>(dd, dout_c + colb, d.HV * d.V, n, int(min64(VB, d.V - colb)));
  };
  // v of value block vbi at this lane's accumulator positions (rows m0 + g, + 8; column pairs), as
  // BF16 pairs (the lower column in the low half) straight into registers: used once, for X, and
  // issued a value block ahead so that the loads fly while the previous block computes (ncu: the
  // kernel stalled on them when they were issued in the block that used them).
  const bool v_pairs = (d.V & 1) == 0;  // then colb + cc is even: one 4-byte load per pair
  const int gv = lane_g(), tv = lane_t();
  const T* v_lane = v + ((b * d.L + t0 + m0v + gv) * d.HV + hv) * d.V + n1v + 2 * tv;  // row m0 + g
  const int64_t v_8rows = 8 * d.HV * d.V;
  const bool v_row_in[2] = {m0v + gv < n, m0v + gv + 8 < n};
  auto load_v = [&](int vbi, uint32_t (&vr)[VB / 16][2]) {
    const int colb = vbi * VB;
    const int ncol = int(min64(VB, d.V - colb));
#pragma unroll
    for (int j = 0; j < VB / 16; ++j)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int cc = n1v + 8 * j + 2 * tv;
        const T* p = v_lane + hh * v_8rows + colb + 8 * j;
        uint32_t x = 0u;
        if (v_row_in[hh] && cc < ncol) {
          if (v_pairs && cc + 1 < ncol) {
            x = *reinterpret_cast<const uint32_t*>(p);
          } else {
            x = __bfloat16_as_ushort(p[0]);
            if (cc + 1 < ncol) x |= uint32_t(__bfloat16_as_ushort(p[1])) << 16;
          }
        }
        vr[j][hh] = x;
      }
  };

  load_tile_async<kC, KP, LDK>(qs, q + ((b * d.L + t0) * d.H + h) * d.K, d.H * d.K, n, int(d.K));
  load_tile_async<kC, KP, LDK>(ks, k + ((b * d.L + t0) * d.H + h) * d.K, d.H * d.K, n, int(d.K));
  constexpr int PR = NPL * kC;  // rows of a chunk's Au or A planes
  load_tile_async<PR, kC, LDC>(Aup, a.Au2 + (bhv * d.NC + c) * (PR * kC), kC, PR, kC);
  cp_async_commit();
  issue(0, 0);
  cp_async_commit();
  for (int idx = tid; idx < kC * Lay::LDM; idx += kThreads) {
    DM[idx] = 0.f;
    if (idx < kC * kLDA) DAU[idx] = 0.f;
  }
  if (tid < kC) {
    const float* gc = a.gam + (bhv * d.NC + c) * kC;
    const float gr = gc[tid], glast = gc[kC - 1];
    bet[tid] = tid < n ? a.beta[(b * d.L + t0 + tid) * d.HV + hv] : 0.f;
    gam[tid] = gr;
    e[tid] = expf(gr);
    gl[tid] = expf(glast - gr);
  }
  cp_async_wait<1>();  // q, k, Au (the first value block may still be in flight)
  __syncthreads();

  const RowTile<T> Ka{ks, LDK}, Qa{qs, LDK};
  const ColTile<T> Kt{ks, LDK};
  const SplitTile<false> Aua{Aup, LDC, Lay::CPL}, Xb{Xp, LDB, Lay::TPL}, Da{Dp, LDB, Lay::TPL}, Gb{Gp, LDB, Lay::TPL};
  const SplitTile<true> AutA{Aup, LDC, Lay::CPL}, MtA{Msp, LDC, Lay::CPL};
  const SplitTile<true> DlT{Dp, LDB, Lay::TPL}, XT{Xp, LDB, Lay::TPL};
  const int m0 = 16 * (warp & 3);      // this warp's 16 rows of every 64-row product
  const int nM = 32 * half;            // its columns of the 64 × 64 ones
  const int n1 = half * (VB / 2);      // of the 64 × VB ones
  const int no = half * (KP / 2);      // of the 64 × KP ones (dq, dk)
  const bool lower_tile = half == 0 || (warp & 3) >= 2;
  {  // M = tril(Q Kᵀ) ⊙ Γ, all of it (zeros above the diagonal), split
    float accM[4][4] = {};
    warp_mma<P>(accM, Qa, Kt, m0, nM, 0, KP);
    for_pairs(accM, m0, nM, [&](int r, int s, float x0, float x1) {
      put_split<P>(Msp, LDC, Lay::CPL, r, s, s <= r ? x0 * exp_sfu(gam[r] - gam[s]) : 0.f,
                s + 1 <= r ? x1 * exp_sfu(gam[r] - gam[s + 1]) : 0.f);
    });
  }

  // dQ = diag(e) Σ dO Sᵀ;  dK = diag(Γl) Σ Δ dS'ᵀ − diag(e) Auᵀ Σ dΔ Sᵀ  (dX Sᵀ = Auᵀ dΔ Sᵀ: the
  // product by Auᵀ moves out of the value loop, to once per chunk in the tail).
  float accQ[NSO][4] = {}, accK[NSO][4] = {}, accY[NSO][4] = {};
  float dss = 0.f;  // this thread's share of <dS', S>
  float ps[2] = {}, pc[2] = {}, pt[2] = {};  // this warp's row sums (rows m0 + g, + 8) over its columns
  const int g = lane_g(), t4 = lane_t();
  uint32_t vcur[NS1][2], vnext[NS1][2] = {};
  load_v(0, vcur);
  for (int vb = 0; vb < nvb; ++vb) {
    const int buf = vb & 1;
    __syncthreads();  // the previous block is done with the other buffer and the X, Δ, dΔ tiles
    if (vb + 1 < nvb) {
      issue(vb + 1, buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();  // all but the prefetch
    } else {
      cp_async_wait<0>();
    }
    if (vb + 1 < nvb) load_v(vb + 1, vnext);
    __syncthreads();
    unsigned char* base = smem + Lay::SB + buf * Lay::SBUF;
    const bf16* Sp = reinterpret_cast<const bf16*>(base);
    const bf16* dSp = Sp + 2 * Lay::SPL;
    const T* dos = reinterpret_cast<const T*>(base + 2 * 4 * size_t(Lay::SPL));
    const SplitTile<false> Sb{Sp, LDB, Lay::SPL}, dSb{dSp, LDB, Lay::SPL};
    const SplitTile<true> ST{Sp, LDB, Lay::SPL}, dST{dSp, LDB, Lay::SPL};
    const RowTile<T> dOa{dos, LDB}, dOb{dos, LDB};
    // <dS', S> from the split copies, 8 at a time. Each 8 lanes (one 128-byte wavefront of 16-byte
    // loads) read the same column group of 8 successive rows, whose starts (LDB = 20 words apart)
    // fall on 8 different 4-bank groups; lanes along a row instead collided (rows 20 words apart,
    // 16 words each).
    static_assert(KP % 8 == 0 && LDB == 40, "<dS', S> load mapping");
    for (int idx = tid; idx < KP * (VB / 8); idx += kThreads) {
      const int o = (8 * (idx / (8 * (VB / 8))) + idx % 8) * LDB + 8 * ((idx / 8) % (VB / 8));
      dss += split_dot8<P>(Sp + o, dSp + o, Lay::SPL);
    }
    // K S, K dS', Q S: X = V − e K S split; e K S and Γl K dS' stay in registers.
    float aKS[NS1][4] = {}, aG[NS1][4] = {};
    {
      float aQS[NS1][4] = {};
      warp_mma_2b<P>(aKS, aG, Ka, Sb, dSb, m0, n1, 0, KP);
      warp_mma<P>(aQS, Qa, Sb, m0, n1, 0, KP);
      for_acc(aKS, m0, n1, [&](int r, int, float& x) { x *= e[r]; });
      for_acc(aG, m0, n1, [&](int r, int, float& x) { x *= gl[r]; });
#pragma unroll
      for (int j = 0; j < NS1; ++j) {
        const int cc = n1 + 8 * j + 2 * t4;
        auto lo = [](uint32_t x) { return __uint_as_float(x << 16); };
        auto hi = [](uint32_t x) { return __uint_as_float(x & 0xffff0000u); };
        put_split<P>(Xp, LDB, Lay::TPL, m0 + g, cc, lo(vcur[j][0]) - aKS[j][0], hi(vcur[j][0]) - aKS[j][1]);
        put_split<P>(Xp, LDB, Lay::TPL, m0 + g + 8, cc, lo(vcur[j][1]) - aKS[j][2], hi(vcur[j][1]) - aKS[j][3]);
      }
      row_dot_acc(aQS, m0, n1, [&](int r, int cc) { return e[r] * ld(dos[r * LDB + cc]); }, ps);
    }
    __syncthreads();
    {  // Δ = Au X;  dΔ = Γl K dS' + Mᵀ dO
      float aD[NS1][4] = {};
      warp_mma<P>(aD, Aua, Xb, m0, n1, 0, m0 + 16);
      row_dot2(aD, aG, pc);
      for_pairs(aD, m0, n1, [&](int r, int cc, float x0, float x1) { put_split<P>(Dp, LDB, Lay::TPL, r, cc, x0, x1); });
      warp_mma<P>(aG, MtA, dOb, m0, n1, m0, kC);
      for_pairs(aG, m0, n1, [&](int r, int cc, float x0, float x1) { put_split<P>(Gp, LDB, Lay::TPL, r, cc, x0, x1); });
    }
    __syncthreads();
    {  // dX = Auᵀ dΔ, for its row dot with e K S only (dv comes from the scan)
      float aX[NS1][4] = {};
      warp_mma<P>(aX, AutA, Gb, m0, n1, m0, kC);
      row_dot2(aX, aKS, pt);
    }
    if (lower_tile) {  // dM += dO Δᵀ;  dAu += dΔ Xᵀ (only the lower triangle is ever used)
      float acc[4][4];
      acc_pairs(acc, DM, Lay::LDM, m0, nM, false);
      warp_mma<P>(acc, dOa, DlT, m0, nM, 0, VB);
      acc_pairs(acc, DM, Lay::LDM, m0, nM, true);
      acc_pairs(acc, DAU, kLDA, m0, nM, false);
      warp_mma<P>(acc, Gb, XT, m0, nM, 0, VB);
      acc_pairs(acc, DAU, kLDA, m0, nM, true);
    }
    // Σ dO Sᵀ and Σ dΔ Sᵀ (one read of Sᵀ for both), Σ Δ dS'ᵀ.
    warp_mma_2a<P>(accQ, accY, dOa, Gb, ST, m0, no, 0, VB);
    warp_mma<P>(accK, Da, dST, m0, no, 0, VB);
#pragma unroll
    for (int j = 0; j < NS1; ++j) {
      vcur[j][0] = vnext[j][0];
      vcur[j][1] = vnext[j][1];
    }
  }
  dss = block_sum(dss);  // its barriers also end the last value block (PART is in its region)
  if (t4 == 0) {
    const int col = half * kC + m0 + g;
    part_s[col] = ps[0];
    part_s[col + 8] = ps[1];
    part_c[col] = pc[0];
    part_c[col + 8] = pc[1];
    part_t[col] = pt[0];
    part_t[col + 8] = pt[1];
  }

  // ---- tail: the 64 × 64 gradients (steps e, f of the CPU code) and the rest of dq / dk ----
  // The same steps as gdn_grad_kernel's tail, on split tiles: A (split from prep), dA = dAu diag(β),
  // Tm = Aᵀ dA, dQK = dM ⊙ Γ and dKK + dKKᵀ are each written split once and read by ldmatrix; the
  // row and column sums run four threads to a row (fixed order, shuffles).
  load_tile_async<PR, kC, LDC>(Asp, a.A2 + (bhv * d.NC + c) * (PR * kC), kC, PR, kC);
  cp_async_commit();
  for_pairs(accY, m0, no, [&](int r, int i, float x0, float x1) { put_split<P>(Yp, Lay::LDY, Lay::YPL, r, i, x0, x1); });
  for_acc(accQ, m0, no, [&](int r, int, float& x) { x *= e[r]; });
  {
    float acc[4][4] = {};  // K Kᵀ
    warp_mma<P>(acc, Ka, Kt, m0, nM, 0, KP);
    for_acc(acc, m0, nM, [&](int r, int s, float& x) { KK[r * kLDA + s] = x; });
  }
  cp_async_wait<0>();
  __syncthreads();
  {  // dK = Γl (Σ Δ dS'ᵀ) − e Auᵀ Y   (Auᵀ upper triangular: rows s >= m0)
    const SplitTile<false> Yb{Yp, Lay::LDY, Lay::YPL};
    float accX[NSO][4] = {};
    warp_mma<P>(accX, AutA, Yb, m0, no, m0, kC);
#pragma unroll
    for (int j = 0; j < NSO; ++j)
#pragma unroll
      for (int qq = 0; qq < 4; ++qq) {
        const int r = m0 + g + 8 * (qq >> 1);
        accK[j][qq] = gl[r] * accK[j][qq] - e[r] * accX[j][qq];
      }
  }
  auto a_at = [&](int r, int s) {  // A from its split copy (hi + lo; hi in kBF16)
    return P == kBF16x2 ? ld(Asp[r * LDC + s]) + ld(Asp[Lay::CPL + r * LDC + s]) : ld(Asp[r * LDC + s]);
  };
  {  // dβ_s from Au = A diag(β): Σ_{r >= s} dAu[r,s] A[r,s], four threads a column
    const int s = tid >> 2, p = tid & 3;
    float acc = 0.f;
    for (int r = s + p; r < kC; r += 4) acc += DAU[r * kLDA + s] * a_at(r, s);
    acc += __shfl_xor_sync(kFull, acc, 1);
    acc += __shfl_xor_sync(kFull, acc, 2);
    if (p == 0) dbe[s] = acc;
  }
  __syncthreads();  // Y is read (W1 / W2 are free), dAu's column sums are done
  for (int idx = tid; idx < kC * kC / 2; idx += kThreads) {  // dA = dAu diag(β), split
    const int r = idx / (kC / 2), s = 2 * (idx % (kC / 2));
    put_split<P>(W1, LDC, Lay::CPL, r, s, DAU[r * kLDA + s] * bet[s], DAU[r * kLDA + s + 1] * bet[s + 1]);
  }
  __syncthreads();
  const SplitTile<false> W1a{W1, LDC, Lay::CPL}, W2a{W2, LDC, Lay::CPL};
  const SplitTile<true> W2t{W2, LDC, Lay::CPL}, AT{Asp, LDC, Lay::CPL};
  {  // Tm = Aᵀ dA (Aᵀ upper triangular: rows i >= m0), split
    float acc[4][4] = {};
    warp_mma<P>(acc, AT, W1a, m0, nM, m0, kC);
    for_pairs(acc, m0, nM, [&](int r, int s, float x0, float x1) { put_split<P>(W2, LDC, Lay::CPL, r, s, x0, x1); });
  }
  __syncthreads();
  {  // dL = −Tm Aᵀ (Aᵀ upper triangular: only j <= s, i.e. j < nM + 32)
    float acc[4][4] = {};
    warp_mma<P>(acc, W2a, AT, m0, nM, 0, nM + 32);
    for_acc(acc, m0, nM, [&](int r, int s, float& x) { DAU[r * kLDA + s] = -x; });
  }
  __syncthreads();
  auto m_at = [&](int r, int s) {  // M from its split copy (hi + lo; hi in kBF16)
    return P == kBF16x2 ? ld(Msp[r * LDC + s]) + ld(Msp[Lay::CPL + r * LDC + s]) : ld(Msp[r * LDC + s]);
  };
  for (int idx = tid; idx < kC * kC / 2; idx += kThreads) {
    const int r = idx / (kC / 2), s0 = 2 * (idx % (kC / 2));
    // Row elements (r, s0), (r, s0 + 1) by 8-byte pairs: a warp's 4-byte accesses to every other
    // word of a row were 2-way conflicted.
    float dqk[2], ds[2], dst[2], tm[2], pm[2];
    const float2 kk2 = *reinterpret_cast<const float2*>(KK + r * kLDA + s0);
    const float2 dm2 = *reinterpret_cast<const float2*>(DM + r * Lay::LDM + s0);
    const float2 dl2 = *reinterpret_cast<const float2*>(DAU + r * kLDA + s0);
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      const int s = s0 + u;
      const float dm = u ? dm2.y : dm2.x;
      if (s < r) {
        const float G = exp_sfu(gam[r] - gam[s]);
        const float gx = (u ? dl2.y : dl2.x) * G;  // dL ⊙ Γ
        tm[u] = gx * (u ? kk2.y : kk2.x);          // x
        pm[u] = dm * m_at(r, s);                   // P = dM ⊙ M
        dqk[u] = dm * G;                           // dQK = dM ⊙ Γ
        ds[u] = bet[r] * gx;                       // dKK (lower), r > s
      } else {
        tm[u] = 0.f;
        pm[u] = s == r ? dm * m_at(r, s) : 0.f;
        dqk[u] = s == r ? dm : 0.f;
        ds[u] = 0.f;
      }
      // dKK's transpose: element (r, s) with r < s is β_s (dL ⊙ Γ)[s, r]
      dst[u] = s > r ? bet[s] * DAU[s * kLDA + r] * exp_sfu(gam[s] - gam[r]) : 0.f;
    }
    *reinterpret_cast<float2*>(Tm + r * kLDA + s0) = make_float2(tm[0], tm[1]);
    *reinterpret_cast<float2*>(KK + r * kLDA + s0) = make_float2(pm[0], pm[1]);
    put_split<P>(W2, LDC, Lay::CPL, r, s0, dqk[0], dqk[1]);
    put_split<P>(W1, LDC, Lay::CPL, r, s0, ds[0] + dst[0], ds[1] + dst[1]);
  }
  __syncthreads();
  {  // dγ_r and dβ_r, four threads a row, every sum in a fixed order
    const int r = tid >> 2, p = tid & 3;
    float rowP = 0.f, colP = 0.f, rowx = 0.f, colbx = 0.f, cs = 0.f;
    for (int s = p; s < kC; s += 4) {
      if (s <= r) rowP += KK[r * kLDA + s];
      if (s >= r) colP += KK[s * kLDA + r];
      if (s < r) rowx += Tm[r * kLDA + s];
      if (s > r) colbx += bet[s] * Tm[s * kLDA + r];
      cs += part_c[s] + part_c[kC + s];
    }
#pragma unroll
    for (int m = 1; m <= 2; m <<= 1) {
      rowP += __shfl_xor_sync(kFull, rowP, m);
      colP += __shfl_xor_sync(kFull, colP, m);
      rowx += __shfl_xor_sync(kFull, rowx, m);
      colbx += __shfl_xor_sync(kFull, colbx, m);
      cs += __shfl_xor_sync(kFull, cs, m);
    }
    if (p == 0) {
      const float cr = part_c[r] + part_c[kC + r], sr = part_s[r] + part_s[kC + r], tr = part_t[r] + part_t[kC + r];
      float dgr = -cr + sr - tr + rowP - colP + bet[r] * rowx - colbx;
      if (r == kC - 1) dgr += cs + e[kC - 1] * dss;  // the chunk's last γ also scales the handed-on state
      dgam[r] = dgr;
      if (r < n) a.dbeta[(b * d.L + t0 + r) * d.HV + hv] = dbe[r] + rowx;
    }
  }
  {  // dQ += dQK K;  dK += dQKᵀ Q + (dKK + dKKᵀ) K
    const RowTile<T> Kb{ks, LDK}, Qb{qs, LDK};  // B operands (k = row)
    warp_mma<P>(accQ, W2a, Kb, m0, no, 0, m0 + 16);
    warp_mma<P>(accK, W2t, Qb, m0, no, m0, kC);
    warp_mma<P>(accK, W1a, Kb, m0, no, 0, kC);
  }
  __syncthreads();
  if (warp == 0) {  // dg_s = Σ_{r >= s} dγ_r: lane l holds rows 2l, 2l + 1; suffix sums by shuffles
    const int l = tid;
    const float g0 = dgam[2 * l], g1 = dgam[2 * l + 1];
    float suf = g0 + g1;  // becomes Σ over lanes >= l of their pair sums
#pragma unroll
    for (int m = 1; m < 32; m <<= 1) {
      const float o = __shfl_down_sync(kFull, suf, m);
      if (l + m < 32) suf += o;
    }
    const float nxt = __shfl_down_sync(kFull, suf, 1);
    const float after = l < 31 ? nxt : 0.f;  // Σ over lanes > l
    const int r0 = 2 * l, r1 = r0 + 1;
    if (r1 < n) a.dg[(b * d.L + t0 + r1) * d.HV + hv] = after + g1;
    if (r0 < n) a.dg[(b * d.L + t0 + r0) * d.HV + hv] = after + g1 + g0;
  }
  // dq, dk by column pairs (one 4- or 8-byte store each where K is even; ncu: the 2-byte stores,
  // 64 a thread, throttled the kernel's end). A lane holds rows m0 + g and m0 + g + 8: their row
  // offsets are computed once (ncu: 64-bit index arithmetic per pair took ~6 % of the samples).
  const bool k_pairs = (d.K & 1) == 0;
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int r = m0 + g + 8 * hh;
    if (r >= n) continue;
    if (a.dq) {
      const int64_t row = ((b * d.L + t0 + r) * d.H + h) * d.K;
      T* qrow = static_cast<T*>(a.dq) + row;
      T* krow = static_cast<T*>(a.dk) + row;
#pragma unroll
      for (int j = 0; j < NSO; ++j) {
        const int i = no + 8 * j + 2 * t4;
        if (i >= d.K) continue;
        store_pair(qrow + i, accQ[j][2 * hh], accQ[j][2 * hh + 1], int(d.K) - i, k_pairs);
        store_pair(krow + i, accK[j][2 * hh], accK[j][2 * hh + 1], int(d.K) - i, k_pairs);
      }
    } else {
      const int64_t row = (bhv * d.L + t0 + r) * d.K;
      float* qrow = a.dq_part + row;
      float* krow = a.dk_part + row;
#pragma unroll
      for (int j = 0; j < NSO; ++j) {
        const int i = no + 8 * j + 2 * t4;
        if (i >= d.K) continue;
        if (k_pairs && i + 1 < d.K) {
          *reinterpret_cast<float2*>(qrow + i) = make_float2(accQ[j][2 * hh], accQ[j][2 * hh + 1]);
          *reinterpret_cast<float2*>(krow + i) = make_float2(accK[j][2 * hh], accK[j][2 * hh + 1]);
        } else {
          qrow[i] = accQ[j][2 * hh];
          krow[i] = accK[j][2 * hh];
          if (i + 1 < d.K) qrow[i + 1] = accQ[j][2 * hh + 1], krow[i + 1] = accK[j][2 * hh + 1];
        }
      }
    }
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

// Precision mode of the BF16 kernels (see the primitives): kDefaultBf16Mode, or LT2_GDN_MMA =
// tf32, bf16 or bf16x2. The BF16 modes (and with them the blocked inverse, the two-blocks-per-SM
// VT = 32 scan, BF16 checkpoints in kBF16 and the grad prefetch) are built for K <= 128 only, to
// bound the compile time; K in (128, 256] runs kTF32, F32 activations kTF32x3.
// kBF16 is the default: the split-tile kernels with every fp32 operand rounded to BF16 once (one
// mma per product step instead of two or three, no lo planes), the precision of the Triton
// kernels, within the issue's bounds (worst measured: o 3.3e-3, hT 3.6e-3 of 5e-3; dq, dk, dv
// 4.3e-3 of 8e-3; dβ 4.7e-3, dg 3.1e-3 of 2e-2) and ~20 % faster than kBF16x2 on an H100
// (bench/gpu/gdn_bf16_s7_h100.txt). kBF16x2 keeps states and gate gradients at ~1e-5.
constexpr int kDefaultBf16Mode = kBF16;
int bf16_mode() {
  if (const char* s = std::getenv("LT2_GDN_MMA"); s && *s) {
    const std::string m = s;
    if (m == "tf32") return kTF32;
    if (m == "bf16") return kBF16;
    if (m == "bf16x2") return kBF16x2;
    fail(cat("LT2_GDN_MMA: expected tf32, bf16 or bf16x2, got '", m, "'"));
  }
  return kDefaultBf16Mode;
}

// The mode dispatch is written with overloads rather than `if constexpr` inside the generic
// lambdas below: with the latter, the host code of 63666fe took the BF16 branches for F32
// inputs (its host side called launchers of kernels the device side never built, and the F32
// launches failed with "invalid resource handle").
template <int V>
using IC = std::integral_constant<int, V>;
template <int KP, class F>
void with_mode(float, std::true_type, F& f) {
  f(float{}, IC<KP>{}, IC<kTF32x3>{});
}
template <int KP, class F>
void with_bf16_mode(std::false_type, F& f) {  // K > 128: TF32 only
  f(bf16{}, IC<KP>{}, IC<kTF32>{});
}
template <int KP, class F>
void with_bf16_mode(std::true_type, F& f) {
  switch (bf16_mode()) {
    case kTF32: f(bf16{}, IC<KP>{}, IC<kTF32>{}); break;
    case kBF16: f(bf16{}, IC<KP>{}, IC<kBF16>{}); break;
    default: f(bf16{}, IC<KP>{}, IC<kBF16x2>{}); break;
  }
}
template <int KP, class F>
void with_mode(bf16, std::true_type, F& f) {
  with_bf16_mode<KP>(std::integral_constant<bool, (KP <= 128)>{}, f);
}
template <int KP, class T, class F>
void with_mode(T, std::false_type, F&) {
  fail(cat("gdn chunked: K ", KP, " in ", sizeof(T) == 4 ? "F32" : "BF16", " does not fit the kernels' shared memory"));
}
template <class T, int KP, class F>
void with_kp(F& f) {
  with_mode<KP>(T{}, std::integral_constant<bool, config_fits<T, KP>()>{}, f);
}
template <class T, class F>
void with_k(int64_t K, F& f) {
  switch (padded_k(K)) {
    case 64: with_kp<T, 64>(f); break;
    case 128: with_kp<T, 128>(f); break;
    default: with_kp<T, 256>(f); break;
  }
}

// Calls f(T{}, integral_constant<KP>, integral_constant<P>) for the dtype, padded K and precision
// mode (only configurations that fit).
template <class F>
void with_config(DType dt, int64_t K, F&& f) {
  if (dt == DType::F32) with_k<float>(K, f);
  else if (dt == DType::BF16) with_k<bf16>(K, f);
  else fail(cat("gdn chunked: F32 or BF16 inputs, got ", dtype_name(dt)));
}

// Raises a kernel's dynamic shared-memory limit once per instantiation.
template <class Kern>
void allow_smem(Kern kernel, size_t bytes, const char* what) {
  LT2_CHECK(bytes <= kSmemLimit, "gdn chunked ", what, ": ", bytes, " bytes of shared memory");
  const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
  if (err != cudaSuccess) (void)cudaGetLastError();  // not left behind for the next launch check
  LT2_CHECK(err == cudaSuccess, "gdn chunked ", what, ": cudaFuncSetAttribute(", bytes, " bytes) failed: ",
            cudaGetErrorString(err));
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

int sm_count() {
  static const int sms = [] {
    int dev = 0, count = 0;
    LT2_CUDA_CHECK(cudaGetDevice(&dev));
    LT2_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev));
    return count;
  }();
  return sms;
}

// The split-tile scan (gdn_scan_x2_kernel) serves kBF16x2 with BF16 activations;
// LT2_GDN_LEGACY=1 runs the accessor kernels instead (same numbers, for before / after timings).
template <int P>
constexpr bool x2_mode() {
  return P == kBF16x2 || P == kBF16;
}
template <class T, int P>
bool use_x2() {
  if constexpr (std::is_same<T, bf16>::value && x2_mode<P>()) {
    const char* s = std::getenv("LT2_GDN_LEGACY");
    return !(s && *s && *s != '0');
  } else {
    return false;
  }
}

template <class T, int KP, int P>
void launch_prep(const Tensor& k, const Tensor& beta, const Tensor& g, const GdnDims& d, Tensor& A, float* gam,
                 bf16* au2 = nullptr, bf16* a2 = nullptr) {
  constexpr size_t smem = PrepLayout<T, KP>::bytes;
  static_assert(smem <= kSmemLimit, "prep shared memory");
  static const bool once = (allow_smem(gdn_prep_kernel<T, KP, P>, smem, "prep"), true);
  (void)once;
  gdn_prep_kernel<T, KP, P><<<dim3(unsigned(d.NC), unsigned(d.HV), unsigned(d.B)), kThreads, smem, stream()>>>(
      k.data<T>(), beta.data<float>(), g.data<float>(), d, au2 ? nullptr : A.data<float>(), gam, au2, a2);
  check_launch("gdn chunked prep");
}

template <class T, int KP, int VT, int P>
void launch_scan_vt(const ScanArgs& a, int roles) {
  constexpr size_t smem = ScanLayout<T, KP, VT, P>::bytes;
  static_assert(smem <= kSmemLimit, "scan shared memory");
  static const bool once = (allow_smem(gdn_scan_kernel<T, KP, VT, P>, smem, "scan"), true);
  (void)once;
  gdn_scan_kernel<T, KP, VT, P><<<dim3(unsigned(a.tiles * roles), unsigned(a.d.HV), unsigned(a.d.B)), kThreads, smem,
                               stream()>>>(a);
  check_launch("gdn chunked scan");
}
template <int KP, int VT, int P>
void launch_scan_x2(const ScanArgs& a, int roles) {
  constexpr size_t smem = ScanX2Layout<KP, VT>::bytes;
  static_assert(smem <= kSmemLimit, "scan shared memory");
  static const bool once = (allow_smem(gdn_scan_x2_kernel<KP, VT, P>, smem, "scan x2"), true);
  (void)once;
  gdn_scan_x2_kernel<KP, VT, P><<<dim3(unsigned(a.tiles * roles), unsigned(a.d.HV), unsigned(a.d.B)), kThreads, smem,
                                stream()>>>(a);
  check_launch("gdn chunked scan x2");
}
// The warp-column scan (gdn_scan_warp.cuh) serves kBF16 at VT 64; LT2_GDN_WARP_SCAN=0 runs the
// split-tile scan instead (for before / after timings). Where the grid has no more blocks than
// SMs, its Au comes a chunk ahead (two buffers, one block per SM), and a forward launch with an
// output splits each block's walk and output between two warp groups (8 warps).
// LT2_GDN_WARP_SCAN_AU=1 or 2 forces one or two Au buffers without the split (for the tests'
// small grids).
bool warp_scan() {
  const char* s = std::getenv("LT2_GDN_WARP_SCAN");
  return !(s && *s == '0');
}
template <int KP>
void launch_scan_warp(const ScanArgs& a, int roles) {
  using One = WarpScanLayout<KP, 1>;
  using Two = WarpScanLayout<KP, 2>;
  static_assert(2 * (One::bytes + 1024) <= 233472, "two warp-scan blocks per SM");  // 228 KiB, 1 KiB a block reserved
  static const bool once = (allow_smem(gdn_scan_warp_kernel<KP, 1>, One::bytes, "scan warp"),
                            allow_smem(gdn_scan_warp_kernel<KP, 2>, Two::bytes, "scan warp"),
                            allow_smem(gdn_scan_warp_split_kernel<KP>, Two::split_bytes, "scan warp"), true);
  (void)once;
  const char* s = std::getenv("LT2_GDN_WARP_SCAN_AU");
  const bool forced = s && (*s == '1' || *s == '2');
  const bool fits = int64_t(a.tiles) * roles * a.d.HV * a.d.B <= sm_count();
  LT2_CHECK(a.d.B * roles <= 65535, "gdn chunked: batch ", a.d.B, " exceeds the warp scan's grid (at most ",
            65535 / roles, " sequences a call)");
  const dim3 grid(unsigned(a.tiles), unsigned(a.d.HV), unsigned(a.d.B * roles));
  if (forced ? *s == '1' : !fits) {
    gdn_scan_warp_kernel<KP, 1><<<grid, kWsThreads, One::bytes, stream()>>>(a);
  } else if (forced || roles != 1 || a.first_role != 0 || !a.o) {
    gdn_scan_warp_kernel<KP, 2><<<grid, kWsThreads, Two::bytes, stream()>>>(a);
  } else {
    gdn_scan_warp_split_kernel<KP><<<grid, 2 * kWsThreads, Two::split_bytes, stream()>>>(a);
  }
  check_launch("gdn chunked scan warp");
}

template <class T, int KP, int P>
void launch_scan(int vt, const ScanArgs& a, int roles) {
  if constexpr (std::is_same<T, bf16>::value && x2_mode<P>()) {
    if (a.Au2) {
      if constexpr (P == kBF16) {
        if (vt == kWsVT && warp_scan()) {
          launch_scan_warp<KP>(a, roles);
          return;
        }
      }
      if (vt == 32) launch_scan_x2<KP, 32, P>(a, roles);
      else launch_scan_x2<KP, 64, P>(a, roles);
      return;
    }
  }
  if (vt == 32) launch_scan_vt<T, KP, 32, P>(a, roles);
  else launch_scan_vt<T, KP, 64, P>(a, roles);
}

template <int KP, int P>
void launch_grad_x2(const GradArgs& ga) {
  constexpr int VB = 32;
  constexpr size_t smem = GradX2Layout<KP, VB>::bytes;
  static_assert(smem <= kSmemLimit, "grad shared memory");
  static const bool once = (allow_smem(gdn_grad_x2_kernel<KP, VB, P>, smem, "grad x2"), true);
  (void)once;
  const GdnDims& d = ga.d;
  gdn_grad_x2_kernel<KP, VB, P><<<dim3(unsigned(d.NC), unsigned(d.HV), unsigned(d.B)), kThreads, smem, stream()>>>(ga);
  check_launch("gdn chunked grad x2");
}

Tensor f32_scratch(int64_t n) { return Tensor::empty({n}, DType::F32, Device::CUDA); }

// What the split-tile forward keeps for its backward (ops::gdn's `states`), so that the backward
// runs neither the forward walk nor prep again: the scan's checkpoints of S (BF16 planes per chunk
// and value tile: hi and lo, or hi alone in kBF16; the layout gdn_scan_x2_kernel writes and
// gdn_grad_x2_kernel reads), then prep's outputs (Au and A as BF16 plane pairs, γ in fp32). One
// BF16 tensor [rows, tiles, planes, KP, vt] whose first B·HV·NC rows are the checkpoints and whose
// extra rows hold prep's outputs; its shape names the layout, so that a buffer of another value
// tile or mode is not taken for this one (the backward then rebuilds everything).
struct SavedX2 {
  Shape shape;
  int64_t ck = 0, au = 0;  // BF16 elements of the checkpoints and of one prep plane pair
  SavedX2(const GdnDims& d, int tiles, int KP, int vt, int nplanes) {
    const int64_t chunks = d.B * d.HV * d.NC, row = int64_t(tiles) * nplanes * KP * vt;
    ck = chunks * row;
    au = chunks * nplanes * kC * kC;
    const int64_t prep = 2 * au + 2 * chunks * kC;  // Au, A; γ (fp32, two BF16 slots each)
    shape = {chunks + (prep + row - 1) / row, int64_t(tiles), int64_t(nplanes), int64_t(KP), int64_t(vt)};
  }
  // 16-byte aligned: ck and au are multiples of 64 elements.
  bf16* au2(const Tensor& t) const { return const_cast<bf16*>(t.data<bf16>()) + ck; }
  bf16* a2(const Tensor& t) const { return au2(t) + au; }
  float* gam(const Tensor& t) const { return reinterpret_cast<float*>(a2(t) + au); }
};

// LT2_GDN_PROFILE=1: times each kernel of one op with events and prints a line to stderr
// (diagnostics for tuning: it synchronises, so never leave it on for real runs).
struct KernelTimer {
  bool on = std::getenv("LT2_GDN_PROFILE") != nullptr;
  std::vector<std::pair<const char*, cudaEvent_t>> marks;
  KernelTimer() { mark("start"); }
  void mark(const char* name) {
    if (!on) return;
    cudaEvent_t e;
    LT2_CUDA_CHECK(cudaEventCreate(&e));
    LT2_CUDA_CHECK(cudaEventRecord(e, stream()));
    marks.emplace_back(name, e);
  }
  void report(const char* op) {
    if (!on) return;
    LT2_CUDA_CHECK(cudaEventSynchronize(marks.back().second));
    std::string line = cat("[gdn-prof] ", op);
    for (size_t i = 1; i < marks.size(); ++i) {
      float ms = 0.f;
      LT2_CUDA_CHECK(cudaEventElapsedTime(&ms, marks[i - 1].second, marks[i].second));
      line += cat(" ", marks[i].first, " ", ms);
    }
    for (auto& m : marks) cudaEventDestroy(m.second);
    marks.clear();
    std::fprintf(stderr, "%s\n", line.c_str());
  }
};

}  // namespace

bool gdn_chunked_supported(DType dtype, int64_t K, int64_t V) {
  if (K < 1 || V < 1 || K > 256) return false;
  if (dtype == DType::BF16) return true;
  return dtype == DType::F32 && K <= 128;  // matches config_fits
}

Tensor gdn_chunked_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
                           const Tensor& h0, Tensor* hT, int value_tile, Tensor* states) {
  const GdnDims d = dims_of(q, v);
  LT2_CHECK(gdn_chunked_supported(q.dtype(), d.K, d.V), "gdn chunked: unsupported K ", d.K, " / dtype ",
            dtype_name(q.dtype()));
  const int vt = choose_vt(value_tile);
  Tensor o = Tensor::empty({d.B, d.L, d.HV, d.V}, q.dtype(), Device::CUDA);
  Tensor h = hT ? Tensor::empty({d.B, d.HV, d.K, d.V}, DType::F32, Device::CUDA) : Tensor();
  // Scratch lives until the op returns; the allocator reuses it only in stream order.
  Tensor A = f32_scratch(d.B * d.HV * d.NC * kC * kC), gam = f32_scratch(d.B * d.HV * d.NC * kC);
  with_config(q.dtype(), d.K, [&](auto tag, auto kp, auto pm) {
    using T = std::decay_t<decltype(tag)>;
    constexpr int KP = decltype(kp)::value, P = decltype(pm)::value;
    const int tiles = int((d.V + vt - 1) / vt);
    const SavedX2 saved(d, tiles, KP, vt, planes<P>());
    // The split-tile scan reads Au split, not A. With `states` it and prep's other outputs go
    // where the backward will find them.
    Tensor au2;
    bf16 *au2p = nullptr, *a2p = nullptr;
    float* gamp = gam.data<float>();
    if (use_x2<T, P>() && states) {
      *states = Tensor::empty(saved.shape, DType::BF16, Device::CUDA);
      au2p = saved.au2(*states), a2p = saved.a2(*states), gamp = saved.gam(*states);
    } else if (use_x2<T, P>()) {
      au2 = Tensor::empty(Shape{saved.au}, DType::BF16, Device::CUDA);
      au2p = au2.data<bf16>();
    }
    KernelTimer tm;
    launch_prep<T, KP, P>(k, beta, g, d, A, gamp, au2p, a2p);
    tm.mark("prep");
    ScanArgs a{};
    a.Au2 = au2p;
    a.q = q.data<T>();
    a.k = k.data<T>();
    a.v = v.data<T>();
    a.beta = beta.data<float>();
    a.A = A.data<float>();
    a.gam = gamp;
    a.h0 = h0.defined() ? h0.data<float>() : nullptr;
    a.o = o.data<T>();
    a.hT = hT ? h.data<float>() : nullptr;
    a.d = d;
    a.tiles = tiles;
    a.first_role = 0;
    if (use_x2<T, P>() && states) a.ckS = states->bytes();  // the checkpoints, first in `states`
    launch_scan<T, KP, P>(vt, a, 1);
    tm.mark("scan");
    tm.report("fwd");
  });
  if (hT) *hT = h;
  return o;
}

GdnGrads gdn_chunked_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
                              const Tensor& h0, const Tensor& dout, const Tensor& dhT, int value_tile,
                              const Tensor& states) {
  const GdnDims d = dims_of(q, v);
  LT2_CHECK(gdn_chunked_supported(q.dtype(), d.K, d.V), "gdn chunked: unsupported K ", d.K, " / dtype ",
            dtype_name(q.dtype()));
  const int vt = choose_vt(value_tile);
  const int tiles = int((d.V + vt - 1) / vt);
  GdnGrads gr = empty_gdn_grads(q, k, v, beta, g, h0);
  const int KP = padded_k(d.K);
  Tensor A = f32_scratch(d.B * d.HV * d.NC * kC * kC), gam = f32_scratch(d.B * d.HV * d.NC * kC);
  const int64_t ck = d.B * d.HV * d.NC * tiles * int64_t(KP) * vt;
  Tensor dq_part, dk_part;
  if (d.G > 1) {
    dq_part = f32_scratch(d.B * d.HV * d.L * d.K);
    dk_part = f32_scratch(d.B * d.HV * d.L * d.K);
  }
  with_config(q.dtype(), d.K, [&](auto tag, auto kp, auto pm) {
    using T = std::decay_t<decltype(tag)>;
    constexpr int KPc = decltype(kp)::value, P = decltype(pm)::value;
    const bool x2 = use_x2<T, P>();
    // Checkpoints: ckpt_t<P>, or with the split-tile kernels planes<P>() BF16 planes.
    const DType ckt = x2 || std::is_same<ckpt_t<P>, bf16>::value ? DType::BF16 : DType::F32;
    const int64_t ckn = x2 ? planes<P>() * ck : ck;
    // What the forward kept (SavedX2) when it is exactly this layout: then neither prep nor the
    // forward walk runs again, only the reverse scan.
    const SavedX2 saved(d, tiles, KPc, vt, planes<P>());
    const bool reuse = x2 && states.defined() && states.on_cuda() && states.dtype() == DType::BF16 &&
                       states.shape() == saved.shape;
    Tensor ckS = reuse ? states : Tensor::empty({ckn}, ckt, Device::CUDA), ckD = Tensor::empty({ckn}, ckt, Device::CUDA);
    Tensor au2, a2;
    bf16 *au2p = nullptr, *a2p = nullptr;
    float* gamp = gam.data<float>();
    KernelTimer tm;
    if (reuse) {
      au2p = saved.au2(states), a2p = saved.a2(states), gamp = saved.gam(states);
    } else {
      if (x2) {
        au2 = Tensor::empty(Shape{saved.au}, DType::BF16, Device::CUDA);
        a2 = Tensor::empty(Shape{saved.au}, DType::BF16, Device::CUDA);
        au2p = au2.data<bf16>(), a2p = a2.data<bf16>();
      }
      launch_prep<T, KPc, P>(k, beta, g, d, A, gamp, au2p, a2p);
      tm.mark("prep");
    }
    // One launch: forward blocks store S per chunk, reverse blocks dS' per chunk, dv and dh0.
    ScanArgs a{};
    a.Au2 = au2p;
    a.q = q.data<T>();
    a.k = k.data<T>();
    a.v = v.data<T>();
    a.dout = dout.data<T>();
    a.beta = beta.data<float>();
    a.A = A.data<float>();
    a.gam = gamp;
    a.h0 = h0.defined() ? h0.data<float>() : nullptr;
    a.dhT = dhT.defined() ? dhT.data<float>() : nullptr;
    a.ckS = static_cast<void*>(ckS.bytes());
    a.dv = gr.dv.data<T>();
    a.dh0 = h0.defined() ? gr.dh0.data<float>() : nullptr;
    a.ckD = static_cast<void*>(ckD.bytes());
    a.d = d;
    a.tiles = tiles;
    a.first_role = reuse ? 1 : 0;
    launch_scan<T, KPc, P>(vt, a, reuse ? 1 : 2);
    tm.mark(reuse ? "scan-reverse" : "scan2");

    GradArgs ga{};
    ga.q = q.data<T>();
    ga.k = k.data<T>();
    ga.v = v.data<T>();
    ga.dout = dout.data<T>();
    ga.beta = beta.data<float>();
    ga.A = A.data<float>();
    ga.gam = gamp;
    ga.ckS = static_cast<void*>(ckS.bytes());
    ga.ckD = static_cast<void*>(ckD.bytes());
    ga.Au2 = a.Au2;
    ga.A2 = a2p;
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
    if constexpr (std::is_same<T, bf16>::value && x2_mode<P>()) {
      if (x2) {
        launch_grad_x2<KPc, P>(ga);
        tm.mark("grad");
        if (d.G > 1) {
          const int64_t total = d.B * d.L * d.H * d.K;
          gdn_group_sum_kernel<T><<<unsigned(std::min<int64_t>(blocks_for(total, 256), 65535)), 256, 0, stream()>>>(
              dq_part.data<float>(), dk_part.data<float>(), gr.dq.data<T>(), gr.dk.data<T>(), d);
          check_launch("gdn chunked group sum");
          tm.mark("gsum");
        }
        tm.report("bwd");
        return;
      }
    }
    constexpr int VB = grad_vb<T, KPc, P>();
    constexpr int KSPLIT = KPc / (KPc < 128 ? KPc : 128);
    constexpr size_t smem = GradLayout<T, KPc, VB, P>::bytes;
    static_assert(smem <= kSmemLimit, "grad shared memory");
    static const bool once = (allow_smem(gdn_grad_kernel<T, KPc, VB, P>, smem, "grad"), true);
    (void)once;
    gdn_grad_kernel<T, KPc, VB, P><<<dim3(unsigned(d.NC), unsigned(d.HV), unsigned(d.B * KSPLIT)), kThreads, smem,
                                  stream()>>>(ga);
    check_launch("gdn chunked grad");
    tm.mark("grad");
    if (d.G > 1) {
      const int64_t total = d.B * d.L * d.H * d.K;
      gdn_group_sum_kernel<T><<<unsigned(std::min<int64_t>(blocks_for(total, 256), 65535)), 256, 0, stream()>>>(
          dq_part.data<float>(), dk_part.data<float>(), gr.dq.data<T>(), gr.dk.data<T>(), d);
      check_launch("gdn chunked group sum");
      tm.mark("gsum");
    }
    tm.report("bwd");
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
  GdnGrads gr = empty_gdn_grads(q, k, v, beta, g, h0);
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
