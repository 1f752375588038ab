// Whole-model CUDA parity: loss and every parameter gradient against the CPU reference,
// decode on the GPU against the CPU forward, decode attention against its CPU op, and a
// 200-step bf16 training run that tracks the CPU fp32 loss curve.
#include <gtest/gtest.h>

#include <cmath>

#include "../model_util.h"
#include "cpu/cpu_ops.h"
#include "cuda_util.h"
#include "infer/session.h"
#include "model/presets.h"
#include "ops/ops.h"
#include "text/tokenizer.h"
#include "train/trainer.h"

#if LT2_HAVE_CUDA
#include "cuda/cuda_ops.h"
#endif

using namespace lt2;
using namespace lt2::test;

namespace {

// Small but not degenerate: every mixer kind, GQA, grouped value heads, two loops.
ModelConfig parity_config(const std::string& pattern) {
  ModelConfig c = tiny_config(pattern, 3, 2);
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.gdn_num_heads = 2;
  c.gdn_num_v_heads = 4;
  c.gdn_head_k_dim = 32;
  c.gdn_head_v_dim = 16;
  c.layer_types = parse_pattern(pattern, 3, "test");
  return c;
}

Tensor random_ids(int64_t B, int64_t L, int64_t V, uint64_t seed) {
  Tensor ids = Tensor::empty({B, L}, DType::I32);
  const Tensor u = uniform({B * L}, seed, 0, double(V));
  for (int64_t i = 0; i < B * L; ++i) ids.set(i, std::floor(u.item(i)));
  return ids;
}

struct LossAndGrads {
  double loss;
  std::vector<Tensor> grads;  // CPU F64 copies, in params() order
};

LossAndGrads loss_and_grads(LoopedModel& m, const Tensor& ids, const Tensor& targets) {
  m.zero_grad();
  LoopedModel::Ctx ctx;
  const int64_t V = m.config().vocab_size;
  Tensor logits = m.forward(ids, &ctx);
  Tensor dlogits;
  const double loss = ops::cross_entropy(logits.reshape({ids.numel(), V}), targets.to(m.device()), &dlogits);
  m.backward(ctx, dlogits.reshape(logits.shape()));
  LossAndGrads r{loss, {}};
  for (const Param* p : m.params()) r.grads.push_back(p->grad.to(Device::CPU, DType::F64));
  return r;
}

// fusable: as many kv heads as query heads, so that the attention layers' q, k, v, g fuse too
// (the FFN's gate, up always do on the BF16 path); the test then checks that they were packed.
void check_model_parity(const std::string& pattern, DType compute, double loss_tol, double grad_tol,
                        bool dsa_dense = false, bool fusable = false) {
  ModelConfig cfg = parity_config(pattern);
  if (fusable) cfg.num_key_value_heads = cfg.num_attention_heads;
  LoopedModel ref(cfg, DType::F64), gpu(cfg, DType::F32);
  ref.set_dsa_dense(dsa_dense);
  gpu.set_dsa_dense(dsa_dense);
  randomize(ref, 5);
  randomize(gpu, 5);
  // The reference sees exactly the weights the GPU computes with.
  for (size_t i = 0; i < ref.params().size(); ++i) {
    Param* p = gpu.params()[i];
    const bool low = compute == DType::BF16 && p->value.ndim() == 2 && p->decay;
    ref.params()[i]->value = p->value.to(low ? DType::BF16 : DType::F32).to(DType::F64);
  }
  gpu.to(Device::CUDA, compute);
  // On the BF16 path every FFN packs (gate, up), every GDN layer two pairs ((q, k), (v, g)) and,
  // when fusable, every attention layer but DSA's (q, k, v, g).
  if (compute == DType::BF16) {
    int64_t want = 0;
    for (const MixerSpec& t : cfg.layer_types)
      want += 1 + (t.kind == MixerSpec::Gdn ? 2 : fusable && t.kind != MixerSpec::Dsa ? 1 : 0);
    EXPECT_EQ(gpu.packed_projections(), want);
  }
  const Tensor ids = random_ids(2, 45, cfg.vocab_size, 9), targets = random_ids(1, 90, cfg.vocab_size, 10).reshape({90});
  const LossAndGrads want = loss_and_grads(ref, ids, targets), got = loss_and_grads(gpu, ids, targets);
  EXPECT_NEAR(got.loss, want.loss, loss_tol * std::abs(want.loss)) << pattern;
  for (size_t i = 0; i < want.grads.size(); ++i) {
    const double err = rel_l2(got.grads[i], want.grads[i]);
    EXPECT_LE(err, grad_tol) << pattern << " " << ref.params()[i]->name << ": relative L2 " << err;
  }
}

}  // namespace

