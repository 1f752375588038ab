// DeepSeek Sparse Attention, CPU reference (see cpu/dsa.h). Straight loops in the input
// dtype with double accumulation: this is the oracle, clarity over speed.
#include "cpu/dsa.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/common.h"

namespace lt2::cpu {

namespace {
struct IndexerDims {
  int64_t B, L, HI, dI;
};
IndexerDims indexer_dims(const Tensor& qI, const Tensor& kI, const Tensor& w) {
  check_cpu_real(qI, "dsa_indexer", "qI");
  check_same_dtype(qI, kI, "dsa_indexer");
  check_same_dtype(qI, w, "dsa_indexer");
  LT2_CHECK(qI.ndim() == 4, "dsa_indexer: qI must be [B, L, HI, dI], got ", shape_str(qI.shape()));
  const IndexerDims d{qI.dim(0), qI.dim(1), qI.dim(2), qI.dim(3)};
  check_shape(kI, {d.B, d.L, d.dI}, "dsa_indexer kI");
  check_shape(w, {d.B, d.L, d.HI}, "dsa_indexer w");
  return d;
}

// Number of used slots of an index row (slots hold positions in increasing order, then −1).
int64_t slots_used(const int32_t* row, int64_t k) {
  int64_t n = 0;
  while (n < k && row[n] >= 0) ++n;
  return n;
}

struct AttnDims {
  int64_t B, L, H, Hkv, D, K;
};
AttnDims sparse_dims(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& idx) {
  check_cpu_real(q, "sparse_attention", "q");
  check_same_dtype(q, k, "sparse_attention");
  check_same_dtype(q, v, "sparse_attention");
  LT2_CHECK(q.ndim() == 4 && k.ndim() == 4 && k.shape() == v.shape(), "sparse_attention: q ", shape_str(q.shape()),
            ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()));
  const AttnDims d{q.dim(0), q.dim(1), q.dim(2), k.dim(2), q.dim(3), idx.ndim() == 3 ? idx.dim(2) : 0};
  LT2_CHECK(k.dim(0) == d.B && k.dim(1) == d.L && k.dim(3) == d.D && d.H % d.Hkv == 0,
            "sparse_attention: q ", shape_str(q.shape()), " and k ", shape_str(k.shape()), " do not match");
  LT2_CHECK(idx.dtype() == DType::I32 && idx.ndim() == 3 && idx.dim(0) == d.B && idx.dim(1) == d.L,
            "sparse_attention: idx must be I32 [", d.B, ", ", d.L, ", k], got ", shape_str(idx.shape()));
  // Checked here, before any parallel loop (an error cannot leave an OpenMP region): each row
  // lists keys s <= t in increasing order, then only empty slots.
  const int32_t* ix = idx.data<int32_t>();
  for (int64_t r = 0; r < d.B * d.L; ++r) {
    const int64_t t = r % d.L, n = slots_used(ix + r * d.K, d.K);
    for (int64_t i = 0; i < d.K; ++i) {
      const int32_t s = ix[r * d.K + i];
      LT2_CHECK(i < n ? (s >= 0 && s <= t && (i == 0 || s > ix[r * d.K + i - 1])) : s == -1,
                "sparse_attention: index row of query ", t, " is not increasing keys <= ", t, " then -1");
    }
  }
  return d;
}
}  // namespace

Tensor dsa_indexer_scores(const Tensor& qI, const Tensor& kI, const Tensor& w) {
  const IndexerDims d = indexer_dims(qI, kI, w);
  Tensor I = Tensor::empty({d.B, d.L, d.L}, qI.dtype());
  dispatch_real(qI.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R *q = qI.data<R>(), *kk = kI.data<R>(), *ww = w.data<R>();
    R* out = I.data<R>();
#pragma omp parallel for collapse(2)
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t t = 0; t < d.L; ++t)
        for (int64_t s = 0; s < d.L; ++s) {
          double acc = -std::numeric_limits<double>::infinity();
          if (s <= t) {
            acc = 0;
            for (int64_t j = 0; j < d.HI; ++j) {
              double dot = 0;
              for (int64_t c = 0; c < d.dI; ++c)
                dot += double(q[((b * d.L + t) * d.HI + j) * d.dI + c]) * kk[(b * d.L + s) * d.dI + c];
              acc += double(ww[(b * d.L + t) * d.HI + j]) * std::max(dot, 0.0);
            }
          }
          out[(b * d.L + t) * d.L + s] = R(acc);
        }
  });
  return I;
}

