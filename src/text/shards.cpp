#include "text/shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "core/error.h"
#include "core/fs.h"
#include "core/rng.h"

namespace lt2 {

namespace {

constexpr int64_t kMaxVocab = int64_t(1) << 31;  // tokens are int32
constexpr int64_t kU16MaxVocab = 65536;

std::string reason(int err) { return std::system_category().message(err); }

int64_t dtype_bytes(ShardDType d) { return d == ShardDType::U16 ? 2 : 4; }
const char* dtype_name(ShardDType d) { return d == ShardDType::U16 ? "uint16" : "int32"; }

void put_u16(std::string& s, uint16_t v) {
  s.push_back(char(v & 0xff));
  s.push_back(char(v >> 8));
}
void put_u32(std::string& s, uint32_t v) {
  for (int b = 0; b < 4; ++b) s.push_back(char((v >> (8 * b)) & 0xff));
}
void put_u64(std::string& s, uint64_t v) {
  for (int b = 0; b < 8; ++b) s.push_back(char((v >> (8 * b)) & 0xff));
}
uint32_t get_u32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint64_t get_u64(const unsigned char* p) { return uint64_t(get_u32(p)) | uint64_t(get_u32(p + 4)) << 32; }

// Token i of a payload (byte-wise little-endian, so the host's byte order does not matter;
// compilers turn this into a plain load on little-endian machines).
inline int32_t load_token(const unsigned char* payload, ShardDType d, int64_t i) {
  if (d == ShardDType::U16) {
    const unsigned char* p = payload + 2 * i;
    return int32_t(uint32_t(p[0]) | uint32_t(p[1]) << 8);
  }
  return int32_t(get_u32(payload + 4 * i));
}

void check_vocab(const std::string& path, int64_t vocab) {
  LT2_CHECK(vocab >= 1 && vocab <= kMaxVocab, path, ": bad vocab size ", vocab, " (expected 1 .. 2^31)");
}

// Closes a descriptor on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

uint64_t fnv1a64(const void* data, size_t n, uint64_t h) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

// ---------------------------------------------------------------------------------------
// Writing

namespace {

std::string encode_shard(const std::string& path, const int32_t* tokens, int64_t n, int64_t vocab) {
  check_vocab(path, vocab);
  for (int64_t i = 0; i < n; ++i)
    LT2_CHECK(tokens[i] >= 0 && tokens[i] < vocab, path, ": token out of range: token ", tokens[i],
              " at position ", i, " is not in [0, ", vocab, ")");
  const ShardDType dt = vocab <= kU16MaxVocab ? ShardDType::U16 : ShardDType::I32;

  std::string payload;
  payload.reserve(size_t(n * dtype_bytes(dt)));
  for (int64_t i = 0; i < n; ++i) {
    if (dt == ShardDType::U16)
      put_u16(payload, uint16_t(tokens[i]));
    else
      put_u32(payload, uint32_t(tokens[i]));
  }

  std::string out;
  out.reserve(kShardHeaderSize + payload.size());
  out.append(kShardMagic, sizeof kShardMagic);
  put_u32(out, kShardVersion);
  put_u32(out, uint32_t(dt));
  put_u64(out, uint64_t(vocab));
  put_u64(out, uint64_t(n));
  put_u64(out, fnv1a64(payload.data(), payload.size()));
  put_u32(out, kShardHeaderSize);
  out.resize(kShardHeaderSize, '\0');  // reserved bytes
  out += payload;
  return out;
}

}  // namespace

void write_shard(const std::string& path, const std::vector<int32_t>& tokens, int64_t vocab_size) {
  fs::write_file_atomic(path, encode_shard(path, tokens.data(), int64_t(tokens.size()), vocab_size));
}

void write_shards(const std::string& dir, const std::vector<int32_t>& tokens, int64_t vocab_size,
                  int64_t tokens_per_shard) {
  LT2_CHECK(tokens_per_shard >= 1, dir, ": tokens_per_shard must be >= 1, got ", tokens_per_shard);
  check_vocab(dir, vocab_size);
  fs::make_dirs(dir);
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    LT2_CHECK(it->path().extension() != kShardExtension, dir, ": already contains shard files (",
              it->path().filename().string(), "); write a new shard set to an empty directory");
  LT2_CHECK(!ec, dir, ": cannot list directory: ", ec.message());

  const int64_t n = int64_t(tokens.size());
  const int64_t count = std::max<int64_t>(1, (n + tokens_per_shard - 1) / tokens_per_shard);
  const int width = std::max<int>(5, int(std::to_string(count - 1).size()));
  for (int64_t s = 0; s < count; ++s) {
    std::string num = std::to_string(s);
    num.insert(0, size_t(width) - num.size(), '0');
    const std::string path = cat(dir, "/shard_", num, kShardExtension);
    const int64_t begin = s * tokens_per_shard, len = std::min(tokens_per_shard, n - begin);
    fs::write_file_atomic(path, encode_shard(path, tokens.data() + begin, std::max<int64_t>(0, len), vocab_size));
  }
}

// ---------------------------------------------------------------------------------------
// Shard

Shard::Shard(const std::string& path) : path_(path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) fail(cat(path, ": cannot open: ", reason(errno)));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) fail(cat(path, ": cannot open: ", reason(errno)));
  LT2_CHECK(S_ISREG(st.st_mode), path, ": cannot open: not a regular file");
  const int64_t file_size = st.st_size;
  LT2_CHECK(file_size >= int64_t(kShardHeaderSize), path, ": file too small: ", file_size,
            " bytes, a shard header alone is ", kShardHeaderSize, " bytes");

