// Parity tests of the chunked tensor-core GDN kernels (cuda/gdn_chunked.cu) against the CPU
// token-by-token recurrence (the oracle) run in float64 on the same rounded inputs. Lengths cover
// one partial chunk (63), a chunk plus a tail (75) and long walks (500, 1500, 4096); K 64, 128,
// 256 and odd sizes (37, 45: unvectorised loads, partial value tiles); grouped value heads, strong
// decay, exact alpha = 1 steps, non-zero h0 and a given dhT. Every case runs with both value
// tiles of the scan (32 and 64 columns) and prints its measured errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "gdn_cases.h"
#if LT2_HAVE_CUDA
#include "cuda/gdn_chunked.h"
#endif

using namespace lt2;
using namespace lt2::test;

#if LT2_HAVE_CUDA
namespace {

// Relative L2 distance of a GPU result to the reference; +inf when missing or misplaced.
double distance(const Tensor& got, DType dtype, const Tensor& want, const std::string& what) {
  EXPECT_TRUE(got.defined()) << what << ": missing";
  if (!got.defined()) return INFINITY;
  EXPECT_TRUE(got.on_cuda()) << what << ": not on the GPU";
  EXPECT_EQ(got.dtype(), dtype) << what << ": dtype " << dtype_name(got.dtype());
  EXPECT_EQ(got.shape(), want.shape()) << what;
  if (got.shape() != want.shape()) return INFINITY;
  const double e = rel_l2(got.to(Device::CPU, DType::F64), want);
  return std::isfinite(e) ? e : INFINITY;
}

std::string tag_of(const GdnCase& c, DType dt) {
  const char* decay = c.decay == Decay::Normal ? "normal" : c.decay == Decay::Strong ? "strong" : "zero-steps";
  return cat("B", c.B, " L", c.L, " H", c.H, " HV", c.HV, " K", c.K, " V", c.V, " ", decay, c.with_h0 ? " h0" : "",
             c.with_dhT ? " dhT" : "", " ", dtype_name(dt));
}

// Every output's distance from the float64 recurrence, held to the bounds and printed.
struct GdnErrors {
  double o, hT, dq, dk, dv, dh0, dbeta, dg;
};
void expect_within(const GdnErrors& e, const GdnTols& tol, const std::string& tag) {
  EXPECT_LE(e.o, tol.o) << "o";
  EXPECT_LE(e.hT, tol.hT) << "hT";
  EXPECT_LE(e.dq, tol.dqkv) << "dq";
  EXPECT_LE(e.dk, tol.dqkv) << "dk";
  EXPECT_LE(e.dv, tol.dqkv) << "dv";
  EXPECT_LE(e.dh0, tol.dh0) << "dh0";
  EXPECT_LE(e.dbeta, tol.dgates) << "dbeta";
  EXPECT_LE(e.dg, tol.dgates) << "dg";
  std::printf("[gdn-chunked] %s: o %.2e hT %.2e dq %.2e dk %.2e dv %.2e dh0 %.2e dbeta %.2e dg %.2e\n", tag.c_str(),
              e.o, e.hT, e.dq, e.dk, e.dv, e.dh0, e.dbeta, e.dg);
}

void check(const GdnCase& c, DType dt, uint64_t seed, const GdnTols& tol) {
  const std::string tag = tag_of(c, dt);
  SCOPED_TRACE(tag);
  if (!cuda::gdn_chunked_supported(dt, c.K, c.V)) {
    std::printf("[gdn-chunked] %s: not supported by the chunked kernels (the recurrence serves it)\n", tag.c_str());
    return;
  }
  const GdnInputs in = make_gdn_inputs(c, seed);
  const Tensor qr = rounded(in.q, dt), kr = rounded(in.k, dt), vr = rounded(in.v, dt);
  const Tensor qg = on_gpu(in.q, dt), kg = on_gpu(in.k, dt), vg = on_gpu(in.v, dt);
  const Tensor bg = gpu_f32(in.beta), gg = gpu_f32(in.g), h0g = gpu_f32(in.h0), dog = on_gpu(in.dout, dt),
               dhTg = gpu_f32(in.dhT);

  Tensor hT_ref;
  const Tensor o_ref =
      cpu::gdn(qr, kr, vr, ref_f32(in.beta), ref_f32(in.g), ref_f32(in.h0), &hT_ref, /*chunked=*/false);
  const GdnGrads ref = cpu::gdn_backward(qr, kr, vr, ref_f32(in.beta), ref_f32(in.g), ref_f32(in.h0),
                                         rounded(in.dout, dt), ref_f32(in.dhT), /*chunked=*/false);
  for (int vt : {32, 64}) {
    SCOPED_TRACE(cat("value tile ", vt));
    Tensor hT;
    const Tensor o = cuda::gdn_chunked_forward(qg, kg, vg, bg, gg, h0g, &hT, vt);
    const Tensor o_only = cuda::gdn_chunked_forward(qg, kg, vg, bg, gg, h0g, nullptr, vt);
    const GdnGrads gr = cuda::gdn_chunked_backward(qg, kg, vg, bg, gg, h0g, dog, dhTg, vt);
    const double e_o = distance(o, dt, o_ref, "o"), e_o2 = distance(o_only, dt, o_ref, "o without hT");
    const double e_hT = distance(hT, DType::F32, hT_ref, "hT");
    const double e_dq = distance(gr.dq, dt, ref.dq, "dq"), e_dk = distance(gr.dk, dt, ref.dk, "dk");
    const double e_dv = distance(gr.dv, dt, ref.dv, "dv");
    const double e_db = distance(gr.dbeta, DType::F32, ref.dbeta, "dbeta");
    const double e_dg = distance(gr.dg, DType::F32, ref.dg, "dg");
    double e_dh0 = 0;
    if (c.with_h0) e_dh0 = distance(gr.dh0, DType::F32, ref.dh0, "dh0");
    else EXPECT_FALSE(gr.dh0.defined()) << "dh0 without h0";
    EXPECT_LE(e_o2, tol.o) << "o without hT";
    expect_within({e_o, e_hT, e_dq, e_dk, e_dv, e_dh0, e_db, e_dg}, tol, cat(tag, " vt", vt));
  }
}
void check(const GdnCase& c, DType dt, uint64_t seed) { check(c, dt, seed, gdn_tols(dt)); }

}  // namespace

