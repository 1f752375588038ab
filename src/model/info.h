#pragma once
// Analytic cost model of a config (SPEC §6): parameters, FLOPs per token for training and
// decode, and cache / state bytes per mixer, for a given loop count T and context length.
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace lt2 {

struct MixerCost {
  std::string mixer;          // "full", "window(64)", "gdn"
  int layers = 0;             // how many layers of the shared stack use it
  double matmul_flops = 0;    // per token per layer per loop (projections, 2 * weights)
  double mix_flops_train = 0; // per token per layer per loop, forward, averaged over a training sequence
  double mix_flops_decode = 0;// per token per layer per loop, forward, at the given context
  double cache_bytes = 0;     // per sequence per (loop, layer) at the given context
  bool cache_grows = false;   // grows with context (full attention)
};

struct ModelCost {
  int64_t params = 0, params_non_embedding = 0;
  int64_t loops = 0, context = 0;
  double train_flops_per_token = 0;   // forward + backward (3x forward), all loops, incl. LM head
  double train_matmul_flops_per_token = 0;  // the GEMM share of the above
  double decode_flops_per_token = 0;  // forward of one token at `context`, all loops
  double cache_bytes = 0;             // all T * N caches/states of one sequence at `context`
  std::vector<MixerCost> mixers;
};

// `loops` overrides the config's T (0 = keep); `act_bytes` is bytes per cached K/V element.
ModelCost model_cost(const ModelConfig& cfg, int64_t loops, int64_t context, int64_t train_seq_len,
                     double act_bytes);
int64_t count_params(const ModelConfig& cfg, bool include_embeddings);

}  // namespace lt2
