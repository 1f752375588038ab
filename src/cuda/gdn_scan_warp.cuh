// The warp-column scan of the chunked GDN kernels (kBF16 only), included by gdn_chunked.cu inside
// its anonymous namespace: it uses that file's ScanArgs, gates, tile loads and mma helpers, and
// does the same walks as scan_x2_forward / scan_x2_reverse with the same BF16 rounding points.
//
// Why another scan: the split-tile scan spreads a value tile's state over 8 warps by (key, value)
// blocks, so each chunk's chain S -> X -> Δ -> S' crosses warps three times: the state, X and Δ
// are written to shared memory and read back behind block barriers, and that chain, not the
// tensor cores, sets the walk's time (one 8-warp block an SM issues an mma every ~9 cycles).
// Here each warp owns 16 value columns and keeps Sᵀ (16 × KP, fp32) in registers. Transposed,
// every product of the chain takes its left operand from the previous product's accumulators
// (the C fragments of two 8-column blocks are the A fragment of the next 16-wide k-step), and its
// right operand (K, Q, Au, M) from the chunk's shared tiles:
//   Xᵀ = Vᵀ − (Sᵀ Kᵀ) diag(e),  Δᵀ = Xᵀ Auᵀ,  Oᵀ = (Sᵀ Qᵀ) diag(e) + Δᵀ Mᵀ,
//   S'ᵀ = e_{C−1} Sᵀ + Δᵀ diag(Γl) K;
//   dΔᵀ = (dS'ᵀ Kᵀ) diag(Γl) + dOᵀ M,  dXᵀ = dΔᵀ Au,
//   dSᵀ = e_{C−1} dS'ᵀ + dOᵀ diag(e) Q − dXᵀ diag(e) K.
// A warp never waits for another inside the chain. The block (4 warps, one 64-column value tile,
// the checkpoints' vt) shares the chunk's tiles: M = tril(Q Kᵀ) ⊙ Γ is computed in 16 × 16 blocks
// dealt to the warps, and two barriers a chunk guard the buffers (the top one: the chunk's inputs
// are in and the previous chunk's buffers are free; the middle one: M is complete and Au has
// landed). Shared memory is ~106 KB at KP = 128 (q, k and the value tile double-buffered, Au and
// M once), so two blocks share an SM; grids that fit the SMs take Au a chunk ahead instead, and
// their forward launches split each block into walk and output warps (ws_forward). Outputs that
// are transposed here (o, dv, the checkpoints) are turned back by movmatrix before their stores.
// Measured on an H100 against the split-tile scan (bench/gpu/gdn_warp_scan_s8_h100.txt): fwd+bwd
// 1.33 -> 1.18 ms at B8 L2048 H6 V256, 2.04 -> 1.69 ms at B4 L4096 H16 V128.

constexpr int kWsWarps = 4, kWsThreads = 32 * kWsWarps, kWsVT = 16 * kWsWarps;

// NAU: Au buffers. With one, chunk c's Au is fetched at its top (its previous reader, Δ or dX of
// chunk c − 1, is then done) and waited for at the middle barrier; with two (~9 KB more, one block
// per SM, for grids that have no more blocks than SMs) it comes a chunk ahead with the other tiles.
template <int KP, int NAU>
struct WarpScanLayout {
  static constexpr int LDK = KP + 8, LDV = kWsVT + 8, LDC = kC + 8;
  static constexpr size_t QK = 2 * size_t(kC) * LDK;  // bytes of one q or k tile
  static constexpr size_t VTB = 2 * size_t(kC) * LDV;  // one value (v or dout) tile
  static constexpr size_t CT = 2 * size_t(kC) * LDC;   // one 64 × 64 tile
  __host__ __device__ static constexpr size_t q_at(int buf) { return buf * QK; }
  __host__ __device__ static constexpr size_t k_at(int buf) { return (2 + buf) * QK; }
  __host__ __device__ static constexpr size_t v_at(int buf) { return 4 * QK + buf * VTB; }
  static constexpr size_t AU = 4 * QK + 2 * VTB;
  __host__ __device__ static constexpr size_t au_at(int buf) { return AU + (NAU == 2 ? buf : 0) * CT; }
  static constexpr size_t M = AU + NAU * CT;
  static constexpr size_t VEC = M + CT;  // two gate buffers [β | γ | e | Γl]
  static constexpr size_t bytes = VEC + 2 * 4 * 4 * kC;
  // The split forward walk's handoff after it: Sᵀ and Δᵀ fragments of the 4 walk warps (one
  // 512-byte word row per 4 fragment registers).
  static constexpr size_t SF = bytes, DF = SF + 4 * (KP / 16) * 512, split_bytes = DF + 4 * 4 * 512;
};

