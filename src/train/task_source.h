#pragma once
// Training and evaluation rows from a synthetic task (src/tasks), described in a run config
// as "task": {"name": "mqar" | "swaps" | "probe" | "niah1", ...settings}.
#include <memory>
#include <string>

#include "core/json.h"
#include "train/data_loader.h"

namespace lt2 {

// seq_len: the training sequence length (samples are padded to it; longer ones are an error).
// Evaluation rows use a seed disjoint from training's, so they are held-out samples.
std::shared_ptr<RowSource> make_task_source(const json::Value& spec, int64_t seq_len, uint64_t seed,
                                            int64_t eval_rows, const std::string& ctx);

struct TrainConfig;
// The rows a run trains and validates on: its task if it has one, else its token shards,
// else its text files (or the default corpus) split by document. `summary` gets one line.
class Tokenizer;
// `tok` tokenizes text (null = bytes); token shards are byte-level.
std::shared_ptr<RowSource> make_data_source(const TrainConfig& tc, std::string* summary, const Tokenizer* tok = nullptr);

// Evaluation rows over whole text files (read as lt2 train reads them: .jsonl gives each line's
// "text"), windows of min(seq_len, max_seq_len, what the text allows) tokens.
std::shared_ptr<RowSource> make_eval_text_source(const std::vector<std::string>& files, const Tokenizer& tok,
                                                 int64_t seq_len, int64_t max_seq_len);

}  // namespace lt2
