// NIAH evaluation grid: greedy generation through a Session on a tiny random model, scoring
// through exact_match (checked with fake generators), the table / JSON / heatmap outputs, and
// readable errors on bad input.
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "eval/loglik.h"
#include "eval/niah_eval.h"
#include "ops/ops.h"
#include "model_util.h"
#include "report/heatmap.h"
#include "tasks/niah.h"

using namespace lt2;
using namespace lt2::test;

namespace {
ModelConfig niah_model_config() {
  ModelConfig c = tiny_config("full,gdn", 2, 2);
  c.max_position_embeddings = 256;
  return c;
}

int64_t count(const std::string& s, const std::string& what) {
  int64_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

// Checks that every element opens and closes in order (self-closing ones excepted).
bool balanced_tags(const std::string& svg) {
  std::vector<std::string> stack;
  const std::regex tag("<(/?)([a-zA-Z]+)[^>]*?(/?)>");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), tag); it != std::sregex_iterator(); ++it) {
    const auto& m = *it;
    if (m[3] == "/") continue;
    if (m[1] == "/") {
      if (stack.empty() || stack.back() != m[2]) return false;
      stack.pop_back();
    } else {
      stack.push_back(m[2]);
    }
  }
  return stack.empty();
}
}  // namespace

TEST(NiahEval, TinyModelGridShapeAndAccuracyRange) {
  LoopedModel model(niah_model_config());
  randomize(model, 3);
  const int64_t lo = tasks::niah_min_context(tasks::NiahKind::Niah1) + 8;
  const std::vector<int64_t> contexts = {lo, 256};
  const std::vector<double> depths = {0.0, 0.5, 1.0};
  int64_t calls = 0;
  const eval::NiahGrid g = eval::evaluate_niah(model, tasks::NiahKind::Niah1, contexts, depths, 2, "", 7,
                                               [&](int64_t done, int64_t total, const eval::NiahCell&) {
                                                 ++calls;
                                                 EXPECT_EQ(done, calls);
                                                 EXPECT_EQ(total, 6);
                                               });
  EXPECT_EQ(calls, 6);
  EXPECT_EQ(g.kind, "niah1");
  EXPECT_EQ(g.contexts, contexts);
  EXPECT_EQ(g.depths, depths);
  ASSERT_EQ(g.cells.size(), 6u);
  for (size_t r = 0; r < 2; ++r)
    for (size_t c = 0; c < 3; ++c) {
      const eval::NiahCell& cell = g.at(r, c);
      EXPECT_EQ(cell.context, contexts[r]);
      EXPECT_EQ(cell.depth, depths[c]);
      EXPECT_EQ(cell.samples, 2);
      EXPECT_GE(cell.correct, 0);
      EXPECT_LE(cell.correct, 2);
      EXPECT_GE(cell.accuracy(), 0.0);
      EXPECT_LE(cell.accuracy(), 1.0);
    }
  const std::string table = eval::niah_table(g);
  EXPECT_EQ(count(table, "\n| "), 2) << table;  // one row per context after the header
  EXPECT_NE(table.find("| 256 |"), std::string::npos) << table;
  const json::Value j = json::Value::parse(eval::niah_json(g), "niah.json");
  EXPECT_EQ(j.find("cells")->size(), 6u);
  EXPECT_EQ(j.find("kind")->as_string(), "niah1");
}

TEST(NiahEval, GreedyGenerationBatchedEqualsOneByOne) {
  LoopedModel model(niah_model_config());
  randomize(model, 5);
  const std::vector<std::string> prompts = {"The grass is green. Answer: ", "abc", "One of the special magic"};
  const std::vector<int64_t> max_new = {8, 3, 5};
  const auto batched = eval::greedy_generate(model, prompts, max_new);
  const auto single = eval::greedy_generate(model, prompts, max_new, 1);
  ASSERT_EQ(batched.size(), 3u);
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(int64_t(batched[i].size()), max_new[i]);
    EXPECT_EQ(batched[i], single[i]) << "prompt " << i;
  }
  EXPECT_THROW(eval::greedy_generate(model, {std::string(250, 'a')}, {7}), Error);  // 257 > 256
}

