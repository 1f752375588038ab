// DeepSeek Sparse Attention, CPU reference (cpu/dsa.cpp): top-k selection against a brute-force
// solver (ties toward the more recent key, all keys while t + 1 <= k), DSA with k >= L equal to
// dense causal attention (forward and backward), finite-difference checks of every gradient
// (the indexer scores, sparse attention over a selected set, the indexer KL), the lse-based
// target against a direct one, and the decode step against the full-sequence forward.
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
  return cpu::dsa_indexer_scores(qI, kI, w, 0.7);
}

}  // namespace

TEST(Dsa, TopKMatchesBruteForceWithTiesTowardRecentKeys) {
  const int64_t B = 2, L = 23;
  const Tensor I = tie_heavy_scores(B, L, 3);
  for (int64_t k : {1, 4, 9, 23, 40}) {
    Tensor values;
    const Tensor idx = cpu::dsa_topk(I, k, &values);
    ASSERT_EQ(idx.shape(), (Shape{B, L, k}));
    for (int64_t r = 0; r < B * L; ++r)  // values = I at the selected keys, 0 in empty slots
      for (int64_t i = 0; i < k; ++i) {
        const double s = idx.item(r * k + i);
        ASSERT_EQ(values.item(r * k + i), s >= 0 ? I.item(r * L + int64_t(s)) : 0.0);
      }
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
  const Tensor idx = cpu::dsa_topk(indexer_of(1, 10, 5), 6, nullptr);
  for (int64_t t = 0; t < 6; ++t)
    for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(idx.item(t * 6 + i), i <= t ? double(i) : -1.0) << "t " << t;
}

TEST(Dsa, KAtLeastTheLengthEqualsDenseCausalAttention) {
  const int64_t B = 2, L = 17, H = 4, Hkv = 2, D = 8;
  const Tensor q = randn({B, L, H, D}, 1), k = randn({B, L, Hkv, D}, 2), v = randn({B, L, Hkv, D}, 3);
  const Tensor dout = randn({B, L, H, D}, 4);
  const Tensor idx = cpu::dsa_topk(indexer_of(B, L, 6), L, nullptr);
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

// The scores' gradient from values on a key set: the dense causal set (idx undefined, slot i =
// key i) and a top-k set (gathered values).
TEST(Dsa, IndexerScoreGradients) {
  const int64_t B = 2, L = 7, K = 3;
  Tensor qI = randn({B, L, 3, 4}, 21), kI = randn({B, L, 4}, 22), w = randn({B, L, 3}, 23);
  const double ws = 0.6;
  const Tensor sparse_idx = cpu::dsa_topk(cpu::dsa_indexer_scores(qI, kI, w, ws), K, nullptr);
  for (const Tensor& idx : {Tensor(), sparse_idx}) {
    const int64_t slots = idx.defined() ? K : L;
    const Tensor W = randn({B, L, slots}, 24);
    auto key = [&](int64_t r, int64_t i) { return idx.defined() ? int64_t(idx.item(r * K + i)) : i; };
    auto loss = [&] {  // sum over the set of I * W
      const Tensor I = cpu::dsa_indexer_scores(qI, kI, w, ws);
      double acc = 0;
      for (int64_t r = 0; r < B * L; ++r)
        for (int64_t i = 0; i < slots; ++i)
          if (key(r, i) >= 0 && key(r, i) <= r % L) acc += I.item(r * L + key(r, i)) * W.item(r * slots + i);
      return acc;
    };
    Tensor dIsel = W.clone();  // zero where the slot holds no key
    for (int64_t r = 0; r < B * L; ++r)
      for (int64_t i = 0; i < slots; ++i)
        if (key(r, i) < 0 || key(r, i) > r % L) dIsel.set(r * slots + i, 0);
    Tensor dqI, dkI, dw;
    cpu::dsa_indexer_scores_backward(qI, kI, w, ws, idx, dIsel, dqI, dkI, dw);
    check_grad("dqI", loss, qI, dqI);
    check_grad("dkI", loss, kI, dkI);
    check_grad("dw", loss, w, dw);
  }
}

// The indexer loss KL(p_t || softmax(I_t)) on a key set: its gradient w.r.t. the set's scores
// by finite differences, for the dense set (stage 1) and a top-k set (stage 2); the target
// built from the saved lse equals the directly computed one (KL = 0 when I = log p); the dense
// set spelled as an explicit index gives the same loss and gradient.
TEST(Dsa, IndexerKlGradientAndTarget) {
  const int64_t B = 1, L = 8, H = 2, D = 4, K = 3;
  const Tensor q = randn({B, L, H, D}, 31), k = randn({B, L, 1, D}, 32), v = randn({B, L, 1, D}, 34);
  const Tensor I = indexer_of(B, L, 33);
  const double scale = 0.5;
  Tensor lse_dense;
  cpu::attention(q, k, v, 0, scale, &lse_dense);
  const Tensor topk_idx = cpu::dsa_topk(I, K, nullptr), all_idx = cpu::dsa_topk(I, L, nullptr);
  for (const Tensor& idx : {Tensor(), topk_idx}) {
    const int64_t slots = idx.defined() ? K : L;
    Tensor lse = lse_dense, Isel = I.clone();
    if (idx.defined()) cpu::sparse_attention(q, k, v, idx, scale, &lse), cpu::dsa_topk(I, K, &Isel);
    auto kl_of = [&](const Tensor& x, Tensor* grad) {
      Tensor sum = Tensor::zeros({1}, DType::F64);
      const Tensor g = cpu::dsa_indexer_kl(x, q, k, lse, idx, scale, sum);
      if (grad) *grad = g;
      return sum.item(0);
    };
    Tensor dI;
    EXPECT_GT(kl_of(Isel, &dI), 0);
    const Tensor p = cpu::dsa_attention_target(q, k, idx, scale);
    Tensor logp = Isel.clone();  // log p on the set; entries outside it are never read
    for (int64_t t = 0; t < L; ++t) {
      double total = 0;
      for (int64_t i = 0; i < slots; ++i) {
        const int64_t s = idx.defined() ? int64_t(idx.item(t * K + i)) : i;
        if (s < 0 || s > t) continue;
        total += p.item(t * L + s);
        logp.set(t * slots + i, std::log(p.item(t * L + s)));
        const double x0 = Isel.item(t * slots + i), h = 1e-6;
        Isel.set(t * slots + i, x0 + h);
        const double lp = kl_of(Isel, nullptr);
        Isel.set(t * slots + i, x0 - h);
        const double lm = kl_of(Isel, nullptr);
        Isel.set(t * slots + i, x0);
        EXPECT_NEAR(dI.item(t * slots + i), (lp - lm) / (2 * h), 1e-8) << "t " << t << " slot " << i;
      }
      EXPECT_NEAR(total, 1.0, 1e-12) << "the target is a distribution on the set, t " << t;
    }
    EXPECT_NEAR(kl_of(logp, nullptr), 0.0, 1e-12);
  }
  // The dense set, implicit (idx undefined) or as an explicit index of every key, is one loss.
  Tensor s1 = Tensor::zeros({1}, DType::F64), s2 = Tensor::zeros({1}, DType::F64), I_all;
  cpu::dsa_topk(I, L, &I_all);
  const Tensor g1 = cpu::dsa_indexer_kl(I, q, k, lse_dense, Tensor(), scale, s1);
  const Tensor g2 = cpu::dsa_indexer_kl(I_all, q, k, lse_dense, all_idx, scale, s2);
  EXPECT_NEAR(s1.item(0), s2.item(0), 1e-14);
  for (int64_t t = 0; t < L; ++t)
    for (int64_t i = 0; i <= t; ++i) EXPECT_NEAR(g1.item(t * L + i), g2.item(t * L + i), 1e-15);
}

// A decode step (indexer over the cached keys, top-k, attention over them) equals the
// training forward at the query's position, for sequences at different positions.
TEST(Dsa, DecodeStepEqualsTheForwardAtThatPosition) {
  const int64_t B = 2, L = 12, H = 4, Hkv = 2, D = 8, HI = 3, dI = 4;
  const Tensor q = randn({B, L, H, D}, 41), k = randn({B, L, Hkv, D}, 42), v = randn({B, L, Hkv, D}, 43);
  const Tensor qI = randn({B, L, HI, dI}, 44), kI = randn({B, L, dI}, 45), w = randn({B, L, HI}, 46);
  const double ws = 0.5, scale = 0.35;
  const std::vector<int64_t> pos = {11, 6};
  for (int64_t topk : {1, 4, 20}) {
    const Tensor o = cpu::sparse_attention(q, k, v, cpu::dsa_topk(cpu::dsa_indexer_scores(qI, kI, w, ws), topk, nullptr),
                                           scale, nullptr);
    Tensor qd = Tensor::empty({B, 1, H, D}, DType::F64), qId = Tensor::empty({B, 1, HI, dI}, DType::F64);
    Tensor wd = Tensor::empty({B, 1, HI}, DType::F64), positions = Tensor::empty({B}, DType::I32);
    for (int64_t b = 0; b < B; ++b) {
      qd.select(b).copy_from(q.select(b).narrow(pos[size_t(b)], 1));
      qId.select(b).copy_from(qI.select(b).narrow(pos[size_t(b)], 1));
      wd.select(b).copy_from(w.select(b).narrow(pos[size_t(b)], 1));
      positions.set(b, double(pos[size_t(b)]));
    }
    const Tensor od = cpu::dsa_decode(qd, k, v, qId, wd, kI, positions, topk, ws, scale);
    for (int64_t b = 0; b < B; ++b)
      EXPECT_LE(rel_l2(od.select(b), o.select(b).narrow(pos[size_t(b)], 1)), 1e-14) << "b " << b << " k " << topk;
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
