#include "tasks/receptive_field.h"

#include "core/error.h"
#include "tasks/draw.h"

namespace lt2::tasks {

void validate(const ReceptiveFieldSettings& s) {
  LT2_CHECK(s.vocab >= 2 && s.vocab <= (int64_t{1} << 31) - 1, "receptive field: vocab must be in [2, 2^31), got ",
            s.vocab);
  LT2_CHECK(s.distance >= 1, "receptive field: distance must be >= 1, got ", s.distance);
  LT2_CHECK(s.seq_len > s.distance, "receptive field: seq_len ", s.seq_len, " must exceed distance ", s.distance,
            " (no position would carry a loss)");
}

Sample receptive_field_sample(const ReceptiveFieldSettings& s, uint64_t seed, uint64_t index) {
  validate(s);
  Draw draw(seed, "receptive-field", index);
  Sample out = empty_sample(s.seq_len);
  for (int64_t i = 0; i < s.seq_len; ++i) out.tokens[i] = static_cast<int32_t>(draw.below(s.vocab));
  for (int64_t i = s.distance; i < s.seq_len; ++i) out.targets[i] = out.tokens[i - s.distance];
  return out;
}

int64_t window_stack_reach(int64_t loops, int64_t window_layers, int64_t window) {
  LT2_CHECK(loops >= 1 && window_layers >= 0 && window >= 1, "window_stack_reach: need loops >= 1, window_layers >= 0",
            " and window >= 1, got ", loops, ", ", window_layers, ", ", window);
  return loops * window_layers * (window - 1);
}

}  // namespace lt2::tasks
