#include "model/config.h"

#include <algorithm>

#include "core/error.h"

namespace lt2 {

std::string MixerSpec::str() const {
  switch (kind) {
    case Full: return "full";
    case Window: return cat("window(", window, ")");
    case Gdn: return "gdn";
    case Dsa: return cat("dsa(", topk, ")");
  }
  return "?";
}

static std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

static std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.push_back(trim(s.substr(start, i - start)));
      start = i + 1;
    }
  return out;
}

MixerSpec parse_mixer(const std::string& raw, const std::string& ctx) {
  const std::string name = trim(raw);
  if (name == "full") return {MixerSpec::Full, 0};
  if (name == "gdn") return {MixerSpec::Gdn, 0};
  // "fn(n)" with an integer n >= 1, e.g. window(128) or dsa(64).
  auto int_arg = [&](const std::string& fn, const char* what) -> int64_t {
    if (name.rfind(fn + "(", 0) != 0 || name.back() != ')') return 0;
    const std::string num = name.substr(fn.size() + 1, name.size() - fn.size() - 2);
    char* end = nullptr;
    const long long n = std::strtoll(num.c_str(), &end, 10);
    LT2_CHECK(!num.empty() && *end == '\0' && n >= 1, ctx, ": mixer '", name, "': ", what, " must be an integer >= 1");
    return n;
  };
  if (const int64_t w = int_arg("window", "window size")) return {MixerSpec::Window, w, 0};
  if (const int64_t k = int_arg("dsa", "top-k")) return {MixerSpec::Dsa, 0, k};
  LT2_CHECK(name != "dsa", ctx, ": mixer 'dsa' needs its top-k: dsa(k), e.g. dsa(64)");
  static const char* planned[] = {"kda", "mamba2", "gla", "retnet", "hgrn2", "deltanet", "linear"};
  for (const char* p : planned)
    LT2_CHECK(name != p, ctx, ": mixer '", name,
              "' is not available in this version (planned); use full, window(w), gdn or dsa(k)");
  fail(cat(ctx, ": unknown mixer '", name, "' (expected full, window(w), gdn or dsa(k))"));
}

std::vector<MixerSpec> parse_pattern(const std::string& pattern, int64_t n, const std::string& ctx) {
  const std::string p = trim(pattern);
  std::vector<MixerSpec> out;
  auto args_of = [&](const std::string& fn) {
    LT2_CHECK(p.back() == ')', ctx, ": pattern '", p, "': missing ')'");
    return split(p.substr(fn.size() + 1, p.size() - fn.size() - 2), ',');
  };
  if (p.rfind("interleave(", 0) == 0) {
    const auto a = args_of("interleave");
    LT2_CHECK(a.size() == 3, ctx, ": pattern '", p, "': expected interleave(A,B,a:b)");
    const auto ratio = split(a[2], ':');
    LT2_CHECK(ratio.size() == 2, ctx, ": pattern '", p, "': ratio must look like 1:4");
    auto count = [&](const std::string& t) {
      char* end = nullptr;
      const long long v = std::strtoll(t.c_str(), &end, 10);
      LT2_CHECK(!t.empty() && *end == '\0' && v >= 0, ctx, ": pattern '", p, "': ratio must look like 1:4");
      return int64_t(v);
    };
    const int64_t ra = count(ratio[0]), rb = count(ratio[1]);
    LT2_CHECK(ra >= 1, ctx, ": pattern '", p, "': the first ratio term must be >= 1");
    const MixerSpec A = parse_mixer(a[0], ctx), B = parse_mixer(a[1], ctx);
    // a:b means a layers of A per (a+b), placed at the end of each group: 1:4 -> B B B B A.
    for (int64_t i = 0; i < n; ++i) out.push_back(i % (ra + rb) >= rb ? A : B);
    return out;
  }
  if (p.rfind("bookend(", 0) == 0) {
    const auto a = args_of("bookend");
    LT2_CHECK(a.size() == 2, ctx, ": pattern '", p, "': expected bookend(A,B)");
    const MixerSpec A = parse_mixer(a[0], ctx), B = parse_mixer(a[1], ctx);
    for (int64_t i = 0; i < n; ++i) out.push_back(i == 0 || i == n - 1 ? A : B);
    return out;
  }
  const auto items = split(p, ',');
  if (items.size() == 1) return std::vector<MixerSpec>(n, parse_mixer(items[0], ctx));
  LT2_CHECK(int64_t(items.size()) == n, ctx, ": pattern lists ", items.size(), " mixers but num_hidden_layers is ", n);
  for (const auto& it : items) out.push_back(parse_mixer(it, ctx));
  return out;
}

