#include "cli/run_config.h"

#include "model/presets.h"

namespace lt2::cli {

RunConfig load_run(const std::string& name) {
  const json::Value rc = load_run_config(name);
  RunConfig r;
  r.ctx = is_preset(name) ? "preset " + name : name;
  LT2_CHECK(rc.is_object() && rc.find("model"), r.ctx, ": missing field 'model'");
  for (const auto& [k, _] : rc.items())
    LT2_CHECK(k == "model" || k == "train", r.ctx, ": unknown field '", k, "' (expected 'model' and 'train')");
  r.model = ModelConfig::from_json(*rc.find("model"), r.ctx + ": model");
  if (rc.find("train")) r.train = TrainConfig::from_json(*rc.find("train"), r.ctx + ": train");
  return r;
}

}  // namespace lt2::cli
