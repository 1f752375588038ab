// CUDA parity tests for the elementwise, activation, norm, RoPE, embedding, loss and
// optimiser ops: each op runs on the GPU in F32 and BF16 storage and is compared with the
// CPU reference run in float64 on the same (rounded) inputs. Parameter gradients start
// from a random non-zero value on both sides, so the += accumulate contract is checked too.
// Sizes are odd on purpose (rows 37, widths 96 / 130 / 600) to catch tail bugs.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "cuda/linear_narrow.h"
#include "cuda_util.h"

using namespace lt2;
using namespace lt2::test;

namespace {


// A parameter gradient that already holds a value: F64 for the CPU, F32 for the GPU.
struct ParamGrad {
  Tensor cpu, gpu;
  ParamGrad(const Shape& s, uint64_t seed) {
    Tensor g0 = randn(s, seed, 0.5);
    cpu = rounded(g0, DType::F32);
    gpu = on_gpu(g0, DType::F32);
  }
};

Tensor ids_tensor(const Shape& s, int64_t V, uint64_t seed) {
  Tensor ids = Tensor::empty(s, DType::I32);
  Tensor u = uniform({ids.numel()}, seed, 0.0, double(V));
  for (int64_t i = 0; i < ids.numel(); ++i) ids.set(i, std::floor(u.item(i)));
  return ids;
}

}  // namespace

// ---- linear -----------------------------------------------------------------------------

// y = x Wᵀ, dx = dy W and dW += dyᵀ x on cuBLASLt, with F32 or activation-dtype weights; and
// dx added into an existing gradient (dx_acc) by the GEMM, as layers sum their projections'.
TEST(CudaOps, Linear) {
  LT2_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    for (DType wt : {DType::F32, dt}) {
      const std::string what = cat("linear w ", dtype_name(wt));
      Tensor x = randn({3, 37, 130}, 1), w = randn({96, 130}, 2, 0.1), dy = randn({3, 37, 96}, 3);
      Tensor dx0 = randn({3, 37, 130}, 4);
      const Tensor xr = rounded(x, dt), wr = rounded(rounded(w, wt), dt), dyr = rounded(dy, dt);
      expect_gpu(gpu::linear(on_gpu(x, dt), on_gpu(w, wt)), dt, cpu::linear(xr, wr), parity_tol(dt),
                 name(what.c_str(), dt));
      ParamGrad dw({96, 130}, 5);
      const Tensor dx_ref = cpu::linear_backward(xr, wr, dyr, dw.cpu);
      expect_gpu(gpu::linear_backward(on_gpu(x, dt), on_gpu(w, wt), on_gpu(dy, dt), dw.gpu), dt, dx_ref,
                 parity_tol(dt), name((what + " dx").c_str(), dt));
      expect_gpu(dw.gpu, DType::F32, dw.cpu, parity_tol(dt), name((what + " dw").c_str(), dt));
      Tensor acc_ref = rounded(dx0, dt), acc = on_gpu(dx0, dt);
      cpu::linear_backward(xr, wr, dyr, dw.cpu, &acc_ref);
      const Tensor got = gpu::linear_backward(on_gpu(x, dt), on_gpu(w, wt), on_gpu(dy, dt), dw.gpu, &acc);
      EXPECT_EQ(got.bytes(), acc.bytes()) << "dx_acc is the returned dx";
      expect_gpu(acc, dt, acc_ref, parity_tol(dt), name((what + " dx_acc").c_str(), dt));
      expect_gpu(dw.gpu, DType::F32, dw.cpu, parity_tol(dt), name((what + " dw (twice)").c_str(), dt));
      // linear_backward's two halves, as the FFN calls them.
      expect_gpu(gpu::linear_backward_dx(on_gpu(w, wt), on_gpu(dy, dt)), dt, dx_ref, parity_tol(dt),
                 name((what + " dx half").c_str(), dt));
      cpu::linear_backward_dw(xr, dyr, dw.cpu);
      gpu::linear_backward_dw(on_gpu(x, dt), on_gpu(dy, dt), dw.gpu);
      expect_gpu(dw.gpu, DType::F32, dw.cpu, parity_tol(dt), name((what + " dw half").c_str(), dt));
    }
  }
}

