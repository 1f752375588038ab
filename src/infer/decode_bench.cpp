#include "infer/decode_bench.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "cpu/blas.h"
#include "cuda/runtime.h"
#include "infer/session.h"
#include "model/info.h"

namespace lt2 {

MachineCeilings measure_ceilings(Device device) {
  using clk = std::chrono::steady_clock;
  MachineCeilings m;
  if (device == Device::CUDA) return {cuda::measure_gemm_tflops() * 1e3, cuda::measure_copy_gbps()};
  const int64_t n = 1536;
  std::vector<float> A(n * n, 0.5f), B(n * n, 0.25f), C(n * n);
  double best = 1e30;
  for (int r = 0; r < 4; ++r) {  // the first run warms up
    auto t = clk::now();
    cpu::gemm(false, true, n, n, n, 1.0f, A.data(), n, B.data(), n, 0.0f, C.data(), n);
    if (r) best = std::min(best, std::chrono::duration<double>(clk::now() - t).count());
  }
  m.sgemm_gflops = 2.0 * n * n * n / best / 1e9;
  const size_t bytes = size_t(256) << 20;  // far beyond the caches
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  best = 1e30;
  for (int r = 0; r < 4; ++r) {
    auto t = clk::now();
    std::memcpy(dst.data(), src.data(), bytes);
    if (r) best = std::min(best, std::chrono::duration<double>(clk::now() - t).count());
  }
  m.copy_gbps = 2.0 * double(bytes) / best / 1e9;  // a copy reads and writes every byte
  return m;
}

DecodePoint measure_decode(const ModelConfig& cfg, int64_t batch, int64_t context, int64_t steps, uint64_t seed,
                           const MachineCeilings& m, Device device) {
  using clk = std::chrono::steady_clock;
  LT2_CHECK(steps >= 1 && context > steps, "decode bench: context ", context, " must exceed the decode steps ", steps);
  LoopedModel model(cfg);
  model.init(seed);
  if (device == Device::CUDA) model.to(Device::CUDA, DType::BF16);
  Session s(model, batch, context);
  const CounterRng rng{seed, stream_id("decode-bench")};
  const int64_t prompt_len = context - steps;
  DecodePoint p;
  p.context = context;
  p.batch = batch;
  p.cache_bytes = s.cache_bytes();
  auto t0 = clk::now();
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<int32_t> prompt(static_cast<size_t>(prompt_len));
    for (int64_t i = 0; i < prompt_len; ++i) prompt[i] = int32_t(rng.bits(b * context + i) % uint64_t(cfg.vocab_size));
    s.prefill(b, prompt);
  }
  p.prefill_tokens_per_s = double(batch * prompt_len) / std::chrono::duration<double>(clk::now() - t0).count();
  std::vector<int32_t> tok(static_cast<size_t>(batch), 32);
  std::vector<double> ms;
  for (int64_t i = 0; i < steps; ++i) {
    auto t = clk::now();
    s.decode(tok);
    ms.push_back(std::chrono::duration<double, std::milli>(clk::now() - t).count());
  }
  std::sort(ms.begin(), ms.end());
  p.ms_per_step = ms[ms.size() / 2];
  p.decode_tokens_per_s = double(batch) / (p.ms_per_step / 1e3);
  const ModelCost cost = model_cost(cfg, 0, context, context, 4);
  const double wb = device == Device::CUDA ? 2.0 : 4.0;  // bytes per weight as the step reads them
  const double weight_bytes = wb * double(cost.params_non_embedding) * double(cfg.num_loops) +
                              wb * double(cfg.vocab_size * cfg.hidden_size);
  const double bytes = weight_bytes + double(p.cache_bytes);
  p.floor_ms = 1e3 * std::max(bytes / (m.copy_gbps * 1e9), cost.decode_flops_per_token * batch / (m.sgemm_gflops * 1e9));
  return p;
}

}  // namespace lt2
