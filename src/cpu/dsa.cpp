// DeepSeek Sparse Attention, CPU reference (op declarations in ops/op_list.inc). Straight loops
// in the input dtype with double accumulation: this is the oracle, clarity over speed.
#include "cpu/dsa.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/common.h"
#include "cpu/cpu_ops.h"

namespace lt2::cpu {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

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

// The keys of each query: an index tensor [B, L, K] (increasing keys, then -1) or, undefined,
// the dense causal set (slot i = key i for i <= t, K = L).
class KeySet {
 public:
  KeySet(const Tensor& idx, int64_t B, int64_t L, const char* op) : L_(L), K_(L) {
    if (!idx.defined()) return;
    LT2_CHECK(idx.dtype() == DType::I32 && idx.ndim() == 3 && idx.dim(0) == B && idx.dim(1) == L, op,
              ": idx must be I32 [", B, ", ", L, ", k], got ", shape_str(idx.shape()));
    ix_ = idx.data<int32_t>(), K_ = idx.dim(2);
    // Checked here, before any parallel loop (an error cannot leave an OpenMP region): each row
    // lists keys s <= t in increasing order, then only empty slots.
    for (int64_t r = 0; r < B * L; ++r) {
      const int64_t t = r % L, n = size(r);
      for (int64_t i = 0; i < K_; ++i) {
        const int32_t s = ix_[r * K_ + i];
        LT2_CHECK(i < n ? (s >= 0 && s <= t && (i == 0 || s > ix_[r * K_ + i - 1])) : s == -1, op,
                  ": index row of query ", t, " is not increasing keys <= ", t, " then -1");
      }
    }
  }
  int64_t slots() const { return K_; }
  // Row r = b * L + t: how many keys it has, and its i-th key.
  int64_t size(int64_t r) const {
    if (!ix_) return r % L_ + 1;
    int64_t n = 0;
    while (n < K_ && ix_[r * K_ + n] >= 0) ++n;
    return n;
  }
  int64_t key(int64_t r, int64_t i) const { return ix_ ? ix_[r * K_ + i] : i; }

 private:
  const int32_t* ix_ = nullptr;
  int64_t L_, K_;
};

struct AttnDims {
  int64_t B, L, H, Hkv, D;
};
AttnDims attn_dims(const Tensor& q, const Tensor& k, const Tensor& v, const char* op) {
  check_cpu_real(q, op, "q");
  check_same_dtype(q, k, op);
  check_same_dtype(q, v, op);
  LT2_CHECK(q.ndim() == 4 && k.ndim() == 4 && k.shape() == v.shape(), op, ": q ", shape_str(q.shape()), ", k ",
            shape_str(k.shape()), ", v ", shape_str(v.shape()));
  const AttnDims d{q.dim(0), q.dim(1), q.dim(2), k.dim(2), q.dim(3)};
  LT2_CHECK(k.dim(0) == d.B && k.dim(1) == d.L && k.dim(3) == d.D && d.H % d.Hkv == 0, op, ": q ",
            shape_str(q.shape()), " and k ", shape_str(k.shape()), " do not match");
  return d;
}

template <class R> double dot(const R* a, const R* b, int64_t n) {
  double s = 0;
  for (int64_t c = 0; c < n; ++c) s += double(a[c]) * b[c];
  return s;
}

// One indexer score: sum_j w[j] relu(qI[j] . kI) (before w_scale).
template <class R> double index_score(const R* qI, const R* kI, const R* w, int64_t HI, int64_t dI) {
  double acc = 0;
  for (int64_t j = 0; j < HI; ++j) acc += double(w[j]) * std::max(dot(qI + j * dI, kI, dI), 0.0);
  return acc;
}

// The n = min(k, t + 1) best of scores[0..t], in increasing key order, into out (then -1).
// Best first; equal scores: the more recent key first. The order is total, so the set is unique.
template <class R> void select_topk(const R* scores, int64_t t, int64_t k, int32_t* out) {
  std::vector<int32_t> keys(size_t(t + 1));
  for (int64_t s = 0; s <= t; ++s) keys[size_t(s)] = int32_t(s);
  const int64_t n = std::min<int64_t>(k, t + 1);
  std::partial_sort(keys.begin(), keys.begin() + n, keys.end(), [&](int32_t a, int32_t c) {
    return scores[a] != scores[c] ? scores[a] > scores[c] : a > c;
  });
  std::sort(keys.begin(), keys.begin() + n);
  std::copy(keys.begin(), keys.begin() + n, out);
  std::fill(out + n, out + k, -1);
}

// Softmax attention of one query row over n keys (key_row(i) -> pointer to key i's k row, the
// v row at the same offset in vbase); adds to orow; returns the log-sum-exp.
template <class R, class KeyRow>
double attend(const R* qr, int64_t n, KeyRow key_row, const R* kbase, const R* vbase, int64_t D, double scale,
              R* orow) {
  std::vector<double> p(static_cast<size_t>(n));
  double m = -kInf, sum = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, p[size_t(i)] = dot(qr, kbase + key_row(i), D) * scale);
  for (double& x : p) sum += (x = std::exp(x - m));
  for (int64_t i = 0; i < n; ++i) {
    const R* vr = vbase + key_row(i);
    for (int64_t c = 0; c < D; ++c) orow[c] += R(p[size_t(i)] / sum * vr[c]);
  }
  return n ? m + std::log(sum) : -kInf;
}
}  // namespace