// Shapes of at least a GFLOP time the heuristic's candidate algorithms at their first call
// (cuda/gemm_tune.h): the timing writes to scratch memory, so an accumulating GEMM (dW +=) adds
// exactly once, and the choice lands in the cache file for later runs.
TEST(CudaOps, GemmTuningOnFirstUse) {
  LT2_REQUIRE_GPU();
  const std::string cache = cat("/tmp/lt2_gemm_tune_test_", ::getpid(), ".txt");
  std::remove(cache.c_str());
  ScopedEnv env("LT2_GEMM_CACHE", cache.c_str());
  const DType dt = DType::BF16;
  // Shapes no other test plans: x [1000, 1064], W [1032, 1064] (2.2 GFLOP a product).
  Tensor x = randn({1, 1000, 1064}, 11), w = randn({1032, 1064}, 12, 0.05), dy = randn({1, 1000, 1032}, 13);
  const Tensor xr = rounded(x, dt), wr = rounded(w, dt), dyr = rounded(dy, dt);
  expect_gpu(gpu::linear(on_gpu(x, dt), on_gpu(w, dt)), dt, cpu::linear(xr, wr), parity_tol(dt), "tuned linear");
  ParamGrad dw({1032, 1064}, 14);
  const Tensor dx_ref = cpu::linear_backward(xr, wr, dyr, dw.cpu);
  expect_gpu(gpu::linear_backward(on_gpu(x, dt), on_gpu(w, dt), on_gpu(dy, dt), dw.gpu), dt, dx_ref, parity_tol(dt),
             "tuned linear dx");
  expect_gpu(dw.gpu, DType::F32, dw.cpu, parity_tol(dt), "tuned dw += (accumulated once)");
  std::ifstream in(cache);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) lines += line.find('|') != std::string::npos;
  EXPECT_GE(lines, 1) << "no tuning choice written to " << cache;
  std::remove(cache.c_str());
}

// Layers with at most 8 outputs (GDN's a / b projections) take linear_narrow.cu's forward and
// dW kernels; dW's partial sums go by chunks of rows, so 3000 rows cover several chunks.
TEST(CudaOps, LinearNarrow) {
  LT2_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    for (int64_t N : {1, 4, 5, 8}) {
      for (int64_t M : {37, 3000}) {
        const int64_t K = 136;
        const std::string what = cat("narrow linear N=", N, " M=", M);
        Tensor x = randn({M, K}, 1), w = randn({N, K}, 2, 0.1), dy = randn({M, N}, 3);
        const Tensor xr = rounded(x, dt), wr = rounded(w, dt), dyr = rounded(dy, dt);
        const Tensor xg = on_gpu(x, dt);
        ASSERT_TRUE(cuda::narrow_linear_fits(xg, N, K)) << what << ": the narrow kernels must serve this shape";
        expect_gpu(gpu::linear(xg, on_gpu(w, dt)), dt, cpu::linear(xr, wr), parity_tol(dt), name(what.c_str(), dt));
        // F32 master weights, as tools pass them
        expect_gpu(gpu::linear(xg, on_gpu(w, DType::F32)), dt, cpu::linear(xr, rounded(w, DType::F32)),
                   parity_tol(dt), name((what + " w F32").c_str(), dt));
        ParamGrad dw({N, K}, 5);
        cpu::linear_backward_dw(xr, dyr, dw.cpu);
        gpu::linear_backward_dw(xg, on_gpu(dy, dt), dw.gpu);
        expect_gpu(dw.gpu, DType::F32, dw.cpu, parity_tol(dt), name((what + " dw").c_str(), dt));
        Tensor again = ParamGrad({N, K}, 5).gpu;
        gpu::linear_backward_dw(xg, on_gpu(dy, dt), again);
        EXPECT_EQ(0, std::memcmp(again.to(Device::CPU).bytes(), dw.gpu.to(Device::CPU).bytes(), again.nbytes()))
            << what << ": dw must be bitwise reproducible";
      }
    }
  }
}

// ---- elementwise ------------------------------------------------------------------------

TEST(CudaOps, Add) {
  LT2_REQUIRE_GPU();
  Tensor a = randn({37, 130}, 1), b = randn({37, 130}, 2);
  for (DType dt : kDtypes) {
    Tensor want = cpu::add(rounded(a, dt), rounded(b, dt));
    expect_gpu(gpu::add(on_gpu(a, dt), on_gpu(b, dt)), dt, want, parity_tol(dt), name("add", dt));
  }
}

