#pragma once
// Hugging Face safetensors: u64 little-endian header length N, N bytes of JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the data buffer (offsets are relative to its start). load() trusts nothing in the
// file: every inconsistency is an lt2::Error starting with the path, so a corrupt or
// hostile checkpoint is reported instead of being read out of bounds.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace lt2::safetensors {

using TensorList = std::vector<std::pair<std::string, Tensor>>;
using Metadata = std::vector<std::pair<std::string, std::string>>;

struct File {
  TensorList tensors;  // in ascending data_offsets order
  Metadata metadata;   // in header order
  std::string path;

  const Tensor* find(std::string_view name) const;
  // Throws "<path>: no tensor named '<name>'".
  const Tensor& get(std::string_view name) const;
};

// Reads and fully validates a file; tensors own copies of their bytes.
File load(const std::string& path);

// Header (padded with spaces to a multiple of 8 bytes, like the HF library) then the tensor
// bytes in the given order. Names must be unique, non-empty and not "__metadata__".
std::string serialize(const TensorList& tensors, const Metadata& metadata = {});

// serialize + fs::write_file_atomic.
void save(const std::string& path, const TensorList& tensors, const Metadata& metadata = {});

}  // namespace lt2::safetensors
