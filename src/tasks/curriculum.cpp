#include "tasks/curriculum.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/error.h"

namespace lt2::tasks {

SwapsCurriculum::SwapsCurriculum(CurriculumOptions opts, SwapsSettings base) : opts_(std::move(opts)), base_(base) {
  LT2_CHECK(!opts_.stages.empty(), "curriculum: stages must not be empty");
  for (size_t i = 0; i < opts_.stages.size(); ++i) {
    LT2_CHECK(opts_.stages[i] >= 2, "curriculum: stage ", i, " has n = ", opts_.stages[i], ", must be >= 2");
    LT2_CHECK(i == 0 || opts_.stages[i] > opts_.stages[i - 1], "curriculum: stages must increase, got ",
              opts_.stages[i - 1], " then ", opts_.stages[i]);
  }
  LT2_CHECK(std::isfinite(opts_.threshold) && opts_.threshold > 0 && opts_.threshold <= 1,
            "curriculum: threshold must be in (0, 1], got ", opts_.threshold);
  LT2_CHECK(opts_.step_budget >= 1, "curriculum: step_budget must be >= 1, got ", opts_.step_budget);
  LT2_CHECK(opts_.eval_every >= 1, "curriculum: eval_every must be >= 1, got ", opts_.eval_every);
  LT2_CHECK(base_.max_slots >= opts_.stages.back(), "curriculum: max_slots ", base_.max_slots,
            " is smaller than the largest stage n = ", opts_.stages.back());
  for (int64_t n : opts_.stages) {
    SwapsSettings s = base_;
    s.num_slots = n;
    s.num_swaps = n;
    validate(s);  // e.g. a fixed seq_len too short for the last stage fails here, not mid-run
  }
  records_.push_back(StageRecord{opts_.stages[0]});
}

int64_t SwapsCurriculum::current_n() const { return opts_.stages[stage_]; }

SwapsSettings SwapsCurriculum::settings() const {
  SwapsSettings s = base_;
  s.num_slots = current_n();
  s.num_swaps = current_n();
  return s;
}

int64_t SwapsCurriculum::steps_left() const {
  return done_ ? 0 : std::max<int64_t>(0, opts_.step_budget - records_.back().steps);
}

void SwapsCurriculum::record_steps(int64_t steps) {
  LT2_CHECK(!done_, "curriculum: record_steps after the run is over");
  LT2_CHECK(steps >= 0, "curriculum: steps must be >= 0, got ", steps);
  records_.back().steps += steps;
}

StageOutcome SwapsCurriculum::advance(double accuracy) {
  LT2_CHECK(!done_, "curriculum: advance after the run is over");
  LT2_CHECK(accuracy >= 0 && accuracy <= 1, "curriculum: accuracy must be in [0, 1], got ", accuracy);
  StageRecord& r = records_.back();
  r.evals += 1;
  r.best_accuracy = std::max(r.best_accuracy, accuracy);
  if (accuracy >= opts_.threshold) {
    r.passed = true;
    if (stage_ + 1 == static_cast<int64_t>(opts_.stages.size())) {
      done_ = finished_ = true;
      return StageOutcome::Finished;
    }
    ++stage_;
    records_.push_back(StageRecord{opts_.stages[stage_]});
    return StageOutcome::Advanced;
  }
  if (r.steps >= opts_.step_budget) {
    done_ = true;
    return StageOutcome::OutOfBudget;
  }
  return StageOutcome::Continue;
}

int64_t SwapsCurriculum::stages_passed() const {
  int64_t k = 0;
  for (const StageRecord& r : records_) k += r.passed;
  return k;
}

int64_t SwapsCurriculum::largest_passed() const {
  int64_t n = 0;
  for (const StageRecord& r : records_)
    if (r.passed) n = r.n;
  return n;
}

int64_t SwapsCurriculum::total_steps() const {
  int64_t t = 0;
  for (const StageRecord& r : records_) t += r.steps;
  return t;
}

int64_t SwapsCurriculum::run(const TrainEval& train_eval) {
  LT2_CHECK(static_cast<bool>(train_eval), "curriculum: run needs a train/eval callback");
  while (!done_) {
    const int64_t k = std::min(opts_.eval_every, steps_left());
    const double acc = train_eval(settings(), k);
    record_steps(k);
    advance(acc);
  }
  return largest_passed();
}

}  // namespace lt2::tasks
