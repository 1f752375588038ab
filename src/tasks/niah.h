#pragma once
// S-NIAH: RULER's single needle in a haystack, on byte tokens (1 byte = 1 token).
//
//   NIAH-1: haystack = RULER's repeated filler ("The grass is green. The sky is blue. ..."),
//           needle "One of the special magic numbers for {key} is: {7 digits}."
//   NIAH-2: haystack = real prose (the caller's text, e.g. held-out corpus text), same needle.
//   NIAH-3: haystack = real prose, needle "One of the special magic uuids for {key} is: {uuid}."
//
// {key} is an adjective-noun word ("hushed-tomato", as RULER's wonderwords keys); the number
// has 7 digits (first nonzero); the uuid is a random version-4 UUID (36 lowercase chars).
//
// Sample text (exactly context_len bytes):
//
//   haystack[0, p) + needle + " " + haystack[p, H)                      (the document)
//   + "\nQuestion: What is the special magic {number|uuid} for {key} mentioned in the provided text?\nAnswer: "
//   + value + "\n"                                                      (the answer tokens)
//
// The loss falls only on the answer tokens `value + "\n"` (the newline teaches the model to
// stop; exact_match cuts the generation there). The haystack is a window of H bytes of the
// filler / prose read cyclically (prose copies are joined by a blank line) that ends at a
// sentence end, so only its first sentence may be cut. H = context_len minus the needle,
// question and answer, so the key's length changes H slightly from sample to sample.
//
// Depth: the needle goes at the sentence start p nearest to depth * H (ties: the earlier;
// 0 and H count as sentence starts); if none lies within max_snap bytes, at the nearest word
// start within max_snap bytes; failing that at round(depth * H). So always
// |p - depth * H| <= max_snap, and with the filler haystack (sentence starts <= 22 bytes apart)
// |p - depth * H| <= 11.
#include <cstdint>
#include <string>
#include <string_view>

#include "tasks/sample.h"

namespace lt2::tasks {

enum class NiahKind { Niah1 = 1, Niah2 = 2, Niah3 = 3 };

struct NiahSettings {
  NiahKind kind = NiahKind::Niah1;
  int64_t context_len = 1024;  // total bytes = tokens of the sample, answer included
  double depth = 0.5;          // fraction of the haystack before the needle, in [0, 1]
  int64_t max_snap = 128;      // how far the needle may move to reach a sentence / word start
};

struct NiahSample {
  std::string prompt;      // document + question, ending in "Answer: "
  std::string answer;      // the value alone (7 digits or a uuid)
  std::string key;         // the key word the needle and question name
  std::string needle;      // the needle sentence
  int64_t needle_pos = 0;  // byte offset of the needle in the prompt = haystack bytes before it (p)
  int64_t haystack_len = 0;  // H
  Sample sample;           // byte tokens of prompt + answer + "\n"; loss only on answer + "\n"
};

// "niah1" / "niah_single_1" / "1" (and 2, 3) -> NiahKind; anything else is an lt2::Error.
NiahKind niah_kind_from_name(const std::string& name);

// RULER's filler paragraph, the NIAH-1 haystack unit.
std::string_view niah_filler();

// The smallest context_len any sample of this kind fits in (with an empty haystack).
int64_t niah_min_context(NiahKind kind);

// Throws lt2::Error naming the offending setting (context_len too small, depth outside [0, 1], ...).
void validate(const NiahSettings& s);

// Sample `index` of stream `seed`, a pure function of (settings, prose, seed, index).
// `prose` is the haystack text for NIAH-2 / NIAH-3 (must hold non-whitespace text; it is read
// cyclically, so any length works, though a short one repeats); NIAH-1 ignores it.
NiahSample niah_sample(const NiahSettings& s, std::string_view prose, uint64_t seed, uint64_t index);

// RULER-style exact match: the generation up to its first newline, whitespace-trimmed and
// with one trailing '.' dropped, equals the answer (trimmed the same way, and non-empty).
bool exact_match(std::string_view generated, std::string_view answer);

}  // namespace lt2::tasks
