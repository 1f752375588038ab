#pragma once
// Tokenizers. Byte-level: token = byte value (0..255), lossless on any input, no training.
// SentencePiece BPE (src/text/sp_tokenizer.h): trained by `lt2 data tokenizer`, byte fallback so
// it is lossless too. A model's config records which one it was trained with as a spec string:
// "bytes" or "sentencepiece:<file relative to the model directory>"; load_tokenizer() opens it.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lt2 {

// The static byte tokenizer; code that only ever uses bytes calls ByteTokenizer::encode/decode.
struct ByteTokenizer {
  static constexpr int64_t vocab_size = 256;
  static std::vector<int32_t> encode(std::string_view text) {
    std::vector<int32_t> ids(text.size());
    for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
    return ids;
  }
  static std::string decode(const std::vector<int32_t>& ids) {
    std::string s;
    s.reserve(ids.size());
    for (int32_t id : ids) s.push_back(static_cast<char>(id & 0xff));
    return s;
  }
};

// Any tokenizer. Ids are in [0, vocab_size()).
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  // The spec string a model config records: "bytes" or "sentencepiece:<file>".
  virtual std::string name() const = 0;
};

// ByteTokenizer behind the Tokenizer interface.
class ByteLevelTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text) const override { return ByteTokenizer::encode(text); }
  std::string decode(const std::vector<int32_t>& ids) const override { return ByteTokenizer::decode(ids); }
  int64_t vocab_size() const override { return ByteTokenizer::vocab_size; }
  std::string name() const override { return "bytes"; }
};

// Opens the tokenizer named by `spec`: "bytes", or "sentencepiece:<file>" with <file> relative
// to `base_dir` (an absolute path is used as is). Errors name the spec / file and the reason;
// in a build without SentencePiece the sentencepiece: form throws "built without SentencePiece".
// Defined in src/text/sp_tokenizer.cpp.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec, const std::string& base_dir);

// Throws a clear lt2::Error when the tokenizer's ids do not fit the model's embedding table
// (tokenizer vocab_size > model vocab_size), e.g. a checkpoint used with the wrong tokenizer.
// `ctx` names the model (path) for the message. Defined in src/text/sp_tokenizer.cpp.
void check_tokenizer_vocab(const Tokenizer& tok, int64_t model_vocab_size, const std::string& ctx);

}  // namespace lt2
