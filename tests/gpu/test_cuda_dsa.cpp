// CUDA parity tests for DeepSeek sparse attention: the indexer scores and their backward,
// top-k selection (exactly the CPU's, ties included), sparse attention forward/backward, the
// indexer's KL loss and gradient, and the decode step. Each op runs on the GPU in F32 and
// BF16 storage and is compared with the CPU reference in float64 on the same rounded inputs.
// The indexer's scores and everything on them are F32 on the GPU. Odd sizes on purpose.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "cpu/dsa.h"
#include "cuda/dsa_floor.h"
#include "cuda_util.h"

using namespace lt2;
using namespace lt2::test;

namespace {

// Integer scores in [0, 4) with a share of -0.0: ties are frequent and -0 must tie with +0.
Tensor tie_heavy_scores(int64_t B, int64_t L, uint64_t seed) {
  Tensor I = uniform({B, L, L}, seed, 0, 4);
  for (int64_t i = 0; i < I.numel(); ++i) {
    const double x = std::floor(I.item(i));
    I.set(i, x == 0 && i % 2 ? -0.0 : x);
  }
  return I;
}

// Scores on and below the diagonal (the rest is -inf on both sides and must match exactly).
Tensor lower(const Tensor& I_any, bool* upper_ok) {
  const Tensor I = I_any.to(Device::CPU, DType::F64);
  const int64_t B = I.dim(0), L = I.dim(1);
  Tensor out = Tensor::zeros(I.shape(), DType::F64);
  *upper_ok = true;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < L; ++t)
      for (int64_t s = 0; s < L; ++s) {
        const int64_t e = (b * L + t) * L + s;
        if (s <= t) out.set(e, I.item(e));
        else *upper_ok = *upper_ok && I.item(e) == -INFINITY;
      }
  return out;
}

}  // namespace

TEST(CudaDsa, TopKEqualsTheCpuIncludingTies) {
  LT2_REQUIRE_GPU();
  struct Case { int64_t B, L; bool ties; };
  for (const Case& c : {Case{2, 300, true}, Case{1, 1500, false}, Case{3, 37, true}}) {
    Tensor I = c.ties ? tie_heavy_scores(c.B, c.L, 7) : randn({c.B, c.L, c.L}, 8);
    I = I.to(DType::F32);  // the GPU's scores are F32; both sides get the same values
    for (int64_t k : {int64_t(1), int64_t(16), int64_t(64), c.L, c.L + 9})
      for (const char* staged : {"16384", "0"}) {  // rows in shared memory, or read from global memory each pass
        ScopedEnv env("LT2_DSA_TOPK_STAGED", staged);
        SCOPED_TRACE(cat("B", c.B, " L", c.L, " k", k, c.ties ? " ties" : "", " staged ", staged));
        Tensor want_values, got_values;
        const Tensor want = cpu::dsa_topk(I, k, &want_values);
        const Tensor got = gpu::dsa_topk(I.to(Device::CUDA), k, &got_values).to(Device::CPU);
        const Tensor gv = got_values.to(Device::CPU);
        int64_t mismatched = 0;
        for (int64_t i = 0; i < want.numel(); ++i)
          mismatched += want.item(i) != got.item(i) || want_values.item(i) != gv.item(i);
        EXPECT_EQ(mismatched, 0) << "slots that differ from the CPU's selection";
      }
  }
}

