// lt2 report RUN_DIR [--out FILE]: one self-contained HTML page (inline CSS + SVG, no scripts)
// with the run's configuration, summary, training curves and evaluation artefacts.
#include <cstdio>
#include <string>

#include "cli/args.h"
#include "core/error.h"
#include "core/fs.h"
#include "report/html_report.h"

namespace lt2::cli {
int cmd_report(int argc, char** argv);
}  // namespace lt2::cli

namespace lt2::cli {

int cmd_report(int argc, char** argv) {
  Args a("lt2 report", {{"out", true, "output HTML file (default RUN_DIR/report.html)"}}, argc, argv, 2);
  if (a.help()) {
    std::printf("usage: lt2 report RUN_DIR [--out FILE]\n\nWrites one self-contained HTML page (inline CSS and SVG, no "
                "scripts or external resources) with the run configuration, a summary, loss / gradient-norm / "
                "learning-rate curves from metrics.jsonl and any evaluation artefacts in RUN_DIR/eval/ (*.svg "
                "inline, *.md tables). See docs/REPORT.md.\n\n%s",
                a.usage().c_str());
    return 0;
  }
  LT2_CHECK(!a.positionals().empty(), "lt2 report: RUN_DIR is required (usage: lt2 report RUN_DIR [--out FILE])");
  LT2_CHECK(a.positionals().size() == 1, "lt2 report: unexpected argument '", a.positionals()[1], "'");
  std::string dir = a.positionals()[0];
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const std::string out = a.str("out", dir + "/report.html");
  const std::string html = report::build_run_report(dir);
  fs::write_file_atomic(out, html);
  std::fprintf(stderr, "wrote %s (%zu bytes)\n", out.c_str(), html.size());
  return 0;
}

}  // namespace lt2::cli
