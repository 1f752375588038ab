// Finite-difference gradient checks (float64) for every op of the CPU op set.
#include <gtest/gtest.h>

#include "error_util.h"
#include "gradcheck.h"
#include "ops/ops.h"

using namespace lt2;
using namespace lt2::test;

TEST(OpsGrad, Linear) {
  Tensor x = randn({2, 3, 5}, 1), w = randn({4, 5}, 2), gy = randn({2, 3, 4}, 3);
  Tensor dw = Tensor::zeros(w.shape(), DType::F64);
  Tensor dx = ops::linear_backward(x, w, gy, dw);
  auto loss = [&] { return dot(ops::linear(x, w), gy); };
  check_grad("dx", loss, x, dx);
  check_grad("dw", loss, w, dw);
  // dx_acc: the GEMM adds dy W into an existing gradient and returns it.
  Tensor acc = randn(x.shape(), 4), want = ops::add(acc, dx);
  const Tensor got = ops::linear_backward(x, w, gy, dw, &acc);
  EXPECT_EQ(got.bytes(), acc.bytes());
  for (int64_t i = 0; i < want.numel(); ++i) EXPECT_NEAR(acc.item(i), want.item(i), 1e-12) << i;
  // The two halves give linear_backward's dx and dw exactly.
  Tensor dw_half = Tensor::zeros(w.shape(), DType::F64), dw_whole = Tensor::zeros(w.shape(), DType::F64);
  const Tensor dx_half = ops::linear_backward_dx(w, gy);
  ops::linear_backward_dw(x, gy, dw_half);
  ops::linear_backward(x, w, gy, dw_whole);
  EXPECT_EQ(dx_half.shape(), x.shape());
  for (int64_t i = 0; i < dx.numel(); ++i) EXPECT_EQ(dx_half.item(i), dx.item(i)) << i;
  for (int64_t i = 0; i < dw.numel(); ++i) EXPECT_EQ(dw_half.item(i), dw_whole.item(i)) << i;
  Tensor bad_dw = Tensor::zeros({3, 5}, DType::F64);  // 3 outputs where dy has 4
  EXPECT_TRUE(contains(error_of([&] { ops::linear_backward_dw(x, gy, bad_dw); }), "do not match dw"));
}

TEST(OpsGrad, Embedding) {
  Tensor ids = Tensor::empty({5}, DType::I32);
  int vals[5] = {3, 0, 3, 6, 1};
  for (int i = 0; i < 5; ++i) ids.set(i, vals[i]);
  Tensor table = randn({7, 4}, 1), gy = randn({5, 4}, 2);
  Tensor dt = Tensor::zeros(table.shape(), DType::F64);
  ops::embedding_backward(ids, gy, dt);
  check_grad("dtable", [&] { return dot(ops::embedding(ids, table), gy); }, table, dt);
}

// A token id outside the vocabulary is an error naming it and its position, from the op and
// from the host check the model runs before uploading ids to a GPU; ids_checked skips the op's.
TEST(OpsGrad, EmbeddingRejectsOutOfRangeIds) {
  Tensor ids = Tensor::empty({6}, DType::I32);
  for (int i = 0; i < 6; ++i) ids.set(i, i == 4 ? 7 : i);
  const Tensor table = randn({7, 3}, 1);
  const std::string want = "token id 7 at position 4 is outside the vocabulary [0, 7)";
  EXPECT_TRUE(contains(error_of([&] { ops::embedding(ids, table); }), want));
  EXPECT_TRUE(contains(error_of([&] { check_token_ids(ids, 7); }), want));
  ids.set(4, -1);
  EXPECT_TRUE(contains(error_of([&] { check_token_ids(ids, 7); }), "token id -1 at position 4"));
  ids.set(4, 6);
  check_token_ids(ids, 7);
  EXPECT_EQ(ops::embedding(ids, table, /*ids_checked=*/true).item(4 * 3 + 1), table.item(6 * 3 + 1));
}

