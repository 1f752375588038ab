#pragma once
// Model checkpoints: a directory with config.json + model.safetensors (Hugging Face names).
#include <memory>
#include <string>

#include "model/looped_model.h"

namespace lt2 {

// Writes both files atomically (temp file, fsync, rename).
void save_model(const std::string& dir, const LoopedModel& model);
// Reads and validates config.json, then model.safetensors: every parameter must be present
// with the configured shape, and no unknown tensors may remain. Errors name the file and tensor.
std::unique_ptr<LoopedModel> load_model(const std::string& dir, DType dt = DType::F32);
ModelConfig load_model_config(const std::string& dir);
// A run directory holds checkpoints and a `latest` file naming the newest one; a checkpoint
// directory holds config.json. Accepts either and returns the checkpoint directory.
std::string resolve_checkpoint_dir(const std::string& path);

}  // namespace lt2