// fp32 on the GPU: only summation order differs from the float64 reference.
TEST(CudaModel, LossAndGradientsF32) {
  LT2_REQUIRE_GPU();
  check_model_parity("full,gdn,window(8)", DType::F32, 1e-5, 1e-4);
}

// bf16 activations and GEMM weights (fp32 masters, norms, gates and GDN state). Rounding every
// activation to bf16 (2^-9 relative) through 6 block calls with random O(1) weights and sharp
// softmaxes measured 3-12 % relative L2 on the gradients on an H100; the op-level checks
// (1e-2 each) and the fp32 run above (1e-4) are the exactness checks, this one catches gross
// mixed-precision mistakes (a wrong dtype, a lost accumulation) which give errors of order 1.
TEST(CudaModel, LossAndGradientsBf16) {
  LT2_REQUIRE_GPU();
  check_model_parity("full,gdn,window(8)", DType::BF16, 1e-2, 0.2);
}

// The same with the attention projections fused as well (one batched GEMM forward, dq, dk, dv,
// dz written into one packed gradient, one GEMM each for dx and dW), at a config with as many
// kv heads as query heads. Its bf16 drift is larger than the GQA config's: 0.20 and 0.22 relative
// L2 measured on an H100 (layer 0's input norm, the GDN layer's k conv), hence 0.3 here (a gross
// error gives order 1); the fused path is exact in F64 on the CPU (FusedProj tests) and the test
// below compares it with the unfused path on the GPU tightly.
TEST(CudaModel, LossAndGradientsBf16FusedProjections) {
  LT2_REQUIRE_GPU();
  check_model_parity("full,gdn,window(8)", DType::BF16, 1e-2, 0.3, false, true);
}

// Fused and unfused BF16 runs of one model: the same arithmetic up to the GEMMs' summation
// order and bf16 rounding of intermediate values, so far closer than either is to the F64 reference.
// The GDN layer's q, k heads of 32 channels (C 64) take the composed conv + L2 norm; the second
// config's heads of 64 (C 128, V 32) take the fused conv + norm kernels, writing dq, dk into the
// packed gradient.
TEST(CudaModel, FusedProjectionsMatchUnfusedBf16) {
  LT2_REQUIRE_GPU();
  for (int64_t gdn_k : {32, 64}) {
    SCOPED_TRACE(cat("GDN K ", gdn_k));
    ModelConfig cfg = parity_config("full,gdn,window(8)");
    cfg.num_key_value_heads = cfg.num_attention_heads;
    cfg.gdn_head_k_dim = gdn_k;
    cfg.gdn_head_v_dim = gdn_k / 2;
    LoopedModel m(cfg, DType::F32);
    randomize(m, 5);
    m.to(Device::CUDA, DType::BF16);
    const Tensor ids = random_ids(2, 45, cfg.vocab_size, 9), targets = random_ids(1, 90, cfg.vocab_size, 10).reshape({90});
    ASSERT_EQ(m.packed_projections(), 7);  // 3 FFNs, 2 attention layers, the GDN layer's 2 pairs
    const LossAndGrads fused = loss_and_grads(m, ids, targets);
    m.set_fusion(LoopedModel::Fusion::Off);
    ASSERT_EQ(m.packed_projections(), 0);
    const LossAndGrads plain = loss_and_grads(m, ids, targets);
    EXPECT_NEAR(fused.loss, plain.loss, 2e-3 * std::abs(plain.loss));
    for (size_t i = 0; i < plain.grads.size(); ++i) {
      const double err = rel_l2(fused.grads[i], plain.grads[i]);
      EXPECT_LE(err, 0.05) << m.params()[i]->name << ": relative L2 " << err;
    }
  }
}

// dsa(k) in both stages (the indexer's gradients come from its KL loss, compared like the rest).
// fp32 only: a top-k set is discontinuous in the scores, and bf16 rounding of the layer input
// may swap two nearly equal keys; the bf16 ops are checked one by one in test_cuda_dsa.cpp.
TEST(CudaModel, DsaLossAndGradientsF32) {
  LT2_REQUIRE_GPU();
  for (bool dense : {false, true}) check_model_parity("full,dsa(8),gdn", DType::F32, 1e-5, 1e-4, dense);
}

