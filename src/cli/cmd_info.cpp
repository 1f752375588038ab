// lt2 info: parameters, FLOPs per token (training, decode) and cache/state bytes of a config.
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/run_config.h"
#include "model/checkpoint.h"
#include "model/info.h"

namespace lt2::cli {

ModelConfig config_from_flags(const Args& a) {
  if (a.has("model")) return load_model_config(resolve_checkpoint_dir(a.str("model")));
  return load_run(a.str("config", "default")).model;
}

static std::string human_bytes(double b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) b /= 1024, ++i;
  char s[32];
  std::snprintf(s, sizeof s, "%.2f %s", b, u[i]);
  return s;
}

int cmd_info(int argc, char** argv) {
  Args a("lt2 info", {{"config", true, "preset or JSON run config (default: default)"},
                      {"model", true, "checkpoint or run directory instead of a config"},
                      {"loops", true, "loop count T to cost (default: the config's)"},
                      {"context", true, "context length for decode cost and caches (default 2048)"},
                      {"seq-len", true, "training sequence length (default: the context)"},
                      {"dtype", true, "bytes of cached K/V activations: f32 (CPU, default) or bf16"},
                      {"json", false, "print JSON instead of a table"}},
         argc, argv, 2);
  if (a.help()) {
    std::printf("usage: lt2 info [--config NAME|FILE | --model DIR] [flags]\n\n%s", a.usage().c_str());
    return 0;
  }
  const ModelConfig cfg = config_from_flags(a);
  const int64_t T = a.integer("loops", cfg.num_loops), ctx = a.integer("context", 2048);
  LT2_CHECK(T >= 1 && ctx >= 1, "--loops and --context must be >= 1");
  const std::string dt = a.str("dtype", "f32");
  LT2_CHECK(dt == "f32" || dt == "bf16", "--dtype must be f32 or bf16, got '", dt, "'");
  const ModelCost c = model_cost(cfg, T, ctx, a.integer("seq-len", ctx), dt == "f32" ? 4 : 2);
  if (a.has("json")) {
    json::Value v = json::Value::object();
    v.set("params", c.params);
    v.set("params_non_embedding", c.params_non_embedding);
    v.set("loops", c.loops);
    v.set("context", c.context);
    v.set("train_flops_per_token", c.train_flops_per_token);
    v.set("decode_flops_per_token", c.decode_flops_per_token);
    v.set("cache_bytes", c.cache_bytes);
    json::Value ms = json::Value::array();
    for (const auto& m : c.mixers) {
      json::Value o = json::Value::object();
      o.set("mixer", m.mixer);
      o.set("layers", m.layers);
      o.set("cache_bytes_per_loop_layer", m.cache_bytes);
      o.set("cache_grows_with_context", m.cache_grows);
      ms.push_back(o);
    }
    v.set("mixers", ms);
    std::printf("%s\n", v.dump(2).c_str());
    return 0;
  }
  std::printf("parameters        %.3fM (%.3fM without embeddings and LM head)\n", c.params / 1e6,
              c.params_non_embedding / 1e6);
  std::printf("loops T           %lld over %lld shared layers\n", (long long)T, (long long)cfg.num_hidden_layers);
  std::printf("train FLOPs/token %.3f GFLOP (fwd+bwd, all loops; %.0f%% in GEMMs)\n", c.train_flops_per_token / 1e9,
              100 * c.train_matmul_flops_per_token / c.train_flops_per_token);
  std::printf("decode FLOPs/token %.3f GFLOP at context %lld\n", c.decode_flops_per_token / 1e9, (long long)ctx);
  std::printf("cache per sequence %s at context %lld (%lld caches: one per loop x layer)\n\n",
              human_bytes(c.cache_bytes).c_str(), (long long)ctx, (long long)(T * cfg.num_hidden_layers));
  std::printf("%-14s %6s %22s %14s\n", "mixer", "layers", "cache per (loop,layer)", "grows with L");
  for (const auto& m : c.mixers)
    std::printf("%-14s %6d %22s %14s\n", m.mixer.c_str(), m.layers, human_bytes(m.cache_bytes).c_str(),
                m.cache_grows ? "yes" : "no");
  return 0;
}

}  // namespace lt2::cli
