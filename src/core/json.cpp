#include "core/json.h"

#include <charconv>
#include <cmath>
#include <unordered_set>

#include "core/fs.h"

namespace lt2::json {

const char* type_name(Type t) {
  switch (t) {
    case Type::Null: return "null";
    case Type::Bool: return "a boolean";
    case Type::Number: return "a number";
    case Type::String: return "a string";
    case Type::Array: return "an array";
    case Type::Object: return "an object";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------
// Value

Value::Value(double d) : type_(Type::Number), num_(d) {
  // Integral doubles are integers too, so 3.0 and 3 behave the same for get_int and dump.
  // -0.0 is kept as a double so its sign survives a round trip.
  if (std::isfinite(d) && d == std::trunc(d) && d >= -0x1p63 && d < 0x1p63 && !(d == 0 && std::signbit(d))) {
    int_ = static_cast<int64_t>(d);
    integer_ = true;
  }
}

Value Value::array() {
  Value v;
  v.type_ = Type::Array;
  return v;
}

Value Value::object() {
  Value v;
  v.type_ = Type::Object;
  return v;
}

void Value::expect(Type t) const {
  if (type_ != t) fail(cat("expected ", type_name(t), ", got ", type_name(type_)));
}

bool Value::as_bool() const { expect(Type::Bool); return bool_; }
double Value::as_number() const { expect(Type::Number); return num_; }
const std::string& Value::as_string() const { expect(Type::String); return str_; }
const std::vector<Value>& Value::elements() const { expect(Type::Array); return arr_; }
const std::vector<Value::Member>& Value::items() const { expect(Type::Object); return obj_; }

int64_t Value::as_int() const {
  expect(Type::Number);
  if (!integer_) fail(cat("expected an integer, got ", dump()));
  return int_;
}

size_t Value::size() const {
  if (type_ == Type::Array) return arr_.size();
  expect(Type::Object);
  return obj_.size();
}

const Value* Value::find(std::string_view key) const {
  expect(Type::Object);
  for (const Member& m : obj_)
    if (m.first == key) return &m.second;
  return nullptr;
}

Value& Value::push_back(Value v) {
  expect(Type::Array);
  arr_.push_back(std::move(v));
  return arr_.back();
}

Value& Value::set(const std::string& key, Value v) {
  expect(Type::Object);
  for (Member& m : obj_)
    if (m.first == key) return m.second = std::move(v);
  obj_.emplace_back(key, std::move(v));
  return obj_.back().second;
}

bool Value::operator==(const Value& o) const {
  if (type_ != o.type_) return false;
  switch (type_) {
    case Type::Null: return true;
    case Type::Bool: return bool_ == o.bool_;
    case Type::Number: return integer_ && o.integer_ ? int_ == o.int_ : num_ == o.num_;
    case Type::String: return str_ == o.str_;
    case Type::Array: return arr_ == o.arr_;
    case Type::Object: return obj_ == o.obj_;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Serialization

namespace {

void dump_string(std::string& out, const std::string& s) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;  // UTF-8 passes through unescaped
        }
    }
  }
  out += '"';
}

void newline(std::string& out, int indent, int level) {
  out += '\n';
  out.append(static_cast<size_t>(indent) * level, ' ');
}

}  // namespace

void Value::dump_to(std::string& out, int indent, int level) const {
  char buf[64];
  switch (type_) {
    case Type::Null: out += "null"; return;
    case Type::Bool: out += bool_ ? "true" : "false"; return;
    case Type::Number: {
      if (!std::isfinite(num_)) fail(cat("cannot write ", num_, " as JSON (NaN and Infinity are not allowed)"));
      // Integers print exactly; other doubles in the shortest form that parses back to the
      // same double (as round-trippable as %.17g, but 0.1 stays "0.1").
      auto r = integer_ ? std::to_chars(buf, buf + sizeof buf, int_) : std::to_chars(buf, buf + sizeof buf, num_);
      out.append(buf, r.ptr);
      return;
    }
    case Type::String: dump_string(out, str_); return;
    case Type::Array:
      out += '[';
      for (size_t i = 0; i < arr_.size(); ++i) {
        if (i) out += ',';
        if (indent >= 0) newline(out, indent, level + 1);
        arr_[i].dump_to(out, indent, level + 1);
      }
      if (indent >= 0 && !arr_.empty()) newline(out, indent, level);
      out += ']';
      return;
    case Type::Object:
      out += '{';
      for (size_t i = 0; i < obj_.size(); ++i) {
        if (i) out += ',';
        if (indent >= 0) newline(out, indent, level + 1);
        dump_string(out, obj_[i].first);
        out += indent >= 0 ? ": " : ":";
        obj_[i].second.dump_to(out, indent, level + 1);
      }
      if (indent >= 0 && !obj_.empty()) newline(out, indent, level);
      out += '}';
      return;
  }
}

std::string Value::dump(int indent) const {
  std::string out;
  dump_to(out, indent < 0 ? -1 : indent, 0);
  return out;
}

// ---------------------------------------------------------------------------------------
// Parsing: recursive descent over the raw bytes; positions become line:col only on error.

namespace {

// Length of the valid UTF-8 sequence starting at s[i] (which is >= 0x80), or 0 if invalid.
// Rejects overlong forms, UTF-16 surrogates and code points above U+10FFFF.
size_t utf8_sequence(std::string_view s, size_t i) {
  auto at = [&](size_t k) -> unsigned { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
  auto cont = [&](size_t k) { return (at(k) & 0xC0) == 0x80; };
  const unsigned c = at(0), c1 = at(1);
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    const bool ok1 = c == 0xE0 ? (c1 >= 0xA0 && c1 <= 0xBF) : c == 0xED ? (c1 >= 0x80 && c1 <= 0x9F) : cont(1);
    return ok1 && cont(2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    const bool ok1 = c == 0xF0 ? (c1 >= 0x90 && c1 <= 0xBF) : c == 0xF4 ? (c1 >= 0x80 && c1 <= 0x8F) : cont(1);
    return ok1 && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Deep enough for any real config, shallow enough that hostile input cannot overflow the stack.
constexpr int kMaxDepth = 512;

}  // namespace

class Parser {
 public:
  Parser(std::string_view text, const std::string& source) : s_(text), source_(source) {}

  Value document() {
    Value v = value(0);
    skip_ws();
    if (pos_ != s_.size()) error(pos_, "unexpected characters after the JSON value");
    return v;
  }

 private:
  std::string_view s_;
  const std::string& source_;
  size_t pos_ = 0;

  [[noreturn]] void error(size_t pos, const std::string& what) const {
    // Columns count characters (UTF-8 code points), as editors do.
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else if ((static_cast<unsigned char>(s_[i]) & 0xC0) != 0x80) {
        ++col;
      }
    }
    fail(cat(source_, ":", line, ":", col, ": ", what));
  }

  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool at_end() const { return pos_ >= s_.size(); }

  void skip_ws() {
    while (!at_end() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  Value value(int depth) {
    skip_ws();
    if (at_end()) error(pos_, "expected a value, got end of input");
    switch (s_[pos_]) {
      case '{': return object(depth + 1);
      case '[': return array(depth + 1);
      case '"': return Value(string());
      case 't': return literal("true", Value(true));
      case 'f': return literal("false", Value(false));
      case 'n': return literal("null", Value());
      default:
        if (s_[pos_] == '-' || is_digit(s_[pos_])) return number();
        error(pos_, "expected a value");
    }
  }

  Value literal(std::string_view word, Value v) {
    if (s_.substr(pos_, word.size()) != word) error(pos_, "invalid literal (expected true, false or null)");
    pos_ += word.size();
    return v;
  }

  Value object(int depth) {
    if (depth > kMaxDepth) error(pos_, "nesting too deep");
    ++pos_;  // '{'
    Value obj = Value::object();
    std::unordered_set<std::string> seen;  // keeps duplicate detection linear for big headers
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      return obj;
    }
    while (true) {
      skip_ws();
      if (peek() != '"') error(pos_, "expected a string key");
      const size_t key_pos = pos_;
      std::string key = string();
      if (!seen.insert(key).second) error(key_pos, cat("duplicate key '", key, "'"));
      skip_ws();
      if (peek() != ':') error(pos_, "expected ':' after object key");
      ++pos_;
      Value v = value(depth);
      obj.obj_.emplace_back(std::move(key), std::move(v));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
      } else if (peek() == '}') {
        ++pos_;
        return obj;
      } else {
        error(pos_, "expected ',' or '}' after object member");
      }
    }
  }

  Value array(int depth) {
    if (depth > kMaxDepth) error(pos_, "nesting too deep");
    ++pos_;  // '['
    Value arr = Value::array();
    skip_ws();
    if (peek() == ']') {
      ++pos_;
      return arr;
    }
    while (true) {
      arr.arr_.push_back(value(depth));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
      } else if (peek() == ']') {
        ++pos_;
        return arr;
      } else {
        error(pos_, "expected ',' or ']' after array element");
      }
    }
  }

  uint32_t hex4(size_t esc_pos) {
    uint32_t cp = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      const char c = peek();
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) error(esc_pos, "invalid \\u escape (expected 4 hex digits)");
      cp = cp * 16 + static_cast<uint32_t>(d);
    }
    return cp;
  }

