#pragma once
// Swaps: state tracking + recall (the looped-transformer paper's curriculum task).
//
// n slots hold n items; m operations swap the contents of two slots; then q queries ask
// which item a slot holds now. Token ids (vocab = 4 + 2 * max_slots):
//
//   0 PAD   1 SEP   2 SWAP   3 ASK ("?")
//   slot s (s in [0, max_slots))  -> 4 + s
//   item x (x in [0, max_slots))  -> 4 + max_slots + x
//
// Layout (natural length 2n + 1 + 3m + 1 + 3q):
//
//   S_a I_x  (n times: each slot with its initial item)  SEP
//   SWAP S_i S_j  (m times)                                SEP
//   S_a ASK I_x  (q times: the item now in slot a)          [PAD ... up to seq_len]
//
// The n slot ids and the n item ids are distinct random draws from [0, max_slots) (so
// every stage of a curriculum uses all of the vocab), listed in random order; each swap
// picks two different slots of the n; the q queried slots are distinct, in random order.
// The loss falls only on the answers: targets[p] = I_x at each ASK position p, -1 elsewhere.
#include <cstdint>

#include "tasks/sample.h"

namespace lt2::tasks {

struct SwapsSettings {
  int64_t num_slots = 8;    // n
  int64_t num_swaps = -1;   // m; -1 = num_slots (the paper ties n = m)
  int64_t num_queries = 0;  // q; 0 = num_slots (every slot is asked once)
  int64_t max_slots = 256;  // size of the slot and item id ranges; fixes the vocab across stages
  int64_t seq_len = 0;      // 0 = the natural length; else right-padded with PAD to this length
};

inline constexpr int32_t kSwapsPad = 0, kSwapsSep = 1, kSwapsSwap = 2, kSwapsAsk = 3;
inline int32_t swaps_slot_token(const SwapsSettings& s, int64_t slot) { return static_cast<int32_t>(4 + slot); }
inline int32_t swaps_item_token(const SwapsSettings& s, int64_t item) {
  return static_cast<int32_t>(4 + s.max_slots + item);
}
inline int64_t swaps_vocab(const SwapsSettings& s) { return 4 + 2 * s.max_slots; }

// Throws lt2::Error naming the offending setting.
void validate(const SwapsSettings& s);
int64_t num_swaps(const SwapsSettings& s);    // resolves -1
int64_t num_queries(const SwapsSettings& s);  // resolves 0
int64_t swaps_natural_length(const SwapsSettings& s);
int64_t swaps_length(const SwapsSettings& s);  // seq_len if set, else the natural length

// Sample `index` of the stream `seed`: a pure function of (settings, seed, index).
Sample swaps_sample(const SwapsSettings& s, uint64_t seed, uint64_t index);

}  // namespace lt2::tasks
