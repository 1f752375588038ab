// Tests for token shards: round trips in both token dtypes, one test per kind of corruption
// (each error names the path and the problem), and the ShardSet windows (deterministic
// random windows inside one shard, sequential windows covering the data in order).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "error_util.h"
#include "core/error.h"
#include "core/fs.h"
#include "text/shards.h"

namespace sfs = std::filesystem;
using lt2::Shard;
using lt2::ShardDType;
using lt2::ShardSet;

using lt2::test::contains;
using lt2::test::error_of;

namespace {


::testing::AssertionResult starts_with(const std::string& text, const std::string& prefix) {
  if (text.rfind(prefix, 0) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not start with '" << prefix << "'";
}

// A fresh directory under the system temp directory, removed afterwards.
struct TempDir {
  std::string dir;
  TempDir() {
    std::string tmpl = (sfs::temp_directory_path() / "lt2_shards_XXXXXX").string();
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    sfs::remove_all(dir, ec);
  }
  std::string file(const std::string& name) const { return dir + "/" + name; }
};

std::vector<int32_t> iota_tokens(int64_t n, int32_t vocab, int32_t mult = 7) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[size_t(i)] = int32_t((i * mult + i / 3) % vocab);
  return t;
}

std::vector<int32_t> read_all(const Shard& s) {
  std::vector<int32_t> out(static_cast<size_t>(s.size()));
  for (int64_t i = 0; i < s.size(); ++i) out[size_t(i)] = s[i];
  return out;
}

// Writes a valid shard, lets `edit` change its bytes, writes them back; returns the path.
template <class F>
std::string corrupted(const TempDir& d, F&& edit) {
  const std::string path = d.file("bad.lt2shard");
  lt2::write_shard(path, iota_tokens(100, 1000), 1000);
  std::string bytes = lt2::fs::read_file(path);
  edit(bytes);
  lt2::fs::write_file_atomic(path, bytes);
  return path;
}

void expect_open_error(const std::string& path, const std::string& phrase) {
  const std::string msg = error_of([&] { Shard s(path); });
  EXPECT_TRUE(starts_with(msg, path + ": ")) << msg;
  EXPECT_TRUE(contains(msg, phrase));
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Round trips

TEST(Shards, RoundTripUint16) {
  TempDir d;
  const std::string path = d.file("a.lt2shard");
  std::vector<int32_t> tokens = iota_tokens(5000, 65536, 4099);
  tokens.push_back(0);
  tokens.push_back(65535);  // largest uint16 token
  lt2::write_shard(path, tokens, 65536);
  EXPECT_EQ(sfs::file_size(path), lt2::kShardHeaderSize + 2 * tokens.size());

  Shard s(path);
  EXPECT_EQ(s.dtype(), ShardDType::U16);
  EXPECT_EQ(s.vocab_size(), 65536);
  EXPECT_EQ(s.size(), int64_t(tokens.size()));
  EXPECT_EQ(read_all(s), tokens);
  std::vector<int32_t> part(10);
  s.read(4990, 10, part.data());
  EXPECT_EQ(part, std::vector<int32_t>(tokens.begin() + 4990, tokens.begin() + 5000));
}

TEST(Shards, RoundTripInt32) {
  TempDir d;
  const std::string path = d.file("b.lt2shard");
  const int32_t vocab = 65537;  // one past uint16: int32 tokens
  std::vector<int32_t> tokens = iota_tokens(3000, vocab, 40009);
  tokens.push_back(65536);
  tokens.push_back(0);
  lt2::write_shard(path, tokens, vocab);
  EXPECT_EQ(sfs::file_size(path), lt2::kShardHeaderSize + 4 * tokens.size());

  Shard s(path);
  EXPECT_EQ(s.dtype(), ShardDType::I32);
  EXPECT_EQ(s.vocab_size(), vocab);
  EXPECT_EQ(read_all(s), tokens);

  // The largest vocab also round-trips.
  const int64_t big = int64_t(1) << 31;
  lt2::write_shard(path, {2147483647, 0, 12345678}, big);
  Shard t(path);
  EXPECT_EQ(t.vocab_size(), big);
  EXPECT_EQ(read_all(t), (std::vector<int32_t>{2147483647, 0, 12345678}));
}

TEST(Shards, HeaderLayoutIsAsDocumented) {
  TempDir d;
  const std::string path = d.file("h.lt2shard");
  lt2::write_shard(path, {1, 258}, 300);
  const std::string b = lt2::fs::read_file(path);
  ASSERT_EQ(b.size(), 64u + 4u);
  EXPECT_EQ(b.substr(0, 8), "LT2SHARD");
  auto u8 = [&](size_t i) { return unsigned(static_cast<unsigned char>(b[i])); };
  EXPECT_EQ(u8(8), 1u);    // version
  EXPECT_EQ(u8(12), 1u);   // dtype uint16
  EXPECT_EQ(u8(16), 44u);  // vocab 300 = 0x012c, little-endian
  EXPECT_EQ(u8(17), 1u);
  EXPECT_EQ(u8(24), 2u);   // count
  EXPECT_EQ(u8(40), 64u);  // header size
  for (size_t i = 44; i < 64; ++i) EXPECT_EQ(u8(i), 0u) << "reserved byte " << i;
  EXPECT_EQ(u8(64), 1u);  // token 1
  EXPECT_EQ(u8(65), 0u);
  EXPECT_EQ(u8(66), 2u);  // token 258 = 0x0102
  EXPECT_EQ(u8(67), 1u);
  uint64_t sum = 0;
  for (int i = 7; i >= 0; --i) sum = sum << 8 | u8(32 + size_t(i));
  EXPECT_EQ(sum, lt2::fnv1a64(b.data() + 64, 4));
  // Published FNV-1a test vectors: "" and "a".
  EXPECT_EQ(lt2::fnv1a64("", 0), 0xcbf29ce484222325ull);
  EXPECT_EQ(lt2::fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
}

TEST(Shards, EmptyAndTinyShards) {
  TempDir d;
  const std::string path = d.file("e.lt2shard");
  lt2::write_shard(path, {}, 10);
  {
    Shard s(path);
    EXPECT_EQ(s.size(), 0);
    EXPECT_EQ(s.vocab_size(), 10);
    EXPECT_TRUE(contains(error_of([&] { (void)s[0]; }), "token index 0 is outside [0, 0)"));
  }
  lt2::write_shard(path, {9}, 10);
  Shard s(path);
  EXPECT_EQ(s.size(), 1);
  EXPECT_EQ(s[0], 9);
  EXPECT_TRUE(contains(error_of([&] { (void)s[1]; }), "outside [0, 1)"));
  EXPECT_TRUE(contains(error_of([&] { (void)s[-1]; }), "outside [0, 1)"));
}

TEST(Shards, MoveTransfersTheMapping) {
  TempDir d;
  const std::string path = d.file("m.lt2shard");
  lt2::write_shard(path, {3, 1, 4, 1, 5}, 10);
  Shard a(path);
  Shard b(std::move(a));
  EXPECT_EQ(b.size(), 5);
  EXPECT_EQ(b[2], 4);
  EXPECT_EQ(a.size(), 0);  // NOLINT(bugprone-use-after-move): moved-from is empty
  lt2::write_shard(d.file("n.lt2shard"), {2, 7}, 10);
  Shard c(d.file("n.lt2shard"));
  c = std::move(b);
  EXPECT_EQ(c.size(), 5);
  EXPECT_EQ(c[4], 5);
  static_assert(!std::is_copy_constructible_v<Shard> && !std::is_copy_assignable_v<Shard>);
}

TEST(Shards, MultiShardRoundTrip) {
  TempDir d;
  const std::string dir = d.file("set");
  const std::vector<int32_t> tokens = iota_tokens(1050, 500);
  lt2::write_shards(dir, tokens, 500, 200);  // 5 full shards + one of 50

  std::vector<std::string> names;
  for (const auto& e : sfs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"shard_00000.lt2shard", "shard_00001.lt2shard", "shard_00002.lt2shard",
                                             "shard_00003.lt2shard", "shard_00004.lt2shard", "shard_00005.lt2shard"}));

  const ShardSet set = ShardSet::from_dir(dir, 1);
  ASSERT_EQ(set.num_shards(), 6);
  EXPECT_EQ(set.total_tokens(), 1050);
  EXPECT_EQ(set.vocab_size(), 500);
  std::vector<int32_t> back;
  for (int64_t i = 0; i < set.num_shards(); ++i) {
    EXPECT_EQ(set.shard(i).size(), i < 5 ? 200 : 50);
    const std::vector<int32_t> part = read_all(set.shard(i));
    back.insert(back.end(), part.begin(), part.end());
  }
  EXPECT_EQ(back, tokens);

  // Explicit paths keep the given order.
  const ShardSet rev = ShardSet::from_paths({dir + "/shard_00005.lt2shard", dir + "/shard_00000.lt2shard"}, 1);
  EXPECT_EQ(rev.shard(0).size(), 50);
  EXPECT_EQ(rev.shard(1)[0], tokens[0]);

  // No tokens still make one (empty) shard.
  lt2::write_shards(d.file("empty"), {}, 500, 200);
  EXPECT_EQ(ShardSet::from_dir(d.file("empty"), 1).total_tokens(), 0);

  // A directory that already holds shards is refused.
  const std::string msg = error_of([&] { lt2::write_shards(dir, tokens, 500, 1000); });
  EXPECT_TRUE(starts_with(msg, dir + ": "));
  EXPECT_TRUE(contains(msg, "already contains shard files"));
  EXPECT_TRUE(contains(error_of([&] { lt2::write_shards(d.file("x"), tokens, 500, 0); }), "tokens_per_shard must be >= 1"));
}

// ---------------------------------------------------------------------------------------
// Errors: each names the path and the problem

TEST(Shards, TokenOutOfRangeOnWrite) {
  TempDir d;
  const std::string path = d.file("w.lt2shard");
  std::string msg = error_of([&] { lt2::write_shard(path, {1, 2, 10, 3}, 10); });
  EXPECT_TRUE(starts_with(msg, path + ": "));
  EXPECT_TRUE(contains(msg, "token out of range: token 10 at position 2 is not in [0, 10)"));
  msg = error_of([&] { lt2::write_shard(path, {0, -1}, 10); });
  EXPECT_TRUE(contains(msg, "token -1 at position 1"));
  msg = error_of([&] { lt2::write_shard(path, {0}, 0); });
  EXPECT_TRUE(starts_with(msg, path + ": bad vocab size 0"));
  EXPECT_FALSE(sfs::exists(path));  // nothing written on error
  EXPECT_TRUE(sfs::is_empty(d.dir));
}

TEST(Shards, MissingFile) {
  TempDir d;
  expect_open_error(d.file("nope.lt2shard"), "cannot open");
}

TEST(Shards, TruncatedHeader) {
  TempDir d;
  const std::string path = corrupted(d, [](std::string& b) { b.resize(20); });
  expect_open_error(path, "file too small: 20 bytes");
  lt2::fs::write_file_atomic(path, "");
  expect_open_error(path, "file too small: 0 bytes");
}

TEST(Shards, BadMagic) {
  TempDir d;
  expect_open_error(corrupted(d, [](std::string& b) { b[3] = 'X'; }), "bad magic");
}

TEST(Shards, WrongVersion) {
  TempDir d;
  expect_open_error(corrupted(d, [](std::string& b) { b[8] = 2; }), "unsupported format version 2");
}

TEST(Shards, UnknownDtype) {
  TempDir d;
  expect_open_error(corrupted(d, [](std::string& b) { b[12] = 9; }), "unknown token dtype code 9");
}

TEST(Shards, BadHeaderSizeAndVocab) {
  TempDir d;
  expect_open_error(corrupted(d, [](std::string& b) { b[40] = 8; }), "bad header size 8");
  expect_open_error(corrupted(d, [](std::string& b) { b[16] = b[17] = 0; }), "bad vocab size 0");
  // uint16 tokens cannot have a vocab above 65536.
  expect_open_error(corrupted(d, [](std::string& b) { b[18] = 2; }), "bad vocab size");
}

TEST(Shards, SizeMismatch) {
  TempDir d;
  // Payload longer than the header says.
  expect_open_error(corrupted(d, [](std::string& b) { b += "xy"; }), "size mismatch");
  // Payload cut short.
  expect_open_error(corrupted(d, [](std::string& b) { b.resize(b.size() - 2); }), "size mismatch");
  // An absurd token count (no overflow in the size computation).
  expect_open_error(corrupted(d, [](std::string& b) { b[31] = char(0x7f); }), "size mismatch");
  expect_open_error(corrupted(d, [](std::string& b) { b[31] = char(0xff); }), "size mismatch");
}

TEST(Shards, FlippedPayloadByteFailsChecksum) {
  TempDir d;
  expect_open_error(corrupted(d, [](std::string& b) { b[64 + 77] ^= 0x01; }), "checksum mismatch");
  expect_open_error(corrupted(d, [](std::string& b) { b[32] ^= 0x40; }), "checksum mismatch");  // stored sum
}

TEST(Shards, TokenOutOfRangeOnRead) {
  TempDir d;
  // A payload written by some other tool with a token >= vocab but a correct checksum.
  const std::string path = corrupted(d, [](std::string& b) {
    b[64] = char(0xe8);  // token 0 = 1000 = vocab
    b[65] = char(0x03);
    const uint64_t sum = lt2::fnv1a64(b.data() + 64, b.size() - 64);
    for (int i = 0; i < 8; ++i) b[32 + size_t(i)] = char((sum >> (8 * i)) & 0xff);
  });
  expect_open_error(path, "token out of range: token 1000 at position 0");
}

// ---------------------------------------------------------------------------------------
// ShardSet windows

TEST(Shards, SampleWindowIsDeterministicAndSeeded) {
  TempDir d;
  const std::string dir = d.file("set");
  const std::vector<int32_t> tokens = iota_tokens(4000, 4096, 1);  // mostly distinct tokens
  lt2::write_shards(dir, tokens, 4096, 1000);
  const ShardSet a = ShardSet::from_dir(dir, 42), a2 = ShardSet::from_dir(dir, 42), b = ShardSet::from_dir(dir, 43);

  std::vector<int32_t> w1, w2, w3;
  int differ = 0;
  std::set<std::vector<int32_t>> distinct;
  for (uint64_t i = 0; i < 200; ++i) {
    a.sample_window(i, 16, w1);
    a2.sample_window(i, 16, w2);  // a fresh set: same seed, same index, same window
    ASSERT_EQ(w1.size(), 17u);
    EXPECT_EQ(w1, w2) << "index " << i;
    a.sample_window(i, 16, w2);  // and again on the same set
    EXPECT_EQ(w1, w2);
    b.sample_window(i, 16, w3);
    differ += w1 != w3;
    distinct.insert(w1);
  }
  EXPECT_GT(differ, 190);            // another seed gives other windows
  EXPECT_GT(distinct.size(), 180u);  // and indices do not repeat windows

  // Resuming: the window at index i does not depend on which windows were drawn before.
  a.sample_window(123456789, 16, w1);
  a2.sample_window(7, 16, w2);
  a2.sample_window(123456789, 16, w2);
  EXPECT_EQ(w1, w2);
}

TEST(Shards, SampleWindowsStayInsideOneShard) {
  TempDir d;
  // Shard k holds only tokens 100*k + (0..49), so a window's shard is visible in its tokens;
  // shard 2 is too short for the window and must never be used.
  const std::vector<std::vector<int32_t>> data = {
      iota_tokens(60, 50), iota_tokens(25, 50), iota_tokens(10, 50), iota_tokens(40, 50)};
  std::vector<std::string> paths;
  for (size_t k = 0; k < data.size(); ++k) {
    std::vector<int32_t> t = data[k];
    for (int32_t& x : t) x += int32_t(100 * k);
    paths.push_back(d.file(lt2::cat("s", k, ".lt2shard")));
    lt2::write_shard(paths.back(), t, 400);
  }
  const ShardSet set = ShardSet::from_paths(paths, 5);
  const int64_t len = 15;
  std::vector<int32_t> w;
  std::vector<int> hits(4, 0);
  std::set<std::pair<int, int64_t>> starts;
  for (uint64_t i = 0; i < 2000; ++i) {
    set.sample_window(i, len, w);
    ASSERT_EQ(w.size(), size_t(len + 1));
    const int k = w[0] / 100;
    for (int32_t x : w) ASSERT_EQ(x / 100, k) << "window " << i << " crosses a shard boundary";
    // The window is a contiguous run of shard k.
    const Shard& s = set.shard(k);
    bool found = false;
    for (int64_t st = 0; st + len + 1 <= s.size() && !found; ++st) {
      bool eq = true;
      for (int64_t t = 0; t <= len && eq; ++t) eq = s[st + t] == w[size_t(t)];
      if (eq) {
        found = true;
        starts.insert({k, st});
      }
    }
    ASSERT_TRUE(found) << "window " << i << " is not a run of shard " << k;
    ++hits[size_t(k)];
  }
  EXPECT_EQ(hits[2], 0);
  EXPECT_GT(hits[0], 0);
  EXPECT_GT(hits[1], 0);
  EXPECT_GT(hits[3], 0);
  // Every start is reachable: (60-15) + (25-15) + (40-15) = 80 of them.
  EXPECT_EQ(starts.size(), 80u);
}

TEST(Shards, SequentialWindowsCoverTheDataInOrder) {
  TempDir d;
  const std::string dir = d.file("set");
  const std::vector<int32_t> tokens = iota_tokens(1000, 997, 13);
  lt2::write_shards(dir, tokens, 997, 300);  // shards of 300, 300, 300, 100
  const ShardSet set = ShardSet::from_dir(dir, 0);
  const int64_t len = 32;
  // Per shard: (300-1)/32 = 9 windows, (100-1)/32 = 3.
  ASSERT_EQ(set.num_sequential_windows(len), 9 * 3 + 3);
  std::vector<int32_t> w;
  int64_t i = 0;
  for (int64_t k = 0; k < set.num_shards(); ++k) {
    const int64_t base = k * 300, n = (set.shard(k).size() - 1) / len;
    for (int64_t j = 0; j < n; ++j, ++i) {
      set.sequential_window(i, len, w);
      ASSERT_EQ(w.size(), size_t(len + 1));
      const std::vector<int32_t> want(tokens.begin() + base + j * len, tokens.begin() + base + j * len + len + 1);
      ASSERT_EQ(w, want) << "window " << i;
    }
  }
  EXPECT_TRUE(contains(error_of([&] { set.sequential_window(i, len, w); }), "sequential window 30 is outside [0, 30)"));
  EXPECT_TRUE(contains(error_of([&] { set.sequential_window(-1, len, w); }), "outside [0, 30)"));

  // len + 1 == shard size: exactly one window per shard.
  lt2::write_shards(d.file("exact"), iota_tokens(20, 50), 50, 10);
  const ShardSet ex = ShardSet::from_dir(d.file("exact"), 0);
  EXPECT_EQ(ex.num_sequential_windows(9), 2);
  ex.sequential_window(1, 9, w);
  const std::vector<int32_t> all = iota_tokens(20, 50);
  EXPECT_EQ(w, std::vector<int32_t>(all.begin() + 10, all.end()));
}

TEST(Shards, AllShardsTooShortForTheWindow) {
  TempDir d;
  const std::string dir = d.file("set");
  lt2::write_shards(dir, iota_tokens(100, 50), 50, 10);
  const ShardSet set = ShardSet::from_dir(dir, 0);
  std::vector<int32_t> w;
  std::string msg = error_of([&] { set.sample_window(0, 10, w); });
  EXPECT_TRUE(starts_with(msg, dir + ": "));
  EXPECT_TRUE(contains(msg, "every shard is shorter than a window of len + 1 = 11 tokens"));
  EXPECT_TRUE(contains(error_of([&] { set.sequential_window(0, 10, w); }), "every shard is shorter"));
  EXPECT_TRUE(contains(error_of([&] { set.sample_window(0, 0, w); }), "window length must be >= 1"));
  set.sample_window(0, 9, w);  // 10 tokens fit exactly
  EXPECT_EQ(w.size(), 10u);
}

TEST(Shards, ShardSetDirectoryErrors) {
  TempDir d;
  // Empty directory.
  std::string msg = error_of([&] { ShardSet::from_dir(d.dir, 0); });
  EXPECT_TRUE(starts_with(msg, d.dir + ": "));
  EXPECT_TRUE(contains(msg, "no shard files (*.lt2shard)"));
  // Other files and a temp file are ignored.
  lt2::fs::write_file_atomic(d.file("notes.txt"), "hello");
  lt2::fs::write_file_atomic(d.file("shard_0.lt2shard.tmp.123"), "junk");
  EXPECT_TRUE(contains(error_of([&] { ShardSet::from_dir(d.dir, 0); }), "no shard files"));
  // Missing directory.
  msg = error_of([&] { ShardSet::from_dir(d.file("missing"), 0); });
  EXPECT_TRUE(starts_with(msg, d.file("missing") + ": "));
  EXPECT_TRUE(contains(msg, "no such directory"));
  // A corrupt shard in the set is named.
  lt2::write_shard(d.file("a.lt2shard"), {1, 2, 3}, 10);
  lt2::fs::write_file_atomic(d.file("b.lt2shard"), "LT2SHARD");
  msg = error_of([&] { ShardSet::from_dir(d.dir, 0); });
  EXPECT_TRUE(starts_with(msg, d.file("b.lt2shard") + ": file too small"));
  // Shards with different vocabularies do not mix.
  lt2::write_shard(d.file("b.lt2shard"), {1, 2, 3}, 11);
  msg = error_of([&] { ShardSet::from_dir(d.dir, 0); });
  EXPECT_TRUE(starts_with(msg, d.file("b.lt2shard") + ": vocab size mismatch"));
  EXPECT_TRUE(contains(error_of([&] { ShardSet::from_paths({}, 0); }), "no shard paths given"));
}
