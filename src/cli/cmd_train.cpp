// lt2 train: the training loop with progress, metrics JSONL, validation and checkpoints.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/args.h"
#include "cli/device_flag.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/run_config.h"
#include "core/fs.h"
#include "model/checkpoint.h"
#include "model/presets.h"
#include "text/corpus.h"
#include "train/task_source.h"
#include "train/trainer.h"

namespace lt2::cli {

namespace {
const std::vector<FlagSpec> kFlags = {
    device_flag(),
    {"config", true, "preset (default, tiny, small-125m) or JSON file {\"model\": .., \"train\": ..}"},
    {"data", true, "text or .jsonl file to train on (repeatable; default: the fortunes corpus)", true},
    {"shards", true, "token shards directory from lt2 data shards (instead of --data)"},
    {"out", true, "run directory (default: runs/<config name>)"},
    {"steps", true, "total optimizer steps (overrides the config; with --resume: extend the run)"},
    {"seed", true, "seed for init and data order (overrides the config)"},
    {"resume", true, "continue the run in this directory from its latest checkpoint"},
    {"init-from", true,
     "start from a trained checkpoint's weights (same names and shapes); parameters it lacks keep their fresh "
     "init, e.g. the indexer when a config turns full-attention layers into dsa(k)"},
    {"overwrite", false, "start afresh even if --out already holds a run (deletes it)"},
    {"print-config", false, "print the resolved run config as JSON and exit"},
};

std::string stem(const std::string& path) { return std::filesystem::path(path).stem().string(); }

// Deletes what `lt2 train` writes into a run directory, and nothing else that may live there.
void remove_run(const std::string& dir) {
  namespace stdfs = std::filesystem;
  for (const auto& e : stdfs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("checkpoint-", 0) == 0 || n == "latest" || n == "metrics.jsonl" || n == "run_config.json")
      stdfs::remove_all(e.path());
  }
}

// Keeps the metrics lines up to `step` (a resumed run rewrites what came after its checkpoint).
void truncate_metrics(const std::string& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::string kept, line;
  std::istringstream in(fs::read_file(path));
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const json::Value v = json::Value::parse(line, path);
    if (json::get_int(v, "step", path) <= step) kept += line + "\n";
  }
  fs::write_file_atomic(path, kept);
}

void append_line(const std::string& path, const std::string& line) {
  std::ofstream f(path, std::ios::app);
  LT2_CHECK(f, "cannot open ", path, " for appending");
  f << line << "\n";
}
}  // namespace

