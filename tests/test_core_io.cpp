// Tests for the I/O core: JSON (strict parsing, error positions, round trips), the
// safetensors reader/writer (round trips and one test per kind of corruption) and the
// atomic file write.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "error_util.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "core/tensor.h"

using lt2::DType;
using lt2::Tensor;
using lt2::json::Value;
namespace st = lt2::safetensors;

using lt2::test::contains;
using lt2::test::error_of;

namespace {


// A fresh directory per test, removed afterwards.
struct Scratch {
  std::string dir;
  Scratch() {
    std::string tmpl = ::testing::TempDir() + "/lt2_core_io_XXXXXX";
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir = tmpl;
  }
  ~Scratch() { std::filesystem::remove_all(dir); }
  std::string file(const std::string& name) const { return dir + "/" + name; }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

Value parse(std::string_view text) { return Value::parse(text, "t.json"); }

// ---------------------------------------------------------------------------------------
// JSON

TEST(Json, ParsesAllValueKinds) {
  Value v = parse(R"( {"a": [1, 2.5, -3e2, true, false, null, "s"], "b": {"c": {}}, "d": []} )");
  ASSERT_TRUE(v.is_object());
  ASSERT_EQ(v.size(), 3u);
  const auto& a = v.find("a")->elements();
  ASSERT_EQ(a.size(), 7u);
  EXPECT_TRUE(a[0].is_integer());
  EXPECT_EQ(a[0].as_int(), 1);
  EXPECT_FALSE(a[1].is_integer());
  EXPECT_EQ(a[1].as_number(), 2.5);
  EXPECT_EQ(a[2].as_number(), -300.0);
  EXPECT_TRUE(a[2].is_integer());  // integral value, even though written with an exponent
  EXPECT_TRUE(a[3].as_bool());
  EXPECT_FALSE(a[4].as_bool());
  EXPECT_TRUE(a[5].is_null());
  EXPECT_EQ(a[6].as_string(), "s");
  EXPECT_TRUE(v.find("b")->find("c")->is_object());
  EXPECT_EQ(v.find("b")->find("c")->size(), 0u);
  EXPECT_TRUE(v.find("d")->is_array());
  EXPECT_EQ(v.find("zzz"), nullptr);
  // Whitespace of all four kinds, CRLF line ends, scalars at top level.
  EXPECT_EQ(parse(" \t\r\n{\"a\":1}\r\n").find("a")->as_int(), 1);
  EXPECT_EQ(parse("\"x\"").as_string(), "x");
  EXPECT_TRUE(parse("null").is_null());
}

TEST(Json, BuildDumpAndRoundTripNested) {
  Value v = Value::object();
  v.set("name", "lt2");
  v.set("layers", 4);
  v.set("lr", 0.001);
  v.set("flag", true);
  v.set("none", nullptr);
  Value arr = Value::array();
  arr.push_back(1);
  arr.push_back(Value::array());
  Value inner = Value::object();
  inner.set("k", "v");
  arr.push_back(inner);
  v.set("list", arr);
  v.set("empty", Value::object());

  const std::string compact = v.dump();
  EXPECT_EQ(compact,
            R"({"name":"lt2","layers":4,"lr":0.001,"flag":true,"none":null,"list":[1,[],{"k":"v"}],"empty":{}})");
  EXPECT_EQ(parse(compact), v);

  const std::string pretty = v.dump(2);
  EXPECT_EQ(pretty,
            "{\n"
            "  \"name\": \"lt2\",\n"
            "  \"layers\": 4,\n"
            "  \"lr\": 0.001,\n"
            "  \"flag\": true,\n"
            "  \"none\": null,\n"
            "  \"list\": [\n"
            "    1,\n"
            "    [],\n"
            "    {\n"
            "      \"k\": \"v\"\n"
            "    }\n"
            "  ],\n"
            "  \"empty\": {}\n"
            "}");
  EXPECT_EQ(parse(pretty), v);
  EXPECT_EQ(parse(pretty).dump(), compact);
}

TEST(Json, ObjectsKeepInsertionOrderAndSetReplaces) {
  Value v = parse(R"({"z":1,"a":2,"m":3})");
  std::vector<std::string> keys;
  for (const auto& [k, _] : v.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"z", "a", "m"}));
  Value w = v;
  w.set("a", "replaced");
  w.set("b", 5);
  EXPECT_EQ(w.dump(), R"({"z":1,"a":"replaced","m":3,"b":5})");
  EXPECT_FALSE(w == v);
  EXPECT_TRUE(contains(error_of([&] { w.push_back(1); }), "expected an array, got an object"));
  Value a = Value::array();
  EXPECT_TRUE(contains(error_of([&] { a.set("k", 1); }), "expected an object, got an array"));
}

