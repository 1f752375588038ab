// lt2 eval ppl: perplexity of a checkpoint on text, over non-overlapping windows.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "core/fs.h"
#include "model/checkpoint.h"
#include "text/corpus.h"
#include "text/tokenizer.h"
#include "train/trainer.h"

namespace lt2::cli {

int cmd_eval(int argc, char** argv) {
  Args a("lt2 eval ppl", {{"model", true, "checkpoint or run directory"},
                          {"data", true, "text file(s) to score (repeatable; default: the run's validation split)", true},
                          {"seq-len", true, "window length (default: the run's seq_len, else 256)"},
                          {"batch", true, "windows per forward pass (default 8)"},
                          {"max-batches", true, "stop after this many batches (default: all)"}},
         argc, argv, 3);
  const bool help = a.help() || (argc >= 3 && (std::string(argv[2]) == "--help" || std::string(argv[2]) == "-h"));
  if (help || argc < 3 || std::string(argv[2]) != "ppl") {
    std::printf("usage: lt2 eval ppl --model DIR [--data FILE]... [flags]\n\n%s", a.usage().c_str());
    return help ? 0 : 2;
  }
  LT2_CHECK(a.positionals().empty(), "lt2 eval ppl: unexpected argument '", a.positionals().empty() ? "" : a.positionals()[0], "'");
  LT2_CHECK(a.has("model"), "lt2 eval ppl: --model DIR is required");
  const std::string dir = resolve_checkpoint_dir(a.str("model"));
  auto model = load_model(dir);
  int64_t seq = 256;
  std::vector<int32_t> tokens;
  if (a.has("data")) {
    std::string text;
    for (const auto& f : a.all("data")) text += fs::read_file(f);
    LT2_CHECK(!text.empty(), "lt2 eval ppl: the --data files are empty");
    tokens = ByteTokenizer::encode(text);
  } else {
    const std::string st = dir + "/trainer_state.json";
    LT2_CHECK(fs::exists(st), dir, " has no trainer_state.json to find its validation split: pass --data FILE");
    const json::Value state = json::read_file(st);
    LT2_CHECK(state.is_object() && state.find("train"), st, ": missing field 'train'");
    const TrainConfig tc = TrainConfig::from_json(*state.find("train"), st + ": train");
    const auto files = tc.data_files.empty() ? default_corpus_files() : tc.data_files;
    tokens = split_and_tokenize(read_documents(files), tc.val_fraction, tc.seed).val;
    seq = tc.seq_len;
  }
  LT2_CHECK(tokens.size() >= 3, "lt2 eval ppl: need at least 3 tokens of text, got ", tokens.size());
  seq = std::min({a.integer("seq-len", seq), model->config().max_position_embeddings, int64_t(tokens.size()) - 2});
  const int64_t batch = a.integer("batch", 8), max_batches = a.integer("max-batches", INT64_MAX);
  LT2_CHECK(seq >= 1 && batch >= 1 && max_batches >= 1, "--seq-len, --batch and --max-batches must be >= 1");
  const DataLoader loader(std::move(tokens), batch, seq, 0, "evaluation");
  const int64_t n = std::min(loader.num_eval_batches(), max_batches);
  Progress bar(n, 0);
  const double loss = mean_eval_loss(*model, loader, n, [&](int64_t i, double mean) {
    char s[64];
    std::snprintf(s, sizeof s, "loss %.4f", mean);
    bar.update(i, s);
  });
  bar.finish();
  std::printf("{\"model\": \"%s\", \"tokens\": %lld, \"loss\": %.6f, \"ppl\": %.4f, \"bits_per_byte\": %.4f}\n",
              dir.c_str(), (long long)(n * batch * seq), loss, std::exp(loss), loss / std::log(2.0));
  return 0;
}

}  // namespace lt2::cli