Tensor dsa_indexer_scores(const Tensor& qI, const Tensor& kI, const Tensor& w, double w_scale) {
  const IndexerDims d = indexer_dims(qI, kI, w);
  Tensor I = Tensor::empty({d.B, d.L, d.L}, qI.dtype());
  dispatch_real(qI.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R *q = qI.data<R>(), *kk = kI.data<R>(), *ww = w.data<R>();
    R* out = I.data<R>();
#pragma omp parallel for collapse(2)
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t t = 0; t < d.L; ++t) {
        const int64_t r = b * d.L + t;
        for (int64_t s = 0; s < d.L; ++s)
          out[r * d.L + s] =
              R(s <= t ? w_scale * index_score(q + r * d.HI * d.dI, kk + (b * d.L + s) * d.dI, ww + r * d.HI, d.HI, d.dI)
                       : -kInf);
      }
  });
  return I;
}

void dsa_indexer_scores_backward(const Tensor& qI, const Tensor& kI, const Tensor& w, double w_scale, const Tensor& idx,
                                 const Tensor& dIsel, Tensor& dqI, Tensor& dkI, Tensor& dw) {
  const IndexerDims d = indexer_dims(qI, kI, w);
  const KeySet keys(idx, d.B, d.L, "dsa_indexer_scores_backward");
  check_same_dtype(qI, dIsel, "dsa_indexer_scores_backward");
  check_shape(dIsel, {d.B, d.L, keys.slots()}, "dsa_indexer_scores_backward dIsel");
  dqI = Tensor::zeros(qI.shape(), qI.dtype());
  dkI = Tensor::zeros(kI.shape(), kI.dtype());
  dw = Tensor::zeros(w.shape(), w.dtype());
  dispatch_real(qI.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R *q = qI.data<R>(), *kk = kI.data<R>(), *ww = w.data<R>(), *g = dIsel.data<R>();
    R *dq = dqI.data<R>(), *dk = dkI.data<R>(), *dww = dw.data<R>();
    for (int64_t r = 0; r < d.B * d.L; ++r) {  // serial: dkI[s] collects from every query that kept s
      const int64_t b = r / d.L;
      for (int64_t i = 0, n = keys.size(r); i < n; ++i) {
        const double gi = double(g[r * keys.slots() + i]) * w_scale;
        if (gi == 0) continue;
        const R* kr = kk + (b * d.L + keys.key(r, i)) * d.dI;
        R* dkr = dk + (b * d.L + keys.key(r, i)) * d.dI;
        for (int64_t j = 0; j < d.HI; ++j) {
          const R* qr = q + (r * d.HI + j) * d.dI;
          const double s = dot(qr, kr, d.dI);
          if (s <= 0) continue;  // ReLU: no gradient through a clipped score
          dww[r * d.HI + j] += R(gi * s);
          const double gd = gi * double(ww[r * d.HI + j]);
          for (int64_t c = 0; c < d.dI; ++c) {
            dq[(r * d.HI + j) * d.dI + c] += R(gd * kr[c]);
            dkr[c] += R(gd * qr[c]);
          }
        }
      }
    }
  });
}