TEST(Json, StringEscapesAndUnicode) {
  EXPECT_EQ(parse(R"("\"\\\/\b\f\n\r\t")").as_string(), "\"\\/\b\f\n\r\t");
  EXPECT_EQ(parse(R"("\u0041\u00e9\u4e2d")").as_string(), "A\xc3\xa9\xe4\xb8\xad");
  EXPECT_EQ(parse(R"("\u00E9")").as_string(), "\xc3\xa9");  // upper-case hex
  // Surrogate pairs become one 4-byte UTF-8 sequence.
  EXPECT_EQ(parse(R"("\ud83d\ude00")").as_string(), "\xf0\x9f\x98\x80");
  EXPECT_EQ(parse(R"("\uD834\uDD1E")").as_string(), "\xf0\x9d\x84\x9e");
  EXPECT_EQ(parse(R"("\udbff\udfff")").as_string(), "\xf4\x8f\xbf\xbf");  // U+10FFFF
  EXPECT_EQ(parse(R"("a\u0000b")").as_string(), std::string("a\0b", 3));
  // Raw UTF-8 is accepted as is.
  EXPECT_EQ(parse("\"\xc3\xa9\xf0\x9f\x98\x80\"").as_string(), "\xc3\xa9\xf0\x9f\x98\x80");

  // dump escapes what must be escaped and nothing else; everything round-trips.
  const std::string tricky = std::string("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f", 14) + std::string(1, '\0') + "\xc3\xa9";
  const std::string dumped = Value(tricky).dump();
  EXPECT_EQ(dumped, "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\\u0000\xc3\xa9\"");
  EXPECT_EQ(parse(dumped).as_string(), tricky);
  Value keyed = Value::object();
  keyed.set("k\n\xe4\xb8\xad", tricky);
  EXPECT_EQ(parse(keyed.dump()), keyed);
}

