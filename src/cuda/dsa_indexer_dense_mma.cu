// The lightning indexer's dense backward (cuda/dsa_indexer_dense.cu has the maths) on the tensor
// cores, for BF16 index vectors of width d_I = 16, 32, 48 or 64. Same two kernels and the same
// ownership (a query tile owns dqI and dw, a key tile owns dkI; fixed summation order, no
// atomics), each a block of 4 warps over 64 x 64 (query, key) tiles, a warp 16 rows:
//   scores  S = qI_j kIᵀ            mma, bf16 operands as stored, fp32 accumulation
//   G_j = [S > 0] w_scale dI w_j     in registers (the C fragments)
//   dqI_j += G_j kI,  dkI += G_jᵀ qI_j   mma with G split into bf16 hi + lo (~16 bits), so the
//                                     gradients keep about fp32 accuracy.
// The fp32 kernels do every product on the CUDA cores and read both operands of each
// multiply-add from shared memory. Measured on an H100 at B 16, L 2048, H_I 4, d_I 32, k 256:
// 6.67 ms for them, 7.35 ms for the gather kernels (the path training took there, a tenth of a
// small-125m GDN+DSA step) and 0.81 ms for these (bench/RESULTS.md).
#include "cuda/common.cuh"
#include "cuda/dsa_masked.h"
#include "cuda/mma_sync.cuh"

