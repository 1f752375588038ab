// Gated DeltaNet kernels: recurrent backward vs finite differences; chunked vs recurrent (double);
// float chunked vs double recurrent; finiteness.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "cpu/gdn.h"

using lt2::cpu::GdnDims;

namespace {

struct Inputs {
  GdnDims d;
  std::vector<double> q, k, v, beta, g, h0;
};

enum class Variant { Normal, StrongDecay, ZeroDecay, BetaSmall, BetaLarge };

double softplus(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }

// q, k random then L2-normalised per (token, head) as the layer does (q also scaled by 1/sqrt(K));
// v random; beta = sigmoid(random); g = −softplus(random) (+ variants); h0 random or zero.
Inputs make_inputs(GdnDims d, unsigned seed, Variant var = Variant::Normal, bool with_h0 = true) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::uniform_real_distribution<double> ud(0.0, 1.0);
  Inputs in{d, {}, {}, {}, {}, {}, {}};
  const int64_t nqk = d.B * d.L * d.H * d.K;
  in.q.resize(nqk);
  in.k.resize(nqk);
  for (auto& x : in.q) x = nd(rng);
  for (auto& x : in.k) x = nd(rng);
  for (int64_t r = 0; r < d.B * d.L * d.H; ++r) {
    double sq = 0, sk = 0;
    for (int64_t i = 0; i < d.K; ++i) {
      sq += in.q[r * d.K + i] * in.q[r * d.K + i];
      sk += in.k[r * d.K + i] * in.k[r * d.K + i];
    }
    const double fq = 1.0 / std::sqrt(sq + 1e-6) / std::sqrt(double(d.K)), fk = 1.0 / std::sqrt(sk + 1e-6);
    for (int64_t i = 0; i < d.K; ++i) {
      in.q[r * d.K + i] *= fq;
      in.k[r * d.K + i] *= fk;
    }
  }
  in.v.resize(d.B * d.L * d.HV * d.V);
  for (auto& x : in.v) x = nd(rng);
  const int64_t ng = d.B * d.L * d.HV;
  in.beta.resize(ng);
  in.g.resize(ng);
  for (int64_t i = 0; i < ng; ++i) {
    switch (var) {
      case Variant::BetaSmall: in.beta[i] = 1e-4; break;
      case Variant::BetaLarge: in.beta[i] = 1.0 - 1e-4; break;
      default: in.beta[i] = 1.0 / (1.0 + std::exp(-nd(rng)));
    }
    switch (var) {
      case Variant::StrongDecay: in.g[i] = -5.0 + 0.5 * nd(rng); break;
      case Variant::ZeroDecay: in.g[i] = (i % 3 == 0) ? 0.0 : -softplus(nd(rng)); break;
      default: in.g[i] = -softplus(nd(rng));
    }
  }
  in.h0.assign(d.B * d.HV * d.K * d.V, 0.0);
  if (with_h0)
    for (auto& x : in.h0) x = 0.5 * nd(rng);
  return in;
}

std::vector<double> randvec(size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> r(n);
  for (auto& x : r) x = nd(rng);
  return r;
}

struct Grads {
  std::vector<double> dq, dk, dv, dbeta, dg, dh0;
};

template <class R>
struct Out {
  std::vector<R> o, hT, dq, dk, dv, dbeta, dg, dh0;
};

template <class R>
std::vector<R> cvt(const std::vector<double>& x) {
  return std::vector<R>(x.begin(), x.end());
}

