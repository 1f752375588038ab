#pragma once
// Built-in run configurations ({"model": ..., "train": ...}), usable wherever a config
// file is expected: `lt2 train --config default`, `lt2 info --config small-125m`.
#include <string>
#include <vector>

#include "core/json.h"

namespace lt2 {

std::vector<std::string> preset_names();
bool is_preset(const std::string& name);
json::Value preset(const std::string& name);
// A preset name or a path to a JSON run config file.
json::Value load_run_config(const std::string& name_or_path);

}  // namespace lt2
