// Tokenizers: the byte tokenizer, SentencePiece BPE training (lossless, deterministic), load_tokenizer.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "error_util.h"
#include "core/error.h"
#include "core/fs.h"
#include "text/sp_tokenizer.h"
#include "text/tokenizer.h"

namespace sfs = std::filesystem;

using lt2::test::error_of;

namespace {

struct TokTempDir {
  std::string dir;
  TokTempDir() {
    std::string tmpl = (sfs::temp_directory_path() / "lt2_tok_XXXXXX").string();
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir = tmpl;
  }
  ~TokTempDir() {
    std::error_code ec;
    sfs::remove_all(dir, ec);
  }
};


// A few hundred generated sentences grouped into multi-line documents (fixed LCG: deterministic).
std::vector<std::string> make_corpus() {
  const std::vector<std::string> subj = {"The cat", "A dog", "My friend", "The old king", "Every bird", "She",
                                         "The river", "Our teacher"};
  const std::vector<std::string> verb = {"sees", "likes", "follows", "remembers", "finds", "watches", "loves"};
  const std::vector<std::string> obj = {"the moon", "a small house", "the green field", "two apples",
                                        "the quiet sea", "an open door", "the morning light"};
  const std::vector<std::string> tail = {".", "!", "?", ", and then sleeps.", " again.", " (twice)."};
  uint64_t s = 42;
  auto next = [&](size_t n) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return size_t((s >> 33) % n);
  };
  std::vector<std::string> docs;
  for (int d = 0; d < 60; ++d) {
    std::string doc;
    for (int k = 0; k < 5; ++k) {
      if (k) doc += next(3) == 0 ? "\n" : "  ";
      doc += subj[next(subj.size())] + " " + verb[next(verb.size())] + " " + obj[next(obj.size())] + " " +
             std::to_string(next(2000)) + tail[next(tail.size())];
    }
    docs.push_back(doc);
  }
  return docs;
}

}  // namespace

TEST(Tokenizer, ByteRoundTrip) {
  const std::string text = std::string("hello\n\t world \xff\x00\x80 ", 17) + "\xc3\xa9";
  lt2::ByteLevelTokenizer tok;
  const auto ids = tok.encode(text);
  ASSERT_EQ(ids.size(), text.size());
  for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < 256);
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_EQ(tok.vocab_size(), 256);
  EXPECT_EQ(tok.name(), "bytes");
  EXPECT_EQ(lt2::ByteTokenizer::encode(text), ids);  // the static API is unchanged

  const auto loaded = lt2::load_tokenizer("bytes", "/nonexistent");
  EXPECT_EQ(loaded->name(), "bytes");
  EXPECT_EQ(loaded->decode(loaded->encode(text)), text);
}

TEST(Tokenizer, LoadTokenizerErrors) {
  const std::string msg = error_of([] { lt2::load_tokenizer("wordpiece", "."); });
  EXPECT_NE(msg.find("unknown tokenizer \"wordpiece\""), std::string::npos) << msg;
  const std::string msg2 = error_of([] { lt2::load_tokenizer("sentencepiece:", "."); });
  EXPECT_NE(msg2.find("missing the model file"), std::string::npos) << msg2;
}

TEST(Tokenizer, VocabMismatchIsAnError) {
  lt2::ByteLevelTokenizer tok;
  EXPECT_NO_THROW(lt2::check_tokenizer_vocab(tok, 256, "m"));
  EXPECT_NO_THROW(lt2::check_tokenizer_vocab(tok, 512, "m"));
  const std::string msg = error_of([&] { lt2::check_tokenizer_vocab(tok, 100, "runs/x"); });
  EXPECT_NE(msg.find("runs/x"), std::string::npos) << msg;
  EXPECT_NE(msg.find("mismatch"), std::string::npos) << msg;
}