TEST(CudaGdnChunked, PartialChunks) {
  LT2_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    check({1, 63, 1, 2, 64, 64, Decay::Normal, true, true}, dt, 1000);       // one partial chunk, grouped
    check({2, 75, 2, 2, 128, 96, Decay::ZeroSteps, true, true}, dt, 1010);   // 64 + 11, partial value tile
    check({1, 130, 1, 1, 37, 45, Decay::Normal, false, true}, dt, 1020);     // odd K and V (scalar loads)
  }
}

TEST(CudaGdnChunked, LongSequences) {
  LT2_REQUIRE_GPU();
  for (DType dt : kDtypes) {
    check({1, 500, 1, 3, 128, 64, Decay::Strong, true, false}, dt, 1100);    // 3 value heads per key head
    check({1, 1500, 2, 2, 64, 128, Decay::Normal, false, true}, dt, 1110);   // zero initial state
    check({1, 4096, 1, 1, 128, 128, Decay::Normal, true, true}, dt, 1120);   // 64 chunks
  }
}

TEST(CudaGdnChunked, LargeKeyDim) {
  LT2_REQUIRE_GPU();
  for (DType dt : kDtypes) check({1, 200, 1, 2, 256, 64, Decay::ZeroSteps, true, true}, dt, 1200);
  check({1, 300, 1, 1, 256, 160, Decay::Strong, true, true}, DType::BF16, 1210);
}