TEST(NiahEval, ScoringCountsExactMatchOfTheGeneration) {
  // A fake generator: the right answer (with its newline) for even samples, a wrong one for odd.
  std::vector<std::string> answers;
  auto prompt_answers = [&](tasks::NiahKind kind, int64_t context, double depth, size_t di, int64_t n) {
    tasks::NiahSettings s;
    s.kind = kind, s.context_len = context, s.depth = depth;
    std::vector<std::string> out;
    for (int64_t i = 0; i < n; ++i)
      out.push_back(tasks::niah_sample(s, "", eval::niah_eval_seed(9, context, di), uint64_t(i)).answer);
    return out;
  };
  const int64_t ctx = 300;
  const std::vector<double> depths = {0.25, 0.75};
  int64_t cell = 0;
  auto fake = [&](const std::vector<std::string>& prompts, const std::vector<int64_t>& max_new) {
    const auto ans = prompt_answers(tasks::NiahKind::Niah1, ctx, depths[size_t(cell)], size_t(cell), 4);
    ++cell;
    std::vector<std::string> out;
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ(max_new[i], int64_t(ans[i].size()) + 1);
      EXPECT_EQ(prompts[i].size() + ans[i].size() + 1, size_t(ctx));
      // Even: right answer then newline (plus junk after the newline, which exact_match cuts).
      // Odd: the answer with its last digit changed.
      std::string wrong = ans[i];
      wrong.back() = wrong.back() == '0' ? '1' : '0';
      out.push_back(i % 2 == 0 ? ans[i] + "\nxyz" : wrong + "\n");
    }
    return out;
  };
  const eval::NiahGrid g =
      eval::evaluate_niah_with(fake, tasks::NiahKind::Niah1, {ctx}, depths, 4, "", 9, {}, /*max_context=*/0);
  ASSERT_EQ(g.cells.size(), 2u);
  for (const auto& c : g.cells) {
    EXPECT_EQ(c.samples, 4);
    EXPECT_EQ(c.correct, 2);
    EXPECT_DOUBLE_EQ(c.accuracy(), 0.5);
  }
  EXPECT_NE(eval::niah_table(g).find("| 300 | 50.0 | 50.0 | 50.0 |"), std::string::npos) << eval::niah_table(g);

  // An oracle that reads the needle out of the prompt scores 100%, on prose haystacks too.
  auto oracle = [](const std::vector<std::string>& prompts, const std::vector<int64_t>&) {
    std::vector<std::string> out;
    for (const auto& p : prompts) {
      const size_t at = p.find(" is: ");
      const size_t end = p.find_first_of(". ", at + 5);
      out.push_back(p.substr(at + 5, end - at - 5) + "\n");
    }
    return out;
  };
  const std::string prose = "It was a bright cold day in April. The clocks were striking thirteen. ";
  const eval::NiahGrid o = eval::evaluate_niah_with(oracle, tasks::NiahKind::Niah3, {400}, {0, 0.5, 1}, 3, prose, 1);
  for (const auto& c : o.cells) EXPECT_EQ(c.correct, 3);
  // Per-sample scoring is exact_match on the answer.
  tasks::NiahSettings s;
  const tasks::NiahSample smp = tasks::niah_sample(s, "", 1, 0);
  EXPECT_TRUE(eval::score_niah_sample(smp, smp.answer + "\n"));
  EXPECT_TRUE(eval::score_niah_sample(smp, " " + smp.answer + ".\nmore"));
  EXPECT_FALSE(eval::score_niah_sample(smp, smp.answer.substr(1) + "\n"));
}

