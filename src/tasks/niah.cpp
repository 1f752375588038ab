#include "tasks/niah.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "tasks/draw.h"
#include "tasks/text_spans.h"
#include "text/tokenizer.h"

namespace lt2::tasks {
namespace {

constexpr std::string_view kFiller =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

constexpr std::string_view kAdjectives[] = {
    "hushed", "brave",  "calm",   "eager",  "fancy",  "gentle", "happy",  "icy",    "jolly",  "kind",   "lively",
    "mighty", "nimble", "odd",    "proud",  "quiet",  "rapid",  "silly",  "tidy",   "upbeat", "vast",   "witty",
    "young",  "zany",   "bitter", "clever", "dusty",  "early",  "fuzzy",  "grumpy", "hollow", "lucky"};
constexpr std::string_view kNouns[] = {
    "tomato", "anchor", "badger", "candle", "dragon", "engine", "falcon", "garden", "harbor", "island", "jacket",
    "kettle", "lantern", "meadow", "needle", "orchard", "pepper", "quartz", "river", "saddle", "tunnel", "umbrella",
    "violin", "walnut", "yogurt", "zebra", "basket", "cactus", "donkey", "ember", "fossil", "glacier"};

size_t longest(const std::string_view* words, size_t n) {
  size_t m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, words[i].size());
  return m;
}
constexpr size_t kNumAdj = sizeof(kAdjectives) / sizeof(kAdjectives[0]);
constexpr size_t kNumNoun = sizeof(kNouns) / sizeof(kNouns[0]);

const char* what_of(NiahKind k) { return k == NiahKind::Niah3 ? "uuid" : "number"; }
int64_t value_len(NiahKind k) { return k == NiahKind::Niah3 ? 36 : 7; }

std::string make_needle(NiahKind k, const std::string& key, const std::string& value) {
  return std::string("One of the special magic ") + what_of(k) + "s for " + key + " is: " + value + ".";
}
std::string make_question(NiahKind k, const std::string& key) {
  return std::string("\nQuestion: What is the special magic ") + what_of(k) + " for " + key +
         " mentioned in the provided text?\nAnswer: ";
}

// Bytes besides the haystack: needle + " " + question + value + "\n".
int64_t overhead(NiahKind k, const std::string& key) {
  const std::string value(static_cast<size_t>(value_len(k)), '0');
  return static_cast<int64_t>(make_needle(k, key, value).size() + 1 + make_question(k, key).size() + value.size() + 1);
}

std::string make_uuid(Draw& draw) {
  static const char* hex = "0123456789abcdef";
  const uint64_t a = draw.bits(), b = draw.bits();
  int nib[32];
  for (int i = 0; i < 16; ++i) nib[i] = static_cast<int>((a >> (4 * i)) & 15);
  for (int i = 0; i < 16; ++i) nib[16 + i] = static_cast<int>((b >> (4 * i)) & 15);
  nib[12] = 4;                  // version 4
  nib[16] = 8 + (nib[16] & 3);  // variant 10xx
  std::string s;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) s.push_back('-');
    s.push_back(hex[nib[i]]);
  }
  return s;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space_byte(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space_byte(s.back())) s.remove_suffix(1);
  return s;
}

// The haystack unit read cyclically: body + separator, repeated.
struct Cyclic {
  std::string_view body, sep;
  int64_t size() const { return static_cast<int64_t>(body.size() + sep.size()); }
  char operator()(int64_t i) const {
    const int64_t n = size();
    int64_t k = i % n;
    if (k < 0) k += n;
    return k < static_cast<int64_t>(body.size()) ? body[k] : sep[k - body.size()];
  }
};

// Needle position in haystack h: nearest sentence start, else word start, within max_snap of
// the target; else the target itself.
int64_t place_needle(const std::string& h, double depth, int64_t max_snap) {
  const int64_t H = static_cast<int64_t>(h.size());
  const int64_t t = std::clamp<int64_t>(std::llround(depth * static_cast<double>(H)), 0, H);
  auto at = [&](int64_t i) { return h[static_cast<size_t>(i)]; };
  auto sentence = [&](int64_t i) { return i == 0 || i == H || sentence_start_at(at, i, 0); };
  auto word = [&](int64_t i) { return i == 0 || i == H || word_start_at(at, i, 0); };
  auto nearest = [&](auto&& is_start) -> int64_t {
    for (int64_t d = 0; d <= max_snap; ++d) {
      if (t - d >= 0 && is_start(t - d)) return t - d;
      if (d > 0 && t + d <= H && is_start(t + d)) return t + d;
    }
    return -1;
  };
  if (int64_t p = nearest(sentence); p >= 0) return p;
  if (int64_t p = nearest(word); p >= 0) return p;
  return t;
}

}  // namespace