  std::string string() {
    const size_t start = pos_++;  // opening quote
    std::string out;
    while (true) {
      if (at_end()) error(start, "unterminated string");
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) error(pos_, "control character in string (must be escaped)");
      if (c >= 0x80) {
        const size_t n = utf8_sequence(s_, pos_);
        if (n == 0) error(pos_, "invalid UTF-8 in string");
        out.append(s_.substr(pos_, n));
        pos_ += n;
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        ++pos_;
        continue;
      }
      const size_t esc = pos_++;
      const char e = peek();
      ++pos_;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4(esc);
          if (cp >= 0xDC00 && cp <= 0xDFFF) error(esc, "unpaired surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            // A high surrogate must be followed by an escaped low surrogate.
            if (s_.substr(pos_, 2) != "\\u") error(esc, "unpaired surrogate in \\u escape");
            pos_ += 2;
            const uint32_t lo = hex4(esc);
            if (lo < 0xDC00 || lo > 0xDFFF) error(esc, "unpaired surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: error(esc, "invalid escape in string");
      }
    }
  }

  Value number() {
    const size_t start = pos_;
    const bool neg = peek() == '-';
    if (neg) ++pos_;
    if (peek() == '0') {
      ++pos_;
      if (is_digit(peek())) error(pos_, "leading zeros are not allowed");
    } else if (is_digit(peek())) {
      while (is_digit(peek())) ++pos_;
    } else {
      error(pos_, "expected a digit after '-'");
    }
    bool integral = true;
    if (peek() == '.') {
      ++pos_;
      integral = false;
      if (!is_digit(peek())) error(pos_, "expected a digit after '.'");
      while (is_digit(peek())) ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      integral = false;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!is_digit(peek())) error(pos_, "expected a digit in the exponent");
      while (is_digit(peek())) ++pos_;
    }
    const char* b = s_.data() + start;
    const char* e = s_.data() + pos_;
    if (integral) {
      // Exact int64 when it fits (keeps 2^53+1 exact); "-0" stays a double to keep its sign.
      int64_t i = 0;
      auto r = std::from_chars(b, e, i);
      if (r.ec == std::errc() && r.ptr == e && !(neg && i == 0)) return Value(i);
    }
    double d = 0;
    auto r = std::from_chars(b, e, d);
    if (r.ec == std::errc::result_out_of_range) {
      // Too small rounds to zero (as strtod does); too large has no finite double.
      if (decimal_magnitude(b, e) >= 0) error(start, "number out of range");
      d = neg ? -0.0 : 0.0;
    } else if (r.ec != std::errc() || r.ptr != e || !std::isfinite(d)) {
      error(start, "number out of range");
    }
    return Value(d);
  }

  // Decimal exponent of the first significant digit of a (syntactically valid, non-zero)
  // number: 123 -> 2, 0.05 -> -2, 1e400 -> 400. Only its sign matters to the caller.
  static int64_t decimal_magnitude(const char* b, const char* e) {
    if (*b == '-') ++b;
    int64_t int_digits = 0, index = 0, first_nonzero = -1;
    bool after_point = false;
    const char* p = b;
    for (; p < e && *p != 'e' && *p != 'E'; ++p) {
      if (*p == '.') {
        after_point = true;
        continue;
      }
      if (first_nonzero < 0 && *p != '0') first_nonzero = index;
      ++index;
      if (!after_point) ++int_digits;
    }
    int64_t exp = 0;
    if (p < e) {
      ++p;
      const bool eneg = *p == '-';
      if (*p == '+' || *p == '-') ++p;
      for (; p < e && exp < 1000000000; ++p) exp = exp * 10 + (*p - '0');  // saturates
      if (eneg) exp = -exp;
    }
    return int_digits - 1 - first_nonzero + exp;
  }
};

