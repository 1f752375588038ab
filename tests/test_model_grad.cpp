// Finite-difference gradient checks (float64) of single mixer layers, blocks and the whole
// looped model: every parameter (all elements when small, a fixed random subset of 20 when
// large) against LoopedModel::backward. Scalar loss = sum(logits * W) for a random W.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "model_util.h"
#include "model/config.h"
#include "model/looped_model.h"
#include "ops/ops.h"

using namespace lt2;
using namespace lt2::test;

namespace {

// ids are drawn from [0, kUsedVocab); the config's vocab is 256 because validate() requires
// vocab_size >= 256 for the byte tokenizer, the only one in this version.
constexpr int64_t kUsedVocab = 11;

Tensor make_ids(int64_t B, int64_t L, uint64_t seed) {
  Tensor ids = Tensor::empty({B, L}, DType::I32);
  const CounterRng rng{seed, 3};
  for (int64_t i = 0; i < ids.numel(); ++i) ids.set(i, std::min<int64_t>(kUsedVocab - 1, int64_t(rng.uniform(i) * kUsedVocab)));
  return ids;
}

// All elements of small parameters; 20 deterministic random ones of large ones. For the
// embedding table most picks come from the rows of the tokens in use (the input path).
std::vector<int64_t> pick_elements(const Param& p, int64_t d, uint64_t seed) {
  const int64_t n = p.value.numel();
  std::vector<int64_t> out;
  if (n <= 64) {
    for (int64_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  const CounterRng rng{seed, stream_id(p.name.c_str())};
  std::set<int64_t> s;
  const bool embed = p.name == "model.embed_tokens.weight";
  for (uint64_t j = 0; s.size() < 20; ++j) {
    const int64_t range = embed && s.size() < 16 ? kUsedVocab * d : n;
    s.insert(std::min<int64_t>(range - 1, int64_t(rng.uniform(j) * range)));
  }
  return {s.begin(), s.end()};
}

constexpr double kEps = 3e-5, kRtol = 1e-5, kAtol = 1e-8;

// Fourth-order central differences of loss w.r.t. the chosen elements of x vs `analytic`.
// Fails on NaN or inf.
// Returns the largest |analytic| seen (to detect paths that carry no gradient at all).
double check_elements(const std::string& what, const std::function<double()>& loss, Tensor& x,
                      const Tensor& analytic, const std::vector<int64_t>& idx) {
  EXPECT_EQ(x.shape(), analytic.shape()) << what;
  double max_ana = 0;
  int reported = 0;
  for (int64_t i : idx) {
    const double x0 = x.item(i);
    auto at = [&](double dx) {
      x.set(i, x0 + dx);
      return loss();
    };
    // Fourth-order central difference: truncation O(eps^4), so that the stiff configs
    // (sandwich norms on small mixer outputs, three loops) are still resolved to ~1e-9.
    const double d1 = at(kEps) - at(-kEps), d2 = at(2 * kEps) - at(-2 * kEps);
    x.set(i, x0);
    const double num = (8 * d1 - d2) / (12 * kEps), ana = analytic.item(i);
    const double err = std::abs(num - ana);
    const bool ok = std::isfinite(num) && std::isfinite(ana) &&
                    err <= kAtol + kRtol * std::max(std::abs(num), std::abs(ana));
    if (!ok && reported++ < 5) ADD_FAILURE() << what << "[" << i << "]: numeric " << num << " vs analytic " << ana;
    max_ana = std::max(max_ana, std::abs(ana));
  }
  return max_ana;
}

// Gradient check of every parameter of a freshly randomised model of config `cfg`.
void check_model_grads(const ModelConfig& cfg, int64_t B, int64_t L, uint64_t seed) {
  cfg.validate("test config");
  LoopedModel m(cfg, DType::F64);
  randomize(m, seed);
  const Tensor ids = make_ids(B, L, seed + 100);
  const Tensor W = randn({B, L, cfg.vocab_size}, seed + 200);
  m.zero_grad();
  LoopedModel::Ctx ctx;
  const Tensor logits = m.forward(ids, &ctx);
  ASSERT_EQ(logits.shape(), (Shape{B, L, cfg.vocab_size}));
  m.backward(ctx, W);
  auto loss = [&] { return dot(m.forward(ids, nullptr), W); };
  for (Param* p : m.params()) {
    const Tensor ana = p->grad.clone();
    const double max_ana = check_elements(p->name, loss, p->value, ana, pick_elements(*p, cfg.hidden_size, seed));
    EXPECT_GT(max_ana, 1e-6) << p->name << ": no gradient on any checked element (path not exercised)";
  }
}

// Every name that must be among the checked parameters of a config (guards against a
// parameter silently missing from params()).
void expect_has(const ModelConfig& cfg, const std::vector<std::string>& names) {
  LoopedModel m(cfg, DType::F64);
  for (const auto& n : names) EXPECT_NE(m.find(n), nullptr) << "missing parameter " << n;
}

}  // namespace

TEST(ModelGrad, FullAttentionLayerGqaAllGateKinds) {
  for (const char* gate : {"channel", "head", "none"}) {
    SCOPED_TRACE(gate);
    ModelConfig c = tiny_config("full", 1, 1);
    c.output_gate = gate;
    if (c.output_gate == "none") {
      check_model_grads(c, 2, 6, 1);
      continue;
    }
    expect_has(c, {"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                   "model.layers.0.attn.q_proj.weight", "model.layers.0.attn.k_proj.weight",
                   "model.layers.0.attn.v_proj.weight", "model.layers.0.attn.o_proj.weight",
                   "model.layers.0.attn.g_proj.weight", "model.layers.0.post_attention_layernorm.weight",
                   "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
                   "model.layers.0.mlp.down_proj.weight", "model.loop_residual", "model.norm.weight",
                   "lm_head.weight"});
    check_model_grads(c, 2, 6, 1);
  }
}

// dsa(k) in a looped stack, sparse (stage 2) and dense (stage 1): every main weight against the
// LM loss; the indexer's weights against the indexer loss alone (summed over loops), which
// is all they learn from. The LM loss does not depend on the indexer except through the
// top-k set (piecewise constant), so its weights must get no LM gradient.
TEST(ModelGrad, DsaLayerLmAndIndexerGradients) {
  ModelConfig c = tiny_config("full,dsa(3)", 2, 2);
  c.dsa_index_heads = 2, c.dsa_index_head_dim = 3;
  const int64_t B = 2, L = 7;
  for (bool dense : {false, true}) {
    SCOPED_TRACE(dense ? "dense stage" : "sparse stage");
    LoopedModel m(c, DType::F64);
    randomize(m, 3);
    m.set_dsa_dense(dense);
    const Tensor ids = make_ids(B, L, 103), W = randn({B, L, c.vocab_size}, 203);
    auto run = [&](const Tensor& dlogits) {  // forward + backward; returns the LM loss
      m.zero_grad();
      LoopedModel::Ctx ctx;
      const double lm = dot(m.forward(ids, &ctx), W);
      m.backward(ctx, dlogits);
      return lm;
    };
    run(W);
    const double kl_terms = 2;  // one dsa layer, two loops
    EXPECT_GT(m.take_indexer_kl(), 0);
    EXPECT_TRUE(std::isnan(m.take_indexer_kl())) << "taking the loss resets it";
    std::vector<Tensor> grads;
    for (const Param* p : m.params()) grads.push_back(p->grad.clone());
    auto lm_loss = [&] { return dot(m.forward(ids, nullptr), W); };
    auto indexer_loss = [&] {
      run(Tensor::zeros(W.shape(), DType::F64));
      return m.take_indexer_kl() * kl_terms;
    };
    int indexer_params = 0;
    for (size_t i = 0; i < m.params().size(); ++i) {
      Param* p = m.params()[i];
      const bool indexer = p->name.find(".indexer.") != std::string::npos;
      indexer_params += indexer;
      const double max_ana =
          check_elements(p->name, indexer ? std::function<double()>(indexer_loss) : std::function<double()>(lm_loss),
                         p->value, grads[i], pick_elements(*p, c.hidden_size, 3));
      EXPECT_GT(max_ana, 1e-6) << p->name << ": no gradient on any checked element (path not exercised)";
    }
    EXPECT_EQ(indexer_params, 4);
  }
}

// A training step of A micro-batches scales each one's gradients by 1/A: the indexer's too.
TEST(ModelGrad, DsaIndexerGradientFollowsTheMicroBatchScale) {
  const ModelConfig c = tiny_config("gdn,dsa(3)", 2, 2);
  LoopedModel m(c, DType::F64);
  randomize(m, 5);
  const Tensor ids = make_ids(2, 7, 11), targets = make_ids(1, 14, 12).reshape({14});
  std::vector<std::vector<double>> grads;
  for (double scale : {1.0, 0.25}) {
    m.zero_grad();
    Tensor stats = Tensor::zeros({m.loss_chunks(14), 3}, DType::F64);
    m.loss_backward(ids, targets, scale, stats);
    std::vector<double> g;
    for (const Param* p : m.params())
      for (int64_t i = 0; i < p->grad.numel(); ++i) g.push_back(p->grad.item(i));
    grads.push_back(g);
  }
  int indexer_elements = 0;
  for (size_t i = 0, j = 0; i < m.params().size(); ++i)
    for (int64_t e = 0; e < m.params()[i]->grad.numel(); ++e, ++j) {
      indexer_elements += m.params()[i]->name.find(".indexer.") != std::string::npos;
      ASSERT_NEAR(grads[1][j], 0.25 * grads[0][j], 1e-12 * (1 + std::abs(grads[0][j]))) << m.params()[i]->name;
    }
  EXPECT_GT(indexer_elements, 0);
}

TEST(ModelGrad, WindowAttentionLayerChannelAndHeadGate) {
  for (const char* gate : {"channel", "head"}) {
    SCOPED_TRACE(gate);
    ModelConfig c = tiny_config("window(2)", 1, 1);
    c.output_gate = gate;
    check_model_grads(c, 2, 7, 2);
  }
}

TEST(ModelGrad, GdnLayerGroupedValueHeadsRecurrentAndChunked) {
  for (bool chunked : {false, true}) {
    const char* gate = chunked ? "channel" : "head";  // the attention gate option must not disturb GDN
    SCOPED_TRACE(std::string(gate) + (chunked ? " chunked" : " recurrent"));
    ModelConfig c = tiny_config("gdn", 1, 1);
    c.output_gate = gate;
    c.gdn_chunked = chunked;
    expect_has(c, {"model.layers.0.attn.q_proj.weight", "model.layers.0.attn.k_proj.weight",
                   "model.layers.0.attn.v_proj.weight", "model.layers.0.attn.a_proj.weight",
                   "model.layers.0.attn.b_proj.weight", "model.layers.0.attn.g_proj.weight",
                   "model.layers.0.attn.o_proj.weight", "model.layers.0.attn.q_conv1d.weight",
                   "model.layers.0.attn.k_conv1d.weight", "model.layers.0.attn.v_conv1d.weight",
                   "model.layers.0.attn.A_log", "model.layers.0.attn.dt_bias",
                   "model.layers.0.attn.o_norm.weight"});
    check_model_grads(c, 2, 7, 3);
  }
}

TEST(ModelGrad, GdnLayerChunkedAcrossChunkBoundary) {
  // L = 70 > C = 64: the inter-chunk state and its backward scan are exercised.
  ModelConfig c = tiny_config("gdn", 1, 1);
  c.gdn_chunked = true;
  check_model_grads(c, 1, 70, 4);
}

TEST(ModelGrad, SandwichNormBlocks) {
  for (const char* pattern : {"full", "gdn"}) {
    SCOPED_TRACE(pattern);
    ModelConfig c = tiny_config(pattern, 1, 1);
    c.sandwich_norm = true;
    expect_has(c, {"model.layers.0.input_layernorm_2.weight", "model.layers.0.post_attention_layernorm_2.weight"});
    check_model_grads(c, 2, 6, 5);
  }
}

TEST(ModelGrad, LoopedHybridT1AndT3) {
  for (int64_t T : {1, 3}) {
    SCOPED_TRACE("gdn,window(3),full T=" + std::to_string(T));
    ModelConfig c = tiny_config("gdn,window(3),full", 3, T);
    c.gdn_chunked = false;
    check_model_grads(c, 2, 7, 6);
  }
  for (int64_t T : {1, 3}) {
    SCOPED_TRACE("interleave(full,gdn,1:1) T=" + std::to_string(T));
    ModelConfig c = tiny_config("interleave(full,gdn,1:1)", 2, T);
    ASSERT_EQ(c.layer_types[0].kind, MixerSpec::Gdn);
    ASSERT_EQ(c.layer_types[1].kind, MixerSpec::Full);
    c.gdn_chunked = true;
    c.output_gate = "head";
    check_model_grads(c, 2, 6, 7);
  }
}

TEST(ModelGrad, LoopedNormBetweenLoopsWithSandwich) {
  // The Ouro layout: sandwich norms, final norm after every loop replacing h, no rho.
  ModelConfig c = tiny_config("interleave(full,gdn,1:1)", 2, 3);
  c.norm_between_loops = true;
  c.sandwich_norm = true;
  {
    LoopedModel m(c, DType::F64);
    EXPECT_EQ(m.find("model.loop_residual"), nullptr);
  }
  check_model_grads(c, 2, 6, 8);
}

TEST(ModelGrad, LoopedTiedEmbeddings) {
  ModelConfig c = tiny_config("gdn,window(3),full", 3, 2);
  c.tie_word_embeddings = true;
  {
    LoopedModel m(c, DType::F64);
    EXPECT_EQ(m.find("lm_head.weight"), nullptr);
  }
  // The tied table gets gradient from both the input and the head; the picks cover rows
  // of tokens in use (both paths) and unused rows (head path only).
  check_model_grads(c, 2, 6, 9);
}

TEST(ModelGrad, LoopedPerLoopWindowSchedule) {
  ModelConfig c = tiny_config("full,gdn", 2, 3);
  c.loop_windows = {0, 2, 3};
  check_model_grads(c, 2, 7, 10);
}

TEST(ModelGrad, NaNNeverPasses) {
  ModelConfig c = tiny_config("full", 1, 1);
  LoopedModel m(c, DType::F64);
  randomize(m, 11);
  Param* q = m.find("model.layers.0.attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  q->value.set(3, std::nan(""));
  const Tensor ids = make_ids(2, 5, 12);
  const Tensor W = randn({2, 5, c.vocab_size}, 13);
  LoopedModel::Ctx ctx;
  const Tensor logits = m.forward(ids, &ctx);
  int64_t nans = 0;
  for (int64_t i = 0; i < logits.numel(); ++i) nans += std::isnan(logits.item(i));
  EXPECT_EQ(nans, logits.numel()) << "a NaN in W_q reaches every query, hence every logit";
  m.zero_grad();
  m.backward(ctx, W);
  Param* norm = m.find("model.norm.weight");
  ASSERT_NE(norm, nullptr);
  const Tensor ana = norm->grad.clone();
  auto loss = [&] { return dot(m.forward(ids, nullptr), W); };
  EXPECT_TRUE(std::isnan(loss()));
  // Both the gradcheck.h comparison and this file's must reject a NaN gradient (one element:
  // the first channel of the final norm, as a one-element view).
  Tensor x0 = norm->value.reshape({c.hidden_size, 1}).select(0);
  const Tensor a0 = ana.reshape({c.hidden_size, 1}).select(0);
  EXPECT_TRUE(std::isnan(a0.item(0)));
  EXPECT_NONFATAL_FAILURE(check_grad("norm", loss, x0, a0), "numeric nan");
  EXPECT_NONFATAL_FAILURE(check_elements("norm", loss, x0, a0, {0}), "numeric nan");
}

// recompute_loops reruns each loop's blocks in the backward: the same ops in the same order,
// so loss and gradients are bitwise those of the stored-activation path (rho and
// norm-between-loops variants both), also when the last 1 or all 3 loops keep theirs.
TEST(ModelGrad, RecomputeLoopsGivesIdenticalGradients) {
  for (bool norm_between : {false, true}) {
    ModelConfig cfg = tiny_config("gdn,full,window(3),dsa(4)", 4, 3);
    cfg.norm_between_loops = norm_between;
    std::vector<std::vector<double>> grads;
    for (int64_t keep : {-1, 0, 1, 3}) {  // -1: recompute_loops off
      cfg.recompute_loops = keep >= 0;
      cfg.recompute_keep_loops = std::max<int64_t>(keep, 0);
      LoopedModel m(cfg, DType::F64);
      randomize(m, 21);
      const Tensor ids = make_ids(2, 9, 4);
      LoopedModel::Ctx ctx;
      const Tensor logits = m.forward(ids, &ctx);
      m.zero_grad();
      m.backward(ctx, randn(logits.shape(), 8));
      std::vector<double> g;
      for (const Param* p : m.params())
        for (int64_t i = 0; i < p->grad.numel(); ++i) g.push_back(p->grad.item(i));
      grads.push_back(g);
    }
    for (size_t k = 1; k < grads.size(); ++k) {
      ASSERT_EQ(grads[0].size(), grads[k].size());
      for (size_t i = 0; i < grads[0].size(); ++i) ASSERT_EQ(grads[0][i], grads[k][i]) << "variant " << k << ", element " << i;
    }
    EXPECT_GT(std::abs(grads[0].front()) + std::abs(grads[0].back()), 0.0);
  }
}

// The fused, chunked LM head + cross-entropy gives the loss and gradients of the plain path
// (forward, cross_entropy over the whole logits, backward), for one chunk and for several
// chunks with a short last one, ignored targets included.
TEST(ModelGrad, ChunkedLossBackwardMatchesThePlainPath) {
  const ModelConfig cfg = tiny_config("gdn,full", 2, 2);
  const int64_t B = 2, L = 13, rows = B * L;
  const Tensor ids = make_ids(B, L, 5);
  Tensor targets = make_ids(1, rows, 6).reshape({rows});
  targets.set(3, -1), targets.set(20, -1);
  LoopedModel plain(cfg, DType::F64);
  randomize(plain, 31);
  plain.zero_grad();
  LoopedModel::Ctx ctx;
  const Tensor logits = plain.forward(ids, &ctx);
  Tensor dlogits;
  const double want = ops::cross_entropy(logits.reshape({rows, cfg.vocab_size}), targets, &dlogits, 0.5);
  plain.backward(ctx, dlogits.reshape(logits.shape()));
  for (int64_t chunk : {0, 8}) {  // 0: one chunk; 8: chunks of 8, 8, 8, 2
    LoopedModel fused(cfg, DType::F64);
    randomize(fused, 31);
    fused.set_loss_chunk_rows(chunk);
    fused.zero_grad();
    const int64_t C = fused.loss_chunks(rows);
    EXPECT_EQ(C, chunk ? 4 : 1);
    Tensor stats = Tensor::zeros({C, 3}, DType::F64);
    fused.loss_backward(ids, targets, 0.5, stats);
    double sum = 0, count = 0;
    for (int64_t c = 0; c < C; ++c) sum += stats.item(c * 3), count += stats.item(c * 3 + 1);
    EXPECT_EQ(count, double(rows - 2));
    EXPECT_NEAR(sum / count, want, 1e-12);
    for (size_t i = 0; i < plain.params().size(); ++i)
      EXPECT_LE(rel_l2(fused.params()[i]->grad, plain.params()[i]->grad), 1e-12) << plain.params()[i]->name;
  }
}