TEST(Json, Numbers) {
  EXPECT_EQ(parse("0").as_int(), 0);
  EXPECT_EQ(parse("-17").as_int(), -17);
  EXPECT_EQ(parse("9223372036854775807").as_int(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(parse("-9223372036854775808").as_int(), std::numeric_limits<int64_t>::min());
  // Beyond 2^53 integers stay exact (a double would round this to ...992).
  EXPECT_EQ(parse("9007199254740993").as_int(), 9007199254740993LL);
  EXPECT_EQ(parse("9007199254740993").dump(), "9007199254740993");
  // Too big for int64: still a number, but not an integer.
  Value huge = parse("123456789012345678901234567890");
  EXPECT_FALSE(huge.is_integer());
  EXPECT_EQ(huge.as_number(), 1.2345678901234568e29);
  EXPECT_TRUE(contains(error_of([&] { huge.as_int(); }), "expected an integer"));

  EXPECT_EQ(parse("1.7976931348623157e308").as_number(), std::numeric_limits<double>::max());
  EXPECT_EQ(parse("2.2250738585072014E-308").as_number(), std::numeric_limits<double>::min());
  EXPECT_EQ(parse("5e-324").as_number(), std::numeric_limits<double>::denorm_min());
  EXPECT_EQ(parse("1e-400").as_number(), 0.0);  // underflow rounds to zero
  EXPECT_TRUE(std::signbit(parse("-1e-400").as_number()));
  EXPECT_EQ(parse("0.000001e+6").as_number(), 1.0);
  EXPECT_EQ(parse("1E2").as_int(), 100);
  EXPECT_TRUE(std::signbit(parse("-0").as_number()));
  EXPECT_EQ(parse("-0").dump(), "-0");
  EXPECT_EQ(parse("-0.0").dump(), "-0");

  // Integers print without exponent or decimal point; other doubles round-trip exactly.
  EXPECT_EQ(Value(3.0).dump(), "3");
  EXPECT_EQ(Value(int64_t{-42}).dump(), "-42");
  EXPECT_EQ(Value(1e15).dump(), "1000000000000000");
  EXPECT_EQ(Value(size_t{7}).dump(), "7");
  EXPECT_EQ(Value(std::numeric_limits<uint64_t>::max()).is_integer(), false);
  EXPECT_EQ(Value(0.1).dump(), "0.1");
  for (double d : {0.1, 1.0 / 3.0, -2.5e-7, 1e300, 1e22, 6.02214076e23, 5e-324, 1.7976931348623157e308,
                   123456789.123456789, -9.999999999999999e-5, 3.141592653589793}) {
    const double back = parse(Value(d).dump()).as_number();
    EXPECT_EQ(std::memcmp(&back, &d, sizeof d), 0) << Value(d).dump();
  }
}

TEST(Json, DumpRejectsNonFiniteNumbers) {
  EXPECT_TRUE(contains(error_of([] { Value(std::nan("")).dump(); }), "NaN and Infinity are not allowed"));
  Value a = Value::array();
  a.push_back(std::numeric_limits<double>::infinity());
  EXPECT_TRUE(contains(error_of([&] { a.dump(); }), "NaN and Infinity are not allowed"));
}

TEST(Json, MalformedInputsReportLineAndColumn) {
  struct Case {
    std::string text;
    std::string where;  // "line:col"
    std::string what;
  };
  const std::vector<Case> cases = {
      {"", "1:1", "expected a value"},
      {"   ", "1:4", "expected a value"},
      {"[", "1:2", "expected a value"},
      {"{", "1:2", "expected a string key"},
      {"{,}", "1:2", "expected a string key"},
      {"{1:2}", "1:2", "expected a string key"},
      {R"({"a":1,})", "1:8", "expected a string key"},  // no trailing commas
      {"[1,2,]", "1:6", "expected a value"},
      {"[1,,2]", "1:4", "expected a value"},
      {R"({"a" 1})", "1:6", "expected ':' after object key"},
      {R"({"a"})", "1:5", "expected ':' after object key"},
      {R"({"a":1 "b":2})", "1:8", "expected ',' or '}' after object member"},
      {"{\n  \"a\": 1,\n  \"b\": 2\n  \"c\": 3\n}", "4:3", "expected ',' or '}' after object member"},
      {"[1 2]", "1:4", "expected ',' or ']' after array element"},
      {"[\n\t1,\n\t2,\n]", "4:1", "expected a value"},
      {"[\"\xc3\xa9\" x]", "1:6", "expected ',' or ']'"},  // columns count characters, not bytes
      {"01", "1:2", "leading zeros are not allowed"},
      {"-01", "1:3", "leading zeros are not allowed"},
      {"1.", "1:3", "expected a digit after '.'"},
      {"1.e5", "1:3", "expected a digit after '.'"},
      {"1e", "1:3", "expected a digit in the exponent"},
      {"1e+", "1:4", "expected a digit in the exponent"},
      {"-", "1:2", "expected a digit after '-'"},
      {"-Infinity", "1:2", "expected a digit after '-'"},
      {"+1", "1:1", "expected a value"},
      {".5", "1:1", "expected a value"},
      {"NaN", "1:1", "expected a value"},
      {"True", "1:1", "expected a value"},
      {"tru", "1:1", "invalid literal"},
      {"[nul]", "1:2", "invalid literal"},
      {"1e400", "1:1", "number out of range"},
      {"[-1e400]", "1:2", "number out of range"},
      {"\"abc", "1:1", "unterminated string"},
      {"\"a\nb\"", "1:3", "control character in string"},
      {"\"a\tb\"", "1:3", "control character in string"},
      {R"("\x")", "1:2", "invalid escape"},
      {R"("ab\')", "1:4", "invalid escape"},
      {R"("\u12")", "1:2", "invalid \\u escape (expected 4 hex digits)"},
      {R"("\u12G4")", "1:2", "invalid \\u escape"},
      {R"("\ud800")", "1:2", "unpaired surrogate"},
      {R"("\udc00")", "1:2", "unpaired surrogate"},
      {R"("\ud800\u0041")", "1:2", "unpaired surrogate"},
      {R"("x\ud800\n")", "1:3", "unpaired surrogate"},
      {"\"\xff\"", "1:2", "invalid UTF-8"},
      {"\"a\xc3\"", "1:3", "invalid UTF-8"},           // truncated sequence
      {"\"\xc0\xaf\"", "1:2", "invalid UTF-8"},        // overlong
      {"\"\xed\xa0\x80\"", "1:2", "invalid UTF-8"},    // encoded surrogate
      {"\"\xf4\x90\x80\x80\"", "1:2", "invalid UTF-8"},  // above U+10FFFF
      {"\xef\xbb\xbf{}", "1:1", "expected a value"},   // no byte order mark
      {"// comment\n1", "1:1", "expected a value"},    // no comments
      {"[1] x", "1:5", "unexpected characters after the JSON value"},
      {"{} {}", "1:4", "unexpected characters after the JSON value"},
      {"0x10", "1:2", "unexpected characters after the JSON value"},
      {"1.5e3.2", "1:6", "unexpected characters after the JSON value"},
      {R"({"a":1,"a":2})", "1:8", "duplicate key 'a'"},
      {"{\"a\":{\"b\":1,\n\"b\":2}}", "2:1", "duplicate key 'b'"},
  };
  for (const Case& c : cases) {
    const std::string msg = error_of([&] { parse(c.text); });
    EXPECT_TRUE(contains(msg, "t.json:" + c.where + ": " + c.what)) << "input: " << c.text;
  }
}

TEST(Json, DeepNestingIsAnErrorNotACrash) {
  EXPECT_NO_THROW(parse(std::string(512, '[') + std::string(512, ']')));
  const std::string deep = std::string(100000, '[');
  EXPECT_TRUE(contains(error_of([&] { parse(deep); }), "t.json:1:513: nesting too deep"));
}

TEST(Json, TypedAccessorsNameTheExpectedType) {
  Value v = parse(R"({"s":"x","n":1.5,"b":true})");
  EXPECT_EQ(error_of([&] { v.find("s")->as_bool(); }), "expected a boolean, got a string");
  EXPECT_EQ(error_of([&] { v.find("s")->as_number(); }), "expected a number, got a string");
  EXPECT_EQ(error_of([&] { v.find("b")->as_string(); }), "expected a string, got a boolean");
  EXPECT_EQ(error_of([&] { v.find("n")->as_int(); }), "expected an integer, got 1.5");
  EXPECT_EQ(error_of([&] { v.find("n")->elements(); }), "expected an array, got a number");
  EXPECT_EQ(error_of([&] { v.find("s")->find("k"); }), "expected an object, got a string");
}

TEST(Json, FieldReaders) {
  const std::string ctx = "config.json";
  Value cfg = parse(R"({"d_model":"512","n_heads":8,"lr":0.5,"name":"tiny","tied":false,"dropout":null,"half":2.5})");
  EXPECT_EQ(lt2::json::get_int(cfg, "n_heads", ctx), 8);
  EXPECT_EQ(lt2::json::get_number(cfg, "lr", ctx), 0.5);
  EXPECT_EQ(lt2::json::get_number(cfg, "n_heads", ctx), 8.0);  // integers are numbers
  EXPECT_EQ(lt2::json::get_string(cfg, "name", ctx), "tiny");
  EXPECT_FALSE(lt2::json::get_bool(cfg, "tied", ctx));

  EXPECT_EQ(error_of([&] { lt2::json::get_int(cfg, "d_model", ctx); }),
            "config.json: field 'd_model': expected an integer, got a string");
  EXPECT_EQ(error_of([&] { lt2::json::get_int(cfg, "half", ctx); }),
            "config.json: field 'half': expected an integer, got 2.5");
  EXPECT_EQ(error_of([&] { lt2::json::get_int(cfg, "n_layers", ctx); }), "config.json: missing field 'n_layers'");
  EXPECT_EQ(error_of([&] { lt2::json::get_number(cfg, "name", ctx); }),
            "config.json: field 'name': expected a number, got a string");
  EXPECT_EQ(error_of([&] { lt2::json::get_string(cfg, "n_heads", ctx); }),
            "config.json: field 'n_heads': expected a string, got 8");
  EXPECT_EQ(error_of([&] { lt2::json::get_bool(cfg, "dropout", ctx); }),
            "config.json: field 'dropout': expected a boolean, got null");
  EXPECT_EQ(error_of([&] { lt2::json::get_int(Value::array(), "x", ctx); }),
            "config.json: expected an object, got an array");

  // Optional fields: absent or null -> default; present -> still type-checked.
  EXPECT_EQ(lt2::json::get_int(cfg, "n_layers", ctx, 6), 6);
  EXPECT_EQ(lt2::json::get_number(cfg, "dropout", ctx, 0.1), 0.1);
  EXPECT_EQ(lt2::json::get_string(cfg, "device", ctx, "cpu"), "cpu");
  EXPECT_TRUE(lt2::json::get_bool(cfg, "bias", ctx, true));
  EXPECT_EQ(lt2::json::get_int(cfg, "n_heads", ctx, 1), 8);
  EXPECT_EQ(error_of([&] { lt2::json::get_int(cfg, "d_model", ctx, 1); }),
            "config.json: field 'd_model': expected an integer, got a string");
  EXPECT_EQ(error_of([&] { lt2::json::get_bool(cfg, "name", ctx, false); }),
            "config.json: field 'name': expected a boolean, got a string");
}

TEST(Json, ReadFile) {
  Scratch s;
  const std::string path = s.file("config.json");
  EXPECT_EQ(error_of([&] { lt2::json::read_file(path); }), "cannot open " + path + ": No such file or directory");
  lt2::fs::write_file_atomic(path, "{\n  \"a\": [1, 2],\n  \"b\": 3,\n}\n");
  EXPECT_EQ(error_of([&] { lt2::json::read_file(path); }), path + ":4:1: expected a string key");
  lt2::fs::write_file_atomic(path, "{\"a\": [1, 2]}");
  EXPECT_EQ(lt2::json::read_file(path).dump(), R"({"a":[1,2]})");
}

// ---------------------------------------------------------------------------------------
// safetensors

// Raw file bytes: u64 header length (little-endian), header, data.
std::string raw_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

// Writes `bytes`, loads them, and checks the error names the path and contains `phrase`.
void expect_load_error(const std::string& bytes, const std::string& phrase) {
  Scratch s;
  const std::string path = s.file("bad.safetensors");
  lt2::fs::write_file_atomic(path, bytes);
  const std::string msg = error_of([&] { st::load(path); });
  EXPECT_EQ(msg.rfind(path, 0), 0u) << "message does not start with the path: " << msg;
  EXPECT_TRUE(contains(msg, phrase));
}

Tensor iota(const lt2::Shape& shape, DType dtype, double start) {
  Tensor t = Tensor::empty(shape, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, start + 0.5 * static_cast<double>(i) * (dtype == DType::I32 ? 2 : 1));
  return t;
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
}

TEST(Safetensors, RoundTripAllDtypes) {
  Scratch s;
  const st::TensorList tensors = {
      {"w.f32", iota({2, 3}, DType::F32, -1.25)},
      {"w.f64", iota({4}, DType::F64, 1e-300)},
      {"w.bf16", iota({3, 2}, DType::BF16, 3.0)},
      {"step", iota({5}, DType::I32, -2)},
      {"scalar", Tensor::full({}, 42.5, DType::F32)},
      {"empty", Tensor::empty({0, 3}, DType::F32)},
      {"empty.i32", Tensor::empty({2, 0}, DType::I32)},
      {"last", iota({1, 1, 3}, DType::F64, 7)},
  };
  const st::Metadata meta = {{"format", "pt"}, {"note", "caf\xc3\xa9 \"quoted\""}};
  const std::string path = s.file("model.safetensors");
  st::save(path, tensors, meta);

  const st::File f = st::load(path);
  EXPECT_EQ(f.path, path);
  EXPECT_EQ(f.metadata, meta);
  ASSERT_EQ(f.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(f.tensors[i].first, tensors[i].first);  // written in order, so offsets ascend
    EXPECT_TRUE(same_tensor(f.tensors[i].second, tensors[i].second)) << tensors[i].first;
  }
  EXPECT_EQ(f.get("scalar").ndim(), 0);
  EXPECT_EQ(f.get("scalar").item(0), 42.5);
  EXPECT_EQ(f.get("w.bf16").item(5), 5.5);
  EXPECT_EQ(f.get("step").item(4), 2);
  EXPECT_EQ(f.get("empty").shape(), (lt2::Shape{0, 3}));
  EXPECT_EQ(f.find("nope"), nullptr);
  EXPECT_EQ(error_of([&] { f.get("nope"); }), path + ": no tensor named 'nope'");
  // Loaded tensors own their bytes.
  EXPECT_NE(f.tensors[0].second.bytes(), tensors[0].second.bytes());
}

TEST(Safetensors, ByteExactAgainstHandBuiltFile) {
  // 138-byte header padded with 6 spaces to 144 = 0x90.
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("i":{"dtype":"I32","shape":[],"data_offsets":[8,12]}}      )";
  ASSERT_EQ(header.size(), 144u);
  const std::string expected = std::string("\x90\0\0\0\0\0\0\0", 8) + header +
                               std::string("\x00\x00\x80\x3f" "\x00\x00\x00\xc0" "\x07\x00\x00\x00", 12);
  Tensor w = Tensor::empty({2}, DType::F32);
  w.set(0, 1.0);
  w.set(1, -2.0);
  Tensor i = Tensor::full({}, 7, DType::I32);
  EXPECT_EQ(st::serialize({{"w", w}, {"i", i}}, {{"format", "pt"}}), expected);

  Scratch s;
  const std::string path = s.file("hand.safetensors");
  lt2::fs::write_file_atomic(path, expected);
  const st::File f = st::load(path);
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_TRUE(same_tensor(f.get("w"), w));
  EXPECT_TRUE(same_tensor(f.get("i"), i));
}

TEST(Safetensors, HeaderIsPaddedToEightBytes) {
  for (const std::string name : {"a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh"}) {
    const std::string bytes = st::serialize({{name, Tensor::zeros({3}, DType::BF16)}});
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    EXPECT_EQ(n % 8, 0u) << name;
    EXPECT_EQ(bytes.size(), 8 + n + 6) << name;  // data follows the padded header directly
    const std::string header = bytes.substr(8, n);
    const size_t end = header.find_last_not_of(' ');
    EXPECT_EQ(header[end], '}') << name;
    EXPECT_LT(n - 1 - end, 8u) << name;  // at most 7 spaces of padding
    EXPECT_EQ(Value::parse(header, "h").find(name)->find("dtype")->as_string(), "BF16");
  }
  // No tensors at all is a valid (empty) file.
  Scratch s;
  st::save(s.file("empty.safetensors"), {});
  EXPECT_TRUE(st::load(s.file("empty.safetensors")).tensors.empty());
}

TEST(Safetensors, TensorsComeBackInOffsetOrder) {
  const std::string header = R"({"b":{"dtype":"I32","shape":[1],"data_offsets":[4,8]},)"
                             R"("z":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},)"
                             R"("a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})";
  Scratch s;
  const std::string path = s.file("order.safetensors");
  lt2::fs::write_file_atomic(path, raw_file(header, std::string("\x01\0\0\0\x02\0\0\0", 8)));
  const st::File f = st::load(path);
  ASSERT_EQ(f.tensors.size(), 3u);
  EXPECT_EQ(f.tensors[0].first, "a");
  EXPECT_EQ(f.tensors[1].first, "b");
  EXPECT_EQ(f.tensors[2].first, "z");
  EXPECT_EQ(f.get("a").item(0), 1);
  EXPECT_EQ(f.get("b").item(0), 2);
}

