// lt2 eval niah: S-NIAH accuracy of a checkpoint over a grid of context lengths x needle depths,
// by greedy decoding through the inference Session; a markdown table on stdout and, with
// --out PREFIX, PREFIX.md / PREFIX.svg (heatmap) / PREFIX.json.
namespace lt2::cli {
int cmd_eval_niah(int argc, char** argv);
}

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "cli/args.h"
#include "cli/device_flag.h"
#include "cli/progress.h"
#include "core/error.h"
#include "core/fs.h"
#include "eval/niah_eval.h"
#include "model/checkpoint.h"
#include "report/heatmap.h"

namespace lt2::cli {

using eval::depth_label;

int cmd_eval_niah(int argc, char** argv) {
  Args a("lt2 eval niah",
         {device_flag(),
          {"model", true, "checkpoint or run directory"},
          {"kind", true, "1 (filler haystack, number), 2 (prose, number) or 3 (prose, uuid)"},
          {"contexts", true, "context lengths in tokens, comma-separated (default 256,512,1024)"},
          {"depths", true, "needle depths in [0, 1], comma-separated (default 0,0.25,0.5,0.75,1)"},
          {"samples", true, "samples per (context, depth) cell (default 4)"},
          {"prose", true, "haystack text file for kinds 2 and 3 (use held-out text, not training text)"},
          {"out", true, "write PREFIX.md (table), PREFIX.svg (heatmap) and PREFIX.json"},
          {"seed", true, "evaluation seed (default 0; mixed with a constant, disjoint from training streams)"}},
         argc, argv, 3);
  if (a.help()) {
    std::printf("usage: lt2 eval niah --model DIR --kind 1|2|3 [--prose FILE] [flags]\n\n"
                "Single needle in a haystack (RULER S-NIAH): greedy-decodes the needle's value after each\n"
                "prompt and reports exact-match accuracy per context length x needle depth.\n\n%s",
                a.usage().c_str());
    return 0;
  }
  LT2_CHECK(a.positionals().empty(), "lt2 eval niah: unexpected argument '",
            a.positionals().empty() ? "" : a.positionals()[0], "'");
  LT2_CHECK(a.has("model"), "lt2 eval niah: --model DIR is required");
  LT2_CHECK(a.has("kind"), "lt2 eval niah: --kind 1|2|3 is required");
  const tasks::NiahKind kind = tasks::niah_kind_from_name(a.str("kind"));
  const std::vector<int64_t> contexts = a.int_list("contexts", "256,512,1024");
  const std::vector<double> depths = a.number_list("depths", "0,0.25,0.5,0.75,1");
  const int64_t samples = a.integer("samples", 4);
  const uint64_t seed = uint64_t(a.integer("seed", 0));
  std::string prose;
  if (a.has("prose")) prose = fs::read_file(a.str("prose"));
  LT2_CHECK(kind == tasks::NiahKind::Niah1 || a.has("prose"), "lt2 eval niah: --kind ", int(kind),
            " needs --prose FILE (held-out text for the haystack)");

  const std::string dir = resolve_checkpoint_dir(a.str("model"));
  const ModelConfig cfg = load_model_config(dir);
  // Check the grid against the model before loading its weights.
  eval::validate_niah_grid(kind, contexts, depths, samples, prose, cfg.max_position_embeddings);
  auto model = load_model(dir);
  place_model(*model, chosen_device(a));

  Progress bar(int64_t(contexts.size() * depths.size()), 0);
  int64_t n = 0, k = 0;
  const eval::NiahGrid grid =
      eval::evaluate_niah(*model, kind, contexts, depths, samples, prose, seed,
                          [&](int64_t done, int64_t, const eval::NiahCell& c) {
                            n += c.samples, k += c.correct;
                            char s[160];
                            std::snprintf(s, sizeof s, "context %lld depth %s: %lld/%lld | overall %.1f%%",
                                          (long long)c.context, depth_label(c.depth).c_str(), (long long)c.correct,
                                          (long long)c.samples, 100.0 * double(k) / double(std::max<int64_t>(n, 1)));
                            bar.update(done, s, true);
                          });
  bar.finish();
  const std::string table = eval::niah_table(grid);
  std::printf("%s", table.c_str());

  if (a.has("out")) {
    const std::string prefix = a.str("out");
    if (const size_t slash = prefix.rfind('/'); slash != std::string::npos && slash > 0)
      fs::make_dirs(prefix.substr(0, slash));
    const std::string title = grid.kind + " exact match: " + dir;
    std::vector<std::string> rows, cols;
    std::vector<double> values;
    for (int64_t c : grid.contexts) rows.push_back(std::to_string(c));
    for (double d : grid.depths) cols.push_back(depth_label(d));
    for (const auto& c : grid.cells) values.push_back(c.accuracy());
    fs::write_file_atomic(prefix + ".md", "# " + title + "\n\n" + table);
    fs::write_file_atomic(prefix + ".svg",
                          report::heatmap_svg(title, rows, cols, values, "needle depth", "context (tokens)"));
    fs::write_file_atomic(prefix + ".json", eval::niah_json(grid));
    std::fprintf(stderr, "wrote %s.md, %s.svg, %s.json\n", prefix.c_str(), prefix.c_str(), prefix.c_str());
  }
  return 0;
}

}  // namespace lt2::cli