// The scores run on the tensor cores in BF16 for d_I 16, 32, 48 and 64 (indexer_scores_mma) and
// on the CUDA cores otherwise. The backward through both GPU paths: gathering per (query, slot)
// and per key, and over every causal pair with the sets' gradient scattered into a dense matrix
// (d_I <= 64; the d_I 80 case falls back to gathering on either setting). In BF16 the dense
// pairs run on the tensor cores for d_I 16, 32, 48 and 64 (L 130 and 150 take the unaligned
// dI-tile loads) and on the fp32 CUDA-core kernels for d_I 40.
TEST(CudaDsa, IndexerScoresAndBackward) {
  LT2_REQUIRE_GPU();
  struct Case { int64_t B, L, HI, dI, k; };
  for (const Case& c : {Case{2, 130, 4, 32, 16}, Case{1, 75, 3, 40, 8}, Case{1, 200, 2, 64, 24}, Case{1, 70, 2, 80, 9},
                        Case{2, 300, 4, 16, 32}, Case{1, 150, 3, 48, 20}})
    for (DType dt : kDtypes) {
      SCOPED_TRACE(name(cat("indexer B", c.B, " L", c.L, " HI", c.HI, " dI", c.dI), dt));
      const Tensor qI = randn({c.B, c.L, c.HI, c.dI}, 11), kI = randn({c.B, c.L, c.dI}, 12), w = randn({c.B, c.L, c.HI}, 13);
      const double ws = 1 / std::sqrt(double(c.HI)), tol = parity_tol(dt);
      const Tensor I_ref = cpu::dsa_indexer_scores(rounded(qI, dt), rounded(kI, dt), rounded(w, dt), ws);
      const Tensor I = gpu::dsa_indexer_scores(on_gpu(qI, dt), on_gpu(kI, dt), on_gpu(w, dt), ws);
      EXPECT_EQ(I.dtype(), DType::F32);
      bool upper_ref = false, upper = false;
      const Tensor lo_ref = lower(I_ref, &upper_ref), lo = lower(I, &upper);
      EXPECT_TRUE(upper) << "entries above the diagonal must be -inf";
      expect_close(lo, lo_ref, dt == DType::BF16 ? 1e-5 : 1e-6, name("I", dt));  // fp32 math on identical inputs
      // Backward on the dense set and on a top-k set, from the same gradient values.
      const Tensor idx = cpu::dsa_topk(I_ref, c.k, nullptr);
      for (const char* path : {"gather", "masked"}) {
        for (const Tensor& set : {Tensor(), idx}) {
          ScopedEnv env("LT2_DSA_PATH", path);
          const Tensor dIsel = randn({c.B, c.L, set.defined() ? c.k : c.L}, 14).to(DType::F32).to(DType::F64);
          Tensor dq_ref, dk_ref, dw_ref, dq, dk, dw;
          cpu::dsa_indexer_scores_backward(rounded(qI, dt), rounded(kI, dt), rounded(w, dt), ws, set, dIsel, dq_ref,
                                           dk_ref, dw_ref);
          gpu::dsa_indexer_scores_backward(on_gpu(qI, dt), on_gpu(kI, dt), on_gpu(w, dt), ws,
                                           set.defined() ? set.to(Device::CUDA) : Tensor(), on_gpu(dIsel, DType::F32),
                                           dq, dk, dw);
          const std::string which = cat(" ", path, set.defined() ? " top-k set" : " dense set");
          expect_gpu(dq, dt, dq_ref, tol, name("dqI" + which, dt));
          expect_gpu(dk, dt, dk_ref, tol, name("dkI" + which, dt));
          expect_gpu(dw, dt, dw_ref, tol, name("dw" + which, dt));
        }
      }
    }
}

// Both GPU paths: the gather kernels, and (BF16, head dim 64 / 128) the flash kernels with a
// key mask -- several query and key tiles, GQA, ragged last tiles, k above and below L.
TEST(CudaDsa, SparseAttentionForwardBackward) {
  LT2_REQUIRE_GPU();
  struct Case { int64_t B, L, H, Hkv, D, k; };
  for (const char* path : {"gather", "masked"}) {
    for (const Case& c : {Case{2, 150, 4, 2, 64, 16}, Case{1, 97, 3, 1, 40, 33}, Case{1, 20, 2, 2, 128, 64},
                          Case{2, 300, 4, 4, 64, 40}, Case{1, 270, 4, 1, 128, 9}})
      for (DType dt : kDtypes) {
        ScopedEnv env("LT2_DSA_PATH", path);
        SCOPED_TRACE(name(cat(path, " sparse B", c.B, " L", c.L, " H", c.H, "/", c.Hkv, " D", c.D, " k", c.k), dt));
        const double scale = 1 / std::sqrt(double(c.D)), tol = parity_tol(dt);
        const Tensor q = randn({c.B, c.L, c.H, c.D}, 21), k = randn({c.B, c.L, c.Hkv, c.D}, 22);
        const Tensor v = randn({c.B, c.L, c.Hkv, c.D}, 23), gy = randn({c.B, c.L, c.H, c.D}, 24);
        const Tensor idx = cpu::dsa_topk(randn({c.B, c.L, c.L}, 25), c.k, nullptr), idx_gpu = idx.to(Device::CUDA);
        Tensor lse_ref, lse;
        const Tensor o_ref = cpu::sparse_attention(rounded(q, dt), rounded(k, dt), rounded(v, dt), idx, scale, &lse_ref);
        const Tensor o = gpu::sparse_attention(on_gpu(q, dt), on_gpu(k, dt), on_gpu(v, dt), idx_gpu, scale, &lse);
        expect_gpu(o, dt, o_ref, tol, name("o", dt));
        expect_gpu(lse, DType::F32, lse_ref, tol, name("lse", dt));
        Tensor dq_ref, dk_ref, dv_ref, dq, dk, dv;
        cpu::sparse_attention_backward(rounded(q, dt), rounded(k, dt), rounded(v, dt), rounded(o_ref, dt),
                                       rounded(lse_ref, DType::F32), idx, rounded(gy, dt), scale, dq_ref, dk_ref, dv_ref);
        gpu::sparse_attention_backward(on_gpu(q, dt), on_gpu(k, dt), on_gpu(v, dt), on_gpu(o_ref, dt),
                                       on_gpu(lse_ref, DType::F32), idx_gpu, on_gpu(gy, dt), scale, dq, dk, dv);
        expect_gpu(dq, dt, dq_ref, tol, name("dq", dt));
        expect_gpu(dk, dt, dk_ref, tol, name("dk", dt));
        expect_gpu(dv, dt, dv_ref, tol, name("dv", dt));
        // Reproducible: the backward sums per key in query order, no atomics.
        Tensor dq2, dk2, dv2;
        gpu::sparse_attention_backward(on_gpu(q, dt), on_gpu(k, dt), on_gpu(v, dt), on_gpu(o_ref, dt),
                                       on_gpu(lse_ref, DType::F32), idx_gpu, on_gpu(gy, dt), scale, dq2, dk2, dv2);
        EXPECT_EQ(rel_l2(dk2.to(Device::CPU, DType::F64), dk.to(Device::CPU, DType::F64)), 0.0);
        EXPECT_EQ(rel_l2(dv2.to(Device::CPU, DType::F64), dv.to(Device::CPU, DType::F64)), 0.0);
      }
  }
}

