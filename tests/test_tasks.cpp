// Synthetic tasks: every generator's answers are checked against an independent solver
// written here (recompute the key->value map, replay the swaps, find the needle, ...),
// plus determinism by seed, exact loss positions and readable errors on bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "tasks/batch.h"
#include "tasks/curriculum.h"
#include "tasks/mqar.h"
#include "tasks/multiple_choice.h"
#include "tasks/niah.h"
#include "tasks/receptive_field.h"
#include "tasks/sample.h"
#include "tasks/swaps.h"
#include "text/tokenizer.h"

using namespace lt2;
using namespace lt2::tasks;

namespace {

// Runs fn, expects an lt2::Error whose message contains `phrase` (and returns the message).
std::string expect_lt2_error(const std::function<void()>& fn, const std::string& phrase) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos)
        << "message '" << e.what() << "' lacks '" << phrase << "'";
    return e.what();
  }
  ADD_FAILURE() << "no lt2::Error (expected one mentioning '" << phrase << "')";
  return "";
}

bool same(const Sample& a, const Sample& b) { return a.tokens == b.tokens && a.targets == b.targets; }

std::vector<int64_t> positions_where(const Sample& s, const std::function<bool(int64_t)>& pred) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < static_cast<int64_t>(s.tokens.size()); ++i)
    if (pred(i)) out.push_back(i);
  return out;
}

int64_t count_occurrences(const std::string& hay, const std::string& needle) {
  int64_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

// Prose for NIAH-2/3: sentences of at most ~90 bytes, two paragraphs.
const std::string kProse =
    "It was a bright cold day in April, and the clocks were striking thirteen. The hallway smelt of boiled "
    "cabbage and old rag mats. At one end of it a coloured poster, too large for indoor display, had been "
    "tacked to the wall. It depicted simply an enormous face, more than a metre wide. Outside, even through "
    "the shut window-pane, the world looked cold!\n\nDown in the street little eddies of wind were whirling "
    "dust and torn paper into spirals. Was there any sun at all? The sun was shining and the sky was a harsh "
    "blue. There seemed to be no colour in anything, except the posters that were plastered everywhere. The "
    "black-moustachio'd face gazed down from every commanding corner.";

}  // namespace

// ---------------------------------------------------------------------------------------------
// MQAR

TEST(Tasks, MqarAnswersMatchTheKeyValueMapOfTheTokens) {
  const std::vector<MqarSettings> settings = {
      {8192, 64, 4, 0}, {8192, 256, 16, 0}, {8192, 512, 64, 0}, {8192, 128, 32, 8}, {64, 100, 10, 3}};
  for (const MqarSettings& s : settings)
    for (uint64_t index = 0; index < 20; ++index) {
      const Sample x = mqar_sample(s, 7, index);
      const int64_t n = s.num_pairs, q = s.num_queries ? s.num_queries : n, L = s.seq_len;
      ASSERT_EQ(static_cast<int64_t>(x.tokens.size()), L);
      ASSERT_EQ(x.targets.size(), x.tokens.size());
      // Rebuild the map from the first 2n tokens: keys in [1, V/2), values in [V/2, V), all distinct.
      std::map<int32_t, int32_t> kv;
      std::set<int32_t> values;
      for (int64_t i = 0; i < n; ++i) {
        const int32_t k = x.tokens[2 * i], v = x.tokens[2 * i + 1];
        ASSERT_GE(k, 1);
        ASSERT_LT(k, s.vocab / 2);
        ASSERT_GE(v, s.vocab / 2);
        ASSERT_LT(v, s.vocab);
        ASSERT_TRUE(kv.emplace(k, v).second) << "duplicate key";
        ASSERT_TRUE(values.insert(v).second) << "duplicate value";
        EXPECT_EQ(x.targets[2 * i], -1);
        EXPECT_EQ(x.targets[2 * i + 1], -1);
      }
      // Query region: filler 0 except q pairs `k v` at even offsets; the loss is exactly at the keys.
      std::set<int32_t> asked;
      std::vector<int64_t> key_positions;
      for (int64_t p = 2 * n; p < L; ++p) {
        if (x.tokens[p] == 0) {
          EXPECT_EQ(x.targets[p], -1);
          continue;
        }
        ASSERT_EQ((p - 2 * n) % 2, 0) << "query key at an odd offset";
        ASSERT_LT(p + 1, L);
        ASSERT_TRUE(kv.count(x.tokens[p])) << "query of a key that was never stored";
        EXPECT_TRUE(asked.insert(x.tokens[p]).second) << "key queried twice";
        EXPECT_EQ(x.tokens[p + 1], kv[x.tokens[p]]);
        EXPECT_EQ(x.targets[p], kv[x.tokens[p]]);
        EXPECT_EQ(x.targets[p + 1], -1);
        key_positions.push_back(p);
        ++p;  // skip the value
      }
      EXPECT_EQ(static_cast<int64_t>(key_positions.size()), q);
      EXPECT_EQ(loss_positions(x), key_positions);
      check_sample(x, s.vocab, "mqar");
    }
}

