#pragma once
// A run report: one self-contained HTML page (inline CSS and inline SVG; no scripts, no
// external fonts, images or style sheets) summarising a training run directory:
//   - the run configuration (model + train sections of run_config.json) as tables,
//   - a summary (steps, final train loss, best validation loss / perplexity / accuracy, tokens/s),
//   - charts: train + validation loss, gradient norm, learning rate, validation accuracy and
//     throughput, each vs step (report/chart.h),
//   - evaluation artefacts found in <run_dir>/eval/: every *.svg embedded inline (NIAH
//     heatmaps, diagnostic charts) and every *.md rendered (headings, paragraphs, tables).
// `lt2 report RUN_DIR` writes it to RUN_DIR/report.html (see docs/REPORT.md).
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/json.h"

namespace lt2::report {

// One metrics.jsonl line. Absent fields are NaN; a line may carry train fields, validation
// fields or both.
struct MetricsRow {
  static constexpr double kAbsent = std::numeric_limits<double>::quiet_NaN();
  int64_t step = 0;
  double loss = kAbsent, lr = kAbsent, grad_norm = kAbsent, tokens_per_s = kAbsent;  // training step
  double val_loss = kAbsent, val_ppl = kAbsent, val_accuracy = kAbsent;              // validation entry
};

// Parses metrics.jsonl text. Blank lines are skipped; every other line must be a JSON object
// with an integer "step" >= 0, and the known fields above must be numbers (or null = absent);
// other fields are ignored. Throws lt2::Error "<source>:<line>: <what is wrong>" (a JSON
// syntax error reads "<source>:<line>:<col>: ...").
std::vector<MetricsRow> parse_metrics(const std::string& text, const std::string& source);

// A small markdown subset as HTML: "#" headings, pipe tables (header row, separator row of
// dashes with optional ':' alignment, body rows) as <table>, ``` fenced blocks as <pre>, and
// other text as escaped paragraphs. Inline markup (`code`, **bold**) is shown literally.
std::string markdown_to_html(const std::string& md);

// Removes <script>...</script> elements and any XML declaration / DOCTYPE before the root
// <svg>, so that an SVG file can be embedded in the page inline and safely.
std::string sanitize_svg(const std::string& svg);

// The HTML report of the run in `run_dir`. Throws lt2::Error naming the file when
// run_config.json or metrics.jsonl is missing or malformed.
std::string build_run_report(const std::string& run_dir);

}  // namespace lt2::report
