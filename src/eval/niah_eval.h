#pragma once
// S-NIAH evaluation grid: accuracy of greedy generation per (context length, needle depth).
//
// Each cell draws `samples_per_cell` samples with tasks::niah_sample from an evaluation seed
// stream disjoint from the training and held-out task streams, greedy-decodes
// answer.size() + 1 tokens after each prompt (the value and the newline that ends it), and
// scores the generation with tasks::exact_match. The samples of a cell run as one batch of
// a Session when their caches fit the memory budget, else in several batches.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "model/looped_model.h"
#include "tasks/niah.h"

namespace lt2::eval {

struct NiahCell {
  int64_t context = 0;
  double depth = 0;
  int64_t samples = 0, correct = 0;
  double accuracy() const { return samples > 0 ? double(correct) / double(samples) : 0.0; }
};

struct NiahGrid {
  std::string kind;               // "niah1", "niah2", "niah3"
  std::vector<int64_t> contexts;  // rows
  std::vector<double> depths;     // columns
  std::vector<NiahCell> cells;    // row-major: cells[r * depths.size() + c]
  const NiahCell& at(size_t row, size_t col) const { return cells[row * depths.size() + col]; }
};

// Called after each cell: (cells done, cells in all, the cell just scored).
using NiahProgress = std::function<void(int64_t done, int64_t total, const NiahCell& cell)>;

// Generates text for a batch of prompts: out[i] = the max_new[i] tokens (bytes) that follow
// prompts[i]. The model path is greedy decoding; tests plug in fakes.
using NiahGenerator =
    std::function<std::vector<std::string>(const std::vector<std::string>& prompts, const std::vector<int64_t>& max_new)>;

// "niah1" / "niah2" / "niah3".
std::string niah_kind_name(tasks::NiahKind kind);

// The seed of the evaluation sample stream of cell (context, depth index) for a user seed:
// mixed with a constant so it never coincides with a training or held-out stream.
uint64_t niah_eval_seed(uint64_t seed, int64_t context, size_t depth_index);

// Checks the grid before any work: non-empty contexts / depths, samples >= 1, every
// (context, depth) valid for the kind, prose present for NIAH-2/3, and (max_context > 0)
// every context <= max_context. Throws lt2::Error naming the offending value / limit.
void validate_niah_grid(tasks::NiahKind kind, const std::vector<int64_t>& contexts, const std::vector<double>& depths,
                        int64_t samples_per_cell, std::string_view prose, int64_t max_context);

// Scores one sample: exact_match of the generation against the sample's answer.
bool score_niah_sample(const tasks::NiahSample& s, std::string_view generated);

// The model-free core: the grid through any generator (max_context 0 = no limit).
NiahGrid evaluate_niah_with(const NiahGenerator& generate, tasks::NiahKind kind, const std::vector<int64_t>& contexts,
                            const std::vector<double>& depths, int64_t samples_per_cell, std::string_view prose,
                            uint64_t seed, const NiahProgress& progress = {}, int64_t max_context = 0);

// Greedy generation through a Session: prompts batched together (at most max_batch per
// Session; 0 = as many as fit a cache budget of 2 GiB). Every prompt + max_new must fit the
// model's max_position_embeddings.
std::vector<std::string> greedy_generate(const LoopedModel& model, const std::vector<std::string>& prompts,
                                         const std::vector<int64_t>& max_new, int64_t max_batch = 0);

// The grid for a model: contexts beyond its max_position_embeddings are an lt2::Error naming
// the limit, and so is a model whose config.tokenizer is not "bytes" (samples are byte tokens).
NiahGrid evaluate_niah(const LoopedModel& model, tasks::NiahKind kind, const std::vector<int64_t>& contexts,
                       const std::vector<double>& depths, int64_t samples_per_cell, std::string_view prose,
                       uint64_t seed, const NiahProgress& progress = {});

// Markdown table: one row per context, one column per depth, accuracy in % per cell, plus
// the mean of each row and an overall mean.
std::string niah_table(const NiahGrid& g);
// "0.25" style depth labels: shortest of up to 3 decimals.
std::string depth_label(double d);

// JSON document of the grid (kind, contexts, depths, cells with samples / correct / accuracy).
std::string niah_json(const NiahGrid& g);

}  // namespace lt2::eval