// The other BF16 precision modes (LT2_GDN_MMA) still hold: bf16x2 (fp32 operands as hi + lo
// BF16 pairs) keeps the states and the gate gradients near fp32 (measured <= 1.6e-5, against
// 3.6e-3 in the default bf16), the legacy TF32 kernels within the bounds.
TEST(CudaGdnChunked, OtherPrecisionModes) {
  LT2_REQUIRE_GPU();
  {
    ScopedEnv mode("LT2_GDN_MMA", "bf16x2");
    const GdnTols tight{5e-3, 1e-4, 8e-3, 1e-4, 1e-4};
    check({2, 75, 2, 2, 128, 96, Decay::ZeroSteps, true, true}, DType::BF16, 1010, tight);
    check({1, 4096, 1, 1, 128, 128, Decay::Normal, true, true}, DType::BF16, 1120, tight);
  }
  ScopedEnv mode("LT2_GDN_MMA", "tf32");
  check({1, 500, 1, 3, 128, 64, Decay::Strong, true, false}, DType::BF16, 1100);
}

// Scan variants that the default does not pick for the small test grids, at the bounds:
// partial chunks, grouped value heads, odd K and V, a long walk and a non-zero initial state.
static void check_scan_cases() {
  check({2, 75, 2, 2, 128, 96, Decay::ZeroSteps, true, true}, DType::BF16, 1010);
  check({1, 130, 1, 1, 37, 45, Decay::Normal, false, true}, DType::BF16, 1020);
  check({1, 500, 1, 3, 128, 64, Decay::Strong, true, false}, DType::BF16, 1100);
  check({1, 4096, 1, 1, 128, 128, Decay::Normal, true, true}, DType::BF16, 1120);
}
// The warp-column scan's layouts that these small grids do not get by default (they get two Au
// buffers, and the forward the split walk): one Au buffer (grids larger than the GPU), and two
// without the split (LT2_GDN_WARP_SCAN_AU forces them).
TEST(CudaGdnChunked, WarpScanLayouts) {
  LT2_REQUIRE_GPU();
  for (const char* au : {"1", "2"}) {
    SCOPED_TRACE(cat("LT2_GDN_WARP_SCAN_AU=", au));
    ScopedEnv layout("LT2_GDN_WARP_SCAN_AU", au);
    check_scan_cases();
  }
}
// The split-tile scan, which the default bf16 mode no longer runs at the 64-column value tile
// (LT2_GDN_WARP_SCAN=0).
TEST(CudaGdnChunked, SplitTileScan) {
  LT2_REQUIRE_GPU();
  ScopedEnv split("LT2_GDN_WARP_SCAN", "0");
  check_scan_cases();
}

// Same inputs, same bits: every reduction has a fixed order (no atomics).
TEST(CudaGdnChunked, Deterministic) {
  LT2_REQUIRE_GPU();
  const GdnCase c{2, 300, 1, 2, 128, 128, Decay::Normal, true, true};
  const GdnInputs in = make_gdn_inputs(c, 1300);
  const DType dt = DType::BF16;
  auto run = [&] {
    return cuda::gdn_chunked_backward(on_gpu(in.q, dt), on_gpu(in.k, dt), on_gpu(in.v, dt), gpu_f32(in.beta),
                                      gpu_f32(in.g), gpu_f32(in.h0), on_gpu(in.dout, dt), gpu_f32(in.dhT));
  };
  const GdnGrads a = run(), b = run();
  for (auto [x, y, what] : {std::tuple{&a.dq, &b.dq, "dq"}, std::tuple{&a.dk, &b.dk, "dk"},
                            std::tuple{&a.dv, &b.dv, "dv"}, std::tuple{&a.dg, &b.dg, "dg"},
                            std::tuple{&a.dbeta, &b.dbeta, "dbeta"}, std::tuple{&a.dh0, &b.dh0, "dh0"}}) {
    const Tensor u = x->to(Device::CPU, DType::F64), w = y->to(Device::CPU, DType::F64);
    int64_t diff = 0;
    for (int64_t i = 0; i < u.numel(); ++i) diff += u.item(i) != w.item(i);
    EXPECT_EQ(diff, 0) << what << " differs between two runs";
  }
}