// The elementwise kernels move 16 bytes at a time when every address allows it and one
// element at a time otherwise: views that start one row of 130 into a tensor are misaligned
// for both dtypes, and 37 * 130 elements leave a tail after the 16-byte pieces.
TEST(CudaOps, ElementwiseOnMisalignedViews) {
  LT2_REQUIRE_GPU();
  Tensor a = randn({38, 130}, 1), b = randn({38, 130}, 2);
  for (DType dt : kDtypes) {
    const Tensor ar = rounded(a, dt).narrow(1, 37), br = rounded(b, dt).narrow(1, 37);
    const Tensor ag = on_gpu(a, dt).narrow(1, 37), bg = on_gpu(b, dt).narrow(1, 37);
    expect_gpu(gpu::add(ag, bg), dt, cpu::add(ar, br), parity_tol(dt), name("add (misaligned)", dt));
    expect_gpu(gpu::swiglu(ag, bg), dt, cpu::swiglu(ar, br), parity_tol(dt), name("swiglu (misaligned)", dt));
    Tensor sum = on_gpu(a, dt).narrow(1, 37);
    sum.add_(bg);  // in place
    expect_gpu(sum, dt, cpu::add(ar, br), parity_tol(dt), name("add_ (misaligned)", dt));
    for (DType to : kDtypes)  // casts through both alignments
      for (const Tensor& src : {ag, on_gpu(a, dt).narrow(0, 37)})
        expect_gpu(src.to(to), to, rounded(src.to(Device::CPU, DType::F64), to), 0.0, name("cast", to));
  }
}

TEST(CudaOps, AddScaledChannels) {
  LT2_REQUIRE_GPU();
  const int64_t n = 130;
  Tensor a = randn({3, 37, n}, 1), b = randn({3, 37, n}, 2), rho = randn({n}, 3), dy = randn({3, 37, n}, 4);
  for (DType dt : kDtypes) {
    Tensor want = cpu::add_scaled_channels(rounded(a, dt), rounded(rho, DType::F32), rounded(b, dt));
    Tensor got = gpu::add_scaled_channels(on_gpu(a, dt), on_gpu(rho, DType::F32), on_gpu(b, dt));
    expect_gpu(got, dt, want, parity_tol(dt), name("add_scaled_channels", dt));
    // rho in the activations' dtype is accepted too.
    Tensor want_p = cpu::add_scaled_channels(rounded(a, dt), rounded(rho, dt), rounded(b, dt));
    Tensor got_p = gpu::add_scaled_channels(on_gpu(a, dt), on_gpu(rho, dt), on_gpu(b, dt));
    expect_gpu(got_p, dt, want_p, parity_tol(dt), name("add_scaled_channels rho in dtype", dt));

    ParamGrad drho({n}, 5);
    cpu::add_scaled_channels_backward_rho(rounded(dy, dt), rounded(b, dt), drho.cpu);
    gpu::add_scaled_channels_backward_rho(on_gpu(dy, dt), on_gpu(b, dt), drho.gpu);
    expect_gpu(drho.gpu, DType::F32, drho.cpu, parity_tol(dt), name("drho", dt));
  }
}

TEST(CudaOps, AddScaledChannelsRhoManyRows) {
  LT2_REQUIRE_GPU();
  // Enough rows for several row chunks in the deterministic column sum.
  const int64_t n = 96;
  Tensor b = randn({2, 1000, n}, 1), dy = randn({2, 1000, n}, 2);
  for (DType dt : kDtypes) {
    ParamGrad drho({n}, 3);
    cpu::add_scaled_channels_backward_rho(rounded(dy, dt), rounded(b, dt), drho.cpu);
    Tensor g_dy = on_gpu(dy, dt), g_b = on_gpu(b, dt);
    Tensor first = drho.gpu.clone();
    gpu::add_scaled_channels_backward_rho(g_dy, g_b, drho.gpu);
    expect_gpu(drho.gpu, DType::F32, drho.cpu, parity_tol(dt), name("drho many rows", dt));
    // Bitwise reproducible: the same call on the same start value gives the same bits.
    gpu::add_scaled_channels_backward_rho(g_dy, g_b, first);
    Tensor x = drho.gpu.to(Device::CPU), y = first.to(Device::CPU);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(x.item(i), y.item(i)) << name("drho reproducible", dt) << " at " << i;
  }
}

