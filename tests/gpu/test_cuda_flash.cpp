// Parity tests for the tensor-core attention path (src/cuda/flash_attention.cu), which
// lt2::cuda::attention / attention_backward take for BF16 inputs with head dim 64 or 128.
// Each case runs the CPU reference in float64 on the bf16-rounded inputs and compares o, lse,
// dq, dk, dv by relative L2 at the bf16 tolerance (1e-2). Lengths are chosen to hit one
// token, partial tiles (37), several tiles with a tail (130) and many tiles (1000); windows
// 1 (only the own key), 16 (inside a tile), 100 (across tiles) and 0 (full causal); GQA
// groups of 2 and 8 (MQA). Outputs land in memory poisoned with NaN, so an element the
// kernels fail to write fails the comparison.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "cuda_util.h"
#if LT2_HAVE_CUDA
#include "cuda/flash_attention.h"
#endif

using namespace lt2;
using namespace lt2::test;

namespace {


struct FlashCase {
  int64_t B, L, H, Hkv, D, window;
  double q_scale = 1.0;  // > 1 makes the softmax peaky (large score range)
};

// The caching allocator hands a freed block back to the next request of the same size:
// filling such blocks with NaN right before an op makes every unwritten output element NaN.
void poison(const Shape& shape, DType dt, int count) {
  std::vector<Tensor> blocks;
  for (int i = 0; i < count; ++i)
    blocks.push_back(Tensor::full(shape, std::numeric_limits<double>::quiet_NaN(), dt, Device::CUDA));
}

// As in test_cuda_mixers.cpp: where the exact answer is zero (one visible key: dq = dk = 0),
// the reference holds only rounding residue, and the GPU's values must be ~0 instead.
// Returns the measured distance (relative L2, or the RMS where the answer is zero) for the log.
double expect_match(const Tensor& got, DType dtype, const Tensor& want, const std::string& what) {
  EXPECT_TRUE(got.defined()) << what << ": output missing";
  if (!got.defined()) return INFINITY;
  EXPECT_TRUE(got.on_cuda()) << what << ": not on the GPU";
  EXPECT_EQ(got.dtype(), dtype) << what << ": dtype " << dtype_name(got.dtype());
  EXPECT_EQ(got.shape(), want.shape()) << what;
  double want_sq = 0;
  for (int64_t i = 0; i < want.numel(); ++i) want_sq += want.item(i) * want.item(i);
  const Tensor g = got.to(Device::CPU, DType::F64);
  if (std::sqrt(want_sq / double(std::max<int64_t>(1, want.numel()))) > 1e-6) {
    const double err = rel_l2(g, want);  // NaN / inf give +inf
    EXPECT_LE(err, parity_tol(DType::BF16)) << what << ": relative L2 " << err;
    return err;
  }
  double got_sq = 0;
  for (int64_t i = 0; i < g.numel(); ++i) got_sq += g.item(i) * g.item(i);
  const double rms = std::sqrt(got_sq / double(std::max<int64_t>(1, g.numel())));
  EXPECT_LE(rms, 1e-5) << what << ": should be zero, RMS " << rms;  // NaN fails too
  return rms;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  const Tensor x = a.to(Device::CPU, DType::F64), y = b.to(Device::CPU, DType::F64);
  for (int64_t i = 0; i < x.numel(); ++i)
    if (!(x.item(i) == y.item(i))) return false;
  return true;
}

void check_flash(const FlashCase& c, uint64_t seed) {
  const DType dt = DType::BF16;
  SCOPED_TRACE(cat("flash attention B", c.B, " L", c.L, " H", c.H, "/", c.Hkv, " D", c.D, " w", c.window,
                   " q_scale ", c.q_scale));
  const double scale = 1.0 / std::sqrt(double(c.D));
  Tensor q = randn({c.B, c.L, c.H, c.D}, seed, c.q_scale), k = randn({c.B, c.L, c.Hkv, c.D}, seed + 1);
  Tensor v = randn({c.B, c.L, c.Hkv, c.D}, seed + 2), gy = randn({c.B, c.L, c.H, c.D}, seed + 3);

  Tensor lse_ref;
  const Tensor o_ref = cpu::attention(rounded(q, dt), rounded(k, dt), rounded(v, dt), c.window, scale, &lse_ref);
  const Tensor qg = on_gpu(q, dt), kg = on_gpu(k, dt), vg = on_gpu(v, dt), gyg = on_gpu(gy, dt);
#if LT2_HAVE_CUDA
  ASSERT_TRUE(gpu::flash_supported(qg, kg, vg)) << "this case should take the tensor-core path";
#endif
  poison(q.shape(), dt, 2);
  poison({c.B, c.H, c.L}, DType::F32, 2);
  Tensor lse;
  const Tensor o = gpu::attention(qg, kg, vg, c.window, scale, &lse);
  const double e_o = expect_match(o, dt, o_ref, "o");
  const double e_lse = expect_match(lse, DType::F32, lse_ref, "lse");
  poison(q.shape(), dt, 2);
  expect_match(gpu::attention(qg, kg, vg, c.window, scale, nullptr), dt, o_ref, "o without lse");

  // Backward: both sides get the same o (bf16) and lse (F32).
  Tensor dq_ref, dk_ref, dv_ref;
  cpu::attention_backward(rounded(q, dt), rounded(k, dt), rounded(v, dt), rounded(o_ref, dt),
                          rounded(lse_ref, DType::F32), rounded(gy, dt), c.window, scale, dq_ref, dk_ref, dv_ref);
  const Tensor og = on_gpu(o_ref, dt), lg = on_gpu(lse_ref, DType::F32);
  poison(q.shape(), dt, 2);
  poison(k.shape(), dt, 3);
  Tensor dq, dk, dv;
  gpu::attention_backward(qg, kg, vg, og, lg, gyg, c.window, scale, dq, dk, dv);
  const double e_dq = expect_match(dq, dt, dq_ref, "dq");
  const double e_dk = expect_match(dk, dt, dk_ref, "dk");
  const double e_dv = expect_match(dv, dt, dv_ref, "dv");
  // One line per case for the log: relative L2 (the RMS where the exact answer is zero).
  std::printf("flash B%lld L%lld H%lld/%lld D%lld w%lld: o %.2e lse %.2e dq %.2e dk %.2e dv %.2e\n", (long long)c.B,
              (long long)c.L, (long long)c.H, (long long)c.Hkv, (long long)c.D, (long long)c.window, e_o, e_lse, e_dq,
              e_dk, e_dv);

  // No atomics: a second run gives the same bits.
  Tensor dq2, dk2, dv2;
  gpu::attention_backward(qg, kg, vg, og, lg, gyg, c.window, scale, dq2, dk2, dv2);
  EXPECT_TRUE(bitwise_equal(dq, dq2) && bitwise_equal(dk, dk2) && bitwise_equal(dv, dv2)) << "not deterministic";
}

}  // namespace

