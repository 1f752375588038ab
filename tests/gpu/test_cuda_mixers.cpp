// CUDA parity tests for the sequence mixers: softmax attention, the short causal conv and
// the Gated DeltaNet core. Each op runs on the GPU in F32 and BF16 storage and is compared
// with the CPU reference run in float64 on the same (rounded) inputs; GDN is compared with
// the token-by-token recurrence (the oracle). Sizes are odd on purpose (L = 37, 63, 75, 130,
// 200; C = 70; V = 40, 96) so that partial tiles, partial chunks and tails are exercised.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "cuda/cuda_ops.h"  // conv_silu_l2norm_fused (a stub without CUDA)
#include "gdn_cases.h"

using namespace lt2;
using namespace lt2::test;

namespace {



// ---- attention -------------------------------------------------------------------------------

struct AttnCase {
  int64_t B, L, H, Hkv, D, window;
};

void check_attention(const AttnCase& c, DType dt, uint64_t seed) {
  const std::string tag = cat("attention B", c.B, " L", c.L, " H", c.H, "/", c.Hkv, " D", c.D, " w", c.window);
  SCOPED_TRACE(name(tag, dt));
  const double scale = 1.0 / std::sqrt(double(c.D)), tol = parity_tol(dt);
  Tensor q = randn({c.B, c.L, c.H, c.D}, seed), k = randn({c.B, c.L, c.Hkv, c.D}, seed + 1);
  Tensor v = randn({c.B, c.L, c.Hkv, c.D}, seed + 2), gy = randn({c.B, c.L, c.H, c.D}, seed + 3);

  Tensor lse_ref;
  const Tensor o_ref = cpu::attention(rounded(q, dt), rounded(k, dt), rounded(v, dt), c.window, scale, &lse_ref);
  Tensor lse;
  const Tensor o = gpu::attention(on_gpu(q, dt), on_gpu(k, dt), on_gpu(v, dt), c.window, scale, &lse);
  expect_gpu(o, dt, o_ref, tol, name("o", dt));
  expect_gpu(lse, DType::F32, lse_ref, tol, name("lse", dt));
  // Without lse (inference): the same output.
  expect_gpu(gpu::attention(on_gpu(q, dt), on_gpu(k, dt), on_gpu(v, dt), c.window, scale, nullptr), dt, o_ref, tol,
             name("o without lse", dt));

  // Backward: both sides get the same o (in the activation dtype) and lse (F32).
  Tensor dq_ref, dk_ref, dv_ref;
  cpu::attention_backward(rounded(q, dt), rounded(k, dt), rounded(v, dt), rounded(o_ref, dt),
                          rounded(lse_ref, DType::F32), rounded(gy, dt), c.window, scale, dq_ref, dk_ref, dv_ref);
  Tensor dq, dk, dv;
  gpu::attention_backward(on_gpu(q, dt), on_gpu(k, dt), on_gpu(v, dt), on_gpu(o_ref, dt),
                          on_gpu(lse_ref, DType::F32), on_gpu(gy, dt), c.window, scale, dq, dk, dv);
  expect_gpu(dq, dt, dq_ref, tol, name("dq", dt));
  expect_gpu(dk, dt, dk_ref, tol, name("dk", dt));
  expect_gpu(dv, dt, dv_ref, tol, name("dv", dt));
}

// ---- GDN -------------------------------------------------------------------------------------

void check_gdn(const GdnCase& c, DType dt, uint64_t seed) {
  const std::string tag = cat("gdn B", c.B, " L", c.L, " H", c.H, " HV", c.HV, " K", c.K, " V", c.V, " decay ",
                              int(c.decay), c.with_h0 ? " h0" : "", c.with_dhT ? " dhT" : "");
  SCOPED_TRACE(name(tag, dt));
  const GdnTols tol = gdn_tols(dt);
  const GdnInputs in = make_gdn_inputs(c, seed);
  const Tensor &q = in.q, &k = in.k, &v = in.v, &beta = in.beta, &g = in.g, &h0 = in.h0, &dout = in.dout,
               &dhT = in.dhT;
  const Tensor qr = rounded(q, dt), kr = rounded(k, dt), vr = rounded(v, dt);
  const Tensor qg = on_gpu(q, dt), kg = on_gpu(k, dt), vg = on_gpu(v, dt);

  Tensor hT_ref;
  const Tensor o_ref = cpu::gdn(qr, kr, vr, ref_f32(beta), ref_f32(g), ref_f32(h0), &hT_ref, /*chunked=*/false);
  for (bool chunked : {false, true}) {  // the flag makes no difference on CUDA
    Tensor hT;
    const Tensor o = gpu::gdn(qg, kg, vg, gpu_f32(beta), gpu_f32(g), gpu_f32(h0), &hT, chunked);
    expect_gpu(o, dt, o_ref, tol.o, name(cat("o chunked=", chunked), dt));
    expect_gpu(hT, DType::F32, hT_ref, tol.hT, name(cat("hT chunked=", chunked), dt));
  }
  expect_gpu(gpu::gdn(qg, kg, vg, gpu_f32(beta), gpu_f32(g), gpu_f32(h0), nullptr, true), dt, o_ref, tol.o,
             name("o without hT", dt));

  const GdnGrads ref = cpu::gdn_backward(qr, kr, vr, ref_f32(beta), ref_f32(g), ref_f32(h0), rounded(dout, dt),
                                         ref_f32(dhT), /*chunked=*/false);
  const GdnGrads gr = gpu::gdn_backward(qg, kg, vg, gpu_f32(beta), gpu_f32(g), gpu_f32(h0), on_gpu(dout, dt),
                                        gpu_f32(dhT), /*chunked=*/true);
  expect_gpu(gr.dq, dt, ref.dq, tol.dqkv, name("dq", dt));
  expect_gpu(gr.dk, dt, ref.dk, tol.dqkv, name("dk", dt));
  expect_gpu(gr.dv, dt, ref.dv, tol.dqkv, name("dv", dt));
  expect_gpu(gr.dbeta, DType::F32, ref.dbeta, tol.dgates, name("dbeta", dt));
  expect_gpu(gr.dg, DType::F32, ref.dg, tol.dgates, name("dg", dt));
  if (c.with_h0) expect_gpu(gr.dh0, DType::F32, ref.dh0, tol.dh0, name("dh0", dt));
  else EXPECT_FALSE(gr.dh0.defined()) << "dh0 without h0";
}

}  // namespace

