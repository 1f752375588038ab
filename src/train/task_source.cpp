#include "train/task_source.h"

#include <algorithm>
#include <functional>

#include "core/rng.h"
#include "tasks/mqar.h"
#include "tasks/niah.h"
#include "tasks/receptive_field.h"
#include "tasks/swaps.h"
#include "text/corpus.h"
#include "text/tokenizer.h"
#include "train/shard_source.h"
#include "train/train_config.h"

namespace lt2 {

namespace {
using Generator = std::function<tasks::Sample(uint64_t seed, uint64_t index)>;

class TaskSource : public RowSource {
 public:
  TaskSource(Generator gen, int64_t seq_len, int64_t vocab, uint64_t seed, int64_t eval_rows, std::string name)
      : gen_(std::move(gen)), L_(seq_len), vocab_(vocab), seed_(seed),
        eval_seed_(mix64(seed ^ stream_id("held-out task samples"))), eval_rows_(eval_rows), name_(std::move(name)) {
    const tasks::Sample s = gen_(seed_, 0);  // settings are checked by the generator
    LT2_CHECK(int64_t(s.tokens.size()) <= L_, name_, ": a sample has ", s.tokens.size(),
              " tokens, more than seq_len = ", L_);
  }
  int64_t seq_len() const override { return L_; }
  int64_t vocab_needed() const override { return vocab_; }
  int64_t num_eval_rows() const override { return eval_rows_; }
  void train_row(uint64_t i, int32_t* t, int32_t* g) const override { fill(gen_(seed_, i), t, g); }
  void eval_row(int64_t i, int32_t* t, int32_t* g) const override { fill(gen_(eval_seed_, uint64_t(i)), t, g); }

 private:
  void fill(const tasks::Sample& s, int32_t* t, int32_t* g) const {
    LT2_CHECK(int64_t(s.tokens.size()) <= L_, name_, ": a sample has ", s.tokens.size(), " tokens, more than seq_len");
    std::fill(t, t + L_, 0);
    std::fill(g, g + L_, -1);  // padding carries no loss
    std::copy(s.tokens.begin(), s.tokens.end(), t);
    std::copy(s.targets.begin(), s.targets.end(), g);
  }
  Generator gen_;
  int64_t L_, vocab_;
  uint64_t seed_, eval_seed_;
  int64_t eval_rows_;
  std::string name_;
};


}  // namespace

std::shared_ptr<RowSource> make_task_source(const json::Value& spec, int64_t seq_len, uint64_t seed,
                                            int64_t eval_rows, const std::string& ctx) {
  LT2_CHECK(spec.is_object(), ctx, ": 'task' must be an object like {\"name\": \"mqar\", \"num_pairs\": 16}");
  const std::string name = json::get_string(spec, "name", ctx);
  // Token ids are I32 and generators use memory proportional to the vocabulary.
  const int64_t vocab = json::get_int(spec, "vocab", ctx, 256);
  LT2_CHECK(vocab >= 2 && vocab <= (1 << 24), ctx, ": task field 'vocab' must be in [2, 16777216], got ", vocab);
  if (name == "mqar") {
    json::check_known_fields(spec, {"name", "vocab", "num_pairs", "num_queries"}, ctx, "task field");
    tasks::MqarSettings s;
    s.vocab = json::get_int(spec, "vocab", ctx, 256);
    s.num_pairs = json::get_int(spec, "num_pairs", ctx, s.num_pairs);
    s.num_queries = json::get_int(spec, "num_queries", ctx, s.num_queries);
    s.seq_len = seq_len;
    return std::make_shared<TaskSource>([s](uint64_t sd, uint64_t i) { return tasks::mqar_sample(s, sd, i); }, seq_len,
                                        s.vocab, seed, eval_rows, "mqar");
  }
  if (name == "swaps") {
    json::check_known_fields(spec, {"name", "num_slots", "num_swaps", "num_queries", "max_slots"}, ctx, "task field");
    tasks::SwapsSettings s;
    s.num_slots = json::get_int(spec, "num_slots", ctx, s.num_slots);
    s.num_swaps = json::get_int(spec, "num_swaps", ctx, s.num_swaps);
    s.num_queries = json::get_int(spec, "num_queries", ctx, s.num_queries);
    s.max_slots = json::get_int(spec, "max_slots", ctx, s.max_slots);
    s.seq_len = seq_len;  // the generator checks that the sample fits before building it
    return std::make_shared<TaskSource>([s](uint64_t sd, uint64_t i) { return tasks::swaps_sample(s, sd, i); }, seq_len,
                                        tasks::swaps_vocab(s), seed, eval_rows, "swaps");
  }
  if (name == "probe") {
    json::check_known_fields(spec, {"name", "vocab", "distance"}, ctx, "task field");
    tasks::ReceptiveFieldSettings s;
    s.vocab = json::get_int(spec, "vocab", ctx, s.vocab);
    s.distance = json::get_int(spec, "distance", ctx, s.distance);
    s.seq_len = seq_len;
    return std::make_shared<TaskSource>(
        [s](uint64_t sd, uint64_t i) { return tasks::receptive_field_sample(s, sd, i); }, seq_len, s.vocab, seed,
        eval_rows, "probe");
  }
  if (name == "niah1") {
    json::check_known_fields(spec, {"name", "depth"}, ctx, "task field");
    tasks::NiahSettings s;
    s.kind = tasks::NiahKind::Niah1;
    s.context_len = seq_len;
    s.depth = json::get_number(spec, "depth", ctx, s.depth);
    return std::make_shared<TaskSource>(
        [s](uint64_t sd, uint64_t i) { return tasks::niah_sample(s, "", sd, i).sample; }, seq_len, 256, seed,
        eval_rows, "niah1");
  }
  fail(cat(ctx, ": unknown task '", name, "' (tasks: mqar, swaps, probe, niah1)"));
}

namespace {
// Training rows drawn from the main source or, with the given weights, from tasks mixed in;
// evaluation rows are the main source's. Row i's choice is a pure function of (seed, i).
class MixSource : public RowSource {
 public:
  MixSource(std::shared_ptr<RowSource> main, std::vector<std::pair<std::shared_ptr<RowSource>, double>> mixed,
            uint64_t seed)
      : main_(std::move(main)), mixed_(std::move(mixed)), rng_{seed, stream_id("task-mix")} {}
  int64_t seq_len() const override { return main_->seq_len(); }
  int64_t vocab_needed() const override {
    int64_t v = main_->vocab_needed();
    for (const auto& [s, _] : mixed_) v = std::max(v, s->vocab_needed());
    return v;
  }
  int64_t num_eval_rows() const override { return main_->num_eval_rows(); }
  void train_row(uint64_t i, int32_t* t, int32_t* g) const override {
    double u = rng_.uniform(i);
    for (const auto& [s, w] : mixed_)
      if ((u -= w) < 0) return s->train_row(i, t, g);
    main_->train_row(i, t, g);
  }
  void eval_row(int64_t i, int32_t* t, int32_t* g) const override { main_->eval_row(i, t, g); }

