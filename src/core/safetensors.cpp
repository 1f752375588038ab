#include "core/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <unordered_set>

#include "core/fs.h"
#include "core/json.h"

namespace lt2::safetensors {

// The format is little-endian and tensors are copied byte for byte.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

// Refuse headers this large before allocating or parsing them: real headers are kilobytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

const DType kDTypes[] = {DType::F32, DType::F64, DType::BF16, DType::I32};

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

// Every load error starts with the path, so users know which checkpoint is broken.
[[noreturn]] void bad(const std::string& path, const std::string& msg) { fail(cat(path, ": ", msg)); }

// Parses and checks one tensor entry of the header (everything that does not need the
// other entries).
Entry parse_entry(const std::string& path, const std::string& name, const json::Value& v, uint64_t data_len) {
  auto err = [&](const std::string& msg) { bad(path, msg); };
  const std::string what = cat("tensor '", name, "'");
  if (!v.is_object()) err(cat(what, ": expected an object, got ", json::type_name(v.type())));
  for (const auto& [key, _] : v.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets") err(cat(what, ": unexpected field '", key, "'"));
  auto need = [&](const char* key) -> const json::Value& {
    const json::Value* f = v.find(key);
    if (!f) bad(path, cat(what, ": missing field '", key, "'"));
    return *f;
  };
  const json::Value& dt = need("dtype");
  const json::Value& shape = need("shape");
  const json::Value& offs = need("data_offsets");

  Entry e{name, DType::F32, {}, 0, 0};
  if (!dt.is_string()) err(cat(what, ": dtype must be a string"));
  const auto* known = std::find_if(std::begin(kDTypes), std::end(kDTypes),
                                   [&](DType t) { return dt.as_string() == dtype_name(t); });
  if (known == std::end(kDTypes)) err(cat("unsupported dtype '", dt.as_string(), "' for ", what));
  e.dtype = *known;

  if (!shape.is_array()) err(cat(what, ": shape must be an array of non-negative integers"));
  for (const json::Value& d : shape.elements()) {
    if (!d.is_integer() || d.as_int() < 0) err(cat(what, ": shape must be an array of non-negative integers"));
    e.shape.push_back(d.as_int());
  }

  if (!offs.is_array() || offs.size() != 2 || !offs.elements()[0].is_integer() || !offs.elements()[1].is_integer() ||
      offs.elements()[0].as_int() < 0 || offs.elements()[0].as_int() > offs.elements()[1].as_int())
    err(cat(what, ": data_offsets must be [begin, end] with 0 <= begin <= end"));
  e.begin = static_cast<uint64_t>(offs.elements()[0].as_int());
  e.end = static_cast<uint64_t>(offs.elements()[1].as_int());

  // Byte size implied by dtype and shape. Hostile shapes must not wrap around to a small
  // number; the product of the non-zero dimensions must also fit in int64 even when another
  // dimension is 0, because tensor code multiplies dimensions left to right.
  int64_t nonzero = 1;
  bool has_zero = false, too_big = false;
  for (int64_t d : e.shape) {
    if (d == 0) has_zero = true;
    else too_big = too_big || __builtin_mul_overflow(nonzero, d, &nonzero);
  }
  uint64_t need_bytes = 0;
  too_big = too_big || __builtin_mul_overflow(static_cast<uint64_t>(nonzero), dtype_size(e.dtype), &need_bytes);
  if (too_big) err(cat(what, ": shape ", shape_str(e.shape), " is too large"));
  if (has_zero) need_bytes = 0;
  if (need_bytes != e.end - e.begin)
    err(cat(what, ": data_offsets span ", e.end - e.begin, " bytes but dtype ", dtype_name(e.dtype), " with shape ",
            shape_str(e.shape), " needs ", need_bytes, " bytes"));
  if (e.end > data_len)
    err(cat(what, ": data_offsets [", e.begin, ", ", e.end, "] extend past the end of the data buffer (", data_len,
            " bytes)"));
  return e;
}

}  // namespace

const Tensor* File::find(std::string_view name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

const Tensor& File::get(std::string_view name) const {
  const Tensor* t = find(name);
  if (!t) fail(cat(path, ": no tensor named '", name, "'"));
  return *t;
}

File load(const std::string& path) {
  const std::string bytes = fs::read_file(path);
  auto err = [&](const std::string& msg) { bad(path, msg); };

  if (bytes.size() < 8) err(cat("file is too short to be safetensors (", bytes.size(), " bytes, need at least 8)"));
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  if (n == 0) err("header length is 0");
  if (n > kMaxHeaderBytes) err(cat("header length ", n, " is absurd (limit ", kMaxHeaderBytes, " bytes)"));
  if (n > bytes.size() - 8) err(cat("header length ", n, " exceeds the file size (", bytes.size(), " bytes)"));
  const std::string_view header(bytes.data() + 8, n);
  const char* data = bytes.data() + 8 + n;
  const uint64_t data_len = bytes.size() - 8 - n;

  // JSON errors already read "<path>:<line>:<col>: ...".
  const json::Value root = json::Value::parse(header, path);
  if (!root.is_object()) err(cat("header must be a JSON object, got ", json::type_name(root.type())));

  File file;
  file.path = path;
  std::vector<Entry> entries;
  for (const auto& [name, v] : root.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) err(cat("__metadata__ must be an object, got ", json::type_name(v.type())));
      for (const auto& [k, mv] : v.items()) {
        if (!mv.is_string()) err(cat("__metadata__ value for '", k, "' must be a string, got ", json::type_name(mv.type())));
        file.metadata.emplace_back(k, mv.as_string());
      }
      continue;
    }
    entries.push_back(parse_entry(path, name, v, data_len));
  }

