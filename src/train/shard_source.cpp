#include "train/shard_source.h"

#include <algorithm>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "text/shards.h"
#include "text/tokenizer.h"

namespace lt2 {

namespace {
class ShardSource : public RowSource {
 public:
  ShardSource(const std::string& dir, int64_t seq_len, uint64_t seed)
      : train_(ShardSet::from_dir(dir + "/train", seed)), val_(ShardSet::from_dir(dir + "/val", seed)), L_(seq_len) {
    LT2_CHECK(train_.vocab_size() == val_.vocab_size(), dir, ": train and val shards have different vocab sizes");
    LT2_CHECK(val_.num_sequential_windows(L_) >= 1, dir, "/val: no window of ", L_ + 1, " tokens");
  }
  int64_t seq_len() const override { return L_; }
  int64_t vocab_needed() const override { return train_.vocab_size(); }
  int64_t num_eval_rows() const override { return val_.num_sequential_windows(L_); }
  void train_row(uint64_t i, int32_t* t, int32_t* g) const override {
    std::vector<int32_t> w;
    train_.sample_window(i, L_, w);
    split(w, t, g);
  }
  void eval_row(int64_t i, int32_t* t, int32_t* g) const override {
    std::vector<int32_t> w;
    val_.sequential_window(i, L_, w);
    split(w, t, g);
  }

 private:
  // A window of L + 1 tokens: inputs are the first L, targets the last L.
  void split(const std::vector<int32_t>& w, int32_t* t, int32_t* g) const {
    std::copy(w.begin(), w.begin() + L_, t);
    std::copy(w.begin() + 1, w.begin() + L_ + 1, g);
  }
  ShardSet train_, val_;
  int64_t L_;
};
}  // namespace

std::shared_ptr<RowSource> make_shard_source(const std::string& dir, int64_t seq_len, uint64_t seed) {
  return std::make_shared<ShardSource>(dir, seq_len, seed);
}

std::string write_corpus_shards(const std::string& corpus_dir, const std::string& out_dir, int64_t tokens_per_shard) {
  LT2_CHECK(tokens_per_shard >= 1, "tokens per shard must be >= 1");
  std::ostringstream summary;
  for (const char* split : {"train", "val", "test"}) {
    const std::string path = corpus_dir + "/" + split + ".jsonl";
    if (!fs::exists(path) && std::string(split) == "test") continue;  // optional
    const std::string text = fs::read_file(path);
    std::vector<int32_t> tokens;
    std::istringstream lines(text);
    std::string line;
    int64_t docs = 0;
    for (int n = 1; std::getline(lines, line); ++n) {
      if (line.empty()) continue;
      const std::string ctx = cat(path, ":", n);
      const std::vector<int32_t> ids = ByteTokenizer::encode(json::get_string(json::Value::parse(line, ctx), "text", ctx) + "\n");
      tokens.insert(tokens.end(), ids.begin(), ids.end());
      ++docs;
    }
    LT2_CHECK(!tokens.empty(), path, ": no documents");
    write_shards(out_dir + "/" + split, tokens, ByteTokenizer::vocab_size, tokens_per_shard);
    summary << "  " << split << ": " << docs << " documents, " << tokens.size() << " tokens, "
            << (int64_t(tokens.size()) + tokens_per_shard - 1) / tokens_per_shard << " shard(s)\n";
  }
  return summary.str();
}

}  // namespace lt2