TEST(Safetensors, MissingFile) {
  EXPECT_TRUE(contains(error_of([] { st::load("/nonexistent/dir/x.safetensors"); }),
                       "cannot open /nonexistent/dir/x.safetensors: No such file or directory"));
}

TEST(Safetensors, TruncatedFile) {
  const std::string good = st::serialize({{"a", iota({4}, DType::F32, 0)}, {"b", iota({2}, DType::F64, 1)}});
  uint64_t n = 0;
  std::memcpy(&n, good.data(), 8);
  for (size_t cut : {size_t{0}, size_t{3}, size_t{7}}) expect_load_error(good.substr(0, cut), "file is too short");
  for (size_t cut : {size_t{8}, size_t{20}, static_cast<size_t>(8 + n - 1)})
    expect_load_error(good.substr(0, cut), "exceeds the file size");
  for (size_t cut : {static_cast<size_t>(8 + n), static_cast<size_t>(8 + n + 15), good.size() - 1})
    expect_load_error(good.substr(0, cut), "extend past the end of the data buffer");
}

TEST(Safetensors, BadHeaderLength) {
  expect_load_error(raw_file("", "{}"), "header length is 0");
  std::string big = raw_file("{}      ", "");
  const uint64_t n = 1000;
  std::memcpy(big.data(), &n, 8);
  expect_load_error(big, "header length 1000 exceeds the file size (16 bytes)");
  const uint64_t absurd = uint64_t{1} << 60;
  std::memcpy(big.data(), &absurd, 8);
  expect_load_error(big, "is absurd");
}

