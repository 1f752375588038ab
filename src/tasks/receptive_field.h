#pragma once
// Receptive-field probe: at every position i >= D the model must output the token it read
// exactly D positions earlier, targets[i] = tokens[i - D]; positions i < D carry no loss.
// Tokens are uniform in [0, vocab), so nothing but the token D back predicts the target.
// Unlike the next-token tasks, targets[i] is not tokens[i + 1]: position i must see i - D,
// i.e. a receptive field of D + 1 tokens, which a stack of n_w sliding-window layers of width
// w (each sees itself and w - 1 earlier tokens) looped T times has iff D <= T * n_w * (w - 1).
#include <cstdint>

#include "tasks/sample.h"

namespace lt2::tasks {

struct ReceptiveFieldSettings {
  int64_t vocab = 256;
  int64_t seq_len = 256;
  int64_t distance = 16;  // D
};

void validate(const ReceptiveFieldSettings& s);  // throws lt2::Error naming the setting

// Sample `index` of the stream `seed`: a pure function of (settings, seed, index).
Sample receptive_field_sample(const ReceptiveFieldSettings& s, uint64_t seed, uint64_t index);

// The largest D a window stack can solve: loops * window_layers * (window - 1).
int64_t window_stack_reach(int64_t loops, int64_t window_layers, int64_t window);

}  // namespace lt2::tasks