TEST(CudaOps, SumSquares) {
  LT2_REQUIRE_GPU();
  Tensor x = randn({37, 601}, 1, 3.0);
  for (DType dt : kDtypes) {
    const double want = cpu::sum_squares(rounded(x, dt));
    const double got = gpu::sum_squares(on_gpu(x, dt));
    EXPECT_NEAR(got, want, 1e-6 * want) << name("sum_squares", dt);
  }
  EXPECT_EQ(gpu::sum_squares(Tensor::empty({0}, DType::F32, Device::CUDA)), 0.0);
}

TEST(CudaOps, AccumulateSumSquares) {
  LT2_REQUIRE_GPU();
  const Tensor x = randn({37, 130}, 1), y = randn({301}, 2);
  for (DType dt : kDtypes) {
    Tensor want = Tensor::full({1}, 0.5, DType::F64), got = Tensor::full({1}, 0.5, DType::F64, Device::CUDA);
    for (const Tensor* t : {&x, &y}) {
      cpu::accumulate_sum_squares(rounded(*t, dt), want);
      gpu::accumulate_sum_squares(on_gpu(*t, dt), got);
    }
    EXPECT_NEAR(got.item(0), want.item(0), 1e-9 * want.item(0)) << dtype_name(dt);
  }
}

// ---- activations and gates ----------------------------------------------------------------

TEST(CudaOps, SwiGLU) {
  LT2_REQUIRE_GPU();
  Tensor g = randn({37, 130}, 1, 2.0), u = randn({37, 130}, 2), dh = randn({37, 130}, 3);
  for (DType dt : kDtypes) {
    expect_gpu(gpu::swiglu(on_gpu(g, dt), on_gpu(u, dt)), dt, cpu::swiglu(rounded(g, dt), rounded(u, dt)),
               parity_tol(dt), name("swiglu", dt));
    Tensor dg, du, dg_ref, du_ref;
    cpu::swiglu_backward(rounded(g, dt), rounded(u, dt), rounded(dh, dt), dg_ref, du_ref);
    gpu::swiglu_backward(on_gpu(g, dt), on_gpu(u, dt), on_gpu(dh, dt), dg, du);
    expect_gpu(dg, dt, dg_ref, parity_tol(dt), name("swiglu dg", dt));
    expect_gpu(du, dt, du_ref, parity_tol(dt), name("swiglu du", dt));
    Tensor h;  // rebuilt by the backward pass
    gpu::swiglu_backward(on_gpu(g, dt), on_gpu(u, dt), on_gpu(dh, dt), dg, du, &h);
    expect_gpu(h, dt, cpu::swiglu(rounded(g, dt), rounded(u, dt)), parity_tol(dt), name("swiglu h (backward)", dt));
    expect_gpu(dg, dt, dg_ref, parity_tol(dt), name("swiglu dg (with h)", dt));
  }
}

TEST(CudaOps, SigmoidGate) {
  LT2_REQUIRE_GPU();
  const int64_t B = 2, L = 19, H = 3;
  for (int64_t D : {40, 96}) {
    for (bool per_head : {false, true}) {
      Tensor a = randn({B, L, H, D}, 1), dy = randn({B, L, H, D}, 2);
      Tensor z = per_head ? randn({B, L, H}, 3, 2.0) : randn({B, L, H * D}, 3, 2.0);
      for (DType dt : kDtypes) {
        const std::string what = cat(per_head ? "per head" : "per channel", " D=", D);
        expect_gpu(gpu::sigmoid_gate(on_gpu(a, dt), on_gpu(z, dt)), dt,
                   cpu::sigmoid_gate(rounded(a, dt), rounded(z, dt)), parity_tol(dt),
                   name(("sigmoid_gate " + what).c_str(), dt));
        Tensor da, dz, da_ref, dz_ref;
        cpu::sigmoid_gate_backward(rounded(a, dt), rounded(z, dt), rounded(dy, dt), da_ref, dz_ref);
        gpu::sigmoid_gate_backward(on_gpu(a, dt), on_gpu(z, dt), on_gpu(dy, dt), da, dz);
        expect_gpu(da, dt, da_ref, parity_tol(dt), name(("sigmoid_gate da " + what).c_str(), dt));
        expect_gpu(dz, dt, dz_ref, parity_tol(dt), name(("sigmoid_gate dz " + what).c_str(), dt));
        Tensor y;  // the forward's output, rebuilt by the backward pass
        gpu::sigmoid_gate_backward(on_gpu(a, dt), on_gpu(z, dt), on_gpu(dy, dt), da, dz, &y);
        expect_gpu(y, dt, cpu::sigmoid_gate(rounded(a, dt), rounded(z, dt)), parity_tol(dt),
                   name(("sigmoid_gate y (backward) " + what).c_str(), dt));
      }
    }
  }
}