// The transpose of an 8 × 8 BF16 matrix held one pair a lane (row g, columns 2t, 2t + 1).
__device__ __forceinline__ uint32_t movmatrix_t(uint32_t x) {
  uint32_t y;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
  return y;
}
__device__ __forceinline__ float bf_lo(uint32_t x) { return __uint_as_float(x << 16); }
__device__ __forceinline__ float bf_hi(uint32_t x) { return __uint_as_float(x & 0xffff0000u); }

// c_to_a (mma_sync.cuh) with column r of the product scaled by s[r] first (r = the block's column
// of each element).
__device__ __forceinline__ void ws_c_to_a_scaled(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4],
                                                 const float* s, int r0) {
  const int t = lane_t(), r = r0 + 2 * t;
  a[0] = pack_bf16(c0[0] * s[r], c0[1] * s[r + 1]);
  a[1] = pack_bf16(c0[2] * s[r], c0[3] * s[r + 1]);
  a[2] = pack_bf16(c1[0] * s[r + 8], c1[1] * s[r + 9]);
  a[3] = pack_bf16(c1[2] * s[r + 8], c1[3] * s[r + 9]);
}

// B fragments of the n-blocks n0, n0 + 8 at k-step k0 (regs 0, 1 and 2, 3) from a tile of row
// stride LD, by the ldmatrix patterns of mma_sync.cuh: ws_ldb_nk from a row-major [n][k] tile
// (B[k][n] = T[n][k]), ws_ldb_kn from a row-major [k][n] one.
template <int LD>
__device__ __forceinline__ void ws_ldb_nk(uint32_t (&b)[4], const bf16* tile, int n0, int k0) {
  ldsm_x4(b, tile + n0 * LD + k0 + lane_off_b<LD>(threadIdx.x & 31));
}
template <int LD>
__device__ __forceinline__ void ws_ldb_kn(uint32_t (&b)[4], const bf16* tile, int k0, int n0) {
  ldsm_x4_t(b, tile + k0 * LD + n0 + lane_off_a<LD>(threadIdx.x & 31));
}
// The A fragment of Xᵀ (16 × 16, rows m0.., k-step k0) from a row-major [k][m] tile X.
template <int LD>
__device__ __forceinline__ void ws_lda_t(uint32_t (&a)[4], const bf16* tile, int k0, int m0) {
  ldsm_x4_t(a, tile + k0 * LD + m0 + lane_off_b<LD>(threadIdx.x & 31));
}

// acc[2jj], acc[2jj + 1] += a · B over the n-block pairs jj in [j0, j1) (B from ldb(jj)).
template <int NJ, class LDB>
__device__ __forceinline__ void ws_mma_row(float (&acc)[NJ][4], const uint32_t (&a)[4], int j0, int j1, const LDB& ldb) {
#pragma unroll
  for (int jj = 0; jj < NJ / 2; ++jj) {
    if (jj < j0 || jj >= j1) continue;
    uint32_t b[4];
    ldb(b, jj);
    const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
    mma_bf16(acc[2 * jj], a, b0);
    mma_bf16(acc[2 * jj + 1], a, b1);
  }
}

// acc = (Sᵀ Tᵀ) diag(s) for a row-major [64][KP] tile T (k, q or K): the product of Sᵀ's A
// fragments with T's rows, column r scaled by s[r].
template <int KP, int LD>
__device__ __forceinline__ void ws_times_rows(float (&acc)[8][4], const uint32_t (&Sa)[KP / 16][4], const bf16* tile,
                                              const float* s) {
#pragma unroll
  for (int kk = 0; kk < KP / 16; ++kk)
    ws_mma_row(acc, Sa[kk], 0, 4, [&](uint32_t (&bb)[4], int jj) { ws_ldb_nk<LD>(bb, tile, 16 * jj, 16 * kk); });
  const int t = lane_t();
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int r = 8 * j + 2 * t;
    acc[j][0] *= s[r], acc[j][1] *= s[r + 1], acc[j][2] *= s[r], acc[j][3] *= s[r + 1];
  }
}