TEST(Tasks, MqarIsDeterministicBySeed) {
  const MqarSettings s{8192, 256, 16, 0};
  EXPECT_TRUE(same(mqar_sample(s, 3, 5), mqar_sample(s, 3, 5)));
  EXPECT_FALSE(same(mqar_sample(s, 3, 5), mqar_sample(s, 4, 5)));
  EXPECT_FALSE(same(mqar_sample(s, 3, 5), mqar_sample(s, 3, 6)));
  // Order independence: making other samples first changes nothing.
  const Sample a = mqar_sample(s, 9, 2);
  for (uint64_t i = 0; i < 5; ++i) mqar_sample(s, 9, i);
  EXPECT_TRUE(same(a, mqar_sample(s, 9, 2)));
}

TEST(Tasks, MqarRejectsBadSettings) {
  expect_lt2_error([] { mqar_sample({8192, 20, 8, 0}, 1, 0); }, "seq_len 20 is too short");
  expect_lt2_error([] { validate(MqarSettings{16, 256, 8, 0}); }, "num_pairs 8");
  expect_lt2_error([] { validate(MqarSettings{8192, 256, 8, 9}); }, "num_queries");
  expect_lt2_error([] { validate(MqarSettings{8192, 256, 0, 0}); }, "num_pairs must be >= 1");
  expect_lt2_error([] { validate(MqarSettings{2, 256, 1, 0}); }, "vocab");
  validate(MqarSettings{8192, 16, 4, 4});  // exactly enough room is fine
}

// ---------------------------------------------------------------------------------------------
// Swaps

namespace {

// Independent parser + solver: walks the documented layout, replays the swaps and checks
// every answer and every loss position.
void check_swaps_sample(const SwapsSettings& s, const Sample& x) {
  const int64_t n = s.num_slots, m = s.num_swaps < 0 ? n : s.num_swaps, q = s.num_queries ? s.num_queries : n;
  const int32_t slot_lo = 4, item_lo = 4 + static_cast<int32_t>(s.max_slots);
  const int32_t item_hi = item_lo + static_cast<int32_t>(s.max_slots);
  auto is_slot = [&](int32_t t) { return t >= slot_lo && t < item_lo; };
  auto is_item = [&](int32_t t) { return t >= item_lo && t < item_hi; };
  const int64_t natural = 2 * n + 1 + 3 * m + 1 + 3 * q;
  ASSERT_EQ(static_cast<int64_t>(x.tokens.size()), s.seq_len ? s.seq_len : natural);
  ASSERT_EQ(x.targets.size(), x.tokens.size());

  std::map<int32_t, int32_t> state;  // slot token -> item token
  std::set<int32_t> items;
  int64_t p = 0;
  for (int64_t k = 0; k < n; ++k, p += 2) {
    ASSERT_TRUE(is_slot(x.tokens[p]));
    ASSERT_TRUE(is_item(x.tokens[p + 1]));
    ASSERT_TRUE(state.emplace(x.tokens[p], x.tokens[p + 1]).second) << "slot listed twice";
    ASSERT_TRUE(items.insert(x.tokens[p + 1]).second) << "item listed twice";
  }
  ASSERT_EQ(x.tokens[p++], 1);  // SEP
  for (int64_t op = 0; op < m; ++op, p += 3) {
    ASSERT_EQ(x.tokens[p], 2);  // SWAP
    const int32_t a = x.tokens[p + 1], b = x.tokens[p + 2];
    ASSERT_TRUE(state.count(a) && state.count(b)) << "swap of an unknown slot";
    ASSERT_NE(a, b);
    std::swap(state[a], state[b]);
  }
  ASSERT_EQ(x.tokens[p++], 1);  // SEP
  std::set<int32_t> asked;
  std::vector<int64_t> ask_positions;
  for (int64_t k = 0; k < q; ++k, p += 3) {
    ASSERT_TRUE(state.count(x.tokens[p])) << "query of an unknown slot";
    EXPECT_TRUE(asked.insert(x.tokens[p]).second) << "slot asked twice";
    ASSERT_EQ(x.tokens[p + 1], 3);  // ASK
    EXPECT_EQ(x.tokens[p + 2], state[x.tokens[p]]) << "wrong answer at query " << k;
    EXPECT_EQ(x.targets[p + 1], state[x.tokens[p]]);
    ask_positions.push_back(p + 1);
  }
  for (; p < static_cast<int64_t>(x.tokens.size()); ++p) EXPECT_EQ(x.tokens[p], 0);  // PAD
  EXPECT_EQ(loss_positions(x), ask_positions);  // the loss is exactly on the answers
  check_sample(x, 4 + 2 * s.max_slots, "swaps");
}

}  // namespace

