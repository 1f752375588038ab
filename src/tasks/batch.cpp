#include "tasks/batch.h"

#include "core/error.h"

namespace lt2::tasks {

Batch to_batch(const std::vector<Sample>& samples, int64_t seq_len, int32_t pad) {
  LT2_CHECK(!samples.empty(), "to_batch: no samples");
  LT2_CHECK(seq_len >= 1, "to_batch: seq_len must be >= 1, got ", seq_len);
  const int64_t B = static_cast<int64_t>(samples.size());
  Batch b{Tensor::empty({B, seq_len}, DType::I32), Tensor::empty({B, seq_len}, DType::I32)};
  int32_t* ids = b.ids.data<int32_t>();
  int32_t* tg = b.targets.data<int32_t>();
  for (int64_t r = 0; r < B; ++r) {
    const Sample& s = samples[r];
    const int64_t n = static_cast<int64_t>(s.tokens.size());
    LT2_CHECK(s.targets.size() == s.tokens.size(), "to_batch: sample ", r, " has ", n, " tokens but ",
              s.targets.size(), " targets");
    LT2_CHECK(n <= seq_len, "to_batch: sample ", r, " has ", n, " tokens, more than seq_len ", seq_len);
    for (int64_t t = 0; t < seq_len; ++t) {
      ids[r * seq_len + t] = t < n ? s.tokens[t] : pad;
      tg[r * seq_len + t] = t < n ? s.targets[t] : -1;
    }
  }
  return b;
}

}  // namespace lt2::tasks