Tensor dsa_topk(const Tensor& I, int64_t k, Tensor* values) {
  check_cpu_real(I, "dsa_topk", "I");
  LT2_CHECK(I.ndim() == 3 && I.dim(1) == I.dim(2), "dsa_topk: I must be [B, L, L], got ", shape_str(I.shape()));
  LT2_CHECK(k >= 1, "dsa_topk: k must be >= 1, got ", k);
  const int64_t B = I.dim(0), L = I.dim(1);
  Tensor idx = Tensor::empty({B, L, k}, DType::I32);
  if (values) *values = Tensor::zeros({B, L, k}, I.dtype());
  int32_t* out = idx.data<int32_t>();
  dispatch_real(I.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R* sc = I.data<R>();
#pragma omp parallel for
    for (int64_t r = 0; r < B * L; ++r) {
      select_topk(sc + r * L, r % L, k, out + r * k);
      if (values)
        for (int64_t i = 0; i < k && out[r * k + i] >= 0; ++i) values->data<R>()[r * k + i] = sc[r * L + out[r * k + i]];
    }
  });
  return idx;
}

Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& idx, double scale,
                        Tensor* lse) {
  const AttnDims d = attn_dims(q, k, v, "sparse_attention");
  LT2_CHECK(idx.defined(), "sparse_attention: idx is missing");
  const KeySet keys(idx, d.B, d.L, "sparse_attention");
  Tensor o = Tensor::zeros(q.shape(), q.dtype());
  if (lse) *lse = Tensor::empty({d.B, d.H, d.L}, q.dtype());
  dispatch_real(q.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R *qp = q.data<R>(), *kp = k.data<R>(), *vp = v.data<R>();
#pragma omp parallel for collapse(2)
    for (int64_t r = 0; r < d.B * d.L; ++r)
      for (int64_t h = 0; h < d.H; ++h) {
        const int64_t b = r / d.L, hk = h / (d.H / d.Hkv);
        auto key_row = [&](int64_t i) { return ((b * d.L + keys.key(r, i)) * d.Hkv + hk) * d.D; };
        const double l = attend(qp + (r * d.H + h) * d.D, keys.size(r), key_row, kp, vp, d.D, scale,
                                o.data<R>() + (r * d.H + h) * d.D);
        if (lse) lse->data<R>()[(b * d.H + h) * d.L + r % d.L] = R(l);
      }
  });
  return o;
}

void sparse_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                               const Tensor& idx, const Tensor& dout, double scale, Tensor& dq, Tensor& dk,
                               Tensor& dv) {
  const AttnDims d = attn_dims(q, k, v, "sparse_attention_backward");
  LT2_CHECK(idx.defined(), "sparse_attention_backward: idx is missing");
  const KeySet keys(idx, d.B, d.L, "sparse_attention_backward");
  check_shape(o, q.shape(), "sparse_attention_backward o");
  check_shape(dout, q.shape(), "sparse_attention_backward dout");
  for (const Tensor* t : {&o, &dout, &lse}) check_same_dtype(q, *t, "sparse_attention_backward");
  check_shape(lse, {d.B, d.H, d.L}, "sparse_attention_backward lse");
  dq = Tensor::zeros(q.shape(), q.dtype());
  dk = Tensor::zeros(k.shape(), k.dtype());
  dv = Tensor::zeros(v.shape(), v.dtype());
  dispatch_real(q.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R *qp = q.data<R>(), *kp = k.data<R>(), *vp = v.data<R>(), *opp = o.data<R>(), *gp = dout.data<R>();
    R *dqp = dq.data<R>(), *dkp = dk.data<R>(), *dvp = dv.data<R>();
    for (int64_t r = 0; r < d.B * d.L; ++r)  // serial: dk, dv rows collect from many queries
      for (int64_t h = 0; h < d.H; ++h) {
        const int64_t b = r / d.L, hk = h / (d.H / d.Hkv), row = r * d.H + h;
        const R *qr = qp + row * d.D, *g = gp + row * d.D;
        const double l = lse.data<R>()[(b * d.H + h) * d.L + r % d.L];
        const double delta = dot(g, opp + row * d.D, d.D);  // rowsum(dO ∘ O) = Σ_s p_s (dO · v_s)
        for (int64_t i = 0, n = keys.size(r); i < n; ++i) {
          const int64_t kr_off = ((b * d.L + keys.key(r, i)) * d.Hkv + hk) * d.D;
          const R *kr = kp + kr_off, *vr = vp + kr_off;
          const double p = std::exp(dot(qr, kr, d.D) * scale - l), ds = p * (dot(g, vr, d.D) - delta) * scale;
          for (int64_t c = 0; c < d.D; ++c) {
            dqp[row * d.D + c] += R(ds * kr[c]);
            dkp[kr_off + c] += R(ds * qr[c]);
            dvp[kr_off + c] += R(p * g[c]);
          }
        }
      }
  });
}

