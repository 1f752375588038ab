#pragma once
// Sets an environment variable (a kernel-path or fault-injection switch) for the scope, and
// unsets it again on the way out, also when an assertion fails half-way.
#include <cstdlib>
#include <string>

namespace lt2::test {

struct ScopedEnv {
  std::string name;
  ScopedEnv(const char* n, const char* value) : name(n) { setenv(n, value, 1); }
  ~ScopedEnv() { unsetenv(name.c_str()); }
};

}  // namespace lt2::test
