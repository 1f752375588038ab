#include "text/corpus.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/rng.h"
#include "text/tokenizer.h"

namespace lt2 {

static constexpr const char* kFortunesDir = "/usr/share/games/fortunes";

std::vector<std::string> default_corpus_files() {
  namespace stdfs = std::filesystem;
  LT2_CHECK(stdfs::is_directory(kFortunesDir), "default corpus not found: ", kFortunesDir,
            " is missing (install the Debian package 'fortunes'; scripts/setup does it), or pass --data FILE");
  std::vector<std::string> files;
  for (const auto& e : stdfs::directory_iterator(kFortunesDir))
    if (e.is_regular_file() && !e.path().has_extension()) files.push_back(e.path().string());  // skip .dat / .u8
  std::sort(files.begin(), files.end());  // directory order is not deterministic
  LT2_CHECK(!files.empty(), "default corpus not found: no fortune files in ", kFortunesDir);
  return files;
}

std::vector<std::string> read_documents(const std::vector<std::string>& files) {
  std::vector<std::string> docs;
  for (const std::string& f : files) {
    const std::string text = fs::read_file(f);
    LT2_CHECK(!text.empty(), f, ": file is empty");
    if (f.size() > 6 && f.compare(f.size() - 6, 6, ".jsonl") == 0) {  // lt2 data corpus output: {"text": ...} per line
      std::istringstream lines(text);
      std::string line;
      for (int n = 1; std::getline(lines, line); ++n)
        if (!line.empty()) docs.push_back(json::get_string(json::Value::parse(line, cat(f, ":", n)), "text", cat(f, ":", n)));
      continue;
    }
    std::istringstream in(text);
    std::string line, cur;
    auto flush = [&] {
      if (!cur.empty()) docs.push_back(std::move(cur));
      cur.clear();
    };
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || line == "%") flush();
      else cur += line + "\n";
    }
    flush();
  }
  LT2_CHECK(!docs.empty(), "corpus has no text in ", files.size(), " file(s)");
  return docs;
}

TokenSplit split_and_tokenize(const std::vector<std::string>& docs, double val_fraction, uint64_t seed,
                              const Tokenizer* tok) {
  auto encode = [&](const std::string& s) { return tok ? tok->encode(s) : ByteTokenizer::encode(s); };
  LT2_CHECK(val_fraction > 0 && val_fraction < 1, "val_fraction must be in (0, 1), got ", val_fraction);
  std::vector<size_t> order(docs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  const CounterRng rng{seed, stream_id("corpus-split")};
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.bits(i) % i]);  // Fisher-Yates
  auto join = [&](size_t from, size_t to) {
    std::string s;
    for (size_t i = from; i < to; ++i) s += docs[order[i]] + "\n";
    return s;
  };
  TokenSplit out;
  if (docs.size() >= 10) {
    const size_t n_val = std::max<size_t>(1, size_t(docs.size() * val_fraction));
    out.val = encode(join(0, n_val));
    out.train = encode(join(n_val, docs.size()));
    out.val_docs = n_val;
    out.train_docs = docs.size() - n_val;
  } else {
    std::vector<int32_t> all = encode(join(0, docs.size()));
    const size_t n_val = std::max<size_t>(1, size_t(all.size() * val_fraction));
    out.train.assign(all.begin(), all.end() - n_val);
    out.val.assign(all.end() - n_val, all.end());
    out.train_docs = out.val_docs = int64_t(docs.size());
  }
  return out;
}

}  // namespace lt2
