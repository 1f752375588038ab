// Fused input projections (FusedProj) on the CPU reference: linear_split and its packed
// backward, the backward ops that write into a column block (ColBlock) of a packed gradient,
// and whole models run through the fused path (packed in F64 with Fusion::Always) against
// finite differences and against the unfused path.
#include <gtest/gtest.h>

#include <string>

#include "gradcheck.h"
#include "model_util.h"
#include "model/looped_model.h"
#include "ops/ops.h"

using namespace lt2;
using namespace lt2::test;

namespace {

constexpr double kSentinel = 7.25;

// A [rows, ld] tensor filled with a sentinel, for blocks to be written into.
Tensor sentinel(int64_t rows, int64_t ld) { return Tensor::full({rows, ld}, kSentinel, DType::F64); }

// Columns [col, col + w) of t [rows, ld], as a [rows, w] tensor.
Tensor cols(const Tensor& t, int64_t col, int64_t w) {
  const int64_t rows = t.dim(0), ld = t.dim(1);
  Tensor out = Tensor::empty({rows, w}, t.dtype());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < w; ++c) out.set(r * w + c, t.item(r * ld + col + c));
  return out;
}

// The block holds exactly `want` (same code on the CPU, so bit for bit) and every other
// column still holds the sentinel.
void expect_block(const Tensor& t, int64_t col, const Tensor& want, const std::string& what) {
  const int64_t rows = t.dim(0), ld = t.dim(1), w = want.numel() / rows;
  int bad = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < ld; ++c) {
      const bool in = c >= col && c < col + w;
      const double got = t.item(r * ld + c), exp = in ? want.item(r * w + c - col) : kSentinel;
      if (got != exp && bad++ < 5) ADD_FAILURE() << what << " [" << r << ", " << c << "]: " << got << " vs " << exp;
    }
}

}  // namespace

// y[i] = x W_i^T for the row blocks W_i, and the documented backward: linear_backward on the
// packed weight with the parts' output gradients side by side.
TEST(FusedProj, LinearSplitAndItsPackedBackward) {
  const int64_t parts = 3, N = 4, K = 5;
  Tensor x = randn({2, 3, K}, 1), w = randn({parts * N, K}, 2), gy = randn({parts, 2, 3, N}, 3);
  const Tensor y = ops::linear_split(x, w, parts);
  ASSERT_EQ(y.shape(), (Shape{parts, 2, 3, N}));
  for (int64_t i = 0; i < parts; ++i) {
    const Tensor want = ops::linear(x, w.narrow(i * N, N));
    for (int64_t j = 0; j < want.numel(); ++j) ASSERT_DOUBLE_EQ(y.select(i).item(j), want.item(j)) << i << " " << j;
  }
  Tensor dY = Tensor::empty({2, 3, parts * N}, DType::F64);  // gy's parts side by side
  for (int64_t i = 0; i < parts; ++i)
    for (int64_t r = 0; r < 6; ++r)
      for (int64_t c = 0; c < N; ++c) dY.set(r * parts * N + i * N + c, gy.item((i * 6 + r) * N + c));
  Tensor dw = Tensor::zeros(w.shape(), DType::F64);
  const Tensor dx = ops::linear_backward(x, w, dY, dw);
  auto loss = [&] { return dot(ops::linear_split(x, w, parts), gy); };
  check_grad("dx", loss, x, dx);
  check_grad("dw", loss, w, dw);
  EXPECT_THROW(ops::linear_split(x, randn({10, K}, 4), 3), Error);
}

// RoPE into a block: in place over x's own storage, and its backward into a wider gradient at
// a column offset (finite differences on what the block received).
TEST(FusedProj, RopeIntoColumnBlocks) {
  const int64_t B = 2, L = 5, H = 2, D = 6, ld = 3 * H * D + 1, col = H * D + 1;
  Tensor x = randn({B, L, H, D}, 1), gy = randn({B, L, H, D}, 2);
  const Tensor want = ops::rope(x, 100.0, 3);
  Tensor xi = x.clone();
  const ColBlock self{xi.reshape({B * L, H * D}), 0};
  EXPECT_FALSE(ops::rope(xi, 100.0, 3, &self).defined());
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_DOUBLE_EQ(xi.item(i), want.item(i)) << "in place, element " << i;

  Tensor dY = sentinel(B * L, ld);
  const ColBlock out{dY, col};
  EXPECT_FALSE(ops::rope_backward(gy, 100.0, 3, &out).defined());
  expect_block(dY, col, ops::rope_backward(gy, 100.0, 3), "rope_backward block");
  check_grad("dx", [&] { return dot(ops::rope(x, 100.0, 3), gy); }, x, cols(dY, col, H * D).reshape(x.shape()));
  const ColBlock too_far{dY, ld - H * D + 1};
  EXPECT_THROW(ops::rope_backward(gy, 100.0, 3, &too_far), Error);
}