TEST(CudaMixers, AttentionFull) {
  LT2_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    check_attention({2, 37, 4, 2, 64, 0}, dt, 10);   // GQA, partial tile
    check_attention({1, 130, 2, 1, 128, 0}, dt, 20);  // MQA, several key tiles
    check_attention({1, 70, 2, 2, 256, 0}, dt, 25);   // the largest head dim
    check_attention({1, 45, 2, 2, 40, 0}, dt, 27);    // head dim not a multiple of 32
  }
}

TEST(CudaMixers, AttentionWindow) {
  LT2_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    check_attention({2, 130, 4, 2, 64, 17}, dt, 30);  // window smaller than a tile
    check_attention({1, 130, 2, 2, 128, 40}, dt, 40);  // window across tiles
    check_attention({1, 37, 4, 2, 64, 1}, dt, 45);     // only the own key
    check_attention({1, 37, 2, 1, 64, 100}, dt, 47);   // window longer than the sequence
  }
}

TEST(CudaMixers, AttentionSingleToken) {
  LT2_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    check_attention({2, 1, 4, 2, 64, 0}, dt, 50);
    check_attention({1, 1, 2, 2, 128, 8}, dt, 60);
  }
}

static void check_conv_silu(int64_t B, int64_t L, int64_t C, int64_t W, DType dt, DType wdt) {
  Tensor x = randn({B, L, C}, 70), w = randn({C, W}, 71, 0.5), gy = randn({B, L, C}, 72);
  Tensor dw0 = randn({C, W}, 73, 0.5);
  const double tol = parity_tol(dt);
  const Tensor xr = rounded(x, dt), wr = rounded(w, wdt), gyr = rounded(gy, dt);
  expect_gpu(gpu::conv_silu(on_gpu(x, dt), on_gpu(w, wdt)), dt, cpu::conv_silu(xr, wr), tol, name("y", dt));

  Tensor dw_ref = rounded(dw0, DType::F32), dw = on_gpu(dw0, DType::F32);
  const Tensor dx_ref = cpu::conv_silu_backward(xr, wr, gyr, dw_ref);
  const Tensor dx = gpu::conv_silu_backward(on_gpu(x, dt), on_gpu(w, wdt), on_gpu(gy, dt), dw);
  expect_gpu(dx, dt, dx_ref, tol, name("dx", dt));
  expect_gpu(dw, DType::F32, dw_ref, tol, name("dw (accumulated)", dt));
  // The increment alone, so that the pre-filled value cannot hide an error.
  Tensor inc = dw.to(Device::CPU, DType::F64), inc_ref = dw_ref.clone();
  const Tensor base = rounded(dw0, DType::F32);
  for (int64_t i = 0; i < inc.numel(); ++i) {
    inc.set(i, inc.item(i) - base.item(i));
    inc_ref.set(i, inc_ref.item(i) - base.item(i));
  }
  expect_close(inc, inc_ref, tol, name("dw increment", dt));
}