Tensor dsa_attention_target(const Tensor& q, const Tensor& k, const Tensor& idx, double scale) {
  const AttnDims d = attn_dims(q, k, k, "dsa_attention_target");
  const KeySet keys(idx, d.B, d.L, "dsa_attention_target");
  Tensor p = Tensor::zeros({d.B, d.L, d.L}, q.dtype());
  dispatch_real(q.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R *qp = q.data<R>(), *kp = k.data<R>();
    R* pp = p.data<R>();
#pragma omp parallel for
    for (int64_t r = 0; r < d.B * d.L; ++r) {
      const int64_t b = r / d.L, n = keys.size(r);
      std::vector<double> acc(static_cast<size_t>(n), 0.0), s(static_cast<size_t>(n));
      for (int64_t h = 0; h < d.H; ++h) {
        double m = -kInf, sum = 0;
        for (int64_t i = 0; i < n; ++i)
          m = std::max(m, s[size_t(i)] = dot(qp + (r * d.H + h) * d.D,
                                             kp + ((b * d.L + keys.key(r, i)) * d.Hkv + h / (d.H / d.Hkv)) * d.D, d.D) *
                                         scale);
        for (double& x : s) sum += (x = std::exp(x - m));
        for (int64_t i = 0; i < n; ++i) acc[size_t(i)] += s[size_t(i)] / sum / double(d.H);
      }
      for (int64_t i = 0; i < n; ++i) pp[r * d.L + keys.key(r, i)] = R(acc[size_t(i)]);
    }
  });
  return p;
}

Tensor dsa_indexer_kl(const Tensor& Isel, const Tensor& q, const Tensor& k, const Tensor& lse, const Tensor& idx,
                      double scale, Tensor& kl_sum) {
  const AttnDims d = attn_dims(q, k, k, "dsa_indexer_kl");
  const KeySet keys(idx, d.B, d.L, "dsa_indexer_kl");
  check_shape(Isel, {d.B, d.L, keys.slots()}, "dsa_indexer_kl Isel");
  check_shape(lse, {d.B, d.H, d.L}, "dsa_indexer_kl lse");
  check_same_dtype(q, Isel, "dsa_indexer_kl");
  check_same_dtype(q, lse, "dsa_indexer_kl");
  check_cpu_real(kl_sum, "dsa_indexer_kl", "kl_sum");
  LT2_CHECK(kl_sum.numel() >= 1, "dsa_indexer_kl: kl_sum must hold one element");
  Tensor dI = Tensor::zeros(Isel.shape(), Isel.dtype());
  const int64_t K = keys.slots(), rows = d.B * d.L;
  std::vector<double> row_kl(size_t(rows), 0.0);
  dispatch_real(q.dtype(), [&](auto tag) {
    using R = decltype(tag);
    const R *qp = q.data<R>(), *kp = k.data<R>(), *ip = Isel.data<R>(), *lp = lse.data<R>();
    R* dp = dI.data<R>();
#pragma omp parallel for
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = r / d.L, t = r % d.L, n = keys.size(r);
      // Target: every head's probability exp(q.k * scale - lse) on the set, averaged, renormalised.
      std::vector<double> p(static_cast<size_t>(n), 0.0);
      double pz = 0, m = -kInf, z = 0;
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t h = 0; h < d.H; ++h)
          p[size_t(i)] += std::exp(dot(qp + (r * d.H + h) * d.D,
                                       kp + ((b * d.L + keys.key(r, i)) * d.Hkv + h / (d.H / d.Hkv)) * d.D, d.D) *
                                       scale -
                                   double(lp[(b * d.H + h) * d.L + t]));
        pz += p[size_t(i)];
        m = std::max(m, double(ip[r * K + i]));
      }
      for (int64_t i = 0; i < n; ++i) z += std::exp(double(ip[r * K + i]) - m);
      const double logz = m + std::log(z);
      for (int64_t i = 0; i < n; ++i) {
        const double target = pz > 0 ? p[size_t(i)] / pz : 0.0, logq = double(ip[r * K + i]) - logz;
        if (target > 0) row_kl[size_t(r)] += target * (std::log(target) - logq);
        dp[r * K + i] = R((std::exp(logq) - target) / double(rows));
      }
    }
  });
  double total = 0;
  for (double x : row_kl) total += x;
  dispatch_real(kl_sum.dtype(), [&](auto tag) { kl_sum.data<decltype(tag)>()[0] += decltype(tag)(total / double(rows)); });
  return dI;
}

