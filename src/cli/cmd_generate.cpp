// lt2 generate: continue a prompt. Full-recompute decoding (every new token re-runs the
// whole prefix); the cached prefill/decode Session replaces it with the inference issue.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/rng.h"
#include "model/checkpoint.h"
#include "text/tokenizer.h"

namespace lt2::cli {

int cmd_generate(int argc, char** argv) {
  Args a("lt2 generate", {{"model", true, "checkpoint or run directory"},
                          {"prompt", true, "text to continue"},
                          {"max-tokens", true, "tokens to generate (default 200)"},
                          {"temperature", true, "0 = greedy (default 0.8)"},
                          {"top-k", true, "sample among the k most likely tokens (default 40; 0 = all)"},
                          {"seed", true, "sampling seed (default 0)"}},
         argc, argv, 2);
  if (a.help()) {
    std::printf("usage: lt2 generate --model DIR --prompt TEXT [flags]\n\n%s", a.usage().c_str());
    return 0;
  }
  LT2_CHECK(a.has("model"), "lt2 generate: --model DIR is required");
  LT2_CHECK(a.has("prompt"), "lt2 generate: --prompt TEXT is required");
  const int64_t max_tokens = a.integer("max-tokens", 200), top_k = a.integer("top-k", 40);
  const double temp = a.number("temperature", 0.8);
  LT2_CHECK(max_tokens >= 0, "--max-tokens must be >= 0");
  LT2_CHECK(temp >= 0, "--temperature must be >= 0");
  LT2_CHECK(top_k >= 0, "--top-k must be >= 0");
  auto model = load_model(a.str("model"));
  const ModelConfig& cfg = model->config();
  std::vector<int32_t> ids = ByteTokenizer::encode(a.str("prompt"));
  LT2_CHECK(!ids.empty(), "--prompt must not be empty");
  LT2_CHECK(int64_t(ids.size()) + max_tokens <= cfg.max_position_embeddings, "prompt (", ids.size(),
            " tokens) + --max-tokens ", max_tokens, " exceeds the context limit ", cfg.max_position_embeddings);
  const CounterRng rng{uint64_t(a.integer("seed", 0)), stream_id("sample")};
  std::printf("%s", a.str("prompt").c_str());
  for (int64_t i = 0; i < max_tokens; ++i) {
    Tensor x = Tensor::empty({1, int64_t(ids.size())}, DType::I32);
    std::copy(ids.begin(), ids.end(), x.data<int32_t>());
    const Tensor logits = model->forward(x, nullptr);
    const float* last = logits.data<float>() + (ids.size() - 1) * cfg.vocab_size;
    std::vector<std::pair<float, int32_t>> cand;
    for (int32_t v = 0; v < cfg.vocab_size; ++v) cand.emplace_back(last[v], v);
    std::sort(cand.begin(), cand.end(), [](auto& p, auto& q) { return p.first > q.first; });
    int32_t next = cand[0].second;
    if (temp > 0) {
      if (top_k > 0 && int64_t(cand.size()) > top_k) cand.resize(top_k);
      double total = 0;
      std::vector<double> w;
      for (auto& [l, _] : cand) total += w.emplace_back(std::exp((l - cand[0].first) / temp));
      double u = rng.uniform(i) * total;
      for (size_t j = 0; j < cand.size(); ++j)
        if ((u -= w[j]) <= 0 || j + 1 == cand.size()) {
          next = cand[j].second;
          break;
        }
    }
    ids.push_back(next);
    std::putchar(char(next & 0xff));
    std::fflush(stdout);
  }
  std::putchar('\n');
  return 0;
}

}  // namespace lt2::cli