TEST(CudaOps, GdnGates) {
  LT2_REQUIRE_GPU();
  const int64_t HV = 6;
  const Shape s = {3, 100, HV};  // 300 rows: several chunks in the parameter-gradient sums
  Tensor a = randn(s, 1, 2.0), b = randn(s, 2, 2.0), dbeta = randn(s, 5), dg = randn(s, 6);
  Tensor A_log = uniform({HV}, 3, -1.0, 1.5), dt_bias = randn({HV}, 4);
  a.set(0, 25.0);  // exercises the softplus cut-over at 20
  for (DType dt : kDtypes) {
    Tensor beta_ref, g_ref, beta, g;
    cpu::gdn_gates(rounded(a, dt), rounded(b, dt), rounded(A_log, DType::F32), rounded(dt_bias, DType::F32),
                   beta_ref, g_ref);
    gpu::gdn_gates(on_gpu(a, dt), on_gpu(b, dt), on_gpu(A_log, DType::F32), on_gpu(dt_bias, DType::F32), beta, g);
    expect_gpu(beta, DType::F32, beta_ref, parity_tol(dt), name("gdn beta", dt));
    expect_gpu(g, DType::F32, g_ref, parity_tol(dt), name("gdn g", dt));

    Tensor da_ref, db_ref, da, db;
    ParamGrad dA({HV}, 7), ddt({HV}, 8);
    cpu::gdn_gates_backward(rounded(a, dt), rounded(b, dt), rounded(A_log, DType::F32), rounded(dt_bias, DType::F32),
                            rounded(dbeta, DType::F32), rounded(dg, DType::F32), da_ref, db_ref, dA.cpu, ddt.cpu);
    gpu::gdn_gates_backward(on_gpu(a, dt), on_gpu(b, dt), on_gpu(A_log, DType::F32), on_gpu(dt_bias, DType::F32),
                            on_gpu(dbeta, DType::F32), on_gpu(dg, DType::F32), da, db, dA.gpu, ddt.gpu);
    expect_gpu(da, dt, da_ref, parity_tol(dt), name("gdn da", dt));
    expect_gpu(db, dt, db_ref, parity_tol(dt), name("gdn db", dt));
    expect_gpu(dA.gpu, DType::F32, dA.cpu, parity_tol(dt), name("gdn dA_log", dt));
    expect_gpu(ddt.gpu, DType::F32, ddt.cpu, parity_tol(dt), name("gdn ddt_bias", dt));
  }
}

// ---- normalisation ----------------------------------------------------------------------