// Stores the transpose of a warp's 16 × 64 accumulator (rows = its value columns cw .. cw + 15,
// columns = the chunk's rows r) as BF16 into dst (the chunk's first row at the tile's first
// column, row stride ld): rows r < n and columns < ncol only.
__device__ __forceinline__ void ws_store_t(bf16* dst, int64_t ld, const float (&acc)[8][4], int n, int cw, int ncol,
                                           bool pairs) {
  const int g = lane_g(), t = lane_t();
  if (n == kC && ncol - cw >= 16 && pairs) {  // a whole tile: 4-byte stores at fixed offsets, no tests
    bf16* lane_dst = dst + g * ld + cw + 2 * t;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      *reinterpret_cast<uint32_t*>(lane_dst + 8 * j * ld) = movmatrix_t(pack_bf16(acc[j][0], acc[j][1]));
      *reinterpret_cast<uint32_t*>(lane_dst + 8 * j * ld + 8) = movmatrix_t(pack_bf16(acc[j][2], acc[j][3]));
    }
    return;
  }
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const uint32_t lo = movmatrix_t(pack_bf16(acc[j][0], acc[j][1]));  // row 8j + g, columns 2t, 2t + 1
    const uint32_t hi = movmatrix_t(pack_bf16(acc[j][2], acc[j][3]));  // columns 8 + 2t, 9 + 2t
    const int r = 8 * j + g;
    if (r >= n) continue;
    bf16* row = dst + r * ld;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int cc = cw + 8 * h + 2 * t;
      const uint32_t x = h ? hi : lo;
      store_pair(row + cc, bf_lo(x), bf_hi(x), ncol - cc, pairs);
    }
  }
}

// A checkpoint tile ([KP][kWsVT] BF16, as gdn_grad_x2_kernel reads it): this warp's columns of Sᵀ
// from its A fragments (the BF16 values the products read), transposed back.
template <int KP>
__device__ __forceinline__ void ws_store_ckpt(bf16* dst, const uint32_t (&Sa)[KP / 16][4], int cw) {
  bf16* lane_dst = dst + lane_g() * kWsVT + cw + 2 * lane_t();
#pragma unroll
  for (int kk = 0; kk < KP / 16; ++kk)
#pragma unroll
    for (int q = 0; q < 4; ++q)  // Sa[kk][q]: value rows 8 (q & 1) .., key columns 16 kk + 8 (q >> 1) ..
      *reinterpret_cast<uint32_t*>(lane_dst + (16 * kk + 8 * (q >> 1)) * kWsVT + 8 * (q & 1)) = movmatrix_t(Sa[kk][q]);
}

// Sᵀ (or dS'ᵀ) from a [B·HV, K, V] fp32 state (STORE = false; null: zero), or to one.
template <int KP, bool STORE, class F>
__device__ __forceinline__ void ws_state_io(float (&St)[KP / 8][4], F* p, const GdnDims& d, int64_t bhv, int64_t col,
                                            int vleft) {
  const int g = lane_g(), t = lane_t();
#pragma unroll
  for (int j = 0; j < KP / 8; ++j)
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int i = 8 * j + 2 * t + (q & 1), v = g + 8 * (q >> 1);
      const bool in = i < d.K && v < vleft;
      const int64_t at = (bhv * d.K + i) * d.V + col + v;
      if constexpr (STORE) {
        if (in) p[at] = St[j][q];
      } else {
        St[j][q] = (p && in) ? p[at] : 0.f;
      }
    }
}