TEST(FusedProj, SigmoidGateDzIntoColumnBlock) {
  const int64_t B = 2, L = 3, H = 2, D = 4;
  for (bool per_head : {false, true}) {
    SCOPED_TRACE(per_head ? "per head" : "per channel");
    const int64_t w = per_head ? H : H * D, ld = 2 * w + 3, col = w + 2;
    Tensor a = randn({B, L, H, D}, 1), gy = randn({B, L, H, D}, 2);
    Tensor z = per_head ? randn({B, L, H}, 3) : randn({B, L, H * D}, 3);
    Tensor da, dz, da_ref, dz_ref, y;
    ops::sigmoid_gate_backward(a, z, gy, da_ref, dz_ref);
    Tensor dY = sentinel(B * L, ld);
    const ColBlock out{dY, col};
    ops::sigmoid_gate_backward(a, z, gy, da, dz, &y, &out);
    EXPECT_FALSE(dz.defined());
    expect_block(dY, col, dz_ref, "dz block");
    auto loss = [&] { return dot(ops::sigmoid_gate(a, z), gy); };
    check_grad("da", loss, a, da);
    check_grad("dz", loss, z, cols(dY, col, w).reshape(z.shape()));
  }
}

TEST(FusedProj, SwigluGradientsIntoColumnBlocks) {
  const int64_t rows = 6, N = 5, ld = 2 * N + 1;
  Tensor g = randn({2, 3, N}, 1, 2.0), u = randn({2, 3, N}, 2), gy = randn({2, 3, N}, 3);
  Tensor dg, du, h, dg_ref, du_ref;
  ops::swiglu_backward(g, u, gy, dg_ref, du_ref);
  Tensor dY = sentinel(rows, ld);
  const ColBlock dg_out{dY, 0}, du_out{dY, N + 1};  // a gap column stays untouched
  ops::swiglu_backward(g, u, gy, dg, du, &h, &dg_out, &du_out);
  EXPECT_FALSE(dg.defined() || du.defined());
  Tensor both = sentinel(rows, ld);  // what dY must hold: both blocks, the gap unchanged
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < N; ++c) both.set(r * ld + c, dg_ref.item(r * N + c)), both.set(r * ld + N + 1 + c, du_ref.item(r * N + c));
  for (int64_t i = 0; i < dY.numel(); ++i) ASSERT_DOUBLE_EQ(dY.item(i), both.item(i)) << i;
  auto loss = [&] { return dot(ops::swiglu(g, u), gy); };
  check_grad("dg", loss, g, cols(dY, 0, N).reshape(g.shape()));
  check_grad("du", loss, u, cols(dY, N + 1, N).reshape(u.shape()));
}

TEST(FusedProj, AttentionDvIntoColumnBlock) {
  const int64_t B = 2, L = 6, H = 4, Hkv = 2, D = 3, w = Hkv * D, ld = 3 * w, col = 2 * w;
  Tensor q = randn({B, L, H, D}, 1), k = randn({B, L, Hkv, D}, 2), v = randn({B, L, Hkv, D}, 3);
  Tensor gy = randn({B, L, H, D}, 4), lse;
  const Tensor o = ops::attention(q, k, v, 0, 0.5, &lse);
  Tensor dq, dk, dv, dq2, dk2, dv_ref;
  ops::attention_backward(q, k, v, o, lse, gy, 0, 0.5, dq, dk, dv_ref);
  Tensor dY = sentinel(B * L, ld);
  const ColBlock out{dY, col};
  ops::attention_backward(q, k, v, o, lse, gy, 0, 0.5, dq2, dk2, dv, &out);
  EXPECT_FALSE(dv.defined());
  expect_block(dY, col, dv_ref, "dv block");
  check_grad("dv", [&] { return dot(ops::attention(q, k, v, 0, 0.5, nullptr), gy); }, v,
             cols(dY, col, w).reshape(v.shape()));
}