TEST(Safetensors, BadJsonHeader) {
  expect_load_error(raw_file(R"({"a":{"dtype":"F32",)", ""), ":1:21: expected a string key");
  expect_load_error(raw_file(R"({"a":1,})", ""), ":1:8: expected a string key");
  expect_load_error(raw_file("[1,2]", ""), "header must be a JSON object, got an array");
  expect_load_error(raw_file("\"\xff\"", ""), "invalid UTF-8");
  expect_load_error(raw_file(R"({"a":5})", ""), "tensor 'a': expected an object, got a number");
}

TEST(Safetensors, DuplicateTensorNames) {
  expect_load_error(raw_file(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},)"
                             R"("a":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}})",
                             std::string(8, '\0')),
                    "duplicate key 'a'");
}

TEST(Safetensors, UnsupportedDtype) {
  expect_load_error(raw_file(R"({"x":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", std::string(4, '\0')),
                    "unsupported dtype 'F16' for tensor 'x'");
  expect_load_error(raw_file(R"({"x":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')),
                    "unsupported dtype 'f32' for tensor 'x'");
  expect_load_error(raw_file(R"({"x":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')),
                    "tensor 'x': dtype must be a string");
}

TEST(Safetensors, MalformedEntry) {
  const std::string d(4, '\0');
  expect_load_error(raw_file(R"({"x":{"dtype":"F32","shape":[1]}})", d), "tensor 'x': missing field 'data_offsets'");
  expect_load_error(raw_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}})", d),
                    "tensor 'x': unexpected field 'extra'");
  for (const char* shape : {"[-1]", "[1.5]", "\"1\"", "[[1]]", "null"})
    expect_load_error(raw_file(lt2::cat(R"({"x":{"dtype":"F32","shape":)", shape, R"(,"data_offsets":[0,4]}})"), d),
                      "tensor 'x': shape must be an array of non-negative integers");
  for (const char* offs : {"[4,0]", "[-4,0]", "[0]", "[0,4,4]", "[0,4.5]", "{}"})
    expect_load_error(raw_file(lt2::cat(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":)", offs, "}}"), d),
                      "tensor 'x': data_offsets must be [begin, end] with 0 <= begin <= end");
}