void dsa_indexer_scores_backward(const Tensor& qI, const Tensor& kI, const Tensor& w, const Tensor& dI, Tensor& dqI,
                                 Tensor& dkI, Tensor& dw) {
  const IndexerDims d = indexer_dims(qI, kI, w);
  check_shape(dI, {d.B, d.L, d.L}, "dsa_indexer dI");
  dqI = Tensor::zeros(qI.shape(), qI.dtype());
  dkI = Tensor::zeros(kI.shape(), kI.dtype());
  dw = Tensor::zeros(w.shape(), w.dtype());
  dispatch_real(qI.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R *q = qI.data<R>(), *kk = kI.data<R>(), *ww = w.data<R>(), *g = dI.data<R>();
    R *dq = dqI.data<R>(), *dk = dkI.data<R>(), *dww = dw.data<R>();
    for (int64_t b = 0; b < d.B; ++b)  // serial: dkI[s] collects from every query t >= s
      for (int64_t t = 0; t < d.L; ++t)
        for (int64_t s = 0; s <= t; ++s) {
          const double gts = g[(b * d.L + t) * d.L + s];
          if (gts == 0) continue;
          for (int64_t j = 0; j < d.HI; ++j) {
            const R* qr = q + ((b * d.L + t) * d.HI + j) * d.dI;
            const R* kr = kk + (b * d.L + s) * d.dI;
            double dot = 0;
            for (int64_t c = 0; c < d.dI; ++c) dot += double(qr[c]) * kr[c];
            if (dot <= 0) continue;  // ReLU: no gradient through a clipped score
            dww[(b * d.L + t) * d.HI + j] += R(gts * dot);
            const double gd = gts * double(ww[(b * d.L + t) * d.HI + j]);
            for (int64_t c = 0; c < d.dI; ++c) {
              dq[((b * d.L + t) * d.HI + j) * d.dI + c] += R(gd * kr[c]);
              dk[(b * d.L + s) * d.dI + c] += R(gd * qr[c]);
            }
          }
        }
  });
}

Tensor dsa_topk(const Tensor& I, int64_t k) {
  check_cpu_real(I, "dsa_topk", "I");
  LT2_CHECK(I.ndim() == 3 && I.dim(1) == I.dim(2), "dsa_topk: I must be [B, L, L], got ", shape_str(I.shape()));
  LT2_CHECK(k >= 1, "dsa_topk: k must be >= 1, got ", k);
  const int64_t B = I.dim(0), L = I.dim(1);
  Tensor idx = Tensor::full({B, L, k}, -1, DType::I32);
  int32_t* out = idx.data<int32_t>();
  dispatch_real(I.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R* sc = I.data<R>();
#pragma omp parallel for collapse(2)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < L; ++t) {
        const R* row = sc + (b * L + t) * L;
        std::vector<int32_t> keys(size_t(t + 1));
        for (int64_t s = 0; s <= t; ++s) keys[size_t(s)] = int32_t(s);
        const int64_t n = std::min<int64_t>(k, t + 1);
        // Best first; equal scores: the more recent key first. The order is total, so the set is unique.
        std::partial_sort(keys.begin(), keys.begin() + n, keys.end(), [&](int32_t a, int32_t c) {
          return row[a] != row[c] ? row[a] > row[c] : a > c;
        });
        std::sort(keys.begin(), keys.begin() + n);
        std::copy(keys.begin(), keys.begin() + n, out + (b * L + t) * k);
      }
  });
  return idx;
}

Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& idx, double scale,
                        Tensor* lse) {
  const AttnDims d = sparse_dims(q, k, v, idx);
  Tensor o = Tensor::zeros(q.shape(), q.dtype());
  if (lse) *lse = Tensor::empty({d.B, d.H, d.L}, q.dtype());
  const int32_t* ix = idx.data<int32_t>();
  dispatch_real(q.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R *qp = q.data<R>(), *kp = k.data<R>(), *vp = v.data<R>();
    R* op = o.data<R>();
#pragma omp parallel for collapse(3)
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t t = 0; t < d.L; ++t)
        for (int64_t h = 0; h < d.H; ++h) {
          const int32_t* sel = ix + (b * d.L + t) * d.K;
          const int64_t n = slots_used(sel, d.K), hk = h / (d.H / d.Hkv);
          const R* qr = qp + ((b * d.L + t) * d.H + h) * d.D;
          std::vector<double> p(static_cast<size_t>(n));
          double m = -std::numeric_limits<double>::infinity(), sum = 0;
          for (int64_t i = 0; i < n; ++i) {
            const R* kr = kp + ((b * d.L + sel[i]) * d.Hkv + hk) * d.D;
            double dot = 0;
            for (int64_t c = 0; c < d.D; ++c) dot += double(qr[c]) * kr[c];
            m = std::max(m, p[size_t(i)] = dot * scale);
          }
          for (double& x : p) sum += (x = std::exp(x - m));
          R* orow = op + ((b * d.L + t) * d.H + h) * d.D;
          for (int64_t i = 0; i < n; ++i) {
            const R* vr = vp + ((b * d.L + sel[i]) * d.Hkv + hk) * d.D;
            for (int64_t c = 0; c < d.D; ++c) orow[c] += R(p[size_t(i)] / sum * vr[c]);
          }
          if (lse) lse->data<R>()[(b * d.H + h) * d.L + t] = R(n ? m + std::log(sum) : -INFINITY);
        }
  });
  return o;
}

