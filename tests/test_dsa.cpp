// DeepSeek Sparse Attention, CPU reference (cpu/dsa.h): top-k selection against a brute-force
// solver (ties toward the more recent key, all keys while t + 1 <= k), DSA with k >= L equal to
// dense causal attention (forward and backward), and finite-difference checks of every
// gradient: the indexer scores, sparse attention over a selected set, the indexer KL.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cpu/dsa.h"
#include "gradcheck.h"

using namespace lt2;
using namespace lt2::test;

namespace {

// Integer-valued scores in a small range, so ties are frequent.
Tensor tie_heavy_scores(int64_t B, int64_t L, uint64_t seed) {
  Tensor I = uniform({B, L, L}, seed, 0, 4);
  for (int64_t i = 0; i < I.numel(); ++i) I.set(i, std::floor(I.item(i)));
  return I;
}

Tensor indexer_of(int64_t B, int64_t L, uint64_t seed) {
  const Tensor qI = randn({B, L, 3, 4}, seed), kI = randn({B, L, 4}, seed + 1), w = randn({B, L, 3}, seed + 2);
  return cpu::dsa_indexer_scores(qI, kI, w);
}

}  // namespace

TEST(Dsa, TopKMatchesBruteForceWithTiesTowardRecentKeys) {
  const int64_t B = 2, L = 23;
  const Tensor I = tie_heavy_scores(B, L, 3);
  for (int64_t k : {1, 4, 9, 23, 40}) {
    const Tensor idx = cpu::dsa_topk(I, k);
    ASSERT_EQ(idx.shape(), (Shape{B, L, k}));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < L; ++t) {
        // Independent solver: repeatedly take the best remaining key, scanning from the newest
        // so that a tie keeps the more recent one.
        std::vector<bool> taken(size_t(t + 1), false);
        std::vector<int32_t> want;
        for (int64_t n = 0; n < std::min(k, t + 1); ++n) {
          int64_t best = -1;
          for (int64_t s = t; s >= 0; --s)
            if (!taken[size_t(s)] && (best < 0 || I.item((b * L + t) * L + s) > I.item((b * L + t) * L + best))) best = s;
          taken[size_t(best)] = true;
          want.push_back(int32_t(best));
        }
        std::sort(want.begin(), want.end());
        for (int64_t i = 0; i < k; ++i) {
          const int32_t got = int32_t(idx.item((b * L + t) * k + i));
          ASSERT_EQ(got, i < int64_t(want.size()) ? want[size_t(i)] : -1) << "b " << b << " t " << t << " k " << k;
        }
      }
  }
}

TEST(Dsa, KeepsEveryKeyWhileTheQueryHasAtMostK) {
  const Tensor idx = cpu::dsa_topk(indexer_of(1, 10, 5), 6);
  for (int64_t t = 0; t < 6; ++t)
    for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(idx.item(t * 6 + i), i <= t ? double(i) : -1.0) << "t " << t;
}

TEST(Dsa, KAtLeastTheLengthEqualsDenseCausalAttention) {
  const int64_t B = 2, L = 17, H = 4, Hkv = 2, D = 8;
  const Tensor q = randn({B, L, H, D}, 1), k = randn({B, L, Hkv, D}, 2), v = randn({B, L, Hkv, D}, 3);
  const Tensor dout = randn({B, L, H, D}, 4);
  const Tensor idx = cpu::dsa_topk(indexer_of(B, L, 6), L);
  const double scale = 1 / std::sqrt(double(D));
  Tensor lse_s, lse_d;
  const Tensor os = cpu::sparse_attention(q, k, v, idx, scale, &lse_s), od = cpu::attention(q, k, v, 0, scale, &lse_d);
  EXPECT_LE(rel_l2(os, od), 1e-13);
  EXPECT_LE(rel_l2(lse_s, lse_d), 1e-13);
  Tensor dqs, dks, dvs, dqd, dkd, dvd;
  cpu::sparse_attention_backward(q, k, v, os, lse_s, idx, dout, scale, dqs, dks, dvs);
  cpu::attention_backward(q, k, v, od, lse_d, dout, 0, scale, dqd, dkd, dvd);
  EXPECT_LE(rel_l2(dqs, dqd), 1e-12);
  EXPECT_LE(rel_l2(dks, dkd), 1e-12);
  EXPECT_LE(rel_l2(dvs, dvd), 1e-12);
}