namespace lt2::cuda {

namespace {

constexpr int kTile = 64;       // queries and keys per tile
constexpr int kWarps = 4;       // 16 rows each
constexpr int kThreadsM = 32 * kWarps;
constexpr int kDiPad = 8;       // bf16 row padding (16 bytes): conflict-free ldmatrix
constexpr int kGradStride = kTile + 4;  // fp32 row stride of the dI tile

struct MmaShape {
  int L, HI;
  float w_scale;
};

// Rows [row0, row0 + 64) of a bf16 matrix (row stride ld, DI columns) into a padded tile; rows
// at or past L are zeros.
template <int DI>
__device__ __forceinline__ void load_vectors(bf16* dst, const bf16* src, int64_t ld, int row0, int L) {
  constexpr int kChunks = DI / 8;
  for (int i = threadIdx.x; i < kTile * kChunks; i += kThreadsM) {
    const int r = i / kChunks, c = (i % kChunks) * 8;
    const bool ok = row0 + r < L;
    cp_async16(dst + r * (DI + kDiPad) + c, ok ? src + int64_t(row0 + r) * ld + c : src, ok);
  }
}

// dI[b, t0 .., s0 ..] (64 x 64, fp32) into a tile, zeros past L (the causal mask is applied
// where the tile is read). Rows of 16-byte multiples go by cp.async (the caller commits).
__device__ __forceinline__ void load_grad_tile(float* dst, const float* dI, int64_t b, int t0, int s0, int L) {
  if (L % 4 == 0) {
    for (int i = threadIdx.x; i < kTile * kTile / 4; i += kThreadsM) {
      const int r = i / (kTile / 4), c = i % (kTile / 4) * 4, t = t0 + r, s = s0 + c;
      const bool ok = t < L && s < L;
      cp_async16(dst + r * kGradStride + c, ok ? dI + (b * L + t) * int64_t(L) + s : dI, ok);
    }
  } else {
    for (int i = threadIdx.x; i < kTile * kTile; i += kThreadsM) {
      const int r = i / kTile, c = i % kTile, t = t0 + r, s = s0 + c;
      dst[r * kGradStride + c] = t < L && s < L ? dI[(b * L + t) * int64_t(L) + s] : 0.f;
    }
  }
}

// The A fragments (hi and lo halves) of k-step kk from C fragments of column blocks 2kk, 2kk+1.
__device__ __forceinline__ void c_to_a_split(uint32_t (&hi)[4], uint32_t (&lo)[4], const float (&c0)[4],
                                             const float (&c1)[4]) {
  c_to_a(hi, c0, c1);
  float r0[4], r1[4];
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const __nv_bfloat162 h0 = *reinterpret_cast<const __nv_bfloat162*>(&hi[e / 2]);
    const __nv_bfloat162 h1 = *reinterpret_cast<const __nv_bfloat162*>(&hi[2 + e / 2]);
    r0[e] = c0[e] - (e % 2 ? __high2float(h0) : __low2float(h0));
    r1[e] = c1[e] - (e % 2 ? __high2float(h1) : __low2float(h1));
  }
  c_to_a(lo, r0, r1);
}

// acc (16 rows x DI) += Gᵀ-or-G (16 x 64, C fragments) times a row-major [64][DI] tile.
template <int DI>
__device__ __forceinline__ void accumulate_product(float (&acc)[DI / 8][4], const float (&g)[8][4],
                                                   const bf16* tile, int lane) {
#pragma unroll
  for (int kk = 0; kk < kTile / 16; ++kk) {
    uint32_t hi[4], lo[4];
    c_to_a_split(hi, lo, g[2 * kk], g[2 * kk + 1]);
#pragma unroll
    for (int n0 = 0; n0 < DI; n0 += 16) {
      uint32_t r[4];
      ldsm_x4_t(r, smem_u32(tile + kk * 16 * (DI + kDiPad) + n0 + lane_off_a<DI + kDiPad>(lane)));
      mma(acc[n0 / 8], hi, r[0], r[1]);
      mma(acc[n0 / 8 + 1], hi, r[2], r[3]);
      mma(acc[n0 / 8], lo, r[0], r[1]);
      mma(acc[n0 / 8 + 1], lo, r[2], r[3]);
    }
  }
}

// s (16 x 64) = the warp's 16 rows of `rows` (A fragments, DI wide) times the 64 rows of `cols`ᵀ.
template <int DI>
__device__ __forceinline__ void scores(float (&s)[8][4], const uint32_t (&a)[DI / 16][4], const bf16* cols,
                                       int lane) {
#pragma unroll
  for (int nb = 0; nb < 8; ++nb)
#pragma unroll
    for (int e = 0; e < 4; ++e) s[nb][e] = 0.f;
#pragma unroll
  for (int kk = 0; kk < DI / 16; ++kk)
#pragma unroll
    for (int n0 = 0; n0 < kTile; n0 += 16) {
      uint32_t r[4];
      ldsm_x4(r, smem_u32(cols + n0 * (DI + kDiPad) + kk * 16 + lane_off_b<DI + kDiPad>(lane)));
      mma(s[n0 / 8], a[kk], r[0], r[1]);
      mma(s[n0 / 8 + 1], a[kk], r[2], r[3]);
    }
}

template <int DI>
__device__ __forceinline__ void load_a(uint32_t (&a)[DI / 16][4], const bf16* tile, int row0, int lane) {
#pragma unroll
  for (int kk = 0; kk < DI / 16; ++kk)
    ldsm_x4(a[kk], smem_u32(tile + row0 * (DI + kDiPad) + kk * 16 + lane_off_a<DI + kDiPad>(lane)));
}

// Block (query tile, b), heaviest tiles first; per head j, walks the key tiles up to the diagonal.
template <int DI>
__global__ void __launch_bounds__(kThreadsM) indexer_dq_mma_kernel(const bf16* __restrict__ qI,
                                                                   const bf16* __restrict__ kI,
                                                                   const bf16* __restrict__ w,
                                                                   const float* __restrict__ dI, MmaShape d,
                                                                   bf16* __restrict__ dqI, bf16* __restrict__ dw) {
  __shared__ __align__(16) bf16 Qs[kTile * (DI + kDiPad)];
  __shared__ __align__(16) bf16 Ks[kTile * (DI + kDiPad)];
  __shared__ __align__(16) float Gs[kTile * kGradStride];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, tq = lane % 4, r0 = 16 * warp;
  const int64_t b = blockIdx.y;
  const int t0 = (int(gridDim.x) - 1 - int(blockIdx.x)) * kTile;
  for (int j = 0; j < d.HI; ++j) {
    __syncthreads();  // Qs of the previous head is still being read
    load_vectors<DI>(Qs, qI + (b * d.L * d.HI + j) * DI, int64_t(d.HI) * DI, t0, d.L);
    float wt[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int t = t0 + r0 + g + 8 * h;
      wt[h] = t < d.L ? ld(w[(b * d.L + t) * d.HI + j]) : 0.f;
    }
    float dq[DI / 8][4] = {}, dwp[2] = {};
    uint32_t qa[DI / 16][4];
    for (int s0 = 0; s0 <= t0; s0 += kTile) {
      __syncthreads();  // Ks and Gs of the previous tile are still being read
      load_vectors<DI>(Ks, kI + b * d.L * DI, DI, s0, d.L);
      load_grad_tile(Gs, dI, b, t0, s0, d.L);
      cp_async_commit();
      cp_async_wait<0>();
      __syncthreads();
      if (s0 == 0) load_a<DI>(qa, Qs, r0, lane);
      float s[8][4];
      scores<DI>(s, qa, Ks, lane);
#pragma unroll
      for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int row = r0 + g + 8 * (e / 2), col = nb * 8 + 2 * tq + e % 2;
          const float gv = s0 + col <= t0 + row ? Gs[row * kGradStride + col] * d.w_scale : 0.f;
          dwp[e / 2] += gv * fmaxf(s[nb][e], 0.f);
          s[nb][e] = s[nb][e] > 0.f ? gv * wt[e / 2] : 0.f;
        }
      accumulate_product<DI>(dq, s, Ks, lane);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {  // the 4 lanes of a row add their dw terms (xor 1, 2: same g)
      dwp[h] += __shfl_xor_sync(0xffffffffu, dwp[h], 1);
      dwp[h] += __shfl_xor_sync(0xffffffffu, dwp[h], 2);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int t = t0 + r0 + g + 8 * h;
      if (t >= d.L) continue;
      bf16* out = dqI + ((b * d.L + t) * d.HI + j) * DI;
#pragma unroll
      for (int nb = 0; nb < DI / 8; ++nb)
        *reinterpret_cast<uint32_t*>(out + nb * 8 + 2 * tq) = pack_bf16(dq[nb][2 * h], dq[nb][2 * h + 1]);
      if (tq == 0) dw[(b * d.L + t) * d.HI + j] = st<bf16>(dwp[h]);
    }
  }
}

// Block (key tile, b): walks the query tiles from the diagonal on, every head of each.
template <int DI>
__global__ void __launch_bounds__(kThreadsM) indexer_dk_mma_kernel(const bf16* __restrict__ qI,
                                                                   const bf16* __restrict__ kI,
                                                                   const bf16* __restrict__ w,
                                                                   const float* __restrict__ dI, MmaShape d,
                                                                   bf16* __restrict__ dkI) {
  __shared__ __align__(16) bf16 Qs[kTile * (DI + kDiPad)];
  __shared__ __align__(16) bf16 Ks[kTile * (DI + kDiPad)];
  __shared__ __align__(16) float Gs[kTile * kGradStride];
  __shared__ float Ws[kTile];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, tq = lane % 4, r0 = 16 * warp;
  const int64_t b = blockIdx.y;
  const int s0 = int(blockIdx.x) * kTile;
  load_vectors<DI>(Ks, kI + b * d.L * DI, DI, s0, d.L);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  uint32_t ka[DI / 16][4];
  load_a<DI>(ka, Ks, r0, lane);
  float dk[DI / 8][4] = {};
  for (int t0 = s0; t0 < d.L; t0 += kTile)
    for (int j = 0; j < d.HI; ++j) {
      __syncthreads();  // Qs, Gs and Ws of the previous step are still being read
      load_vectors<DI>(Qs, qI + (b * d.L * d.HI + j) * DI, int64_t(d.HI) * DI, t0, d.L);
      if (j == 0) load_grad_tile(Gs, dI, b, t0, s0, d.L);
      cp_async_commit();
      for (int i = threadIdx.x; i < kTile; i += kThreadsM)
        Ws[i] = t0 + i < d.L ? ld(w[(b * d.L + t0 + i) * d.HI + j]) * d.w_scale : 0.f;
      cp_async_wait<0>();
      __syncthreads();
      float s[8][4];  // Sᵀ: the warp's 16 keys (rows) by the tile's 64 queries
      scores<DI>(s, ka, Qs, lane);
#pragma unroll
      for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = r0 + g + 8 * (e / 2), query = nb * 8 + 2 * tq + e % 2;
          s[nb][e] = s[nb][e] > 0.f && s0 + key <= t0 + query ? Gs[query * kGradStride + key] * Ws[query] : 0.f;
        }
      accumulate_product<DI>(dk, s, Qs, lane);
    }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int s = s0 + r0 + g + 8 * h;
    if (s >= d.L) continue;
    bf16* out = dkI + (b * d.L + s) * DI;
#pragma unroll
    for (int nb = 0; nb < DI / 8; ++nb)
      *reinterpret_cast<uint32_t*>(out + nb * 8 + 2 * tq) = pack_bf16(dk[nb][2 * h], dk[nb][2 * h + 1]);
  }
}

