#include "eval/loglik.h"

#include <algorithm>
#include <cmath>

namespace lt2::eval {

double continuation_loglik(const LoopedModel& model, const std::vector<int32_t>& context,
                           const std::vector<int32_t>& continuation) {
  const int64_t limit = model.config().max_position_embeddings, V = model.config().vocab_size;
  LT2_CHECK(!context.empty() && !continuation.empty(), "log-likelihood needs a non-empty context and continuation");
  LT2_CHECK(int64_t(continuation.size()) < limit, "a continuation of ", continuation.size(),
            " tokens does not fit the context limit of ", limit);
  const int64_t keep = std::min<int64_t>(int64_t(context.size()), limit - int64_t(continuation.size()));
  std::vector<int32_t> ids(context.end() - keep, context.end());
  ids.insert(ids.end(), continuation.begin(), continuation.end());
  Tensor x = Tensor::empty({1, int64_t(ids.size())}, DType::I32);
  std::copy(ids.begin(), ids.end(), x.data<int32_t>());
  const Tensor logits = model.forward(x, nullptr).to(Device::CPU, DType::F32);
  const float* lp = logits.data<float>();
  double total = 0;
  for (size_t j = 0; j < continuation.size(); ++j) {
    const float* row = lp + (keep - 1 + int64_t(j)) * V;  // the position that predicts continuation[j]
    const float m = *std::max_element(row, row + V);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v] - m));
    total += double(row[continuation[j]] - m) - std::log(sum);
  }
  return total;
}

}  // namespace lt2::eval
