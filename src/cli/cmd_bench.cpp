// lt2 bench train: measured training throughput on this machine against its sgemm peak.
#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <cstdio>
#include <vector>

#include "cli/args.h"
#include "cli/device_flag.h"
#include "cuda/runtime.h"
#include "ops/profile.h"
#include "cli/commands.h"
#include "cli/run_config.h"
#include "cli/progress.h"
#include "core/fs.h"
#include "infer/decode_bench.h"
#include "report/chart.h"
#include "core/rng.h"
#include "cpu/blas.h"
#include "model/info.h"
#include "train/trainer.h"

namespace lt2::cli {

ModelConfig config_from_flags(const Args& a);

namespace {
using clk = std::chrono::steady_clock;
double seconds_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

}  // namespace

static int bench_decode(int argc, char** argv);
int bench_attn(int argc, char** argv);  // cmd_bench_attn.cpp
int bench_gdn(int argc, char** argv);   // cmd_bench_gdn.cpp
int bench_gemm(int argc, char** argv);  // cmd_bench_gemm.cpp

int cmd_bench(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[2]) == "decode") return bench_decode(argc, argv);
  if (argc >= 3 && std::string(argv[2]) == "attn") return bench_attn(argc, argv);
  if (argc >= 3 && std::string(argv[2]) == "gdn") return bench_gdn(argc, argv);
  if (argc >= 3 && std::string(argv[2]) == "gemm") return bench_gemm(argc, argv);
  Args a("lt2 bench train", {{"config", true, "preset or JSON run config (default: default)"},
                             {"steps", true, "timed steps (default 5)"},
                             {"warmup", true, "untimed steps first (default 1)"},
                             {"batch", true, "batch size (default: the config's)"},
                             {"seq-len", true, "sequence length (default: the config's)"},
                             {"recompute", true, "on|off: recompute each loop's activations in the backward (default: the config's recompute_loops)"},
                             {"keep-loops", true, "with recompute on, the last N loops keep their activations (default: the config's recompute_keep_loops)"},
                             {"no-profile", false, "skip the extra, synchronised step that measures the per-phase breakdown"},
                             device_flag()},
         argc, argv, 3);
  const bool help = a.help() || (argc >= 3 && (std::string(argv[2]) == "--help" || std::string(argv[2]) == "-h"));
  if (help || argc < 3 || std::string(argv[2]) != "train") {
    std::printf("usage: lt2 bench train [--config NAME|FILE] [flags]\n       lt2 bench decode [flags]\n"
                "       lt2 bench attn [flags]   (GPU attention kernels)\n"
                "       lt2 bench gdn [flags]    (GPU Gated DeltaNet kernels)\n"
                "       lt2 bench gemm [flags]   (GPU projection GEMMs of a config)\n\n%s",
                a.usage().c_str());
    return help ? 0 : 2;
  }
  LT2_CHECK(a.positionals().empty(), "lt2 bench train: unexpected argument '",
            a.positionals().empty() ? "" : a.positionals()[0], "'");
  RunConfig rc = load_run(a.str("config", "default"));
  if (a.has("recompute")) {
    const std::string r = a.str("recompute", "");
    LT2_CHECK(r == "on" || r == "off", "--recompute takes on or off, got '", r, "'");
    rc.model.recompute_loops = r == "on";
  }
  rc.model.recompute_keep_loops = a.integer("keep-loops", rc.model.recompute_keep_loops);
  rc.model.validate("lt2 bench train");
  const ModelConfig& mcfg = rc.model;
  TrainConfig tc = rc.train;
  tc.batch_size = a.integer("batch", tc.batch_size);
  tc.seq_len = a.integer("seq-len", tc.seq_len);
  const int64_t steps = a.integer("steps", 5), warmup = a.integer("warmup", 1);
  LT2_CHECK(steps >= 1 && warmup >= 0, "--steps must be >= 1 and --warmup >= 0");
  tc.steps = steps + warmup;
  tc.validate("lt2 bench train");
  LT2_CHECK(tc.seq_len <= mcfg.max_position_embeddings, "--seq-len ", tc.seq_len, " exceeds the context limit ",
            mcfg.max_position_embeddings);

  const Device device = chosen_device(a);
  std::fprintf(stderr, "measuring the %s peak...\n", device == Device::CUDA ? "bf16 GEMM" : "sgemm");
  // GFLOP/s of the best GEMM this machine does: bf16 8192^3 on the GPU, fp32 1536^3 on the CPU.
  const double peak = device == Device::CUDA ? cuda::measure_gemm_tflops() * 1e3 : measure_ceilings().sgemm_gflops;

  // Random tokens: throughput does not depend on the text.
  std::vector<int32_t> tokens(size_t(tc.batch_size * tc.seq_len * 4 + 2));
  const CounterRng rng{1, 2};
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(rng.bits(i) % uint64_t(mcfg.vocab_size));
  LoopedModel model(mcfg);
  model.init(tc.seed);
  place_model(model, device);
  Trainer trainer(model, tc, std::make_shared<TextSource>(tokens, tokens, tc.seq_len, tc.seed));
  for (int64_t i = 0; i < warmup; ++i) trainer.step();
  cuda::synchronize();
  cuda::reset_peak_memory();
  std::vector<double> times;
  uint64_t waits = 0;  // the host's waits for the GPU inside the timed steps
  double host_busy = 0;  // the host's time issuing the steps' work (outside those waits)
  uint64_t launches = 0;
  for (int64_t i = 0; i < steps; ++i) {
    auto t0 = clk::now();
    const uint64_t w0 = cuda::wait_count(), l0 = cuda::launch_count();
    const double ws0 = cuda::wait_seconds();
    trainer.step();
    waits += cuda::wait_count() - w0;
    launches += cuda::launch_count() - l0;
    host_busy += seconds_since(t0) - (cuda::wait_seconds() - ws0);
    cuda::synchronize();  // the step's GPU work is done before the clock stops
    times.push_back(seconds_since(t0));
    std::fprintf(stderr, "step %lld: %.3f s\n", (long long)(i + 1), times.back());
  }
  const double peak_gib = double(cuda::memory_stats().peak) / double(1 << 30);
  std::sort(times.begin(), times.end());
  const double t = times[times.size() / 2];
  // One more step with every op synchronised and timed by phase (slower than the steps above).
  std::array<double, ops::kPhases> phases{};
  std::vector<ops::OpTime> op_times;
  double profiled = 0;
  if (!a.has("no-profile")) {
    ops::reset_phase_seconds();
    ops::set_profiling(true);
    auto t0 = clk::now();
    trainer.step();
    cuda::synchronize();
    profiled = seconds_since(t0);
    ops::set_profiling(false);
    phases = ops::phase_seconds();
    op_times = ops::op_times();
  }
  const ModelCost cost = model_cost(mcfg, 0, tc.seq_len, tc.seq_len, 4);
  const double tok = double(tc.batch_size * tc.seq_len);
  const double gflops = cost.train_flops_per_token * tok / t / 1e9;
  const double mm_time_at_peak = cost.train_matmul_flops_per_token * tok / (peak * 1e9);
  const bool gpu = device == Device::CUDA;
  const std::string recompute = !mcfg.recompute_loops           ? "off"
                                : mcfg.recompute_keep_loops == 0 ? "on, every loop"
                                : mcfg.recompute_keep_loops == 1 ? "on, last loop kept"
                                                                 : cat("on, last ", mcfg.recompute_keep_loops, " loops kept");
  std::printf("config            %s (%.2fM params, T=%lld), batch %lld x %lld tokens, %s, recompute %s\n",
              a.str("config", "default").c_str(), model.num_params() / 1e6, (long long)mcfg.num_loops,
              (long long)tc.batch_size, (long long)tc.seq_len, gpu ? "bf16 mixed precision" : "fp32",
              recompute.c_str());
  std::printf("device            %s\n", device_label(device).c_str());
  std::printf("step time         %.4f s (median of %lld)\n", t, (long long)steps);
  std::printf("tokens/s          %.0f\n", tok / t);
  std::printf("achieved          %.1f GFLOP/s (model FLOPs incl. attention/GDN)\n", gflops);
  if (gpu) {
    std::printf("bf16 GEMM peak    %.1f TFLOP/s (8192^3, measured) -> MFU %.1f%%\n", peak / 1e3, 100 * gflops / peak);
    std::printf("peak GPU memory   %.2f GiB (allocated by lt2's caching allocator)\n", peak_gib);
    std::printf("host waits        %.1f a step (for uploads and read-backs; in between the host runs ahead of the GPU)\n",
                double(waits) / double(steps));
    // The host's time outside its waits, which include the blocking copies (a launch into a full
    // queue blocks too, and counts here). Near the step time with --batch 1 --seq-len 128, it is
    // the least time a step can take on this host; well below it, the GPU sets the pace and a CUDA
    // graph of the step could save only the gaps between kernels.
    std::printf("host busy         %.4f s a step (issuing its work, outside the waits); %.0f kernel launches a step\n",
                host_busy / double(steps), double(launches) / double(steps));
  } else {
    std::printf("sgemm peak        %.1f GFLOP/s (1536^3 fp32, best of 3)\n", peak);
  }
  std::printf("matmul-only bound %.4f s at peak -> step runs at %.0f%% of it\n", mm_time_at_peak,
              100 * mm_time_at_peak / t);
  if (profiled > 0) {
    std::printf("phases (one extra step, every op synchronised: %.4f s)\n", profiled);
    double sum = 0;
    for (int i = 0; i < ops::kPhases; ++i) {
      sum += phases[i];
      std::printf("  %-36s %8.2f ms  %5.1f%%\n", ops::phase_name(ops::Phase(i)), phases[i] * 1e3,
                  100 * phases[i] / profiled);
    }
    std::printf("  %-36s %8.2f ms  %5.1f%%\n", "other (copies, casts, host)", (profiled - sum) * 1e3,
                100 * (profiled - sum) / profiled);
    const size_t shown = std::min<size_t>(op_times.size(), 16);
    std::printf("largest ops (same step)\n");
    for (size_t i = 0; i < shown; ++i) {
      const ops::OpTime& op = op_times[i];
      std::printf("  %-36s %8.2f ms  %5.1f%%  %5ld calls\n", op.name.c_str(), op.seconds * 1e3,
                  100 * op.seconds / profiled, op.calls);
    }
  }
  return 0;
}


