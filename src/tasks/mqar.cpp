#include "tasks/mqar.h"

#include <algorithm>

#include "core/error.h"
#include "tasks/draw.h"

namespace lt2::tasks {

int64_t num_queries(const MqarSettings& s) { return s.num_queries == 0 ? s.num_pairs : s.num_queries; }

MqarRanges mqar_ranges(const MqarSettings& s) { return {1, s.vocab / 2, s.vocab / 2, s.vocab}; }

void validate(const MqarSettings& s) {
  LT2_CHECK(s.vocab >= 4, "mqar: vocab must be >= 4, got ", s.vocab);
  LT2_CHECK(s.num_pairs >= 1, "mqar: num_pairs must be >= 1, got ", s.num_pairs);
  const MqarRanges r = mqar_ranges(s);
  const int64_t room = std::min(r.key_hi - r.key_lo, r.value_hi - r.value_lo);
  LT2_CHECK(s.num_pairs <= room, "mqar: num_pairs ", s.num_pairs, " needs more distinct keys than vocab ", s.vocab,
            " provides (at most ", room, " pairs)");
  LT2_CHECK(s.num_queries >= 0 && s.num_queries <= s.num_pairs, "mqar: num_queries must be in [0, num_pairs = ",
            s.num_pairs, "] (0 = num_pairs), got ", s.num_queries);
  const int64_t need = 2 * s.num_pairs + 2 * num_queries(s);
  LT2_CHECK(s.seq_len >= need, "mqar: seq_len ", s.seq_len, " is too short for num_pairs ", s.num_pairs,
            " and num_queries ", num_queries(s), " (needs at least ", need, ")");
}

Sample mqar_sample(const MqarSettings& s, uint64_t seed, uint64_t index) {
  validate(s);
  const int64_t n = s.num_pairs, q = num_queries(s);
  const MqarRanges r = mqar_ranges(s);
  Draw draw(seed, "mqar", index);
  const std::vector<int64_t> keys = draw.distinct(n, r.key_hi - r.key_lo);
  const std::vector<int64_t> values = draw.distinct(n, r.value_hi - r.value_lo);
  const std::vector<int64_t> asked = draw.distinct(q, n);  // which pairs are queried, in query order
  std::vector<int64_t> slots = draw.distinct(q, (s.seq_len - 2 * n) / 2);
  std::sort(slots.begin(), slots.end());

  Sample out = empty_sample(s.seq_len);
  for (int64_t i = 0; i < n; ++i) {
    out.tokens[2 * i] = static_cast<int32_t>(r.key_lo + keys[i]);
    out.tokens[2 * i + 1] = static_cast<int32_t>(r.value_lo + values[i]);
  }
  for (int64_t j = 0; j < q; ++j) {
    const int64_t p = 2 * n + 2 * slots[j];
    out.tokens[p] = out.tokens[2 * asked[j]];
    out.tokens[p + 1] = out.tokens[2 * asked[j] + 1];
    mark_answer(out, p + 1);
  }
  return out;
}

}  // namespace lt2::tasks