TEST(Tasks, SwapsAnswersMatchAReplayOfTheOperations) {
  for (int64_t n : {8, 16, 64, 256})
    for (uint64_t index = 0; index < (n <= 64 ? 10u : 2u); ++index) {
      SwapsSettings s;
      s.num_slots = n;
      check_swaps_sample(s, swaps_sample(s, 11, index));
      EXPECT_EQ(swaps_vocab(s), 516);
    }
  SwapsSettings odd{5, 40, 3, 16, 200};  // m != n, a few queries, padded to a fixed length
  for (uint64_t index = 0; index < 10; ++index) check_swaps_sample(odd, swaps_sample(odd, 2, index));
  SwapsSettings none{6, 0, 0, 8, 0};  // no swaps: answers are the initial items
  check_swaps_sample(none, swaps_sample(none, 2, 0));
}

TEST(Tasks, SwapsIsDeterministicBySeed) {
  SwapsSettings s;
  s.num_slots = 16;
  EXPECT_TRUE(same(swaps_sample(s, 1, 0), swaps_sample(s, 1, 0)));
  EXPECT_FALSE(same(swaps_sample(s, 1, 0), swaps_sample(s, 2, 0)));
  EXPECT_FALSE(same(swaps_sample(s, 1, 0), swaps_sample(s, 1, 1)));
}

TEST(Tasks, SwapsRejectsBadSettings) {
  expect_lt2_error([] { validate(SwapsSettings{300, -1, 0, 256, 0}); }, "num_slots must be in [2, max_slots = 256]");
  expect_lt2_error([] { validate(SwapsSettings{1, -1, 0, 256, 0}); }, "num_slots");
  expect_lt2_error([] { validate(SwapsSettings{8, -1, 9, 256, 0}); }, "num_queries");
  expect_lt2_error([] { validate(SwapsSettings{8, -2, 0, 256, 0}); }, "num_swaps");
  expect_lt2_error([] { swaps_sample(SwapsSettings{8, -1, 0, 256, 60}, 1, 0); }, "seq_len 60 is too short");
}

// ---------------------------------------------------------------------------------------------
// Curriculum

TEST(Tasks, CurriculumAdvancesAtThresholdAndStopsOutOfBudget) {
  CurriculumOptions o;
  o.step_budget = 500;
  SwapsCurriculum c(o);
  EXPECT_EQ(c.current_n(), 8);
  EXPECT_EQ(c.settings().num_slots, 8);
  EXPECT_EQ(c.settings().num_swaps, 8);
  c.record_steps(100);
  EXPECT_EQ(c.advance(0.5), StageOutcome::Continue);
  c.record_steps(100);
  EXPECT_EQ(c.advance(0.90), StageOutcome::Advanced);  // >= 0.90 passes
  EXPECT_EQ(c.current_n(), 16);
  EXPECT_EQ(c.stages_passed(), 1);
  EXPECT_EQ(c.largest_passed(), 8);
  EXPECT_EQ(c.steps_left(), 500);
  c.record_steps(499);
  EXPECT_EQ(c.advance(0.89), StageOutcome::Continue);
  c.record_steps(1);
  EXPECT_EQ(c.advance(0.8999), StageOutcome::OutOfBudget);
  EXPECT_TRUE(c.done());
  EXPECT_FALSE(c.finished());
  EXPECT_EQ(c.largest_passed(), 8);
  EXPECT_EQ(c.total_steps(), 700);
  ASSERT_EQ(c.records().size(), 2u);
  EXPECT_EQ(c.records()[0].steps, 200);
  EXPECT_EQ(c.records()[0].evals, 2);
  EXPECT_EQ(c.records()[1].steps, 500);
  EXPECT_DOUBLE_EQ(c.records()[1].best_accuracy, 0.8999);
  EXPECT_FALSE(c.records()[1].passed);
  expect_lt2_error([&] { c.advance(1.0); }, "after the run is over");
}