TEST(Tokenizer, SentencePieceTrainLosslessDeterministic) {
#ifndef LT2_HAVE_SENTENCEPIECE
  GTEST_SKIP() << "built without SentencePiece";
#endif
  TokTempDir tmp;
  const auto docs = make_corpus();
  const int64_t vocab = 400;
  lt2::train_sentencepiece(docs, vocab, tmp.dir + "/a/tok");
  ASSERT_TRUE(lt2::fs::exists(tmp.dir + "/a/tok.model"));
  ASSERT_TRUE(lt2::fs::exists(tmp.dir + "/a/tok.vocab"));

  const auto tok = lt2::load_tokenizer("sentencepiece:tok.model", tmp.dir + "/a");
  EXPECT_EQ(tok->vocab_size(), vocab);
  EXPECT_EQ(tok->name(), "sentencepiece:tok.model");

  // Lossless on the training text, and it compresses (BPE merges were learned).
  size_t bytes = 0, tokens = 0;
  for (const auto& d : docs) {
    const auto ids = tok->encode(d);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < vocab);
    EXPECT_EQ(tok->decode(ids), d);
    bytes += d.size();
    tokens += ids.size();
  }
  EXPECT_GT(double(bytes) / double(tokens), 2.0) << bytes << " bytes, " << tokens << " tokens";

  // Lossless on unseen text: characters never seen in training go through byte fallback; whitespace
  // (leading, repeated, tabs, newlines, CR) is kept as is.
  const std::vector<std::string> unseen = {
      "  leading spaces, trailing   ",
      "Zebra quartz \xc3\xbc\xc3\xb1\xc3\xaf\xc3\xa7\xc3\xb8\xc3\xb0\xc3\xa9 \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac "
      "\xf0\x9f\x98\x80!",
      "tabs\tand\r\nCRLF\n\n\nblank lines  ~`|^{}[]<>@#$%&*_+=\\/",
      "\n",
      "",
  };
  for (const auto& u : unseen) EXPECT_EQ(tok->decode(tok->encode(u)), u) << "text: " << u;

  // Deterministic: training again on the same documents gives the same .model bytes.
  lt2::train_sentencepiece(docs, vocab, tmp.dir + "/b/tok");
  EXPECT_EQ(lt2::fs::read_file(tmp.dir + "/a/tok.model"), lt2::fs::read_file(tmp.dir + "/b/tok.model"));
  EXPECT_EQ(lt2::fs::read_file(tmp.dir + "/a/tok.vocab"), lt2::fs::read_file(tmp.dir + "/b/tok.vocab"));
  const auto tok2 = lt2::load_tokenizer("sentencepiece:" + tmp.dir + "/b/tok.model", "/ignored/for/absolute");
  for (const auto& d : docs) EXPECT_EQ(tok2->encode(d), tok->encode(d));

  // A model with a smaller embedding table than the tokenizer: clear error.
  const std::string msg = error_of([&] { lt2::check_tokenizer_vocab(*tok, 256, "runs/bytes-model"); });
  EXPECT_NE(msg.find("sentencepiece:tok.model"), std::string::npos) << msg;
  EXPECT_NE(msg.find("400"), std::string::npos) << msg;
}

TEST(Tokenizer, SentencePieceLoadErrors) {
#ifndef LT2_HAVE_SENTENCEPIECE
  GTEST_SKIP() << "built without SentencePiece";
#endif
  TokTempDir tmp;
  const std::string missing = error_of([&] { lt2::load_tokenizer("sentencepiece:nope.model", tmp.dir); });
  EXPECT_NE(missing.find(tmp.dir + "/nope.model"), std::string::npos) << missing;
  EXPECT_NE(missing.find("not found"), std::string::npos) << missing;

  lt2::fs::write_file_atomic(tmp.dir + "/bad.model", "this is not a protobuf \x01\x02\xff");
  const std::string bad = error_of([&] { lt2::load_tokenizer("sentencepiece:bad.model", tmp.dir); });
  EXPECT_NE(bad.find(tmp.dir + "/bad.model"), std::string::npos) << bad;
  EXPECT_NE(bad.find("corrupt"), std::string::npos) << bad;

  const std::string small =
      error_of([&] { lt2::train_sentencepiece({"abc"}, 100, tmp.dir + "/small"); });
  EXPECT_NE(small.find("vocab_size"), std::string::npos) << small;
}

#ifndef LT2_HAVE_SENTENCEPIECE
// Only in builds without SentencePiece (e.g. a machine lacking libsentencepiece-dev).
TEST(Tokenizer, WithoutSentencePieceClearError) {
  const std::string msg = error_of([] { lt2::load_tokenizer("sentencepiece:tok.model", "."); });
  EXPECT_NE(msg.find("built without SentencePiece"), std::string::npos) << msg;
  const std::string msg2 = error_of([] { lt2::train_sentencepiece({"abc"}, 300, "/tmp/x"); });
  EXPECT_NE(msg2.find("built without SentencePiece"), std::string::npos) << msg2;
}
#endif
