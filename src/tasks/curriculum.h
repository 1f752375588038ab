#pragma once
// The swaps curriculum driver: stages n = m in {8, 16, 32, 64, 128, 256}; a stage is passed
// when an evaluation reaches `threshold` accuracy within `step_budget` training steps of that
// stage; the run stops at the first stage that runs out of budget (or after the last stage).
// The score is the largest stage passed. The driver knows nothing about models: the caller
// trains and evaluates, either by hand (record_steps + advance) or through run(callback).
#include <cstdint>
#include <functional>
#include <vector>

#include "tasks/swaps.h"

namespace lt2::tasks {

struct CurriculumOptions {
  std::vector<int64_t> stages{8, 16, 32, 64, 128, 256};  // n (= m) per stage, increasing
  double threshold = 0.90;   // advance when accuracy >= threshold
  int64_t step_budget = 2000;  // training steps allowed per stage
  int64_t eval_every = 100;    // run(): steps between evaluations
};

enum class StageOutcome {
  Continue,     // below threshold, budget left: keep training this stage
  Advanced,     // passed; now at the next stage
  Finished,     // passed the last stage
  OutOfBudget,  // below threshold with the stage's budget spent: the run is over
};

struct StageRecord {
  int64_t n = 0;             // the stage's num_slots = num_swaps
  int64_t steps = 0;         // training steps spent at this stage
  int64_t evals = 0;         // evaluations made at this stage
  double best_accuracy = 0;  // best accuracy seen at this stage
  bool passed = false;
};

class SwapsCurriculum {
 public:
  // `base` supplies everything but num_slots / num_swaps (max_slots, num_queries, seq_len);
  // its max_slots must cover the largest stage. Throws lt2::Error on bad options.
  explicit SwapsCurriculum(CurriculumOptions opts = {}, SwapsSettings base = {});

  const CurriculumOptions& options() const { return opts_; }
  int64_t stage() const { return stage_; }  // 0-based index of the current stage
  int64_t current_n() const;                // n of the current stage (the last one once finished)
  SwapsSettings settings() const;           // sample settings of the current stage
  int64_t steps_left() const;               // budget left at the current stage
  bool done() const { return done_; }
  bool finished() const { return finished_; }  // every stage passed

  // The caller trained `steps` more steps at the current stage.
  void record_steps(int64_t steps);
  // The caller evaluated the current stage: moves on when accuracy >= threshold; ends the run
  // when it is below and the budget is spent. Throws once done().
  StageOutcome advance(double accuracy);

  int64_t stages_passed() const;   // how many stages passed (the paper's "stage k")
  int64_t largest_passed() const;  // n of the largest stage passed, 0 if none
  int64_t total_steps() const;
  const std::vector<StageRecord>& records() const { return records_; }  // one per stage entered

  // Trains and evaluates through `train_eval(stage_settings, steps)`: it must train `steps`
  // (= min(eval_every, steps_left()) >= 1) steps on samples of stage_settings, then return the
  // accuracy on held-out samples of that stage. Runs until done(); returns largest_passed().
  using TrainEval = std::function<double(const SwapsSettings& stage, int64_t steps)>;
  int64_t run(const TrainEval& train_eval);

 private:
  CurriculumOptions opts_;
  SwapsSettings base_;
  int64_t stage_ = 0;
  bool done_ = false, finished_ = false;
  std::vector<StageRecord> records_;
};

}  // namespace lt2::tasks