TEST(Tasks, CurriculumRunDrivesAFakeModel) {
  // A fake model that learns any stage n <= 64 after 250 steps on it and never gets past 0.5
  // above. The driver must pass 8..64 (at the evaluation after 300 steps each) and stop at 128.
  CurriculumOptions o;
  o.step_budget = 1000;
  o.eval_every = 100;
  SwapsCurriculum c(o);
  std::map<int64_t, int64_t> trained;
  int64_t calls = 0;
  const int64_t best = c.run([&](const SwapsSettings& st, int64_t steps) {
    ++calls;
    EXPECT_EQ(st.num_slots, st.num_swaps);
    EXPECT_GE(steps, 1);
    EXPECT_LE(steps, 100);
    trained[st.num_slots] += steps;
    if (st.num_slots > 64) return 0.5;
    return trained[st.num_slots] >= 250 ? 0.95 : 0.3;
  });
  EXPECT_EQ(best, 64);
  EXPECT_EQ(c.stages_passed(), 4);
  EXPECT_TRUE(c.done());
  EXPECT_FALSE(c.finished());
  EXPECT_EQ((std::map<int64_t, int64_t>{{8, 300}, {16, 300}, {32, 300}, {64, 300}, {128, 1000}}), trained);
  EXPECT_EQ(calls, 4 * 3 + 10);
  EXPECT_EQ(c.total_steps(), 4 * 300 + 1000);

  // A model that solves everything at once passes every stage after one evaluation each.
  SwapsCurriculum all(o);
  EXPECT_EQ(all.run([](const SwapsSettings&, int64_t) { return 1.0; }), 256);
  EXPECT_TRUE(all.finished());
  EXPECT_EQ(all.stages_passed(), 6);
  EXPECT_EQ(all.total_steps(), 600);

  // Budget not a multiple of eval_every: the last chunk is shortened.
  CurriculumOptions o2;
  o2.step_budget = 250;
  SwapsCurriculum c2(o2);
  std::vector<int64_t> chunks;
  c2.run([&](const SwapsSettings&, int64_t k) { chunks.push_back(k); return 0.0; });
  EXPECT_EQ(chunks, (std::vector<int64_t>{100, 100, 50}));
  EXPECT_EQ(c2.largest_passed(), 0);
}

TEST(Tasks, CurriculumRejectsBadOptions) {
  CurriculumOptions o;
  o.stages = {8, 8, 16};
  expect_lt2_error([&] { SwapsCurriculum c(o); }, "stages must increase");
  o = {};
  o.threshold = 0;
  expect_lt2_error([&] { SwapsCurriculum c(o); }, "threshold");
  o = {};
  o.step_budget = 0;
  expect_lt2_error([&] { SwapsCurriculum c(o); }, "step_budget");
  expect_lt2_error([] { SwapsCurriculum c({}, SwapsSettings{8, -1, 0, 128, 0}); }, "max_slots 128");
  SwapsCurriculum c;
  expect_lt2_error([&] { c.advance(1.5); }, "accuracy");
}

// ---------------------------------------------------------------------------------------------
// S-NIAH