// The forward's kept per-chunk states (ops::gdn's `states`) give the backward bit for bit the
// gradients it gets by rebuilding them: grouped value heads, h0 and dhT, a partial last chunk,
// both value tiles. Without the buffer, or with one of another layout, it rebuilds them.
static void check_states_reuse() {
  const GdnCase c{2, 200, 1, 2, 128, 128, Decay::Normal, true, true};
  const GdnInputs in = make_gdn_inputs(c, 1350);
  const DType dt = DType::BF16;
  const Tensor qg = on_gpu(in.q, dt), kg = on_gpu(in.k, dt), vg = on_gpu(in.v, dt), dog = on_gpu(in.dout, dt);
  const Tensor bg = gpu_f32(in.beta), gg = gpu_f32(in.g), h0g = gpu_f32(in.h0), dhg = gpu_f32(in.dhT);
  for (int vt : {32, 64}) {
    Tensor states, hT;
    const Tensor o = cuda::gdn_chunked_forward(qg, kg, vg, bg, gg, h0g, &hT, vt, &states);
    ASSERT_TRUE(states.defined()) << "the default BF16 kernels keep the states";
    const Tensor plain = cuda::gdn_chunked_forward(qg, kg, vg, bg, gg, h0g, nullptr, vt);
    EXPECT_EQ(rel_l2(o.to(Device::CPU, DType::F64), plain.to(Device::CPU, DType::F64)), 0.0) << "vt " << vt;
    const GdnGrads want = cuda::gdn_chunked_backward(qg, kg, vg, bg, gg, h0g, dog, dhg, vt);
    const GdnGrads got = cuda::gdn_chunked_backward(qg, kg, vg, bg, gg, h0g, dog, dhg, vt, states);
    const int other = vt == 32 ? 64 : 32;  // another layout: ignored, rebuilt
    const GdnGrads rebuilt = cuda::gdn_chunked_backward(qg, kg, vg, bg, gg, h0g, dog, dhg, other, states);
    const GdnGrads ref = cuda::gdn_chunked_backward(qg, kg, vg, bg, gg, h0g, dog, dhg, other);
    for (auto [x, y, what] : {std::tuple{&want.dq, &got.dq, "dq"}, std::tuple{&want.dk, &got.dk, "dk"},
                              std::tuple{&want.dv, &got.dv, "dv"}, std::tuple{&want.dg, &got.dg, "dg"},
                              std::tuple{&want.dbeta, &got.dbeta, "dbeta"}, std::tuple{&want.dh0, &got.dh0, "dh0"},
                              std::tuple{&ref.dq, &rebuilt.dq, "dq (other layout)"},
                              std::tuple{&ref.dg, &rebuilt.dg, "dg (other layout)"}}) {
      const Tensor u = x->to(Device::CPU, DType::F64), w = y->to(Device::CPU, DType::F64);
      int64_t diff = 0;
      for (int64_t i = 0; i < u.numel(); ++i) diff += u.item(i) != w.item(i);
      EXPECT_EQ(diff, 0) << what << " differs with the forward's states, vt " << vt;
    }
  }
}
TEST(CudaGdnChunked, BackwardReusesTheForwardStates) {
  LT2_REQUIRE_GPU();
  check_states_reuse();
  ScopedEnv split("LT2_GDN_WARP_SCAN", "0");  // the split-tile scan's checkpoints too
  check_states_reuse();
}