TEST(Safetensors, ShapeAndOffsetSizeMismatch) {
  expect_load_error(raw_file(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')),
                    "tensor 'x': data_offsets span 8 bytes but dtype F32 with shape [3] needs 12 bytes");
  expect_load_error(raw_file(R"({"x":{"dtype":"BF16","shape":[],"data_offsets":[0,4]}})", std::string(4, '\0')),
                    "needs 2 bytes");
  // A shape whose byte size overflows 64 bits must not wrap around to a small number.
  expect_load_error(raw_file(R"({"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})", ""),
                    "tensor 'x': shape [4611686018427387904, 4] is too large");
  expect_load_error(raw_file(R"({"x":{"dtype":"I32","shape":[4611686018427387904],"data_offsets":[0,0]}})", ""),
                    "is too large");  // 2^62 elements fit in int64, 2^64 bytes do not
  expect_load_error(raw_file(R"({"x":{"dtype":"F32","shape":[3037000500,3037000500,0],"data_offsets":[0,0]}})", ""),
                    "is too large");  // zero elements, but the leading product overflows
}

TEST(Safetensors, OffsetsPastTheEnd) {
  expect_load_error(raw_file(R"({"x":{"dtype":"F64","shape":[2],"data_offsets":[8,24]}})", std::string(16, '\0')),
                    "tensor 'x': data_offsets [8, 24] extend past the end of the data buffer (16 bytes)");
  expect_load_error(raw_file(R"({"x":{"dtype":"I32","shape":[0],"data_offsets":[9,9]}})", std::string(8, '\0')),
                    "extend past the end of the data buffer");
}