Value Value::parse(std::string_view text, const std::string& source) { return Parser(text, source).document(); }

Value read_file(const std::string& path) { return Value::parse(fs::read_file(path), path); }

void check_known_fields(const Value& obj, std::initializer_list<std::string_view> known, const std::string& ctx,
                        const char* what) {
  for (const auto& [key, _] : obj.items()) {
    bool ok = false;
    for (std::string_view k : known) ok = ok || key == k;
    LT2_CHECK(ok, ctx, ": unknown ", what, " '", key, "'");
  }
}

// ---------------------------------------------------------------------------------------
// Typed field readers

namespace {

// The member `key` of `obj`, or nullptr; throws if `obj` is not an object.
const Value* field(const Value& obj, const std::string& key, const std::string& ctx) {
  if (!obj.is_object()) fail(cat(ctx, ": expected an object, got ", type_name(obj.type())));
  return obj.find(key);
}

const Value& required(const Value& obj, const std::string& key, const std::string& ctx) {
  const Value* v = field(obj, key, ctx);
  if (!v) fail(cat(ctx, ": missing field '", key, "'"));
  return *v;
}

// Null counts as absent for optional fields (configs often write "key": null for "unset").
const Value* optional(const Value& obj, const std::string& key, const std::string& ctx) {
  const Value* v = field(obj, key, ctx);
  return v && !v->is_null() ? v : nullptr;
}

[[noreturn]] void wrong(const Value& v, const std::string& key, const std::string& ctx, const char* expected) {
  fail(cat(ctx, ": field '", key, "': expected ", expected, ", got ",
           v.is_number() ? v.dump() : std::string(type_name(v.type()))));
}

double number_of(const Value& v, const std::string& key, const std::string& ctx) {
  if (!v.is_number()) wrong(v, key, ctx, "a number");
  return v.as_number();
}

int64_t int_of(const Value& v, const std::string& key, const std::string& ctx) {
  if (!v.is_integer()) wrong(v, key, ctx, "an integer");
  return v.as_int();
}

std::string string_of(const Value& v, const std::string& key, const std::string& ctx) {
  if (!v.is_string()) wrong(v, key, ctx, "a string");
  return v.as_string();
}

bool bool_of(const Value& v, const std::string& key, const std::string& ctx) {
  if (!v.is_bool()) wrong(v, key, ctx, "a boolean");
  return v.as_bool();
}

}  // namespace

