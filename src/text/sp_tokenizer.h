#pragma once
// SentencePiece BPE tokenizer (Debian libsentencepiece). Trained with byte_fallback and identity
// normalization, so decode(encode(text)) == text for any valid UTF-8 text, including characters
// never seen in training (they become byte pieces). Two exceptions: a literal U+2581 "▁" comes
// back as a space (SentencePiece's whitespace marker), and invalid UTF-8 is not preserved (bad
// bytes become U+FFFD); the corpus from `lt2 data corpus` is valid UTF-8.
// In a build without SentencePiece (no LT2_HAVE_SENTENCEPIECE) every entry point throws
// lt2::Error("built without SentencePiece ...").
#include <memory>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace lt2 {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // Loads <model_path> (a .model file). Errors name the file: missing, unreadable or corrupt.
  // `spec` is what name() returns; default "sentencepiece:<file name of model_path>".
  explicit SentencePieceTokenizer(const std::string& model_path, std::string spec = "");
  ~SentencePieceTokenizer() override;

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override;
  std::string name() const override { return spec_; }
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_, spec_;
};

// Trains a SentencePiece BPE model on `documents` (held in memory, fed through a sentence
// iterator, one line of a document per sentence) and writes <model_prefix>.model and
// <model_prefix>.vocab. Settings: model_type=bpe, byte_fallback, character_coverage 1.0,
// identity normalization (no NFKC, whitespace kept), no dummy prefix, no shuffling or
// sampling (every line is used, in order), one thread: deterministic, the same documents
// give the same .model bytes. Ids 0,1,2 are <unk>,<s>,</s>; 256 byte pieces <0x00>..<0xFF>
// follow, then the merges. Needs vocab_size >= 259 + the number of distinct characters.
void train_sentencepiece(const std::vector<std::string>& documents, int64_t vocab_size,
                         const std::string& model_prefix);

}  // namespace lt2