int64_t ModelConfig::attention_window(int layer, int loop) const {
  const MixerSpec& m = layer_types.at(layer);
  if (m.kind == MixerSpec::Dsa || m.kind == MixerSpec::Gdn) return 0;
  if (!loop_windows.empty()) return loop_windows.at(loop);
  return m.window;
}

int ModelConfig::count(MixerSpec::Kind k) const {
  return int(std::count_if(layer_types.begin(), layer_types.end(), [&](const MixerSpec& m) { return m.kind == k; }));
}

void ModelConfig::validate(const std::string& ctx) const {
  auto positive = [&](int64_t v, const char* f) { LT2_CHECK(v >= 1, ctx, ": field '", f, "' must be >= 1, got ", v); };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_loops, "num_loops");
  positive(intermediate_size, "intermediate_size");
  positive(max_position_embeddings, "max_position_embeddings");
  // Token ids are I32, and no sane width, depth or loop count comes near these bounds:
  // they keep every size product far from integer overflow.
  auto at_most = [&](int64_t v, int64_t hi, const char* f) {
    LT2_CHECK(v <= hi, ctx, ": field '", f, "' must be <= ", hi, ", got ", v);
  };
  at_most(vocab_size, (int64_t(1) << 31) - 1, "vocab_size");
  at_most(hidden_size, 1 << 16, "hidden_size");
  at_most(intermediate_size, 1 << 18, "intermediate_size");
  at_most(num_hidden_layers, 1 << 10, "num_hidden_layers");
  at_most(num_loops, 1 << 10, "num_loops");
  at_most(max_position_embeddings, 1 << 24, "max_position_embeddings");
  for (int64_t v : {num_attention_heads, num_key_value_heads, head_dim, gdn_num_heads, gdn_num_v_heads,
                    gdn_head_v_dim, gdn_conv_size})
    LT2_CHECK(v <= (1 << 12), ctx, ": head counts and head sizes must be <= 4096, got ", v);
  LT2_CHECK(int64_t(layer_types.size()) == num_hidden_layers, ctx, ": layer_types has ", layer_types.size(),
            " entries but num_hidden_layers is ", num_hidden_layers);
  if (count(MixerSpec::Full) + count(MixerSpec::Window) + count(MixerSpec::Dsa) > 0) {
    positive(num_attention_heads, "num_attention_heads");
    positive(num_key_value_heads, "num_key_value_heads");
    positive(head_dim, "head_dim");
    LT2_CHECK(num_attention_heads % num_key_value_heads == 0, ctx, ": num_attention_heads (", num_attention_heads,
              ") must be a multiple of num_key_value_heads (", num_key_value_heads, ")");
    LT2_CHECK(head_dim % 2 == 0, ctx, ": head_dim must be even for RoPE, got ", head_dim);
    LT2_CHECK(rope_theta > 0, ctx, ": rope_theta must be > 0");
  }
  if (count(MixerSpec::Dsa) > 0) {
    positive(dsa_index_heads, "dsa_index_heads");
    positive(dsa_index_head_dim, "dsa_index_head_dim");
    LT2_CHECK(dsa_index_heads <= 64 && dsa_index_head_dim <= 256, ctx,
              ": dsa_index_heads must be <= 64 and dsa_index_head_dim <= 256");
  }
  LT2_CHECK(output_gate == "channel" || output_gate == "head" || output_gate == "none", ctx,
            ": output_gate must be \"channel\", \"head\" or \"none\", got \"", output_gate, "\"");
  if (count(MixerSpec::Gdn) > 0) {
    positive(gdn_num_heads, "gdn_num_heads");
    positive(gdn_num_v_heads, "gdn_num_v_heads");
    positive(gdn_head_k_dim, "gdn_head_k_dim");
    positive(gdn_head_v_dim, "gdn_head_v_dim");
    positive(gdn_conv_size, "gdn_conv_size");
    LT2_CHECK(gdn_head_k_dim <= 256, ctx, ": gdn_head_k_dim must be <= 256, got ", gdn_head_k_dim);
    LT2_CHECK(gdn_num_v_heads % gdn_num_heads == 0, ctx, ": gdn_num_v_heads (", gdn_num_v_heads,
              ") must be a multiple of gdn_num_heads (", gdn_num_heads, ")");
  }
  if (!loop_windows.empty()) {
    LT2_CHECK(int64_t(loop_windows.size()) == num_loops, ctx, ": loop_windows has ", loop_windows.size(),
              " entries but num_loops is ", num_loops);
    for (int64_t w : loop_windows) LT2_CHECK(w >= 0, ctx, ": loop_windows entries must be >= 0 (0 = full)");
  }
  LT2_CHECK(recompute_keep_loops >= 0 && recompute_keep_loops <= num_loops, ctx,
            ": recompute_keep_loops must be in [0, num_loops = ", num_loops, "], got ", recompute_keep_loops);
  LT2_CHECK(rms_norm_eps > 0, ctx, ": rms_norm_eps must be > 0");
  LT2_CHECK(initializer_range > 0, ctx, ": initializer_range must be > 0");
  LT2_CHECK(tokenizer == "bytes" || (tokenizer.rfind("sentencepiece:", 0) == 0 && tokenizer.size() > 14), ctx,
            ": tokenizer must be \"bytes\" or \"sentencepiece:<file.model>\", got \"", tokenizer, "\"");
  LT2_CHECK(tokenizer != "bytes" || vocab_size >= 256, ctx, ": the byte tokenizer needs vocab_size >= 256, got ",
            vocab_size);
}

