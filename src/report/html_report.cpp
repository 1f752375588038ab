#include "report/html_report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <regex>

#include "core/error.h"
#include "core/fs.h"
#include "report/chart.h"

namespace lt2::report {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string esc(const std::string& s) { return xml_escape(s); }

std::string fmt(double v, const char* f = "%.4g") {
  if (!std::isfinite(v)) return "&ndash;";
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = nl + 1;
  }
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

// ---- markdown -------------------------------------------------------------------------

// Cells of a pipe-table row: "| a | b |" -> {"a", "b"}; "\|" is a literal bar.
std::vector<std::string> table_cells(const std::string& row) {
  std::string r = trim(row);
  if (!r.empty() && r.front() == '|') r.erase(0, 1);
  if (!r.empty() && r.back() == '|' && (r.size() < 2 || r[r.size() - 2] != '\\')) r.pop_back();
  std::vector<std::string> cells;
  std::string cur;
  for (size_t i = 0; i < r.size(); ++i) {
    if (r[i] == '\\' && i + 1 < r.size() && r[i + 1] == '|') {
      cur += '|';
      ++i;
    } else if (r[i] == '|') {
      cells.push_back(trim(cur));
      cur.clear();
    } else {
      cur += r[i];
    }
  }
  cells.push_back(trim(cur));
  return cells;
}

// Alignment of each column from a separator row, or false when `row` is no separator.
bool separator_row(const std::string& row, std::vector<std::string>& align) {
  align.clear();
  for (const auto& c : table_cells(row)) {
    if (c.empty()) return false;
    size_t a = 0, b = c.size();
    const bool left = c[0] == ':', right = c.back() == ':';
    if (left) ++a;
    if (right && b > a) --b;
    if (b <= a) return false;
    for (size_t i = a; i < b; ++i)
      if (c[i] != '-') return false;
    align.push_back(left && right ? "center" : right ? "right" : left ? "left" : "");
  }
  return !align.empty();
}

std::string cell_tag(const char* tag, const std::string& text, const std::string& align) {
  std::string o = std::string("<") + tag;
  if (!align.empty()) o += " style='text-align:" + align + "'";
  return o + ">" + esc(text) + "</" + tag + ">";
}

bool is_table_line(const std::string& l) { return !trim(l).empty() && trim(l)[0] == '|'; }

}  // namespace

std::string markdown_to_html(const std::string& md) {
  const std::vector<std::string> lines = split_lines(md);
  std::string out, para;
  auto flush_para = [&] {
    if (!para.empty()) out += "<p>" + esc(para) + "</p>\n";
    para.clear();
  };
  for (size_t i = 0; i < lines.size();) {
    const std::string t = trim(lines[i]);
    if (t.empty()) {
      flush_para();
      ++i;
    } else if (t.rfind("```", 0) == 0) {
      flush_para();
      std::string code;
      for (++i; i < lines.size() && trim(lines[i]).rfind("```", 0) != 0; ++i) code += lines[i] + "\n";
      if (i < lines.size()) ++i;  // closing fence
      out += "<pre>" + esc(code) + "</pre>\n";
    } else if (t[0] == '#') {
      flush_para();
      size_t level = 0;
      while (level < t.size() && t[level] == '#') ++level;
      const int h = int(std::min<size_t>(6, level + 2));  // "#" -> h3: nested under the page's own headings
      out += "<h" + std::to_string(h) + ">" + esc(trim(t.substr(level))) + "</h" + std::to_string(h) + ">\n";
      ++i;
    } else if (is_table_line(t)) {
      flush_para();
      size_t end = i;
      while (end < lines.size() && is_table_line(lines[end])) ++end;
      std::vector<std::string> align;
      if (end - i >= 2 && separator_row(lines[i + 1], align)) {
        const std::vector<std::string> head = table_cells(lines[i]);
        const size_t n = head.size();
        align.resize(n);
        out += "<table>\n<thead><tr>";
        for (size_t c = 0; c < n; ++c) out += cell_tag("th", head[c], align[c]);
        out += "</tr></thead>\n<tbody>\n";
        for (size_t r = i + 2; r < end; ++r) {
          std::vector<std::string> cells = table_cells(lines[r]);
          cells.resize(n);
          out += "<tr>";
          for (size_t c = 0; c < n; ++c) out += cell_tag("td", cells[c], align[c]);
          out += "</tr>\n";
        }
        out += "</tbody>\n</table>\n";
      } else {  // pipes but no separator row: not a table, keep it verbatim
        std::string pre;
        for (size_t r = i; r < end; ++r) pre += lines[r] + "\n";
        out += "<pre>" + esc(pre) + "</pre>\n";
      }
      i = end;
    } else {
      para += (para.empty() ? "" : " ") + t;
      ++i;
    }
  }
  flush_para();
  return out;
}

