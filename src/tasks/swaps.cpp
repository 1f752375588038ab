#include "tasks/swaps.h"

#include <utility>

#include "core/error.h"
#include "tasks/draw.h"

namespace lt2::tasks {

int64_t num_swaps(const SwapsSettings& s) { return s.num_swaps == -1 ? s.num_slots : s.num_swaps; }
int64_t num_queries(const SwapsSettings& s) { return s.num_queries == 0 ? s.num_slots : s.num_queries; }

int64_t swaps_natural_length(const SwapsSettings& s) {
  return 2 * s.num_slots + 1 + 3 * num_swaps(s) + 1 + 3 * num_queries(s);
}

int64_t swaps_length(const SwapsSettings& s) { return s.seq_len > 0 ? s.seq_len : swaps_natural_length(s); }

void validate(const SwapsSettings& s) {
  LT2_CHECK(s.max_slots >= 2 && s.max_slots <= (int64_t{1} << 24), "swaps: max_slots must be in [2, 2^24], got ",
            s.max_slots);
  LT2_CHECK(s.num_slots >= 2 && s.num_slots <= s.max_slots, "swaps: num_slots must be in [2, max_slots = ",
            s.max_slots, "], got ", s.num_slots);
  LT2_CHECK(s.num_swaps >= -1, "swaps: num_swaps must be >= 0 (or -1 = num_slots), got ", s.num_swaps);
  LT2_CHECK(s.num_queries >= 0 && s.num_queries <= s.num_slots, "swaps: num_queries must be in [0, num_slots = ",
            s.num_slots, "] (0 = num_slots), got ", s.num_queries);
  LT2_CHECK(s.seq_len == 0 || s.seq_len >= swaps_natural_length(s), "swaps: seq_len ", s.seq_len,
            " is too short for num_slots ", s.num_slots, ", num_swaps ", num_swaps(s), " and num_queries ",
            num_queries(s), " (needs at least ", swaps_natural_length(s), ", or 0 for the natural length)");
}

Sample swaps_sample(const SwapsSettings& s, uint64_t seed, uint64_t index) {
  validate(s);
  const int64_t n = s.num_slots, m = num_swaps(s), q = num_queries(s);
  Draw draw(seed, "swaps", index);
  const std::vector<int64_t> slots = draw.distinct(n, s.max_slots);  // slot id of slot index k
  std::vector<int64_t> items = draw.distinct(n, s.max_slots);        // item now held by slot index k

  Sample out = empty_sample(swaps_length(s));
  int64_t p = 0;
  auto put = [&](int32_t tok) { out.tokens[p++] = tok; };
  for (int64_t k = 0; k < n; ++k) {
    put(swaps_slot_token(s, slots[k]));
    put(swaps_item_token(s, items[k]));
  }
  put(kSwapsSep);
  for (int64_t op = 0; op < m; ++op) {
    const int64_t i = draw.below(n);
    int64_t j = draw.below(n - 1);
    if (j >= i) ++j;  // a different slot, uniform over the other n - 1
    put(kSwapsSwap);
    put(swaps_slot_token(s, slots[i]));
    put(swaps_slot_token(s, slots[j]));
    std::swap(items[i], items[j]);
  }
  put(kSwapsSep);
  for (int64_t k : draw.distinct(q, n)) {
    put(swaps_slot_token(s, slots[k]));
    put(kSwapsAsk);
    put(swaps_item_token(s, items[k]));
    mark_answer(out, p - 1);
  }
  return out;  // positions p.. stay PAD with -1 targets
}

}  // namespace lt2::tasks