TEST(Dsa, SparseAttentionGradients) {
  const int64_t B = 1, L = 9, H = 2, Hkv = 1, D = 4, K = 2;
  Tensor q = randn({B, L, H, D}, 11), k = randn({B, L, Hkv, D}, 12), v = randn({B, L, Hkv, D}, 13);
  const Tensor W = randn({B, L, H, D}, 14);
  // Query t selects {0, t} for even t and {0} (one empty slot) for odd t: odd keys stay unselected.
  Tensor idx = Tensor::full({B, L, K}, -1, DType::I32);
  for (int64_t t = 0; t < L; ++t) {
    idx.set(t * K, 0);
    if (t > 0 && t % 2 == 0) idx.set(t * K + 1, double(t));
  }
  const double scale = 0.5;
  Tensor lse;
  const Tensor o = cpu::sparse_attention(q, k, v, idx, scale, &lse);
  Tensor dq, dk, dv;
  cpu::sparse_attention_backward(q, k, v, o, lse, idx, W, scale, dq, dk, dv);
  auto loss = [&] { return dot(cpu::sparse_attention(q, k, v, idx, scale, nullptr), W); };
  check_grad("dq", loss, q, dq);
  check_grad("dk", loss, k, dk);
  check_grad("dv", loss, v, dv);
  // A key that no query selects gets exactly no gradient; the selected ones do.
  std::vector<bool> selected(size_t(L), false);
  for (int64_t i = 0; i < idx.numel(); ++i)
    if (idx.item(i) >= 0) selected[size_t(idx.item(i))] = true;
  int64_t unselected = 0;
  for (int64_t s = 0; s < L; ++s) {
    double mag = 0;
    for (int64_t c = 0; c < D; ++c) mag += std::abs(dk.item(s * D + c)) + std::abs(dv.item(s * D + c));
    if (selected[size_t(s)]) {
      EXPECT_GT(mag, 0) << "key " << s;
    } else {
      EXPECT_EQ(mag, 0) << "key " << s;
      ++unselected;
    }
  }
  EXPECT_GT(unselected, 0) << "the case should leave some key unselected";
}

TEST(Dsa, IndexerScoreGradients) {
  const int64_t B = 2, L = 7;
  Tensor qI = randn({B, L, 3, 4}, 21), kI = randn({B, L, 4}, 22), w = randn({B, L, 3}, 23);
  Tensor W = randn({B, L, L}, 24);
  for (int64_t b = 0; b < B; ++b)  // the loss reads only s <= t (the rest is -inf)
    for (int64_t t = 0; t < L; ++t)
      for (int64_t s = t + 1; s < L; ++s) W.set((b * L + t) * L + s, 0);
  auto loss = [&] {
    const Tensor I = cpu::dsa_indexer_scores(qI, kI, w);
    double acc = 0;
    for (int64_t i = 0; i < I.numel(); ++i)
      if (W.item(i) != 0) acc += I.item(i) * W.item(i);
    return acc;
  };
  Tensor dqI, dkI, dw;
  cpu::dsa_indexer_scores_backward(qI, kI, w, W, dqI, dkI, dw);
  check_grad("dqI", loss, qI, dqI);
  check_grad("dkI", loss, kI, dkI);
  check_grad("dw", loss, w, dw);
}

// The indexer loss: KL(p_t || softmax(I_t)) on the selected set, its gradient w.r.t. I by
// finite differences, for the dense set (stage 1) and a top-k set (stage 2).
TEST(Dsa, IndexerKlGradientAndTarget) {
  const int64_t B = 1, L = 8, H = 2, D = 4;
  const Tensor q = randn({B, L, H, D}, 31), k = randn({B, L, 1, D}, 32);
  Tensor I = indexer_of(B, L, 33);
  for (int64_t kk : {L, int64_t(3)}) {
    const Tensor idx = cpu::dsa_topk(I, kk);
    const Tensor p = cpu::dsa_attention_target(q, k, idx, 0.5);
    for (int64_t t = 0; t < L; ++t) {  // a distribution on the selected set
      double sum = 0;
      for (int64_t s = 0; s < L; ++s) sum += p.item(t * L + s);
      EXPECT_NEAR(sum, 1.0, 1e-12) << "t " << t;
    }
    Tensor dI;
    const double kl = cpu::dsa_indexer_kl(I, p, idx, &dI);
    EXPECT_GT(kl, 0);
    // Perturb only the selected entries (the rest are -inf or outside the set).
    for (int64_t t = 0; t < L; ++t)
      for (int64_t i = 0; i < kk; ++i) {
        const int64_t s = int64_t(idx.item(t * kk + i));
        if (s < 0) continue;
        const int64_t e = t * L + s;
        const double x0 = I.item(e), h = 1e-6;
        I.set(e, x0 + h);
        const double lp = cpu::dsa_indexer_kl(I, p, idx, nullptr);
        I.set(e, x0 - h);
        const double lm = cpu::dsa_indexer_kl(I, p, idx, nullptr);
        I.set(e, x0);
        EXPECT_NEAR(dI.item(e), (lp - lm) / (2 * h), 1e-8) << "t " << t << " s " << s << " k " << kk;
      }
    // KL is zero when the indexer matches the target exactly.
    Tensor logp = Tensor::full({B, L, L}, -INFINITY, DType::F64);
    for (int64_t i = 0; i < p.numel(); ++i)
      if (p.item(i) > 0) logp.set(i, std::log(p.item(i)));
    EXPECT_NEAR(cpu::dsa_indexer_kl(logp, p, idx, nullptr), 0.0, 1e-12);
  }
}

TEST(Dsa, BadIndexRowsAreClearErrors) {
  const Tensor q = randn({1, 4, 1, 2}, 1), k = randn({1, 4, 1, 2}, 2);
  Tensor idx = Tensor::full({1, 4, 2}, -1, DType::I32);
  idx.set(2, 3);  // query 1 selects the future key 3
  try {
    cpu::sparse_attention(q, k, k, idx, 1.0, nullptr);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("index row of query 1"), std::string::npos) << e.what();
  }
}
