// lt2 data tokenizer: train a SentencePiece BPE tokenizer on a corpus's train split.
#include <chrono>
#include <filesystem>
#include <cstdio>

#include "cli/args.h"
#include "core/error.h"
#include "core/fs.h"
#include "text/corpus.h"
#include "text/sp_tokenizer.h"

namespace lt2::cli {
int cmd_data_tokenizer(int argc, char** argv);
}  // namespace lt2::cli

namespace lt2::cli {

int cmd_data_tokenizer(int argc, char** argv) {
  Args a("lt2 data tokenizer",
         {{"corpus", true, "corpus directory from `lt2 data corpus` (reads <corpus>/train.jsonl)"},
          {"vocab", true, "vocabulary size (default 8192)"},
          {"out", true, "output prefix: writes <out>.model and <out>.vocab (default <corpus>/tokenizer)"},
          {"max-docs", true, "train on the first N training documents only (default: all)"}},
         argc, argv, 3);
  if (a.help()) {
    std::printf("usage: lt2 data tokenizer --corpus DIR [flags]\n\nTrains a SentencePiece BPE tokenizer (byte "
                "fallback, so lossless) on DIR/train.jsonl, deterministically, and reports its compression "
                "(bytes per token) on DIR/val.jsonl when present.\n\n%s",
                a.usage().c_str());
    return 0;
  }
  LT2_CHECK(a.positionals().empty(), "lt2 data tokenizer: unexpected argument '", a.positionals()[0], "'");
  LT2_CHECK(a.has("corpus"), "lt2 data tokenizer: --corpus DIR is required (see --help)");
  const std::string dir = a.str("corpus");
  const int64_t vocab = a.integer("vocab", 8192);
  const int64_t max_docs = a.integer("max-docs", 0);
  LT2_CHECK(max_docs >= 0, "--max-docs must be >= 0, got ", max_docs);
  const std::string prefix = a.str("out", dir + "/tokenizer");

  std::vector<std::string> docs = read_documents({dir + "/train.jsonl"});
  if (max_docs > 0 && int64_t(docs.size()) > max_docs) docs.resize(size_t(max_docs));
  size_t train_bytes = 0;
  for (const auto& d : docs) train_bytes += d.size();
  std::printf("training SentencePiece BPE (vocab %lld) on %zu documents (%.1f MB)...\n", (long long)vocab,
              docs.size(), train_bytes / 1e6);
  std::fflush(stdout);
  const auto t0 = std::chrono::steady_clock::now();
  train_sentencepiece(docs, vocab, prefix);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const SentencePieceTokenizer tok(prefix + ".model");
  std::printf("wrote %s.model and %s.vocab in %.1f s: vocab size %lld\n", prefix.c_str(), prefix.c_str(), secs,
              (long long)tok.vocab_size());
  const std::string val = dir + "/val.jsonl";
  if (fs::exists(val)) {
    size_t bytes = 0, tokens = 0;
    bool lossless = true;
    for (const auto& d : read_documents({val})) {
      const auto ids = tok.encode(d);
      bytes += d.size();
      tokens += ids.size();
      if (lossless && tok.decode(ids) != d) lossless = false;
    }
    std::printf("val: %zu bytes -> %zu tokens, %.3f bytes/token (byte-level: 1.000)%s\n", bytes, tokens,
                tokens ? double(bytes) / double(tokens) : 0.0, lossless ? ", round trip lossless" : "");
    if (!lossless) std::printf("warning: decode(encode(text)) != text for some val documents\n");
  }
  std::printf("a model uses it with \"tokenizer\": \"sentencepiece:%s.model\" (path relative to the model "
              "directory)\n",
              std::filesystem::path(prefix).filename().c_str());
  return 0;
}

}  // namespace lt2::cli