double get_number(const Value& obj, const std::string& key, const std::string& ctx) {
  return number_of(required(obj, key, ctx), key, ctx);
}
double get_number(const Value& obj, const std::string& key, const std::string& ctx, double def) {
  const Value* v = optional(obj, key, ctx);
  return v ? number_of(*v, key, ctx) : def;
}
int64_t get_int(const Value& obj, const std::string& key, const std::string& ctx) {
  return int_of(required(obj, key, ctx), key, ctx);
}
int64_t get_int(const Value& obj, const std::string& key, const std::string& ctx, int64_t def) {
  const Value* v = optional(obj, key, ctx);
  return v ? int_of(*v, key, ctx) : def;
}
std::string get_string(const Value& obj, const std::string& key, const std::string& ctx) {
  return string_of(required(obj, key, ctx), key, ctx);
}
std::string get_string(const Value& obj, const std::string& key, const std::string& ctx, const std::string& def) {
  const Value* v = optional(obj, key, ctx);
  return v ? string_of(*v, key, ctx) : def;
}
bool get_bool(const Value& obj, const std::string& key, const std::string& ctx) {
  return bool_of(required(obj, key, ctx), key, ctx);
}
bool get_bool(const Value& obj, const std::string& key, const std::string& ctx, bool def) {
  const Value* v = optional(obj, key, ctx);
  return v ? bool_of(*v, key, ctx) : def;
}

}  // namespace lt2::json