// Tokens [t0, t0 + len) of a packed [1, T, ...] tensor as a [1, len, ...] view.
static Tensor packed_rows(const Tensor& x, int64_t t0, int64_t len) {
  const Shape rest(x.shape().begin() + 1, x.shape().end());
  Shape s = rest;
  s[0] = len;
  s.insert(s.begin(), 1);
  return x.reshape(rest).narrow(t0, len).reshape(s);
}

// Variable-length batch (cu_seqlens): every packed sequence, an empty one included, must match
// the float64 recurrence run on it alone from its own initial state, within the bounds.
static void check_varlen(DType dt, int64_t K, int64_t V) {
  SCOPED_TRACE(cat("varlen K", K, " V", V, " ", dtype_name(dt)));
  const std::vector<int64_t> cu{0, 70, 70, 200, 201, 206};  // lengths 70, 0, 130, 1 and 5
  const int64_t N = int64_t(cu.size()) - 1;
  const GdnCase c{1, cu.back(), 1, 2, K, V, Decay::Normal, false, false};  // grouped value heads
  const GdnInputs in = make_gdn_inputs(c, 1500);
  const Tensor h0 = randn({N, c.HV, c.K, c.V}, 1510, 0.5), dhT = randn({N, c.HV, c.K, c.V}, 1511, 0.5);
  Tensor hT;
  const Tensor qg = on_gpu(in.q, dt), kg = on_gpu(in.k, dt), vg = on_gpu(in.v, dt), bg = gpu_f32(in.beta),
               gg = gpu_f32(in.g);
  const Tensor o = cuda::gdn_chunked_forward_varlen(qg, kg, vg, bg, gg, gpu_f32(h0), &hT, cu);
  const GdnGrads gr = cuda::gdn_chunked_backward_varlen(qg, kg, vg, bg, gg, gpu_f32(h0), on_gpu(in.dout, dt),
                                                        gpu_f32(dhT), cu);

  const Tensor qr = rounded(in.q, dt), kr = rounded(in.k, dt), vr = rounded(in.v, dt), dor = rounded(in.dout, dt);
  const Tensor br = ref_f32(in.beta), gr32 = ref_f32(in.g), h0r = ref_f32(h0), dhTr = ref_f32(dhT);
  auto zeros = [](const Shape& s) {
    Tensor t = Tensor::empty(s, DType::F64);
    t.zero();
    return t;
  };
  Tensor o_ref = zeros(in.v.shape()), hT_ref = zeros(h0.shape()), dh0_ref = zeros(h0.shape());
  GdnGrads ref{zeros(in.q.shape()), zeros(in.k.shape()), zeros(in.v.shape()), zeros(in.beta.shape()),
               zeros(in.g.shape()), Tensor()};
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t0 = cu[size_t(n)], len = cu[size_t(n) + 1] - t0;
    if (len == 0) {  // the state passes through
      hT_ref.narrow(n, 1).copy_from(h0r.narrow(n, 1));
      dh0_ref.narrow(n, 1).copy_from(dhTr.narrow(n, 1));
      continue;
    }
    auto rows = [&](const Tensor& x) { return packed_rows(x, t0, len); };
    Tensor hTn;
    packed_rows(o_ref, t0, len)
        .copy_from(cpu::gdn(rows(qr), rows(kr), rows(vr), rows(br), rows(gr32), h0r.narrow(n, 1), &hTn, false));
    hT_ref.narrow(n, 1).copy_from(hTn);
    const GdnGrads gn = cpu::gdn_backward(rows(qr), rows(kr), rows(vr), rows(br), rows(gr32), h0r.narrow(n, 1),
                                          rows(dor), dhTr.narrow(n, 1), false);
    packed_rows(ref.dq, t0, len).copy_from(gn.dq);
    packed_rows(ref.dk, t0, len).copy_from(gn.dk);
    packed_rows(ref.dv, t0, len).copy_from(gn.dv);
    packed_rows(ref.dbeta, t0, len).copy_from(gn.dbeta);
    packed_rows(ref.dg, t0, len).copy_from(gn.dg);
    dh0_ref.narrow(n, 1).copy_from(gn.dh0);
  }
  const GdnTols tol = gdn_tols(dt);
  const double e_o = distance(o, dt, o_ref, "o"), e_hT = distance(hT, DType::F32, hT_ref, "hT");
  const double e_dq = distance(gr.dq, dt, ref.dq, "dq"), e_dk = distance(gr.dk, dt, ref.dk, "dk");
  const double e_dv = distance(gr.dv, dt, ref.dv, "dv"), e_dh0 = distance(gr.dh0, DType::F32, dh0_ref, "dh0");
  const double e_db = distance(gr.dbeta, DType::F32, ref.dbeta, "dbeta"), e_dg = distance(gr.dg, DType::F32, ref.dg, "dg");
  expect_within({e_o, e_hT, e_dq, e_dk, e_dv, e_dh0, e_db, e_dg}, tol, cat("varlen K", K, " V", V, " ", dtype_name(dt)));
}

