// lt2 bench gemm: the model's projection GEMMs on the GPU (cuBLASLt, or cuda/linear_narrow.cu
// for N <= 8; BF16 operands, fp32 accumulation), timed alone with CUDA events (median of
// --reps after --warmup): for each
// projection of the config's layers, the forward y = x Wᵀ, the input gradient dx = dy W and
// the weight gradient dW += dyᵀ x (fp32, as training accumulates it), at M = batch × seq_len
// rows. "fused" rows time the concatenation of a layer's input projections as one GEMM, the
// measure of what merging them would buy; where the parts are equally wide (what the model
// fuses), also the forward as the model runs it: linear_split, one strided-batched GEMM. The step total weighs each row by its calls per
// training step (forward twice with recompute_loops, minus the loops it keeps).
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/run_config.h"
#include "core/error.h"
#include "cuda/runtime.h"
#include "model/config.h"
#if LT2_HAVE_CUDA
#include "cli/bench_inputs.h"
#include "cuda/gemm.h"
#include "ops/ops.h"
#endif

namespace lt2::cli {

#if LT2_HAVE_CUDA
namespace {

struct Projection {
  std::string name;
  int64_t n, k;      // weight [n, k]: k inputs, n outputs
  int64_t layers;    // how many layers of the stack have it
  bool input = true;  // an input projection (what the fused row merges)
  bool fused = false;
  int64_t parts = 0;  // a fused row of equal parts: the model's forward is linear_split (batched)
};

// The config's projections (names as in the checkpoint), each with its layer count.
std::vector<Projection> projections(const ModelConfig& c) {
  std::vector<Projection> p;
  const int64_t d = c.hidden_size, gdn = c.count(MixerSpec::Gdn);
  const int64_t attn = c.count(MixerSpec::Full) + c.count(MixerSpec::Window) + c.count(MixerSpec::Dsa);
  if (gdn > 0) {
    const int64_t qk = c.gdn_num_heads * c.gdn_head_k_dim, v = c.gdn_num_v_heads * c.gdn_head_v_dim;
    const int64_t hv = c.gdn_num_v_heads;
    p.push_back({"gdn q_proj", qk, d, gdn});
    p.push_back({"gdn k_proj", qk, d, gdn});
    p.push_back({"gdn v_proj", v, d, gdn});
    p.push_back({"gdn g_proj", v, d, gdn});
    p.push_back({"gdn a_proj", hv, d, gdn});
    p.push_back({"gdn b_proj", hv, d, gdn});
    p.push_back({"gdn o_proj", d, v, gdn, false});
    p.push_back({"gdn q,k,v,g,a,b", 2 * qk + 2 * v + 2 * hv, d, gdn, true, true});
  }
  if (attn > 0) {
    const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
    const int64_t g = c.output_gate == "channel" ? q : c.output_gate == "head" ? c.num_attention_heads : 0;
    p.push_back({"attn q_proj", q, d, attn});
    p.push_back({"attn k_proj", kv, d, attn});
    p.push_back({"attn v_proj", kv, d, attn});
    if (g > 0) p.push_back({"attn g_proj", g, d, attn});
    p.push_back({"attn o_proj", d, q, attn, false});
    const bool equal = kv == q && (g == 0 || g == q);
    p.push_back({"attn q,k,v,g", q + 2 * kv + g, d, attn, true, true, equal ? (g > 0 ? 4 : 3) : 0});
  }
  const int64_t ffn = c.num_hidden_layers, f = c.intermediate_size;
  p.push_back({"ffn gate_proj", f, d, ffn});
  p.push_back({"ffn up_proj", f, d, ffn});
  p.push_back({"ffn down_proj", d, f, ffn, false});
  p.push_back({"ffn gate,up", 2 * f, d, ffn, true, true, 2});
  return p;
}


}  // namespace
#endif

int bench_gemm(int argc, char** argv) {
  Args a("lt2 bench gemm", {{"config", true, "preset or JSON run config (default: small-125m)"},
                            {"tokens", true, "rows M of every GEMM (default: the config's batch_size x seq_len)"},
                            {"warmup", true, "untimed runs first (default 2)"},
                            {"reps", true, "timed runs, the median is reported (default 10)"},
                            {"algos", true, "also time the cuBLASLt heuristic's first N algorithms per GEMM and print the "
                                            "fastest against the first, which lt2 uses (default 0: off)"}},
         argc, argv, 3);
  if (a.help()) {
    std::printf("usage: lt2 bench gemm [flags]\n\nThe config's projection GEMMs alone on the GPU (BF16; cuBLASLt, "
                "or lt2's own kernels for N <= 8): "
                "forward, input gradient and weight\ngradient per projection, TFLOP/s, and the time per training "
                "step they add up to.\n\n%s",
                a.usage().c_str());
    return 0;
  }
  LT2_CHECK(a.positionals().empty(), "lt2 bench gemm: unexpected argument '",
            a.positionals().empty() ? "" : a.positionals()[0], "'");
  LT2_CHECK(cuda::available(), "lt2 bench gemm: needs a CUDA GPU (none found or built without CUDA)");
#if LT2_HAVE_CUDA
  const RunConfig rc = load_run(a.str("config", "small-125m"));
  const ModelConfig& c = rc.model;
  const int64_t M = a.integer("tokens", int64_t(rc.train.batch_size) * rc.train.seq_len);
  const int warmup = int(a.integer("warmup", 2)), reps = int(a.integer("reps", 10));
  const int algos = int(a.integer("algos", 0));
  LT2_CHECK(algos >= 0 && algos <= 64, "--algos must be in 0..64");
  LT2_CHECK(M >= 1 && warmup >= 0 && reps >= 1, "--tokens and --reps must be >= 1 and --warmup >= 0");
  // Forward calls per layer and step: the forward, plus the recompute of every loop not kept.
  const int64_t T = c.num_loops;
  const int64_t fwd_calls = T + (c.recompute_loops ? T - c.recompute_keep_loops : 0), bwd_calls = T;
  std::printf("device %s, BF16 operands, fp32 accumulation, M = %lld rows; median of %d after %d warm-up runs\n"
              "per step: forward x %lld, backward x %lld per layer (T %lld, recompute %s)\n",
              cuda::device_name(0).c_str(), (long long)M, reps, warmup, (long long)fwd_calls, (long long)bwd_calls,
              (long long)T, c.recompute_loops ? "on" : "off");
  std::printf("%-18s %6s %6s %7s %9s %8s %9s %8s %9s %8s %11s\n", "projection", "N", "K", "layers", "fwd ms",
              "TFLOP/s", "dx ms", "TFLOP/s", "dW ms", "TFLOP/s", "step ms");
  double total = 0, inputs = 0;  // inputs: this group's separate input projections so far
  for (const Projection& p : projections(c)) {
    const Tensor x = normal_on_gpu({M, p.k}, 1, DType::BF16), w = normal_on_gpu({p.n, p.k}, 2, DType::BF16);
    const Tensor dy = normal_on_gpu({M, p.n}, 3, DType::BF16);
    Tensor y = Tensor::empty({M, p.n}, DType::BF16, Device::CUDA);
    Tensor dx = Tensor::empty({M, p.k}, DType::BF16, Device::CUDA);
    Tensor dw = Tensor::zeros({p.n, p.k}, DType::F32, Device::CUDA);
    // The model's calls: the forward, then the two halves of linear_backward (cuBLASLt, or
    // linear_narrow.cu's kernels for N <= 8).
    const double f = cuda::time_ms([&] { y = ops::linear(x, w); }, warmup, reps);
    const double gx = cuda::time_ms([&] { dx = ops::linear_backward_dx(w, dy); }, warmup, reps);
    const double gw = cuda::time_ms([&] { ops::linear_backward_dw(x, dy, dw); }, warmup, reps);
    const double flop = 2.0 * double(M) * double(p.n) * double(p.k);
    const double step = double(p.layers) * (double(fwd_calls) * f + double(bwd_calls) * (gx + gw));
    std::printf("%-18s %6lld %6lld %7lld %9.3f %8.1f %9.3f %8.1f %9.3f %8.1f %11.2f", p.name.c_str(),
                (long long)p.n, (long long)p.k, (long long)p.layers, f, flop / (f * 1e9), gx, flop / (gx * 1e9), gw,
                flop / (gw * 1e9), step);
    if (p.fused) {
      std::printf("  one GEMM instead of the %.2f ms of its separate input projections", inputs);
      if (p.parts > 0) {
        Tensor ys;
        const double fs = cuda::time_ms([&] { ys = ops::linear_split(x, w, p.parts); }, warmup, reps);
        std::printf("; fwd as linear_split (%lld parts) %.3f ms", (long long)p.parts, fs);
      }
      std::printf("\n");
      inputs = 0;
    } else {
      std::printf("\n");
      total += step;
      if (p.input) inputs += step;
    }
    if (algos > 0) {
      // The three GEMMs of cuda/linear.cu through each candidate algorithm: (first, fastest, its rank).
      auto best = [&](const std::vector<double>& ms) {
        const size_t i = size_t(std::min_element(ms.begin(), ms.end()) - ms.begin());
        return cat(ms[0], " -> ", ms[i], " (#", i + 1, " of ", ms.size(), ")");
      };
      const auto f_ms = cuda::gemm_algo_ms(false, true, M, p.n, p.k, x.bytes(), p.k, w.bytes(), p.k, DType::BF16, 0.f,
                                           y.bytes(), p.n, DType::BF16, algos, reps);
      const auto x_ms = cuda::gemm_algo_ms(false, false, M, p.k, p.n, dy.bytes(), p.n, w.bytes(), p.k, DType::BF16,
                                           0.f, dx.bytes(), p.k, DType::BF16, algos, reps);
      const auto w_ms = cuda::gemm_algo_ms(true, false, p.n, p.k, M, dy.bytes(), p.n, x.bytes(), p.k, DType::BF16,
                                           1.f, dw.bytes(), p.k, DType::F32, algos, reps);
      std::printf("    algorithms (ms, first -> fastest): fwd %s, dx %s, dW %s\n", best(f_ms).c_str(),
                  best(x_ms).c_str(), best(w_ms).c_str());
    }
    std::fflush(stdout);
  }
  std::printf("step total (separate projections, as the model runs them): %.1f ms\n", total);
#endif
  return 0;
}

}  // namespace lt2::cli