// Runs forward + backward with either kernel family in precision R. chunk <= 0 = recurrent.
template <class R>
Out<R> run(const Inputs& in, const std::vector<double>& wo, const std::vector<double>& wh, int64_t chunk,
           bool pass_h0 = true) {
  const GdnDims& d = in.d;
  auto q = cvt<R>(in.q), k = cvt<R>(in.k), v = cvt<R>(in.v), be = cvt<R>(in.beta), g = cvt<R>(in.g),
       h0 = cvt<R>(in.h0), dout = cvt<R>(wo), dhT = cvt<R>(wh);
  Out<R> r;
  r.o.assign(d.B * d.L * d.HV * d.V, R(7));  // garbage: must be overwritten
  r.hT.assign(d.B * d.HV * d.K * d.V, R(7));
  r.dq.assign(q.size(), R(7));
  r.dk.assign(k.size(), R(7));
  r.dv.assign(v.size(), R(7));
  r.dbeta.assign(be.size(), R(7));
  r.dg.assign(g.size(), R(7));
  r.dh0.assign(h0.size(), R(7));
  const R* h0p = pass_h0 ? h0.data() : nullptr;
  if (chunk > 0) {
    lt2::cpu::gdn_chunk_forward<R>(d, q.data(), k.data(), v.data(), be.data(), g.data(), h0p, r.o.data(),
                                   r.hT.data(), chunk);
    lt2::cpu::gdn_chunk_backward<R>(d, q.data(), k.data(), v.data(), be.data(), g.data(), h0p, dout.data(),
                                    dhT.data(), r.dq.data(), r.dk.data(), r.dv.data(), r.dbeta.data(),
                                    r.dg.data(), r.dh0.data(), chunk);
  } else {
    lt2::cpu::gdn_recurrent_forward<R>(d, q.data(), k.data(), v.data(), be.data(), g.data(), h0p, r.o.data(),
                                       r.hT.data());
    lt2::cpu::gdn_recurrent_backward<R>(d, q.data(), k.data(), v.data(), be.data(), g.data(), h0p,
                                        dout.data(), dhT.data(), r.dq.data(), r.dk.data(), r.dv.data(),
                                        r.dbeta.data(), r.dg.data(), r.dh0.data());
  }
  return r;
}