TEST(CudaOps, RMSNorm) {
  LT2_REQUIRE_GPU();
  const double eps = 1e-6;
  // 1600: rows too wide for the weight gradient's fused reduction (its separate pass).
  for (int64_t n : {96, 130, 600, 1600}) {
    for (int64_t rows : {37, 300}) {
      Tensor x = randn({rows, n}, 1, 2.0), w = randn({n}, 2, 0.5), dy = randn({rows, n}, 3);
      for (DType dt : kDtypes) {
        for (DType wt : {DType::F32, dt}) {  // weights in F32 or the activations' dtype
          const std::string what = cat("rmsnorm n=", n, " rows=", rows, " w ", dtype_name(wt));
          Tensor rstd_ref, rstd;
          Tensor y_ref = cpu::rmsnorm(rounded(x, dt), rounded(w, wt), eps, &rstd_ref);
          Tensor y = gpu::rmsnorm(on_gpu(x, dt), on_gpu(w, wt), eps, &rstd);
          expect_gpu(y, dt, y_ref, parity_tol(dt), name(what.c_str(), dt));
          expect_gpu(rstd, DType::F32, rstd_ref, parity_tol(dt), name((what + " rstd").c_str(), dt));
          // Without rstd: same output.
          expect_gpu(gpu::rmsnorm(on_gpu(x, dt), on_gpu(w, wt), eps, nullptr), dt, y_ref, parity_tol(dt),
                     name((what + " no rstd").c_str(), dt));

          ParamGrad dw({n}, 4);
          Tensor dx_ref = cpu::rmsnorm_backward(rounded(x, dt), rounded(w, wt), rstd_ref, rounded(dy, dt), dw.cpu);
          Tensor dx = gpu::rmsnorm_backward(on_gpu(x, dt), on_gpu(w, wt), rstd, on_gpu(dy, dt), dw.gpu);
          expect_gpu(dx, dt, dx_ref, parity_tol(dt), name((what + " dx").c_str(), dt));
          expect_gpu(dw.gpu, DType::F32, dw.cpu, parity_tol(dt), name((what + " dw").c_str(), dt));

          // Fused with the residual add before it (forward) and the residual gradient (backward).
          Tensor b = randn({rows, n}, 5), sum, sum_ref, rstd2, rstd2_ref, dres = randn({rows, n}, 6);
          cpu::add_rmsnorm(rounded(x, dt), rounded(b, dt), rounded(w, wt), eps, sum_ref, &rstd2_ref);
          Tensor y2 = gpu::add_rmsnorm(on_gpu(x, dt), on_gpu(b, dt), on_gpu(w, wt), eps, sum, &rstd2);
          // The CPU adds in float64: its sum rounded to dt is what the GPU stores.
          expect_gpu(sum, dt, rounded(sum_ref, dt), parity_tol(dt), name((what + " add_rmsnorm sum").c_str(), dt));
          const Tensor y2_want = cpu::rmsnorm(rounded(sum_ref, dt), rounded(w, wt), eps, nullptr);
          expect_gpu(y2, dt, y2_want, parity_tol(dt), name((what + " add_rmsnorm y").c_str(), dt));
          expect_gpu(rstd2, DType::F32, rstd2_ref, parity_tol(dt), name((what + " add_rmsnorm rstd").c_str(), dt));
          ParamGrad dw2({n}, 7);
          Tensor dx2_ref = cpu::rmsnorm_backward(rounded(x, dt), rounded(w, wt), rstd_ref, rounded(dy, dt), dw2.cpu,
                                                 rounded(dres, dt));
          Tensor dx2 = gpu::rmsnorm_backward(on_gpu(x, dt), on_gpu(w, wt), rstd, on_gpu(dy, dt), dw2.gpu,
                                             on_gpu(dres, dt));
          expect_gpu(dx2, dt, dx2_ref, parity_tol(dt), name((what + " dx + dresidual").c_str(), dt));
          expect_gpu(dw2.gpu, DType::F32, dw2.cpu, parity_tol(dt), name((what + " dw (residual)").c_str(), dt));
        }
      }
    }
  }
}

TEST(CudaOps, L2Norm) {
  LT2_REQUIRE_GPU();
  const double scale = 0.7;
  // 222 rows: lane groups of 8, 16 and 32 lanes (by D and dtype), a partial last warp.
  for (int64_t D : {24, 64, 128, 130}) {
    Tensor x = randn({2, 37, 3, D}, 1), dy = randn({2, 37, 3, D}, 2);
    for (DType dt : kDtypes) {
      const std::string what = cat("l2norm D=", D);
      expect_gpu(gpu::l2norm(on_gpu(x, dt), scale), dt, cpu::l2norm(rounded(x, dt), scale), parity_tol(dt),
                 name(what.c_str(), dt));
      Tensor dx_ref = cpu::l2norm_backward(rounded(x, dt), scale, rounded(dy, dt));
      Tensor dx = gpu::l2norm_backward(on_gpu(x, dt), scale, on_gpu(dy, dt));
      expect_gpu(dx, dt, dx_ref, parity_tol(dt), name((what + " dx").c_str(), dt));
    }
  }
}

