// lt2 bench train: measured training throughput on this machine against its sgemm peak.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/rng.h"
#include "cpu/blas.h"
#include "model/info.h"
#include "model/presets.h"
#include "train/trainer.h"

namespace lt2::cli {

ModelConfig config_from_flags(const Args& a);

namespace {
using clk = std::chrono::steady_clock;
double seconds_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

// Best sgemm GFLOP/s over `reps` n^3 products after a warm-up: the CPU's matmul ceiling.
double sgemm_peak_gflops(int64_t n, int reps) {
  std::vector<float> A(n * n, 0.5f), B(n * n, 0.25f), C(n * n);
  std::vector<double> t;
  for (int r = 0; r < reps + 1; ++r) {
    auto t0 = clk::now();
    cpu::gemm(false, true, n, n, n, 1.0f, A.data(), n, B.data(), n, 0.0f, C.data(), n);
    if (r > 0) t.push_back(seconds_since(t0));  // first run is warm-up
  }
  return 2.0 * n * n * n / *std::min_element(t.begin(), t.end()) / 1e9;
}
}  // namespace

int cmd_bench(int argc, char** argv) {
  Args a("lt2 bench train", {{"config", true, "preset or JSON run config (default: default)"},
                             {"steps", true, "timed steps (default 5)"},
                             {"warmup", true, "untimed steps first (default 1)"},
                             {"batch", true, "batch size (default: the config's)"},
                             {"seq-len", true, "sequence length (default: the config's)"}},
         argc, argv, 3);
  if (a.help() || argc < 3 || std::string(argv[2]) != "train") {
    std::printf("usage: lt2 bench train [--config NAME|FILE] [flags]\n\n%s", a.usage().c_str());
    return a.help() ? 0 : 2;
  }
  const ModelConfig mcfg = config_from_flags(a);
  const json::Value rc = load_run_config(a.str("config", "default"));
  TrainConfig tc = rc.find("train") ? TrainConfig::from_json(*rc.find("train"), "train") : TrainConfig{};
  tc.batch_size = a.integer("batch", tc.batch_size);
  tc.seq_len = a.integer("seq-len", tc.seq_len);
  const int64_t steps = a.integer("steps", 5), warmup = a.integer("warmup", 1);
  LT2_CHECK(steps >= 1 && warmup >= 0, "--steps must be >= 1 and --warmup >= 0");
  tc.steps = steps + warmup;

  std::fprintf(stderr, "measuring sgemm peak (2048^3, fp32)...\n");
  const double peak = sgemm_peak_gflops(2048, 5);

  // Random tokens: throughput does not depend on the text.
  std::vector<int32_t> tokens(size_t(tc.batch_size * tc.seq_len * 4 + 2));
  const CounterRng rng{1, 2};
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(rng.bits(i) % uint64_t(mcfg.vocab_size));
  LoopedModel model(mcfg);
  model.init(tc.seed);
  Trainer trainer(model, tc, tokens, tokens);
  for (int64_t i = 0; i < warmup; ++i) trainer.step();
  std::vector<double> times;
  for (int64_t i = 0; i < steps; ++i) {
    auto t0 = clk::now();
    trainer.step();
    times.push_back(seconds_since(t0));
    std::fprintf(stderr, "step %lld: %.3f s\n", (long long)(i + 1), times.back());
  }
  std::sort(times.begin(), times.end());
  const double t = times[times.size() / 2];
  const ModelCost cost = model_cost(mcfg, 0, tc.seq_len, tc.seq_len, 4);
  const double tok = double(tc.batch_size * tc.seq_len);
  const double gflops = cost.train_flops_per_token * tok / t / 1e9;
  const double mm_time_at_peak = cost.train_matmul_flops_per_token * tok / (peak * 1e9);
  std::printf("config            %s (%.2fM params, T=%lld), batch %lld x %lld tokens, fp32, CPU\n",
              a.str("config", "default").c_str(), model.num_params() / 1e6, (long long)mcfg.num_loops,
              (long long)tc.batch_size, (long long)tc.seq_len);
  std::printf("step time         %.3f s (median of %lld)\n", t, (long long)steps);
  std::printf("tokens/s          %.0f\n", tok / t);
  std::printf("achieved          %.1f GFLOP/s (model FLOPs incl. attention/GDN)\n", gflops);
  std::printf("sgemm peak        %.1f GFLOP/s (2048^3 fp32, best of 5)\n", peak);
  std::printf("matmul-only bound %.3f s at peak -> step runs at %.0f%% of it\n", mm_time_at_peak,
              100 * mm_time_at_peak / t);
  return 0;
}

}  // namespace lt2::cli
