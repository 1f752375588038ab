#pragma once
// Per-phase op timing for `lt2 bench train`. Off by default (a branch per op). When on,
// every op waits for the device before and after itself, so the phase times are exact
// while the profiled step runs slower than an unprofiled one.
#include <array>
#include <string>
#include <vector>

namespace lt2::ops {

enum class Phase { Gemm, Attention, Gdn, NormsElementwise, Loss, Optimizer, Count };
constexpr int kPhases = int(Phase::Count);
const char* phase_name(Phase p);

void set_profiling(bool on);
std::array<double, kPhases> phase_seconds();  // accumulated since the last reset
void reset_phase_seconds();

// The same measurement per op (the ops:: function's name), largest first.
struct OpTime {
  std::string name;
  double seconds;
  long calls;
};
std::vector<OpTime> op_times();

}  // namespace lt2::ops
