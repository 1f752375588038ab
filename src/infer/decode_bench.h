#pragma once
// Measured (not computed) decode cost of a model: prefill a prompt to `context - decode`
// tokens, then time `decode` single-token steps for every sequence of the batch.
#include <cstdint>

#include "model/config.h"

namespace lt2 {

struct DecodePoint {
  int64_t context = 0, batch = 0;
  double prefill_tokens_per_s = 0;
  double decode_tokens_per_s = 0;  // batch / median step time
  double ms_per_step = 0;          // median latency of one decode step (all sequences)
  int64_t cache_bytes = 0;         // as allocated by the Session for this batch and context
  double floor_ms = 0;             // lower bound for one step on this machine (see machine_floor)
};

// This machine's ceilings: best sgemm GFLOP/s and memory copy bandwidth in GB/s (read + write).
struct MachineCeilings {
  double sgemm_gflops = 0, copy_gbps = 0;
};
MachineCeilings measure_ceilings();

// floor_ms of the point: max(bytes / bandwidth, FLOPs / sgemm peak) for one decode step, where
// bytes = T x (the shared weights, re-read every loop) + the LM head + every cache read once,
// and FLOPs = the analytic decode FLOPs of `lt2 info` at the context, times the batch.
DecodePoint measure_decode(const ModelConfig& cfg, int64_t batch, int64_t context, int64_t decode_steps,
                           uint64_t seed, const MachineCeilings& m);

}  // namespace lt2
