#pragma once
// The paper's stability diagnostics per (loop, layer) call: mean attention mass on the first
// token (the looped attention sink), RMS of the residual stream entering the call, and the
// largest |activation| inside the SwiGLU FFN; for dsa(k) layers also the share of the dense
// attention distribution that the indexer's top-k keys capture (how well the indexer works).
#include <vector>

#include "model/looped_model.h"

namespace lt2 {

struct LayerDiag {
  double first_token_mass = 0;  // NaN for non-attention layers
  double residual_rms = 0;
  double max_ffn_activation = 0;
  double topk_mass = 0;  // NaN for layers that are not dsa(k)
};

struct Diagnostics {
  int64_t loops = 0, layers = 0, batches = 0;
  std::vector<LayerDiag> at;  // [loop * layers + layer], averaged over batches (max for activations)
  const LayerDiag& get(int64_t loop, int64_t layer) const { return at.at(size_t(loop * layers + layer)); }
};

// Adds one batch's measurements (ids I32 [B, L]) to `d` (sized on first use).
void accumulate_diagnostics(const LoopedModel& model, const Tensor& ids, Diagnostics& d);
// Markdown table, one row per (loop, layer).
std::string diagnostics_table(const Diagnostics& d, const ModelConfig& cfg);

}  // namespace lt2