// Figure 1 of the paper, measured: decode speed and cache memory against context and loops
// for looped full attention, window, GDN and the Full+GDN hybrid at equal width and depth.
static int bench_decode(int argc, char** argv) {
  Args a("lt2 bench decode",
         {{"config", true, "preset or JSON whose model sets width and depth (default: default)"},
          {"contexts", true, "context lengths (default 256,1024,4096)"},
          {"loops", true, "loop counts T (default 1,2,4,8)"},
          {"batch", true, "sequences decoded together (default 1)"},
          {"steps", true, "timed decode steps per point (default 16)"},
          {"window", true, "span of the window model (default 256)"},
          {"topk", true, "k of the GDN+DSA model's dsa(k) layers (default 64)"},
          {"mixers", true, "which of full,window,gdn,hybrid,dsa (default all; dsa = the GDN+DSA hybrid)"},
          {"out", true, "CSV + SVG path prefix (default bench/decode)"},
          device_flag()},
         argc, argv, 3);
  LT2_CHECK(a.positionals().empty(), "lt2 bench decode: unexpected argument '",
            a.positionals().empty() ? "" : a.positionals()[0], "'");
  if (a.help()) {
    std::printf("usage: lt2 bench decode [flags]\n\nWrites <out>.csv and <out>.svg.\n\n%s", a.usage().c_str());
    return 0;
  }
  const ModelConfig base = config_from_flags(a);
  const auto contexts = a.int_list("contexts", "256,1024,4096");
  const auto loops = a.int_list("loops", "1,2,4,8");
  const int64_t batch = a.integer("batch", 1), steps = a.integer("steps", 16), window = a.integer("window", 256);
  const int64_t topk = a.integer("topk", 64);
  LT2_CHECK(batch >= 1 && steps >= 1 && window >= 1 && topk >= 1, "--batch, --steps, --window and --topk must be >= 1");
  const std::string out = a.str("out", "bench/decode");
  struct Variant { std::string name, pattern; };
  const int64_t n = base.num_hidden_layers;
  std::vector<Variant> all = {{"looped full", "full"},
                              {"window(" + std::to_string(window) + ")", "window(" + std::to_string(window) + ")"},
                              {"GDN", "gdn"},
                              {"Full+GDN", ""}, {"GDN+DSA", ""}};
  // The hybrids: one softmax layer per five (per n when the stack is shorter), like the paper's.
  const std::string ratio = n >= 5 ? "1:4" : "1:" + std::to_string(std::max<int64_t>(1, n - 1));
  all[3].pattern = "interleave(full,gdn," + ratio + ")";
  all[4].pattern = "interleave(dsa(" + std::to_string(topk) + "),gdn," + ratio + ")";
  const std::string want = a.str("mixers", "full,window,gdn,hybrid,dsa");
  std::vector<Variant> variants;
  const char* keys[] = {"full", "window", "gdn", "hybrid", "dsa"};
  for (int i = 0; i < 5; ++i)
    if (("," + want + ",").find(std::string(",") + keys[i] + ",") != std::string::npos) variants.push_back(all[i]);
  LT2_CHECK(!variants.empty(), "--mixers: expected a comma list of full, window, gdn, hybrid, dsa; got '", want, "'");
  const int64_t max_ctx = *std::max_element(contexts.begin(), contexts.end());
  if (const auto parent = std::filesystem::path(out).parent_path(); !parent.empty()) fs::make_dirs(parent.string());

  const Device device = chosen_device(a);
  const bool gpu = device == Device::CUDA;
  std::fprintf(stderr, "measuring the GEMM peak and copy bandwidth of %s...\n", device_label(device).c_str());
  const MachineCeilings mc = measure_ceilings(device);
  std::fprintf(stderr, "%s %.1f GFLOP/s, copy %.1f GB/s\n", gpu ? "bf16 GEMM" : "sgemm", mc.sgemm_gflops, mc.copy_gbps);
  std::string csv = "mixer,loops,context,batch,prefill_tokens_per_s,decode_tokens_per_s,ms_per_step,cache_bytes,"
                    "floor_ms,pct_of_floor\n";
  std::vector<report::Series> tps_ctx, mem_ctx, tps_T, mem_T;
  const int64_t T_ref = std::find(loops.begin(), loops.end(), 4) != loops.end() ? 4 : loops.back();
  Progress bar(int64_t(variants.size() * loops.size() * contexts.size()), 0);
  int64_t done = 0;
  for (const auto& v : variants) {
    report::Series a1{v.name, {}}, a2{v.name, {}}, a3{v.name, {}}, a4{v.name, {}};
    for (int64_t T : loops)
      for (int64_t ctx : contexts) {
        ModelConfig cfg = base;
        cfg.num_loops = T;
        cfg.loop_windows.clear();
        cfg.layer_types = parse_pattern(v.pattern, n, "bench");
        cfg.max_position_embeddings = std::max(cfg.max_position_embeddings, max_ctx);
        const DecodePoint p = measure_decode(cfg, batch, ctx, std::min(steps, ctx - 1), 1, mc, device);
        char line[256];
        std::snprintf(line, sizeof line, "%s,%lld,%lld,%lld,%.1f,%.2f,%.4f,%lld,%.4f,%.1f\n", v.name.c_str(),
                      (long long)T, (long long)ctx, (long long)batch, p.prefill_tokens_per_s, p.decode_tokens_per_s,
                      p.ms_per_step, (long long)p.cache_bytes, p.floor_ms, 100 * p.floor_ms / p.ms_per_step);
        csv += line;
        fs::write_file_atomic(out + ".csv", csv);  // each point as soon as it is measured: long sweeps keep what ran
        if (T == T_ref) a1.points.emplace_back(ctx, p.decode_tokens_per_s), a2.points.emplace_back(ctx, p.cache_bytes / 1048576.0);
        if (ctx == max_ctx) a3.points.emplace_back(T, p.decode_tokens_per_s), a4.points.emplace_back(T, p.cache_bytes / 1048576.0);
        char st[160];
        std::snprintf(st, sizeof st, "%s T=%lld ctx=%lld: %.1f tok/s", v.name.c_str(), (long long)T, (long long)ctx,
                      p.decode_tokens_per_s);
        bar.update(++done, st);
      }
    tps_ctx.push_back(a1), mem_ctx.push_back(a2), tps_T.push_back(a3), mem_T.push_back(a4);
  }
  bar.finish();
  const std::string Ts = std::to_string(T_ref), Cs = std::to_string(max_ctx);
  std::vector<report::Chart> charts = {
      {"decode speed vs context (T = " + Ts + ")", "context (tokens)", "tokens/s", true, true, tps_ctx},
      {"cache memory vs context (T = " + Ts + ")", "context (tokens)", "MiB", true, true, mem_ctx},
      {"decode speed vs loops (context " + Cs + ")", "loops T", "tokens/s", false, true, tps_T},
      {"cache memory vs loops (context " + Cs + ")", "loops T", "MiB", false, true, mem_T}};
  char title[256];
  std::snprintf(title, sizeof title,
                "lt2 decode, %s, d=%lld, N=%lld layers, batch %lld (measured; GEMM %.0f GFLOP/s, copy %.1f GB/s)",
                gpu ? ("bf16 on " + device_label(device)).c_str() : "CPU fp32", (long long)base.hidden_size,
                (long long)n, (long long)batch, mc.sgemm_gflops, mc.copy_gbps);
  fs::write_file_atomic(out + ".svg", report::svg_document(title, charts, 2, 560, 330));
  std::printf("%s", csv.c_str());
  std::fprintf(stderr, "wrote %s.csv and %s.svg\n", out.c_str(), out.c_str());
  return 0;
}

}  // namespace lt2::cli
