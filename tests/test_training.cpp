// Training: the loss falls, resume is bitwise exact, checkpoints survive interrupted writes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/fs.h"
#include "model/checkpoint.h"
#include "model/presets.h"
#include "scoped_env.h"
#include "text/tokenizer.h"
#include "train/task_source.h"
#include "train/trainer.h"

using namespace lt2;
using lt2::test::ScopedEnv;
namespace stdfs = std::filesystem;

namespace {
ModelConfig tiny_model() { return ModelConfig::from_json(*preset("tiny").find("model"), "tiny"); }
TrainConfig tiny_train(int64_t steps) {
  TrainConfig t = TrainConfig::from_json(*preset("tiny").find("train"), "tiny");
  t.steps = steps;
  return t;
}
std::vector<int32_t> text_tokens() {
  std::string s;
  for (int i = 0; i < 60; ++i) s += "the quick brown fox jumps over the lazy dog. " + std::to_string(i % 7) + "\n";
  return ByteTokenizer::encode(s);
}
std::string temp_dir(const char* name) {
  std::string d = (stdfs::temp_directory_path() / (std::string("lt2_test_") + name + "_" + std::to_string(getpid()))).string();
  stdfs::remove_all(d);
  return d;
}
std::shared_ptr<TextSource> text_source(const std::vector<int32_t>& tokens) {
  return std::make_shared<TextSource>(tokens, tokens, tiny_train(1).seq_len, 1234);
}
bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
}
}  // namespace

TEST(Training, LossFallsOnFixedText) {
  const auto tokens = text_tokens();
  LoopedModel model(tiny_model());
  model.init(1);
  Trainer tr(model, tiny_train(60), text_source(tokens));
  const double before = tr.evaluate().loss;
  for (int i = 0; i < 60; ++i) tr.step();
  const double after = tr.evaluate().loss;
  EXPECT_TRUE(std::isfinite(after));
  EXPECT_LT(after, before - 1.0) << "before " << before << " after " << after;
}

// GDN+DSA: stage 1 (dsa_warmup_steps) updates only the lightning indexers and lowers their
// loss; stage 2 then trains everything on sparse attention. The indexer loss is reported.
TEST(Training, DsaStageOneTrainsOnlyTheIndexer) {
  const auto tokens = text_tokens();
  ModelConfig mc = tiny_model();
  mc.layer_types = parse_pattern("gdn,dsa(8)", mc.num_hidden_layers = 2, "test");
  mc.dsa_index_heads = 2, mc.dsa_index_head_dim = 16;
  LoopedModel model(mc);
  model.init(1);
  TrainConfig tc = tiny_train(40);
  tc.dsa_warmup_steps = 30;
  std::vector<Tensor> before;
  for (const Param* p : model.params()) before.push_back(p->value.clone());
  Trainer tr(model, tc, text_source(tokens));
  std::vector<double> kl;
  for (int i = 0; i < 30; ++i) {
    const StepStats st = tr.step();
    EXPECT_TRUE(st.dsa_dense);
    ASSERT_TRUE(std::isfinite(st.indexer_kl));
    kl.push_back(st.indexer_kl);
  }
  for (size_t i = 0; i < model.params().size(); ++i) {
    const Param* p = model.params()[i];
    const bool indexer = p->name.find(".indexer.") != std::string::npos;
    EXPECT_EQ(same_bits(p->value, before[i]), !indexer) << p->name << (indexer ? " did not learn" : " was not frozen");
  }
  EXPECT_LT(kl.back(), 0.8 * kl.front()) << "stage 1 lowers the indexer loss: " << kl.front() << " -> " << kl.back();
  const double loss_before = tr.evaluate().loss;  // sparse: evaluation never runs the dense stage
  for (int i = 0; i < 10; ++i) {
    const StepStats st = tr.step();
    EXPECT_FALSE(st.dsa_dense);
    EXPECT_TRUE(std::isfinite(st.indexer_kl) && std::isfinite(st.loss));
  }
  EXPECT_LT(tr.evaluate().loss, loss_before) << "stage 2 trains the model on sparse attention";
}

TEST(Training, ResumeIsBitwiseIdentical) {
  const auto tokens = text_tokens();
  const int64_t n = 6, k = 3;
  LoopedModel straight(tiny_model());
  straight.init(7);
  TrainConfig tc = tiny_train(n);
  tc.grad_accum = 2;  // the data position must account for micro-batches
  Trainer t1(straight, tc, text_source(tokens));
  for (int i = 0; i < n; ++i) t1.step();

  const std::string dir = temp_dir("resume");
  {
    LoopedModel first(tiny_model());
    first.init(7);
    Trainer t2(first, tc, text_source(tokens));
    for (int i = 0; i < k; ++i) t2.step();
    t2.save(dir);
  }
  LoopedModel resumed(tiny_model());
  resumed.init(999);  // different init: everything must come from the checkpoint
  Trainer t3(resumed, tc, text_source(tokens));
  t3.load(dir);
  EXPECT_EQ(t3.steps_done(), k);
  for (int i = k; i < n; ++i) t3.step();
  for (size_t i = 0; i < straight.params().size(); ++i)
    EXPECT_TRUE(same_bits(straight.params()[i]->value, resumed.params()[i]->value)) << straight.params()[i]->name;
  stdfs::remove_all(dir);
}