ModelConfig ModelConfig::from_json(const json::Value& v, const std::string& ctx) {
  LT2_CHECK(v.is_object(), ctx, ": expected a JSON object");
  json::check_known_fields(
      v,
      {"model_type", "architectures", "vocab_size", "hidden_size", "num_hidden_layers", "num_loops",
       "intermediate_size", "layer_types", "pattern", "loop_windows", "num_attention_heads", "num_key_value_heads",
       "head_dim", "rope_theta", "output_gate", "dsa_index_heads", "dsa_index_head_dim", "gdn_num_heads", "gdn_num_v_heads", "gdn_head_k_dim",
       "gdn_head_v_dim", "gdn_conv_size", "gdn_chunked", "rms_norm_eps", "sandwich_norm", "norm_between_loops", "recompute_loops",
       "recompute_keep_loops",
       "tie_word_embeddings", "initializer_range", "max_position_embeddings", "tokenizer"},
      ctx);
  ModelConfig c;
  c.vocab_size = json::get_int(v, "vocab_size", ctx, c.vocab_size);
  c.hidden_size = json::get_int(v, "hidden_size", ctx, c.hidden_size);
  c.num_hidden_layers = json::get_int(v, "num_hidden_layers", ctx, c.num_hidden_layers);
  c.num_loops = json::get_int(v, "num_loops", ctx, c.num_loops);
  c.intermediate_size = json::get_int(v, "intermediate_size", ctx, c.intermediate_size);
  c.num_attention_heads = json::get_int(v, "num_attention_heads", ctx, c.num_attention_heads);
  c.num_key_value_heads = json::get_int(v, "num_key_value_heads", ctx, c.num_attention_heads);
  c.head_dim = json::get_int(v, "head_dim", ctx, c.head_dim);
  c.rope_theta = json::get_number(v, "rope_theta", ctx, c.rope_theta);
  c.output_gate = json::get_string(v, "output_gate", ctx, c.output_gate);
  c.dsa_index_heads = json::get_int(v, "dsa_index_heads", ctx, c.dsa_index_heads);
  c.dsa_index_head_dim = json::get_int(v, "dsa_index_head_dim", ctx, c.dsa_index_head_dim);
  c.gdn_num_heads = json::get_int(v, "gdn_num_heads", ctx, c.gdn_num_heads);
  c.gdn_num_v_heads = json::get_int(v, "gdn_num_v_heads", ctx, c.gdn_num_heads);
  c.gdn_head_k_dim = json::get_int(v, "gdn_head_k_dim", ctx, c.gdn_head_k_dim);
  c.gdn_head_v_dim = json::get_int(v, "gdn_head_v_dim", ctx, 2 * c.gdn_head_k_dim);
  c.gdn_conv_size = json::get_int(v, "gdn_conv_size", ctx, c.gdn_conv_size);
  c.gdn_chunked = json::get_bool(v, "gdn_chunked", ctx, c.gdn_chunked);
  c.rms_norm_eps = json::get_number(v, "rms_norm_eps", ctx, c.rms_norm_eps);
  c.sandwich_norm = json::get_bool(v, "sandwich_norm", ctx, c.sandwich_norm);
  c.norm_between_loops = json::get_bool(v, "norm_between_loops", ctx, c.norm_between_loops);
  c.recompute_loops = json::get_bool(v, "recompute_loops", ctx, c.recompute_loops);
  c.recompute_keep_loops = json::get_int(v, "recompute_keep_loops", ctx, c.recompute_keep_loops);
  c.tie_word_embeddings = json::get_bool(v, "tie_word_embeddings", ctx, c.tie_word_embeddings);
  c.initializer_range = json::get_number(v, "initializer_range", ctx, c.initializer_range);
  c.max_position_embeddings = json::get_int(v, "max_position_embeddings", ctx, c.max_position_embeddings);
  c.tokenizer = json::get_string(v, "tokenizer", ctx, c.tokenizer);
  if (const json::Value* lt = v.find("layer_types")) {
    LT2_CHECK(lt->is_array(), ctx, ": field 'layer_types': expected an array of mixer names");
    for (const auto& e : lt->elements()) {
      LT2_CHECK(e.is_string(), ctx, ": field 'layer_types': expected strings");
      c.layer_types.push_back(parse_mixer(e.as_string(), ctx));
    }
    LT2_CHECK(!v.find("pattern"), ctx, ": give either 'layer_types' or 'pattern', not both");
  } else {
    c.layer_types = parse_pattern(json::get_string(v, "pattern", ctx, "gdn"), c.num_hidden_layers, ctx);
  }
  if (const json::Value* lw = v.find("loop_windows")) {
    LT2_CHECK(lw->is_array(), ctx, ": field 'loop_windows': expected an array of integers");
    for (const auto& e : lw->elements()) {
      LT2_CHECK(e.is_number() && e.is_integer(), ctx, ": field 'loop_windows': expected integers");
      c.loop_windows.push_back(int64_t(e.as_number()));
    }
  }
  c.validate(ctx);
  return c;
}