NiahKind niah_kind_from_name(const std::string& name) {
  if (name == "niah1" || name == "niah_single_1" || name == "1") return NiahKind::Niah1;
  if (name == "niah2" || name == "niah_single_2" || name == "2") return NiahKind::Niah2;
  if (name == "niah3" || name == "niah_single_3" || name == "3") return NiahKind::Niah3;
  fail(cat("niah: unknown kind '", name, "' (expected niah1, niah2 or niah3)"));
}

std::string_view niah_filler() { return kFiller; }

int64_t niah_min_context(NiahKind kind) {
  const std::string longest_key(longest(kAdjectives, kNumAdj) + 1 + longest(kNouns, kNumNoun), 'x');
  return overhead(kind, longest_key);
}

void validate(const NiahSettings& s) {
  LT2_CHECK(s.kind == NiahKind::Niah1 || s.kind == NiahKind::Niah2 || s.kind == NiahKind::Niah3,
            "niah: kind must be 1, 2 or 3, got ", static_cast<int>(s.kind));
  LT2_CHECK(std::isfinite(s.depth) && s.depth >= 0 && s.depth <= 1, "niah: depth must be in [0, 1], got ", s.depth);
  LT2_CHECK(s.max_snap >= 0, "niah: max_snap must be >= 0, got ", s.max_snap);
  const int64_t need = niah_min_context(s.kind);
  LT2_CHECK(s.context_len >= need, "niah: context_len ", s.context_len, " is too short: the needle, question and ",
            "answer alone take up to ", need, " tokens");
}

NiahSample niah_sample(const NiahSettings& s, std::string_view prose, uint64_t seed, uint64_t index) {
  validate(s);
  Cyclic unit{kFiller, " "};
  if (s.kind != NiahKind::Niah1) {
    unit = Cyclic{trim(prose), "\n\n"};
    LT2_CHECK(!unit.body.empty(), "niah: NIAH-", static_cast<int>(s.kind),
              " needs haystack prose, got an empty or all-whitespace text");
  }
  Draw draw(seed, "s-niah", index);
  NiahSample out;
  out.key = std::string(kAdjectives[draw.below(kNumAdj)]) + "-" + std::string(kNouns[draw.below(kNumNoun)]);
  out.answer = s.kind == NiahKind::Niah3 ? make_uuid(draw) : std::to_string(draw.range(1000000, 10000000));
  out.needle = make_needle(s.kind, out.key, out.answer);
  const int64_t H = s.context_len - overhead(s.kind, out.key);
  out.haystack_len = H;

  // A window of H bytes of the cyclic unit that ends where a sentence starts (position 0 of
  // the unit always does: the body is trimmed and follows the separator).
  const int64_t U = unit.size();
  int64_t end = draw.below(U);
  while (!sentence_start_at(unit, end, end - U)) ++end;  // stops at the next copy's start at the latest
  std::string hay(static_cast<size_t>(H), ' ');
  for (int64_t i = 0; i < H; ++i) hay[i] = unit(end - H + i);

  const int64_t p = place_needle(hay, s.depth, s.max_snap);
  out.needle_pos = p;
  out.prompt.reserve(static_cast<size_t>(s.context_len));
  out.prompt.append(hay, 0, static_cast<size_t>(p));
  out.prompt += out.needle;
  out.prompt += ' ';
  out.prompt.append(hay, static_cast<size_t>(p), std::string::npos);
  out.prompt += make_question(s.kind, out.key);

  const std::string full = out.prompt + out.answer + "\n";
  LT2_CHECK(static_cast<int64_t>(full.size()) == s.context_len, "niah: internal length mismatch: ", full.size(),
            " != ", s.context_len);
  out.sample.tokens = ByteTokenizer::encode(full);
  out.sample.targets.assign(out.sample.tokens.size(), -1);
  for (size_t i = out.prompt.size(); i < full.size(); ++i) mark_answer(out.sample, static_cast<int64_t>(i));
  return out;
}

bool exact_match(std::string_view generated, std::string_view answer) {
  auto norm = [](std::string_view s) {
    if (size_t nl = s.find('\n'); nl != std::string_view::npos) s = s.substr(0, nl);
    s = trim(s);
    if (!s.empty() && s.back() == '.') s = trim(s.substr(0, s.size() - 1));
    return s;
  };
  const std::string_view a = norm(answer);
  return !a.empty() && norm(generated) == a;
}

}  // namespace lt2::tasks
