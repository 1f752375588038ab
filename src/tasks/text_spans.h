#pragma once
// Sentence and word starts in plain text, for placing a needle in a haystack without
// breaking a sentence. `at(i)` returns the byte at index i for i in [lo, i]; the functions
// never read before `lo`.
#include <cstdint>

namespace lt2::tasks {

inline bool is_space_byte(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

// True at i when a sentence starts there: at(i) is not whitespace, and the whitespace run just
// before it follows '.', '!' or '?' (optionally then a closing quote or bracket), or contains
// a blank line (paragraph start), or reaches back to `lo` (start of the text).
// False when at(i) is whitespace or at(i - 1) is not.
template <class At>
bool sentence_start_at(const At& at, int64_t i, int64_t lo) {
  if (i <= lo) return i == lo && !is_space_byte(at(i));
  if (is_space_byte(at(i)) || !is_space_byte(at(i - 1))) return false;
  int64_t j = i - 1, newlines = 0;
  while (j >= lo && is_space_byte(at(j))) newlines += at(j--) == '\n';
  if (newlines >= 2 || j < lo) return true;
  char c = at(j);
  if ((c == '"' || c == '\'' || c == ')' || c == ']') && j - 1 >= lo) c = at(j - 1);
  return c == '.' || c == '!' || c == '?';
}

// True at i when a word starts there: at(i) is not whitespace and at(i - 1) is (or i == lo).
template <class At>
bool word_start_at(const At& at, int64_t i, int64_t lo) {
  if (is_space_byte(at(i))) return false;
  return i == lo || is_space_byte(at(i - 1));
}

}  // namespace lt2::tasks
