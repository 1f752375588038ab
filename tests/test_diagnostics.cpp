// The stability diagnostics measure what they claim, on cases with known answers.
#include <gtest/gtest.h>

#include <cmath>

#include "model/diagnostics.h"
#include "model_util.h"

using namespace lt2;

TEST(Diagnostics, UniformAttentionGivesHarmonicFirstTokenMass) {
  ModelConfig c = test::tiny_config("full,gdn", 2, 3);
  LoopedModel m(c);  // F32
  m.init(1);
  m.find("model.layers.0.attn.q_proj.weight")->value.zero();  // all scores 0: uniform attention
  const int64_t L = 9;
  Tensor ids = Tensor::empty({2, L}, DType::I32);
  for (int64_t i = 0; i < ids.numel(); ++i) ids.set(i, (i * 7) % 11);
  Diagnostics d;
  accumulate_diagnostics(m, ids, d);
  accumulate_diagnostics(m, ids, d);  // running means over identical batches stay the same
  double expect = 0;
  for (int64_t t = 0; t < L; ++t) expect += 1.0 / double(t + 1);  // query t puts 1/(t+1) on key 0
  expect /= double(L);
  ASSERT_EQ(d.loops, 3);
  for (int64_t t = 0; t < 3; ++t) {
    EXPECT_NEAR(d.get(t, 0).first_token_mass, expect, 1e-6) << "loop " << t;
    EXPECT_TRUE(std::isnan(d.get(t, 1).first_token_mass)) << "GDN has no attention";
    EXPECT_GT(d.get(t, 1).max_ffn_activation, 0.0);
  }
  // The residual stream entering loop 1, layer 1 is the embedding of the ids.
  const Tensor& table = m.find("model.embed_tokens.weight")->value;
  double ss = 0;
  for (int64_t i = 0; i < ids.numel(); ++i)
    for (int64_t j = 0; j < c.hidden_size; ++j) ss += std::pow(table.item(int64_t(ids.item(i)) * c.hidden_size + j), 2);
  EXPECT_NEAR(d.get(0, 0).residual_rms, std::sqrt(ss / double(ids.numel() * c.hidden_size)), 1e-6);
  EXPECT_EQ(d.batches, 2);
  EXPECT_NE(diagnostics_table(d, c).find("| 3 | 2 | gdn |"), std::string::npos);
}

TEST(Diagnostics, WindowLimitsWhoSeesTheFirstToken) {
  ModelConfig c = test::tiny_config("window(3)", 1, 1);
  LoopedModel m(c);
  m.init(2);
  m.find("model.layers.0.attn.q_proj.weight")->value.zero();
  Tensor ids = Tensor::full({1, 8}, 3, DType::I32);
  Diagnostics d;
  accumulate_diagnostics(m, ids, d);
  // Only queries 0, 1, 2 see key 0, with uniform weights 1, 1/2, 1/3.
  EXPECT_NEAR(d.get(0, 0).first_token_mass, (1.0 + 0.5 + 1.0 / 3) / 3, 1e-6);
}

// With recompute_loops the training forward keeps no block activations; the diagnostics ask
// for them and get the same numbers as without it.
TEST(Diagnostics, SameWithRecomputeLoops) {
  Tensor ids = Tensor::empty({2, 7}, DType::I32);
  for (int64_t i = 0; i < ids.numel(); ++i) ids.set(i, (i * 5) % 13);
  std::vector<double> mass;
  for (bool recompute : {false, true}) {
    ModelConfig c = test::tiny_config("full,gdn", 2, 2);
    c.recompute_loops = recompute;
    c.recompute_keep_loops = 0;  // no loop keeps its activations in the training forward
    LoopedModel m(c);
    m.init(3);
    Diagnostics d;
    accumulate_diagnostics(m, ids, d);
    mass.push_back(d.get(1, 0).first_token_mass);
    EXPECT_GT(d.get(1, 1).max_ffn_activation, 0.0);
  }
  EXPECT_EQ(mass[0], mass[1]);
}

// DSA: the share of dense attention on the top-k keys. Uniform attention (q = 0) puts 1/(t+1)
// on each key, so with k = 2 query t's share is min(2, t+1)/(t+1); with k >= L it is 1.
TEST(Diagnostics, DsaTopKShareOfDenseAttention) {
  const int64_t L = 6;
  Tensor ids = Tensor::empty({1, L}, DType::I32);
  for (int64_t i = 0; i < L; ++i) ids.set(i, 3 + i);
  for (int64_t k : {int64_t(2), L}) {
    ModelConfig c = test::tiny_config("dsa(" + std::to_string(k) + ")", 1, 1);
    LoopedModel m(c);
    m.init(4);
    m.find("model.layers.0.attn.q_proj.weight")->value.zero();
    for (bool dense : {false, true}) {  // the sparse forward's own set, or the one picked from I
      m.set_dsa_dense(dense);
      Diagnostics d;
      accumulate_diagnostics(m, ids, d);
      double expect = 0;
      for (int64_t t = 0; t < L; ++t) expect += double(std::min(k, t + 1)) / double(t + 1) / double(L);
      EXPECT_NEAR(d.get(0, 0).topk_mass, expect, 1e-6) << "k " << k << (dense ? " dense" : " sparse");
    }
  }
  ModelConfig c = test::tiny_config("full", 1, 1);
  LoopedModel m(c);
  m.init(4);
  Diagnostics d;
  accumulate_diagnostics(m, ids, d);
  EXPECT_TRUE(std::isnan(d.get(0, 0).topk_mass)) << "only dsa layers have a top-k share";
  EXPECT_EQ(diagnostics_table(d, c).find("top-k"), std::string::npos);
}