void sparse_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                               const Tensor& idx, const Tensor& dout, double scale, Tensor& dq, Tensor& dk,
                               Tensor& dv) {
  const AttnDims d = sparse_dims(q, k, v, idx);
  check_shape(o, q.shape(), "sparse_attention_backward o");
  check_shape(dout, q.shape(), "sparse_attention_backward dout");
  check_shape(lse, {d.B, d.H, d.L}, "sparse_attention_backward lse");
  dq = Tensor::zeros(q.shape(), q.dtype());
  dk = Tensor::zeros(k.shape(), k.dtype());
  dv = Tensor::zeros(v.shape(), v.dtype());
  const int32_t* ix = idx.data<int32_t>();
  dispatch_real(q.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R *qp = q.data<R>(), *kp = k.data<R>(), *vp = v.data<R>(), *opp = o.data<R>(), *gp = dout.data<R>();
    R *dqp = dq.data<R>(), *dkp = dk.data<R>(), *dvp = dv.data<R>();
    for (int64_t b = 0; b < d.B; ++b)  // serial: dk, dv rows collect from many queries
      for (int64_t t = 0; t < d.L; ++t)
        for (int64_t h = 0; h < d.H; ++h) {
          const int32_t* sel = ix + (b * d.L + t) * d.K;
          const int64_t n = slots_used(sel, d.K), hk = h / (d.H / d.Hkv), row = (b * d.L + t) * d.H + h;
          const R *qr = qp + row * d.D, *orow = opp + row * d.D, *g = gp + row * d.D;
          const double l = lse.data<R>()[(b * d.H + h) * d.L + t];
          double delta = 0;  // rowsum(dO ∘ O) = Σ_s p_s (dO · v_s)
          for (int64_t c = 0; c < d.D; ++c) delta += double(g[c]) * orow[c];
          for (int64_t i = 0; i < n; ++i) {
            const R* kr = kp + ((b * d.L + sel[i]) * d.Hkv + hk) * d.D;
            const R* vr = vp + ((b * d.L + sel[i]) * d.Hkv + hk) * d.D;
            double dot = 0, dp = 0;
            for (int64_t c = 0; c < d.D; ++c) dot += double(qr[c]) * kr[c], dp += double(g[c]) * vr[c];
            const double p = std::exp(dot * scale - l), ds = p * (dp - delta) * scale;
            R* dkr = dkp + ((b * d.L + sel[i]) * d.Hkv + hk) * d.D;
            R* dvr = dvp + ((b * d.L + sel[i]) * d.Hkv + hk) * d.D;
            for (int64_t c = 0; c < d.D; ++c) {
              dqp[row * d.D + c] += R(ds * kr[c]);
              dkr[c] += R(ds * qr[c]);
              dvr[c] += R(p * g[c]);
            }
          }
        }
  });
}

