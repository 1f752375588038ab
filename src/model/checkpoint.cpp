#include "model/checkpoint.h"

#include <set>

#include "core/fs.h"
#include "core/safetensors.h"

namespace lt2 {

std::unique_ptr<Tokenizer> model_tokenizer(const ModelConfig& cfg, const std::string& dir) {
  auto tok = load_tokenizer(cfg.tokenizer, dir);
  check_tokenizer_vocab(*tok, cfg.vocab_size, dir);
  return tok;
}

void save_model(const std::string& dir, const LoopedModel& model, const std::string& tokenizer_file) {
  fs::make_dirs(dir);
  if (!tokenizer_file.empty()) fs::write_file_atomic(dir + "/tokenizer.model", fs::read_file(tokenizer_file));
  safetensors::TensorList tensors;
  for (const Param* p : model.params()) tensors.emplace_back(p->name, p->value.to(Device::CPU, DType::F32));
  safetensors::save(dir + "/model.safetensors", tensors, {{"format", "pt"}, {"producer", "lt2"}});
  fs::write_file_atomic(dir + "/config.json", model.config().to_json().dump(2) + "\n");
}

std::string read_latest(const std::string& run_dir) {
  if (!fs::exists(run_dir + "/latest")) return "";
  std::string name = fs::read_file(run_dir + "/latest");
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  return name;
}

std::string resolve_checkpoint_dir(const std::string& path) {
  if (fs::exists(path + "/config.json")) return path;
  if (const std::string name = read_latest(path); !name.empty()) {
    const std::string dir = path + "/" + name;
    LT2_CHECK(fs::exists(dir + "/config.json"), path, "/latest names '", name, "' but ", dir,
              "/config.json does not exist");
    return dir;
  }
  fail(cat(path, ": not a checkpoint (no config.json) nor a run directory (no 'latest' file)"));
}

ModelConfig load_model_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  return ModelConfig::from_json(json::read_file(path), path);
}

std::vector<std::string> load_matching_weights(LoopedModel& model, const std::string& dir) {
  const std::string st_path = dir + "/model.safetensors";
  const safetensors::File file = safetensors::load(st_path);
  std::set<std::string> used;
  std::vector<std::string> absent;
  for (Param* p : model.params()) {
    const Tensor* t = file.find(p->name);
    if (!t) {
      absent.push_back(p->name);
      continue;
    }
    LT2_CHECK(t->shape() == p->value.shape(), st_path, ": tensor '", p->name, "' has shape ", shape_str(t->shape()),
              " but the model's config implies ", shape_str(p->value.shape()));
    LT2_CHECK(t->dtype() != DType::I32, st_path, ": tensor '", p->name, "' has integer dtype I32");
    p->value.copy_from(*t);  // keeps the model's dtype and device
    used.insert(p->name);
  }
  for (const auto& [name, _] : file.tensors)
    LT2_CHECK(used.count(name), st_path, ": unexpected tensor '", name, "' that the model's config does not describe");
  model.refresh_compute();
  return absent;
}

void load_weights(LoopedModel& model, const std::string& dir) {
  const std::vector<std::string> absent = load_matching_weights(model, dir);
  if (!absent.empty()) {
    const Param* p = model.find(absent.front());
    fail(cat(dir, "/model.safetensors: missing tensor '", p->name, "' (expected shape ", shape_str(p->value.shape()),
             ") — does config.json match this checkpoint?"));
  }
}

std::unique_ptr<LoopedModel> load_model(const std::string& path, DType dt) {
  const std::string dir = resolve_checkpoint_dir(path);
  auto model = std::make_unique<LoopedModel>(load_model_config(dir), dt);
  load_weights(*model, dir);
  return model;
}

}  // namespace lt2