// ws_issue_Au: chunk c's Au into Au buffer buf. ws_issue_inputs: its q (if want_q), k and value
// tile (v or dout, the block's 64 columns) into buffer buf, and with two Au buffers its Au too.
template <int KP, int NAU>
__device__ __forceinline__ void ws_issue_Au(const ScanArgs& a, int c, int buf, int64_t bhv, unsigned char* smem) {
  using Lay = WarpScanLayout<KP, NAU>;
  load_tile_async<kC, kC, Lay::LDC, bf16, kWsThreads>(reinterpret_cast<bf16*>(smem + Lay::au_at(buf)),
                                                      a.Au2 + (bhv * a.d.NC + c) * (kC * kC), kC, kC, kC);
}
template <int KP, int NAU>
__device__ __forceinline__ void ws_issue_inputs(const ScanArgs& a, int c, int buf, int64_t b, int64_t hv, int64_t col0,
                                                int ncol, bool want_q, const bf16* src, unsigned char* smem) {
  using Lay = WarpScanLayout<KP, NAU>;
  const GdnDims& d = a.d;
  const int64_t h = hv / d.G, t0 = int64_t(c) * kC;
  const int n = int(min64(kC, d.L - t0));
  const int64_t qk = ((b * d.L + t0) * d.H + h) * d.K;
  if (want_q)
    load_tile_async<kC, KP, Lay::LDK, bf16, kWsThreads>(reinterpret_cast<bf16*>(smem + Lay::q_at(buf)),
                                                        static_cast<const bf16*>(a.q) + qk, d.H * d.K, n, int(d.K));
  load_tile_async<kC, KP, Lay::LDK, bf16, kWsThreads>(reinterpret_cast<bf16*>(smem + Lay::k_at(buf)),
                                                      static_cast<const bf16*>(a.k) + qk, d.H * d.K, n, int(d.K));
  load_tile_async<kC, kWsVT, Lay::LDV, bf16, kWsThreads>(reinterpret_cast<bf16*>(smem + Lay::v_at(buf)),
                                                         src + ((b * d.L + t0) * d.HV + hv) * d.V + col0, d.HV * d.V,
                                                         n, ncol);
  if constexpr (NAU == 2) ws_issue_Au<KP, NAU>(a, c, buf, b * d.HV + hv, smem);
}

// M = tril(Q Kᵀ) ⊙ Γ (BF16), the 10 blocks of 16 × 16 on or below the diagonal, dealt to the
// warps in turn (3, 3, 2, 2 blocks: rows by warp left warp 3 four times warp 0's work, and the
// middle barrier waits for the slowest), Γ by exp_sfu.
template <int KP, int NAU>
__device__ __forceinline__ void ws_m_blocks(const bf16* qs, const bf16* ks, const float* gam, bf16* Mp, int warp) {
  using Lay = WarpScanLayout<KP, NAU>;
  const int lane = threadIdx.x & 31, g = lane_g(), t = lane_t();
#pragma unroll
  for (int u = 0; u < 3; ++u) {
    const int unit = warp + 4 * u;  // (row block rb, column block cb <= rb) in row order
    if (unit >= 10) break;
    const int rb = unit < 1 ? 0 : unit < 3 ? 1 : unit < 6 ? 2 : 3;
    const int cb = unit - rb * (rb + 1) / 2;
    float acc[2][4] = {};
#pragma unroll
    for (int kk = 0; kk < KP / 16; ++kk) {
      uint32_t a[4], b[4];
      ldsm_x4(a, qs + 16 * rb * Lay::LDK + 16 * kk + lane_off_a<Lay::LDK>(lane));
      ws_ldb_nk<Lay::LDK>(b, ks, 16 * cb, 16 * kk);
      const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
      mma_bf16(acc[0], a, b0);
      mma_bf16(acc[1], a, b1);
    }
    const int r0 = 16 * rb + g;
    const float gr[2] = {gam[r0], gam[r0 + 8]};
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int s = 16 * cb + 8 * h + 2 * t;
      const float gs0 = gam[s], gs1 = gam[s + 1];
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        const int r = r0 + 8 * rr;
        const float m0 = s <= r ? acc[h][2 * rr] * exp_sfu(gr[rr] - gs0) : 0.f;
        const float m1 = s + 1 <= r ? acc[h][2 * rr + 1] * exp_sfu(gr[rr] - gs1) : 0.f;
        *reinterpret_cast<uint32_t*>(Mp + r * Lay::LDC + s) = pack_bf16(m0, m1);
      }
    }
  }
}