TEST(OpsGrad, RMSNorm) {
  Tensor x = randn({3, 8}, 1), w = randn({8}, 2), gy = randn({3, 8}, 3);
  Tensor rstd, dw = Tensor::zeros({8}, DType::F64);
  ops::rmsnorm(x, w, 1e-6, &rstd);
  Tensor dx = ops::rmsnorm_backward(x, w, rstd, gy, dw);
  auto loss = [&] { return dot(ops::rmsnorm(x, w, 1e-6, nullptr), gy); };
  check_grad("dx", loss, x, dx);
  check_grad("dw", loss, w, dw);
}

// add_rmsnorm's sum feeds both the norm and the residual path (gs): the backward is
// rmsnorm_backward with that path's gradient added, for both addends.
TEST(OpsGrad, AddRMSNormAndResidualBackward) {
  Tensor a = randn({3, 8}, 1), b = randn({3, 8}, 4), w = randn({8}, 2), gy = randn({3, 8}, 3), gs = randn({3, 8}, 5);
  Tensor sum, rstd, dw = Tensor::zeros({8}, DType::F64);
  const Tensor y = ops::add_rmsnorm(a, b, w, 1e-6, sum, &rstd);
  EXPECT_EQ(rel_l2(sum, ops::add(a, b)), 0.0);
  EXPECT_LE(rel_l2(y, ops::rmsnorm(ops::add(a, b), w, 1e-6, nullptr)), 1e-15);
  const Tensor dsum = ops::rmsnorm_backward(sum, w, rstd, gy, dw, gs);
  auto loss = [&] {
    Tensor s;
    const Tensor out = ops::add_rmsnorm(a, b, w, 1e-6, s, nullptr);
    return dot(out, gy) + dot(s, gs);
  };
  check_grad("da", loss, a, dsum);
  check_grad("db", loss, b, dsum);
  check_grad("dw", loss, w, dw);
}

TEST(OpsGrad, L2Norm) {
  Tensor x = randn({4, 2, 6}, 1), gy = randn({4, 2, 6}, 3);
  Tensor dx = ops::l2norm_backward(x, 0.4, gy);
  check_grad("dx", [&] { return dot(ops::l2norm(x, 0.4), gy); }, x, dx);
}

TEST(OpsGrad, GatedRMSNorm) {
  Tensor o = randn({3, 2, 6}, 1), z = randn({3, 2, 6}, 2), w = randn({6}, 3), gy = randn({3, 2, 6}, 4);
  Tensor d_o, dz, dw = Tensor::zeros({6}, DType::F64);
  ops::gated_rmsnorm_backward(o, z, w, 1e-5, gy, d_o, dz, dw);
  auto loss = [&] { return dot(ops::gated_rmsnorm(o, z, w, 1e-5), gy); };
  check_grad("do", loss, o, d_o);
  check_grad("dz", loss, z, dz);
  check_grad("dw", loss, w, dw);
  // With y, the same pass rebuilds the forward's output, bit for bit.
  Tensor d_o2, dz2, dw2 = Tensor::zeros({6}, DType::F64), y;
  ops::gated_rmsnorm_backward(o, z, w, 1e-5, gy, d_o2, dz2, dw2, &y);
  const Tensor want = ops::gated_rmsnorm(o, z, w, 1e-5);
  for (int64_t i = 0; i < want.numel(); ++i) EXPECT_EQ(y.item(i), want.item(i)) << i;
  for (int64_t i = 0; i < d_o.numel(); ++i) EXPECT_EQ(d_o2.item(i), d_o.item(i)) << i;
}

TEST(OpsGrad, SwiGLU) {
  Tensor g = randn({3, 7}, 1, 2.0), u = randn({3, 7}, 2), gy = randn({3, 7}, 3);
  Tensor dg, du;
  ops::swiglu_backward(g, u, gy, dg, du);
  auto loss = [&] { return dot(ops::swiglu(g, u), gy); };
  check_grad("dg", loss, g, dg);
  check_grad("du", loss, u, du);
  // With h, the same pass rebuilds the forward's output.
  Tensor dg2, du2, h;
  ops::swiglu_backward(g, u, gy, dg2, du2, &h);
  const Tensor want = ops::swiglu(g, u);
  for (int64_t i = 0; i < want.numel(); ++i) {
    EXPECT_EQ(h.item(i), want.item(i)) << i;
    EXPECT_EQ(dg2.item(i), dg.item(i)) << i;
    EXPECT_EQ(du2.item(i), du.item(i)) << i;
  }
}

