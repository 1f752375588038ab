#include "cli/args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace lt2::cli {

Args::Args(const std::string& command, const std::vector<FlagSpec>& specs, int argc, char** argv, int first)
    : command_(command), specs_(specs) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      continue;
    }
    if (a.rfind("--", 0) != 0) {
      positionals_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const FlagSpec* spec = nullptr;
    for (const auto& s : specs_)
      if (s.name == name) spec = &s;
    LT2_CHECK(spec, "unknown flag '--", name, "' for '", command_, "' (see ", command_, " --help)");
    if (spec->takes_value && !inline_value) {
      LT2_CHECK(i + 1 < argc, "flag '--", name, "' of '", command_, "' needs a value");
      value = argv[++i];
    }
    LT2_CHECK(spec->takes_value || !inline_value, "flag '--", name, "' takes no value");
    LT2_CHECK(spec->repeatable || !values_.count(name), "flag '--", name, "' given twice");
    values_[name].push_back(spec->takes_value ? value : "1");
  }
}

std::string Args::str(const std::string& name, const std::string& def) const {
  auto it = values_.find(name);
  return it == values_.end() ? def : it->second.back();
}

std::vector<std::string> Args::all(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

int64_t Args::integer(const std::string& name, int64_t def) const {
  if (!has(name)) return def;
  const std::string v = str(name);
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  LT2_CHECK(!v.empty() && *end == '\0', "flag '--", name, "' expects an integer, got '", v, "'");
  return x;
}

double Args::number(const std::string& name, double def) const {
  if (!has(name)) return def;
  const std::string v = str(name);
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  LT2_CHECK(!v.empty() && *end == '\0' && std::isfinite(x), "flag '--", name, "' expects a number, got '", v, "'");
  return x;
}

std::vector<std::string> Args::list(const std::string& name, const std::string& def) const {
  const std::string s = str(name, def);
  std::vector<std::string> out;
  for (size_t start = 0;;) {
    const size_t comma = s.find(',', start);
    std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && item.back() == ' ') item.pop_back();
    LT2_CHECK(!item.empty(), "--", name, " expects a comma-separated list, got '", s, "'");
    out.push_back(item);
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

std::vector<int64_t> Args::int_list(const std::string& name, const std::string& def) const {
  std::vector<int64_t> out;
  for (const auto& item : list(name, def)) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    LT2_CHECK(*end == '\0' && errno == 0 && v >= 1, "--", name, " expects integers >= 1, got '", item, "'");
    out.push_back(v);
  }
  return out;
}

std::vector<double> Args::number_list(const std::string& name, const std::string& def) const {
  std::vector<double> out;
  for (const auto& item : list(name, def)) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    LT2_CHECK(*end == '\0' && std::isfinite(v), "--", name, " expects numbers, got '", item, "'");
    out.push_back(v);
  }
  return out;
}

std::string Args::usage() const {
  std::string s;
  for (const auto& f : specs_) {
    std::string left = "  --" + f.name + (f.takes_value ? " VALUE" : "");
    if (left.size() < 26) left.resize(26, ' ');
    else left += "  ";
    s += left + f.help + "\n";
  }
  return s + "  --help                  show this help\n";
}

std::vector<int64_t> Args::dims(const std::string& item, const std::string& flag, const std::string& form) {
  std::vector<int64_t> v;
  size_t pos = 0;
  while (true) {
    const size_t x = item.find('x', pos);
    const std::string part = item.substr(pos, x == std::string::npos ? std::string::npos : x - pos);
    char* end = nullptr;
    const long long n = std::strtoll(part.c_str(), &end, 10);
    LT2_CHECK(!part.empty() && end && *end == '\0' && n >= 1, "--", flag, ": bad item '", item, "' (expected ", form,
              ", all >= 1)");
    v.push_back(n);
    if (x == std::string::npos) return v;
    pos = x + 1;
  }
}

}  // namespace lt2::cli
