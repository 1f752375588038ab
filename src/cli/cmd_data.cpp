// lt2 data corpus: assemble the default text corpus from packages, split by document.
#include <algorithm>
#include <cstdio>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "text/corpus_build.h"
#include "text/corpus_sources.h"
#include "train/shard_source.h"

namespace lt2::cli {

static int data_shards(int argc, char** argv) {
  Args a("lt2 data shards", {{"corpus", true, "directory from lt2 data corpus (train/val/test .jsonl)"},
                             {"out", true, "output directory (default: <corpus>/shards-bytes)"},
                             {"tokens-per-shard", true, "tokens per shard file (default 16777216)"}},
         argc, argv, 3);
  if (a.help()) {
    std::printf("usage: lt2 data shards --corpus DIR [flags]\n\nByte-tokenizes a corpus into memory-mapped token "
                "shards <out>/{train,val,test}/*.lt2shard; train with lt2 train --shards <out>.\n\n%s",
                a.usage().c_str());
    return 0;
  }
  LT2_CHECK(a.has("corpus"), "lt2 data shards: --corpus DIR is required");
  const std::string out = a.str("out", a.str("corpus") + "/shards-bytes");
  std::printf("%s", write_corpus_shards(a.str("corpus"), out, a.integer("tokens-per-shard", int64_t(1) << 24)).c_str());
  std::printf("  written to %s\n", out.c_str());
  return 0;
}

int cmd_data(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[2]) == "tokenizer") return cmd_data_tokenizer(argc, argv);
  if (argc >= 3 && std::string(argv[2]) == "shards") return data_shards(argc, argv);
  Args a("lt2 data corpus",
         {{"sources", true, "comma list of fortunes, bible, brown, gcide, nlp-corpus (default: all)"},
          {"extra", true, "another text file: one document per blank-line-separated paragraph (repeatable)", true},
          {"out", true, "output directory (default data/corpus)"},
          {"val-fraction", true, "share of documents for validation (default 0.05)"},
          {"test-fraction", true, "share of documents for test (default 0.05)"},
          {"seed", true, "split seed (default 1234)"}},
         argc, argv, 3);
  const std::string sub = argc >= 3 ? argv[2] : "";
  const bool help = a.help() || sub == "--help" || sub == "-h";
  if (help || sub != "corpus") {
    std::printf("usage: lt2 data corpus [flags]\n       lt2 data shards --corpus DIR [flags]\n       lt2 data tokenizer --corpus DIR [flags]   (SentencePiece BPE)\n\nGathers documents from the corpus packages (scripts/setup installs "
                "them), normalises and deduplicates them, splits them by document with a fixed seed and writes "
                "<out>/{train,val,test}.jsonl and report.json.\n\n%s",
                a.usage().c_str());
    return help ? 0 : 2;
  }
  LT2_CHECK(a.positionals().empty(), "lt2 data corpus: unexpected argument '", a.positionals()[0], "'");
  std::string all;
  for (const auto& n : corpus_source_names()) all += (all.empty() ? "" : ",") + n;
  const std::vector<std::string> sources = a.list("sources", all);
  const CorpusReport r = build_corpus(sources, a.all("extra"), a.str("out", "data/corpus"),
                                     a.number("val-fraction", 0.05), a.number("test-fraction", 0.05),
                                     uint64_t(a.integer("seed", 1234)));
  std::printf("%s\n", r.summary().c_str());
  return 0;
}

}  // namespace lt2::cli