TEST(NiahEval, HeatmapSvgIsWellFormed) {
  const std::vector<std::string> rows = {"256", "512"}, cols = {"0", "0.5", "1"};
  const std::vector<double> vals = {0.0, 0.5, 1.0, 0.25, std::nan(""), 0.75};
  const std::string svg = report::heatmap_svg("NIAH <test> & co", rows, cols, vals, "depth", "context");
  EXPECT_EQ(svg.rfind("<svg ", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_TRUE(balanced_tags(svg));
  EXPECT_EQ(count(svg, "<rect class='cell'"), 6);
  EXPECT_NE(svg.find("NIAH &lt;test&gt; &amp; co"), std::string::npos);
  EXPECT_EQ(svg.find("<test>"), std::string::npos);
  for (const char* v : {">0%<", ">50%<", ">100%<", ">25%<", ">n/a<", ">75%<"}) EXPECT_NE(svg.find(v), std::string::npos) << v;
  EXPECT_NE(svg.find("class='legend'"), std::string::npos);
  EXPECT_EQ(report::heat_colour(0.0), "#d73027");
  EXPECT_EQ(report::heat_colour(1.0), "#1a9850");
  EXPECT_THROW(report::heatmap_svg("t", rows, cols, {0.5}, "x", "y"), Error);
}

TEST(NiahEval, BadInputIsAnError) {
  LoopedModel model(niah_model_config());
  randomize(model, 1);
  try {
    eval::evaluate_niah(model, tasks::NiahKind::Niah1, {256, 512}, {0.5}, 1, "", 0);
    FAIL() << "context over the limit accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("256"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("512"), std::string::npos) << e.what();
  }
  try {
    eval::evaluate_niah(model, tasks::NiahKind::Niah2, {256}, {0.5}, 1, "", 0);
    FAIL() << "niah2 without prose accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("prose"), std::string::npos) << e.what();
  }
  EXPECT_THROW(eval::evaluate_niah(model, tasks::NiahKind::Niah3, {256}, {0.5}, 1, " \n\t ", 0), Error);
  EXPECT_THROW(eval::evaluate_niah(model, tasks::NiahKind::Niah1, {256}, {1.5}, 1, "", 0), Error);
  EXPECT_THROW(eval::evaluate_niah(model, tasks::NiahKind::Niah1, {16}, {0.5}, 1, "", 0), Error);
  EXPECT_THROW(eval::evaluate_niah(model, tasks::NiahKind::Niah1, {256}, {0.5}, 0, "", 0), Error);
  EXPECT_THROW(eval::evaluate_niah(model, tasks::NiahKind::Niah1, {}, {0.5}, 1, "", 0), Error);
}

TEST(NiahEval, ContinuationLoglikMatchesCrossEntropyAndChainRule) {
  lt2::ModelConfig c;
  c.hidden_size = 16;
  c.num_hidden_layers = 2;
  c.num_loops = 2;
  c.intermediate_size = 32;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.gdn_num_heads = 2;
  c.gdn_head_k_dim = 8;
  c.gdn_head_v_dim = 8;
  c.max_position_embeddings = 64;
  c.layer_types = lt2::parse_pattern("gdn,full", 2, "test");
  lt2::LoopedModel m(c);
  m.init(5);
  const std::vector<int32_t> ctx = {10, 20, 30, 40}, a = {50, 60}, b = {70};
  // Against the cross-entropy of the full sequence at the continuation positions.
  std::vector<int32_t> all = ctx;
  all.insert(all.end(), a.begin(), a.end());
  lt2::Tensor x = lt2::Tensor::empty({1, int64_t(all.size())}, lt2::DType::I32), t = lt2::Tensor::full({int64_t(all.size())}, -1, lt2::DType::I32);
  std::copy(all.begin(), all.end(), x.data<int32_t>());
  t.set(3, 50);  // position 3 predicts a[0], position 4 predicts a[1]
  t.set(4, 60);
  const double ce = lt2::ops::cross_entropy(m.forward(x, nullptr).reshape({int64_t(all.size()), c.vocab_size}), t, nullptr);
  EXPECT_NEAR(lt2::eval::continuation_loglik(m, ctx, a), -2 * ce, 1e-4);
  // Chain rule: log p(a b | ctx) = log p(a | ctx) + log p(b | ctx a).
  std::vector<int32_t> ab = a;
  ab.insert(ab.end(), b.begin(), b.end());
  EXPECT_NEAR(lt2::eval::continuation_loglik(m, ctx, ab),
              lt2::eval::continuation_loglik(m, ctx, a) + lt2::eval::continuation_loglik(m, all, b), 1e-4);
  EXPECT_THROW(lt2::eval::continuation_loglik(m, {}, a), lt2::Error);
}
