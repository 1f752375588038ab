// Semantics of the looped model (SPEC §1, §2, §5), float64: the T = 1 model is a plain
// pre-norm transformer; loops reuse the same blocks with the rho residual (or the Ouro
// norm between loops); window stacks have the receptive field t - T*n_w*(w-1) exactly;
// the hybrid is causal; the per-loop span schedule (loop_windows) is honoured.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "model_util.h"
#include "model/config.h"
#include "model/looped_model.h"
#include "nn/block.h"
#include "ops/ops.h"

using namespace lt2;
using namespace lt2::test;

namespace {


Tensor make_ids(int64_t B, int64_t L, uint64_t seed, int64_t vocab = 11) {
  Tensor ids = Tensor::empty({B, L}, DType::I32);
  const CounterRng rng{seed, 3};
  for (int64_t i = 0; i < ids.numel(); ++i) ids.set(i, std::min<int64_t>(vocab - 1, int64_t(rng.uniform(i) * vocab)));
  return ids;
}

const Tensor& weight(const LoopedModel& m, const std::string& name) {
  const Param* p = m.find(name);
  if (!p) throw std::runtime_error("missing parameter " + name);
  return p->value;
}

// Copies every parameter of `src` into the same-named parameter of `dst` (loop_residual
// only when both have it with the same shape).
void copy_params(const LoopedModel& src, const ParamList& dst) {
  for (Param* p : dst) {
    const Param* s = src.find(p->name);
    if (!s) throw std::runtime_error("source lacks " + p->name);
    ASSERT_EQ(s->value.shape(), p->value.shape()) << p->name;
    for (int64_t i = 0; i < p->value.numel(); ++i) p->value.set(i, s->value.item(i));
  }
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = std::abs(a.item(i) - b.item(i));
    if (!std::isfinite(d)) return INFINITY;
    m = std::max(m, d);
  }
  return m;
}

// ---- an independent plain pre-norm transformer over the model's parameters ----------

std::string lp(int l) { return "model.layers." + std::to_string(l); }

// Gated softmax attention written from SPEC §2 with the op set.
Tensor ref_attention(const LoopedModel& m, int l, const Tensor& x, int64_t window) {
  const ModelConfig& c = m.config();
  const int64_t B = x.dim(0), L = x.dim(1), H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  const std::string p = lp(l) + ".attn.";
  Tensor q = ops::rope(ops::linear(x, weight(m, p + "q_proj.weight")).reshape({B, L, H, D}), c.rope_theta, 0);
  Tensor k = ops::rope(ops::linear(x, weight(m, p + "k_proj.weight")).reshape({B, L, Hkv, D}), c.rope_theta, 0);
  Tensor v = ops::linear(x, weight(m, p + "v_proj.weight")).reshape({B, L, Hkv, D});
  Tensor a = ops::attention(q, k, v, window, 1.0 / std::sqrt(double(D)), nullptr);
  if (c.output_gate != "none") a = ops::sigmoid_gate(a, ops::linear(x, weight(m, p + "g_proj.weight")));
  return ops::linear(a.reshape({B, L, H * D}), weight(m, p + "o_proj.weight"));
}

Tensor ref_ffn(const LoopedModel& m, int l, const Tensor& x) {
  const std::string p = lp(l) + ".mlp.";
  return ops::linear(ops::swiglu(ops::linear(x, weight(m, p + "gate_proj.weight")),
                                 ops::linear(x, weight(m, p + "up_proj.weight"))),
                     weight(m, p + "down_proj.weight"));
}

// h' = h + Attn(RMSNorm(h)); F(h) = h' + FFN(RMSNorm(h')).
Tensor ref_block(const LoopedModel& m, int l, const Tensor& h, int64_t window) {
  const double eps = m.config().rms_norm_eps;
  Tensor h1 = ops::add(h, ref_attention(m, l, ops::rmsnorm(h, weight(m, lp(l) + ".input_layernorm.weight"), eps, nullptr), window));
  return ops::add(h1, ref_ffn(m, l, ops::rmsnorm(h1, weight(m, lp(l) + ".post_attention_layernorm.weight"), eps, nullptr)));
}

// h(tau) = F(h(tau-1)) + rho_tau * h(tau-1), written out element by element.
Tensor rho_residual(const Tensor& ftilde, const Tensor& rho, int tau, const Tensor& hprev) {
  const int64_t d = ftilde.dim(-1);
  Tensor out = Tensor::empty(ftilde.shape(), DType::F64);
  for (int64_t i = 0; i < out.numel(); ++i) out.set(i, ftilde.item(i) + rho.item(tau * d + i % d) * hprev.item(i));
  return out;
}