// The A fragments of Sᵀ (BF16) that the products and the checkpoint read.
template <int KP>
__device__ __forceinline__ void ws_fragments(uint32_t (&Sa)[KP / 16][4], const float (&St)[KP / 8][4]) {
#pragma unroll
  for (int kk = 0; kk < KP / 16; ++kk) c_to_a(Sa[kk], St[2 * kk], St[2 * kk + 1]);
}
// A warp's fragment registers through shared memory ([register / 4][lane] 16-byte words: each
// instruction moves 512 consecutive bytes), for the output warps of the split forward walk.
template <int N>
__device__ __forceinline__ void ws_put_frags(uint4* dst, const uint32_t (&r)[N][4]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int i = 0; i < N; ++i) dst[i * 32 + lane] = make_uint4(r[i][0], r[i][1], r[i][2], r[i][3]);
}
template <int N>
__device__ __forceinline__ void ws_get_frags(uint32_t (&r)[N][4], const uint4* src) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const uint4 x = src[i * 32 + lane];
    r[i][0] = x.x, r[i][1] = x.y, r[i][2] = x.z, r[i][3] = x.w;
  }
}

// Forward walk of value tile `tile`: o, the checkpoints of S (if a.ckS) and hT.
//
// SPLIT (8 warps, NAU = 2; for grids with no more blocks than SMs, where each SM would otherwise
// run one warp per scheduler): warps 0–3 walk the state (X, Δ, S'), warps 4–7 the output of the
// same columns (M, O), so each chain carries about half of a chunk's instructions. The walk warps
// hand Sᵀ (at the end of the previous chunk) and Δᵀ (before the middle barrier) to their output
// warps as fragments in shared memory; the two barriers a chunk order every handoff.
template <int KP, int NAU, bool SPLIT = false>
__device__ __forceinline__ void ws_forward(const ScanArgs& a, int tile, int64_t b, unsigned char* smem) {
  using Lay = WarpScanLayout<KP, NAU>;
  static_assert(!SPLIT || NAU == 2, "the split walk computes Δ before the middle barrier");
  constexpr int NK = KP / 8, LDK = Lay::LDK, LDC = Lay::LDC;
  const GdnDims& d = a.d;
  const int64_t hv = blockIdx.y, bhv = b * d.HV + hv;
  const int warp = threadIdx.x >> 5, t = lane_t(), NC = int(d.NC);
  const int cwarp = SPLIT ? warp & 3 : warp;                   // the warp's columns
  const bool walk = !SPLIT || warp < 4, out = !SPLIT || warp >= 4;  // its jobs
  const int64_t col0 = int64_t(tile) * kWsVT;
  const int ncol = int(min64(kWsVT, d.V - col0)), cw = 16 * cwarp;
  bf16* o = static_cast<bf16*>(a.o);
  const bool want_o = o != nullptr, pairs = (d.V & 1) == 0;
  const bf16* vsrc = static_cast<const bf16*>(a.v);
  bf16* Mp = reinterpret_cast<bf16*>(smem + Lay::M);
  float* vec0 = reinterpret_cast<float*>(smem + Lay::VEC);
  uint4* SF = reinterpret_cast<uint4*>(smem + Lay::SF) + cwarp * (KP / 16) * 32;  // SPLIT: Sᵀ handoff
  uint4* DF = reinterpret_cast<uint4*>(smem + Lay::DF) + cwarp * 4 * 32;          // and Δᵀ

  Gates gt;
  float St[NK][4];
  uint32_t Sa[KP / 16][4];  // Sᵀ as A fragments: the checkpoint, Xᵀ, Oᵀ
  if (walk) {  // the copies are the walk warps' (in SPLIT, the first 128 threads)
    ws_issue_inputs<KP, NAU>(a, 0, 0, b, hv, col0, ncol, want_o, vsrc, smem);
    cp_async_commit();
    put_gates(vec0, fetch_gates(a, 0, b, hv));
    if (NC > 1) gt = fetch_gates(a, 1, b, hv);
    ws_state_io<KP, false>(St, a.h0, d, bhv, col0 + cw, ncol - cw);
    ws_fragments<KP>(Sa, St);
    if (SPLIT) ws_put_frags(SF, Sa);
  }

  for (int c = 0; c < NC; ++c) {
    const int64_t t0 = int64_t(c) * kC;
    const int n = int(min64(kC, d.L - t0)), buf = c & 1;
    const bool next = c + 1 < NC;
    const bf16* qs = reinterpret_cast<const bf16*>(smem + Lay::q_at(buf));
    const bf16* ks = reinterpret_cast<const bf16*>(smem + Lay::k_at(buf));
    const bf16* vs = reinterpret_cast<const bf16*>(smem + Lay::v_at(buf));
    const float* vec = vec0 + buf * 4 * kC;
    const float *gam = vec + kC, *e = vec + 2 * kC, *gl = vec + 3 * kC;
    cp_async_wait<0>();
    __syncthreads();  // chunk c's tiles, gates (and SPLIT's Sᵀ) are in; chunk c − 1's buffers are free
    const bf16* Aus = reinterpret_cast<const bf16*>(smem + Lay::au_at(buf));
    if (walk) {
      if constexpr (NAU == 1) {
        ws_issue_Au<KP, NAU>(a, c, 0, bhv, smem);
        cp_async_commit();
      }
      if (next) {
        ws_issue_inputs<KP, NAU>(a, c + 1, buf ^ 1, b, hv, col0, ncol, want_o, vsrc, smem);
        cp_async_commit();
        put_gates(vec0 + (buf ^ 1) * 4 * kC, gt);
        if (c + 2 < NC) gt = fetch_gates(a, c + 2, b, hv);
      }
    } else {
      ws_get_frags(Sa, SF);
    }
    uint32_t Xa[4][4], Da[4][4], Ga[4][4];  // Xᵀ, Δᵀ and Δᵀ diag(Γl) as A fragments (BF16)
    // Δᵀ = Xᵀ Auᵀ (Au lower triangular: k-steps kk <= jj).
    const auto delta = [&] {
      float D[8][4] = {};
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)
        ws_mma_row(D, Xa[kk], kk, 4, [&](uint32_t (&bb)[4], int jj) { ws_ldb_nk<LDC>(bb, Aus, 16 * jj, 16 * kk); });
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        c_to_a(Da[kk], D[2 * kk], D[2 * kk + 1]);
        ws_c_to_a_scaled(Ga[kk], D[2 * kk], D[2 * kk + 1], gl, 16 * kk);
      }
    };
    if (walk) {
      if (a.ckS)
        ws_store_ckpt<KP>(static_cast<bf16*>(a.ckS) + ((bhv * d.NC + c) * a.tiles + tile) * (KP * kWsVT), Sa, cw);
      // Xᵀ = Vᵀ − (Sᵀ Kᵀ) diag(e)
      float X[8][4] = {};
      ws_times_rows<KP, LDK>(X, Sa, ks, e);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        uint32_t va[4];  // Vᵀ's A fragment: its pairs are the C positions of blocks 2kk, 2kk + 1
        ws_lda_t<Lay::LDV>(va, vs, 16 * kk, cw);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          float(&x)[4] = X[2 * kk + h];
          x[0] = bf_lo(va[2 * h]) - x[0];
          x[1] = bf_hi(va[2 * h]) - x[1];
          x[2] = bf_lo(va[2 * h + 1]) - x[2];
          x[3] = bf_hi(va[2 * h + 1]) - x[3];
        }
        c_to_a(Xa[kk], X[2 * kk], X[2 * kk + 1]);
      }
      if constexpr (NAU == 2) {  // Au came with the chunk's tiles
        delta();
        if (SPLIT) ws_put_frags(DF, Da);
      }
    }
    float O[8][4] = {};  // Oᵀ = (Sᵀ Qᵀ) diag(e) + Δᵀ Mᵀ: its first product needs neither Δ nor M
    if (want_o && out) {
      ws_m_blocks<KP, NAU>(qs, ks, gam, Mp, cwarp);
      ws_times_rows<KP, LDK>(O, Sa, qs, e);
    }
    if constexpr (NAU == 1) {  // Au (the next chunk's tiles may still fly)
      cp_async_wait<1>();
      if (!next) cp_async_wait<0>();
    }
    __syncthreads();  // M complete, Au landed (and SPLIT's Δᵀ handed over)
    if constexpr (NAU == 1) delta();
    if (want_o && out) {
      if (SPLIT) ws_get_frags(Da, DF);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)
        ws_mma_row(O, Da[kk], kk, 4, [&](uint32_t (&bb)[4], int jj) { ws_ldb_nk<LDC>(bb, Mp, 16 * jj, 16 * kk); });
      ws_store_t(o + ((b * d.L + t0) * d.HV + hv) * d.V + col0, d.HV * d.V, O, n, cw, ncol, pairs);
    }
    if (walk) {  // S'ᵀ = e_{C−1} Sᵀ + Δᵀ diag(Γl) K
      const float el = e[kC - 1];
#pragma unroll
      for (int j = 0; j < NK; ++j)
#pragma unroll
        for (int q = 0; q < 4; ++q) St[j][q] *= el;
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)
        ws_mma_row(St, Ga[kk], 0, NK / 2, [&](uint32_t (&bb)[4], int jj) { ws_ldb_kn<LDK>(bb, ks, 16 * kk, 16 * jj); });
      ws_fragments<KP>(Sa, St);
      if (SPLIT && next) ws_put_frags(SF, Sa);  // the output warps read the last one before the barrier above
    }
  }
  if (walk && a.hT) ws_state_io<KP, true>(St, a.hT, d, bhv, col0 + cw, ncol - cw);
}