TEST(Training, InterruptedCheckpointKeepsThePreviousOne) {
  const auto tokens = text_tokens();
  const std::string dir = temp_dir("interrupt");
  LoopedModel model(tiny_model());
  model.init(3);
  Trainer tr(model, tiny_train(4), text_source(tokens));
  tr.step();
  const std::string good = tr.save(dir);
  std::vector<Tensor> saved;
  for (const Param* p : model.params()) saved.push_back(p->value.clone());
  tr.step();
  {
    ScopedEnv fault("LT2_FAULT_INJECT", "checkpoint");
    EXPECT_THROW(tr.save(dir), Error);
  }
  EXPECT_EQ(resolve_checkpoint_dir(dir), good);
  for (const auto& e : stdfs::directory_iterator(dir))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << "left behind: " << e.path();
  auto back = load_model(dir);
  for (size_t i = 0; i < saved.size(); ++i) EXPECT_TRUE(same_bits(saved[i], back->params()[i]->value));
  // A later successful save moves `latest` on and keeps at most two checkpoints.
  tr.save(dir);
  tr.step();
  tr.save(dir);
  int n = 0;
  for (const auto& e : stdfs::directory_iterator(dir)) n += e.is_directory();
  EXPECT_EQ(n, 2);
  stdfs::remove_all(dir);
}

TEST(Training, ModelCheckpointRoundTrip) {
  const std::string dir = temp_dir("roundtrip");
  ModelConfig cfg = tiny_model();
  cfg.sandwich_norm = true;
  cfg.tie_word_embeddings = true;
  LoopedModel model(cfg);
  model.init(5);
  save_model(dir, model);
  auto back = load_model(dir);
  ASSERT_EQ(back->params().size(), model.params().size());
  for (size_t i = 0; i < model.params().size(); ++i) {
    EXPECT_EQ(back->params()[i]->name, model.params()[i]->name);
    EXPECT_TRUE(same_bits(back->params()[i]->value, model.params()[i]->value));
  }
  EXPECT_EQ(back->config().to_json().dump(), cfg.to_json().dump());
  stdfs::remove_all(dir);
}

TEST(Training, ScheduleWarmupCosineFloor) {
  TrainConfig t;
  t.lr = 1.0, t.min_lr_ratio = 0.1, t.warmup_steps = 10, t.steps = 110;
  EXPECT_DOUBLE_EQ(t.lr_at(5), 0.5);
  EXPECT_DOUBLE_EQ(t.lr_at(10), 1.0);
  EXPECT_NEAR(t.lr_at(60), 0.55, 1e-12);  // half-way down the cosine
  EXPECT_NEAR(t.lr_at(110), 0.1, 1e-12);
}

TEST(Training, TaskRowsScoreOnlyAnswersAndLearn) {
  TrainConfig tc = tiny_train(80);
  tc.task = json::Value::parse(R"({"name": "mqar", "vocab": 64, "num_pairs": 4})", "test");
  auto src = make_task_source(tc.task, tc.seq_len, tc.seed, 64, "test");
  std::vector<int32_t> t(static_cast<size_t>(tc.seq_len)), g(t.size());
  src->train_row(3, t.data(), g.data());
  int scored = 0;
  for (int32_t x : g) scored += x >= 0;
  EXPECT_EQ(scored, 4);  // one answer per query, nothing else
  src->eval_row(3, t.data(), g.data());
  std::vector<int32_t> t2(t.size()), g2(t.size());
  src->train_row(3, t2.data(), g2.data());
  EXPECT_NE(t, t2) << "evaluation samples must be held out from training";
  LoopedModel model(tiny_model());
  model.init(2);
  Trainer tr(model, tc, src);
  const EvalStats before = tr.evaluate();
  for (int i = 0; i < 80; ++i) tr.step();
  const EvalStats after = tr.evaluate();
  EXPECT_LT(after.loss, before.loss);
  EXPECT_GE(after.accuracy, 0.0);
  EXPECT_LE(after.accuracy, 1.0);
  EXPECT_THROW(make_task_source(json::Value::parse(R"({"name": "nope"})", "t"), 32, 1, 8, "t"), Error);
  EXPECT_THROW(make_task_source(json::Value::parse(R"({"name": "mqar", "pairs": 3})", "t"), 32, 1, 8, "t"), Error);
  // Samples longer than seq_len, or absurd vocabularies, are refused before anything is built.
  EXPECT_THROW(make_task_source(json::Value::parse(R"({"name": "swaps", "num_swaps": 1000000000000})", "t"), 32, 1, 8, "t"),
               Error);
  EXPECT_THROW(make_task_source(json::Value::parse(R"({"name": "mqar", "vocab": 3000000000})", "t"), 32, 1, 8, "t"), Error);
}

TEST(Training, TasksMixIntoTextByWeight) {
  TrainConfig tc = tiny_train(4);
  tc.data_files = {std::string(LT2_SOURCE_DIR) + "/README.md"};
  tc.mix = json::Value::parse(R"([{"task": {"name": "probe", "distance": 3}, "weight": 0.25}])", "test");
  auto src = make_data_source(tc, nullptr);
  // Probe rows have no loss on their first `distance` positions; text rows score every position.
  int probe_rows = 0;
  std::vector<int32_t> t(static_cast<size_t>(tc.seq_len)), g(t.size());
  for (uint64_t i = 0; i < 400; ++i) {
    src->train_row(i, t.data(), g.data());
    probe_rows += g[0] == -1;
  }
  EXPECT_GT(probe_rows, 60);  // about 100 of 400 expected
  EXPECT_LT(probe_rows, 140);
  src->eval_row(0, t.data(), g.data());
  EXPECT_NE(g[0], -1) << "evaluation rows come from the text";
  tc.mix = json::Value::parse(R"([{"task": {"name": "probe"}, "weight": 1.5}])", "test");
  EXPECT_THROW(make_data_source(tc, nullptr), Error);
}