namespace {

struct NiahCheck {
  int64_t haystack_len;
  int64_t needle_pos;
};

// Independent checks of one sample; returns where the needle was found.
NiahCheck check_niah(const NiahSettings& s, const NiahSample& x) {
  const bool uuid = s.kind == NiahKind::Niah3;
  // Exact length, tokens = bytes of prompt + answer + "\n".
  EXPECT_EQ(static_cast<int64_t>(x.sample.tokens.size()), s.context_len);
  EXPECT_EQ(ByteTokenizer::decode(x.sample.tokens), x.prompt + x.answer + "\n");
  // The value's format.
  if (uuid) {
    EXPECT_EQ(x.answer.size(), 36u);
    for (size_t i = 0; i < x.answer.size(); ++i) {
      if (i == 8 || i == 13 || i == 18 || i == 23) {
        EXPECT_EQ(x.answer[i], '-');
      } else {
        EXPECT_TRUE(std::isxdigit(static_cast<unsigned char>(x.answer[i])) && !std::isupper(x.answer[i]));
      }
    }
    EXPECT_EQ(x.answer[14], '4');
  } else {
    EXPECT_EQ(x.answer.size(), 7u);
    EXPECT_NE(x.answer[0], '0');
    for (char c : x.answer) EXPECT_TRUE(c >= '0' && c <= '9');
  }
  // The needle sentence, exactly once; the value nowhere else in the prompt.
  const std::string needle = std::string("One of the special magic ") + (uuid ? "uuids" : "numbers") + " for " +
                             x.key + " is: " + x.answer + ".";
  EXPECT_EQ(x.needle, needle);
  EXPECT_EQ(count_occurrences(x.prompt, needle), 1);
  EXPECT_EQ(count_occurrences(x.prompt, x.answer), 1);
  const int64_t p = static_cast<int64_t>(x.prompt.find(needle));
  EXPECT_EQ(p, x.needle_pos);
  EXPECT_EQ(x.prompt[p + needle.size()], ' ');
  // The question at the end names the key; the haystack is what is left.
  const std::string question = std::string("\nQuestion: What is the special magic ") + (uuid ? "uuid" : "number") +
                               " for " + x.key + " mentioned in the provided text?\nAnswer: ";
  EXPECT_EQ(x.prompt.size() >= question.size() &&
                x.prompt.compare(x.prompt.size() - question.size(), question.size(), question) == 0,
            true)
      << "prompt does not end with the question";
  const int64_t H = static_cast<int64_t>(x.prompt.size() - needle.size() - 1 - question.size());
  EXPECT_EQ(H, x.haystack_len);
  // Loss exactly on answer + "\n", each target the next token.
  const int64_t a0 = static_cast<int64_t>(x.prompt.size());
  const std::vector<int64_t> want = positions_where(x.sample, [&](int64_t i) { return i >= a0 - 1 && i < s.context_len - 1; });
  EXPECT_EQ(loss_positions(x.sample), want);
  for (int64_t i : want) EXPECT_EQ(x.sample.targets[i], x.sample.tokens[i + 1]);
  return {H, p};
}

}  // namespace

TEST(Tasks, NiahSamplesHaveExactLengthOneNeedleAndTheRequestedDepth) {
  // Depth tolerance stated by niah.h: the needle snaps to the nearest sentence start, so it
  // moves at most half the longest gap between sentence starts: 11 bytes for the filler
  // (sentences <= 22 bytes), 64 bytes for kProse (sentences < 128 bytes including the
  // blank line joining its copies).
  for (NiahKind kind : {NiahKind::Niah1, NiahKind::Niah2, NiahKind::Niah3})
    for (int64_t len : {niah_min_context(kind), int64_t{300}, int64_t{1024}, int64_t{2048}})
      for (double depth : {0.0, 0.1, 0.25, 0.5, 0.77, 0.9, 1.0})
        for (uint64_t index = 0; index < 3; ++index) {
          NiahSettings s;
          s.kind = kind;
          s.context_len = len;
          s.depth = depth;
          const NiahSample x = niah_sample(s, kProse, 5, index);
          const NiahCheck c = check_niah(s, x);
          if (::testing::Test::HasFailure()) return;
          const double tol = kind == NiahKind::Niah1 ? 11.0 : 64.0;
          EXPECT_LE(std::abs(static_cast<double>(c.needle_pos) - depth * static_cast<double>(c.haystack_len)), tol)
              << "kind " << int(kind) << " len " << len << " depth " << depth;
          // The needle starts a sentence: first, or right after whitespace that ends one.
          const int64_t p = c.needle_pos;
          if (p > 0 && p < c.haystack_len) {
            EXPECT_TRUE(x.prompt[p - 1] == ' ' || x.prompt[p - 1] == '\n');
            // (npos: only whitespace before it, i.e. the document's first sentence)
            const size_t end = x.prompt.find_last_not_of(" \n", p - 1);
            const char last = end == std::string::npos ? '.' : x.prompt[end];
            const char before = end == std::string::npos || end == 0 ? ' ' : x.prompt[end - 1];
            EXPECT_TRUE(std::string(".!?").find(last) != std::string::npos ||
                        (last == '\'' && std::string(".!?").find(before) != std::string::npos) ||
                        x.prompt.substr(end + 1, 2) == "\n\n")
                << "needle not at a sentence start: ..." << x.prompt.substr(std::max<int64_t>(0, p - 20), 20);
          }
          if (depth == 0.0) {
            EXPECT_EQ(p, 0);
          }
          if (depth == 1.0) {
            EXPECT_EQ(p, c.haystack_len);
          }
        }
}