  void* m = ::mmap(nullptr, size_t(file_size), PROT_READ, MAP_PRIVATE, f.fd, 0);
  if (m == MAP_FAILED) fail(cat(path, ": cannot map: ", reason(errno)));
  map_ = m;
  map_len_ = size_t(file_size);

  try {
    const unsigned char* base = static_cast<const unsigned char*>(map_);
    LT2_CHECK(std::memcmp(base, kShardMagic, sizeof kShardMagic) == 0, path,
              ": bad magic: not an lt2 token shard (expected the file to start with \"LT2SHARD\")");
    const uint32_t version = get_u32(base + 8);
    LT2_CHECK(version == kShardVersion, path, ": unsupported format version ", version, " (this build reads version ",
              kShardVersion, ")");
    const uint32_t header = get_u32(base + 40);
    LT2_CHECK(header >= kShardHeaderSize && int64_t(header) <= file_size, path, ": bad header size ", header,
              " (expected >= ", kShardHeaderSize, " and <= the file size ", file_size, ")");
    const uint32_t code = get_u32(base + 12);
    LT2_CHECK(code == uint32_t(ShardDType::U16) || code == uint32_t(ShardDType::I32), path,
              ": unknown token dtype code ", code, " (expected 1 = uint16 or 2 = int32)");
    dtype_ = ShardDType(code);
    vocab_ = int64_t(get_u64(base + 16));
    check_vocab(path, vocab_);
    LT2_CHECK(dtype_ == ShardDType::I32 || vocab_ <= kU16MaxVocab, path, ": bad vocab size ", vocab_,
              " for uint16 tokens (at most 65536)");

    const uint64_t count = get_u64(base + 24);
    const int64_t payload_bytes = file_size - int64_t(header);
    const int64_t s = dtype_bytes(dtype_);
    LT2_CHECK(count <= uint64_t(payload_bytes) / uint64_t(s) && int64_t(count) * s == payload_bytes, path,
              ": size mismatch: the header says ", count, " ", dtype_name(dtype_), " tokens (",
              count <= uint64_t(INT64_MAX) / uint64_t(s) ? cat(count * uint64_t(s)) : std::string("too many"),
              " bytes) but the payload is ", payload_bytes, " bytes");
    count_ = int64_t(count);
    payload_ = base + header;

    const uint64_t want = get_u64(base + 32);
    const uint64_t got = fnv1a64(payload_, size_t(payload_bytes));
    LT2_CHECK(got == want, path, ": checksum mismatch: the payload hashes to ", got, ", the header says ", want,
              " (the file is corrupt)");

    for (int64_t i = 0; i < count_; ++i) {
      const int32_t t = load_token(payload_, dtype_, i);
      LT2_CHECK(t >= 0 && t < vocab_, path, ": token out of range: token ", t, " at position ", i, " is not in [0, ",
                vocab_, ")");
    }
  } catch (...) {
    unmap();
    throw;
  }
}

Shard::~Shard() { unmap(); }

void Shard::unmap() noexcept {
  if (map_) ::munmap(map_, map_len_);
  map_ = nullptr;
  map_len_ = 0;
  payload_ = nullptr;
  count_ = 0;
}

Shard::Shard(Shard&& o) noexcept
    : path_(std::move(o.path_)),
      map_(std::exchange(o.map_, nullptr)),
      map_len_(std::exchange(o.map_len_, 0)),
      payload_(std::exchange(o.payload_, nullptr)),
      count_(std::exchange(o.count_, 0)),
      vocab_(std::exchange(o.vocab_, 0)),
      dtype_(o.dtype_) {}

Shard& Shard::operator=(Shard&& o) noexcept {
  if (this != &o) {
    unmap();
    path_ = std::move(o.path_);
    map_ = std::exchange(o.map_, nullptr);
    map_len_ = std::exchange(o.map_len_, 0);
    payload_ = std::exchange(o.payload_, nullptr);
    count_ = std::exchange(o.count_, 0);
    vocab_ = std::exchange(o.vocab_, 0);
    dtype_ = o.dtype_;
  }
  return *this;
}

int32_t Shard::operator[](int64_t i) const {
  LT2_CHECK(i >= 0 && i < count_, path_, ": token index ", i, " is outside [0, ", count_, ")");
  return load_token(payload_, dtype_, i);
}

