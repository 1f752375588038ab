#pragma once
// Errors users can read: one line naming the file / field / what was expected.
// Thrown as lt2::Error and turned into "error: <message>" + exit code 1 by the CLI.
#include <stdexcept>
#include <string>
#include <utility>

namespace lt2 {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string msg) : std::runtime_error(std::move(msg)) {}
};

// Concatenates its arguments into a message (numbers via std::to_string-like formatting).
template <class... Args>
std::string cat(Args&&... args);

[[noreturn]] inline void fail(const std::string& msg) { throw Error(msg); }

}  // namespace lt2

#include <sstream>
namespace lt2 {
template <class... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace lt2

// Checks an internal invariant or a user-facing condition; the message says what was expected.
#define LT2_CHECK(cond, ...)                                  \
  do {                                                        \
    if (!(cond)) ::lt2::fail(::lt2::cat(__VA_ARGS__));        \
  } while (0)
