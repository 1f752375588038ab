#pragma once
// Deterministic random draws for task generators: sample `index` of task `task` under `seed`
// reads the counter RNG stream (seed, f(task, index)) from counter 0 upwards, so every
// sample is a pure function of (settings, seed, index) and samples can be made in any order.
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/rng.h"

namespace lt2::tasks {

class Draw {
 public:
  Draw(uint64_t seed, const char* task, uint64_t index)
      : rng_{seed, mix64(stream_id(task) ^ mix64(index + 0x5bd1e995ull))} {}

  uint64_t bits() { return rng_.bits(next_++); }

  // Uniform integer in [0, n), n >= 1 (rejection sampling: no modulo bias).
  int64_t below(int64_t n) {
    LT2_CHECK(n >= 1, "Draw::below: n must be >= 1, got ", n);
    const uint64_t un = static_cast<uint64_t>(n);
    const uint64_t limit = UINT64_MAX - UINT64_MAX % un;  // largest multiple of n, exclusive
    for (;;) {
      const uint64_t b = bits();
      if (b < limit) return static_cast<int64_t>(b % un);
    }
  }
  // Uniform integer in [lo, hi).
  int64_t range(int64_t lo, int64_t hi) { return lo + below(hi - lo); }

  template <class T>
  void shuffle(std::vector<T>& v) {
    for (int64_t i = static_cast<int64_t>(v.size()) - 1; i > 0; --i) std::swap(v[i], v[below(i + 1)]);
  }

  // k distinct integers from [0, n) in random order (partial Fisher-Yates, O(n) memory).
  std::vector<int64_t> distinct(int64_t k, int64_t n) {
    LT2_CHECK(k >= 0 && k <= n, "Draw::distinct: cannot draw ", k, " distinct values from ", n);
    std::vector<int64_t> pool(static_cast<size_t>(n));
    std::iota(pool.begin(), pool.end(), int64_t{0});
    for (int64_t i = 0; i < k; ++i) std::swap(pool[i], pool[i + below(n - i)]);
    pool.resize(static_cast<size_t>(k));
    return pool;
  }

 private:
  CounterRng rng_;
  uint64_t next_ = 0;
};

}  // namespace lt2::tasks
