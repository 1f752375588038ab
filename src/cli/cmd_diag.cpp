// lt2 eval diag: per (loop, layer) first-token attention mass, residual RMS and the largest
// FFN activation (the paper's stability figures), as a table, JSON and an SVG chart.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "cli/args.h"
#include "cli/device_flag.h"
#include "cli/commands.h"
#include "core/fs.h"
#include "model/checkpoint.h"
#include "model/diagnostics.h"
#include "report/chart.h"
#include "text/corpus.h"
#include "text/tokenizer.h"
#include "train/task_source.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace lt2::cli {

int cmd_eval_diag(int argc, char** argv) {
  Args a("lt2 eval diag", {device_flag(),
          {"model", true, "checkpoint or run directory"},
                           {"data", true, "text file(s) to run on (default: the run's validation rows)", true},
                           {"seq-len", true, "tokens per row (default: the run's seq_len, else 256)"},
                           {"batch", true, "rows per batch (default 4)"},
                           {"batches", true, "batches to average over (default 4)"},
                           {"out", true, "output prefix (default: <run dir>/eval/diag -> .md .json .svg)"}},
         argc, argv, 3);
  if (a.help()) {
    std::printf("usage: lt2 eval diag --model DIR [flags]\n\nWithout the output gate the first-token mass of looped "
                "attention climbs loop after loop (a sawtooth); with it, it stays low.\n\n%s",
                a.usage().c_str());
    return 0;
  }
  LT2_CHECK(a.has("model"), "lt2 eval diag: --model DIR is required");
  const std::string dir = resolve_checkpoint_dir(a.str("model"));
  auto model = load_model(dir);
  place_model(*model, chosen_device(a));
  const auto tok = model_tokenizer(model->config(), dir);
  const ModelConfig& cfg = model->config();
  const int64_t batch = a.integer("batch", 4), batches = a.integer("batches", 4);
  LT2_CHECK(batch >= 1 && batches >= 1, "--batch and --batches must be >= 1");
  std::shared_ptr<RowSource> src;
  if (a.has("data")) {
    src = make_eval_text_source(a.all("data"), *tok, a.integer("seq-len", 256), cfg.max_position_embeddings);
  } else {
    TrainConfig tc = saved_train_config(dir);
    tc.seq_len = std::min(a.integer("seq-len", tc.seq_len), cfg.max_position_embeddings);
    src = make_data_source(tc, nullptr, tok.get());
  }
  const DataLoader loader(src, batch);
  Diagnostics d;
  for (int64_t i = 0; i < std::min(batches, loader.num_eval_batches()); ++i)
    accumulate_diagnostics(*model, loader.eval_batch(i).ids, d);

  const std::string table = diagnostics_table(d, cfg);
  std::printf("%s", table.c_str());
  const bool run_dir = !fs::exists(a.str("model") + "/config.json");
  const std::string base = run_dir ? a.str("model") : std::filesystem::path(dir).parent_path().string();
  const std::string out = a.str("out", base + "/eval/diag");
  if (const auto p = std::filesystem::path(out).parent_path(); !p.empty()) fs::make_dirs(p.string());
  report::Series mass{"first-token mass", {}}, rms{"residual RMS", {}}, act{"max |FFN activation|", {}};
  json::Value rows = json::Value::array();
  for (int64_t t = 0; t < d.loops; ++t)
    for (int64_t l = 0; l < d.layers; ++l) {
      const LayerDiag& g = d.get(t, l);
      const double x = double(t * d.layers + l + 1);  // call index: the sawtooth runs along it
      if (!std::isnan(g.first_token_mass)) mass.points.emplace_back(x, g.first_token_mass);
      rms.points.emplace_back(x, g.residual_rms);
      act.points.emplace_back(x, g.max_ffn_activation);
      json::Value o = json::Value::object();
      o.set("loop", t + 1);
      o.set("layer", l + 1);
      o.set("mixer", cfg.layer_types[size_t(l)].str());
      if (!std::isnan(g.first_token_mass)) o.set("first_token_mass", g.first_token_mass);
      if (!std::isnan(g.topk_mass)) o.set("topk_mass", g.topk_mass);
      o.set("residual_rms", g.residual_rms);
      o.set("max_ffn_activation", g.max_ffn_activation);
      rows.push_back(o);
    }
  const std::string xl = "(loop - 1) x N + layer";
  const std::vector<report::Chart> charts = {{"first-token attention mass", xl, "mass", false, false, {mass}},
                                             {"residual stream RMS (call input)", xl, "RMS", false, false, {rms}},
                                             {"largest FFN activation", xl, "|h|", false, false, {act}}};
  fs::write_file_atomic(out + ".md", table);
  fs::write_file_atomic(out + ".json", rows.dump(2) + "\n");
  fs::write_file_atomic(out + ".svg", report::svg_document("lt2 diagnostics: " + dir, charts, 3, 420, 300));
  std::fprintf(stderr, "wrote %s.md, %s.json and %s.svg (%lld batches x %lld rows)\n", out.c_str(), out.c_str(),
               out.c_str(), (long long)d.batches, (long long)batch);
  return 0;
}

}  // namespace lt2::cli