TEST(CudaOps, GatedRMSNorm) {
  LT2_REQUIRE_GPU();
  const double eps = 1e-5;
  for (int64_t D : {96, 130, 1600}) {  // 1600: dw by the separate pass, as in RMSNorm
    const Shape s = {2, 50, 3, D};  // 300 rows
    Tensor o = randn(s, 1), z = randn(s, 2, 2.0), w = randn({D}, 3, 0.5), dy = randn(s, 4);
    for (DType dt : kDtypes) {
      const std::string what = cat("gated_rmsnorm D=", D);
      expect_gpu(gpu::gated_rmsnorm(on_gpu(o, dt), on_gpu(z, dt), on_gpu(w, DType::F32), eps), dt,
                 cpu::gated_rmsnorm(rounded(o, dt), rounded(z, dt), rounded(w, DType::F32), eps), parity_tol(dt),
                 name(what.c_str(), dt));
      ParamGrad dw({D}, 5);
      Tensor do_ref, dz_ref, d_o, dz;
      cpu::gated_rmsnorm_backward(rounded(o, dt), rounded(z, dt), rounded(w, DType::F32), eps, rounded(dy, dt),
                                  do_ref, dz_ref, dw.cpu);
      gpu::gated_rmsnorm_backward(on_gpu(o, dt), on_gpu(z, dt), on_gpu(w, DType::F32), eps, on_gpu(dy, dt), d_o, dz,
                                  dw.gpu);
      expect_gpu(d_o, dt, do_ref, parity_tol(dt), name((what + " do").c_str(), dt));
      expect_gpu(dz, dt, dz_ref, parity_tol(dt), name((what + " dz").c_str(), dt));
      expect_gpu(dw.gpu, DType::F32, dw.cpu, parity_tol(dt), name((what + " dw").c_str(), dt));
      Tensor y;  // the forward's output, rebuilt by the backward pass
      gpu::gated_rmsnorm_backward(on_gpu(o, dt), on_gpu(z, dt), on_gpu(w, DType::F32), eps, on_gpu(dy, dt), d_o, dz,
                                  dw.gpu, &y);
      expect_gpu(y, dt, cpu::gated_rmsnorm(rounded(o, dt), rounded(z, dt), rounded(w, DType::F32), eps),
                 parity_tol(dt), name((what + " y (backward)").c_str(), dt));
    }
  }
}

// ---- positional ---------------------------------------------------------------------------

TEST(CudaOps, RoPE) {
  LT2_REQUIRE_GPU();
  const double theta = 10000.0;
  // D 64, 8, 12, 6: the kernel's groups of 8, 4, 2 and 1 channel pairs.
  for (int64_t D : {64, 8, 12, 6}) {
    Tensor x = randn({2, 37, 3, D}, 1), dy = randn({2, 37, 3, D}, 2);
    for (int64_t pos0 : {0, 4093}) {  // a large offset checks the angles' precision
      for (DType dt : kDtypes) {
        const std::string what = cat("rope D=", D, " pos0=", pos0);
        expect_gpu(gpu::rope(on_gpu(x, dt), theta, pos0), dt, cpu::rope(rounded(x, dt), theta, pos0), parity_tol(dt),
                   name(what.c_str(), dt));
        expect_gpu(gpu::rope_backward(on_gpu(dy, dt), theta, pos0), dt,
                   cpu::rope_backward(rounded(dy, dt), theta, pos0), parity_tol(dt),
                   name((what + " backward").c_str(), dt));
      }
    }
  }
}

// ---- embedding ----------------------------------------------------------------------------

TEST(CudaOps, Embedding) {
  LT2_REQUIRE_GPU();
  const int64_t V = 50, d = 130;
  Tensor ids = ids_tensor({3, 37}, V, 1);  // 111 ids from 50 rows: many repeats
  Tensor table = randn({V, d}, 2), dy = randn({3, 37, d}, 3);
  Tensor g_ids = ids.to(Device::CUDA);
  for (DType dt : kDtypes) {
    Tensor want = cpu::embedding(ids, rounded(table, dt));
    expect_gpu(gpu::embedding(g_ids, on_gpu(table, dt)), dt, want, parity_tol(dt), name("embedding", dt));
    ParamGrad dtable({V, d}, 4);
    cpu::embedding_backward(ids, rounded(dy, dt), dtable.cpu);
    gpu::embedding_backward(g_ids, on_gpu(dy, dt), dtable.gpu);
    expect_gpu(dtable.gpu, DType::F32, dtable.cpu, parity_tol(dt), name("embedding dtable", dt));
  }
}

TEST(CudaOps, EmbeddingRejectsOutOfRangeIds) {
  LT2_REQUIRE_GPU();
  const int64_t V = 10;
  Tensor table = on_gpu(randn({V, 8}, 1), DType::F32);
  for (int bad : {-1, 10}) {
    Tensor ids = ids_tensor({7}, V, 2);
    ids.set(4, bad);
    try {
      gpu::embedding(ids.to(Device::CUDA), table);
      ADD_FAILURE() << "id " << bad << " was accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(cat("token id ", bad, " at position 4 is outside the vocabulary [0, 10)")), std::string::npos)
          << msg;
    }
  }
}

// ---- loss and optimiser -------------------------------------------------------------------