TEST(Tasks, NiahHaystackIsTheFillerOrTheGivenProse) {
  for (NiahKind kind : {NiahKind::Niah1, NiahKind::Niah2, NiahKind::Niah3}) {
    const std::string unit = kind == NiahKind::Niah1 ? std::string(niah_filler()) + " " : kProse + "\n\n";
    std::string cyclic;
    while (cyclic.size() < 6000) cyclic += unit;
    for (uint64_t index = 0; index < 5; ++index) {
      NiahSettings s;
      s.kind = kind;
      s.context_len = 2000;
      s.depth = 0.3;
      const NiahSample x = niah_sample(s, kProse, 8, index);
      std::string hay = x.prompt.substr(0, x.prompt.rfind("\nQuestion: "));
      hay.erase(static_cast<size_t>(x.needle_pos), x.needle.size() + 1);
      EXPECT_EQ(static_cast<int64_t>(hay.size()), x.haystack_len);
      EXPECT_NE(cyclic.find(hay), std::string::npos) << "haystack is not a window of the " << int(kind) << " text";
      // The window ends at a sentence end.
      EXPECT_TRUE(hay.ends_with(". ") || hay.ends_with("? ") || hay.ends_with("! ") || hay.ends_with("!\n\n") ||
                  hay.ends_with(".\n\n"))
          << hay.substr(hay.size() - 10);
    }
  }
}

TEST(Tasks, NiahIsDeterministicBySeed) {
  NiahSettings s;
  s.kind = NiahKind::Niah3;
  s.context_len = 1500;
  const NiahSample a = niah_sample(s, kProse, 1, 0), b = niah_sample(s, kProse, 1, 0);
  EXPECT_EQ(a.prompt, b.prompt);
  EXPECT_TRUE(same(a.sample, b.sample));
  EXPECT_NE(a.answer, niah_sample(s, kProse, 2, 0).answer);
  EXPECT_NE(a.answer, niah_sample(s, kProse, 1, 1).answer);
}

TEST(Tasks, NiahRejectsBadSettings) {
  NiahSettings s;
  s.context_len = niah_min_context(NiahKind::Niah1) - 1;
  expect_lt2_error([&] { niah_sample(s, "", 1, 0); }, "context_len");
  s = {};
  s.depth = 1.5;
  expect_lt2_error([&] { validate(s); }, "depth must be in [0, 1]");
  s = {};
  s.kind = NiahKind::Niah2;
  expect_lt2_error([&] { niah_sample(s, " \n\t ", 1, 0); }, "needs haystack prose");
  expect_lt2_error([] { niah_kind_from_name("niah4"); }, "unknown kind 'niah4'");
  EXPECT_EQ(niah_kind_from_name("niah_single_3"), NiahKind::Niah3);
}

TEST(Tasks, NiahExactMatch) {
  EXPECT_TRUE(exact_match("1234567", "1234567"));
  EXPECT_TRUE(exact_match(" 1234567.\nand more text", "1234567"));
  EXPECT_TRUE(exact_match("1234567\n", "1234567"));
  EXPECT_FALSE(exact_match("1234568", "1234567"));
  EXPECT_FALSE(exact_match("12345678", "1234567"));
  EXPECT_FALSE(exact_match("123456", "1234567"));
  EXPECT_FALSE(exact_match("\n1234567", "1234567"));  // answered nothing on the answer line
  EXPECT_FALSE(exact_match("", ""));
  EXPECT_TRUE(exact_match("0f8e5a2c-1b7d-4c3e-9a10-5d6e7f8a9b0c", "0f8e5a2c-1b7d-4c3e-9a10-5d6e7f8a9b0c"));
  EXPECT_FALSE(exact_match("0F8E5A2C-1B7D-4C3E-9A10-5D6E7F8A9B0C", "0f8e5a2c-1b7d-4c3e-9a10-5d6e7f8a9b0c"));
}

// ---------------------------------------------------------------------------------------------
// Receptive-field probe

