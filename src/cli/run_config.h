#pragma once
// A run config ({"model": {...}, "train": {...}}) from a preset name or a JSON file.
#include <string>

#include "model/config.h"
#include "train/train_config.h"

namespace lt2::cli {

struct RunConfig {
  ModelConfig model;
  TrainConfig train;  // defaults when the file has no "train"
  std::string ctx;    // "preset NAME" or the file path, for messages
};

RunConfig load_run(const std::string& name_or_path);

}  // namespace lt2::cli
