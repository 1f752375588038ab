// lt2 bench gdn: the Gated DeltaNet core on the GPU, forward and forward + backward, timed with
// CUDA events (median of --reps after --warmup), with the achieved TFLOP/s. Rows: the chunked
// tensor-core kernels (cuda/gdn_chunked.cu) for each --value-tile, then the token-by-token
// recurrence they replace (forced with LT2_GDN_RECURRENT=1) unless --no-recurrent. The row
// "chunked st" is the training path: the forward keeps its per-chunk states and the backward
// reuses them (only the reverse scan runs), at the automatic value tile.
//
// FLOPs are the chunked algorithm's matrix products per (batch, value head, chunk of C = 64
// tokens): K Kᵀ and Q Kᵀ (2·C²·K each); K S, Q S and the state update Kᵀ Δ (2·C·K·V each);
// Au X and M Δ (2·C²·V each). Per token that is 6·K·V + 4·C·(K + V). Forward + backward counts
// three forwards (the usual training convention). The recurrence's rows use the same count, so
// the TFLOP/s columns compare times directly.
//
// --decode times the decode step instead: ops::gdn_step (cuda/gdn_step.cu) on a batch of
// sequences, whose cost is reading and writing the fp32 state [B, H, K, V] once. It reports
// GB/s of state read + written against the card's measured device-to-device copy bandwidth,
// and, for comparison, the path it replaced (the L = 1 recurrence writing a new state, then a
// copy back). Each timed run steps through enough separate states (>= 256 MiB together) that
// no state is still in the L2 cache when its turn comes, as in a real model's many layers.
//
// --conv times GDN's short convolution + SiLU (ops::conv_silu, width 4, F32 taps) and its
// backward on [B, L, C] activations, and the same with the per-head L2 norm of q and k
// (ops::conv_silu_l2norm, heads of 128): GB/s of activations moved (forward: x read, y
// written; backward: x and dy read, dx written) against the copy bandwidth.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/rng.h"
#include "cuda/runtime.h"
#include "ops/ops.h"
#if LT2_HAVE_CUDA
#include "cuda/gdn_chunked.h"
#endif

namespace lt2::cli {

#if LT2_HAVE_CUDA  // the helpers serve only the CUDA build
namespace {

struct GdnBenchShape {
  int64_t B, L, H, K, V;  // value heads = H
};

// "BxLxHxKxV".
GdnBenchShape parse_gdn_shape(const std::string& s) {
  const std::vector<int64_t> v = Args::dims(s, "shapes", "BxLxHxKxV");
  LT2_CHECK(v.size() == 5, "--shapes: '", s, "' needs 5 numbers (BxLxHxKxV)");
  return {v[0], v[1], v[2], v[3], v[4]};
}

// Random F32 values on the CPU: normal rows scaled to L2 norm `row_norm` (q, k as the layer
// feeds them; 0 = no scaling), then moved to the GPU in dtype dt.
Tensor random_rows(const Shape& shape, uint64_t seed, double row_norm, DType dt) {
  Tensor t = Tensor::empty(shape, DType::F32);
  const CounterRng rng{seed, 7};
  float* p = t.data<float>();
  const int64_t n = shape.back(), rows = t.numel() / n;
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double x = rng.normal(uint64_t(r * n + i));
      p[r * n + i] = float(x);
      ss += x * x;
    }
    if (row_norm > 0)
      for (int64_t i = 0; i < n; ++i) p[r * n + i] = float(p[r * n + i] * row_norm / std::sqrt(ss + 1e-6));
  }
  return t.to(Device::CUDA, dt);
}

// Gates in the model's ranges: beta = sigmoid(x) in (0, 1), g = -softplus(x) <= 0.
Tensor random_gate(const Shape& shape, uint64_t seed, bool is_beta) {
  Tensor t = Tensor::empty(shape, DType::F32);
  const CounterRng rng{seed, 9};
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double x = rng.normal(uint64_t(i));
    p[i] = float(is_beta ? 1.0 / (1.0 + std::exp(-x)) : -std::log1p(std::exp(x)));
  }
  return t.to(Device::CUDA, DType::F32);
}

// "HxKxV" (value heads = key heads = H).
struct DecodeShape {
  int64_t H, K, V;
};
DecodeShape parse_decode_shape(const std::string& s) {
  const std::vector<int64_t> v = Args::dims(s, "decode-shapes", "HxKxV");
  LT2_CHECK(v.size() == 3, "--decode-shapes: '", s, "' needs 3 numbers (HxKxV)");
  return {v[0], v[1], v[2]};
}

