// Cross-entropy over the vocabulary, numerically stable (max-shifted log-sum-exp).
#include <algorithm>
#include <cmath>

#include "cpu/common.h"
#include "cpu/cpu_ops.h"

namespace lt2::cpu {

double cross_entropy(const Tensor& logits, const Tensor& targets, Tensor* dlogits, double grad_scale) {
  check_cpu_real(logits, "cross_entropy", "logits");
  LT2_CHECK(logits.ndim() == 2, "cross_entropy: logits must be [N, V], got ", shape_str(logits.shape()));
  LT2_CHECK(targets.dtype() == DType::I32 && targets.numel() == logits.dim(0),
            "cross_entropy: targets must be I32 [", logits.dim(0), "]");
  const int64_t N = logits.dim(0), V = logits.dim(1);
  const int32_t* tg = targets.data<int32_t>();
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i) {
    LT2_CHECK(tg[i] < V && tg[i] >= -1, "cross_entropy: target ", tg[i], " outside [-1, ", V, ")");
    count += tg[i] >= 0;
  }
  if (dlogits) *dlogits = Tensor::zeros(logits.shape(), logits.dtype());
  if (count == 0) return 0.0;
  double total = 0;
  dispatch_real(logits.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* lp = logits.data<R>();
    R* dp = dlogits ? dlogits->data<R>() : nullptr;
    const double gs = grad_scale / count;
#pragma omp parallel for reduction(+ : total)
    for (int64_t i = 0; i < N; ++i) {
      if (tg[i] < 0) continue;
      const R* row = lp + i * V;
      const R m = *std::max_element(row, row + V);
      double sum = 0;
      for (int64_t j = 0; j < V; ++j) sum += std::exp(double(row[j] - m));
      const double lse = m + std::log(sum);
      total += lse - row[tg[i]];
      if (dp) {
        for (int64_t j = 0; j < V; ++j) dp[i * V + j] = R(std::exp(row[j] - lse) * gs);
        dp[i * V + tg[i]] -= R(gs);
      }
    }
  });
  return total / count;
}

void cross_entropy_stats(const Tensor& logits, const Tensor& targets, Tensor* dlogits, double grad_scale,
                         Tensor& stats) {
  check_cpu_real(stats, "cross_entropy_stats", "stats");
  const double mean = cross_entropy(logits, targets, dlogits, grad_scale);  // raises on a bad target
  const int32_t* tg = targets.data<int32_t>();
  const int64_t count = std::count_if(tg, tg + targets.numel(), [](int32_t t) { return t >= 0; });
  stats.set(0, mean * double(count));
  stats.set(1, double(count));
  stats.set(2, double(targets.numel()));
}

}  // namespace lt2::cpu
