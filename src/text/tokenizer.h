#pragma once
// Byte-level tokenizer: token = byte value (0..255). Lossless on any input, no training.
// SentencePiece BPE arrives with the data issue; the model's config records which one it used.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lt2 {

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

}  // namespace lt2