TEST(CudaGdnChunked, VarlenPacked) {
  LT2_REQUIRE_GPU();
  for (DType dt : kDtypes) check_varlen(dt, 64, 64);
  check_varlen(DType::BF16, 128, 256);
}

// A backward launches both walks along the grid's z (2 per sequence, at most 65535): a batch past
// that gets an error naming the limit, not a failed launch.
TEST(CudaGdnChunked, RejectsBatchBeyondTheGrid) {
  LT2_REQUIRE_GPU();
  const GdnInputs in = make_gdn_inputs({32768, 1, 1, 1, 64, 64, Decay::Normal, false, false}, 1600);
  const DType dt = DType::BF16;
  try {
    cuda::gdn_chunked_backward(on_gpu(in.q, dt), on_gpu(in.k, dt), on_gpu(in.v, dt), gpu_f32(in.beta),
                               gpu_f32(in.g), Tensor(), on_gpu(in.dout, dt), Tensor());
    FAIL() << "no error for a batch of 32768";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("32767 sequences"), std::string::npos) << e.what();
  }
}

// lt2::cuda::gdn / gdn_backward take the chunked path for long sequences; the recurrence
// (LT2_GDN_RECURRENT=1, and always for short ones) agrees within the bf16 tolerances.
TEST(CudaGdnChunked, RoutedThroughOps) {
  LT2_REQUIRE_GPU();
  const GdnCase c{1, 200, 2, 2, 128, 64, Decay::Normal, true, true};
  const GdnInputs in = make_gdn_inputs(c, 1400);
  const DType dt = DType::BF16;
  const Tensor qg = on_gpu(in.q, dt), kg = on_gpu(in.k, dt), vg = on_gpu(in.v, dt);
  const Tensor bg = gpu_f32(in.beta), gg = gpu_f32(in.g), h0g = gpu_f32(in.h0);
  const Tensor routed = cuda::gdn(qg, kg, vg, bg, gg, h0g, nullptr, true).to(Device::CPU, DType::F64);
  const Tensor direct = cuda::gdn_chunked_forward(qg, kg, vg, bg, gg, h0g, nullptr).to(Device::CPU, DType::F64);
  EXPECT_EQ(rel_l2(routed, direct), 0.0) << "cuda::gdn did not take the chunked path";
  const Tensor recur = [&] {
    ScopedEnv recurrent("LT2_GDN_RECURRENT", "1");
    return cuda::gdn(qg, kg, vg, bg, gg, h0g, nullptr, true).to(Device::CPU, DType::F64);
  }();
  const double e = rel_l2(recur, direct);
  EXPECT_GT(e, 0.0) << "LT2_GDN_RECURRENT=1 did not select the recurrence";
  EXPECT_LE(e, 1e-2) << "recurrence vs chunked";
}

#else
TEST(CudaGdnChunked, NeedsCuda) { GTEST_SKIP() << "built without CUDA"; }
#endif
