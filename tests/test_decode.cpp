// Inference: prefill + decode through per-(loop, layer) caches equals the full forward,
// and cache memory behaves as `lt2 info` says.
#include <gtest/gtest.h>

#include "core/rng.h"
#include "gradcheck.h"
#include "infer/sampler.h"
#include "infer/session.h"
#include "model/info.h"

using namespace lt2;
using namespace lt2::test;

namespace {
ModelConfig small_config(const std::string& pattern, int64_t n_layers, int64_t T) {
  ModelConfig c;
  c.hidden_size = 32;
  c.num_hidden_layers = n_layers;
  c.num_loops = T;
  c.intermediate_size = 48;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.gdn_num_heads = 2;
  c.gdn_num_v_heads = 4;
  c.gdn_head_k_dim = 8;
  c.gdn_head_v_dim = 12;
  c.max_position_embeddings = 128;
  c.layer_types = parse_pattern(pattern, n_layers, "test");
  return c;
}

// Random init with the zero-initialised rho and output gates made non-zero, so every path counts.
void randomise(LoopedModel& m, uint64_t seed) {
  m.init(seed);
  for (Param* p : m.params())
    if (p->name == "model.loop_residual" || p->name.find("g_proj") != std::string::npos) {
      const CounterRng rng{seed, stream_id(p->name.c_str()) + 1};
      for (int64_t i = 0; i < p->value.numel(); ++i) p->value.set(i, 0.3 * rng.normal(i));
    }
}

std::vector<int32_t> random_tokens(int64_t n, uint64_t seed) {
  const CounterRng rng{seed, 99};
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[i] = int32_t(rng.bits(i) % 256);
  return t;
}

// Relative L2 error of one row of logits.
double row_error(const float* a, const float* b, int64_t V) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < V; ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    num += double(a[i] - b[i]) * (a[i] - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

// Three sequences of length L with prompts of different lengths, decoded together.
void check_decode_parity(const ModelConfig& cfg) {
  LoopedModel model(cfg);
  randomise(model, 11);
  const int64_t L = 24, V = cfg.vocab_size;
  const std::vector<int64_t> prompt_len = {1, 9, 17};
  const int64_t B = int64_t(prompt_len.size());
  std::vector<std::vector<int32_t>> seqs;
  std::vector<Tensor> reference;  // full-forward logits [1, L, V] per sequence
  for (int64_t b = 0; b < B; ++b) {
    seqs.push_back(random_tokens(L, 100 + b));
    Tensor ids = Tensor::empty({1, L}, DType::I32);
    std::copy(seqs[b].begin(), seqs[b].end(), ids.data<int32_t>());
    reference.push_back(model.forward(ids, nullptr));
  }
  Session s(model, B, 2 * L);  // room for the filler tokens of sequences that finish early
  double worst = 0;
  for (int64_t b = 0; b < B; ++b) {
    const std::vector<int32_t> prompt(seqs[b].begin(), seqs[b].begin() + prompt_len[b]);
    Tensor lg = s.prefill(b, prompt, /*all_positions=*/true);
    for (int64_t t = 0; t < prompt_len[b]; ++t)
      worst = std::max(worst, row_error(lg.data<float>() + t * V, reference[b].data<float>() + t * V, V));
  }
  // Teacher-forced decode: each sequence is fed its own next token; finished ones get filler.
  for (int64_t step = 0; step < L - prompt_len[0]; ++step) {
    std::vector<int32_t> tok(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) {
      const int64_t pos = prompt_len[b] + step;
      tok[b] = pos < L ? seqs[b][pos] : 0;
    }
    Tensor lg = s.decode(tok);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t pos = prompt_len[b] + step;
      if (pos < L) worst = std::max(worst, row_error(lg.data<float>() + b * V, reference[b].data<float>() + pos * V, V));
    }
  }
  EXPECT_LE(worst, 1e-5) << "worst relative error of a logits row";
}
}  // namespace

TEST(Decode, ParityEveryMixerAndHybrid) {
  struct Case { const char* pattern; int64_t layers; };
  const Case cases[] = {{"full", 2}, {"window(5)", 2}, {"gdn", 2}, {"gdn,full", 2}, {"interleave(full,gdn,1:2)", 3},
                        {"gdn,window(4),full", 3}, {"dsa(4)", 2}, {"interleave(dsa(6),gdn,1:2)", 3}};
  for (const Case& c : cases)
    for (int64_t T : {1, 2, 4}) {
      SCOPED_TRACE(std::string(c.pattern) + " T=" + std::to_string(T));
      check_decode_parity(small_config(c.pattern, c.layers, T));
    }
}