std::string sanitize_svg(const std::string& svg) {
  std::string s = svg;
  std::string low = lower(s);
  // Drop everything before the root element (XML declaration, DOCTYPE, comments).
  const size_t root = low.find("<svg");
  LT2_CHECK(root != std::string::npos, "no <svg> element");
  s.erase(0, root);
  low.erase(0, root);
  // Remove <script ...>...</script> (or a self-closing <script/>).
  for (size_t p; (p = low.find("<script")) != std::string::npos;) {
    size_t e = low.find("</script", p);
    if (e != std::string::npos) e = low.find('>', e);
    if (e == std::string::npos) {
      e = low.find('>', p);
      if (e == std::string::npos) e = low.size() - 1;
    }
    s.erase(p, e - p + 1);
    low.erase(p, e - p + 1);
  }
  // Event-handler attributes and javascript: URLs.
  static const std::regex on_attr(R"(\s+on[a-zA-Z]+\s*=\s*("[^"]*"|'[^']*'))");
  s = std::regex_replace(s, on_attr, "");
  static const std::regex js_url("javascript:", std::regex::icase);
  s = std::regex_replace(s, js_url, "");
  return s;
}

namespace {
double field(const json::Value& obj, const char* key, const std::string& where) {
  const json::Value* v = obj.find(key);
  if (!v || v->is_null()) return kNaN;
  LT2_CHECK(v->is_number(), where, ": field '", key, "': expected a number, got ", json::type_name(v->type()));
  return v->as_number();
}
}  // namespace

std::vector<MetricsRow> parse_metrics(const std::string& text, const std::string& source) {
  std::vector<MetricsRow> rows;
  const std::vector<std::string> lines = split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (trim(lines[i]).empty()) continue;
    const std::string where = cat(source, ":", i + 1);
    json::Value v;
    try {
      v = json::Value::parse(lines[i], "@");
    } catch (const Error& e) {
      // "@:1:<col>: <what>" -> "<source>:<line>:<col>: <what>"
      std::string msg = e.what();
      if (msg.rfind("@:1:", 0) == 0) fail(where + ":" + msg.substr(4));
      fail(where + ": " + msg);
    }
    LT2_CHECK(v.is_object(), where, ": expected a JSON object, got ", json::type_name(v.type()));
    const json::Value* step = v.find("step");
    LT2_CHECK(step, where, ": missing field 'step'");
    LT2_CHECK(step->is_integer() && step->as_int() >= 0, where,
              ": field 'step': expected an integer >= 0, got ", step->is_number() ? step->dump() : json::type_name(step->type()));
    MetricsRow r;
    r.step = step->as_int();
    r.loss = field(v, "loss", where);
    r.lr = field(v, "lr", where);
    r.grad_norm = field(v, "grad_norm", where);
    r.tokens_per_s = field(v, "tokens_per_s", where);
    r.val_loss = field(v, "val_loss", where);
    r.val_ppl = field(v, "val_ppl", where);
    r.val_accuracy = field(v, "val_accuracy", where);
    rows.push_back(r);
  }
  return rows;
}

