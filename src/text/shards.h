#pragma once
// Token shards: flat binary files of token ids that are memory-mapped for training, so a
// corpus larger than memory streams from the page cache instead of living in a vector.
//
// File layout (format version 1). Every integer is little-endian; offsets are in bytes.
//
//   offset size  field
//   ------ ----  ---------------------------------------------------------------------
//        0    8  magic: the ASCII bytes "LT2SHARD" (no terminator)
//        8    4  uint32 format version = 1
//       12    4  uint32 token dtype code: 1 = uint16, 2 = int32
//       16    8  int64  vocab size V (1 <= V <= 2^31); every token lies in [0, V)
//       24    8  int64  token count N (>= 0)
//       32    8  uint64 checksum of the payload bytes: 64-bit FNV-1a (offset basis
//                       0xcbf29ce484222325, prime 0x100000001b3, one byte at a time)
//       40    4  uint32 header size H: the payload starts at byte H; version 1 writes 64,
//                       readers accept any H >= 64 and ignore the bytes in [44, H)
//       44   20  reserved, written as zeros
//        H  N*s  payload: N tokens of s bytes each (s = 2 for uint16, 4 for int32)
//
// The file is exactly H + N*s bytes long. write_shard picks uint16 when V <= 65536 and int32
// otherwise. The checksum covers the payload only; the header is validated field by field.
//
// Shards are immutable once written: write_shard replaces a file by rename, so a process that
// has an older shard mapped keeps reading the old (unlinked) contents. Truncating a mapped
// shard in place is not supported (the kernel raises SIGBUS on access past the new end).
#include <cstdint>
#include <string>
#include <vector>

namespace lt2 {

inline constexpr char kShardMagic[8] = {'L', 'T', '2', 'S', 'H', 'A', 'R', 'D'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr uint32_t kShardHeaderSize = 64;
inline constexpr const char* kShardExtension = ".lt2shard";

enum class ShardDType : uint32_t { U16 = 1, I32 = 2 };

// 64-bit FNV-1a of `n` bytes, continuing from `h` (the shard payload checksum).
uint64_t fnv1a64(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull);

// Writes `tokens` as one shard at `path` atomically (fs::write_file_atomic). Throws
// lt2::Error starting with the path when vocab_size is outside [1, 2^31] or a token lies
// outside [0, vocab_size) ("token out of range"). An empty token list is a valid shard.
void write_shard(const std::string& path, const std::vector<int32_t>& tokens, int64_t vocab_size);

// Splits `tokens` into consecutive shards of `tokens_per_shard` tokens (the last one may be
// shorter) named shard_00000.lt2shard, shard_00001.lt2shard, ... in `dir` (created if
// missing). At least one shard is written, even for no tokens. Refuses a directory that
// already holds *.lt2shard files, so a stale tail of an older, longer set never mixes in.
void write_shards(const std::string& dir, const std::vector<int32_t>& tokens, int64_t vocab_size,
                  int64_t tokens_per_shard);

// One shard, memory-mapped read-only. Opening validates the whole file (header fields,
// sizes, checksum, token range); every error is an lt2::Error "<path>: <problem>: ...".
// Problems named: "cannot open", "file too small", "bad magic", "unsupported format version",
// "bad header size", "unknown token dtype", "bad vocab size", "size mismatch",
// "checksum mismatch", "token out of range".
class Shard {
 public:
  explicit Shard(const std::string& path);
  ~Shard();
  Shard(Shard&& other) noexcept;
  Shard& operator=(Shard&& other) noexcept;
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  int64_t size() const { return count_; }
  int64_t vocab_size() const { return vocab_; }
  ShardDType dtype() const { return dtype_; }
  const std::string& path() const { return path_; }

  // Token i; throws lt2::Error when i is outside [0, size()).
  int32_t operator[](int64_t i) const;
  // Copies tokens [start, start + n) to out[0, n); throws when the range leaves the shard.
  void read(int64_t start, int64_t n, int32_t* out) const;

 private:
  void unmap() noexcept;
  std::string path_;
  void* map_ = nullptr;
  size_t map_len_ = 0;
  const unsigned char* payload_ = nullptr;
  int64_t count_ = 0;
  int64_t vocab_ = 0;
  ShardDType dtype_ = ShardDType::U16;
};

// Several shards with one vocabulary, read as training and evaluation windows. A window of
// `len` is len + 1 consecutive tokens (inputs and their next-token targets) and never
// crosses a shard boundary.
class ShardSet {
 public:
  // Every regular file named *.lt2shard in `dir`, in byte-wise sorted file-name order.
  // An empty or missing directory is an error naming the directory.
  static ShardSet from_dir(const std::string& dir, uint64_t seed);
  // The given shards, in the given order (at least one).
  static ShardSet from_paths(const std::vector<std::string>& paths, uint64_t seed);

  int64_t num_shards() const { return int64_t(shards_.size()); }
  const Shard& shard(int64_t i) const { return shards_.at(size_t(i)); }
  int64_t vocab_size() const { return vocab_; }
  int64_t total_tokens() const;

  // Window number `index` of the random stream: a start position drawn uniformly among all
  // windows of every shard long enough, by the counter RNG keyed by (seed, index). A pure
  // function of (shards, seed, index, len), so a run's data position is its window counter.
  // Resizes `out` to len + 1. Throws when len < 1 or every shard is shorter than len + 1.
  void sample_window(uint64_t index, int64_t len, std::vector<int32_t>& out) const;

  // Windows for evaluation: shard by shard in order, window j of a shard starts at j * len,
  // so consecutive windows share one token and every token after a shard's first is a
  // target exactly once (up to each shard's tail shorter than len). i in
  // [0, num_sequential_windows(len)), else an error.
  int64_t num_sequential_windows(int64_t len) const;
  void sequential_window(int64_t i, int64_t len, std::vector<int32_t>& out) const;

 private:
  ShardSet(std::vector<Shard> shards, std::string where, uint64_t seed);
  void check_len(int64_t len) const;
  std::vector<Shard> shards_;
  std::string where_;  // the directory, or the first path, for error messages
  uint64_t seed_ = 0;
  int64_t vocab_ = 0;
};

}  // namespace lt2