void bench_decode(const Args& a, DType dt, const std::string& dts, int warmup, int reps) {
  const int64_t B = a.integer("batch", 64);
  LT2_CHECK(B >= 1, "--batch must be >= 1");
  const double copy_gbps = cuda::measure_copy_gbps();
  std::printf("device %s, decode step, batch %lld, q/k/v %s, state fp32; median of %d after %d warm-up runs;\n"
              "measured device-to-device copy: %.0f GB/s (read + write)\n",
              cuda::device_name(0).c_str(), (long long)B, dts.c_str(), reps, warmup, copy_gbps);
  std::printf("%-14s %-22s %7s %10s %9s %8s %8s\n", "HxKxV", "path", "states", "state MiB", "us/step", "GB/s",
              "% copy");
  for (const auto& item : a.list("decode-shapes", "6x128x256,16x128x128")) {
    const DecodeShape s = parse_decode_shape(item);
    const Tensor q = random_rows({B, 1, s.H, s.K}, 11, 1.0 / std::sqrt(double(s.K)), dt);
    const Tensor k = random_rows({B, 1, s.H, s.K}, 12, 1.0, dt);
    const Tensor v = random_rows({B, 1, s.H, s.V}, 13, 0.0, dt);
    const Tensor beta = random_gate({B, 1, s.H}, 14, true), g = random_gate({B, 1, s.H}, 15, false);
    const Tensor h0 = random_rows({B, s.H, s.K, s.V}, 16, 0.0, DType::F32);
    const double state_bytes = double(h0.nbytes());
    const int64_t n_states = std::clamp<int64_t>(int64_t(std::ceil(256.0 * (1 << 20) / state_bytes)), 2, 64);
    std::vector<Tensor> states;
    for (int64_t i = 0; i < n_states; ++i) states.push_back(h0.clone());
    auto report = [&](const char* path, double ms_per_step) {
      const double gbps = 2.0 * state_bytes / (ms_per_step * 1e-3) / 1e9;
      std::printf("%-14s %-22s %7lld %10.1f %9.1f %8.0f %7.1f%%\n", item.c_str(), path, (long long)n_states,
                  state_bytes / (1 << 20), ms_per_step * 1e3, gbps, 100.0 * gbps / copy_gbps);
      std::fflush(stdout);
    };
    Tensor o;
    const double step_ms = cuda::time_ms(
        [&] {
          for (Tensor& st : states) o = ops::gdn_step(q, k, v, beta, g, st);
        },
        warmup, reps);
    report("gdn_step (in place)", step_ms / double(n_states));
    if (!a.has("no-recurrent")) {
      const double old_ms = cuda::time_ms(
          [&] {
            for (Tensor& st : states) {
              Tensor hT;
              o = ops::gdn(q, k, v, beta, g, st, &hT, /*chunked=*/false);
              st.copy_from(hT);
            }
          },
          warmup, reps);
      report("gdn L=1 + state copy", old_ms / double(n_states));
    }
  }
  std::printf("GB/s counts the state read once and written once (2 x state bytes per step) for both rows;\n"
              "the second row actually moves the state four times (read, write hT, copy back).\n");
}

// "BxLxC".
std::vector<int64_t> parse_conv_shape(const std::string& s) {
  const std::vector<int64_t> v = Args::dims(s, "conv-shapes", "BxLxC");
  LT2_CHECK(v.size() == 3, "--conv-shapes: '", s, "' needs 3 numbers (BxLxC)");
  return v;
}

void bench_conv(const Args& a, DType dt, const std::string& dts, int warmup, int reps) {
  const double copy_gbps = cuda::measure_copy_gbps();
  std::printf("device %s, short conv (width 4) + SiLU, %s activations, F32 taps; median of %d after %d warm-up runs;\n"
              "measured device-to-device copy: %.0f GB/s (read + write)\n",
              cuda::device_name(0).c_str(), dts.c_str(), reps, warmup, copy_gbps);
  std::printf("%-18s %-20s %9s %8s %7s %9s %8s %7s\n", "BxLxC", "op", "fwd us", "GB/s", "% copy", "bwd us", "GB/s",
              "% copy");
  for (const auto& item : a.list("conv-shapes", "16x2048x512,16x2048x1024")) {
    const std::vector<int64_t> s = parse_conv_shape(item);
    const Tensor x = random_rows({s[0], s[1], s[2]}, 21, 0.0, dt), dy = random_rows({s[0], s[1], s[2]}, 22, 0.0, dt);
    const Tensor w = random_rows({s[2], 4}, 23, 0.0, DType::F32);
    Tensor dw = Tensor::zeros({s[2], 4}, DType::F32, Device::CUDA), y, dx;
    const double bytes = double(x.nbytes());
    auto report = [&](const char* op, double fwd_ms, double bwd_ms) {
      auto gbps = [&](double n, double ms) { return n * bytes / (ms * 1e-3) / 1e9; };
      std::printf("%-18s %-20s %9.1f %8.0f %6.1f%% %9.1f %8.0f %6.1f%%\n", item.c_str(), op, fwd_ms * 1e3,
                  gbps(2, fwd_ms), 100.0 * gbps(2, fwd_ms) / copy_gbps, bwd_ms * 1e3, gbps(3, bwd_ms),
                  100.0 * gbps(3, bwd_ms) / copy_gbps);
      std::fflush(stdout);
    };
    report("conv_silu", cuda::time_ms([&] { y = ops::conv_silu(x, w); }, warmup, reps),
           cuda::time_ms([&] { dx = ops::conv_silu_backward(x, w, dy, dw); }, warmup, reps));
    // GDN's q / k path (heads of 128): the same traffic, the norm fused in.
    if (s[2] % 128 == 0)
      report("conv_silu_l2norm 128", cuda::time_ms([&] { y = ops::conv_silu_l2norm(x, w, 128, 1.0); }, warmup, reps),
             cuda::time_ms([&] { dx = ops::conv_silu_l2norm_backward(x, w, 128, 1.0, dy, dw); }, warmup, reps));
  }
}

}  // namespace
#endif