// GDN's fused pairs: the convs' dx into the q, k / v block of a packed gradient (dw still
// accumulated), the gated norm's dz (z [B, L, H, D]: H·D columns a row) into the g block.
TEST(FusedProj, ConvSiluDxIntoColumnBlock) {
  const int64_t B = 2, L = 6, C = 8, ld = 2 * C + 1, col = C + 1;
  Tensor x = randn({B, L, C}, 1), w = randn({C, 4}, 2), gy = randn({B, L, C}, 3);
  for (bool norm : {false, true}) {
    SCOPED_TRACE(norm ? "conv_silu_l2norm" : "conv_silu");
    auto back = [&](Tensor& dw, const ColBlock* out) {
      return norm ? ops::conv_silu_l2norm_backward(x, w, 4, 0.7, gy, dw, out) : ops::conv_silu_backward(x, w, gy, dw, out);
    };
    Tensor dw_ref = Tensor::zeros({C, 4}, DType::F64), dw = Tensor::zeros({C, 4}, DType::F64);
    const Tensor dx_ref = back(dw_ref, nullptr);
    Tensor dY = sentinel(B * L, ld);
    const ColBlock out{dY, col};
    EXPECT_FALSE(back(dw, &out).defined());
    expect_block(dY, col, dx_ref, "dx block");
    for (int64_t i = 0; i < dw.numel(); ++i) ASSERT_EQ(dw.item(i), dw_ref.item(i)) << "dw " << i;
    auto loss = [&] { return dot(norm ? ops::conv_silu_l2norm(x, w, 4, 0.7) : ops::conv_silu(x, w), gy); };
    check_grad("dx", loss, x, cols(dY, col, C).reshape(x.shape()));
    const ColBlock too_far{dY, ld - C + 1};
    EXPECT_THROW(back(dw, &too_far), Error);
  }
}

TEST(FusedProj, GatedRmsnormDzIntoColumnBlock) {
  const int64_t B = 2, L = 3, H = 2, D = 6, w = H * D, ld = 2 * w + 3, col = w + 2;
  Tensor o = randn({B, L, H, D}, 1), z = randn({B, L, H, D}, 2), nw = randn({D}, 3), gy = randn({B, L, H, D}, 4);
  Tensor do_ref, dz_ref, d_o, dz, y, y_ref;
  Tensor dw_ref = Tensor::zeros({D}, DType::F64), dw = Tensor::zeros({D}, DType::F64);
  ops::gated_rmsnorm_backward(o, z, nw, 1e-5, gy, do_ref, dz_ref, dw_ref, &y_ref);
  Tensor dY = sentinel(B * L, ld);
  const ColBlock out{dY, col};
  ops::gated_rmsnorm_backward(o, z, nw, 1e-5, gy, d_o, dz, dw, &y, &out);
  EXPECT_FALSE(dz.defined());
  expect_block(dY, col, dz_ref, "dz block");
  for (int64_t i = 0; i < d_o.numel(); ++i) ASSERT_EQ(d_o.item(i), do_ref.item(i)) << "do " << i;
  for (int64_t i = 0; i < y.numel(); ++i) ASSERT_EQ(y.item(i), y_ref.item(i)) << "y " << i;
  for (int64_t i = 0; i < D; ++i) ASSERT_EQ(dw.item(i), dw_ref.item(i)) << "dw " << i;
  check_grad("dz", [&] { return dot(ops::gated_rmsnorm(o, z, nw, 1e-5), gy); }, z,
             cols(dY, col, w).reshape(z.shape()));
  // Blocks the result does not fill evenly (B L + 1 rows), or that end past the tensor's last column.
  const ColBlock bad{sentinel(B * L + 1, ld), 0}, too_far{dY, ld - w + 1};
  EXPECT_THROW(ops::gated_rmsnorm_backward(o, z, nw, 1e-5, gy, d_o, dz, dw, nullptr, &bad), Error);
  EXPECT_THROW(ops::gated_rmsnorm_backward(o, z, nw, 1e-5, gy, d_o, dz, dw, nullptr, &too_far), Error);
}

namespace {

// A tiny config whose attention layers fuse (as many kv heads as query heads, per-channel gate).
ModelConfig fusable_config() {
  ModelConfig c = tiny_config("full,gdn,window(3)", 3, 2);
  c.num_key_value_heads = c.num_attention_heads;
  return c;
}

// Whether a's compute copy and b's are consecutive row blocks of one buffer.
bool packed_together(const Param& a, const Param& b) {
  return a.compute.defined() && b.compute.defined() && a.compute.bytes() + a.compute.nbytes() == b.compute.bytes();
}

}  // namespace

