#include "text/corpus_build.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <unordered_set>

#include "core/error.h"
#include "core/fs.h"
#include "core/rng.h"

namespace lt2 {

namespace {

// Length of the valid UTF-8 sequence at s[i] (s[i] >= 0x80), or 0 when invalid (overlong
// forms, surrogates and code points above U+10FFFF are invalid, as in the JSON parser).
size_t utf8_len(const std::string& s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
  return n;
}

std::string rstrip(const std::string& s) {
  size_t e = s.size();
  while (e > 0 && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(0, e);
}

SplitStats stats_of(const std::vector<Document>& docs) {
  SplitStats st;
  st.documents = static_cast<int64_t>(docs.size());
  for (const Document& d : docs) st.bytes += static_cast<int64_t>(d.text.size());
  st.tokens = st.bytes;  // byte tokenizer: one token per byte
  return st;
}

json::Value stats_json(const SplitStats& s) {
  json::Value v = json::Value::object();
  v.set("documents", s.documents);
  v.set("bytes", s.bytes);
  v.set("tokens", s.tokens);
  return v;
}

void write_jsonl(const std::string& path, const std::vector<Document>& docs) {
  std::string out;
  for (const Document& d : docs) {
    json::Value v = json::Value::object();
    v.set("source", d.source);
    v.set("id", d.id);
    v.set("text", d.text);
    out += v.dump();
    out += '\n';
  }
  fs::write_file_atomic(path, out);
}

}  // namespace

std::string normalize_text(const std::string& text) {
  // Characters: line ends, control characters, UTF-8 validity.
  std::string clean;
  clean.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\r') {
      clean += '\n';
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else if (c == '\n' || c == '\t') {
      clean += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      // dropped
    } else if (c < 0x80) {
      clean += static_cast<char>(c);
    } else if (const size_t n = utf8_len(text, i)) {
      // C1 control characters (U+0080..U+009F) are dropped too.
      if (!(n == 2 && c == 0xC2 && static_cast<unsigned char>(text[i + 1]) < 0xA0)) clean.append(text, i, n);
      i += n - 1;
    } else {
      clean += "\xEF\xBF\xBD";  // U+FFFD for a byte that starts no valid sequence
    }
  }
  // Lines: trailing whitespace off; blank lines at either end off.
  std::vector<std::string> lines;
  std::istringstream in(clean);
  std::string line;
  while (std::getline(in, line)) lines.push_back(rstrip(line));
  size_t a = 0, b = lines.size();
  while (a < b && lines[a].empty()) ++a;
  while (b > a && lines[b - 1].empty()) --b;
  std::string out;
  for (size_t i = a; i < b; ++i) {
    out += lines[i];
    if (i + 1 < b) out += '\n';
  }
  return out;
}

std::vector<Document> read_text_file_documents(const std::string& path) {
  LT2_CHECK(fs::exists(path), "corpus file ", path, " does not exist");
  const std::string text = normalize_text(fs::read_file(path));
  LT2_CHECK(!text.empty(), path, ": file is empty");
  std::vector<Document> docs;
  std::istringstream in(text);
  std::string line, cur;
  auto flush = [&] {
    if (!cur.empty()) docs.push_back({"file", cat(path, "#", docs.size()), cur});
    cur.clear();
  };
  while (std::getline(in, line)) {
    if (line.empty()) flush();
    else cur += (cur.empty() ? "" : "\n") + line;
  }
  flush();
  return docs;
}

DocumentSplit split_documents(std::vector<Document> docs, double val_fraction, double test_fraction,
                              uint64_t seed) {
  LT2_CHECK(val_fraction >= 0 && val_fraction < 1, "val_fraction must be in [0, 1), got ", val_fraction);
  LT2_CHECK(test_fraction >= 0 && test_fraction < 1, "test_fraction must be in [0, 1), got ", test_fraction);
  LT2_CHECK(val_fraction + test_fraction < 1, "val_fraction + test_fraction must be below 1, got ",
            val_fraction + test_fraction);
  const size_t n = docs.size();
  const CounterRng rng{seed, stream_id("corpus-build-split")};
  for (size_t i = n; i > 1; --i) std::swap(docs[i - 1], docs[rng.bits(i) % i]);  // Fisher-Yates
  auto count = [&](double f) {
    size_t k = static_cast<size_t>(std::llround(static_cast<double>(n) * f));
    if (f > 0 && k == 0 && n >= 3) k = 1;
    return k;
  };
  size_t n_val = count(val_fraction), n_test = count(test_fraction);
  while (n > 0 && n_val + n_test >= n) {  // tiny corpora: keep at least one training document
    if (n_test >= n_val && n_test > 0) --n_test;
    else if (n_val > 0) --n_val;
    else break;
  }
  DocumentSplit out;
  auto mv = [&](size_t from, size_t to, std::vector<Document>& dst) {
    dst.assign(std::make_move_iterator(docs.begin() + static_cast<std::ptrdiff_t>(from)),
               std::make_move_iterator(docs.begin() + static_cast<std::ptrdiff_t>(to)));
  };
  mv(0, n_val, out.val);
  mv(n_val, n_val + n_test, out.test);
  mv(n_val + n_test, n, out.train);
  return out;
}

CorpusReport build_corpus_from_documents(std::vector<Document> docs, const std::string& out_dir,
                                         double val_fraction, double test_fraction, uint64_t seed) {
  CorpusReport rep;
  rep.out_dir = out_dir;
  rep.seed = seed;
  rep.val_fraction = val_fraction;
  rep.test_fraction = test_fraction;
  rep.documents_read = static_cast<int64_t>(docs.size());
  for (const Document& d : docs) {
    auto it = std::find_if(rep.source_documents.begin(), rep.source_documents.end(),
                           [&](const auto& p) { return p.first == d.source; });
    if (it == rep.source_documents.end()) rep.source_documents.emplace_back(d.source, 1);
    else ++it->second;
  }
  std::vector<Document> kept;
  kept.reserve(docs.size());
  std::unordered_set<std::string> seen;
  for (Document& d : docs) {
    d.text = normalize_text(d.text);
    if (d.text.empty()) {
      ++rep.dropped_empty;
      continue;
    }
    if (!seen.insert(d.text).second) {
      ++rep.dropped_duplicates;
      continue;
    }
    kept.push_back(std::move(d));
  }
  LT2_CHECK(!kept.empty(), "corpus: no documents left after dropping ", rep.dropped_empty, " empty and ",
            rep.dropped_duplicates, " duplicate ones");
  DocumentSplit split = split_documents(std::move(kept), val_fraction, test_fraction, seed);
  rep.train = stats_of(split.train);
  rep.val = stats_of(split.val);
  rep.test = stats_of(split.test);

  fs::make_dirs(out_dir);
  write_jsonl(out_dir + "/train.jsonl", split.train);
  write_jsonl(out_dir + "/val.jsonl", split.val);
  write_jsonl(out_dir + "/test.jsonl", split.test);
  fs::write_file_atomic(out_dir + "/report.json", rep.to_json().dump(2) + "\n");
  return rep;
}

CorpusReport build_corpus(const std::vector<std::string>& sources, const std::vector<std::string>& extra_files,
                          const std::string& out_dir, double val_fraction, double test_fraction, uint64_t seed) {
  LT2_CHECK(!sources.empty() || !extra_files.empty(), "corpus: no sources and no files given");
  // Check the fractions before the (slow) gathering.
  LT2_CHECK(val_fraction >= 0 && test_fraction >= 0 && val_fraction + test_fraction < 1,
            "val_fraction and test_fraction must be >= 0 with a sum below 1, got ", val_fraction, " and ",
            test_fraction);
  std::vector<Document> docs;
  for (const std::string& s : sources) {
    auto part = load_source(s);
    docs.insert(docs.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  for (const std::string& f : extra_files) {
    auto part = read_text_file_documents(f);
    docs.insert(docs.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return build_corpus_from_documents(std::move(docs), out_dir, val_fraction, test_fraction, seed);
}

json::Value CorpusReport::to_json() const {
  json::Value v = json::Value::object();
  v.set("seed", seed);
  v.set("val_fraction", val_fraction);
  v.set("test_fraction", test_fraction);
  v.set("split_unit", "document");
  v.set("tokenizer", "bytes");
  json::Value src = json::Value::object();
  for (const auto& [name, n] : source_documents) src.set(name, n);
  v.set("source_documents", src);
  v.set("documents_read", documents_read);
  v.set("dropped_empty", dropped_empty);
  v.set("dropped_duplicates", dropped_duplicates);
  json::Value sp = json::Value::object();
  sp.set("train", stats_json(train));
  sp.set("val", stats_json(val));
  sp.set("test", stats_json(test));
  v.set("splits", sp);
  return v;
}

std::string CorpusReport::summary() const {
  std::ostringstream os;
  os << "corpus: " << documents_read << " documents read (";
  for (size_t i = 0; i < source_documents.size(); ++i)
    os << (i ? ", " : "") << source_documents[i].first << " " << source_documents[i].second;
  os << "); dropped " << dropped_empty << " empty, " << dropped_duplicates << " duplicate\n";
  auto row = [&](const char* name, const SplitStats& s) {
    os << "  " << name << ": " << s.documents << " documents, " << s.bytes << " bytes, " << s.tokens
       << " tokens (bytes)\n";
  };
  row("train", train);
  row("val  ", val);
  row("test ", test);
  os << "  written to " << out_dir << "/{train,val,test}.jsonl and report.json\n";
  return os.str();
}

}  // namespace lt2
