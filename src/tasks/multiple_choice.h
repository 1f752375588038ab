#pragma once
// Multiple choice, lm-eval style: JSONL items {"context": str, "choices": [str, ...], "label": int}
// scored by log-likelihood. Each choice is scored as the continuation delimiter + choice of
// the context (lm-eval's target_delimiter, " " by default):
//   acc      : argmax over choices of sum log p(continuation | context)
//   acc_norm : argmax of that sum divided by the choice's length in bytes (without the
//              delimiter, as lm-eval's completion_len)
// Ties go to the first choice (numpy argmax).
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace lt2::tasks {

struct McItem {
  std::string context;
  std::vector<std::string> choices;  // at least 2, none empty
  int64_t label = 0;                 // index of the right choice
};

// Parses JSONL text; blank lines are skipped, "\r\n" line ends accepted, unknown fields
// ignored. A bad line throws lt2::Error "<source>:<line>: <what>" (invalid JSON, not an object,
// a missing or mistyped field, fewer than 2 choices, an empty choice, label out of range);
// a text without items throws "<source>: no items".
std::vector<McItem> parse_mc_jsonl(std::string_view text, const std::string& source);
std::vector<McItem> read_mc_jsonl(const std::string& path);  // source = path

// Sum of log-probabilities of `continuation` given `context`; sets *n_tokens (when not null)
// to how many tokens the continuation took.
using LogLikelihoodFn =
    std::function<double(const std::string& context, const std::string& continuation, int64_t* n_tokens)>;

struct McOptions {
  std::string delimiter = " ";
};

struct McItemScore {
  std::vector<double> loglik;  // per choice
  int64_t pred = 0;            // argmax loglik
  int64_t pred_norm = 0;       // argmax loglik / bytes
};

struct McResult {
  int64_t n = 0, correct = 0, correct_norm = 0;
  double acc = 0, acc_norm = 0;
  int64_t tokens = 0;  // continuation tokens scored, summed over all items and choices
  std::vector<McItemScore> items;
};

McItemScore score_mc_item(const McItem& item, const LogLikelihoodFn& loglik, const McOptions& opts = {},
                          int64_t* tokens = nullptr);
McResult score_mc(const std::vector<McItem>& items, const LogLikelihoodFn& loglik, const McOptions& opts = {});

}  // namespace lt2::tasks
