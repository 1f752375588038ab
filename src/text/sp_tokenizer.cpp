#include "text/sp_tokenizer.h"

#include <filesystem>

#include "core/error.h"
#include "core/fs.h"

#ifdef LT2_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <sstream>
#include <unordered_map>
#endif

namespace lt2 {

namespace {
[[maybe_unused]] constexpr const char* kNoSp =
    "built without SentencePiece (install libsentencepiece-dev, e.g. scripts/setup, and re-run cmake)";
}

#ifdef LT2_HAVE_SENTENCEPIECE

struct SentencePieceTokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path, std::string spec)
    : impl_(std::make_unique<Impl>()), path_(model_path), spec_(std::move(spec)) {
  if (spec_.empty()) spec_ = "sentencepiece:" + std::filesystem::path(model_path).filename().string();
  LT2_CHECK(fs::exists(model_path), "SentencePiece model ", model_path, " not found (train one with `lt2 data tokenizer`)");
  const std::string bytes = fs::read_file(model_path);
  const auto st = impl_->sp.LoadFromSerializedProto(bytes);
  LT2_CHECK(st.ok(), "SentencePiece model ", model_path, " is corrupt or not a SentencePiece .model file: ",
            st.ToString());
  LT2_CHECK(impl_->sp.GetPieceSize() > 0, "SentencePiece model ", model_path, " has an empty vocabulary");
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto st = impl_->sp.Encode(text, &ids);
  LT2_CHECK(st.ok(), "SentencePiece (", path_, "): encode failed: ", st.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  const int n = impl_->sp.GetPieceSize();
  std::vector<int> v(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    LT2_CHECK(ids[i] >= 0 && ids[i] < n, "SentencePiece (", path_, "): token id ", ids[i],
              " out of range [0, ", n, ")");
    v[i] = ids[i];
  }
  std::string out;
  const auto st = impl_->sp.Decode(v, &out);
  LT2_CHECK(st.ok(), "SentencePiece (", path_, "): decode failed: ", st.ToString());
  return out;
}

int64_t SentencePieceTokenizer::vocab_size() const { return impl_->sp.GetPieceSize(); }

namespace {
// Feeds the documents' non-empty lines, in order.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::vector<std::string>& docs) : docs_(docs) { advance(); }
  bool done() const override { return doc_ >= docs_.size(); }
  void Next() override { advance(); }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  // Moves to the next non-empty line (from pos_ in docs_[doc_]).
  void advance() {
    while (doc_ < docs_.size()) {
      const std::string& d = docs_[doc_];
      if (pos_ > d.size()) {
        ++doc_;
        pos_ = 0;
        continue;
      }
      size_t e = d.find('\n', pos_);
      if (e == std::string::npos) e = d.size();
      line_.assign(d, pos_, e - pos_);
      pos_ = e + 1;
      if (!line_.empty()) return;
    }
    line_.clear();
  }
  const std::vector<std::string>& docs_;
  size_t doc_ = 0, pos_ = 0;
  std::string line_;
};
}  // namespace

void train_sentencepiece(const std::vector<std::string>& documents, int64_t vocab_size,
                         const std::string& model_prefix) {
  LT2_CHECK(!documents.empty(), "train_sentencepiece: no documents");
  LT2_CHECK(vocab_size >= 260, "train_sentencepiece: vocab_size must be >= 260 (3 specials + 256 byte pieces + ",
            "the characters), got ", vocab_size);
  const std::filesystem::path dir = std::filesystem::path(model_prefix).parent_path();
  if (!dir.empty()) fs::make_dirs(dir.string());
  const std::unordered_map<std::string, std::string> kw = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab_size)},
      {"byte_fallback", "true"},
      {"character_coverage", "1.0"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"max_sentence_length", "1000000"},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"num_threads", "1"},
      {"minloglevel", "2"},
  };
  sentencepiece::SetRandomGeneratorSeed(1234);
  LineIterator it(documents);
  // Given model_prefix the trainer would record it in the model (bytes would depend on the output
  // path); instead it returns the serialized model (no prefix recorded) and we write both files.
  std::string proto;
  const auto st = sentencepiece::SentencePieceTrainer::Train(kw, &it, &proto);
  LT2_CHECK(st.ok(), "SentencePiece training (", model_prefix, ".model, vocab ", vocab_size, ") failed: ",
            st.ToString());
  sentencepiece::SentencePieceProcessor sp;
  const auto ls = sp.LoadFromSerializedProto(proto);
  LT2_CHECK(ls.ok(), "SentencePiece training (", model_prefix, ".model): the trained model does not load: ",
            ls.ToString());
  std::ostringstream vocab;
  for (int i = 0; i < sp.GetPieceSize(); ++i) vocab << sp.IdToPiece(i) << '\t' << sp.GetScore(i) << '\n';
  fs::write_file_atomic(model_prefix + ".model", proto);
  fs::write_file_atomic(model_prefix + ".vocab", vocab.str());
}

#else  // !LT2_HAVE_SENTENCEPIECE

struct SentencePieceTokenizer::Impl {};
SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path, std::string spec)
    : path_(model_path), spec_(std::move(spec)) {
  fail(cat("cannot load SentencePiece model ", model_path, ": ", kNoSp));
}
SentencePieceTokenizer::~SentencePieceTokenizer() = default;
std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view) const { fail(kNoSp); }
std::string SentencePieceTokenizer::decode(const std::vector<int32_t>&) const { fail(kNoSp); }
int64_t SentencePieceTokenizer::vocab_size() const { fail(kNoSp); }
void train_sentencepiece(const std::vector<std::string>&, int64_t, const std::string& model_prefix) {
  fail(cat("cannot train ", model_prefix, ".model: ", kNoSp));
}

#endif

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec, const std::string& base_dir) {
  if (spec == "bytes") return std::make_unique<ByteLevelTokenizer>();
  const std::string pre = "sentencepiece:";
  if (spec.rfind(pre, 0) == 0) {
    const std::string file = spec.substr(pre.size());
    LT2_CHECK(!file.empty(), "tokenizer \"", spec, "\": missing the model file after \"sentencepiece:\"");
    const std::filesystem::path p(file);
    const std::string path = (p.is_absolute() || base_dir.empty()) ? file : (std::filesystem::path(base_dir) / p).string();
    return std::make_unique<SentencePieceTokenizer>(path, spec);
  }
  fail(cat("unknown tokenizer \"", spec, "\": expected \"bytes\" or \"sentencepiece:<file.model>\""));
}

void check_tokenizer_vocab(const Tokenizer& tok, int64_t model_vocab_size, const std::string& ctx) {
  LT2_CHECK(tok.vocab_size() <= model_vocab_size, ctx, ": tokenizer ", tok.name(), " has ", tok.vocab_size(),
            " tokens but the model's vocab_size is ", model_vocab_size,
            " (tokenizer/model mismatch: use the tokenizer the model was trained with)");
}

}  // namespace lt2
