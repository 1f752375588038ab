#include "infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "core/error.h"

namespace lt2 {

void SamplerConfig::validate() const {
  LT2_CHECK(std::isfinite(temperature) && temperature >= 0, "temperature must be >= 0, got ", temperature);
  LT2_CHECK(top_k >= 0, "top-k must be >= 0 (0 = all), got ", top_k);
  LT2_CHECK(top_p > 0 && top_p <= 1, "top-p must be in (0, 1], got ", top_p);
  LT2_CHECK(std::isfinite(repetition_penalty) && repetition_penalty > 0, "repetition penalty must be > 0, got ",
            repetition_penalty);
}

int32_t Sampler::sample(const float* logits, int64_t vocab, const std::vector<int32_t>& history) {
  std::vector<std::pair<double, int32_t>> cand(static_cast<size_t>(vocab));
  // Non-finite logits (a broken checkpoint) must not break the ordering the sort relies on.
  for (int32_t v = 0; v < vocab; ++v) cand[v] = {std::isfinite(logits[v]) ? double(logits[v]) : -INFINITY, v};
  if (cfg_.repetition_penalty != 1.0) {
    const std::unordered_set<int32_t> seen(history.begin(), history.end());
    for (auto& [l, v] : cand)
      if (seen.count(v)) l = l > 0 ? l / cfg_.repetition_penalty : l * cfg_.repetition_penalty;
  }
  // Highest first; ties toward the smaller id so greedy decoding is deterministic.
  std::sort(cand.begin(), cand.end(),
            [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  if (cfg_.temperature == 0) return cand[0].second;
  if (cfg_.top_k > 0 && int64_t(cand.size()) > cfg_.top_k) cand.resize(size_t(cfg_.top_k));
  std::vector<double> p(cand.size());
  double total = 0;
  for (size_t i = 0; i < cand.size(); ++i) total += p[i] = std::exp((cand[i].first - cand[0].first) / cfg_.temperature);
  size_t keep = cand.size();
  if (cfg_.top_p < 1) {  // smallest prefix whose mass reaches top_p
    double mass = 0;
    for (keep = 0; keep < cand.size();) {
      mass += p[keep++] / total;
      if (mass >= cfg_.top_p) break;
    }
    total = 0;
    for (size_t i = 0; i < keep; ++i) total += p[i];
  }
  double u = rng_.uniform(draws_++) * total;
  for (size_t i = 0; i < keep; ++i)
    if ((u -= p[i]) <= 0) return cand[i].second;
  return cand[keep - 1].second;
}

}  // namespace lt2
