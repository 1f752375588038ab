// lt2 generate: continue one prompt (streamed) or a file of prompts (a batch), through the
// inference Session: one prefill per prompt, then one cached decode step per token.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>

#include "cli/args.h"
#include "cli/device_flag.h"
#include "cli/commands.h"
#include "infer/sampler.h"
#include "infer/session.h"
#include "model/checkpoint.h"
#include "text/tokenizer.h"

namespace lt2::cli {

namespace {
using clk = std::chrono::steady_clock;

// One sequence's generated text, with stop strings held back until they can be ruled out.
struct Completion {
  std::string text, pending;  // text: released; pending: may still start a stop string
  bool done = false;

  // Adds a byte; returns what can be shown now.
  std::string add(char c, const std::vector<std::string>& stops) {
    pending.push_back(c);
    for (const auto& s : stops)
      if (pending.size() >= s.size() && pending.compare(pending.size() - s.size(), s.size(), s) == 0) {
        pending.erase(pending.size() - s.size());
        done = true;
        return release(pending.size());
      }
    size_t keep = 0;  // longest suffix of pending that is a proper prefix of a stop string
    for (const auto& s : stops)
      for (size_t n = std::min(s.size() - 1, pending.size()); n > keep; --n)
        if (pending.compare(pending.size() - n, n, s, 0, n) == 0) {
          keep = n;
          break;
        }
    return release(pending.size() - keep);
  }
  std::string release(size_t n) {
    std::string out = pending.substr(0, n);
    pending.erase(0, n);
    text += out;
    return out;
  }
};

std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream f(path);
  LT2_CHECK(f, "cannot open prompts file ", path);
  std::vector<std::string> out;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n)
    if (!line.empty()) out.push_back(line);
  LT2_CHECK(!out.empty(), path, ": no prompts (one per line)");
  return out;
}
}  // namespace