// Reverse walk of value tile `tile`: dv, the checkpoints of dS' (if a.ckD) and dh0.
template <int KP, int NAU>
__device__ __forceinline__ void ws_reverse(const ScanArgs& a, int tile, int64_t b, unsigned char* smem) {
  using Lay = WarpScanLayout<KP, NAU>;
  constexpr int NK = KP / 8, LDK = Lay::LDK, LDC = Lay::LDC;
  const GdnDims& d = a.d;
  const int64_t hv = blockIdx.y, bhv = b * d.HV + hv;
  const int warp = threadIdx.x >> 5, t = lane_t(), NC = int(d.NC);
  const int64_t col0 = int64_t(tile) * kWsVT;
  const int ncol = int(min64(kWsVT, d.V - col0)), cw = 16 * warp;
  bf16* dv = static_cast<bf16*>(a.dv);
  const bool pairs = (d.V & 1) == 0;
  const bf16* dosrc = static_cast<const bf16*>(a.dout);
  bf16* Mp = reinterpret_cast<bf16*>(smem + Lay::M);
  float* vec0 = reinterpret_cast<float*>(smem + Lay::VEC);

  ws_issue_inputs<KP, NAU>(a, NC - 1, 0, b, hv, col0, ncol, true, dosrc, smem);
  cp_async_commit();
  put_gates(vec0, fetch_gates(a, NC - 1, b, hv));
  Gates gt;
  if (NC > 1) gt = fetch_gates(a, NC - 2, b, hv);
  float St[NK][4];  // dS'ᵀ
  ws_state_io<KP, false>(St, a.dhT, d, bhv, col0 + cw, ncol - cw);

  for (int it = 0; it < NC; ++it) {
    const int c = NC - 1 - it;
    const int64_t t0 = int64_t(c) * kC;
    const int n = int(min64(kC, d.L - t0)), buf = it & 1;
    const bool next = it + 1 < NC;  // the next chunk is c − 1
    const bf16* qs = reinterpret_cast<const bf16*>(smem + Lay::q_at(buf));
    const bf16* ks = reinterpret_cast<const bf16*>(smem + Lay::k_at(buf));
    const bf16* dos = reinterpret_cast<const bf16*>(smem + Lay::v_at(buf));
    const float* vec = vec0 + buf * 4 * kC;
    const float *gam = vec + kC, *e = vec + 2 * kC, *gl = vec + 3 * kC;
    cp_async_wait<0>();
    __syncthreads();
    const bf16* Aus = reinterpret_cast<const bf16*>(smem + Lay::au_at(buf));
    if constexpr (NAU == 1) {
      ws_issue_Au<KP, NAU>(a, c, 0, bhv, smem);
      cp_async_commit();
    }
    if (next) {
      ws_issue_inputs<KP, NAU>(a, c - 1, buf ^ 1, b, hv, col0, ncol, true, dosrc, smem);
      cp_async_commit();
      put_gates(vec0 + (buf ^ 1) * 4 * kC, gt);
      if (it + 2 < NC) gt = fetch_gates(a, c - 2, b, hv);
    }
    float G[8][4] = {};  // dΔᵀ = (dS'ᵀ Kᵀ) diag(Γl) + dOᵀ M
    {
      uint32_t Sa[KP / 16][4];  // dS'ᵀ as A fragments, for the checkpoint and the product
      ws_fragments<KP>(Sa, St);
      if (a.ckD)
        ws_store_ckpt<KP>(static_cast<bf16*>(a.ckD) + ((bhv * d.NC + c) * a.tiles + tile) * (KP * kWsVT), Sa, cw);
      ws_times_rows<KP, LDK>(G, Sa, ks, gl);
    }
    uint32_t dOa[4][4];  // dOᵀ, A fragments
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) ws_lda_t<Lay::LDV>(dOa[kk], dos, 16 * kk, cw);
    ws_m_blocks<KP, NAU>(qs, ks, gam, Mp, warp);
    if constexpr (NAU == 1) {
      cp_async_wait<1>();
      if (!next) cp_async_wait<0>();
    }
    __syncthreads();  // M complete, Au landed
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)  // M[s][r] is zero for r > s: n-blocks jj <= kk
      ws_mma_row(G, dOa[kk], 0, kk + 1, [&](uint32_t (&bb)[4], int jj) { ws_ldb_kn<LDC>(bb, Mp, 16 * kk, 16 * jj); });
    // dXᵀ = dΔᵀ Au (Au[r][s] is zero for s > r: n-blocks jj <= kk); dv = dX
    float X[8][4] = {};
    {
      uint32_t Ga[4][4];
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) c_to_a(Ga[kk], G[2 * kk], G[2 * kk + 1]);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)
        ws_mma_row(X, Ga[kk], 0, kk + 1, [&](uint32_t (&bb)[4], int jj) { ws_ldb_kn<LDC>(bb, Aus, 16 * kk, 16 * jj); });
    }
    ws_store_t(dv + ((b * d.L + t0) * d.HV + hv) * d.V + col0, d.HV * d.V, X, n, cw, ncol, pairs);
    // dSᵀ = e_{C−1} dS'ᵀ + dOᵀ diag(e) Q − dXᵀ diag(e) K
    const float el = e[kC - 1];