  // Walking the ranges in order, each must start exactly where the previous one ended:
  // earlier is an overlap, later is a gap, and the last must end at the end of the file.
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t cursor = 0;
  const std::string* prev = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < cursor) err(cat("tensors '", *prev, "' and '", e.name, "' overlap in the data buffer"));
    if (e.begin > cursor) err(cat("gap of ", e.begin - cursor, " bytes in the data buffer before tensor '", e.name, "'"));
    cursor = e.end;
    prev = &e.name;
  }
  if (cursor != data_len) err(cat(data_len - cursor, " trailing bytes after the last tensor"));

  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (e.end > e.begin) std::memcpy(t.bytes(), data + e.begin, e.end - e.begin);
    file.tensors.emplace_back(e.name, std::move(t));
  }
  return file;
}

std::string serialize(const TensorList& tensors, const Metadata& metadata) {
  json::Value header = json::Value::object();
  if (!metadata.empty()) {
    json::Value meta = json::Value::object();
    for (const auto& [k, v] : metadata) {
      LT2_CHECK(!meta.find(k), "safetensors: duplicate metadata key '", k, "'");
      meta.set(k, v);
    }
    header.set("__metadata__", std::move(meta));
  }
  std::unordered_set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    LT2_CHECK(!name.empty() && name != "__metadata__", "safetensors: invalid tensor name '", name, "'");
    LT2_CHECK(names.insert(name).second, "safetensors: duplicate tensor name '", name, "'");
    LT2_CHECK(t.defined(), "safetensors: tensor '", name, "' is undefined");
    json::Value shape = json::Value::array();
    for (int64_t d : t.shape()) shape.push_back(d);
    json::Value offs = json::Value::array();
    offs.push_back(offset);
    offs.push_back(offset + t.nbytes());
    offset += t.nbytes();
    json::Value entry = json::Value::object();
    entry.set("dtype", dtype_name(t.dtype()));
    entry.set("shape", std::move(shape));
    entry.set("data_offsets", std::move(offs));
    header.set(name, std::move(entry));  // names are unique, so this appends
  }

  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data buffer 8-byte aligned
  std::string out(8, '\0');
  const uint64_t n = text.size();
  std::memcpy(out.data(), &n, 8);
  out.reserve(8 + text.size() + offset);
  out += text;
  for (const auto& [name, t] : tensors) out.append(reinterpret_cast<const char*>(t.bytes()), t.nbytes());
  return out;
}

void save(const std::string& path, const TensorList& tensors, const Metadata& metadata) {
  fs::write_file_atomic(path, serialize(tensors, metadata));
}

}  // namespace lt2::safetensors
