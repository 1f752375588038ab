// Fused attention backward on warpgroup MMA (Hopper, D = 128): dK, dV and dQ in one pass, five
// matrix products per tile instead of the seven of separate dQ and dK / dV kernels (which
// recompute S and dP twice). Included by flash_attention.cu inside its anonymous namespace, after
// the Hopper helpers (wgmma wrappers, swizzled tiles, descriptors) and the fused mma.sync kernel,
// whose ordered dQ accumulation it shares.
//
// Block (key tile of 128, KV head, batch) = 2 warpgroups x 64 keys; it walks the 64-query tiles
// of each query head of the KV group, last tile first. Per tile:
//   S^T = K Q^T, dP^T = V dO^T               keys as rows: P^T, dS^T are register A operands
//   dV += P^T dO, dK += dS^T Q               as in wg_dkv_kernel
//   dS^T -> shared memory (swizzled [128 keys][64 queries])
//   dQ_tile = dS K                           warpgroup w: columns 64 w .. 64 w + 63, A = dS^T
//                                            read transposed (MN-major), B = K (MN-major)
// and the tile's dQ share is added into the fp32 accumulator in ascending key-tile order, as in
// flash_bwd_kernel (see there): deterministic, no atomics, the last key tile writes bf16 dQ.
// Shared: Ks, Vs [128][D]; Qs, dOs [2][64][D]; dS^T [128][64]; lse, delta [2][64] (fp32).
constexpr int kWgBwdKeys = 128, kWgBwdRows = 64;
template <int D>
constexpr size_t wg_bwd_smem() {
  return sizeof(bf16) * size_t(2 * kWgBwdKeys * D + 4 * kWgBwdRows * D + kWgBwdKeys * kWgBwdRows) +
         sizeof(float) * 4 * kWgBwdRows + 1024;
}