Tensor dsa_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& qI, const Tensor& w,
                  const Tensor& kI_cache, const Tensor& positions, int64_t topk, double w_scale, double scale) {
  check_cpu_real(q, "dsa_decode", "q");
  for (const Tensor* t : {&k_cache, &v_cache, &qI, &w, &kI_cache}) check_same_dtype(q, *t, "dsa_decode");
  LT2_CHECK(q.ndim() == 4 && q.dim(1) == 1, "dsa_decode: q must be [B, 1, H, D], got ", shape_str(q.shape()));
  const int64_t B = q.dim(0), H = q.dim(2), D = q.dim(3), rows = k_cache.dim(1), Hkv = k_cache.dim(2);
  LT2_CHECK(k_cache.ndim() == 4 && k_cache.dim(0) == B && k_cache.dim(3) == D && H % Hkv == 0 &&
                v_cache.shape() == k_cache.shape(),
            "dsa_decode: caches ", shape_str(k_cache.shape()), " do not match q ", shape_str(q.shape()));
  LT2_CHECK(qI.ndim() == 4 && qI.dim(0) == B && qI.dim(1) == 1, "dsa_decode: qI must be [B, 1, HI, dI]");
  const int64_t HI = qI.dim(2), dI = qI.dim(3);
  check_shape(w, {B, 1, HI}, "dsa_decode w");
  check_shape(kI_cache, {B, rows, dI}, "dsa_decode kI_cache");
  LT2_CHECK(positions.dtype() == DType::I32 && positions.numel() == B, "dsa_decode: positions must be I32 [B]");
  LT2_CHECK(topk >= 1, "dsa_decode: k must be >= 1");
  const int32_t* pos = positions.data<int32_t>();
  for (int64_t b = 0; b < B; ++b)
    LT2_CHECK(pos[b] >= 0 && pos[b] < rows, "dsa_decode: position ", pos[b], " outside the cache's ", rows, " rows");
  Tensor o = Tensor::zeros(q.shape(), q.dtype());
  dispatch_real(q.dtype(), [&](auto tag) {
    using R = decltype(tag);
#pragma omp parallel for
    for (int64_t b = 0; b < B; ++b) {
      const int64_t t = pos[b];
      std::vector<R> scores(size_t(t + 1));
      for (int64_t s = 0; s <= t; ++s)
        scores[size_t(s)] = R(w_scale * index_score(qI.data<R>() + b * HI * dI, kI_cache.data<R>() + (b * rows + s) * dI,
                                                    w.data<R>() + b * HI, HI, dI));
      std::vector<int32_t> sel(static_cast<size_t>(topk));
      select_topk(scores.data(), t, topk, sel.data());
      const int64_t n = std::min<int64_t>(topk, t + 1);
      for (int64_t h = 0; h < H; ++h) {
        auto key_row = [&](int64_t i) { return ((b * rows + sel[size_t(i)]) * Hkv + h / (H / Hkv)) * D; };
        attend(q.data<R>() + (b * H + h) * D, n, key_row, k_cache.data<R>(), v_cache.data<R>(), D, scale,
               o.data<R>() + (b * H + h) * D);
      }
    }
  });
  return o;
}

}  // namespace lt2::cpu