// The scores themselves, I[b, t, s] = w_scale sum_j w[t, j] ReLU(qI[t, j] . kI[s]) for s <= t
// and -inf above the diagonal: block (key tile, query tile, b), a warp 16 query rows; per head
// j, S = qI_j kIᵀ on the tensor cores (fp32 accumulation) and the ReLU-weighted sum in the C
// fragments. The CUDA-core kernel (dsa.cu) read both operands of each multiply-add from shared
// memory.
template <int DI>
__global__ void __launch_bounds__(kThreadsM) indexer_scores_mma_kernel(const bf16* __restrict__ qI,
                                                                       const bf16* __restrict__ kI,
                                                                       const bf16* __restrict__ w, MmaShape d,
                                                                       float* __restrict__ I) {
  __shared__ __align__(16) bf16 Qs[kTile * (DI + kDiPad)];
  __shared__ __align__(16) bf16 Ks[kTile * (DI + kDiPad)];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, tq = lane % 4, r0 = 16 * warp;
  const int64_t b = blockIdx.z;
  const int t0 = int(blockIdx.y) * kTile, s0 = int(blockIdx.x) * kTile;
  float* out = I + b * d.L * int64_t(d.L);
  if (s0 > t0 + kTile - 1) {  // wholly above the diagonal
    for (int e = threadIdx.x; e < kTile * kTile; e += kThreadsM) {
      const int t = t0 + e / kTile, s = s0 + e % kTile;
      if (t < d.L && s < d.L) out[int64_t(t) * d.L + s] = -INFINITY;
    }
    return;
  }
  load_vectors<DI>(Ks, kI + b * d.L * DI, DI, s0, d.L);
  float acc[8][4] = {};
  for (int j = 0; j < d.HI; ++j) {
    __syncthreads();  // Qs of the previous head is still being read
    load_vectors<DI>(Qs, qI + (b * d.L * d.HI + j) * DI, int64_t(d.HI) * DI, t0, d.L);
    cp_async_commit();
    float wt[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int t = t0 + r0 + g + 8 * h;
      wt[h] = t < d.L ? ld(w[(b * d.L + t) * d.HI + j]) : 0.f;
    }
    cp_async_wait<0>();
    __syncthreads();
    uint32_t qa[DI / 16][4];
    load_a<DI>(qa, Qs, r0, lane);
    float sc[8][4];
    scores<DI>(sc, qa, Ks, lane);
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[nb][e] += wt[e / 2] * fmaxf(sc[nb][e], 0.f);
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int t = t0 + r0 + g + 8 * h;
    if (t >= d.L) continue;
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int s = s0 + nb * 8 + 2 * tq + e;
        if (s < d.L) out[int64_t(t) * d.L + s] = s <= t ? acc[nb][2 * h + e] * d.w_scale : -INFINITY;
      }
  }
}

