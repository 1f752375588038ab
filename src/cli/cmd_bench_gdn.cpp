// lt2 bench gdn: the Gated DeltaNet core on the GPU, forward and forward + backward, timed with
// CUDA events (median of --reps after --warmup), with the achieved TFLOP/s. Rows: the chunked
// tensor-core kernels (cuda/gdn_chunked.cu) for each --value-tile, then the token-by-token
// recurrence they replace (forced with LT2_GDN_RECURRENT=1) unless --no-recurrent.
//
// FLOPs are the chunked algorithm's matrix products per (batch, value head, chunk of C = 64
// tokens): K Kᵀ and Q Kᵀ (2·C²·K each); K S, Q S and the state update Kᵀ Δ (2·C·K·V each);
// Au X and M Δ (2·C²·V each). Per token that is 6·K·V + 4·C·(K + V). Forward + backward counts
// three forwards (the usual training convention). The recurrence's rows use the same count, so
// the TFLOP/s columns compare times directly.
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

}  // namespace
#endif

int bench_gdn(int argc, char** argv) {
  Args a("lt2 bench gdn",
         {{"shapes", true, "comma list of BxLxHxKxV, value heads = H (default 8x2048x6x128x256,4x4096x16x128x128)"},
          {"dtype", true, "bf16 or f32 (default bf16)"},
          {"value-tile", true, "comma list of scan value tiles: 0 = auto, 32, 64 (default 0,32,64)"},
          {"no-recurrent", false, "skip timing the token-by-token recurrence"},
          {"warmup", true, "untimed runs first (default 2)"},
          {"reps", true, "timed runs, the median is reported (default 10)"}},
         argc, argv, 3);
  if (a.help()) {
    std::printf("usage: lt2 bench gdn [flags]\n\nGated DeltaNet core forward and forward+backward on the GPU.\n\n%s",
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