TEST(Decode, ParityWithPerLoopSpansSandwichAndTiedHead) {
  ModelConfig c = small_config("full,gdn", 2, 3);
  c.loop_windows = {0, 6, 3};
  c.sandwich_norm = true;
  c.tie_word_embeddings = true;
  check_decode_parity(c);
  ModelConfig o = small_config("full,gdn", 2, 2);
  o.norm_between_loops = true;
  o.output_gate = "head";
  check_decode_parity(o);
}

TEST(Decode, CacheMemoryMatchesInfo) {
  for (const char* pattern : {"full", "window(16)", "gdn", "gdn,full"}) {
    SCOPED_TRACE(pattern);
    const ModelConfig cfg = small_config(pattern, 2, 3);
    LoopedModel model(cfg);
    const int64_t batch = 2;
    std::vector<int64_t> bytes;
    for (int64_t ctx : {32, 64, 128}) {
      Session s(model, batch, ctx);
      EXPECT_EQ(double(s.cache_bytes()), batch * model_cost(cfg, 0, ctx, ctx, 4).cache_bytes) << "context " << ctx;
      bytes.push_back(s.cache_bytes());
    }
    const bool grows = std::string(pattern).find("full") != std::string::npos;
    if (grows) {
      EXPECT_LT(bytes[0], bytes[1]);
      EXPECT_LT(bytes[1], bytes[2]);
    } else {
      EXPECT_EQ(bytes[0], bytes[1]);  // window(16) and GDN: flat in the context
      EXPECT_EQ(bytes[1], bytes[2]);
    }
  }
  // Full attention's cache grows exactly linearly: 2 * Hkv * D * 4 bytes per token per (loop, layer).
  const ModelConfig cfg = small_config("full", 2, 3);
  LoopedModel model(cfg);
  EXPECT_EQ(Session(model, 1, 65).cache_bytes() - Session(model, 1, 64).cache_bytes(), 3 * 2 * 2 * 2 * 8 * 4);
}

TEST(Decode, BadInputIsAClearError) {
  const ModelConfig cfg = small_config("gdn,full", 2, 2);
  LoopedModel model(cfg);
  Session s(model, 2, 16);
  EXPECT_THROW(s.prefill(0, random_tokens(17, 1)), Error);  // longer than the context
  EXPECT_THROW(s.prefill(2, random_tokens(3, 1)), Error);   // outside the batch
  EXPECT_THROW(s.decode({1, 2}), Error);                     // not prefilled
  EXPECT_THROW(Session(model, 1, 129), Error);                // beyond max_position_embeddings
  s.prefill(0, random_tokens(15, 1));
  s.prefill(1, random_tokens(3, 2));
  s.decode({1, 2});  // reaches 16 tokens for sequence 0
  EXPECT_THROW(s.decode({1, 2}), Error);
  SamplerConfig bad;
  bad.top_p = 0;
  EXPECT_THROW(Sampler{bad}, Error);
}

TEST(Decode, SamplerGreedyTopKTopP) {
  const float logits[5] = {0.1f, 3.0f, 2.9f, -1.0f, 0.0f};
  SamplerConfig g;
  g.temperature = 0;
  EXPECT_EQ(Sampler(g).sample(logits, 5, {}), 1);
  g.repetition_penalty = 2.0;  // token 1 seen: 3.0 / 2 = 1.5 < 2.9
  EXPECT_EQ(Sampler(g).sample(logits, 5, {1}), 2);
  SamplerConfig k;
  k.top_k = 2;
  k.temperature = 1.0;
  Sampler ks(k);
  for (int i = 0; i < 200; ++i) {
    const int32_t t = ks.sample(logits, 5, {});
    EXPECT_TRUE(t == 1 || t == 2) << t;
  }
  SamplerConfig p;
  p.top_k = 0;
  p.top_p = 0.3;  // token 1 alone holds > 30 % of the mass
  Sampler ps(p);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(ps.sample(logits, 5, {}), 1);
}

TEST(Decode, PrefillReturnsTheLastRowByDefault) {
  const ModelConfig cfg = small_config("gdn,full", 2, 2);
  LoopedModel model(cfg);
  randomise(model, 3);
  const auto prompt = random_tokens(9, 4);
  Session a(model, 1, 16), b(model, 1, 16);
  const Tensor last = a.prefill(0, prompt);
  const Tensor all = b.prefill(0, prompt, true);
  ASSERT_EQ(last.shape(), (Shape{1, cfg.vocab_size}));
  ASSERT_EQ(all.shape(), (Shape{9, cfg.vocab_size}));
  // The same maths; only the GEMM shape differs (1 row vs 9), which may change fp32 rounding.
  for (int64_t v = 0; v < cfg.vocab_size; ++v)
    EXPECT_NEAR(last.item(v), all.item(8 * cfg.vocab_size + v), 1e-5 * (1 + std::abs(all.item(8 * cfg.vocab_size + v))));
}