void Shard::read(int64_t start, int64_t n, int32_t* out) const {
  LT2_CHECK(start >= 0 && n >= 0 && start <= count_ && n <= count_ - start, path_, ": token range [", start, ", ",
            start + n, ") is outside [0, ", count_, ")");
  if (dtype_ == ShardDType::U16) {
    for (int64_t i = 0; i < n; ++i) out[i] = load_token(payload_, ShardDType::U16, start + i);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = load_token(payload_, ShardDType::I32, start + i);
  }
}

// ---------------------------------------------------------------------------------------
// ShardSet

ShardSet::ShardSet(std::vector<Shard> shards, std::string where, uint64_t seed)
    : shards_(std::move(shards)), where_(std::move(where)), seed_(seed) {
  vocab_ = shards_.front().vocab_size();
  for (const Shard& s : shards_)
    LT2_CHECK(s.vocab_size() == vocab_, s.path(), ": vocab size mismatch: this shard has vocab ", s.vocab_size(),
              " but ", shards_.front().path(), " has ", vocab_);
}

ShardSet ShardSet::from_dir(const std::string& dir, uint64_t seed) {
  namespace sfs = std::filesystem;
  std::error_code ec;
  const sfs::file_status st = sfs::status(dir, ec);
  LT2_CHECK(st.type() != sfs::file_type::not_found, dir, ": no such directory");
  LT2_CHECK(!ec, dir, ": cannot read shard directory: ", ec.message());
  LT2_CHECK(sfs::is_directory(st), dir, ": not a directory (expected a directory of *", kShardExtension, " files)");
  std::vector<std::string> names;
  for (sfs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() != kShardExtension) continue;
    std::error_code ec2;
    if (it->is_regular_file(ec2)) names.push_back(it->path().filename().string());
  }
  LT2_CHECK(!ec, dir, ": cannot list shard directory: ", ec.message());
  LT2_CHECK(!names.empty(), dir, ": no shard files (*", kShardExtension, ") in this directory");
  std::sort(names.begin(), names.end());
  std::vector<Shard> shards;
  shards.reserve(names.size());
  for (const std::string& n : names) shards.emplace_back(cat(dir, "/", n));
  return ShardSet(std::move(shards), dir, seed);
}

ShardSet ShardSet::from_paths(const std::vector<std::string>& paths, uint64_t seed) {
  LT2_CHECK(!paths.empty(), "shard set: no shard paths given");
  std::vector<Shard> shards;
  shards.reserve(paths.size());
  for (const std::string& p : paths) shards.emplace_back(p);
  return ShardSet(std::move(shards), paths.size() == 1 ? paths[0] : cat(paths[0], " (and ", paths.size() - 1, " more)"),
                  seed);
}

int64_t ShardSet::total_tokens() const {
  int64_t n = 0;
  for (const Shard& s : shards_) n += s.size();
  return n;
}

void ShardSet::check_len(int64_t len) const {
  LT2_CHECK(len >= 1, where_, ": window length must be >= 1, got ", len);
  int64_t longest = 0;
  for (const Shard& s : shards_) longest = std::max(longest, s.size());
  LT2_CHECK(longest >= len + 1, where_, ": every shard is shorter than a window of len + 1 = ", len + 1,
            " tokens (the longest of ", shards_.size(), " has ", longest,
            "): use a shorter sequence length or larger shards");
}

void ShardSet::sample_window(uint64_t index, int64_t len, std::vector<int32_t>& out) const {
  check_len(len);
  // A shard of S >= len + 1 tokens has S - len window starts; draw one uniformly among all.
  uint64_t total = 0;
  for (const Shard& s : shards_)
    if (s.size() > len) total += uint64_t(s.size() - len);
  const CounterRng rng{seed_, stream_id("lt2-shard-window")};
  uint64_t r = rng.bits(index) % total;  // bias <= total / 2^64: negligible
  for (const Shard& s : shards_) {
    if (s.size() <= len) continue;
    const uint64_t starts = uint64_t(s.size() - len);
    if (r < starts) {
      out.resize(size_t(len + 1));
      s.read(int64_t(r), len + 1, out.data());
      return;
    }
    r -= starts;
  }
  fail(cat(where_, ": internal error: window draw out of range"));  // unreachable
}

int64_t ShardSet::num_sequential_windows(int64_t len) const {
  check_len(len);
  int64_t n = 0;
  for (const Shard& s : shards_)
    if (s.size() > len) n += (s.size() - 1) / len;
  return n;
}

void ShardSet::sequential_window(int64_t i, int64_t len, std::vector<int32_t>& out) const {
  const int64_t total = num_sequential_windows(len);
  LT2_CHECK(i >= 0 && i < total, where_, ": sequential window ", i, " is outside [0, ", total, ") for len ", len);
  for (const Shard& s : shards_) {
    const int64_t w = s.size() > len ? (s.size() - 1) / len : 0;
    if (i < w) {
      out.resize(size_t(len + 1));
      s.read(i * len, len + 1, out.data());
      return;
    }
    i -= w;
  }
  fail(cat(where_, ": internal error: sequential window out of range"));  // unreachable
}

}  // namespace lt2