TEST(CudaFlash, ShortSequences) {
  LT2_REQUIRE_GPU();
  uint64_t seed = 1000;
  for (int64_t D : {64, 128})
    for (auto [H, Hkv] : {std::pair<int64_t, int64_t>{4, 2}, {8, 1}})
      for (int64_t L : {1, 37, 130})
        for (int64_t w : {0, 1, 16, 100}) check_flash({2, L, H, Hkv, D, w}, seed += 10);
}

TEST(CudaFlash, LongSequences) {
  LT2_REQUIRE_GPU();
  uint64_t seed = 2000;
  for (int64_t D : {64, 128})
    for (auto [H, Hkv] : {std::pair<int64_t, int64_t>{4, 2}, {8, 1}})
      for (int64_t w : {0, 1, 16, 100}) check_flash({1, 1000, H, Hkv, D, w}, seed += 10);
}

TEST(CudaFlash, TileMultiples) {
  LT2_REQUIRE_GPU();
  // Lengths and windows equal to whole tiles (64 keys, 64 / 128 rows): the band and skip
  // tests at exact tile edges, where an off-by-one drops or adds a whole tile.
  uint64_t seed = 4000;
  for (int64_t D : {64, 128})
    for (int64_t L : {128, 256})
      for (int64_t w : {0, 64, 128}) check_flash({2, L, 4, 2, D, w}, seed += 10);
}

TEST(CudaFlash, ManyHeadsAndBatches) {
  LT2_REQUIRE_GPU();
  // More (batch, head) pairs than one group of the longest-first block order (16 pairs), with a
  // partial last group: 3 x 12 query heads, 3 x 6 and 3 x 4 KV heads.
  check_flash({3, 300, 12, 6, 64, 0}, 6000);
  check_flash({3, 200, 12, 4, 128, 100}, 6010);
}

TEST(CudaFlash, MmaSyncKernels) {
  LT2_REQUIRE_GPU();
  // On an H100 the wgmma kernels run by default; LT2_FLASH_MMA=1 takes the mma.sync kernels
  // that other GPUs run, so they stay tested here too.
  ScopedEnv mma("LT2_FLASH_MMA", "1");
  uint64_t seed = 5000;
  for (int64_t D : {64, 128})
    for (int64_t w : {0, 100}) {
      check_flash({2, 130, 4, 2, D, w}, seed += 10);
      check_flash({1, 300, 8, 1, D, w}, seed += 10);
    }
}

TEST(CudaFlash, PeakySoftmax) {
  LT2_REQUIRE_GPU();
  // Scores with a standard deviation of 4: the running maximum moves a lot between tiles.
  check_flash({1, 300, 4, 2, 64, 0, 4.0}, 3000);
  check_flash({1, 300, 4, 4, 128, 77, 4.0}, 3010);
}

TEST(CudaFlash, OtherCasesKeepTheSimtPath) {
  LT2_REQUIRE_GPU();
#if LT2_HAVE_CUDA
  const Tensor q = on_gpu(randn({1, 8, 2, 64}, 1), DType::F32), k = on_gpu(randn({1, 8, 2, 64}, 2), DType::F32);
  EXPECT_FALSE(gpu::flash_supported(q, k, k)) << "F32 keeps the fp32 kernels";
  const Tensor q2 = on_gpu(randn({1, 8, 2, 96}, 1), DType::BF16), k2 = on_gpu(randn({1, 8, 2, 96}, 2), DType::BF16);
  EXPECT_FALSE(gpu::flash_supported(q2, k2, k2)) << "head dim 96";
#endif
}