Tensor dsa_attention_target(const Tensor& q, const Tensor& k, const Tensor& idx, double scale) {
  const AttnDims d = sparse_dims(q, k, k, idx);
  Tensor p = Tensor::zeros({d.B, d.L, d.L}, q.dtype());
  const int32_t* ix = idx.data<int32_t>();
  dispatch_real(q.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R *qp = q.data<R>(), *kp = k.data<R>();
    R* pp = p.data<R>();
#pragma omp parallel for collapse(2)
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t t = 0; t < d.L; ++t) {
        const int32_t* sel = ix + (b * d.L + t) * d.K;
        const int64_t n = slots_used(sel, d.K);
        std::vector<double> acc(static_cast<size_t>(n), 0.0), s(static_cast<size_t>(n));
        for (int64_t h = 0; h < d.H; ++h) {
          const R* qr = qp + ((b * d.L + t) * d.H + h) * d.D;
          double m = -std::numeric_limits<double>::infinity(), sum = 0;
          for (int64_t i = 0; i < n; ++i) {
            const R* kr = kp + ((b * d.L + sel[i]) * d.Hkv + h / (d.H / d.Hkv)) * d.D;
            double dot = 0;
            for (int64_t c = 0; c < d.D; ++c) dot += double(qr[c]) * kr[c];
            m = std::max(m, s[size_t(i)] = dot * scale);
          }
          for (double& x : s) sum += (x = std::exp(x - m));
          for (int64_t i = 0; i < n; ++i) acc[size_t(i)] += s[size_t(i)] / sum / double(d.H);
        }
        for (int64_t i = 0; i < n; ++i) pp[(b * d.L + t) * d.L + sel[i]] = R(acc[size_t(i)]);
      }
  });
  return p;
}

double dsa_indexer_kl(const Tensor& I, const Tensor& p, const Tensor& idx, Tensor* dI) {
  check_cpu_real(I, "dsa_indexer_kl", "I");
  check_same_dtype(I, p, "dsa_indexer_kl");
  LT2_CHECK(I.ndim() == 3 && I.dim(1) == I.dim(2), "dsa_indexer_kl: I must be [B, L, L]");
  check_shape(p, I.shape(), "dsa_indexer_kl p");
  const int64_t B = I.dim(0), L = I.dim(1);
  LT2_CHECK(idx.dtype() == DType::I32 && idx.ndim() == 3 && idx.dim(0) == B && idx.dim(1) == L,
            "dsa_indexer_kl: idx must be I32 [", B, ", ", L, ", k]");
  const int64_t K = idx.dim(2);
  if (dI) *dI = Tensor::zeros(I.shape(), I.dtype());
  const int32_t* ix = idx.data<int32_t>();
  double total = 0;
  dispatch_real(I.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R *ip = I.data<R>(), *pp = p.data<R>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < L; ++t) {
        const int32_t* sel = ix + (b * L + t) * K;
        const int64_t n = slots_used(sel, K), r = (b * L + t) * L;
        double m = -std::numeric_limits<double>::infinity(), z = 0, pz = 0;
        for (int64_t i = 0; i < n; ++i) m = std::max(m, double(ip[r + sel[i]])), pz += pp[r + sel[i]];
        for (int64_t i = 0; i < n; ++i) z += std::exp(double(ip[r + sel[i]]) - m);
        const double logz = m + std::log(z);
        for (int64_t i = 0; i < n; ++i) {
          const double target = pz > 0 ? pp[r + sel[i]] / pz : 0.0;  // renormalised on the set
          const double logq = double(ip[r + sel[i]]) - logz;
          if (target > 0) total += target * (std::log(target) - logq);
          if (dI) dI->data<R>()[r + sel[i]] = R((std::exp(logq) - target) / double(B * L));
        }
      }
  });
  return total / double(B * L);
}

}  // namespace lt2::cpu