TEST(Tasks, ReceptiveFieldTargetsAreTheTokenDPositionsBack) {
  for (int64_t D : {1, 7, 63}) {
    const ReceptiveFieldSettings s{256, 64, D};
    const Sample x = receptive_field_sample(s, 4, 2);
    ASSERT_EQ(x.tokens.size(), 64u);
    for (int64_t i = 0; i < 64; ++i) EXPECT_EQ(x.targets[i], i >= D ? x.tokens[i - D] : -1);
    EXPECT_EQ(loss_positions(x), positions_where(x, [&](int64_t i) { return i >= D; }));
    check_sample(x, 256, "probe");
  }
  const ReceptiveFieldSettings s{50, 512, 10};
  EXPECT_TRUE(same(receptive_field_sample(s, 1, 0), receptive_field_sample(s, 1, 0)));
  EXPECT_FALSE(same(receptive_field_sample(s, 1, 0), receptive_field_sample(s, 2, 0)));
  const Sample x = receptive_field_sample(s, 1, 0);
  std::set<int32_t> seen(x.tokens.begin(), x.tokens.end());
  EXPECT_GT(seen.size(), 40u);  // uniform over the vocab, not a handful of tokens
  EXPECT_LT(*seen.rbegin(), 50);
  EXPECT_EQ(window_stack_reach(2, 3, 5), 24);
  expect_lt2_error([] { validate(ReceptiveFieldSettings{256, 16, 16}); }, "seq_len 16 must exceed distance 16");
  expect_lt2_error([] { validate(ReceptiveFieldSettings{256, 16, 0}); }, "distance must be >= 1");
  expect_lt2_error([] { validate(ReceptiveFieldSettings{1, 16, 2}); }, "vocab");
}

// ---------------------------------------------------------------------------------------------
// Multiple choice

TEST(Tasks, MultipleChoiceScoresAHandComputedCase) {
  const std::vector<McItem> items = {
      {"The sky is", {"blue", "green", "a big red"}, 0},
      {"2+2=", {"four", "4", "fish"}, 0},
      {"tie", {"ab", "cd"}, 1},
  };
  // Fake log-likelihoods (sum over the continuation) and token counts.
  const std::map<std::string, std::pair<double, int64_t>> table = {
      {"The sky is| blue", {-2.0, 2}},  // -2.0 / 4 bytes = -0.5
      {"The sky is| green", {-3.0, 2}},  // -3.0 / 5 = -0.6
      {"The sky is| a big red", {-4.0, 4}},  // -4.0 / 9 = -0.444  <- acc_norm picks it
      {"2+2=| four", {-5.0, 2}},  // -1.25   <- acc_norm
      {"2+2=| 4", {-1.5, 2}},  // -1.5     <- acc
      {"2+2=| fish", {-9.0, 2}},
      {"tie| ab", {-1.0, 1}},  // ties go to the first choice
      {"tie| cd", {-1.0, 1}},
  };
  int64_t calls = 0;
  const LogLikelihoodFn ll = [&](const std::string& ctx, const std::string& cont, int64_t* n) {
    ++calls;
    auto it = table.find(ctx + "|" + cont);
    EXPECT_NE(it, table.end()) << "unexpected call (" << ctx << ", " << cont << ")";
    if (it == table.end()) return 0.0;
    *n = it->second.second;
    return it->second.first;
  };
  const McResult r = score_mc(items, ll);
  EXPECT_EQ(calls, 8);
  EXPECT_EQ(r.n, 3);
  ASSERT_EQ(r.items.size(), 3u);
  EXPECT_EQ(r.items[0].pred, 0);
  EXPECT_EQ(r.items[0].pred_norm, 2);
  EXPECT_EQ(r.items[1].pred, 1);
  EXPECT_EQ(r.items[1].pred_norm, 0);
  EXPECT_EQ(r.items[2].pred, 0);
  EXPECT_EQ(r.items[2].pred_norm, 0);
  EXPECT_EQ(r.items[1].loglik, (std::vector<double>{-5.0, -1.5, -9.0}));
  EXPECT_EQ(r.correct, 1);
  EXPECT_EQ(r.correct_norm, 1);
  EXPECT_DOUBLE_EQ(r.acc, 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.acc_norm, 1.0 / 3.0);
  EXPECT_EQ(r.tokens, 2 + 2 + 4 + 2 + 2 + 2 + 1 + 1);
}