int bench_gdn(int argc, char** argv) {
  Args a("lt2 bench gdn",
         {{"shapes", true, "comma list of BxLxHxKxV, value heads = H (default 8x2048x6x128x256,4x4096x16x128x128)"},
          {"dtype", true, "bf16 or f32 (default bf16)"},
          {"value-tile", true, "comma list of scan value tiles: 0 = auto, 32, 64 (default 0,32,64)"},
          {"no-recurrent", false, "skip timing the token-by-token recurrence"},
          {"warmup", true, "untimed runs first (default 2)"},
          {"reps", true, "timed runs, the median is reported (default 10)"},
          {"decode", false,
           "time the decode step (gdn_step: one token per sequence, fp32 state updated in place) instead"},
          {"batch", true, "--decode: sequences per step (default 64)"},
          {"decode-shapes", true, "--decode: comma list of HxKxV, value heads = H (default 6x128x256,16x128x128)"},
          {"conv", false, "time the short conv + SiLU (forward, backward) instead"},
          {"conv-shapes", true, "--conv: comma list of BxLxC (default 16x2048x512,16x2048x1024)"}},
         argc, argv, 3);
  if (a.help()) {
    std::printf(
        "usage: lt2 bench gdn [flags]\n\nGated DeltaNet core forward and forward+backward on the GPU.\n\n"
        "With --decode: the decode step instead, for --batch sequences and each of --decode-shapes. The step\n"
        "reads and writes the fp32 state [batch, H, K, V] once, so it is bandwidth-bound; the table gives\n"
        "microseconds per step (median of --reps after --warmup, CUDA events; each run steps through several\n"
        "states, >= 256 MiB together, so none is served from L2), GB/s of state read + written, and that as a\n"
        "percentage of the card's measured device-to-device copy bandwidth. A second row times the path the\n"
        "step replaced (L = 1 recurrence to a new state, then a copy back) unless --no-recurrent.\n\n"
        "With --conv: the short conv + SiLU (width 4) and its backward on each of --conv-shapes, with GB/s of\n"
        "activations moved (forward 2, backward 3 tensors of [B, L, C]) against the measured copy bandwidth.\n\n%s",
        a.usage().c_str());
    return 0;
  }
  LT2_CHECK(a.positionals().empty(), "lt2 bench gdn: unexpected argument '",
            a.positionals().empty() ? "" : a.positionals()[0], "'");
  LT2_CHECK(cuda::available(), "lt2 bench gdn: needs a CUDA GPU (none found or built without CUDA)");
#if LT2_HAVE_CUDA
  const int warmup = int(a.integer("warmup", 2)), reps = int(a.integer("reps", 10));
  LT2_CHECK(warmup >= 0 && reps >= 1, "--warmup must be >= 0 and --reps >= 1");
  const std::string dts = a.str("dtype", "bf16");
  LT2_CHECK(dts == "bf16" || dts == "f32", "--dtype: expected bf16 or f32, got '", dts, "'");
  const DType dt = dts == "bf16" ? DType::BF16 : DType::F32;
  if (a.has("decode")) {
    bench_decode(a, dt, dts, warmup, reps);
    return 0;
  }
  if (a.has("conv")) {
    bench_conv(a, dt, dts, warmup, reps);
    return 0;
  }
  std::vector<int> tiles;
  for (const auto& s : a.list("value-tile", "0,32,64")) {
    LT2_CHECK(s == "0" || s == "32" || s == "64", "--value-tile: expected 0, 32 or 64, got '", s, "'");
    tiles.push_back(std::atoi(s.c_str()));
  }
  std::vector<GdnBenchShape> shapes;
  for (const auto& s : a.list("shapes", "8x2048x6x128x256,4x4096x16x128x128")) shapes.push_back(parse_gdn_shape(s));

  std::printf("device %s, %s, median of %d after %d warm-up runs; TFLOP/s from 6KV + 256(K+V) per token and head,\n"
              "fwd+bwd counted as 3 forwards\n",
              cuda::device_name(0).c_str(), dts.c_str(), reps, warmup);
  std::printf("%-22s %-12s %10s %9s %12s %9s %10s\n", "shape (BxLxHxKxV)", "path", "fwd ms", "TFLOP/s", "fwd+bwd ms",
              "TFLOP/s", "bwd ms");
  for (const GdnBenchShape& s : shapes) {
    const Tensor q = random_rows({s.B, s.L, s.H, s.K}, 1, 1.0 / std::sqrt(double(s.K)), dt);
    const Tensor k = random_rows({s.B, s.L, s.H, s.K}, 2, 1.0, dt);
    const Tensor v = random_rows({s.B, s.L, s.H, s.V}, 3, 0.0, dt);
    const Tensor dout = random_rows({s.B, s.L, s.H, s.V}, 4, 0.0, dt);
    const Tensor beta = random_gate({s.B, s.L, s.H}, 5, true), g = random_gate({s.B, s.L, s.H}, 6, false);
    const Tensor none;
    const double fwd_flops =
        double(s.B * s.L * s.H) * (6.0 * double(s.K * s.V) + 4.0 * 64.0 * double(s.K + s.V));
    char name[64];
    std::snprintf(name, sizeof name, "%lldx%lldx%lldx%lldx%lld", (long long)s.B, (long long)s.L, (long long)s.H,
                  (long long)s.K, (long long)s.V);
    auto report = [&](const std::string& path, double fwd_ms, double all_ms) {
      std::printf("%-22s %-12s %10.3f %9.1f %12.3f %9.1f %10.3f\n", name, path.c_str(), fwd_ms,
                  fwd_flops / (fwd_ms * 1e9), all_ms, 3.0 * fwd_flops / (all_ms * 1e9), all_ms - fwd_ms);
      std::fflush(stdout);
    };
    if (cuda::gdn_chunked_supported(dt, s.K, s.V)) {
      for (int vt : tiles) {
        Tensor o;
        GdnGrads gr;
        const double fwd_ms = cuda::time_ms([&] { o = cuda::gdn_chunked_forward(q, k, v, beta, g, none, nullptr, vt); },
                                            warmup, reps);
        const double all_ms = cuda::time_ms(
            [&] {
              o = cuda::gdn_chunked_forward(q, k, v, beta, g, none, nullptr, vt);
              gr = cuda::gdn_chunked_backward(q, k, v, beta, g, none, dout, none, vt);
            },
            warmup, reps);
        report(vt == 0 ? "chunked" : "chunked vt" + std::to_string(vt), fwd_ms, all_ms);
        if (vt == 0) {  // the training path: the forward keeps its per-chunk states, the backward reuses them
          Tensor states;
          const double fwd_st_ms = cuda::time_ms(
              [&] { o = cuda::gdn_chunked_forward(q, k, v, beta, g, none, nullptr, vt, &states); }, warmup, reps);
          const double all_st_ms = cuda::time_ms(
              [&] {
                o = cuda::gdn_chunked_forward(q, k, v, beta, g, none, nullptr, vt, &states);
                gr = cuda::gdn_chunked_backward(q, k, v, beta, g, none, dout, none, vt, states);
              },
              warmup, reps);
          report("chunked st", fwd_st_ms, all_st_ms);
        }
      }
    } else {
      std::printf("%-22s %-12s (not supported for this K / dtype)\n", name, "chunked");
    }
    if (!a.has("no-recurrent")) {
      setenv("LT2_GDN_RECURRENT", "1", 1);
      Tensor o;
      GdnGrads gr;
      const double fwd_ms = cuda::time_ms([&] { o = ops::gdn(q, k, v, beta, g, none, nullptr, true); }, warmup, reps);
      const double all_ms = cuda::time_ms(
          [&] {
            o = ops::gdn(q, k, v, beta, g, none, nullptr, true);
            gr = ops::gdn_backward(q, k, v, beta, g, none, dout, none, true);
          },
          warmup, reps);
      unsetenv("LT2_GDN_RECURRENT");
      report("recurrent", fwd_ms, all_ms);
    }
  }
#endif
  return 0;
}

}  // namespace lt2::cli
