#pragma once
// Text corpora for training: documents from files, split by document into train and
// validation with a fixed seed, tokenized to flat token streams.
#include <cstdint>
#include <string>
#include <vector>

namespace lt2 {

struct TokenSplit {
  std::vector<int32_t> train, val;
  int64_t train_docs = 0, val_docs = 0;
};

// The built-in default corpus: the Debian `fortunes` package (/usr/share/games/fortunes).
std::vector<std::string> default_corpus_files();

// Reads documents from text files: a line that is empty or exactly "%" ends a document
// (fortune-file and paragraph style); a .jsonl file (lt2 data corpus) gives one document per
// line's "text". Missing or empty files and malformed lines are errors naming the file (and line).
std::vector<std::string> read_documents(const std::vector<std::string>& files);

// Shuffles documents with `seed`, puts `val_fraction` of them (at least one) in validation,
// joins each split with blank lines and byte-tokenizes it. With fewer than 10 documents the
// split falls back to the token stream's tail, so a single text file still gets a validation set.
class Tokenizer;
// `tok` null = bytes.
TokenSplit split_and_tokenize(const std::vector<std::string>& docs, double val_fraction, uint64_t seed,
                              const Tokenizer* tok = nullptr);

}  // namespace lt2
