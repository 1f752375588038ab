#pragma once
// Packs task samples into the trainer's Batch (ids / targets I32 [B, L]).
#include <cstdint>
#include <vector>

#include "tasks/sample.h"
#include "train/data_loader.h"

namespace lt2::tasks {

// Row b holds samples[b], right-padded to seq_len with `pad` tokens and -1 targets.
// A sample longer than seq_len is an lt2::Error (tasks size their samples; we never truncate
// answers away silently).
Batch to_batch(const std::vector<Sample>& samples, int64_t seq_len, int32_t pad = 0);

}  // namespace lt2::tasks
