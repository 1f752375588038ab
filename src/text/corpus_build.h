#pragma once
// Assembles a real-text corpus: documents from package sources (corpus_sources.h) and user
// text files, normalised, deduplicated by exact text, shuffled with a seed and split BY
// DOCUMENT into train / val / test, written as JSON lines plus a report.
//
//   out_dir/train.jsonl, val.jsonl, test.jsonl   one {"source","id","text"} object per line
//   out_dir/report.json                          counts per source and per split
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/json.h"
#include "text/corpus_sources.h"

namespace lt2 {

struct SplitStats {
  int64_t documents = 0;
  int64_t bytes = 0;   // UTF-8 bytes of the documents' texts
  int64_t tokens = 0;  // byte tokens (= bytes)
};

struct CorpusReport {
  std::string out_dir;
  uint64_t seed = 0;
  double val_fraction = 0, test_fraction = 0;
  std::vector<std::pair<std::string, int64_t>> source_documents;  // per Document::source, as read
  int64_t documents_read = 0;
  int64_t dropped_empty = 0;       // empty after normalisation
  int64_t dropped_duplicates = 0;  // exact duplicates (after normalisation) of an earlier document
  SplitStats train, val, test;

  json::Value to_json() const;
  // A few human-readable lines (per source, dropped counts, per split docs / bytes / tokens).
  std::string summary() const;
};

// \r\n and lone \r -> \n; control characters other than \n and \t removed; invalid UTF-8 bytes
// -> U+FFFD; trailing whitespace removed from every line; leading and trailing blank lines
// removed (inner blank lines, i.e. paragraph structure, and indentation are kept).
std::string normalize_text(const std::string& text);

// A user text file: one document per paragraph group (text separated by one or more blank
// lines), ids "<path>#<n>", source "file". Missing or empty files throw naming the path.
std::vector<Document> read_text_file_documents(const std::string& path);

struct DocumentSplit {
  std::vector<Document> train, val, test;
};

// Shuffles with `seed` (Fisher-Yates over a counter RNG) and cuts: the first
// round(n * val_fraction) documents go to val, the next round(n * test_fraction) to test, the
// rest to train. A positive fraction gets at least one document when n >= 3. Deterministic in
// (documents, seed); the three parts are disjoint and together hold every document.
DocumentSplit split_documents(std::vector<Document> docs, double val_fraction, double test_fraction,
                              uint64_t seed);

// Gathers `sources` (names of corpus_source_names(), default roots) and `extra_files`,
// normalises, drops empty documents and exact duplicates (first occurrence kept, sources in the
// order given, then the files), splits and writes out_dir (created if missing; each file
// written atomically). Throws lt2::Error on a missing source / file or bad fractions.
CorpusReport build_corpus(const std::vector<std::string>& sources, const std::vector<std::string>& extra_files,
                          const std::string& out_dir, double val_fraction, double test_fraction, uint64_t seed);

// The same from documents already in memory (what build_corpus does after gathering).
CorpusReport build_corpus_from_documents(std::vector<Document> docs, const std::string& out_dir,
                                         double val_fraction, double test_fraction, uint64_t seed);

}  // namespace lt2