TEST(Tasks, MultipleChoiceParsesJsonl) {
  const std::string text =
      "{\"context\": \"Q: a?\", \"choices\": [\"x\", \"y\"], \"label\": 1, \"id\": 17}\r\n"
      "\n"
      "   \n"
      "{\"label\": 0, \"choices\": [\"one\", \"two\", \"three\"], \"context\": \"\\u00e9t\\u00e9\"}";
  const std::vector<McItem> items = parse_mc_jsonl(text, "x.jsonl");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].context, "Q: a?");
  EXPECT_EQ(items[0].choices, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(items[0].label, 1);
  EXPECT_EQ(items[1].context, "\xC3\xA9t\xC3\xA9");
  EXPECT_EQ(items[1].choices.size(), 3u);

  const std::string path = ::testing::TempDir() + "/lt2_tasks_mc.jsonl";
  fs::write_file_atomic(path, text);
  EXPECT_EQ(read_mc_jsonl(path).size(), 2u);
  fs::write_file_atomic(path, "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"label\": 0}\n{\"context\": 3}\n");
  expect_lt2_error([&] { read_mc_jsonl(path); }, path + ":2: field 'context': expected a string");
}

TEST(Tasks, MultipleChoiceMalformedLinesNameFileAndLine) {
  const std::string good = "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"label\": 0}\n\n";  // lines 1-2
  auto bad = [&](const std::string& line, const std::string& what) {
    const std::string msg = expect_lt2_error([&] { parse_mc_jsonl(good + line + "\n" + good, "items.jsonl"); }, what);
    EXPECT_EQ(msg.rfind("items.jsonl:3: ", 0), 0u) << msg;
  };
  bad("{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"label\": 0", "invalid JSON at column");
  bad("{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"label\": 0} trailing", "invalid JSON");
  bad("[1, 2]", "expected a JSON object, got an array");
  bad("{\"choices\": [\"a\", \"b\"], \"label\": 0}", "missing field 'context'");
  bad("{\"context\": \"c\", \"label\": 0}", "missing field 'choices'");
  bad("{\"context\": \"c\", \"choices\": [\"a\", \"b\"]}", "missing field 'label'");
  bad("{\"context\": \"c\", \"choices\": \"a\", \"label\": 0}", "field 'choices': expected an array");
  bad("{\"context\": \"c\", \"choices\": [\"a\", 2], \"label\": 0}", "choices[1]: expected a string");
  bad("{\"context\": \"c\", \"choices\": [\"a\", \"\"], \"label\": 0}", "choices[1] is empty");
  bad("{\"context\": \"c\", \"choices\": [\"a\"], \"label\": 0}", "at least 2 choices");
  bad("{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"label\": 2}", "label 2 out of range [0, 2)");
  bad("{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"label\": -1}", "label -1 out of range");
  bad("{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"label\": 0.5}", "field 'label'");
  expect_lt2_error([] { parse_mc_jsonl("\n \n", "empty.jsonl"); }, "empty.jsonl: no items");
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

TEST(Tasks, SampleHelpersAndBatchPacking) {
  SwapsSettings s;
  const Sample a = swaps_sample(s, 1, 0);
  const Sample b = receptive_field_sample({256, 20, 3}, 1, 0);
  const int64_t L = static_cast<int64_t>(a.tokens.size()) + 5;
  const Batch batch = to_batch({a, b}, L, 0);
  ASSERT_EQ(batch.ids.shape(), (Shape{2, L}));
  const int32_t* ids = batch.ids.data<int32_t>();
  const int32_t* tg = batch.targets.data<int32_t>();
  for (int64_t t = 0; t < L; ++t) {
    EXPECT_EQ(ids[t], t < static_cast<int64_t>(a.tokens.size()) ? a.tokens[t] : 0);
    EXPECT_EQ(tg[t], t < static_cast<int64_t>(a.targets.size()) ? a.targets[t] : -1);
    EXPECT_EQ(tg[L + t], t < 20 ? b.targets[t] : -1);
  }
  expect_lt2_error([&] { to_batch({a}, 10, 0); }, "more than seq_len 10");

  // count_correct: a perfect predictor gets every loss position, a shifted one fewer.
  EXPECT_EQ(count_correct(a, a.targets), static_cast<int64_t>(loss_positions(a).size()));
  std::vector<int32_t> wrong(a.targets.size(), 0);
  EXPECT_EQ(count_correct(a, wrong), 0);
  Sample bad = a;
  bad.targets.pop_back();
  expect_lt2_error([&] { check_sample(bad, 516, "swaps"); }, "targets");
  expect_lt2_error([&] { check_sample(a, 100, "swaps"); }, "outside [0, 100)");
}
