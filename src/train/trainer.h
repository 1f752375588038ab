#pragma once
// One training run's state: model, AdamW moments, step counter. A step is
// forward -> cross-entropy on the last loop's logits -> backward -> clip -> AdamW.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "model/looped_model.h"
#include "train/data_loader.h"
#include "train/train_config.h"

namespace lt2 {

struct EvalStats {
  double loss = 0;
  double accuracy = 0;  // argmax == target over the scored positions
};

struct StepStats {
  double loss = 0, grad_norm = 0, lr = 0;
  double indexer_kl = NAN;  // DSA models: mean indexer loss of the step
  bool dsa_dense = false;   // the step was in DSA stage 1
  int64_t tokens = 0;
};

class Trainer {
 public:
  Trainer(LoopedModel& model, const TrainConfig& cfg, std::shared_ptr<const RowSource> data);
  StepStats step();            // one optimizer step (grad_accum micro-batches)
  EvalStats evaluate() const;  // mean over eval_batches evaluation batches
  int64_t steps_done() const { return step_; }
  const TrainConfig& config() const { return cfg_; }
  void set_total_steps(int64_t steps) { cfg_.steps = steps; }
  // A SentencePiece model file that every checkpoint carries as tokenizer.model.
  void set_tokenizer_file(std::string path) { tokenizer_file_ = std::move(path); }

  // Checkpoint = config.json + model.safetensors + optimizer.safetensors + trainer_state.json,
  // written into <run_dir>/checkpoint-<step>.tmp, renamed into place, then `latest` is updated
  // atomically: an interrupted save never replaces the previous good checkpoint.
  std::string save(const std::string& run_dir) const;
  void load(const std::string& checkpoint_dir);

 private:
  LoopedModel& model_;
  TrainConfig cfg_;
  DataLoader data_;
  std::vector<Tensor> m_, v_;
  int64_t step_ = 0;
  std::string tokenizer_file_;
};

// The training config saved with a checkpoint by Trainer::save (its data, task and schedule).
TrainConfig saved_train_config(const std::string& checkpoint_dir);

// Mean loss and accuracy of the model over the first `batches` evaluation batches (no
// gradients); `on_batch(i, running_mean_loss)` reports progress.
EvalStats evaluate_model(const LoopedModel& model, const DataLoader& data, int64_t batches,
                         const std::function<void(int64_t, double)>& on_batch = {});

}  // namespace lt2
