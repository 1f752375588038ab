// gdn_step (one decode step, state updated in place) against the float64 token-by-token
// recurrence: step by step against ops::gdn with L = 1 carrying its own state, and over the
// whole walk against one ops::gdn call on all tokens. Grouped value heads (3 per key head),
// a non-zero initial state, odd K and V, and exactly-zero decay steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "error_util.h"
#include "gdn_inputs.h"
#include "gradcheck.h"
#include "ops/ops.h"

using namespace lt2;
using namespace lt2::test;

TEST(GdnStep, MatchesRecurrenceStepByStepF64) {
  const GdnCase c{2, 6, 2, 6, 7, 9, Decay::ZeroSteps, true, false};
  const GdnInputs w = make_gdn_inputs(c, 101);
  Tensor state = w.h0.clone(), h_ref = w.h0.clone();
  const std::byte* state_mem = state.bytes();
  double worst_o = 0, worst_h = 0;
  std::vector<Tensor> outs;
  for (int64_t t = 0; t < c.L; ++t) {
    const Tensor qt = token(w.q, t), kt = token(w.k, t), vt = token(w.v, t), bt = token(w.beta, t),
                 gt = token(w.g, t);
    Tensor h_next;
    const Tensor o_ref = ops::gdn(qt, kt, vt, bt, gt, h_ref, &h_next, /*chunked=*/false);
    h_ref = h_next;
    const Tensor o = ops::gdn_step(qt, kt, vt, bt, gt, state);
    ASSERT_EQ(o.shape(), (Shape{c.B, 1, c.HV, c.V}));
    EXPECT_EQ(o.dtype(), DType::F64);
    EXPECT_EQ(state.bytes(), state_mem) << "the state must be updated in place";
    const double eo = rel_l2(o, o_ref), eh = rel_l2(state, h_ref);
    EXPECT_LE(eo, 1e-12) << "o at step " << t;
    EXPECT_LE(eh, 1e-12) << "state after step " << t;
    worst_o = std::max(worst_o, eo);
    worst_h = std::max(worst_h, eh);
    outs.push_back(o);
  }
  // The steps, chained, are the recurrence over the whole walk.
  Tensor hT;
  const Tensor o_all = ops::gdn(w.q, w.k, w.v, w.beta, w.g, w.h0, &hT, /*chunked=*/false);
  const double eT = rel_l2(state, hT);
  EXPECT_LE(eT, 1e-12) << "final state vs one gdn call over all tokens";
  for (int64_t t = 0; t < c.L; ++t) {
    const double e = rel_l2(outs[size_t(t)], token(o_all, t));
    EXPECT_LE(e, 1e-12) << "o at step " << t << " vs one gdn call";
    worst_o = std::max(worst_o, e);
  }
  // The walk moved the state well away from h0 (a step that did nothing would not pass above,
  // but say so plainly).
  EXPECT_GT(rel_l2(state, w.h0), 1e-2);
  std::printf("[gdn-step] F64 %lld steps: worst rel L2 o %.3g, state %.3g, final state %.3g\n", (long long)c.L,
              worst_o, worst_h, eT);
}

TEST(GdnStep, F32MatchesF64Recurrence) {
  const GdnCase c{3, 4, 1, 2, 16, 12, Decay::ZeroSteps, true, false};
  const GdnInputs w = make_gdn_inputs(c, 202);
  auto f32 = [](const Tensor& x) { return x.to(DType::F32); };
  auto r64 = [](const Tensor& x) { return x.to(DType::F32).to(DType::F64); };  // the same rounded values
  Tensor state = f32(w.h0), h_ref = r64(w.h0);
  double worst_o = 0, worst_h = 0;
  for (int64_t t = 0; t < c.L; ++t) {
    const Tensor qt = token(w.q, t), kt = token(w.k, t), vt = token(w.v, t), bt = token(w.beta, t),
                 gt = token(w.g, t);
    const Tensor o = ops::gdn_step(f32(qt), f32(kt), f32(vt), f32(bt), f32(gt), state);
    EXPECT_EQ(o.dtype(), DType::F32);
    Tensor h_next;
    const Tensor o_ref = ops::gdn(r64(qt), r64(kt), r64(vt), r64(bt), r64(gt), h_ref, &h_next, /*chunked=*/false);
    h_ref = h_next;
    const double eo = rel_l2(o, o_ref), eh = rel_l2(state, h_ref);
    EXPECT_LE(eo, 1e-5) << "o at step " << t;
    EXPECT_LE(eh, 1e-5) << "state after step " << t;
    worst_o = std::max(worst_o, eo);
    worst_h = std::max(worst_h, eh);
  }
  std::printf("[gdn-step] F32 %lld steps vs F64: worst rel L2 o %.3g, state %.3g\n", (long long)c.L, worst_o, worst_h);
}

TEST(GdnStep, RejectsBadInputs) {
  const GdnInputs w = make_gdn_inputs({2, 1, 2, 4, 8, 8, Decay::ZeroSteps, true, false}, 303);
  Tensor wrong_state = Tensor::zeros({2, 4, 8, 9}, DType::F64);
  EXPECT_TRUE(contains(error_of([&] { ops::gdn_step(w.q, w.k, w.v, w.beta, w.g, wrong_state); }), "state"));
  Tensor f32_state = w.h0.to(DType::F32);
  EXPECT_TRUE(contains(error_of([&] { ops::gdn_step(w.q, w.k, w.v, w.beta, w.g, f32_state); }), "dtype"));
  const GdnInputs w2 = make_gdn_inputs({2, 2, 2, 4, 8, 8, Decay::ZeroSteps, true, false}, 304);
  Tensor state = w2.h0.clone();
  EXPECT_TRUE(contains(error_of([&] { ops::gdn_step(w2.q, w2.k, w2.v, w2.beta, w2.g, state); }), "[B, 1"));
}
