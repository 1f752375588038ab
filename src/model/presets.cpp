#include "model/presets.h"

#include "core/error.h"

namespace lt2 {

namespace {
struct Preset {
  const char* name;
  const char* json;
};

// default: the README's main job — a small Full+GDN hybrid (one full layer per four, T = 4)
//          that trains on two CPU cores in minutes on the fortunes corpus, bytes as tokens.
// tiny: for tests and smoke runs. small-125m: the reference model of PERFORMANCE.md.
const Preset kPresets[] = {
    {"default", R"J({
  "model": {"vocab_size": 256, "hidden_size": 128, "num_hidden_layers": 4, "num_loops": 4,
            "intermediate_size": 384, "pattern": "interleave(full,gdn,1:3)",
            "num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": 32, "output_gate": "channel",
            "gdn_num_heads": 2, "gdn_head_k_dim": 48, "gdn_head_v_dim": 96,
            "max_position_embeddings": 1024},
  "train": {"batch_size": 16, "seq_len": 128, "steps": 400, "lr": 3e-3, "warmup_steps": 40,
            "min_lr_ratio": 0.1, "eval_every": 50, "eval_batches": 8, "save_every": 100}
})J"},
    {"tiny", R"J({
  "model": {"vocab_size": 256, "hidden_size": 32, "num_hidden_layers": 2, "num_loops": 2,
            "intermediate_size": 64, "pattern": "gdn,full", "num_attention_heads": 2, "num_key_value_heads": 1,
            "head_dim": 16, "gdn_num_heads": 2, "gdn_head_k_dim": 16, "gdn_head_v_dim": 32,
            "max_position_embeddings": 256},
  "train": {"batch_size": 4, "seq_len": 32, "steps": 20, "lr": 3e-3, "warmup_steps": 5,
            "eval_every": 10, "eval_batches": 2, "save_every": 10}
})J"},
    {"small-125m", R"J({
  "model": {"vocab_size": 32768, "hidden_size": 768, "num_hidden_layers": 10, "num_loops": 4,
            "intermediate_size": 2048, "pattern": "interleave(full,gdn,1:4)",
            "num_attention_heads": 12, "num_key_value_heads": 12, "head_dim": 64, "output_gate": "channel",
            "gdn_num_heads": 4, "gdn_head_k_dim": 128, "gdn_head_v_dim": 256,
            "max_position_embeddings": 8192, "tokenizer": "bytes"},
  "train": {"batch_size": 16, "seq_len": 2048, "steps": 1000, "lr": 1e-3, "warmup_steps": 100}
})J"},
};
}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> n;
  for (const auto& p : kPresets) n.push_back(p.name);
  return n;
}

bool is_preset(const std::string& name) {
  for (const auto& p : kPresets)
    if (name == p.name) return true;
  return false;
}

json::Value preset(const std::string& name) {
  for (const auto& p : kPresets)
    if (name == p.name) return json::Value::parse(p.json, std::string("preset ") + p.name);
  std::string names;
  for (const auto& n : preset_names()) names += (names.empty() ? "" : ", ") + n;
  fail(cat("unknown preset '", name, "' (presets: ", names, ")"));
}

json::Value load_run_config(const std::string& name_or_path) {
  if (is_preset(name_or_path)) return preset(name_or_path);
  return json::read_file(name_or_path);
}

}  // namespace lt2
