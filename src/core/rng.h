#pragma once
// Counter-based random numbers: value i of stream (seed, stream) is a pure function of
// (seed, stream, i), so any backend and any thread order initialises identically.
#include <cmath>
#include <cstdint>

namespace lt2 {

// SplitMix64 finaliser: a strong 64-bit mixing function.
inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct CounterRng {
  uint64_t seed = 0;
  uint64_t stream = 0;

  uint64_t bits(uint64_t i) const { return mix64(mix64(seed ^ mix64(stream)) + i); }
  // Uniform in (0, 1): 53 random bits, never exactly 0 or 1.
  double uniform(uint64_t i) const { return ((bits(i) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  // Standard normal via Box-Muller on the counters 2i and 2i+1.
  double normal(uint64_t i) const {
    double u1 = uniform(2 * i), u2 = uniform(2 * i + 1);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

// A stream id from a name (e.g. a parameter name), so init does not depend on creation order.
inline uint64_t stream_id(const char* s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (; *s; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 1099511628211ull;
  return h;
}

}  // namespace lt2