namespace {

const char* kCss = R"(
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1160px;
       padding: 0 16px; color: #222; background: #fff; font-size: 14px; line-height: 1.4; }
h1 { font-size: 22px; margin: 0 0 4px; word-break: break-all; }
h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 8px; }
h4, h5, h6 { font-size: 14px; margin: 12px 0 6px; }
.sub { color: #666; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.config { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.config td:first-child { color: #555; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 130px; background: #fafafa; }
.card .k { color: #666; font-size: 12px; }
.card .v { font-size: 20px; font-weight: 600; }
.card .n { color: #888; font-size: 11px; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; }
.chart, .artefact svg { max-width: 100%; height: auto; }
.artefact { margin-bottom: 20px; overflow-x: auto; }
.none { color: #888; font-style: italic; }
pre { background: #f6f6f6; padding: 8px; font-size: 12px; overflow-x: auto; }
code { font-size: 12px; }
)";

// Config value as table text: strings bare, numbers / booleans as JSON, arrays / objects compact.
std::string config_value(const json::Value& v) { return v.is_string() ? v.as_string() : v.dump(); }

std::string config_table(const std::string& title, const json::Value& obj) {
  std::string o = "<div><h3>" + esc(title) + "</h3>\n<table>\n";
  for (const auto& [k, v] : obj.items())
    o += "<tr><td>" + esc(k) + "</td><td><code>" + esc(config_value(v)) + "</code></td></tr>\n";
  return o + "</table></div>\n";
}

std::string card(const std::string& key, const std::string& value, const std::string& note = "") {
  std::string o = "<div class='card'><div class='k'>" + esc(key) + "</div><div class='v'>" + value + "</div>";
  if (!note.empty()) o += "<div class='n'>" + note + "</div>";
  return o + "</div>\n";
}

bool has_points(const Chart& c) {
  for (const auto& s : c.series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y)) return true;
  return false;
}

std::string chart_svg(const Chart& c) {
  constexpr double W = 560, H = 320;
  if (!has_points(c)) return "<div class='chart'><h3>" + esc(c.title) + "</h3><p class='none'>no data</p></div>\n";
  char head[256];
  std::snprintf(head, sizeof head,
                "<svg class='chart' xmlns='http://www.w3.org/2000/svg' viewBox='0 0 %.0f %.0f' width='%.0f' "
                "height='%.0f' font-family='sans-serif'>\n<rect width='100%%' height='100%%' fill='white'/>\n",
                W, H, W, H);
  return head + chart_group(c, W, H) + "</svg>\n";
}

Series series(const std::string& name, const std::vector<MetricsRow>& rows, double MetricsRow::*f) {
  Series s{name, {}};
  for (const auto& r : rows)
    if (std::isfinite(r.*f)) s.points.emplace_back(double(r.step), r.*f);
  return s;
}

std::string read_required(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  LT2_CHECK(fs::exists(path), "cannot build the report: ", path, " does not exist (is ", dir, " a run directory?)");
  return fs::read_file(path);
}

std::string eval_section(const std::string& run_dir) {
  namespace sfs = std::filesystem;
  const sfs::path dir = sfs::path(run_dir) / "eval";
  std::error_code ec;
  if (!sfs::is_directory(dir, ec)) return "";
  std::vector<std::string> stems;
  for (const auto& e : sfs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec)) continue;
    const std::string ext = lower(e.path().extension().string());
    if (ext == ".svg" || ext == ".md") stems.push_back(e.path().stem().string());
  }
  std::sort(stems.begin(), stems.end());
  stems.erase(std::unique(stems.begin(), stems.end()), stems.end());
  if (stems.empty()) return "";
  std::string o = "<h2>Evaluation</h2>\n";
  for (const auto& stem : stems) {
    o += "<div class='artefact'>\n<h3>" + esc(stem) + "</h3>\n";
    const std::string svg = (dir / (stem + ".svg")).string(), md = (dir / (stem + ".md")).string();
    if (fs::exists(svg)) {
      try {
        o += sanitize_svg(fs::read_file(svg)) + "\n";
      } catch (const Error& e) {
        fail(cat(svg, ": ", e.what()));
      }
    }
    if (fs::exists(md)) o += markdown_to_html(fs::read_file(md));
    o += "</div>\n";
  }
  return o;
}

}  // namespace