template <int DI>
void launch(const Tensor& qI, const Tensor& kI, const Tensor& w, const float* dense, const MmaShape& d,
            Tensor& dqI, Tensor& dkI, Tensor& dw) {
  const dim3 grid(unsigned((d.L + kTile - 1) / kTile), unsigned(qI.dim(0)));
  indexer_dq_mma_kernel<DI><<<grid, kThreadsM, 0, stream()>>>(qI.data<bf16>(), kI.data<bf16>(), w.data<bf16>(), dense,
                                                             d, dqI.data<bf16>(), dw.data<bf16>());
  check_launch("dsa indexer backward (dqI, dw; tensor cores)");
  indexer_dk_mma_kernel<DI><<<grid, kThreadsM, 0, stream()>>>(qI.data<bf16>(), kI.data<bf16>(), w.data<bf16>(), dense,
                                                             d, dkI.data<bf16>());
  check_launch("dsa indexer backward (dkI; tensor cores)");
}

}  // namespace

bool indexer_dense_mma_supported(const Tensor& qI) {
  return qI.dtype() == DType::BF16 && qI.dim(3) % 16 == 0 && qI.dim(3) <= 64;
}

bool indexer_scores_mma(const Tensor& qI, const Tensor& kI, const Tensor& w, double w_scale, Tensor& I) {
  const int64_t B = qI.dim(0), L = qI.dim(1), HI = qI.dim(2), DI = qI.dim(3);
  const bool bf16_all = kI.dtype() == DType::BF16 && w.dtype() == DType::BF16;
  if (!indexer_dense_mma_supported(qI) || !bf16_all || !vec_aligned(8, DI, 2, {qI.bytes(), kI.bytes()}) ||
      L > INT_MAX / 2 || HI > INT_MAX / L || B > 65535)
    return false;
  if (B * L == 0) return true;
  const MmaShape d{int(L), int(HI), float(w_scale)};
  const unsigned tiles = unsigned((L + kTile - 1) / kTile);
  const dim3 grid(tiles, tiles, unsigned(B));
  auto run = [&](auto kernel) {
    kernel<<<grid, kThreadsM, 0, stream()>>>(qI.data<bf16>(), kI.data<bf16>(), w.data<bf16>(), d, I.data<float>());
  };
  switch (DI) {
    case 16: run(indexer_scores_mma_kernel<16>); break;
    case 32: run(indexer_scores_mma_kernel<32>); break;
    case 48: run(indexer_scores_mma_kernel<48>); break;
    default: run(indexer_scores_mma_kernel<64>); break;
  }
  check_launch("dsa indexer scores (tensor cores)");
  return true;
}

