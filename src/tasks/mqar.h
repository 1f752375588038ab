#pragma once
// MQAR: multi-query associative recall (Zoology, Arora et al. 2023).
//
// Token layout of one sample (exactly seq_len tokens, n = num_pairs, q = num_queries):
//
//   k1 v1 k2 v2 ... kn vn | query region of seq_len - 2n tokens
//
// Keys are n distinct tokens from [1, vocab/2), values n distinct tokens from [vocab/2, vocab)
// (the ranges are disjoint); token 0 is the filler. The query region is cut into
// floor((seq_len - 2n) / 2) two-token slots; q of them, chosen at random, hold a query
// `k v` where k is one of the n keys (q distinct keys, random order) and v its value; every
// other position holds 0. The loss falls only on the answers: targets[p] = v at the position p
// of each query key (the model must output the value right after reading the key), -1 elsewhere.
#include <cstdint>

#include "tasks/sample.h"

namespace lt2::tasks {

struct MqarSettings {
  int64_t vocab = 8192;
  int64_t seq_len = 256;
  int64_t num_pairs = 16;
  int64_t num_queries = 0;  // 0 = num_pairs (every key is queried once)
};

inline constexpr int32_t kMqarFiller = 0;

struct MqarRanges {
  int64_t key_lo, key_hi;      // keys in [key_lo, key_hi)
  int64_t value_lo, value_hi;  // values in [value_lo, value_hi)
};

// Throws lt2::Error naming the offending setting ("mqar: seq_len 20 is too short ...").
void validate(const MqarSettings& s);
int64_t num_queries(const MqarSettings& s);  // resolves the 0 default
MqarRanges mqar_ranges(const MqarSettings& s);

// Sample `index` of the stream `seed`: a pure function of (settings, seed, index).
Sample mqar_sample(const MqarSettings& s, uint64_t seed, uint64_t index);

}  // namespace lt2::tasks
