#pragma once
// Model checkpoints: a directory with config.json + model.safetensors (Hugging Face names).
#include <memory>
#include <string>
#include <vector>

#include "model/looped_model.h"
#include "text/tokenizer.h"

namespace lt2 {

// Writes both files, each atomically (temp file, fsync, rename). The pair is not atomic:
// the trainer writes checkpoints into a fresh temporary directory and renames it into place.
// With a SentencePiece model, `tokenizer_file` is copied in as <dir>/tokenizer.model.
void save_model(const std::string& dir, const LoopedModel& model, const std::string& tokenizer_file = "");
// Copies the tensors of <dir>/model.safetensors into `model` after checking that every
// parameter is present with its shape and that no unknown tensors remain.
void load_weights(LoopedModel& model, const std::string& dir);
// Conversion: copies every tensor of <dir>/model.safetensors into the parameter of that name
// (shapes must agree; a tensor the model lacks is an error) and returns the names of the
// parameters the file does not have, which keep their current values (e.g. the indexer of a
// dsa(k) layer that replaces a full-attention layer).
std::vector<std::string> load_matching_weights(LoopedModel& model, const std::string& dir);
// Reads and validates config.json, then model.safetensors: every parameter must be present
// with the configured shape, and no unknown tensors may remain. Errors name the file and tensor.
std::unique_ptr<LoopedModel> load_model(const std::string& dir, DType dt = DType::F32);
ModelConfig load_model_config(const std::string& dir);
// A run directory holds checkpoints and a `latest` file naming the newest one; a checkpoint
// directory holds config.json. Accepts either and returns the checkpoint directory.
std::string resolve_checkpoint_dir(const std::string& path);
// The checkpoint name in <run_dir>/latest (trimmed), or "" when there is none.
std::string read_latest(const std::string& run_dir);
// The tokenizer a checkpoint's config names (relative to its directory), checked against the
// model's vocabulary.
std::unique_ptr<Tokenizer> model_tokenizer(const ModelConfig& cfg, const std::string& dir);

}  // namespace lt2
