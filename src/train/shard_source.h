#pragma once
// Training rows from token shards (lt2 data shards): <dir>/train/*.lt2shard for training
// windows, <dir>/val/*.lt2shard for validation. Memory-mapped, so corpora of any size work.
#include <memory>
#include <string>

#include "train/data_loader.h"

namespace lt2 {

std::shared_ptr<RowSource> make_shard_source(const std::string& dir, int64_t seq_len, uint64_t seed);

// Tokenizes <corpus>/{train,val,test}.jsonl (lt2 data corpus) with the byte tokenizer into
// <out>/{train,val,test}/ shards; returns a one-line summary per split.
std::string write_corpus_shards(const std::string& corpus_dir, const std::string& out_dir, int64_t tokens_per_shard);

}  // namespace lt2