bool indexer_backward_dense_mma(const Tensor& qI, const Tensor& kI, const Tensor& w, double w_scale,
                                const float* dense, Tensor& dqI, Tensor& dkI, Tensor& dw) {
  const int64_t L = qI.dim(1), HI = qI.dim(2), DI = qI.dim(3);
  const bool bf16_all = kI.dtype() == DType::BF16 && w.dtype() == DType::BF16 && dqI.dtype() == DType::BF16 &&
                        dkI.dtype() == DType::BF16 && dw.dtype() == DType::BF16;
  // 16-byte rows for cp.async and 4-byte fragment stores.
  const bool aligned = vec_aligned(8, DI, 2, {qI.bytes(), kI.bytes(), dqI.bytes(), dkI.bytes()});
  if (!indexer_dense_mma_supported(qI) || !bf16_all || !aligned || L > INT_MAX / 2 || HI > INT_MAX / L) return false;
  const MmaShape d{int(L), int(HI), float(w_scale)};
  switch (DI) {
    case 16: launch<16>(qI, kI, w, dense, d, dqI, dkI, dw); break;
    case 32: launch<32>(qI, kI, w, dense, d, dqI, dkI, dw); break;
    case 48: launch<48>(qI, kI, w, dense, d, dqI, dkI, dw); break;
    default: launch<64>(qI, kI, w, dense, d, dqI, dkI, dw); break;
  }
  return true;
}

}  // namespace lt2::cuda