// The kernels tile each sequence into runs of 32 rows and take 4 channels per thread when
// C allows it: the shapes cover one and several runs, ragged last runs, several channel
// stripes with a partial last one (C = 520), the 1-channel path (C = 70), widths 1 and 6 (the
// wide kernel) and sequences shorter than the width.
TEST(CudaMixers, ConvSilu) {
  LT2_REQUIRE_GPU();
  struct Shape4 {
    int64_t B, L, C, W;
  };
  // W 4 (a compile-time width), 3 and 1 (runtime widths up to 4), 6 (the wide kernel); ragged runs.
  for (const Shape4 s : {Shape4{2, 37, 70, 4}, Shape4{2, 75, 64, 4}, Shape4{1, 40, 8, 6}, Shape4{2, 3, 12, 4},
                         Shape4{1, 33, 16, 1}, Shape4{2, 75, 64, 3}, Shape4{2, 70, 520, 4}})
    for (DType dt : kDtypes)
      for (DType wdt : {DType::F32, dt}) {  // the weight may be F32 or the activations' dtype
        SCOPED_TRACE(cat("conv B", s.B, " L", s.L, " C", s.C, " W", s.W, " x ", dtype_name(dt), " w ",
                         dtype_name(wdt)));
        check_conv_silu(s.B, s.L, s.C, s.W, dt, wdt);
      }
}

// The conv with GDN's per-head L2 norm: heads of 128, 64 and 32 channels take the fused
// kernels (32, 16 and 8 lanes a head; the test asserts it), other shapes the composed ops.
TEST(CudaMixers, ConvSiluL2norm) {
  LT2_REQUIRE_GPU();
  struct Case {
    int64_t B, L, C, W, head;
    bool fused;
  };
  for (const Case s : {Case{2, 75, 512, 4, 128, true}, Case{1, 37, 256, 4, 64, true}, Case{2, 33, 128, 4, 32, true},
                       Case{1, 40, 96, 4, 32, false}, Case{1, 20, 256, 4, 256, false}, Case{2, 9, 128, 3, 64, false}})
    for (DType dt : kDtypes) {
      SCOPED_TRACE(cat("conv+l2norm B", s.B, " L", s.L, " C", s.C, " W", s.W, " head ", s.head, " ", dtype_name(dt)));
      Tensor x = randn({s.B, s.L, s.C}, 90), w = randn({s.C, s.W}, 91, 0.5), gy = randn({s.B, s.L, s.C}, 92);
      Tensor dw0 = randn({s.C, s.W}, 93, 0.5);
      const Tensor xr = rounded(x, dt), wr = rounded(w, DType::F32), gyr = rounded(gy, dt);
      const Tensor xg = on_gpu(x, dt), wg = on_gpu(w, DType::F32);
      ASSERT_EQ(cuda::conv_silu_l2norm_fused(xg, wg, s.head), s.fused);
      const double tol = parity_tol(dt);
      expect_gpu(gpu::conv_silu_l2norm(xg, wg, s.head, 0.3), dt, cpu::conv_silu_l2norm(xr, wr, s.head, 0.3), tol,
                 name("y", dt));
      Tensor dw_ref = rounded(dw0, DType::F32), dw = on_gpu(dw0, DType::F32);
      const Tensor dx_ref = cpu::conv_silu_l2norm_backward(xr, wr, s.head, 0.3, gyr, dw_ref);
      const Tensor dx = gpu::conv_silu_l2norm_backward(xg, wg, s.head, 0.3, on_gpu(gy, dt), dw);
      expect_gpu(dx, dt, dx_ref, tol, name("dx", dt));
      expect_gpu(dw, DType::F32, dw_ref, tol, name("dw (accumulated)", dt));
    }
}

