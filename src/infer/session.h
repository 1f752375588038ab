#pragma once
// Inference session: prefill prompts, then decode one token per sequence per step, over
// one cache per (loop, layer) planned once for a batch and a context limit.
#include <cstdint>
#include <vector>

#include "model/looped_model.h"

namespace lt2 {

class Session {
 public:
  Session(const LoopedModel& model, int64_t batch, int64_t context);

  // Logits come back on the host (F32 from a GPU model).
  // Prefills sequence `slot` with a prompt (resets it); returns the logits [1, V] of its last
  // position (the prediction of the first new token), or of every position [L, V].
  Tensor prefill(int64_t slot, const std::vector<int32_t>& prompt, bool all_positions = false);
  // Appends one token to every sequence; returns the logits [B, V] for the next ones.
  Tensor decode(const std::vector<int32_t>& tokens);

  int64_t batch() const { return batch_; }
  int64_t context() const { return context_; }
  const std::vector<int64_t>& lengths() const { return lengths_; }
  int64_t cache_bytes() const;  // all T * N caches, exactly as allocated

 private:
  const LoopedModel& model_;
  int64_t batch_, context_;
  LoopedModel::Caches caches_;
  std::vector<int64_t> lengths_;
};

}  // namespace lt2