// max |a − b| / max |b|
template <class R>
double rel_max(const std::vector<R>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::abs(double(a[i]) - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return num / std::max(den, 1e-300);
}

// ‖a − b‖₂ / ‖b‖₂
template <class R>
double rel_l2(const std::vector<R>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    const double e = double(a[i]) - b[i];
    num += e * e;
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

template <class R>
bool all_finite(const std::vector<R>& x) {
  return std::all_of(x.begin(), x.end(), [](R y) { return std::isfinite(y); });
}

// Compares every output of `a` against the double reference `ref` (max-relative), returns the worst.
template <class R>
double compare_all(const Out<R>& a, const Out<double>& ref, double tol, const char* what,
                   double (*metric)(const std::vector<R>&, const std::vector<double>&)) {
  struct Item {
    const char* name;
    const std::vector<R>* x;
    const std::vector<double>* y;
  } items[] = {{"o", &a.o, &ref.o},       {"hT", &a.hT, &ref.hT},         {"dq", &a.dq, &ref.dq},
               {"dk", &a.dk, &ref.dk},    {"dv", &a.dv, &ref.dv},         {"dbeta", &a.dbeta, &ref.dbeta},
               {"dg", &a.dg, &ref.dg},    {"dh0", &a.dh0, &ref.dh0}};
  double worst = 0;
  for (const auto& it : items) {
    EXPECT_TRUE(all_finite(*it.x)) << what << " " << it.name << " has non-finite values";
    const double e = metric(*it.x, *it.y);
    EXPECT_LE(e, tol) << what << " " << it.name;
    worst = std::max(worst, e);
  }
  return worst;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Recurrent backward vs central finite differences of loss = Σ o·w_o + Σ hT·w_h.
TEST(GdnKernels, RecurrentBackwardMatchesFiniteDifferences) {
  const GdnDims d{2, 7, 2, 4, 3, 5};
  Inputs in = make_inputs(d, 11);
  const auto wo = randvec(d.B * d.L * d.HV * d.V, 12);
  const auto wh = randvec(d.B * d.HV * d.K * d.V, 13);
  const Out<double> an = run<double>(in, wo, wh, 0);

  auto loss = [&](const Inputs& x) {
    std::vector<double> o(wo.size()), hT(wh.size());
    lt2::cpu::gdn_recurrent_forward<double>(x.d, x.q.data(), x.k.data(), x.v.data(), x.beta.data(), x.g.data(),
                                            x.h0.data(), o.data(), hT.data());
    double s = 0;
    for (size_t i = 0; i < o.size(); ++i) s += o[i] * wo[i];
    for (size_t i = 0; i < hT.size(); ++i) s += hT[i] * wh[i];
    return s;
  };
  struct Field {
    const char* name;
    std::vector<double> Inputs::*x;
    const std::vector<double>* grad;
  } fields[] = {{"q", &Inputs::q, &an.dq},       {"k", &Inputs::k, &an.dk}, {"v", &Inputs::v, &an.dv},
                {"beta", &Inputs::beta, &an.dbeta}, {"g", &Inputs::g, &an.dg}, {"h0", &Inputs::h0, &an.dh0}};
  const double eps = 1e-5;
  double worst = 0;
  for (const auto& f : fields) {
    std::vector<double>& x = in.*(f.x);
    double gmax = 0;
    for (double y : *f.grad) gmax = std::max(gmax, std::abs(y));
    ASSERT_GT(gmax, 0.0) << f.name;
    double emax = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double x0 = x[i];
      x[i] = x0 + eps;
      const double lp = loss(in);
      x[i] = x0 - eps;
      const double lm = loss(in);
      x[i] = x0;
      const double fd = (lp - lm) / (2 * eps);
      emax = std::max(emax, std::abs(fd - (*f.grad)[i]));
    }
    const double rel = emax / gmax;
    EXPECT_LE(rel, 1e-6) << "d" << f.name;
    worst = std::max(worst, rel);
  }
  std::printf("[recurrent vs FD] max rel err %.3e\n", worst);
}

// Gradients are written, not accumulated; nullptr h0 = zero state; nullptr dhT = zero.
TEST(GdnKernels, NullableArgumentsAndOverwrite) {
  const GdnDims d{1, 9, 1, 2, 4, 3};
  Inputs in = make_inputs(d, 5, Variant::Normal, /*with_h0=*/false);
  const auto wo = randvec(d.B * d.L * d.HV * d.V, 6);
  const std::vector<double> wh(d.B * d.HV * d.K * d.V, 0.0);
  const Out<double> with = run<double>(in, wo, wh, 4, /*pass_h0=*/true);
  const Out<double> without = run<double>(in, wo, wh, 4, /*pass_h0=*/false);
  EXPECT_EQ(with.o, without.o);
  EXPECT_EQ(with.dq, without.dq);
  EXPECT_EQ(with.dh0, without.dh0);
  // dhT = nullptr equals dhT = 0; hT / dh0 = nullptr are allowed
  auto q = in.q, k = in.k, v = in.v, be = in.beta, g = in.g;
  std::vector<double> o(wo.size()), dq(q.size(), 3.0), dk(k.size(), 3.0), dv(v.size(), 3.0), db(be.size(), 3.0),
      dg(g.size(), 3.0);
  for (int64_t chunk : {int64_t(0), int64_t(4)}) {
    if (chunk > 0) {
      lt2::cpu::gdn_chunk_forward<double>(d, q.data(), k.data(), v.data(), be.data(), g.data(), nullptr, o.data(),
                                          nullptr, chunk);
      lt2::cpu::gdn_chunk_backward<double>(d, q.data(), k.data(), v.data(), be.data(), g.data(), nullptr,
                                           wo.data(), nullptr, dq.data(), dk.data(), dv.data(), db.data(),
                                           dg.data(), nullptr, chunk);
    } else {
      lt2::cpu::gdn_recurrent_forward<double>(d, q.data(), k.data(), v.data(), be.data(), g.data(), nullptr,
                                              o.data(), nullptr);
      lt2::cpu::gdn_recurrent_backward<double>(d, q.data(), k.data(), v.data(), be.data(), g.data(), nullptr,
                                               wo.data(), nullptr, dq.data(), dk.data(), dv.data(), db.data(),
                                               dg.data(), nullptr);
    }
    EXPECT_LE(rel_max(o, with.o), 1e-12);
    EXPECT_LE(rel_max(dq, with.dq), 1e-12);
    EXPECT_LE(rel_max(dk, with.dk), 1e-12);
    EXPECT_LE(rel_max(dv, with.dv), 1e-12);
    EXPECT_LE(rel_max(db, with.dbeta), 1e-12);
    EXPECT_LE(rel_max(dg, with.dg), 1e-12);
  }
}

TEST(GdnKernels, RejectsBadDims) {
  const GdnDims d{1, 4, 3, 4, 2, 2};  // HV % H != 0
  std::vector<double> x(64, 0.1), o(64);
  EXPECT_ANY_THROW(lt2::cpu::gdn_chunk_forward<double>(d, x.data(), x.data(), x.data(), x.data(), x.data(),
                                                       nullptr, o.data(), nullptr));
}

// ------------------------------------------------------------------------------------------------
// Chunked vs recurrent in double: every output and gradient within 1e-10 (max-relative).
struct ChunkCase {
  int64_t L, chunk;
  Variant var;
  bool h0;
};

TEST(GdnKernels, ChunkMatchesRecurrentDouble) {
  std::vector<ChunkCase> cases;
  for (int64_t L : {1, 63, 64, 65, 200}) cases.push_back({L, 64, Variant::Normal, true});
  for (int64_t L : {1, 65, 200}) cases.push_back({L, 16, Variant::Normal, true});
  for (Variant var : {Variant::StrongDecay, Variant::ZeroDecay, Variant::BetaSmall, Variant::BetaLarge}) {
    cases.push_back({65, 64, var, true});
    cases.push_back({200, 16, var, false});
  }
  cases.push_back({130, 64, Variant::Normal, false});
  cases.push_back({37, 5, Variant::Normal, true});
  double worst = 0;
  unsigned seed = 100;
  for (const auto& c : cases) {
    const GdnDims d{2, c.L, 2, 4, 12, 20};  // grouped value heads (HV = 2H), K != V
    const Inputs in = make_inputs(d, seed++, c.var, c.h0);
    const auto wo = randvec(d.B * d.L * d.HV * d.V, seed++);
    const auto wh = randvec(d.B * d.HV * d.K * d.V, seed++);
    const Out<double> ref = run<double>(in, wo, wh, 0);
    const Out<double> ch = run<double>(in, wo, wh, c.chunk);
    char what[96];
    std::snprintf(what, sizeof what, "L=%lld chunk=%lld variant=%d h0=%d", (long long)c.L, (long long)c.chunk,
                  int(c.var), int(c.h0));
    const double e = compare_all(ch, ref, 1e-10, what, &rel_max<double>);
    std::printf("[chunk vs recurrent, double] %-40s max rel err %.3e\n", what, e);
    worst = std::max(worst, e);
  }
  std::printf("[chunk vs recurrent, double] worst %.3e\n", worst);
}

// H == HV (no grouping) takes the direct dq/dk write path.
TEST(GdnKernels, ChunkMatchesRecurrentUngrouped) {
  const GdnDims d{2, 70, 3, 3, 8, 6};
  const Inputs in = make_inputs(d, 77);
  const auto wo = randvec(d.B * d.L * d.HV * d.V, 78);
  const auto wh = randvec(d.B * d.HV * d.K * d.V, 79);
  const Out<double> ref = run<double>(in, wo, wh, 0);
  const Out<double> ch = run<double>(in, wo, wh, 32);
  const double e = compare_all(ch, ref, 1e-10, "ungrouped", &rel_max<double>);
  std::printf("[chunk vs recurrent, ungrouped] max rel err %.3e\n", e);
}

// ------------------------------------------------------------------------------------------------
// float chunked vs double recurrent, relative L2 error <= 1e-4 on every output and gradient.
TEST(GdnKernels, FloatChunkMatchesDoubleRecurrent) {
  const GdnDims d{2, 200, 2, 4, 32, 64};
  const Inputs in = make_inputs(d, 2024);
  const auto wo = randvec(d.B * d.L * d.HV * d.V, 2025);
  const auto wh = randvec(d.B * d.HV * d.K * d.V, 2026);
  const Out<double> ref = run<double>(in, wo, wh, 0);
  const Out<float> ch = run<float>(in, wo, wh, 64);
  const double e = compare_all(ch, ref, 1e-4, "float chunk", &rel_l2<float>);
  std::printf("[float chunk vs double recurrent] max rel L2 err %.3e\n", e);
}

// Strong decay over long sequences in float (exp of large negative cumulative sums): all finite.
TEST(GdnKernels, FloatOutputsFiniteUnderExtremeGates) {
  const GdnDims d{1, 256, 1, 2, 16, 16};
  Inputs in = make_inputs(d, 9, Variant::StrongDecay);
  for (size_t i = 0; i < in.g.size(); ++i) in.g[i] = (i % 2) ? -30.0 : 0.0;  // Σ g over a chunk ≈ −960
  const auto wo = randvec(d.B * d.L * d.HV * d.V, 10);
  const auto wh = randvec(d.B * d.HV * d.K * d.V, 11);
  const Out<float> ch = run<float>(in, wo, wh, 64);
  for (const auto* x : {&ch.o, &ch.hT, &ch.dq, &ch.dk, &ch.dv, &ch.dbeta, &ch.dg, &ch.dh0})
    EXPECT_TRUE(all_finite(*x));
  const Out<double> ref = run<double>(in, wo, wh, 0);
  EXPECT_LE(rel_l2(ch.o, ref.o), 1e-4);
  EXPECT_LE(rel_l2(ch.dg, ref.dg), 1e-4);
}