TEST(CudaMixers, ConvSiluStepMatchesFullConv) {
  LT2_REQUIRE_GPU();
  const int64_t B = 2, L = 9, C = 70, W = 4;
  Tensor x = randn({B, L, C}, 80), w = randn({C, W}, 81, 0.5);
  for (DType dt : kDtypes)
    for (DType cdt : {dt, DType::F32}) {  // the cache in the activations' dtype or F32
      SCOPED_TRACE(cat("conv step x ", dtype_name(dt), " cache ", dtype_name(cdt)));
      const Tensor y_ref = cpu::conv_silu(rounded(x, dt), rounded(w, DType::F32));
      const Tensor xr = rounded(x, dt);
      const Tensor wg = on_gpu(w, DType::F32);
      Tensor cache = Tensor::zeros({B, W - 1, C}, cdt, Device::CUDA);
      Tensor y = Tensor::empty({B, L, C}, DType::F64);
      for (int64_t t = 0; t < L; ++t) {
        Tensor xt = Tensor::empty({B, 1, C}, DType::F64);
        for (int64_t b = 0; b < B; ++b)
          for (int64_t c = 0; c < C; ++c) xt.set(b * C + c, xr.item((b * L + t) * C + c));
        const Tensor yt = gpu::conv_silu_step(on_gpu(xt, dt), cache, wg).to(Device::CPU, DType::F64);
        ASSERT_EQ(yt.shape(), (Shape{B, 1, C}));
        for (int64_t b = 0; b < B; ++b)
          for (int64_t c = 0; c < C; ++c) y.set((b * L + t) * C + c, yt.item(b * C + c));
      }
      expect_close(y, y_ref, parity_tol(dt), name("steps vs conv_silu", dt));
      // The cache ends with the last W-1 inputs, oldest first (exact copies).
      Tensor want = Tensor::empty({B, W - 1, C}, DType::F64);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < W - 1; ++j)
          for (int64_t c = 0; c < C; ++c) want.set((b * (W - 1) + j) * C + c, xr.item((b * L + L - (W - 1) + j) * C + c));
      expect_close(cache, want, 0.0, name("cache", dt));
    }
}

TEST(CudaMixers, GdnShortSequences) {
  LT2_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    check_gdn({2, 1, 2, 4, 64, 64, Decay::Normal, true, true}, dt, 100);    // one token
    check_gdn({1, 63, 2, 4, 64, 128, Decay::Normal, true, true}, dt, 110);  // one partial chunk, 4 column tiles
    check_gdn({2, 63, 1, 1, 32, 40, Decay::ZeroSteps, false, false}, dt, 115);  // K < 64, partial column tile
  }
}

TEST(CudaMixers, GdnSeveralChunks) {
  LT2_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    check_gdn({1, 75, 1, 1, 128, 96, Decay::Normal, true, true}, dt, 120);    // 64 + 11 tokens
    check_gdn({2, 200, 2, 4, 128, 64, Decay::Strong, true, true}, dt, 130);   // grouped heads, strong decay
    check_gdn({1, 200, 1, 2, 64, 40, Decay::ZeroSteps, true, false}, dt, 140);  // alpha = 1 steps, no dhT
    check_gdn({1, 75, 2, 2, 128, 64, Decay::Normal, false, true}, dt, 150);   // zero initial state
  }
}

TEST(CudaMixers, GdnLargeKeyDim) {
  LT2_REQUIRE_GPU();
  for (DType dt : kDtypes) check_gdn({1, 75, 1, 2, 256, 64, Decay::Normal, true, true}, dt, 160);
}