 private:
  std::shared_ptr<RowSource> main_;
  std::vector<std::pair<std::shared_ptr<RowSource>, double>> mixed_;
  CounterRng rng_;
};
}  // namespace

static std::shared_ptr<RowSource> main_source(const TrainConfig& tc, std::string* summary, const Tokenizer* tok);

std::shared_ptr<RowSource> make_data_source(const TrainConfig& tc, std::string* summary, const Tokenizer* tok) {
  auto main = main_source(tc, summary, tok);
  if (tc.mix.is_null() || tc.mix.elements().empty()) return main;
  std::vector<std::pair<std::shared_ptr<RowSource>, double>> mixed;
  double total = 0;
  for (size_t k = 0; k < tc.mix.elements().size(); ++k) {
    const json::Value& e = tc.mix.elements()[k];
    const std::string ctx = cat("train.mix[", k, "]");
    LT2_CHECK(e.is_object() && e.find("task"), ctx, ": expected {\"task\": {...}, \"weight\": w}");
    const double w = json::get_number(e, "weight", ctx);
    LT2_CHECK(w > 0 && w < 1, ctx, ": weight must be in (0, 1), got ", w);
    total += w;
    mixed.emplace_back(make_task_source(*e.find("task"), tc.seq_len, tc.seed + 1 + k, tc.task_eval_rows, ctx), w);
    if (summary) *summary += cat(" + ", e.find("task")->dump(), " at ", w);
  }
  LT2_CHECK(total < 1, "train.mix: the weights add up to ", total, "; they must leave a share for the main data");
  return std::make_shared<MixSource>(std::move(main), std::move(mixed), tc.seed);
}

std::shared_ptr<RowSource> make_eval_text_source(const std::vector<std::string>& files, const Tokenizer& tok,
                                                 int64_t seq_len, int64_t max_seq_len) {
  std::string text;
  for (const auto& d : read_documents(files)) text += d + "\n";
  std::vector<int32_t> tokens = tok.encode(text);
  LT2_CHECK(tokens.size() >= 3, "need at least 3 tokens of text, got ", tokens.size());
  const int64_t seq = std::min({seq_len, max_seq_len, int64_t(tokens.size()) - 2});
  LT2_CHECK(seq >= 1, "--seq-len must be >= 1");
  std::vector<int32_t> unused_train = tokens;  // TextSource wants a training stream; evaluation reads the other
  return std::make_shared<TextSource>(std::move(unused_train), std::move(tokens), seq, 0, tok.vocab_size());
}

static std::shared_ptr<RowSource> main_source(const TrainConfig& tc, std::string* summary, const Tokenizer* tok) {
  if (!tc.task.is_null()) {
    if (summary) *summary = "task " + tc.task.dump() + ", " + std::to_string(tc.task_eval_rows) + " held-out samples";
    return make_task_source(tc.task, tc.seq_len, tc.seed, tc.task_eval_rows, "train.task");
  }
  if (!tc.data_shards.empty()) {
    LT2_CHECK(!tok || tok->name() == "bytes", "token shards are byte-level, but the model uses the tokenizer ",
              tok ? tok->name() : "", ": train on text (--data) instead");
    auto src = make_shard_source(tc.data_shards, tc.seq_len, tc.seed);
    if (summary) *summary = "token shards in " + tc.data_shards;
    return src;
  }
  const std::vector<std::string> files = tc.data_files.empty() ? default_corpus_files() : tc.data_files;
  TokenSplit split = split_and_tokenize(read_documents(files), tc.val_fraction, tc.seed, tok);
  if (summary)
    *summary = cat(files.size(), " file(s), ", split.train_docs, " train docs / ", split.val_docs, " val docs, ",
                   split.train.size(), " / ", split.val.size(), " tokens (", tok ? tok->name() : "bytes", ")");
  return std::make_shared<TextSource>(std::move(split.train), std::move(split.val), tc.seq_len, tc.seed,
                                      tok ? tok->vocab_size() : 256);
}

}  // namespace lt2