TEST(Safetensors, OverlappingRanges) {
  expect_load_error(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                             std::string(12, '\0')),
                    "tensors 'a' and 'b' overlap");
  // Same range twice.
  expect_load_error(raw_file(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})",
                             std::string(4, '\0')),
                    "overlap");
  // An empty tensor inside another one's range.
  expect_load_error(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                             std::string(8, '\0')),
                    "tensors 'a' and 'e' overlap");
}

TEST(Safetensors, GapsAndTrailingBytes) {
  expect_load_error(raw_file(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}})",
                             std::string(12, '\0')),
                    "gap of 4 bytes in the data buffer before tensor 'b'");
  expect_load_error(raw_file(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[2,6]}})", std::string(6, '\0')),
                    "gap of 2 bytes in the data buffer before tensor 'a'");
  expect_load_error(raw_file(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})", std::string(7, '\0')),
                    "3 trailing bytes after the last tensor");
  std::string good = st::serialize({{"a", iota({2}, DType::F32, 1)}});
  expect_load_error(good + "garbage", "7 trailing bytes after the last tensor");
  expect_load_error(raw_file("{}", "x"), "1 trailing bytes after the last tensor");
}

TEST(Safetensors, NonStringMetadata) {
  const std::string t = R"("a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]})";
  const std::string d(4, '\0');
  expect_load_error(raw_file(R"({"__metadata__":{"ok":"x","k":1},)" + t + "}", d),
                    "__metadata__ value for 'k' must be a string, got a number");
  expect_load_error(raw_file(R"({"__metadata__":{"k":null},)" + t + "}", d), "must be a string, got null");
  expect_load_error(raw_file(R"({"__metadata__":["x"],)" + t + "}", d), "__metadata__ must be an object, got an array");
}

TEST(Safetensors, SerializeRejectsBadInput) {
  const Tensor t = Tensor::zeros({1});
  EXPECT_TRUE(contains(error_of([&] { st::serialize({{"a", t}, {"a", t}}); }), "duplicate tensor name 'a'"));
  EXPECT_TRUE(contains(error_of([&] { st::serialize({{"__metadata__", t}}); }), "invalid tensor name"));
  EXPECT_TRUE(contains(error_of([&] { st::serialize({{"u", Tensor()}}); }), "tensor 'u' is undefined"));
  EXPECT_TRUE(contains(error_of([&] { st::serialize({{"a", t}}, {{"k", "1"}, {"k", "2"}}); }),
                       "duplicate metadata key 'k'"));
}

// ---------------------------------------------------------------------------------------
// fs