TEST(CudaModel, DecodeMatchesCpuForward) {
  LT2_REQUIRE_GPU();
  for (const char* pattern : {"gdn,full,window(6)", "gdn,dsa(6),full"})
    for (DType compute : {DType::F32, DType::BF16}) {
      if (std::string(pattern).find("dsa") != std::string::npos && compute == DType::BF16) continue;  // see above
      const ModelConfig cfg = parity_config(pattern);
      LoopedModel ref(cfg, DType::F32), gpu(cfg, DType::F32);
      randomize(ref, 3);
      randomize(gpu, 3);
      gpu.to(Device::CUDA, compute);
      const int64_t L = 30;
      const Tensor ids = random_ids(1, L, cfg.vocab_size, 4);
      const Tensor want = ref.forward(ids, nullptr).reshape({L, cfg.vocab_size});
      Session s(gpu, 1, 64);
      std::vector<int32_t> prompt(ids.data<int32_t>(), ids.data<int32_t>() + 12);
      std::vector<Tensor> rows = {s.prefill(0, prompt)};
      for (int64_t t = 12; t < L; ++t) rows.push_back(s.decode({ids.data<int32_t>()[t]}));
      for (size_t i = 0; i < rows.size(); ++i) {
        const Tensor w = want.select(int64_t(11 + i)).reshape({1, cfg.vocab_size}).to(DType::F64);
        const double err = rel_l2(rows[i].to(DType::F64), w);
        // bf16: 3-11 % measured on an H100 (same rounding amplification as the gradients above).
        EXPECT_LE(err, compute == DType::F32 ? 1e-4 : 0.2) << dtype_name(compute) << " position " << 11 + i;
      }
    }
}

#if LT2_HAVE_CUDA
TEST(CudaModel, AttentionDecodeOp) {
  LT2_REQUIRE_GPU();
  struct Case { int64_t rows, window; bool ring; int32_t pos[3]; };
  // Short caches (one split), a ring, and a long cache cut into several splits, with and
  // without a window, including splits that see no key.
  const Case cases[] = {{50, 0, false, {0, 49, 7}}, {8, 8, true, {0, 20, 7}}, {1000, 0, false, {999, 300, 2}},
                        {1000, 300, false, {999, 600, 5}}};
  for (DType dt : {DType::F32, DType::BF16})
    for (const Case& c : cases) {
      const int64_t B = 3, H = 4, Hkv = 2, D = 64;
      const Tensor q = rounded(randn({B, 1, H, D}, 1), dt), k = rounded(randn({B, c.rows, Hkv, D}, 2), dt),
                   v = rounded(randn({B, c.rows, Hkv, D}, 3), dt);
      Tensor pos = Tensor::empty({B}, DType::I32);
      for (int64_t b = 0; b < B; ++b) pos.set(b, c.pos[b]);
      const Tensor want = cpu::attention_decode(q, k, v, pos, c.window, c.ring, 0.125);
      const Tensor got = cuda::attention_decode(on_gpu(q, dt), on_gpu(k, dt), on_gpu(v, dt), pos.to(Device::CUDA),
                                                c.window, c.ring, 0.125);
      expect_close(got, want, parity_tol(dt),
                   cat("attention_decode ", dtype_name(dt), " rows ", c.rows, " window ", c.window, c.ring ? " ring" : ""));
    }
}
#endif

// 200 steps of the tiny preset: bf16 on the GPU follows the fp32 CPU curve.
TEST(CudaModel, TrainingTracksCpuLossCurve) {
  LT2_REQUIRE_GPU();
  const ModelConfig mc = ModelConfig::from_json(*preset("tiny").find("model"), "tiny");
  TrainConfig tc = TrainConfig::from_json(*preset("tiny").find("train"), "tiny");
  tc.steps = 200;
  std::string text;
  for (int i = 0; i < 200; ++i) text += "the quick brown fox jumps over the lazy dog. " + std::to_string(i % 13) + "\n";
  const std::vector<int32_t> tokens = ByteTokenizer::encode(text);
  auto source = std::make_shared<TextSource>(tokens, tokens, tc.seq_len, 1234);
  LoopedModel cpu_model(mc), gpu_model(mc);
  cpu_model.init(1);
  gpu_model.init(1);
  gpu_model.to(Device::CUDA, DType::BF16);
  Trainer cpu_tr(cpu_model, tc, source), gpu_tr(gpu_model, tc, source);
  std::vector<double> lc, lg;
  for (int s = 0; s < 200; ++s) lc.push_back(cpu_tr.step().loss), lg.push_back(gpu_tr.step().loss);
  // Averages over 20-step windows: single steps are noisy, the curves must agree on the trend.
  for (int w = 0; w < 10; ++w) {
    double c = 0, g = 0;
    for (int s = 20 * w; s < 20 * w + 20; ++s) c += lc[s] / 20, g += lg[s] / 20;
    EXPECT_NEAR(g, c, 0.02 * c + 0.02) << "steps " << 20 * w << ".." << 20 * w + 19;
  }
  EXPECT_LT(lc.back(), 0.6 * lc.front()) << "the run must actually learn for the comparison to mean something";
}
