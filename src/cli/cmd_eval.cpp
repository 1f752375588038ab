// lt2 eval ppl: perplexity of a checkpoint on text, over non-overlapping windows.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>

#include "cli/args.h"
#include "cli/device_flag.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "core/fs.h"
#include "model/checkpoint.h"
#include "text/corpus.h"
#include "text/tokenizer.h"
#include "train/task_source.h"
#include "train/trainer.h"

namespace lt2::cli {

namespace {
EvalStats run_eval(const LoopedModel& model, std::shared_ptr<const RowSource> src, int64_t batch, int64_t max_batches) {
  const DataLoader loader(std::move(src), batch);
  const int64_t n = std::min(loader.num_eval_batches(), max_batches);
  Progress bar(n, 0);
  const EvalStats ev = evaluate_model(model, loader, n, [&](int64_t i, double mean) {
    char s[64];
    std::snprintf(s, sizeof s, "loss %.4f", mean);
    bar.update(i, s);
  });
  bar.finish();
  return ev;
}
}  // namespace

int cmd_eval(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[2]) == "niah") return cmd_eval_niah(argc, argv);
  if (argc >= 3 && std::string(argv[2]) == "mc") return cmd_eval_mc(argc, argv);
  if (argc >= 3 && std::string(argv[2]) == "diag") return cmd_eval_diag(argc, argv);
  Args a("lt2 eval", {device_flag(),
          {"model", true, "checkpoint or run directory"},
                      {"data", true, "ppl: text file(s) to score (repeatable; default: the run's validation split)", true},
                      {"task", true, "task: JSON like '{\"name\":\"mqar\",\"num_pairs\":16}' (default: the run's task)"},
                      {"seq-len", true, "window / sample length (default: the run's seq_len, else 256)"},
                      {"batch", true, "rows per forward pass (default 8)"},
                      {"rows", true, "task: held-out samples to score (default: the run's task_eval_rows)"},
                      {"max-batches", true, "ppl: stop after this many batches (default: all)"}},
         argc, argv, 3);
  const std::string sub = argc >= 3 ? argv[2] : "";
  const bool help = a.help() || sub == "--help" || sub == "-h";
  if (help || (sub != "ppl" && sub != "task")) {
    std::printf("usage: lt2 eval ppl --model DIR [--data FILE]... [flags]\n"
                "       lt2 eval task --model DIR [--task JSON] [flags]\n"
                "       lt2 eval niah --model DIR --kind 1|2|3 [flags]   (see lt2 eval niah --help)\n"
                "       lt2 eval mc --model DIR --data FILE.jsonl          (see lt2 eval mc --help)\n"
                "       lt2 eval diag --model DIR                          (see lt2 eval diag --help)\n\n"
                "ppl: perplexity and bits per byte on text. task: accuracy on held-out samples of a\n"
                "synthetic task (mqar, swaps, probe, niah1), scored on the answer positions only.\n\n%s",
                a.usage().c_str());
    return help ? 0 : 2;
  }
  LT2_CHECK(a.positionals().empty(), "lt2 eval: unexpected argument '", a.positionals().empty() ? "" : a.positionals()[0], "'");
  LT2_CHECK(a.has("model"), "lt2 eval ", sub, ": --model DIR is required");
  const std::string dir = resolve_checkpoint_dir(a.str("model"));
  auto model = load_model(dir);
  place_model(*model, chosen_device(a));
  const auto tok = model_tokenizer(model->config(), dir);
  const int64_t batch = a.integer("batch", 8), max_batches = a.integer("max-batches", INT64_MAX);
  LT2_CHECK(batch >= 1 && max_batches >= 1, "--batch and --max-batches must be >= 1");

  if (sub == "task") {
    TrainConfig tc;
    if (!a.has("task") || !a.has("seq-len")) tc = saved_train_config(dir);
    if (a.has("task")) tc.task = json::Value::parse(a.str("task"), "--task");
    LT2_CHECK(!tc.task.is_null(), dir, " was not trained on a task: pass --task JSON");
    tc.seq_len = a.integer("seq-len", tc.seq_len);
    const int64_t rows = a.integer("rows", tc.task_eval_rows);
    LT2_CHECK(rows >= 1, "--rows must be >= 1");
    auto src = make_task_source(tc.task, tc.seq_len, tc.seed, rows, "--task");
    LT2_CHECK(src->vocab_needed() <= model->config().vocab_size, "the task uses token ids up to ",
              src->vocab_needed() - 1, " but the model's vocab_size is ", model->config().vocab_size);
    const EvalStats ev = run_eval(*model, src, batch, (rows + batch - 1) / batch);
    std::printf("{\"model\": \"%s\", \"task\": %s, \"samples\": %lld, \"loss\": %.6f, \"accuracy\": %.4f}\n",
                dir.c_str(), tc.task.dump().c_str(), (long long)rows, ev.loss, ev.accuracy);
    return 0;
  }

  std::shared_ptr<const RowSource> src;
  int64_t seq = 0;
  if (a.has("data")) {
    src = make_eval_text_source(a.all("data"), *tok, a.integer("seq-len", 256), model->config().max_position_embeddings);
    seq = src->seq_len();
  } else {  // the run's own validation split (text or shards)
    TrainConfig tc = saved_train_config(dir);
    LT2_CHECK(tc.task.is_null(), dir, " was trained on a task: use lt2 eval task, or pass --data FILE");
    tc.seq_len = seq = std::min(a.integer("seq-len", tc.seq_len), model->config().max_position_embeddings);
    LT2_CHECK(seq >= 1, "--seq-len must be >= 1");
    src = make_data_source(tc, nullptr, tok.get());
  }
  const EvalStats ev = run_eval(*model, src, batch, max_batches);
  const int64_t rows = src->num_eval_rows();
  const int64_t windows = max_batches >= (rows + batch - 1) / batch ? rows : max_batches * batch;
  // Bits per byte equal bits per token only for the byte tokenizer.
  std::printf("{\"model\": \"%s\", \"tokenizer\": \"%s\", \"tokens\": %lld, \"loss\": %.6f, \"ppl\": %.4f, "
              "\"%s\": %.4f}\n",
              dir.c_str(), tok->name().c_str(), (long long)(windows * seq), ev.loss, std::exp(ev.loss),
              tok->name() == "bytes" ? "bits_per_byte" : "bits_per_token", ev.loss / std::log(2.0));
  return 0;
}

}  // namespace lt2::cli