TEST(OpsGrad, SigmoidGatePerChannelAndPerHead) {
  for (bool per_head : {false, true}) {
    Tensor a = randn({2, 3, 2, 4}, 1), gy = randn({2, 3, 2, 4}, 3);
    Tensor z = per_head ? randn({2, 3, 2}, 2) : randn({2, 3, 8}, 2);
    Tensor da, dz;
    ops::sigmoid_gate_backward(a, z, gy, da, dz);
    auto loss = [&] { return dot(ops::sigmoid_gate(a, z), gy); };
    check_grad("da", loss, a, da);
    check_grad("dz", loss, z, dz);
    Tensor da2, dz2, y;  // with y, the same pass rebuilds the forward's output, bit for bit
    ops::sigmoid_gate_backward(a, z, gy, da2, dz2, &y);
    const Tensor want = ops::sigmoid_gate(a, z);
    for (int64_t i = 0; i < want.numel(); ++i) EXPECT_EQ(y.item(i), want.item(i)) << i;
    for (int64_t i = 0; i < dz.numel(); ++i) EXPECT_EQ(dz2.item(i), dz.item(i)) << i;
  }
}

TEST(OpsGrad, GdnGates) {
  Tensor a = randn({2, 5, 3}, 1, 2.0), b = randn({2, 5, 3}, 2, 2.0);
  Tensor A_log = uniform({3}, 3, -1, 2), dt = randn({3}, 4);
  Tensor wb = randn({2, 5, 3}, 5), wg = randn({2, 5, 3}, 6);
  Tensor da, db, dA = Tensor::zeros({3}, DType::F64), ddt = Tensor::zeros({3}, DType::F64);
  ops::gdn_gates_backward(a, b, A_log, dt, wb, wg, da, db, dA, ddt);
  auto loss = [&] {
    Tensor beta, g;
    ops::gdn_gates(a, b, A_log, dt, beta, g);
    return dot(beta, wb) + dot(g, wg);
  };
  check_grad("da", loss, a, da);
  check_grad("db", loss, b, db);
  check_grad("dA_log", loss, A_log, dA);
  check_grad("ddt_bias", loss, dt, ddt);
}

TEST(OpsGrad, RoPE) {
  Tensor x = randn({2, 5, 3, 8}, 1), gy = randn({2, 5, 3, 8}, 2);
  Tensor dx = ops::rope_backward(gy, 100.0, 3);
  check_grad("dx", [&] { return dot(ops::rope(x, 100.0, 3), gy); }, x, dx);
}