std::string build_run_report(const std::string& run_dir_in) {
  std::string run_dir = run_dir_in;
  while (run_dir.size() > 1 && run_dir.back() == '/') run_dir.pop_back();
  LT2_CHECK(std::filesystem::is_directory(run_dir), "cannot build the report: run directory ", run_dir,
            " does not exist");
  const std::string cfg_path = run_dir + "/run_config.json", met_path = run_dir + "/metrics.jsonl";
  const json::Value cfg = json::Value::parse(read_required(run_dir, "run_config.json"), cfg_path);
  LT2_CHECK(cfg.is_object(), cfg_path, ": expected an object, got ", json::type_name(cfg.type()));
  const std::vector<MetricsRow> rows = parse_metrics(read_required(run_dir, "metrics.jsonl"), met_path);

  // ---- summary numbers ----
  int64_t last_step = -1, n_train = 0;
  double final_loss = kNaN;
  std::vector<double> tps;
  const MetricsRow* best_loss = nullptr;
  const MetricsRow* best_acc = nullptr;
  const MetricsRow* last_val = nullptr;
  for (const auto& r : rows) {
    if (std::isfinite(r.loss)) {
      ++n_train;
      if (r.step >= last_step) last_step = r.step, final_loss = r.loss;
    }
    if (std::isfinite(r.tokens_per_s)) tps.push_back(r.tokens_per_s);
    if (std::isfinite(r.val_loss)) {
      if (!best_loss || r.val_loss < best_loss->val_loss) best_loss = &r;
      if (!last_val || r.step >= last_val->step) last_val = &r;
    }
    if (std::isfinite(r.val_accuracy) && (!best_acc || r.val_accuracy > best_acc->val_accuracy)) best_acc = &r;
  }
  double tps_median = kNaN;
  if (!tps.empty()) {
    std::sort(tps.begin(), tps.end());
    const size_t n = tps.size();
    tps_median = n % 2 ? tps[n / 2] : 0.5 * (tps[n / 2 - 1] + tps[n / 2]);
  }
  int64_t planned = -1;
  if (const json::Value* t = cfg.find("train"); t && t->is_object())
    if (const json::Value* s = t->find("steps"); s && s->is_integer()) planned = s->as_int();

  std::string h;
  h += "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n<title>lt2 run report: " + esc(run_dir) +
       "</title>\n<style>" + kCss + "</style>\n</head>\n<body>\n";
  h += "<h1>Run report: " + esc(run_dir) + "</h1>\n<div class='sub'>" + std::to_string(rows.size()) +
       " metrics entries from " + esc(met_path) + "</div>\n";

  h += "<h2>Summary</h2>\n<div class='cards'>\n";
  h += card("steps", last_step >= 0 ? std::to_string(last_step) : "&ndash;",
            planned >= 0 ? "of " + std::to_string(planned) + " planned" : "");
  h += card("final train loss", fmt(final_loss, "%.4f"), last_step >= 0 ? "at step " + std::to_string(last_step) : "");
  h += card("best val loss", best_loss ? fmt(best_loss->val_loss, "%.4f") : "&ndash;",
            best_loss ? "at step " + std::to_string(best_loss->step) : "");
  h += card("val perplexity", best_loss ? fmt(best_loss->val_ppl, "%.2f") : "&ndash;",
            best_loss ? "at best val loss" : "");
  h += card("best val accuracy", best_acc ? fmt(best_acc->val_accuracy, "%.3f") : "&ndash;",
            best_acc ? "at step " + std::to_string(best_acc->step) : "");
  h += card("tokens/s", fmt(tps_median, "%.0f"), tps.empty() ? "" : "median of " + std::to_string(tps.size()) + " steps");
  h += "</div>\n";
  if (last_val)
    h += "<p class='sub'>Last validation (step " + std::to_string(last_val->step) + "): loss " +
         fmt(last_val->val_loss, "%.4f") + ", perplexity " + fmt(last_val->val_ppl, "%.2f") + ", accuracy " +
         fmt(last_val->val_accuracy, "%.3f") + ".</p>\n";

  // ---- charts ----
  std::vector<Chart> charts;
  charts.push_back({"Loss", "step", "loss", false, false,
                    {series("train", rows, &MetricsRow::loss), series("validation", rows, &MetricsRow::val_loss)}});
  charts.push_back({"Gradient norm", "step", "grad norm (pre-clip)", false, false,
                    {series("grad norm", rows, &MetricsRow::grad_norm)}});
  charts.push_back({"Learning rate", "step", "lr", false, false, {series("lr", rows, &MetricsRow::lr)}});
  Chart acc{"Validation accuracy", "step", "accuracy", false, false,
            {series("val accuracy", rows, &MetricsRow::val_accuracy)}};
  if (has_points(acc)) charts.push_back(acc);
  Chart thr{"Throughput", "step", "tokens/s", false, false, {series("tokens/s", rows, &MetricsRow::tokens_per_s)}};
  if (has_points(thr)) charts.push_back(thr);
  h += "<h2>Training curves</h2>\n<div class='charts'>\n";
  for (const auto& c : charts) h += chart_svg(c);
  h += "</div>\n";

  // ---- evaluation artefacts ----
  h += eval_section(run_dir);

  // ---- configuration ----
  h += "<h2>Configuration</h2>\n<div class='config'>\n";
  std::string other;
  for (const auto& [k, v] : cfg.items()) {
    if ((k == "model" || k == "train") && v.is_object()) h += config_table(k, v);
    else other += "<div><h3>" + esc(k) + "</h3>\n<pre>" + esc(v.dump(2)) + "</pre></div>\n";
  }
  h += other + "</div>\n";
  h += "<p class='sub'>From " + esc(cfg_path) + ".</p>\n</body>\n</html>\n";
  return h;
}

}  // namespace lt2::report
