#pragma once
// Timing of DeepSeek sparse attention for `lt2 bench attn` (GPU): the whole DSA layer core —
// lightning-indexer scores, top-k, sparse attention — forward, and forward + backward (sparse
// attention backward, the indexer's KL loss and its scores' backward). Projections excluded,
// as for full attention.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace lt2::cli {

struct DsaBenchShape {
  int64_t B, L, H, Hkv, D;  // attention
  int64_t k, HI, dI;        // top-k, indexer heads and width
};
struct DsaTimes {
  double fwd_ms, all_ms;
  std::vector<std::pair<std::string, double>> parts;  // each op alone, ms
  // Data movement alone (cuda/dsa_floor.h): reading every selected key's K and V rows once, and
  // a backward's reduction of one row per pair into dK and into dV by atomics.
  double gather_ms, scatter_ms;
};
DsaTimes time_dsa(const DsaBenchShape& s, DType dt, int warmup, int reps);

}  // namespace lt2::cli