int cmd_train(int argc, char** argv) {
  Args a("lt2 train", kFlags, argc, argv, 2);
  if (a.help()) {
    std::printf("usage: lt2 train [flags]\n\nTrains a looped model and writes checkpoints "
                "(config.json + model.safetensors + optimizer state) under the run directory.\n\n%s",
                a.usage().c_str());
    return 0;
  }
  LT2_CHECK(a.positionals().empty(), "lt2 train: unexpected argument '", a.positionals()[0], "'");
  namespace stdfs = std::filesystem;

  ModelConfig mcfg;
  TrainConfig tcfg;
  std::string run_dir, resume_ckpt;
  if (a.has("resume")) {
    LT2_CHECK(!a.has("config") && !a.has("data") && !a.has("shards") && !a.has("out") && !a.has("seed"),
              "lt2 train: --resume takes the config, data, seed and directory of the run it continues");
    run_dir = a.str("resume");
    LT2_CHECK(!fs::exists(run_dir + "/config.json"), "lt2 train: --resume takes a run directory (the one holding "
              "'latest'), not the checkpoint ", run_dir);
    resume_ckpt = resolve_checkpoint_dir(run_dir);
    mcfg = load_model_config(resume_ckpt);
    tcfg = saved_train_config(resume_ckpt);
  } else {
    const std::string name = a.str("config", "default");
    const RunConfig rc = load_run(name);
    mcfg = rc.model;
    tcfg = rc.train;
    run_dir = a.str("out", "runs/" + (is_preset(name) ? name : stem(name)));
    if (a.has("data")) tcfg.data_files = a.all("data");
    LT2_CHECK(!(a.has("data") && a.has("shards")), "lt2 train: give --data or --shards, not both");
    if (a.has("shards")) tcfg.data_shards = a.str("shards");
  }
  if (a.has("steps")) tcfg.steps = a.integer("steps", tcfg.steps);
  if (a.has("seed")) tcfg.seed = uint64_t(a.integer("seed", 0));
  tcfg.validate("lt2 train");

  if (a.has("print-config")) {
    json::Value rc = json::Value::object();
    rc.set("model", mcfg.to_json());
    rc.set("train", tcfg.to_json());
    std::printf("%s\n", rc.dump(2).c_str());
    return 0;
  }
  if (resume_ckpt.empty() && fs::exists(run_dir + "/latest")) {
    LT2_CHECK(a.has("overwrite"), run_dir, " already holds a run: continue it with --resume ", run_dir,
              ", pass --overwrite to replace it, or choose another --out");
    remove_run(run_dir);
  }
  fs::make_dirs(run_dir);

  // data
  // The tokenizer: a SentencePiece model named by the config (relative to the working directory)
  // travels into every checkpoint as tokenizer.model, and the saved config points there.
  std::string tokenizer_file;
  std::unique_ptr<Tokenizer> tok;
  if (!resume_ckpt.empty()) {
    tok = model_tokenizer(mcfg, resume_ckpt);
    if (mcfg.tokenizer != "bytes") tokenizer_file = resume_ckpt + "/tokenizer.model";
  } else {
    tok = model_tokenizer(mcfg, "");
    if (mcfg.tokenizer != "bytes") {
      tokenizer_file = mcfg.tokenizer.substr(std::string("sentencepiece:").size());
      mcfg.tokenizer = "sentencepiece:tokenizer.model";
    }
  }
  std::string summary;
  auto data = make_data_source(tcfg, &summary, tok.get());
  std::fprintf(stderr, "data: %s\n", summary.c_str());

  LoopedModel model(mcfg);
  model.init(tcfg.seed);
  if (a.has("init-from")) {
    LT2_CHECK(resume_ckpt.empty(), "lt2 train: --init-from starts a new run; it cannot be combined with --resume");
    const std::string from = resolve_checkpoint_dir(a.str("init-from"));
    const std::vector<std::string> fresh = load_matching_weights(model, from);
    std::string names;
    for (const auto& n : fresh) names += (names.empty() ? "" : ", ") + n;
    std::fprintf(stderr, "init: %zu of %zu tensors from %s%s%s\n", model.params().size() - fresh.size(),
                 model.params().size(), from.c_str(), fresh.empty() ? "" : "; freshly initialised: ", names.c_str());
  }
  const Device device = chosen_device(a);
  place_model(model, device);
  Trainer trainer(model, tcfg, data);
  trainer.set_tokenizer_file(tokenizer_file);
  if (!resume_ckpt.empty()) {
    trainer.load(resume_ckpt);
    LT2_CHECK(trainer.steps_done() < tcfg.steps, run_dir, " has already run ", trainer.steps_done(),
              " of its ", tcfg.steps, " steps: pass --steps N > ", trainer.steps_done(), " to extend it");
    std::fprintf(stderr, "resumed %s at step %lld\n", resume_ckpt.c_str(), (long long)trainer.steps_done());
  }
  std::string pattern;
  for (const auto& m : mcfg.layer_types) {
    if (!pattern.empty()) pattern += ',';
    pattern += m.str();
  }
  std::fprintf(stderr, "model: %.2fM parameters, d=%lld, N=%lld layers [%s], T=%lld loops on %s; run dir %s\n",
               model.num_params() / 1e6, (long long)mcfg.hidden_size, (long long)mcfg.num_hidden_layers,
               pattern.c_str(), (long long)mcfg.num_loops, device_label(device).c_str(), run_dir.c_str());
  {
    json::Value rc = json::Value::object();
    rc.set("model", mcfg.to_json());
    rc.set("train", tcfg.to_json());
    fs::write_file_atomic(run_dir + "/run_config.json", rc.dump(2) + "\n");
  }

  const std::string metrics = run_dir + "/metrics.jsonl";
  truncate_metrics(metrics, trainer.steps_done());  // a fresh run starts empty
  double last_acc = 0;  // accuracy of the last evaluation (the task's answers, or next-byte for text)
  auto log_val = [&](int64_t step) {
    const EvalStats ev = trainer.evaluate();
    const double vl = ev.loss;
    json::Value m = json::Value::object();
    m.set("step", step);
    m.set("val_loss", vl);
    m.set("val_ppl", std::exp(vl));
    m.set("val_accuracy", ev.accuracy);
    last_acc = ev.accuracy;
    append_line(metrics, m.dump());
    return vl;
  };
  if (trainer.steps_done() == 0) {
    const double vl = log_val(0);
    std::fprintf(stderr, "step 0: val loss %.4f (ppl %.2f), accuracy %.3f\n", vl, std::exp(vl), last_acc);
  }
  Progress bar(tcfg.steps, trainer.steps_done());
  int64_t tokens = 0;
  for (int64_t s = trainer.steps_done() + 1; s <= tcfg.steps; ++s) {
    const StepStats st = trainer.step();
    tokens += st.tokens;
    const double tps = tokens / std::max(bar.elapsed(), 1e-9);
    json::Value m = json::Value::object();
    m.set("step", s);
    m.set("loss", st.loss);
    m.set("lr", st.lr);
    m.set("grad_norm", st.grad_norm);
    m.set("tokens_per_s", tps);
    if (!std::isnan(st.indexer_kl)) m.set("indexer_kl", st.indexer_kl), m.set("dsa_stage", st.dsa_dense ? 1 : 2);
    append_line(metrics, m.dump());
    char stats[160];
    const int n = std::snprintf(stats, sizeof stats, "loss %.4f | lr %.2e | %.0f tok/s", st.loss, st.lr, tps);
    if (!std::isnan(st.indexer_kl))  // DSA: the indexer's loss and which stage the step was in
      std::snprintf(stats + n, sizeof stats - size_t(n), " | indexer KL %.3f (stage %d)", st.indexer_kl,
                    st.dsa_dense ? 1 : 2);
    const bool eval_now = (tcfg.eval_every > 0 && s % tcfg.eval_every == 0) || s == tcfg.steps;
    const bool save_now = (tcfg.save_every > 0 && s % tcfg.save_every == 0) || s == tcfg.steps;
    bar.update(s, stats, eval_now);
    if (eval_now) {
      const double vl = log_val(s);
      std::fprintf(stderr, "step %lld: train loss %.4f, val loss %.4f (ppl %.2f), accuracy %.3f\n", (long long)s,
                   st.loss, vl, std::exp(vl), last_acc);
    }
    if (save_now) trainer.save(run_dir);
  }
  bar.finish();
  std::fprintf(stderr, "done: %lld steps; checkpoint %s; metrics %s\n", (long long)trainer.steps_done(),
               resolve_checkpoint_dir(run_dir).c_str(), metrics.c_str());
  return 0;
}

}  // namespace lt2::cli
