#pragma once
// One training run's state: model, AdamW moments, step counter. A step is
// forward -> cross-entropy on the last loop's logits -> backward -> clip -> AdamW.
#include <functional>
#include <string>
#include <vector>

#include "model/looped_model.h"
#include "train/data_loader.h"
#include "train/train_config.h"

namespace lt2 {

struct StepStats {
  double loss = 0, grad_norm = 0, lr = 0;
  int64_t tokens = 0;
};

class Trainer {
 public:
  Trainer(LoopedModel& model, const TrainConfig& cfg, std::vector<int32_t> train_tokens,
          std::vector<int32_t> val_tokens);
  StepStats step();          // one optimizer step (grad_accum micro-batches)
  double evaluate() const;   // mean validation loss over eval_batches windows
  int64_t steps_done() const { return step_; }
  const TrainConfig& config() const { return cfg_; }
  void set_total_steps(int64_t steps) { cfg_.steps = steps; }

  // Checkpoint = config.json + model.safetensors + optimizer.safetensors + trainer_state.json,
  // written into <run_dir>/checkpoint-<step>.tmp, renamed into place, then `latest` is updated
  // atomically: an interrupted save never replaces the previous good checkpoint.
  std::string save(const std::string& run_dir) const;
  void load(const std::string& checkpoint_dir);

 private:
  LoopedModel& model_;
  TrainConfig cfg_;
  DataLoader train_, val_;
  std::vector<Tensor> m_, v_;
  int64_t step_ = 0;
};

// Loss of the model on one batch (no gradients).
double batch_loss(const LoopedModel& model, const Batch& b);
// Mean loss over the first `batches` evaluation batches; `on_batch(i, running_mean)` reports progress.
double mean_eval_loss(const LoopedModel& model, const DataLoader& data, int64_t batches,
                      const std::function<void(int64_t, double)>& on_batch = {});

}  // namespace lt2
