#include "train/shard_source.h"

#include <algorithm>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "text/corpus.h"
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
    std::vector<int32_t> probe;
    train_.sample_window(0, L_, probe);  // fails now, with the shard sizes, if no shard holds a window
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
  // Tokenize every split before writing any shard, so a bad split leaves nothing half-written.
  std::vector<std::pair<std::string, std::vector<int32_t>>> splits;
  std::ostringstream summary;
  for (const std::string split : {"train", "val", "test"}) {
    const std::string path = corpus_dir + "/" + split + ".jsonl";
    const bool optional = split == "test";
    if (optional && (!fs::exists(path) || fs::read_file(path).empty())) continue;
    const std::vector<std::string> docs = read_documents({path});
    std::vector<int32_t> tokens;
    for (const std::string& d : docs) {
      const std::vector<int32_t> ids = ByteTokenizer::encode(d + "\n");
      tokens.insert(tokens.end(), ids.begin(), ids.end());
    }
    summary << "  " << split << ": " << docs.size() << " documents, " << tokens.size() << " tokens, "
            << (int64_t(tokens.size()) + tokens_per_shard - 1) / tokens_per_shard << " shard(s)\n";
    splits.emplace_back(split, std::move(tokens));
  }
  for (const auto& [split, tokens] : splits)
    write_shards(out_dir + "/" + split, tokens, ByteTokenizer::vocab_size, tokens_per_shard);
  return summary.str();
}

}  // namespace lt2
