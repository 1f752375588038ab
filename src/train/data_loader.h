#pragma once
// Batches of (input, target) windows from a token stream. Training windows start at
// offsets drawn from the counter RNG keyed by (seed, micro-batch index), so the data
// position of a run is just its step counter: resuming needs no loader state.
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace lt2 {

struct Batch {
  Tensor ids;      // I32 [B, L]
  Tensor targets;  // I32 [B, L]: the next token of each input position
};

class DataLoader {
 public:
  // Keeps its own copy of the tokens (a few MB for the corpora used here).
  DataLoader(std::vector<int32_t> tokens, int64_t batch, int64_t seq_len, uint64_t seed, const char* what);
  // Random windows for micro-batch number `index` (= step * grad_accum + micro).
  Batch train_batch(uint64_t index) const;
  // Deterministic, non-overlapping windows for evaluation: batch i of the stream.
  Batch eval_batch(int64_t i) const;
  int64_t num_eval_batches() const;

 private:
  Batch window_batch(const std::vector<int64_t>& starts) const;
  std::vector<int32_t> tokens_;
  int64_t B_, L_;
  uint64_t seed_;
};

}  // namespace lt2