// Span of an attention layer in a loop, per SPEC §2/§5 (loop_windows overrides the layer's).
int64_t span(const ModelConfig& c, int l, int tau) {
  return c.loop_windows.empty() ? c.layer_types[l].window : c.loop_windows[tau];
}

// The looped model of SPEC §1 for pure softmax-attention stacks, from the op set only.
Tensor ref_logits(const LoopedModel& m, const Tensor& ids) {
  const ModelConfig& c = m.config();
  Tensor h = ops::embedding(ids, weight(m, "model.embed_tokens.weight"));
  for (int tau = 0; tau < c.num_loops; ++tau) {
    Tensor x = h;
    for (int l = 0; l < c.num_hidden_layers; ++l) x = ref_block(m, l, x, span(c, l, tau));
    h = rho_residual(x, weight(m, "model.loop_residual"), tau, h);
  }
  Tensor hn = ops::rmsnorm(h, weight(m, "model.norm.weight"), c.rms_norm_eps, nullptr);
  return ops::linear(hn, weight(m, c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight"));
}

// The T = 1 blocks of `m`'s architecture, holding copies of m's shared weights.
std::vector<std::unique_ptr<Block>> one_loop_blocks(const LoopedModel& m) {
  ModelConfig c1 = m.config();
  c1.num_loops = 1;
  c1.loop_windows.clear();
  std::vector<std::unique_ptr<Block>> blocks;
  for (int l = 0; l < c1.num_hidden_layers; ++l) {
    blocks.push_back(std::make_unique<Block>(c1, l, DType::F64));
    ParamList ps;
    blocks.back()->collect(ps);
    copy_params(m, ps);
  }
  return blocks;
}

// ---- receptive field by gradients -----------------------------------------------------

// ids[s] = s, so embedding-gradient row s is d(loss)/d(input at s). dlogits is random over
// the vocabulary at position t only. Rows t-R..t must be non-zero, all others exactly 0.
// R < 0: unbounded (every s <= t).
void expect_receptive_field(const ModelConfig& cfg, int64_t L, int64_t t, int64_t R, uint64_t seed) {
  ASSERT_FALSE(cfg.tie_word_embeddings);
  ASSERT_GE(cfg.vocab_size, L);
  LoopedModel m(cfg, DType::F64);
  randomize(m, seed);
  Tensor ids = Tensor::empty({1, L}, DType::I32);
  for (int64_t s = 0; s < L; ++s) ids.set(s, double(s));
  const int64_t V = cfg.vocab_size;
  Tensor dl = Tensor::zeros({1, L, V}, DType::F64);
  const Tensor r = randn({V}, seed + 1);
  for (int64_t v = 0; v < V; ++v) dl.set(t * V + v, r.item(v));
  m.zero_grad();
  LoopedModel::Ctx ctx;
  m.forward(ids, &ctx);
  m.backward(ctx, dl);
  const Tensor& g = m.find("model.embed_tokens.weight")->grad;
  const int64_t d = cfg.hidden_size, lo = R < 0 ? 0 : std::max<int64_t>(0, t - R);
  for (int64_t s = 0; s < L; ++s) {
    double n2 = 0;
    for (int64_t c = 0; c < d; ++c) n2 += g.item(s * d + c) * g.item(s * d + c);
    const double norm = std::sqrt(n2);
    if (s >= lo && s <= t)
      EXPECT_GT(norm, 1e-14) << "t=" << t << ": logit must depend on input s=" << s << " (bound " << lo << ")";
    else
      EXPECT_EQ(norm, 0.0) << "t=" << t << ": logit must not depend on input s=" << s << " (bound " << lo << ")";
  }
}

}  // namespace

TEST(LoopSemantics, T1RhoZeroEqualsPlainPreNormTransformer) {
  for (const char* gate : {"channel", "head"}) {
    SCOPED_TRACE(gate);
    ModelConfig c = tiny_config("full", 2, 1);
    c.output_gate = gate;
    LoopedModel m(c, DType::F64);
    randomize(m, 21);
    m.find("model.loop_residual")->value.zero();
    const Tensor ids = make_ids(2, 7, 22);
    const Tensor got = m.forward(ids, nullptr), want = ref_logits(m, ids);
    ASSERT_EQ(got.shape(), (Shape{2, 7, c.vocab_size}));
    EXPECT_LE(max_abs_diff(got, want.reshape(got.shape())), 1e-12);
  }
}

TEST(LoopSemantics, LoopsReuseWeightsWithRhoResidualAttentionStack) {
  // T = 3 with random rho against the independent reference composing the same two
  // attention layers three times: h(tau) = F(h(tau-1)) + rho_tau * h(tau-1).
  ModelConfig c = tiny_config("full,window(3)", 2, 3);
  LoopedModel m(c, DType::F64);
  randomize(m, 23);
  const Tensor ids = make_ids(2, 8, 24);
  const Tensor got = m.forward(ids, nullptr), want = ref_logits(m, ids);
  EXPECT_LE(max_abs_diff(got, want.reshape(got.shape())), 1e-12);
}

TEST(LoopSemantics, LoopsReuseWeightsHybridComposedFromOneLoopBlocks) {
  // A Full+window+GDN stack: T = 3 equals applying the T = 1 blocks (fresh Block objects
  // carrying copies of the shared weights) three times with the rho residual.
  for (bool chunked : {false, true}) {
    SCOPED_TRACE(chunked ? "chunked" : "recurrent");
    ModelConfig c = tiny_config("gdn,window(3),full", 3, 3);
    c.gdn_chunked = chunked;
    LoopedModel m(c, DType::F64);
    randomize(m, 25);
    const auto blocks = one_loop_blocks(m);
    const Tensor ids = make_ids(2, 8, 26);
    Tensor h = ops::embedding(ids, weight(m, "model.embed_tokens.weight"));
    for (int tau = 0; tau < 3; ++tau) {
      Tensor x = h;
      for (auto& b : blocks) x = b->forward(x, 0, nullptr);
      h = rho_residual(x, weight(m, "model.loop_residual"), tau, h);
    }
    const Tensor want =
        ops::linear(ops::rmsnorm(h, weight(m, "model.norm.weight"), c.rms_norm_eps, nullptr), weight(m, "lm_head.weight"));
    const Tensor got = m.forward(ids, nullptr);
    EXPECT_LE(max_abs_diff(got, want.reshape(got.shape())), 1e-12);
  }
}

TEST(LoopSemantics, NormBetweenLoopsReplacesStateWithFinalNorm) {
  // Ouro: h(tau) = RMSNorm(F(h(tau-1))) with model.norm, no rho; logits = LMHead(h(T)).
  ModelConfig c = tiny_config("full,gdn", 2, 3);
  c.norm_between_loops = true;
  c.sandwich_norm = true;
  LoopedModel m(c, DType::F64);
  randomize(m, 27);
  EXPECT_EQ(m.find("model.loop_residual"), nullptr);
  const auto blocks = one_loop_blocks(m);
  const Tensor ids = make_ids(2, 6, 28);
  Tensor h = ops::embedding(ids, weight(m, "model.embed_tokens.weight"));
  for (int tau = 0; tau < 3; ++tau) {
    for (auto& b : blocks) h = b->forward(h, 0, nullptr);
    h = ops::rmsnorm(h, weight(m, "model.norm.weight"), c.rms_norm_eps, nullptr);
  }
  const Tensor want = ops::linear(h, weight(m, "lm_head.weight"));
  const Tensor got = m.forward(ids, nullptr);
  EXPECT_LE(max_abs_diff(got, want.reshape(got.shape())), 1e-12);
}

TEST(LoopSemantics, ParameterCountDependsOnLoopsOnlyThroughRho) {
  const ModelConfig c1 = tiny_config("gdn,window(3),full", 3, 1);
  LoopedModel m1(c1, DType::F64);
  for (int64_t T : {1, 2, 4}) {
    ModelConfig c = c1;
    c.num_loops = T;
    LoopedModel m(c, DType::F64);
    EXPECT_EQ(m.num_params() - m1.num_params(), (T - 1) * c.hidden_size) << "T=" << T;
    ASSERT_EQ(m.params().size(), m1.params().size());
    for (size_t i = 0; i < m.params().size(); ++i) {
      const Param* a = m.params()[i];
      const Param* b = m1.params()[i];
      EXPECT_EQ(a->name, b->name);
      if (a->name == "model.loop_residual") EXPECT_EQ(a->value.shape(), (Shape{T, c.hidden_size}));
      else EXPECT_EQ(a->value.shape(), b->value.shape()) << a->name;
    }
  }
}

TEST(LoopSemantics, WindowStackReceptiveFieldGrowsWithLoops) {
  struct Case { int64_t T, n_w, w; };
  const int64_t L = 40;
  for (const Case k : {Case{1, 1, 2}, Case{2, 1, 3}, Case{3, 2, 2}, Case{4, 2, 3}}) {
    const int64_t R = k.T * k.n_w * (k.w - 1);
    SCOPED_TRACE("T=" + std::to_string(k.T) + " n_w=" + std::to_string(k.n_w) + " w=" + std::to_string(k.w));
    ModelConfig c = tiny_config("window(" + std::to_string(k.w) + ")", k.n_w, k.T);
    c.output_gate = "channel";
    c.tie_word_embeddings = false;
    for (int64_t t : {L - 3, R + 4}) {
      ASSERT_GE(t - R, 1) << "boundary must lie inside the sequence";
      expect_receptive_field(c, L, t, R, 31 + k.T);
    }
  }
}

TEST(LoopSemantics, HybridFullGdnIsCausal) {
  for (bool chunked : {false, true}) {
    SCOPED_TRACE(chunked ? "chunked" : "recurrent");
    ModelConfig c = tiny_config("interleave(full,gdn,1:1)", 2, 3);
    c.gdn_chunked = chunked;
    LoopedModel m(c, DType::F64);
    randomize(m, 41);
    const int64_t B = 2, L = 9, V = c.vocab_size;
    const Tensor ids = make_ids(B, L, 42);
    const Tensor base = m.forward(ids, nullptr);
    for (int64_t t = 0; t + 1 < L; ++t) {
      Tensor alt = ids.clone();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t s = t + 1; s < L; ++s) alt.set(b * L + s, double((int64_t(ids.item(b * L + s)) + 1 + s) % 11));
      const Tensor out = m.forward(alt, nullptr);
      int64_t changed_prefix = 0;
      double changed_next = 0;
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t i = 0; i <= t; ++i)
          for (int64_t v = 0; v < V; ++v) {
            const int64_t j = (b * L + i) * V + v;
            changed_prefix += out.item(j) != base.item(j);
          }
        for (int64_t v = 0; v < V; ++v) {
          const int64_t j = (b * L + t + 1) * V + v;
          changed_next = std::max(changed_next, std::abs(out.item(j) - base.item(j)));
        }
      }
      EXPECT_EQ(changed_prefix, 0) << "changing tokens > " << t << " changed logits at <= " << t;
      EXPECT_GT(changed_next, 1e-6) << "the changed token " << t + 1 << " must change its own logits";
    }
  }
}

