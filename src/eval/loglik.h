#pragma once
// Log-likelihood of a continuation given a context (lm-eval style scoring).
#include <cstdint>
#include <vector>

#include "model/looped_model.h"

namespace lt2::eval {

// Sum over the continuation's tokens of log p(token | everything before it), from one forward
// pass over context + continuation. When the pair exceeds the model's context limit the oldest
// context tokens are dropped; the continuation itself must fit (and context must not be empty).
double continuation_loglik(const LoopedModel& model, const std::vector<int32_t>& context,
                           const std::vector<int32_t>& continuation);

}  // namespace lt2::eval