json::Value ModelConfig::to_json() const {
  json::Value v = json::Value::object();
  v.set("model_type", "lt2");
  v.set("vocab_size", vocab_size);
  v.set("hidden_size", hidden_size);
  v.set("num_hidden_layers", num_hidden_layers);
  v.set("num_loops", num_loops);
  v.set("intermediate_size", intermediate_size);
  json::Value lt = json::Value::array();
  for (const auto& m : layer_types) lt.push_back(m.str());
  v.set("layer_types", lt);
  if (!loop_windows.empty()) {
    json::Value lw = json::Value::array();
    for (int64_t w : loop_windows) lw.push_back(w);
    v.set("loop_windows", lw);
  }
  v.set("num_attention_heads", num_attention_heads);
  v.set("num_key_value_heads", num_key_value_heads);
  v.set("head_dim", head_dim);
  v.set("rope_theta", rope_theta);
  v.set("output_gate", output_gate);
  if (count(MixerSpec::Dsa) > 0) {
    v.set("dsa_index_heads", dsa_index_heads);
    v.set("dsa_index_head_dim", dsa_index_head_dim);
  }
  v.set("gdn_num_heads", gdn_num_heads);
  v.set("gdn_num_v_heads", gdn_num_v_heads);
  v.set("gdn_head_k_dim", gdn_head_k_dim);
  v.set("gdn_head_v_dim", gdn_head_v_dim);
  v.set("gdn_conv_size", gdn_conv_size);
  v.set("gdn_chunked", gdn_chunked);
  v.set("rms_norm_eps", rms_norm_eps);
  v.set("sandwich_norm", sandwich_norm);
  v.set("norm_between_loops", norm_between_loops);
  v.set("recompute_loops", recompute_loops);
  v.set("recompute_keep_loops", recompute_keep_loops);
  v.set("tie_word_embeddings", tie_word_embeddings);
  v.set("initializer_range", initializer_range);
  v.set("max_position_embeddings", max_position_embeddings);
  v.set("tokenizer", tokenizer);
  return v;
}

}  // namespace lt2
