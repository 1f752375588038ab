// lt2 bench attn: causal softmax attention on the GPU, forward and forward + backward, timed
// with CUDA events (median of --reps after --warmup), with the achieved TFLOP/s.
//
// FLOPs count only the visible (query, key) pairs: the forward does two matrix products
// (S = Q K^T, O = P V), 2 * 2 * D FLOPs per pair and head; the backward is counted as 2.5
// forwards (dV, dP, dQ, dK, plus the recomputed S as half a product's worth), the usual
// FlashAttention convention, so fwd+bwd = 3.5 forwards.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/bench_dsa.h"
#include "cli/bench_inputs.h"
#include "cli/commands.h"
#include "core/error.h"
#include "cuda/dsa_floor.h"
#include "cuda/runtime.h"
#include "ops/ops.h"

namespace lt2::cli {

namespace {

struct AttnShape {
  int64_t B, L, H, Hkv, D;
};

// "BxLxHxD" (Hkv = H) or "BxLxHxHkvxD".
AttnShape parse_shape(const std::string& s) {
  const std::vector<int64_t> v = Args::dims(s, "shapes", "BxLxHxD or BxLxHxHkvxD");
  LT2_CHECK(v.size() == 4 || v.size() == 5, "--shapes: '", s, "' needs 4 or 5 numbers (BxLxHxD or BxLxHxHkvxD)");
  const AttnShape a = v.size() == 4 ? AttnShape{v[0], v[1], v[2], v[2], v[3]} : AttnShape{v[0], v[1], v[2], v[3], v[4]};
  LT2_CHECK(a.H % a.Hkv == 0, "--shapes: '", s, "': H must be a multiple of Hkv");
  return a;
}

// (query, key) pairs with key <= query and query - key < window (window 0: no limit).
double visible_pairs(int64_t L, int64_t w) {
  if (w <= 0 || w >= L) return double(L) * double(L + 1) / 2;
  return double(w) * double(w + 1) / 2 + double(L - w) * double(w);
}

}  // namespace

int bench_attn(int argc, char** argv) {
  Args a("lt2 bench attn",
         {{"shapes", true, "comma list of BxLxHxD or BxLxHxHkvxD (default 4x4096x16x128,8x2048x12x64,1x16384x16x128)"},
          {"window", true, "comma list of windows, 0 = full causal (default 0,512)"},
          {"dsa", true, "comma list of top-k values for DeepSeek sparse attention rows, 0 = none (default 512)"},
          {"dsa-path", true, "DSA sparse-attention kernels: gather, masked (flash with a key mask), auto (the "
                             "engine's choice) or both (default both)"},
          {"index-heads", true, "DSA lightning-indexer heads H_I (default 4)"},
          {"index-dim", true, "DSA lightning-indexer head width d_I (default 32)"},
          {"dtype", true, "bf16 (tensor-core path) or f32 (fp32 kernels) (default bf16)"},
          {"warmup", true, "untimed runs first (default 3)"},
          {"reps", true, "timed runs, the median is reported (default 10)"}},
         argc, argv, 3);
  if (a.help()) {
    std::printf("usage: lt2 bench attn [flags]\n\nCausal attention forward and forward+backward on the GPU: full, "
                "sliding window and DeepSeek sparse attention (DSA rows time the indexer scores, top-k and sparse "
                "attention, and in the backward also the indexer's KL loss and gradient; TFLOP/s counts the attention "
                "pairs only). Under each DSA row, the floor of any kernel that gathers: the selected K and V rows' "
                "bytes at the card's measured L2 read speed, and the time to gather them and to reduce a backward's dK and dV by atomics, with no math.\n\n%s",
                a.usage().c_str());
    return 0;
  }
  LT2_CHECK(a.positionals().empty(), "lt2 bench attn: unexpected argument '",
            a.positionals().empty() ? "" : a.positionals()[0], "'");
  LT2_CHECK(cuda::available(), "lt2 bench attn: needs a CUDA GPU (none found or built without CUDA)");
  const int warmup = int(a.integer("warmup", 3)), reps = int(a.integer("reps", 10));
  LT2_CHECK(warmup >= 0 && reps >= 1, "--warmup must be >= 0 and --reps >= 1");
  const std::string dts = a.str("dtype", "bf16");
  LT2_CHECK(dts == "bf16" || dts == "f32", "--dtype: expected bf16 or f32, got '", dts, "'");
  const DType dt = dts == "bf16" ? DType::BF16 : DType::F32;
  std::vector<AttnShape> shapes;
  for (const auto& s : a.list("shapes", "4x4096x16x128,8x2048x12x64,1x16384x16x128")) shapes.push_back(parse_shape(s));
  std::vector<int64_t> windows;
  for (const auto& s : a.list("window", "0,512")) {
    char* end = nullptr;
    const long long w = std::strtoll(s.c_str(), &end, 10);
    LT2_CHECK(end && *end == '\0' && w >= 0, "--window: expected integers >= 0, got '", s, "'");
    windows.push_back(w);
  }

  std::vector<int64_t> dsa_k;
  for (const auto& s : a.list("dsa", "512")) {
    char* end = nullptr;
    const long long k = std::strtoll(s.c_str(), &end, 10);
    LT2_CHECK(end && *end == '\0' && k >= 0, "--dsa: expected integers >= 0, got '", s, "'");
    if (k > 0) dsa_k.push_back(k);
  }
  const std::string dsa_path = a.str("dsa-path", "both");
  LT2_CHECK(dsa_path == "gather" || dsa_path == "masked" || dsa_path == "auto" || dsa_path == "both",
            "--dsa-path: expected gather, masked, auto or both, got '", dsa_path, "'");
  const std::vector<std::string> dsa_paths =
      dsa_path == "both" ? std::vector<std::string>{"gather", "masked"} : std::vector<std::string>{dsa_path};
  const int64_t HI = a.integer("index-heads", 4), dI = a.integer("index-dim", 32);
  LT2_CHECK(HI >= 1 && dI >= 1, "--index-heads and --index-dim must be >= 1");

  std::printf("device %s, %s, median of %d after %d warm-up runs\n", cuda::device_name(0).c_str(), dts.c_str(), reps,
              warmup);
  std::printf("%-24s %16s %10s %9s %12s %9s %10s\n", "shape (B L H/Hkv D)", "window", "fwd ms", "TFLOP/s",
              "fwd+bwd ms", "TFLOP/s", "bwd ms");
  double l2_tbps = 0;  // measured at the first DSA row
  for (const AttnShape& s : shapes) {
    const Tensor q = normal_on_gpu({s.B, s.L, s.H, s.D}, 1, dt), k = normal_on_gpu({s.B, s.L, s.Hkv, s.D}, 2, dt);
    const Tensor v = normal_on_gpu({s.B, s.L, s.Hkv, s.D}, 3, dt), dout = normal_on_gpu({s.B, s.L, s.H, s.D}, 4, dt);
    const double scale = 1.0 / std::sqrt(double(s.D));
    const std::string name = cat(s.B, "x", s.L, "x", s.H, "/", s.Hkv, "x", s.D);
    for (int64_t w : windows) {
      Tensor lse, o, dq, dk, dv;
      const double fwd_ms = cuda::time_ms([&] { o = ops::attention(q, k, v, w, scale, &lse); }, warmup, reps);
      const double all_ms = cuda::time_ms(
          [&] {
            o = ops::attention(q, k, v, w, scale, &lse);
            ops::attention_backward(q, k, v, o, lse, dout, w, scale, dq, dk, dv);
          },
          warmup, reps);
      const double fwd_flops = 4.0 * double(s.B * s.H * s.D) * visible_pairs(s.L, w);
      std::printf("%-24s %16lld %10.3f %9.1f %12.3f %9.1f %10.3f\n", name.c_str(), (long long)w, fwd_ms,
                  fwd_flops / (fwd_ms * 1e9), all_ms, 3.5 * fwd_flops / (all_ms * 1e9), all_ms - fwd_ms);
    }
    for (int64_t k : dsa_k)
      for (const std::string& path : dsa_paths) {
        // The kernels read LT2_DSA_PATH (cuda/dsa_masked.cu); "auto" leaves the choice to them.
        if (path == "auto") unsetenv("LT2_DSA_PATH");
        else setenv("LT2_DSA_PATH", path.c_str(), 1);
        const DsaTimes t = time_dsa({s.B, s.L, s.H, s.Hkv, s.D, k, HI, dI}, dt, warmup, reps);
        unsetenv("LT2_DSA_PATH");
        // Query t attends to min(k, t + 1) keys: the pair count of a window of k.
        const double fwd_flops = 4.0 * double(s.B * s.H * s.D) * visible_pairs(s.L, k);
        const std::string label = cat("dsa(", k, ") ", path);
        std::printf("%-24s %16s %10.3f %9.1f %12.3f %9.1f %10.3f\n", name.c_str(), label.c_str(), t.fwd_ms,
                    fwd_flops / (t.fwd_ms * 1e9), t.all_ms, 3.5 * fwd_flops / (t.all_ms * 1e9), t.all_ms - t.fwd_ms);
        std::string parts = "    each op alone (ms):";
        for (const auto& [what, ms] : t.parts) parts += cat(" ", what, " ", ms, ";");
        std::printf("%s\n", parts.c_str());
        // The floor of any kernel that gathers: the selected K and V rows move into the SMs once a
        // pass (forward, and again in the backward), at best at the L2's read speed.
        if (l2_tbps == 0) l2_tbps = cuda::measure_l2_read_tbps();
        const double pass_gb = 2.0 * double(s.B * s.Hkv * s.D) * double(dtype_size(dt)) * visible_pairs(s.L, k) / 1e9;
        std::printf("    floor: the selected K, V rows are %.2f GB a pass; at the L2 read ceiling (%.1f TB/s) >= %.3f "
                    "ms fwd, >= %.3f ms fwd+bwd. Data movement alone, measured: gathering them %.3f ms a pass, the "
                    "backward's dK + dV atomics %.3f ms; fwd %.3f, fwd+bwd %.3f ms\n",
                    pass_gb, l2_tbps, pass_gb / l2_tbps, 2 * pass_gb / l2_tbps, t.gather_ms, t.scatter_ms, t.gather_ms,
                    2 * t.gather_ms + t.scatter_ms);
      }
  }
  return 0;
}

}  // namespace lt2::cli