TEST(OpsGrad, RoPEIsARotationAndMatchesClosedForm) {
  // position 0 is the identity; norm per pair is preserved; a hand-computed pair.
  Tensor x = randn({1, 2, 1, 4}, 1);
  Tensor y = ops::rope(x, 10000.0, 0);
  for (int i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(y.item(i), x.item(i));
  // t = 1, channel 0 pairs with channel 2, frequency theta^0 = 1.
  const double x0 = x.item(4), x2 = x.item(6);
  EXPECT_NEAR(y.item(4), x0 * std::cos(1.0) - x2 * std::sin(1.0), 1e-12);
  EXPECT_NEAR(y.item(6), x2 * std::cos(1.0) + x0 * std::sin(1.0), 1e-12);
}

TEST(OpsGrad, AttentionFullWindowGqa) {
  for (int64_t window : {0, 1, 3}) {
    Tensor q = randn({2, 6, 4, 3}, 1), k = randn({2, 6, 2, 3}, 2), v = randn({2, 6, 2, 3}, 3);
    Tensor gy = randn({2, 6, 4, 3}, 4), lse;
    Tensor o = ops::attention(q, k, v, window, 0.5, &lse);
    Tensor dq, dk, dv;
    ops::attention_backward(q, k, v, o, lse, gy, window, 0.5, dq, dk, dv);
    auto loss = [&] { return dot(ops::attention(q, k, v, window, 0.5, nullptr), gy); };
    SCOPED_TRACE(window);
    check_grad("dq", loss, q, dq);
    check_grad("dk", loss, k, dk);
    check_grad("dv", loss, v, dv);
  }
}

TEST(OpsGrad, AttentionWindowOneCopiesValue) {
  // A window of 1 sees only itself: the output is exactly v (per kv group).
  Tensor q = randn({1, 4, 2, 3}, 1), k = randn({1, 4, 1, 3}, 2), v = randn({1, 4, 1, 3}, 3);
  Tensor o = ops::attention(q, k, v, 1, 1.0, nullptr);
  for (int t = 0; t < 4; ++t)
    for (int h = 0; h < 2; ++h)
      for (int c = 0; c < 3; ++c) EXPECT_NEAR(o.item((t * 2 + h) * 3 + c), v.item(t * 3 + c), 1e-12);
}

TEST(OpsGrad, ConvSilu) {
  Tensor x = randn({2, 6, 3}, 1), w = randn({3, 4}, 2), gy = randn({2, 6, 3}, 3);
  Tensor dw = Tensor::zeros({3, 4}, DType::F64);
  Tensor dx = ops::conv_silu_backward(x, w, gy, dw);
  auto loss = [&] { return dot(ops::conv_silu(x, w), gy); };
  check_grad("dx", loss, x, dx);
  check_grad("dw", loss, w, dw);
}

// GDN's q / k path: the conv, then the L2 norm over heads of 4 channels (C 8: two heads).
TEST(OpsGrad, ConvSiluL2norm) {
  Tensor x = randn({2, 6, 8}, 1), w = randn({8, 4}, 2), gy = randn({2, 6, 8}, 3);
  Tensor dw = Tensor::zeros({8, 4}, DType::F64);
  Tensor dx = ops::conv_silu_l2norm_backward(x, w, 4, 0.7, gy, dw);
  auto loss = [&] { return dot(ops::conv_silu_l2norm(x, w, 4, 0.7), gy); };
  check_grad("dx", loss, x, dx);
  check_grad("dw", loss, w, dw);
}

TEST(OpsGrad, CrossEntropyWithIgnoredRows) {
  Tensor logits = randn({4, 6}, 1, 2.0), tg = Tensor::empty({4}, DType::I32);
  int vals[4] = {2, -1, 5, 0};
  for (int i = 0; i < 4; ++i) tg.set(i, vals[i]);
  Tensor dl;
  const double l = ops::cross_entropy(logits, tg, &dl, 1.0);
  // hand check of the loss: mean over 3 rows of lse - logit[target]
  double expect = 0;
  for (int r : {0, 2, 3}) {
    double s = 0;
    for (int j = 0; j < 6; ++j) s += std::exp(logits.item(r * 6 + j));
    expect += std::log(s) - logits.item(r * 6 + vals[r]);
  }
  EXPECT_NEAR(l, expect / 3, 1e-12);
  check_grad("dlogits", [&] { return ops::cross_entropy(logits, tg, nullptr); }, logits, dl);
  for (int j = 0; j < 6; ++j) EXPECT_EQ(dl.item(6 + j), 0.0);  // ignored row has no gradient
}

TEST(OpsGrad, GdnCoreRecurrentAndChunked) {
  // The GDN core through the op wrappers: recurrent backward vs finite differences,
  // including GVA (2 value heads per key head) and an initial state.
  const int64_t B = 1, L = 5, H = 1, HV = 2, K = 3, V = 2;
  Tensor q = ops::l2norm(randn({B, L, H, K}, 1), 1 / std::sqrt(3.0)), k = ops::l2norm(randn({B, L, H, K}, 2), 1.0);
  Tensor v = randn({B, L, HV, V}, 3), beta = uniform({B, L, HV}, 4, 0.1, 0.9), g = uniform({B, L, HV}, 5, -1, 0);
  Tensor h0 = randn({B, HV, K, V}, 6), wo = randn({B, L, HV, V}, 7), wh = randn({B, HV, K, V}, 8);
  for (bool chunked : {false, true}) {
    SCOPED_TRACE(chunked);
    auto loss = [&] {
      Tensor hT;
      Tensor o = ops::gdn(q, k, v, beta, g, h0, &hT, chunked);
      return dot(o, wo) + dot(hT, wh);
    };
    ops::GdnGrads gr = ops::gdn_backward(q, k, v, beta, g, h0, wo, wh, chunked);
    check_grad("dq", loss, q, gr.dq);
    check_grad("dk", loss, k, gr.dk);
    check_grad("dv", loss, v, gr.dv);
    check_grad("dbeta", loss, beta, gr.dbeta);
    check_grad("dg", loss, g, gr.dg);
    check_grad("dh0", loss, h0, gr.dh0);
  }
}

TEST(Ops, AdamWMatchesClosedFormFirstStep) {
  // After one step from zero moments, the update is lr * (sign(g) + wd * p) up to eps.
  Tensor p = randn({5}, 1), g = randn({5}, 2), m = Tensor::zeros({5}, DType::F64), v = Tensor::zeros({5}, DType::F64);
  Tensor p0 = p.clone();
  ops::adamw_step(p, g, m, v, {0.1, 0.9, 0.95, 1e-12, 0.1, 1});
  for (int i = 0; i < 5; ++i) {
    const double s = g.item(i) > 0 ? 1.0 : -1.0;
    EXPECT_NEAR(p.item(i), p0.item(i) - 0.1 * (s + 0.1 * p0.item(i)), 1e-9);
  }
}

// Clipping inside the update equals scaling the gradient first.
TEST(Ops, AdamWClipsWithTheGivenNorm) {
  const Tensor g = randn({7}, 2), norm_sq = Tensor::full({1}, 16.0, DType::F64);  // norm 4
  Tensor p1 = randn({7}, 1), m1 = randn({7}, 3, 0.1), v1 = uniform({7}, 4, 0.0, 0.1);
  Tensor p2 = p1.clone(), m2 = m1.clone(), v2 = v1.clone(), g2 = g.clone();
  ops::adamw_step(p1, g, m1, v1, {0.1, 0.9, 0.95, 1e-8, 0.1, 3, 2.0, &norm_sq});
  for (int64_t i = 0; i < 7; ++i) g2.set(i, g.item(i) * 0.5);  // max_norm 2 / norm 4
  ops::adamw_step(p2, g2, m2, v2, {0.1, 0.9, 0.95, 1e-8, 0.1, 3});
  for (int64_t i = 0; i < 7; ++i) {
    EXPECT_NEAR(p1.item(i), p2.item(i), 1e-15);
    EXPECT_NEAR(m1.item(i), m2.item(i), 1e-15);
  }
  Tensor p3 = randn({7}, 1), p4 = p3.clone(), m3 = Tensor::zeros({7}, DType::F64), v3 = m3.clone(), m4 = m3.clone(),
         v4 = m3.clone();
  ops::adamw_step(p3, g, m3, v3, {0.1, 0.9, 0.95, 1e-8, 0.1, 1, 10.0, &norm_sq});  // norm below max: untouched
  ops::adamw_step(p4, g, m4, v4, {0.1, 0.9, 0.95, 1e-8, 0.1, 1});
  for (int64_t i = 0; i < 7; ++i) EXPECT_EQ(p3.item(i), p4.item(i));
}

TEST(Ops, BadShapesAreClearErrors) {
  Tensor x = randn({2, 5}, 1), w = randn({4, 6}, 2);
  try {
    ops::linear(x, w);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match weight"), std::string::npos) << e.what();
  }
  Tensor ids = Tensor::full({1}, 9, DType::I32), table = randn({4, 2}, 3);
  EXPECT_THROW(ops::embedding(ids, table), Error);
  EXPECT_THROW(Tensor::empty({int64_t(1) << 40, int64_t(1) << 40}), Error);  // size overflows 64 bits
  EXPECT_THROW(Tensor::empty({2, -1}), Error);
}
