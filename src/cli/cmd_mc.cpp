// lt2 eval mc: multiple-choice accuracy (acc and length-normalised acc_norm) by log-likelihood.
#include <cstdio>

#include "cli/args.h"
#include "cli/device_flag.h"
#include "cli/commands.h"
#include "eval/loglik.h"
#include "model/checkpoint.h"
#include "tasks/multiple_choice.h"
#include "text/tokenizer.h"

namespace lt2::cli {

int cmd_eval_mc(int argc, char** argv) {
  Args a("lt2 eval mc", {device_flag(),
          {"model", true, "checkpoint or run directory"},
                         {"data", true, "JSONL: {\"context\": str, \"choices\": [str, ...], \"label\": int} per line"},
                         {"delimiter", true, "text between context and choice (default one space)"}},
         argc, argv, 3);
  if (a.help()) {
    std::printf("usage: lt2 eval mc --model DIR --data FILE.jsonl [flags]\n\nScores every choice by the sum of "
                "its tokens' log-probabilities after the context; acc picks the largest sum, acc_norm the largest "
                "sum per byte (lm-eval's acc / acc_norm).\n\n%s",
                a.usage().c_str());
    return 0;
  }
  LT2_CHECK(a.has("model") && a.has("data"), "lt2 eval mc: --model DIR and --data FILE are required");
  const std::string dir = resolve_checkpoint_dir(a.str("model"));
  auto model = load_model(dir);
  place_model(*model, chosen_device(a));
  const auto tok = model_tokenizer(model->config(), dir);
  const std::vector<tasks::McItem> items = tasks::read_mc_jsonl(a.str("data"));
  tasks::McOptions opts;
  opts.delimiter = a.str("delimiter", " ");
  const tasks::McResult r = tasks::score_mc(
      items,
      [&](const std::string& context, const std::string& cont, int64_t* n) {
        const auto c = tok->encode(cont);
        if (n) *n = int64_t(c.size());
        return eval::continuation_loglik(*model, tok->encode(context), c);
      },
      opts);
  std::printf("{\"model\": \"%s\", \"data\": \"%s\", \"items\": %lld, \"acc\": %.4f, \"acc_norm\": %.4f}\n",
              dir.c_str(), a.str("data").c_str(), (long long)r.n, r.acc, r.acc_norm);
  return 0;
}

}  // namespace lt2::cli