// The KL target gathered per slot, and (BF16, head dim 64 / 128) read from the dense
// head-averaged probabilities on the tensor cores (L 150 spans two query and three key tiles).
TEST(CudaDsa, IndexerKlLossAndGradient) {
  LT2_REQUIRE_GPU();
  struct Case { int64_t B, L, H, Hkv, D, K; };
  for (const char* path : {"gather", "masked"})
    for (const Case& c : {Case{2, 90, 4, 2, 32, 12}, Case{2, 150, 4, 2, 64, 12}, Case{1, 150, 3, 3, 128, 40}})
      for (DType dt : kDtypes) {
        ScopedEnv env("LT2_DSA_PATH", path);
        const double scale = 1 / std::sqrt(double(c.D)), tol = parity_tol(dt);
        const Tensor q = randn({c.B, c.L, c.H, c.D}, 31), k = randn({c.B, c.L, c.Hkv, c.D}, 32);
        const Tensor v = randn({c.B, c.L, c.Hkv, c.D}, 33);
        const Tensor I = randn({c.B, c.L, c.L}, 34).to(DType::F32).to(DType::F64);
        const Tensor idx = cpu::dsa_topk(I, c.K, nullptr);
        for (const Tensor& set : {Tensor(), idx}) {
          SCOPED_TRACE(name(cat(path, " L", c.L, " H", c.H, "/", c.Hkv, " D", c.D, set.defined() ? " top-k set" :
                                " dense set"), dt));
          Tensor lse, Isel = I;
          if (set.defined()) {
            cpu::sparse_attention(rounded(q, dt), rounded(k, dt), rounded(v, dt), set, scale, &lse);
            cpu::dsa_topk(I, c.K, &Isel);
          } else {
            cpu::attention(rounded(q, dt), rounded(k, dt), rounded(v, dt), 0, scale, &lse);
          }
          lse = rounded(lse, DType::F32);
          Tensor sum_ref = Tensor::zeros({1}, DType::F64), sum = Tensor::zeros({1}, DType::F32, Device::CUDA);
          const Tensor dI_ref = cpu::dsa_indexer_kl(Isel, rounded(q, dt), rounded(k, dt), lse, set, scale, sum_ref);
          const Tensor dI = gpu::dsa_indexer_kl(on_gpu(Isel, DType::F32), on_gpu(q, dt), on_gpu(k, dt),
                                                on_gpu(lse, DType::F32), set.defined() ? set.to(Device::CUDA) : Tensor(),
                                                scale, sum);
          expect_gpu(dI, DType::F32, dI_ref, tol, name("dI", dt));
          expect_close(sum, sum_ref, tol, name("KL", dt));
          EXPECT_GT(sum_ref.item(0), 0);
        }
      }
}

