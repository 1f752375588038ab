#pragma once
// Hyper-parameters of a training run and where its data comes from.
#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"

namespace lt2 {

struct TrainConfig {
  int64_t batch_size = 16;
  int64_t seq_len = 128;
  int64_t steps = 300;
  int64_t grad_accum = 1;      // micro-batches per optimizer step
  double lr = 2e-3;            // peak learning rate
  double min_lr_ratio = 0.1;   // cosine floor = lr * min_lr_ratio
  int64_t warmup_steps = 30;
  double weight_decay = 0.1;   // matrices only
  double beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8;
  double grad_clip = 1.0;      // global norm; 0 = off
  // DSA stage 1 (SPEC §2): the first dsa_warmup_steps steps attend densely and update only the
  // lightning indexers (the rest of the model is frozen); sparse stage 2 follows.
  int64_t dsa_warmup_steps = 0;
  uint64_t seed = 1234;
  int64_t eval_every = 50;     // steps between validation losses; 0 = only at the end
  int64_t eval_batches = 8;
  int64_t save_every = 100;    // steps between checkpoints; the last step always saves
  // data
  std::vector<std::string> data_files;  // empty = the built-in default corpus (fortunes)
  double val_fraction = 0.05;
  std::string data_shards;              // lt2 data shards output (train/ and val/); overrides data_files
  json::Value task;                     // null = text; else a synthetic task (train/task_source.h)
  int64_t task_eval_rows = 256;         // held-out task samples for evaluation
  json::Value mix;                      // optional [{"task": {...}, "weight": w}, ...] mixed into training rows

  double lr_at(int64_t step) const;  // step counts from 1
  static TrainConfig from_json(const json::Value& v, const std::string& ctx);
  json::Value to_json() const;
  void validate(const std::string& ctx) const;
};

}  // namespace lt2