#pragma unroll
    for (int j = 0; j < NK; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) St[j][q] *= el;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t ea[4], xa[4];  // (e dO)ᵀ and (−e dX)ᵀ, A fragments
      const int r = 16 * kk + 2 * t;
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int rr = r + 8 * (q >> 1);
        ea[q] = pack_bf16(bf_lo(dOa[kk][q]) * e[rr], bf_hi(dOa[kk][q]) * e[rr + 1]);
      }
      ws_c_to_a_scaled(xa, X[2 * kk], X[2 * kk + 1], e, 16 * kk);
#pragma unroll
      for (int q = 0; q < 4; ++q) xa[q] ^= 0x80008000u;  // negate both halves
      ws_mma_row(St, ea, 0, NK / 2, [&](uint32_t (&bb)[4], int jj) { ws_ldb_kn<LDK>(bb, qs, 16 * kk, 16 * jj); });
      ws_mma_row(St, xa, 0, NK / 2, [&](uint32_t (&bb)[4], int jj) { ws_ldb_kn<LDK>(bb, ks, 16 * kk, 16 * jj); });
    }
  }
  if (a.dh0) ws_state_io<KP, true>(St, a.dh0, d, bhv, col0 + cw, ncol - cw);
}

// Grid (tiles, HV, B · roles), role-major, the reverse role (the longer walk) first: the block
// scheduler spreads a grid over the SMs before it doubles up, so with both roles in one launch
// (B4 L4096 H16: 128 blocks each on 132 SMs) most SMs hold one block of each; with the roles
// interleaved by blockIdx.x they came in same-role pairs, and the SMs holding two reverse blocks
// set the time. Where the grid exceeds the SMs' slots, the reverse blocks start first.
template <int KP, int NAU>
__global__ void __launch_bounds__(kWsThreads, 2) gdn_scan_warp_kernel(ScanArgs a) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int rz = int(blockIdx.z / a.d.B);
  const int role = gridDim.z > a.d.B ? 1 - rz : a.first_role;
  const int64_t b = blockIdx.z % a.d.B;
  if (role == 0) ws_forward<KP, NAU>(a, int(blockIdx.x), b, smem);
  else ws_reverse<KP, NAU>(a, int(blockIdx.x), b, smem);
}

// The split forward walk (8 warps, one block per SM): forward launches whose grid fits the SMs.
template <int KP>
__global__ void __launch_bounds__(2 * kWsThreads, 1) gdn_scan_warp_split_kernel(ScanArgs a) {
  extern __shared__ __align__(16) unsigned char smem[];
  ws_forward<KP, 2, true>(a, int(blockIdx.x), int64_t(blockIdx.z), smem);
}