TEST(LoopSemantics, LoopWindowsScheduleIsHonoured) {
  const Tensor ids = make_ids(2, 8, 51);
  // {0, 2} on a full layer differs from plain full.
  {
    ModelConfig plain = tiny_config("full", 1, 2), sched = plain;
    sched.loop_windows = {0, 2};
    LoopedModel a(plain, DType::F64), b(sched, DType::F64);
    randomize(a, 52);
    copy_params(a, b.params());
    EXPECT_GT(max_abs_diff(a.forward(ids, nullptr), b.forward(ids, nullptr)), 1e-6);
    // and equals the independent reference that applies span 0 then span 2
    EXPECT_LE(max_abs_diff(b.forward(ids, nullptr), ref_logits(b, ids).reshape({2, 8, plain.vocab_size})), 1e-12);
  }
  // {2, 2} on a full layer is exactly window(2).
  {
    ModelConfig win = tiny_config("window(2)", 1, 2), sched = tiny_config("full", 1, 2);
    sched.loop_windows = {2, 2};
    LoopedModel a(win, DType::F64), b(sched, DType::F64);
    randomize(a, 53);
    copy_params(a, b.params());
    EXPECT_LE(max_abs_diff(a.forward(ids, nullptr), b.forward(ids, nullptr)), 1e-12);
  }
  // Receptive field follows the schedule: sum over loops and attention layers of (w_tau - 1).
  const int64_t L = 30, t = L - 2;
  {
    ModelConfig c = tiny_config("full", 1, 2);
    c.loop_windows = {3, 2};
    expect_receptive_field(c, L, t, 2 + 1, 54);
  }
  {
    ModelConfig c = tiny_config("full,full", 2, 3);
    c.loop_windows = {2, 3, 2};
    expect_receptive_field(c, L, t, 2 * (1 + 2 + 1), 55);
  }
  for (const std::vector<int64_t>& lw : {std::vector<int64_t>{0, 2}, std::vector<int64_t>{2, 0}}) {
    ModelConfig c = tiny_config("full", 1, 2);
    c.loop_windows = lw;
    expect_receptive_field(c, L, t, -1, 56);  // a full loop sees everything before t
  }
}