TEST(CudaDsa, DecodeStepEqualsTheCpu) {
  LT2_REQUIRE_GPU();
  const int64_t B = 3, rows = 700, H = 4, Hkv = 2, D = 64, HI = 4, dI = 32;
  const Tensor q = randn({B, 1, H, D}, 41), kc = randn({B, rows, Hkv, D}, 42), vc = randn({B, rows, Hkv, D}, 43);
  const Tensor qI = randn({B, 1, HI, dI}, 44), w = randn({B, 1, HI}, 45), kIc = randn({B, rows, dI}, 46);
  Tensor positions = Tensor::empty({B}, DType::I32);
  const int32_t pos[B] = {699, 5, 300};
  for (int64_t b = 0; b < B; ++b) positions.set(b, pos[b]);
  for (DType dt : kDtypes)
    for (int64_t topk : {8, 64}) {
      SCOPED_TRACE(name(cat("decode k", topk), dt));
      const Tensor want = cpu::dsa_decode(rounded(q, dt), rounded(kc, dt), rounded(vc, dt), rounded(qI, dt),
                                          rounded(w, dt), rounded(kIc, dt), positions, topk, 0.5, 0.125);
      const Tensor got = gpu::dsa_decode(on_gpu(q, dt), on_gpu(kc, dt), on_gpu(vc, dt), on_gpu(qI, dt), on_gpu(w, dt),
                                         on_gpu(kIc, dt), positions.to(Device::CUDA), topk, 0.5, 0.125);
      expect_gpu(got, dt, want, parity_tol(dt), name("o", dt));
    }
}

// The benchmark's data-movement floor (cuda/dsa_floor.h) sums each query's selected K and V
// rows; checked against the float64 sum so the timed kernel is known to read what it claims.
// Rows of 8 pieces (32 slot lanes a block), 64, 256 (one lane) and 512 (two pieces a thread).
TEST(CudaDsa, GatherRowsSumReadsEverySelectedRow) {
  LT2_REQUIRE_GPU();
  struct Case { int64_t B, L, Hkv, D, k; };
  for (const Case& c : {Case{2, 130, 1, 64, 16}, Case{1, 77, 4, 128, 33}, Case{1, 40, 16, 128, 8},
                        Case{1, 33, 8, 256, 50}})
    for (DType dt : kDtypes) {
      SCOPED_TRACE(name(cat("gather B", c.B, " L", c.L, " Hkv", c.Hkv, " D", c.D, " k", c.k), dt));
      const Tensor k = rounded(randn({c.B, c.L, c.Hkv, c.D}, 41), dt), v = rounded(randn({c.B, c.L, c.Hkv, c.D}, 42), dt);
      const Tensor idx = cpu::dsa_topk(randn({c.B, c.L, c.L}, 43), c.k, nullptr);
      const int64_t W = c.Hkv * c.D;
      Tensor want = Tensor::zeros({c.B, c.L, W}, DType::F64);
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t t = 0; t < c.L; ++t)
          for (int64_t j = 0; j < c.k; ++j) {
            const int64_t s = int64_t(idx.item((b * c.L + t) * c.k + j));
            if (s < 0) continue;
            for (int64_t e = 0; e < W; ++e) {
              const int64_t o = (b * c.L + t) * W + e, r = (b * c.L + s) * W + e;
              want.set(o, want.item(o) + k.item(r) + v.item(r));
            }
          }
      const Tensor got = cuda::gather_rows_sum(on_gpu(k, dt), on_gpu(v, dt), idx.to(Device::CUDA));
      expect_gpu(got, DType::F32, want, 1e-5, "gathered sums");
    }
}

// And its scatter: every used slot adds the query's row into its key's row, onto what dst held.
TEST(CudaDsa, ScatterRowsAddAddsEveryPair) {
  LT2_REQUIRE_GPU();
  struct Case { int64_t B, L, W, k; };
  for (const Case& c : {Case{2, 130, 32, 16}, Case{1, 77, 512, 33}, Case{1, 40, 2048, 8}, Case{1, 33, 1028, 50}}) {
    SCOPED_TRACE(cat("scatter B", c.B, " L", c.L, " W", c.W, " k", c.k));
    const Tensor src = rounded(randn({c.B, c.L, c.W}, 44), DType::F32);
    const Tensor start = rounded(randn({c.B, c.L, c.W}, 45), DType::F32);
    const Tensor idx = cpu::dsa_topk(randn({c.B, c.L, c.L}, 46), c.k, nullptr);
    Tensor want = start.to(DType::F64);
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t t = 0; t < c.L; ++t)
        for (int64_t j = 0; j < c.k; ++j) {
          const int64_t s = int64_t(idx.item((b * c.L + t) * c.k + j));
          if (s < 0) continue;
          for (int64_t e = 0; e < c.W; ++e) {
            const int64_t o = (b * c.L + s) * c.W + e;
            want.set(o, want.item(o) + src.item((b * c.L + t) * c.W + e));
          }
        }
    Tensor got = on_gpu(start, DType::F32);
    cuda::scatter_rows_add(on_gpu(src, DType::F32), idx.to(Device::CUDA), got);
    expect_gpu(got, DType::F32, want, 1e-5, "scattered sums");
  }
}