// Fusion::Always packs the F64 model; the fused path then gives the unfused path's loss and
// gradients (to rounding) and matches finite differences on a sample of every fused part.
TEST(FusedProj, ModelFusedPathMatchesUnfusedAndFiniteDifferences) {
  const ModelConfig cfg = fusable_config();
  cfg.validate("test");
  LoopedModel fused(cfg, DType::F64), plain(cfg, DType::F64);
  randomize(fused, 3);
  randomize(plain, 3);
  fused.set_fusion(LoopedModel::Fusion::Always);
  plain.set_fusion(LoopedModel::Fusion::Off);
  const std::string l0 = "model.layers.0.", ff = "model.layers.1.mlp.";
  Param* q = fused.find(l0 + "attn.q_proj.weight");
  ASSERT_NE(q, nullptr) << "parameter names changed: update this test";
  EXPECT_TRUE(packed_together(*q, *fused.find(l0 + "attn.k_proj.weight")));
  EXPECT_TRUE(packed_together(*fused.find(l0 + "attn.v_proj.weight"), *fused.find(l0 + "attn.g_proj.weight")));
  EXPECT_TRUE(packed_together(*fused.find(ff + "gate_proj.weight"), *fused.find(ff + "up_proj.weight")));
  const std::string g1 = "model.layers.1.attn.";  // the GDN layer: (q, k) and (v, g), a and b apart
  EXPECT_TRUE(packed_together(*fused.find(g1 + "q_proj.weight"), *fused.find(g1 + "k_proj.weight")));
  EXPECT_TRUE(packed_together(*fused.find(g1 + "v_proj.weight"), *fused.find(g1 + "g_proj.weight")));
  EXPECT_FALSE(fused.find(g1 + "a_proj.weight")->compute.defined());
  EXPECT_FALSE(fused.find(g1 + "b_proj.weight")->compute.defined());
  EXPECT_FALSE(plain.find(l0 + "attn.q_proj.weight")->compute.defined());
  EXPECT_EQ(fused.packed_projections(), 7);  // 2 attention layers (full, window), 2 GDN pairs, 3 FFNs
  EXPECT_EQ(plain.packed_projections(), 0);

  Tensor ids = Tensor::empty({2, 5}, DType::I32);
  for (int64_t i = 0; i < ids.numel(); ++i) ids.set(i, double((i * 7 + 3) % 11));
  const Tensor W = randn({2, 5, cfg.vocab_size}, 4);
  for (LoopedModel* m : {&fused, &plain}) {
    m->zero_grad();
    LoopedModel::Ctx ctx;
    m->forward(ids, &ctx);
    m->backward(ctx, W);
  }
  for (size_t i = 0; i < fused.params().size(); ++i) {
    const Param& a = *fused.params()[i];
    const Param& b = *plain.params()[i];
    EXPECT_LE(rel_l2(a.grad, b.grad), 1e-12) << a.name;
  }
  // Finite differences through the packed copies: refresh them after each perturbation.
  auto loss = [&] {
    fused.refresh_compute();
    return dot(fused.forward(ids, nullptr), W);
  };
  for (const std::string& name : {l0 + "attn.q_proj.weight", l0 + "attn.k_proj.weight",
                                  l0 + "attn.v_proj.weight", l0 + "attn.g_proj.weight",
                                  ff + "gate_proj.weight", ff + "up_proj.weight", g1 + "q_proj.weight",
                                  g1 + "k_proj.weight", g1 + "v_proj.weight", g1 + "g_proj.weight"}) {
    Param& p = *fused.find(name);
    const Tensor ana = p.grad.clone();
    for (int64_t i = 0; i < p.value.numel(); i += 5) {
      const double x0 = p.value.item(i), eps = 1e-5;
      p.value.set(i, x0 + eps);
      const double lp = loss();
      p.value.set(i, x0 - eps);
      const double lm = loss();
      p.value.set(i, x0);
      const double num = (lp - lm) / (2 * eps);
      EXPECT_NEAR(ana.item(i), num, 1e-6 + 1e-5 * std::abs(num)) << name << "[" << i << "]";
    }
  }
  fused.refresh_compute();
}

// Off again: every part gets its own gradient back, with what it held while packed.
TEST(FusedProj, UnpackKeepsGradients) {
  LoopedModel m(fusable_config(), DType::F64);
  randomize(m, 5);
  m.set_fusion(LoopedModel::Fusion::Always);
  Param& k = *m.find("model.layers.0.attn.k_proj.weight");
  k.grad.fill(0.5);
  m.set_fusion(LoopedModel::Fusion::Off);
  EXPECT_EQ(m.packed_projections(), 0);
  EXPECT_FALSE(k.compute.defined());
  EXPECT_DOUBLE_EQ(k.grad.item(0), 0.5);
  EXPECT_DOUBLE_EQ(k.grad.item(k.grad.numel() - 1), 0.5);
  m.zero_grad();
  EXPECT_DOUBLE_EQ(m.find("model.layers.0.attn.q_proj.weight")->grad.item(0), 0.0);
}
