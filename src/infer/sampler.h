#pragma once
// Picks the next token from logits: greedy (temperature 0) or sampling with temperature,
// top-k, top-p (nucleus) and a repetition penalty; deterministic by seed.
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"

namespace lt2 {

struct SamplerConfig {
  double temperature = 0.8;  // 0 = greedy
  int64_t top_k = 40;        // 0 = all
  double top_p = 1.0;        // 1 = off
  double repetition_penalty = 1.0;  // > 1 discourages tokens already in the sequence (CTRL style)
  uint64_t seed = 0;
  void validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplerConfig& cfg) : cfg_(cfg), rng_{cfg.seed, stream_id("sampler")} { cfg_.validate(); }
  // `history`: the sequence so far (for the repetition penalty).
  int32_t sample(const float* logits, int64_t vocab, const std::vector<int32_t>& history);

 private:
  SamplerConfig cfg_;
  CounterRng rng_;
  uint64_t draws_ = 0;
};

}  // namespace lt2
