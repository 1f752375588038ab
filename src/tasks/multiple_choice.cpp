#include "tasks/multiple_choice.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"

namespace lt2::tasks {
namespace {

bool blank(std::string_view s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  return true;
}

// The JSON parser reports "<source>:<line>:<col>: <what>"; we parse one line with an empty
// source, so its message starts ":1:<col>: ". Re-anchor it at the file's line.
[[noreturn]] void rethrow_json(const Error& e, const std::string& where) {
  std::string msg = e.what();
  if (msg.rfind(":1:", 0) == 0) {
    const size_t colon = msg.find(':', 3);
    if (colon != std::string::npos) {
      const std::string col = msg.substr(3, colon - 3);
      std::string what = msg.substr(colon + 1);
      if (!what.empty() && what[0] == ' ') what.erase(0, 1);
      fail(cat(where, ": invalid JSON at column ", col, ": ", what));
    }
  }
  fail(cat(where, ": invalid JSON: ", msg));
}

McItem parse_item(std::string_view line, const std::string& where) {
  json::Value v;
  try {
    v = json::Value::parse(line, "");
  } catch (const Error& e) {
    rethrow_json(e, where);
  }
  LT2_CHECK(v.is_object(), where, ": expected a JSON object, got ", json::type_name(v.type()));
  McItem item;
  item.context = json::get_string(v, "context", where);
  const json::Value* choices = v.find("choices");
  LT2_CHECK(choices != nullptr, where, ": missing field 'choices'");
  LT2_CHECK(choices->is_array(), where, ": field 'choices': expected an array, got ",
            json::type_name(choices->type()));
  for (size_t i = 0; i < choices->size(); ++i) {
    const json::Value& c = choices->elements()[i];
    LT2_CHECK(c.is_string(), where, ": choices[", i, "]: expected a string, got ", json::type_name(c.type()));
    LT2_CHECK(!c.as_string().empty(), where, ": choices[", i, "] is empty");
    item.choices.push_back(c.as_string());
  }
  LT2_CHECK(item.choices.size() >= 2, where, ": field 'choices' needs at least 2 choices, got ", item.choices.size());
  item.label = json::get_int(v, "label", where);
  LT2_CHECK(item.label >= 0 && item.label < static_cast<int64_t>(item.choices.size()), where, ": label ", item.label,
            " out of range [0, ", item.choices.size(), ")");
  return item;
}

}  // namespace

std::vector<McItem> parse_mc_jsonl(std::string_view text, const std::string& source) {
  std::vector<McItem> items;
  int64_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (blank(line)) continue;
    items.push_back(parse_item(line, cat(source, ":", line_no)));
  }
  LT2_CHECK(!items.empty(), source, ": no items");
  return items;
}

std::vector<McItem> read_mc_jsonl(const std::string& path) { return parse_mc_jsonl(fs::read_file(path), path); }

McItemScore score_mc_item(const McItem& item, const LogLikelihoodFn& loglik, const McOptions& opts, int64_t* tokens) {
  LT2_CHECK(static_cast<bool>(loglik), "multiple choice: no log-likelihood function");
  LT2_CHECK(!item.choices.empty(), "multiple choice: an item without choices");
  McItemScore sc;
  double best = 0, best_norm = 0;
  for (size_t i = 0; i < item.choices.size(); ++i) {
    int64_t n = 0;
    const double ll = loglik(item.context, opts.delimiter + item.choices[i], &n);
    LT2_CHECK(!std::isnan(ll), "multiple choice: log-likelihood of choice ", i, " is NaN");
    if (tokens) *tokens += n;
    sc.loglik.push_back(ll);
    const double norm = ll / static_cast<double>(std::max<size_t>(1, item.choices[i].size()));
    if (i == 0 || ll > best) {
      best = ll;
      sc.pred = static_cast<int64_t>(i);
    }
    if (i == 0 || norm > best_norm) {
      best_norm = norm;
      sc.pred_norm = static_cast<int64_t>(i);
    }
  }
  return sc;
}

McResult score_mc(const std::vector<McItem>& items, const LogLikelihoodFn& loglik, const McOptions& opts) {
  McResult r;
  for (const McItem& item : items) {
    McItemScore sc = score_mc_item(item, loglik, opts, &r.tokens);
    r.correct += sc.pred == item.label;
    r.correct_norm += sc.pred_norm == item.label;
    r.items.push_back(std::move(sc));
  }
  r.n = static_cast<int64_t>(items.size());
  if (r.n > 0) {
    r.acc = static_cast<double>(r.correct) / static_cast<double>(r.n);
    r.acc_norm = static_cast<double>(r.correct_norm) / static_cast<double>(r.n);
  }
  return r;
}

}  // namespace lt2::tasks
