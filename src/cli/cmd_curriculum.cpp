// lt2 curriculum swaps: the paper's state-tracking curriculum. One model trains through
// stages n = m = 8, 16, 32, ... and advances when held-out accuracy reaches the threshold
// within the stage's step budget; the score is the largest stage passed.
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/run_config.h"
#include "core/fs.h"
#include "tasks/curriculum.h"
#include "train/task_source.h"
#include "train/trainer.h"

namespace lt2::cli {

int cmd_curriculum(int argc, char** argv) {
  Args a("lt2 curriculum swaps",
         {{"config", true, "preset or JSON run config: its model, and train's batch_size / lr / seed (default tiny)"},
          {"stages", true, "n = m per stage (default 8,16,32,64,128,256)"},
          {"budget", true, "training steps allowed per stage (default 2000)"},
          {"eval-every", true, "steps between evaluations (default 100)"},
          {"threshold", true, "accuracy that passes a stage (default 0.9)"},
          {"eval-rows", true, "held-out samples per evaluation (default 256)"},
          {"out", true, "write the per-stage record here as JSON (default: print only)"}},
         argc, argv, 3);
  const std::string sub = argc >= 3 ? argv[2] : "";
  if (a.help() || sub != "swaps") {
    std::printf("usage: lt2 curriculum swaps [flags]\n\nThe model keeps its weights from stage to stage; the "
                "optimizer restarts at each stage (its warmup included).\n\n%s",
                a.usage().c_str());
    return a.help() || sub == "--help" ? 0 : 2;
  }
  const std::string name = a.str("config", "tiny");
  const RunConfig rc = load_run(name);
  const ModelConfig& mcfg = rc.model;
  const TrainConfig& base = rc.train;
  tasks::CurriculumOptions opts;
  opts.stages = a.int_list("stages", "8,16,32,64,128,256");
  opts.step_budget = a.integer("budget", opts.step_budget);
  opts.eval_every = a.integer("eval-every", opts.eval_every);
  opts.threshold = a.number("threshold", opts.threshold);
  const int64_t eval_rows = a.integer("eval-rows", 256);
  tasks::SwapsSettings sbase;
  sbase.max_slots = opts.stages.back();
  tasks::SwapsCurriculum cur(opts, sbase);  // validates the options
  LT2_CHECK(tasks::swaps_vocab(sbase) <= mcfg.vocab_size, "swaps with up to ", sbase.max_slots,
            " slots needs vocab_size >= ", tasks::swaps_vocab(sbase), ", the model has ", mcfg.vocab_size);

  LoopedModel model(mcfg);
  model.init(base.seed);
  std::unique_ptr<Trainer> trainer;
  int64_t current_n = -1;
  cur.run([&](const tasks::SwapsSettings& s, int64_t steps) {
    if (s.num_slots != current_n) {  // a new stage: its own rows and a fresh optimizer
      TrainConfig tc = base;
      tc.seq_len = tasks::swaps_length(s);
      LT2_CHECK(tc.seq_len <= mcfg.max_position_embeddings, "stage n = ", s.num_slots, " needs ", tc.seq_len,
                " tokens; the model's max_position_embeddings is ", mcfg.max_position_embeddings);
      tc.steps = opts.step_budget;
      tc.warmup_steps = std::min(tc.warmup_steps, tc.steps / 10);
      tc.task = json::Value::object();
      tc.task.set("name", "swaps");
      tc.task.set("num_slots", s.num_slots);
      tc.task.set("max_slots", s.max_slots);
      tc.task_eval_rows = eval_rows;
      tc.eval_batches = (eval_rows + tc.batch_size - 1) / tc.batch_size;
      trainer = std::make_unique<Trainer>(model, tc, make_data_source(tc, nullptr));
      current_n = s.num_slots;
    }
    for (int64_t i = 0; i < steps; ++i) trainer->step();
    const double acc = trainer->evaluate().accuracy;
    std::fprintf(stderr, "stage n=%lld: step %lld, accuracy %.3f\n", (long long)s.num_slots,
                 (long long)trainer->steps_done(), acc);
    return acc;
  });
  json::Value out = json::Value::object();
  out.set("stages_passed", cur.stages_passed());
  out.set("largest_passed", cur.largest_passed());
  out.set("total_steps", cur.total_steps());
  json::Value recs = json::Value::array();
  for (const auto& r : cur.records()) {
    json::Value o = json::Value::object();
    o.set("n", r.n);
    o.set("steps", r.steps);
    o.set("best_accuracy", r.best_accuracy);
    o.set("passed", r.passed);
    recs.push_back(o);
  }
  out.set("stages", recs);
  std::printf("%s\n", out.dump(2).c_str());
  if (a.has("out")) fs::write_file_atomic(a.str("out"), out.dump(2) + "\n");
  return 0;
}

}  // namespace lt2::cli