TEST(Fs, WriteAndReadBack) {
  Scratch s;
  const std::string path = s.file("data.bin");
  const std::string bytes("a\0b\xff\n\r", 6);
  lt2::fs::write_file_atomic(path, bytes);
  EXPECT_EQ(lt2::fs::read_file(path), bytes);
  lt2::fs::write_file_atomic(path, "");  // replacing with an empty file
  EXPECT_EQ(lt2::fs::read_file(path), "");
  const std::string big(3 << 20, 'x');  // larger than one read() chunk
  lt2::fs::write_file_atomic(path, big);
  EXPECT_EQ(lt2::fs::read_file(path), big);
  EXPECT_EQ(s.listing(), std::vector<std::string>{"data.bin"});  // no temp files left behind
}

TEST(Fs, ReadErrorsNameThePath) {
  Scratch s;
  EXPECT_EQ(error_of([&] { lt2::fs::read_file(s.file("missing")); }),
            "cannot open " + s.file("missing") + ": No such file or directory");
  EXPECT_EQ(error_of([&] { lt2::fs::read_file(s.dir); }), "cannot read " + s.dir + ": Is a directory");
}

TEST(Fs, MakeDirsAndExists) {
  Scratch s;
  const std::string deep = s.file("a/b//c/");
  EXPECT_FALSE(lt2::fs::exists(s.file("a")));
  lt2::fs::make_dirs(deep);
  EXPECT_TRUE(std::filesystem::is_directory(s.file("a/b/c")));
  lt2::fs::make_dirs(deep);  // already there: fine
  lt2::fs::make_dirs(s.file("a/b"));
  EXPECT_TRUE(lt2::fs::exists(s.file("a/b/c")));
  lt2::fs::write_file_atomic(s.file("a/file"), "x");
  EXPECT_TRUE(lt2::fs::exists(s.file("a/file")));
  EXPECT_EQ(error_of([&] { lt2::fs::make_dirs(s.file("a/file/sub")); }),
            "cannot create directory " + s.file("a/file/sub") + ": " + s.file("a/file") + " exists and is not a directory");
}

TEST(Fs, AtomicWriteIntoMissingDirectoryFails) {
  Scratch s;
  const std::string path = s.file("no/such/dir/out.json");
  const std::string msg = error_of([&] { lt2::fs::write_file_atomic(path, "x"); });
  EXPECT_TRUE(contains(msg, "cannot write " + path));
  EXPECT_TRUE(contains(msg, "No such file or directory"));
  EXPECT_TRUE(s.listing().empty());
}

TEST(Fs, AtomicWriteKeepsOldFileWhenTempCannotBeCreated) {
  Scratch s;
  const std::string path = s.file("ckpt.safetensors");
  lt2::fs::write_file_atomic(path, "old contents");
  // Occupy the temp name with a directory so that creating the temp file fails.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ASSERT_EQ(::mkdir(tmp.c_str(), 0755), 0);
  const std::string msg = error_of([&] { lt2::fs::write_file_atomic(path, "new contents"); });
  EXPECT_TRUE(contains(msg, "cannot write " + path));
  EXPECT_TRUE(contains(msg, "Is a directory"));
  EXPECT_EQ(lt2::fs::read_file(path), "old contents");
  EXPECT_TRUE(std::filesystem::is_directory(tmp));  // not ours: left alone
  ASSERT_EQ(::rmdir(tmp.c_str()), 0);
  EXPECT_EQ(s.listing(), std::vector<std::string>{"ckpt.safetensors"});
}

TEST(Fs, AtomicWriteFailingMidwayKeepsOldFileAndRemovesTemp) {
  Scratch s;
  const std::string path = s.file("ckpt.safetensors");
  lt2::fs::write_file_atomic(path, "old contents");
  // In a child process, cap the file size so that write() fails with EFBIG part-way
  // through (a stand-in for a full disk), and report how the write ended.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    try {
      lt2::fs::write_file_atomic(path, std::string(1 << 20, 'n'));
    } catch (const lt2::Error& e) {
      const std::string msg = e.what();
      _exit(msg.find("cannot write " + path) != std::string::npos && msg.find("File too large") != std::string::npos
                ? 0 : 2);
    }
    _exit(1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: no error was thrown, 2: the message lacked the path or the reason";
  EXPECT_EQ(lt2::fs::read_file(path), "old contents");
  EXPECT_FALSE(lt2::fs::exists(path + ".tmp." + std::to_string(pid)));
  EXPECT_EQ(s.listing(), std::vector<std::string>{"ckpt.safetensors"});
}

TEST(Fs, AtomicWriteKeepsPermissions) {
  Scratch s;
  const std::string path = s.file("secret");
  lt2::fs::write_file_atomic(path, "1");
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  lt2::fs::write_file_atomic(path, "2");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(lt2::fs::read_file(path), "2");
}

}  // namespace
