// Causal softmax attention (GQA, optional sliding window): the obviously-correct reference.
// Forward keeps only the log-sum-exp per query row; the backward recomputes the
// probabilities from it (as flash attention does), so memory stays O(L) per head.
#include <algorithm>
#include <limits>
#include <vector>

#include "cpu/common.h"
#include "ops/ops.h"

namespace lt2::ops {
using namespace lt2::cpu;

namespace {
struct AttnDims { int64_t B, L, H, Hkv, D; };

AttnDims attn_dims(const Tensor& q, const Tensor& k, const Tensor& v) {
  check_cpu_real(q, "attention", "q");
  LT2_CHECK(q.ndim() == 4 && k.ndim() == 4, "attention: q, k, v must be [B, L, H, D]");
  AttnDims d{q.dim(0), q.dim(1), q.dim(2), k.dim(2), q.dim(3)};
  check_shape(k, {d.B, d.L, d.Hkv, d.D}, "attention k");
  check_shape(v, {d.B, d.L, d.Hkv, d.D}, "attention v");
  LT2_CHECK(d.Hkv > 0 && d.H % d.Hkv == 0, "attention: query heads ", d.H, " not a multiple of kv heads ", d.Hkv);
  return d;
}

// First key visible from query t.
inline int64_t first_key(int64_t t, int64_t window) { return window > 0 ? std::max<int64_t>(0, t - window + 1) : 0; }
}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window, double scale, Tensor* lse) {
  const AttnDims d = attn_dims(q, k, v);
  Tensor o = Tensor::empty(q.shape(), q.dtype());
  Tensor l = Tensor::empty({d.B, d.H, d.L}, q.dtype());
  const int64_t grp = d.H / d.Hkv;
  dispatch_real(q.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* qp = q.data<R>();
    const R* kp = k.data<R>();
    const R* vp = v.data<R>();
    R* op = o.data<R>();
    R* lp = l.data<R>();
#pragma omp parallel
    {
      std::vector<R> p(d.L);
#pragma omp for collapse(3)
      for (int64_t b = 0; b < d.B; ++b)
        for (int64_t h = 0; h < d.H; ++h)
          for (int64_t t = 0; t < d.L; ++t) {
            const int64_t hk = h / grp, s0 = first_key(t, window);
            const R* qr = qp + ((b * d.L + t) * d.H + h) * d.D;
            R m = -std::numeric_limits<R>::infinity();
            for (int64_t s = s0; s <= t; ++s) {
              const R* kr = kp + ((b * d.L + s) * d.Hkv + hk) * d.D;
              R acc = 0;
              for (int64_t c = 0; c < d.D; ++c) acc += qr[c] * kr[c];
              p[s] = acc * R(scale);
              m = std::max(m, p[s]);
            }
            R sum = 0;
            for (int64_t s = s0; s <= t; ++s) sum += (p[s] = std::exp(p[s] - m));
            R* orow = op + ((b * d.L + t) * d.H + h) * d.D;
            std::fill(orow, orow + d.D, R(0));
            for (int64_t s = s0; s <= t; ++s) {
              const R w = p[s] / sum;
              const R* vr = vp + ((b * d.L + s) * d.Hkv + hk) * d.D;
              for (int64_t c = 0; c < d.D; ++c) orow[c] += w * vr[c];
            }
            lp[(b * d.H + h) * d.L + t] = m + std::log(sum);
          }
    }
  });
  if (lse) *lse = l;
  return o;
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                        const Tensor& dout, int64_t window, double scale, Tensor& dq, Tensor& dk, Tensor& dv) {
  const AttnDims d = attn_dims(q, k, v);
  dq = Tensor::zeros(q.shape(), q.dtype());
  dk = Tensor::zeros(k.shape(), k.dtype());
  dv = Tensor::zeros(v.shape(), v.dtype());
  const int64_t grp = d.H / d.Hkv;
  dispatch_real(q.dtype(), [&](auto r_tag_) {
    using R = decltype(r_tag_);
    const R* qp = q.data<R>();
    const R* kp = k.data<R>();
    const R* vp = v.data<R>();
    const R* op = o.data<R>();
    const R* lp = lse.data<R>();
    const R* gp = dout.data<R>();
    R* dqp = dq.data<R>();
    R* dkp = dk.data<R>();
    R* dvp = dv.data<R>();
    // One thread owns a (batch, kv head): every write to dk/dv of that head is its own.
#pragma omp parallel for collapse(2)
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t hk = 0; hk < d.Hkv; ++hk)
        for (int64_t h = hk * grp; h < (hk + 1) * grp; ++h)
          for (int64_t t = 0; t < d.L; ++t) {
            const int64_t row = ((b * d.L + t) * d.H + h) * d.D, s0 = first_key(t, window);
            const R* qr = qp + row;
            const R* gr = gp + row;
            R* dqr = dqp + row;
            const R lse_t = lp[(b * d.H + h) * d.L + t];
            R delta = 0;  // sum_c dout * o = sum_s p_s dp_s
            for (int64_t c = 0; c < d.D; ++c) delta += gr[c] * op[row + c];
            for (int64_t s = s0; s <= t; ++s) {
              const int64_t kv = ((b * d.L + s) * d.Hkv + hk) * d.D;
              R sc = 0, dp = 0;
              for (int64_t c = 0; c < d.D; ++c) {
                sc += qr[c] * kp[kv + c];
                dp += gr[c] * vp[kv + c];
              }
              const R p = std::exp(sc * R(scale) - lse_t);
              const R ds = p * (dp - delta) * R(scale);
              for (int64_t c = 0; c < d.D; ++c) {
                dqr[c] += ds * kp[kv + c];
                dkp[kv + c] += ds * qr[c];
                dvp[kv + c] += p * gr[c];
              }
            }
          }
  });
}

}  // namespace lt2::ops
