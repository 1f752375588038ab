#include "eval/niah_eval.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/json.h"
#include "core/rng.h"
#include "infer/session.h"
#include "text/tokenizer.h"

namespace lt2::eval {

// "0.25" style depth labels: shortest of up to 3 decimals.
std::string depth_label(double d) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", d);
  std::string s = b;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

namespace {
constexpr int64_t kCacheBudgetBytes = int64_t(2) << 30;  // caches of one batched Session

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}


int32_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return int32_t(best);
}
}  // namespace

std::string niah_kind_name(tasks::NiahKind kind) {
  switch (kind) {
    case tasks::NiahKind::Niah1: return "niah1";
    case tasks::NiahKind::Niah2: return "niah2";
    case tasks::NiahKind::Niah3: return "niah3";
  }
  fail(cat("unknown NIAH kind ", int(kind)));
}

uint64_t niah_eval_seed(uint64_t seed, int64_t context, size_t depth_index) {
  const uint64_t base = mix64(seed ^ stream_id("lt2 niah evaluation grid"));
  return mix64(mix64(base + uint64_t(context)) ^ (0x5A5A5A5Aull + depth_index));
}

void validate_niah_grid(tasks::NiahKind kind, const std::vector<int64_t>& contexts, const std::vector<double>& depths,
                        int64_t samples_per_cell, std::string_view prose, int64_t max_context) {
  LT2_CHECK(!contexts.empty(), "NIAH evaluation: no context lengths given");
  LT2_CHECK(!depths.empty(), "NIAH evaluation: no needle depths given");
  LT2_CHECK(samples_per_cell >= 1, "NIAH evaluation: samples per cell must be >= 1, got ", samples_per_cell);
  if (kind != tasks::NiahKind::Niah1) {
    const bool has_text = std::any_of(prose.begin(), prose.end(), [](char c) {
      return !(c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v');
    });
    LT2_CHECK(has_text, niah_kind_name(kind),
              " needs prose for its haystack (held-out text, e.g. --prose FILE); none was given");
  }
  for (int64_t c : contexts) {
    if (max_context > 0)
      LT2_CHECK(c <= max_context, "NIAH context ", c, " exceeds the model's context limit of ", max_context,
                " tokens (max_position_embeddings)");
    for (double d : depths) {
      tasks::NiahSettings s;
      s.kind = kind;
      s.context_len = c;
      s.depth = d;
      tasks::validate(s);
    }
  }
}

bool score_niah_sample(const tasks::NiahSample& s, std::string_view generated) {
  return tasks::exact_match(generated, s.answer);
}

NiahGrid evaluate_niah_with(const NiahGenerator& generate, tasks::NiahKind kind, const std::vector<int64_t>& contexts,
                            const std::vector<double>& depths, int64_t samples_per_cell, std::string_view prose,
                            uint64_t seed, const NiahProgress& progress, int64_t max_context) {
  validate_niah_grid(kind, contexts, depths, samples_per_cell, prose, max_context);
  NiahGrid g;
  g.kind = niah_kind_name(kind);
  g.contexts = contexts;
  g.depths = depths;
  const int64_t total = int64_t(contexts.size() * depths.size());
  for (int64_t c : contexts)
    for (size_t di = 0; di < depths.size(); ++di) {
      tasks::NiahSettings st;
      st.kind = kind;
      st.context_len = c;
      st.depth = depths[di];
      const uint64_t cell_seed = niah_eval_seed(seed, c, di);
      std::vector<tasks::NiahSample> samples;
      std::vector<std::string> prompts;
      std::vector<int64_t> max_new;
      for (int64_t i = 0; i < samples_per_cell; ++i) {
        samples.push_back(tasks::niah_sample(st, prose, cell_seed, uint64_t(i)));
        prompts.push_back(samples.back().prompt);
        max_new.push_back(int64_t(samples.back().answer.size()) + 1);  // the value and its newline
      }
      const std::vector<std::string> out = generate(prompts, max_new);
      LT2_CHECK(out.size() == samples.size(), "NIAH generator returned ", out.size(), " texts for ", samples.size(),
                " prompts");
      NiahCell cell{c, depths[di], samples_per_cell, 0};
      for (size_t i = 0; i < samples.size(); ++i) cell.correct += score_niah_sample(samples[i], out[i]) ? 1 : 0;
      g.cells.push_back(cell);
      if (progress) progress(int64_t(g.cells.size()), total, cell);
    }
  return g;
}

std::vector<std::string> greedy_generate(const LoopedModel& model, const std::vector<std::string>& prompts,
                                         const std::vector<int64_t>& max_new, int64_t max_batch) {
  LT2_CHECK(prompts.size() == max_new.size(), "greedy_generate: ", prompts.size(), " prompts but ", max_new.size(),
            " lengths");
  const ModelConfig& cfg = model.config();
  const int64_t V = cfg.vocab_size, limit = cfg.max_position_embeddings;
  for (size_t i = 0; i < prompts.size(); ++i) {
    LT2_CHECK(!prompts[i].empty(), "greedy_generate: prompt ", i, " is empty");
    LT2_CHECK(max_new[i] >= 1, "greedy_generate: prompt ", i, " asks for ", max_new[i], " new tokens (need >= 1)");
    LT2_CHECK(int64_t(prompts[i].size()) + max_new[i] <= limit, "prompt of ", prompts[i].size(), " tokens + ",
              max_new[i], " new tokens exceeds the model's context limit of ", limit,
              " tokens (max_position_embeddings)");
  }
  std::vector<std::string> out(prompts.size());
  size_t start = 0;
  while (start < prompts.size()) {
    // Grow the batch while the shared Session context still fits the model and the budget.
    int64_t max_prompt = int64_t(prompts[start].size()), max_gen = max_new[start];
    size_t end = start + 1;
    int64_t cap = max_batch;
    if (cap <= 0) {
      const int64_t per_seq = std::max<int64_t>(1, Session(model, 1, max_prompt + max_gen).cache_bytes());
      cap = std::max<int64_t>(1, kCacheBudgetBytes / per_seq);
    }
    while (end < prompts.size() && int64_t(end - start) < cap) {
      const int64_t p = std::max(max_prompt, int64_t(prompts[end].size())), n = std::max(max_gen, max_new[end]);
      if (p + n > limit) break;
      max_prompt = p, max_gen = n, ++end;
    }
    const int64_t B = int64_t(end - start);
    Session session(model, B, max_prompt + max_gen);
    std::vector<int32_t> next(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) {
      const Tensor lg = session.prefill(b, ByteTokenizer::encode(prompts[start + b]));
      next[b] = argmax(lg.data<float>(), V);
    }
    for (int64_t step = 0;; ++step) {
      bool more = false;
      for (int64_t b = 0; b < B; ++b)
        if (step < max_new[start + b]) {
          out[start + b].push_back(char(next[b] & 0xff));
          more = more || step + 1 < max_new[start + b];
        }
      if (!more) break;
      const Tensor lg = session.decode(next);  // finished sequences keep going; their tokens are ignored
      for (int64_t b = 0; b < B; ++b) next[b] = argmax(lg.data<float>() + b * V, V);
    }
    start = end;
  }
  return out;
}

NiahGrid evaluate_niah(const LoopedModel& model, tasks::NiahKind kind, const std::vector<int64_t>& contexts,
                       const std::vector<double>& depths, int64_t samples_per_cell, std::string_view prose,
                       uint64_t seed, const NiahProgress& progress) {
  const int64_t limit = model.config().max_position_embeddings;
  LT2_CHECK(model.config().tokenizer == "bytes", "NIAH evaluation runs on byte tokens (1 byte = 1 token), but the model ",
            "uses the tokenizer '", model.config().tokenizer, "'");
  auto gen = [&](const std::vector<std::string>& prompts, const std::vector<int64_t>& max_new) {
    return greedy_generate(model, prompts, max_new);
  };
  return evaluate_niah_with(gen, kind, contexts, depths, samples_per_cell, prose, seed, progress, limit);
}

std::string niah_table(const NiahGrid& g) {
  LT2_CHECK(g.cells.size() == g.contexts.size() * g.depths.size(), "NIAH grid: ", g.cells.size(), " cells for ",
            g.contexts.size(), " contexts x ", g.depths.size(), " depths");
  // Appends only: GCC 12 warns (-Wrestrict, a false positive) on "literal" + std::string&&.
  const auto pct = [](double a) { return fmt("%.1f", 100.0 * a); };
  std::string s = "| ";
  s.append(g.kind).append(" context \\ depth |");
  for (double d : g.depths) s.append(" ").append(depth_label(d)).append(" |");
  s.append(" mean |\n|---|");
  for (size_t i = 0; i <= g.depths.size(); ++i) s.append("---:|");
  s.append("\n");
  int64_t all_n = 0, all_k = 0;
  for (size_t r = 0; r < g.contexts.size(); ++r) {
    s.append("| ").append(std::to_string(g.contexts[r])).append(" |");
    int64_t n = 0, k = 0;
    for (size_t c = 0; c < g.depths.size(); ++c) {
      const NiahCell& cell = g.at(r, c);
      s.append(" ").append(pct(cell.accuracy())).append(" |");
      n += cell.samples, k += cell.correct;
    }
    s.append(" ").append(pct(n > 0 ? double(k) / double(n) : 0.0)).append(" |\n");
    all_n += n, all_k += k;
  }
  s.append("\nOverall: ").append(pct(all_n > 0 ? double(all_k) / double(all_n) : 0.0)).append("% exact match (");
  s.append(std::to_string(all_k)).append(" / ").append(std::to_string(all_n)).append(" samples)\n");
  return s;
}

std::string niah_json(const NiahGrid& g) {
  json::Value root = json::Value::object();
  root.set("kind", g.kind);
  json::Value ctx = json::Value::array(), dep = json::Value::array(), cells = json::Value::array();
  for (int64_t c : g.contexts) ctx.push_back(c);
  for (double d : g.depths) dep.push_back(d);
  int64_t n = 0, k = 0;
  for (const NiahCell& c : g.cells) {
    json::Value o = json::Value::object();
    o.set("context", c.context);
    o.set("depth", c.depth);
    o.set("samples", c.samples);
    o.set("correct", c.correct);
    o.set("accuracy", c.accuracy());
    cells.push_back(std::move(o));
    n += c.samples, k += c.correct;
  }
  root.set("contexts", std::move(ctx));
  root.set("depths", std::move(dep));
  root.set("cells", std::move(cells));
  root.set("samples", n);
  root.set("correct", k);
  root.set("accuracy", n > 0 ? double(k) / double(n) : 0.0);
  return root.dump(2) + "\n";
}

}  // namespace lt2::eval