// V 1003 runs the kernel one element at a time, V 1024 by 16-byte vectors (8 BF16 or 4 F32).
TEST(CudaOps, CrossEntropy) {
  LT2_REQUIRE_GPU();
  for (const int64_t V : {int64_t(1003), int64_t(1024)}) {
    SCOPED_TRACE(cat("V ", V));
    const int64_t N = 37;
    Tensor logits = randn({N, V}, 1, 3.0);
    Tensor targets = ids_tensor({N}, V, 2);
    for (int64_t i = 0; i < N; i += 5) targets.set(i, -1);  // ignored rows
    Tensor g_targets = targets.to(Device::CUDA);
    const double gs = 0.37;
    for (DType dt : kDtypes) {
      const double rel = dt == DType::BF16 ? 1e-2 : 1e-5;
      Tensor dl_ref, dl;
      const double want = cpu::cross_entropy(rounded(logits, dt), targets, &dl_ref, gs);
      const double got = gpu::cross_entropy(on_gpu(logits, dt), g_targets, &dl, gs);
      EXPECT_NEAR(got, want, rel * std::abs(want)) << name("cross_entropy loss", dt);
      expect_gpu(dl, dt, dl_ref, parity_tol(dt), name("cross_entropy dlogits", dt));
      // Ignored rows get a zero gradient.
      Tensor dl_cpu = dl.to(Device::CPU);
      for (int64_t j = 0; j < V; ++j) ASSERT_EQ(dl_cpu.item(j), 0.0) << name("ignored row 0", dt);
      // Without dlogits: the same loss.
      const double got2 = gpu::cross_entropy(on_gpu(logits, dt), g_targets, nullptr, gs);
      EXPECT_NEAR(got2, want, rel * std::abs(want)) << name("cross_entropy loss without dlogits", dt);
    }
  }
}

TEST(CudaOps, CrossEntropyAllIgnoredAndBadTarget) {
  LT2_REQUIRE_GPU();
  const int64_t N = 5, V = 7;
  Tensor logits = on_gpu(randn({N, V}, 1), DType::F32);
  Tensor targets = Tensor::full({N}, -1, DType::I32);
  Tensor dl;
  EXPECT_EQ(gpu::cross_entropy(logits, targets.to(Device::CUDA), &dl, 2.0), 0.0);
  expect_gpu(dl, DType::F32, Tensor::zeros({N, V}, DType::F64), 0.0, "all ignored dlogits");
  EXPECT_EQ(gpu::sum_squares(dl), 0.0);

  targets.set(3, double(V));
  try {
    gpu::cross_entropy(logits, targets.to(Device::CUDA), nullptr, 1.0);
    ADD_FAILURE() << "target " << V << " was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cross_entropy: target 7 outside [-1, 7)"), std::string::npos) << msg;
  }
}

TEST(CudaOps, AdamW) {
  LT2_REQUIRE_GPU();
  const Shape s = {37, 130};
  Tensor p0 = randn(s, 1), m0 = randn(s, 2, 0.1), v0 = uniform(s, 3, 0.0, 0.05);
  Tensor p = rounded(p0, DType::F32), m = rounded(m0, DType::F32), v = rounded(v0, DType::F32);
  Tensor gp = on_gpu(p0, DType::F32), gm = on_gpu(m0, DType::F32), gv = on_gpu(v0, DType::F32);
  // Step 4 clips: a squared norm of 100 against max_norm 1 scales the gradient by 0.1.
  const Tensor norm_cpu = Tensor::full({1}, 100.0, DType::F64), norm_gpu = norm_cpu.to(Device::CUDA);
  for (int64_t step : {3, 4}) {
    Tensor grad = randn(s, 10 + step);
    AdamWParams hc{1e-2, 0.9, 0.95, 1e-8, 0.1, step}, hg = hc;
    if (step == 4) hc.max_norm = hg.max_norm = 1.0, hc.norm_sq = &norm_cpu, hg.norm_sq = &norm_gpu;
    cpu::adamw_step(p, rounded(grad, DType::F32), m, v, hc);
    gpu::adamw_step(gp, on_gpu(grad, DType::F32), gm, gv, hg);
  }
  expect_gpu(gp, DType::F32, p, 1e-6, "adamw p");
  expect_gpu(gm, DType::F32, m, 1e-6, "adamw m");
  expect_gpu(gv, DType::F32, v, 1e-6, "adamw v");
}
