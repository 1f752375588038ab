#pragma once
// Measured (not computed) decode cost of a model: prefill a prompt to `context - decode`
// tokens, then time `decode` single-token steps for every sequence of the batch.
#include <cstdint>

#include "core/tensor.h"
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

// This machine's ceilings: best GEMM GFLOP/s (fp32 on the CPU, bf16 on the GPU) and memory copy
// bandwidth in GB/s (read + write) of the device the model runs on.
struct MachineCeilings {
  double sgemm_gflops = 0, copy_gbps = 0;
};
MachineCeilings measure_ceilings(Device device = Device::CPU);

// floor_ms of the point: max(bytes / bandwidth, FLOPs / sgemm peak) for one decode step, where
// bytes = T x (the shared weights, re-read every loop) + the LM head + every cache read once,
// and FLOPs = the analytic decode FLOPs of `lt2 info` at the context, times the batch.
// On CUDA the model runs in bf16 (weights counted at 2 bytes); each step includes copying the
// logits back to the host, as a sampler needs them.
DecodePoint measure_decode(const ModelConfig& cfg, int64_t batch, int64_t context, int64_t decode_steps,
                           uint64_t seed, const MachineCeilings& m, Device device = Device::CPU);

}  // namespace lt2
