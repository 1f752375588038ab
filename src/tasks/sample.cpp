#include "tasks/sample.h"

#include "core/error.h"

namespace lt2::tasks {

Sample empty_sample(int64_t n) {
  LT2_CHECK(n >= 0, "sample length must be >= 0, got ", n);
  Sample s;
  s.tokens.assign(static_cast<size_t>(n), 0);
  s.targets.assign(static_cast<size_t>(n), -1);
  return s;
}

void mark_answer(Sample& s, int64_t pos) {
  LT2_CHECK(pos >= 1 && pos < static_cast<int64_t>(s.tokens.size()), "mark_answer: position ", pos,
            " outside [1, ", s.tokens.size(), ")");
  s.targets[pos - 1] = s.tokens[pos];
}

std::vector<int64_t> loss_positions(const Sample& s) {
  std::vector<int64_t> out;
  for (size_t i = 0; i < s.targets.size(); ++i)
    if (s.targets[i] >= 0) out.push_back(static_cast<int64_t>(i));
  return out;
}

int64_t count_correct(const Sample& s, const std::vector<int32_t>& predicted) {
  LT2_CHECK(predicted.size() == s.targets.size(), "count_correct: ", predicted.size(), " predictions for a sample of ",
            s.targets.size(), " positions");
  int64_t n = 0;
  for (size_t i = 0; i < s.targets.size(); ++i) n += (s.targets[i] >= 0 && predicted[i] == s.targets[i]);
  return n;
}

void check_sample(const Sample& s, int64_t vocab, const char* what) {
  LT2_CHECK(s.tokens.size() == s.targets.size(), what, ": sample has ", s.tokens.size(), " tokens but ",
            s.targets.size(), " targets");
  for (size_t i = 0; i < s.tokens.size(); ++i) {
    LT2_CHECK(s.tokens[i] >= 0 && s.tokens[i] < vocab, what, ": token ", s.tokens[i], " at position ", i,
              " outside [0, ", vocab, ")");
    LT2_CHECK(s.targets[i] >= -1 && s.targets[i] < vocab, what, ": target ", s.targets[i], " at position ", i,
              " outside [-1, ", vocab, ")");
  }
}

}  // namespace lt2::tasks