int cmd_generate(int argc, char** argv) {
  Args a("lt2 generate",
         {device_flag(),
          {"model", true, "checkpoint or run directory"},
          {"prompt", true, "text to continue"},
          {"prompts", true, "file with one prompt per line: generated as one batch"},
          {"max-tokens", true, "new tokens per prompt (default 200)"},
          {"temperature", true, "0 = greedy (default 0.8)"},
          {"top-k", true, "sample among the k most likely tokens (default 40; 0 = all)"},
          {"top-p", true, "nucleus sampling: smallest set with this much mass (default 1 = off)"},
          {"repetition-penalty", true, "> 1 discourages repeating tokens (default 1 = off)"},
          {"seed", true, "sampling seed (default 0)"},
          {"eos", true, "token id that ends a sequence (default: none)"},
          {"stop", true, "string that ends a sequence (repeatable; not printed)", true},
          {"stats", false, "print prefill / decode speed and cache bytes to stderr"}},
         argc, argv, 2);
  if (a.help()) {
    std::printf("usage: lt2 generate --model DIR (--prompt TEXT | --prompts FILE) [flags]\n\n%s", a.usage().c_str());
    return 0;
  }
  LT2_CHECK(a.has("model"), "lt2 generate: --model DIR is required");
  LT2_CHECK(a.has("prompt") != a.has("prompts"), "lt2 generate: give exactly one of --prompt TEXT or --prompts FILE");
  SamplerConfig sc;
  sc.temperature = a.number("temperature", sc.temperature);
  sc.top_k = a.integer("top-k", sc.top_k);
  sc.top_p = a.number("top-p", sc.top_p);
  sc.repetition_penalty = a.number("repetition-penalty", sc.repetition_penalty);
  sc.seed = uint64_t(a.integer("seed", 0));
  sc.validate();
  const int64_t max_tokens = a.integer("max-tokens", 200), eos = a.integer("eos", -1);
  LT2_CHECK(max_tokens >= 1 && max_tokens <= 1'000'000'000, "--max-tokens must be in [1, 1e9]");
  const std::vector<std::string> stops = a.all("stop");
  for (const auto& s : stops) LT2_CHECK(!s.empty(), "--stop must not be empty");

  const std::string dir = resolve_checkpoint_dir(a.str("model"));
  auto model = load_model(dir);
  place_model(*model, chosen_device(a));
  const ModelConfig& cfg = model->config();
  const auto tok = model_tokenizer(cfg, dir);
  LT2_CHECK(eos < cfg.vocab_size, "--eos ", eos, " is outside the vocabulary of ", cfg.vocab_size);
  const std::vector<std::string> prompts = a.has("prompt") ? std::vector<std::string>{a.str("prompt")}
                                                           : read_prompts(a.str("prompts"));
  std::vector<std::vector<int32_t>> hist;
  size_t longest = 0;
  for (const auto& p : prompts) {
    LT2_CHECK(!p.empty(), "prompts must not be empty");
    hist.push_back(tok->encode(p));
    longest = std::max(longest, hist.back().size());
  }
  LT2_CHECK(int64_t(longest) + max_tokens <= cfg.max_position_embeddings, "prompt (", longest,
            " tokens) + --max-tokens ", max_tokens, " exceeds the model's context limit of ",
            cfg.max_position_embeddings, " tokens");
  const int64_t B = int64_t(prompts.size());
  Session session(*model, B, int64_t(longest) + max_tokens);
  Sampler sampler(sc);
  const bool stream = B == 1;

  std::vector<std::vector<int32_t>> generated(static_cast<size_t>(B));
  std::vector<std::string> decoded(static_cast<size_t>(B));  // text of `generated` released so far
  std::vector<Completion> out(static_cast<size_t>(B));
  std::vector<int32_t> next(static_cast<size_t>(B));
  auto t0 = clk::now();
  int64_t prefill_tokens = 0;
  for (int64_t b = 0; b < B; ++b) {
    prefill_tokens += int64_t(hist[b].size());
    const Tensor lg = session.prefill(b, hist[b]);
    next[b] = sampler.sample(lg.data<float>(), cfg.vocab_size, hist[b]);
  }
  const double prefill_s = std::chrono::duration<double>(clk::now() - t0).count();
  if (stream) std::printf("%s", prompts[0].c_str());
  auto t1 = clk::now();
  int64_t steps = 0;
  for (int64_t i = 0; i < max_tokens; ++i) {
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      if (out[b].done) continue;
      if (next[b] == eos) {
        out[b].done = true;
        continue;
      }
      hist[b].push_back(next[b]);
      generated[b].push_back(next[b]);
      // Decode the whole continuation and pass on what it appends. A piece that does not yet
      // form complete characters (byte fallback) changes the earlier text: wait for it.
      const std::string text = tok->decode(generated[b]);
      std::string shown;
      if (text.compare(0, decoded[b].size(), decoded[b]) == 0) {
        for (size_t k = decoded[b].size(); k < text.size() && !out[b].done; ++k) shown += out[b].add(text[k], stops);
        decoded[b] = text;
      }
      if (stream) std::fwrite(shown.data(), 1, shown.size(), stdout), std::fflush(stdout);
      all_done = all_done && out[b].done;
    }
    if (all_done || i + 1 == max_tokens) break;
    const Tensor lg = session.decode(next);
    ++steps;
    for (int64_t b = 0; b < B; ++b)
      if (!out[b].done) next[b] = sampler.sample(lg.data<float>() + b * cfg.vocab_size, cfg.vocab_size, hist[b]);
  }
  const double decode_s = std::chrono::duration<double>(clk::now() - t1).count();
  for (int64_t b = 0; b < B; ++b) {
    const std::string rest = out[b].release(out[b].pending.size());  // a partial stop string at the end
    if (stream) std::printf("%s\n", rest.c_str());
    else std::printf("=== %lld ===\n%s%s\n", (long long)b, prompts[b].c_str(), out[b].text.c_str());
  }
  if (a.has("stats"))
    std::fprintf(stderr, "prefill %lld tokens in %.3f s (%.0f tok/s); decode %lld steps x %lld sequences in %.3f s "
                 "(%.1f tok/s); caches %lld bytes (%.2f MiB)\n",
                 (long long)prefill_tokens, prefill_s, prefill_tokens / std::max(prefill_s, 1e-9), (long long)steps,
                 (long long)B, decode_s, steps * B / std::max(decode_s, 1e-9), (long long)session.cache_bytes(),
                 session.cache_bytes() / 1048576.0);
  return 0;
}

}  // namespace lt2::cli
