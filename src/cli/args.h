#pragma once
// A tiny flag parser: `--name value`, `--name=value`, boolean `--flag`, and positionals.
// Unknown flags are errors that name the command and point to --help.
#include <map>
#include <string>
#include <vector>

namespace lt2::cli {

struct FlagSpec {
  std::string name;  // without dashes
  bool takes_value;
  std::string help;
  bool repeatable = false;
};

class Args {
 public:
  Args(const std::string& command, const std::vector<FlagSpec>& specs, int argc, char** argv, int first);
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string str(const std::string& name, const std::string& def = "") const;
  std::vector<std::string> all(const std::string& name) const;
  int64_t integer(const std::string& name, int64_t def) const;
  double number(const std::string& name, double def) const;
  // Comma-separated values ("256,1024"): items trimmed, none empty; int_list wants integers >= 1.
  std::vector<std::string> list(const std::string& name, const std::string& def) const;
  std::vector<int64_t> int_list(const std::string& name, const std::string& def) const;
  std::vector<double> number_list(const std::string& name, const std::string& def) const;
  const std::vector<std::string>& positionals() const { return positionals_; }
  // A shape such as "8x2048x6" from a list item: integers >= 1 separated by 'x'. `form` names
  // the expected layout for the error message (e.g. "BxLxHxD").
  static std::vector<int64_t> dims(const std::string& item, const std::string& flag, const std::string& form);
  bool help() const { return help_; }
  std::string usage() const;

 private:
  std::string command_;
  std::vector<FlagSpec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positionals_;
  bool help_ = false;
};

}  // namespace lt2::cli