template <int D>
__global__ void __launch_bounds__(kThreads, 1) wg_bwd_kernel(const FlashParams p) {
#ifdef LT2_FLASH_SM90A
  constexpr int BN = kWgBwdKeys, BM = kWgBwdRows;
  static_assert(D == 128, "dQ gives each warpgroup one 64-column block of D");
  extern __shared__ __align__(128) unsigned char smem_raw[];
  unsigned char* smem = align1k(smem_raw);
  bf16* Ks = reinterpret_cast<bf16*>(smem);
  bf16* Vs = Ks + BN * D;
  bf16* Qs = Vs + BN * D;         // [2][BM][D]
  bf16* dOs = Qs + 2 * BM * D;    // [2][BM][D]
  bf16* dSt = dOs + 2 * BM * D;   // [BN][BM], one swizzled 64-column block
  float* lse_s = reinterpret_cast<float*>(dSt + BN * BM);  // [2][BM]
  float* dl_s = lse_s + 2 * BM;                            // [2][BM]
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3, wg = warp >> 2;
  const BlockTile bt = block_tile();
  const int kb = bt.rank, s0 = kb * BN;  // the first key tiles are seen by the most queries: they start first
  const int hk = bt.head, b = bt.batch;
  const int64_t q_ld = int64_t(p.H) * D, kv_ld = int64_t(p.Hkv) * D;
  const int64_t kv_off = (int64_t(b) * p.L * p.Hkv + hk) * D;
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
    load_rows_sw<BM, D>(Qs + buf * BM * D, p.q + q_off, q_ld, qt0, p.L);
    load_rows_sw<BM, D>(dOs + buf * BM * D, p.dout + q_off, q_ld, qt0, p.L);
    load_floats<BM>(lse_s + buf * BM, p.lse_in + row_off, qt0, p.L);
    load_floats<BM>(dl_s + buf * BM, p.delta + row_off, qt0, p.L);
  };
  load_rows_sw<BN, D>(Ks, p.k + kv_off, kv_ld, s0, p.L);
  load_rows_sw<BN, D>(Vs, p.v + kv_off, kv_ld, s0, p.L);
  load_queries(0, 0);
  cp_async_commit();

  const int wk0 = s0 + warp * 16, wgk0 = s0 + wg * 64;  // the warp's / warpgroup's first key
  const uint32_t k_tile = smem_u32(Ks), v_tile = smem_u32(Vs), ds_tile = smem_u32(dSt);
  // dS^T pairs go to row (warp * 16 + g (+ 8)) of the swizzled tile: 16-byte chunk c of a row
  // sits in slot c ^ (row % 8) = c ^ g, so the quads of a store land in 8 different slots.
  unsigned char* ds_row = reinterpret_cast<unsigned char*>(dSt) + (warp * 16 + g) * 128 + 4 * tq;
  auto ds_store = [&](int r, int chunk, uint32_t v) {
    *reinterpret_cast<uint32_t*>(ds_row + r * 8 * 128 + ((chunk ^ g) << 4)) = v;
  };
  float acc_k[D / 8][4], acc_v[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc_k[i][j] = acc_v[i][j] = 0.f;

  for (int it = 0; it < n_iter; ++it) {
    const int buf = it & 1;
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();  // tile it landed for every thread; every warp has left tile it - 1
    if (it + 1 < n_iter) load_queries(it + 1, buf ^ 1);
    cp_async_commit();
    const int h = head_of(it), qt = tile_of(it), qt0 = qt * BM;
    // Warpgroup-uniform: every query of the tile is before the group's keys or past their window.
    const bool skip = wgk0 >= p.L || qt0 + BM - 1 < wgk0 || (p.window > 0 && qt0 - (wgk0 + 63) >= p.window);
    const uint32_t q_tile = smem_u32(Qs + buf * BM * D), do_tile = smem_u32(dOs + buf * BM * D);
    if (!skip) {
      const float* lse_t = lse_s + buf * BM;
      const float* dl_t = dl_s + buf * BM;
      float s[BM / 8][4], dp[BM / 8][4];
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
        wgmma_ss<BM, 0>(s, desc_kmajor<BN>(k_tile, wg * 64, kk), desc_kmajor<BM>(q_tile, 0, kk), kk);
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
        wgmma_ss<BM, 0>(dp, desc_kmajor<BN>(v_tile, wg * 64, kk), desc_kmajor<BM>(do_tile, 0, kk), kk);
      wgmma_commit();
      wgmma_wait<0>();
      reg_fence(s);
      reg_fence(dp);
      const bool need_mask = p.mask != nullptr ||
          qt0 + BM > p.L || wk0 + 15 > qt0 || (p.window > 0 && qt0 + BM - 1 - wk0 >= p.window);
      uint32_t mwt[2][(BM + 31) / 32];  // keys g, g + 8: their words for this query tile (all ones unmasked)
      mask_words(p, p.mask_t, b, wk0 + g, qt0 >> 5, mwt);
      uint32_t pa[BM / 16][4], sa[BM / 16][4];
#pragma unroll
      for (int nb = 0; nb < BM / 8; ++nb) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int col = nb * 8 + 2 * tq + (i & 1), t = qt0 + col;
          const bool vis = !need_mask || (t < p.L && visible_t(p, t, wk0 + g + 8 * (i >> 1), mwt[i >> 1][nb >> 2]));
          const float pr = vis ? exp2f(s[nb][i] * p.scale_log2 - lse_t[col] * kLog2e) : 0.f;
          s[nb][i] = pr;
          dp[nb][i] = pr * (dp[nb][i] - dl_t[col]);  // dS^T (scale applied at the end)
        }
        if (nb & 1) {
          const int kk = nb >> 1;
          c_to_a(pa[kk], s[nb - 1], s[nb]);
          c_to_a(sa[kk], dp[nb - 1], dp[nb]);
          // A fragment registers: rows g / g + 8, query columns 16 kk + 2 tq / + 8 (chunk 2 kk / + 1).
          ds_store(0, 2 * kk, sa[kk][0]);
          ds_store(1, 2 * kk, sa[kk][1]);
          ds_store(0, 2 * kk + 1, sa[kk][2]);
          ds_store(1, 2 * kk + 1, sa[kk][3]);
        }
      }
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < BM / 16; ++kk) {
        wgmma_rs<D, 1>(acc_v, pa[kk], desc_mnmajor<BM>(do_tile, kk), 1);
        wgmma_rs<D, 1>(acc_k, sa[kk], desc_mnmajor<BM>(q_tile, kk), 1);
      }
      wgmma_commit();
      wgmma_wait<0>();
      reg_fence(acc_v);
      reg_fence(acc_k);
    } else {
#pragma unroll
      for (int c = 0; c < BM / 8; ++c) {  // keys that see none of the tile add nothing to dQ
        ds_store(0, c, 0u);
        ds_store(1, c, 0u);
      }
    }
    fence_proxy_async();
    __syncthreads();  // dS^T of both warpgroups is in shared memory

    // This key tile's share of the tile's dQ: warp (wg, w) owns queries 16 w .. 16 w + 15 and
    // columns 64 wg .. 64 wg + 63.
    float dq[8][4];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk)
      wgmma_ss<64, 1, 1>(dq, desc_mnmajor<BN>(ds_tile, kk), desc_mnmajor<BN>(k_tile + wg * BN * 128, kk), kk);
    wgmma_commit();

    // Ordered accumulation (flash_bwd_kernel): the key tiles adding to query tile qt are
    // first..last; wait for those before this one while the product runs.
    const int first = p.window > 0 ? max(0, qt0 - p.window + 1) / BN : 0;
    const int last = (min(qt0 + BM, p.L) - 1) / BN;
    const int order = kb - first;
    const int64_t slot = ((int64_t(b) * p.H + h) * n_qtiles + qt) * 8 + warp;
    float4* acc = reinterpret_cast<float4*>(p.dq_acc + (slot * 32 + lane) * 32);
    unsigned* cnt = p.dq_cnt + slot;
    float4 prev[8];
    if (order > 0) {
      while (ld_acquire(cnt) < unsigned(order)) __nanosleep(32);
#pragma unroll
      for (int i = 0; i < 8; ++i) prev[i] = __ldcg(acc + i);
    }
    wgmma_wait<0>();
    reg_fence(dq);
    if (order > 0) {
#pragma unroll
      for (int i = 0; i < 8; ++i) {
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
        const int t = qt0 + (warp & 3) * 16 + g + 8 * r;
        if (t >= p.L) continue;
        bf16* row = p.out + q_off + int64_t(t) * q_ld + wg * 64 + 2 * tq;
#pragma unroll
        for (int i = 0; i < 8; ++i)
          *reinterpret_cast<uint32_t*>(row + i * 8) = pack_bf16(dq[i][2 * r] * p.scale, dq[i][2 * r + 1] * p.scale);
      }
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) __stcg(acc + i, make_float4(dq[i][0], dq[i][1], dq[i][2], dq[i][3]));
      __syncwarp();  // every lane's stores before lane 0's release (see flash_bwd_kernel)
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
#else
  __trap();
#endif
}
