#pragma once
// A small, strict JSON library (RFC 8259) for configs and safetensors headers.
// Objects keep insertion order so that files we write are stable and diffable, and the
// parser rejects duplicate keys (a config with two "lr" entries is almost surely a typo).
// Parse errors read "<source>:<line>:<col>: <what was expected>".
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"

namespace lt2::json {

enum class Type { Null, Bool, Number, String, Array, Object };

// "null", "a boolean", "a number", "a string", "an array", "an object" (for messages).
const char* type_name(Type t);

class Value {
 public:
  using Member = std::pair<std::string, Value>;

  Value() = default;  // null
  Value(std::nullptr_t) {}
  Value(bool b) : type_(Type::Bool), bool_(b) {}
  Value(double d);
  Value(int64_t i) : type_(Type::Number), num_(static_cast<double>(i)), int_(i), integer_(true) {}
  Value(int i) : Value(int64_t{i}) {}
  // Other integer types (size_t, unsigned, long long): exact when they fit in int64.
  template <class T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, int> &&
             !std::is_same_v<T, int64_t>)
  Value(T v) : Value(from_integer(v)) {}
  Value(std::string s) : type_(Type::String), str_(std::move(s)) {}
  Value(const char* s) : Value(std::string(s)) {}

  static Value array();
  static Value object();

  // Strict RFC 8259 parse; throws lt2::Error "<source>:<line>:<col>: <expected ...>".
  static Value parse(std::string_view text, const std::string& source);
  // indent < 0: compact; otherwise pretty-printed with `indent` spaces per level.
  // Throws lt2::Error on NaN / Infinity, which JSON cannot represent.
  std::string dump(int indent = -1) const;

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  // A number with an integral value that fits in int64 (as_int() is then exact).
  bool is_integer() const { return type_ == Type::Number && integer_; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // Typed access; each throws lt2::Error "expected <type>, got <type>" on a mismatch.
  bool as_bool() const;
  double as_number() const;
  int64_t as_int() const;
  const std::string& as_string() const;
  const std::vector<Value>& elements() const;
  const std::vector<Member>& items() const;
  size_t size() const;  // elements of an array or members of an object

  // Member lookup on an object (throws if not an object); nullptr when absent.
  const Value* find(std::string_view key) const;

  // Builders. push_back needs an array, set needs an object (set replaces an existing key).
  Value& push_back(Value v);
  Value& set(const std::string& key, Value v);

  // Structural equality; numbers compare by value, objects by members in order.
  bool operator==(const Value& other) const;

 private:
  template <class T>
  static Value from_integer(T v) {
    if constexpr (std::is_signed_v<T>) return Value(static_cast<int64_t>(v));
    else if (v <= static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<int64_t>(v));
    else return Value(static_cast<double>(v));
  }
  void expect(Type t) const;
  void dump_to(std::string& out, int indent, int level) const;
  friend class Parser;

  Type type_ = Type::Null;
  bool bool_ = false;
  double num_ = 0;
  int64_t int_ = 0;      // exact value when integer_
  bool integer_ = false;
  std::string str_;
  std::vector<Value> arr_;
  std::vector<Member> obj_;
};

// Typed field readers for user-facing files; `ctx` names the file (or section) in messages:
//   "config.json: missing field 'n_layers'"
//   "config.json: field 'd_model': expected an integer, got a string"
// The overloads with a default return it when the field is absent or null.
double get_number(const Value& obj, const std::string& key, const std::string& ctx);
double get_number(const Value& obj, const std::string& key, const std::string& ctx, double def);
int64_t get_int(const Value& obj, const std::string& key, const std::string& ctx);
int64_t get_int(const Value& obj, const std::string& key, const std::string& ctx, int64_t def);
std::string get_string(const Value& obj, const std::string& key, const std::string& ctx);
std::string get_string(const Value& obj, const std::string& key, const std::string& ctx,
                       const std::string& def);
bool get_bool(const Value& obj, const std::string& key, const std::string& ctx);
bool get_bool(const Value& obj, const std::string& key, const std::string& ctx, bool def);

// Reads and parses a JSON file ("cannot open <path>: <strerror>" if it cannot be read).
Value read_file(const std::string& path);

// Rejects a member of `obj` whose key is not in `known` (a typo in a config must not be silently
// ignored): "<ctx>: unknown <what> '<key>'".
void check_known_fields(const Value& obj, std::initializer_list<std::string_view> known, const std::string& ctx,
                        const char* what = "field");

}  // namespace lt2::json
