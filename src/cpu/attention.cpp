// Causal softmax attention (GQA, optional sliding window): the reference kernels.
// Work is tiled by blocks of queries: a block of rows [t0, t1) only looks at the keys
// [first_key(t0), t1), so a window costs O(L w) and full causal attention skips the upper
// triangle; inside a tile the products are GEMMs. The forward keeps only the log-sum-exp
// per row; the backward recomputes the probabilities from it (as flash attention does),
// so memory stays O(L) per head.
#include <algorithm>
#include <limits>
#include <vector>

#include "cpu/blas.h"
#include "cpu/common.h"
#include "cpu/cpu_ops.h"

namespace lt2::cpu {

namespace {
constexpr int64_t kQueryBlock = 64;

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

// Scaled scores of query rows [t0, t1) against keys [k0, t1) into S (row stride nk), and the
// causal / window mask applied as -inf.
template <class R>
void block_scores(const R* q, const R* k, const AttnDims& d, int64_t t0, int64_t t1, int64_t k0, int64_t window,
                  R scale, R* S) {
  const int64_t nk = t1 - k0;
  gemm(false, true, t1 - t0, nk, d.D, scale, q + t0 * d.H * d.D, d.H * d.D, k + k0 * d.Hkv * d.D, d.Hkv * d.D, R(0),
       S, nk);
  for (int64_t t = t0; t < t1; ++t) {
    R* row = S + (t - t0) * nk;
    const int64_t lo = first_key(t, window);
    for (int64_t s = k0; s < t1; ++s)
      if (s < lo || s > t) row[s - k0] = -std::numeric_limits<R>::infinity();
  }
}
}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window, double scale, Tensor* lse) {
  const AttnDims d = attn_dims(q, k, v);
  Tensor o = Tensor::empty(q.shape(), q.dtype());
  Tensor l = Tensor::empty({d.B, d.H, d.L}, q.dtype());
  const int64_t grp = d.H / d.Hkv;
  dispatch_real(q.dtype(), [&](auto tag) {
    using R = decltype(tag);
#pragma omp parallel
    {
      std::vector<R> S(kQueryBlock * d.L);
#pragma omp for collapse(2)
      for (int64_t b = 0; b < d.B; ++b)
        for (int64_t h = 0; h < d.H; ++h) {
          const int64_t hk = h / grp;
          const R* qh = q.data<R>() + (b * d.L * d.H + h) * d.D;
          const R* kh = k.data<R>() + (b * d.L * d.Hkv + hk) * d.D;
          const R* vh = v.data<R>() + (b * d.L * d.Hkv + hk) * d.D;
          R* oh = o.data<R>() + (b * d.L * d.H + h) * d.D;
          R* lh = l.data<R>() + (b * d.H + h) * d.L;
          for (int64_t t0 = 0; t0 < d.L; t0 += kQueryBlock) {
            const int64_t t1 = std::min(d.L, t0 + kQueryBlock), k0 = first_key(t0, window), nk = t1 - k0;
            block_scores(qh, kh, d, t0, t1, k0, window, R(scale), S.data());
            for (int64_t t = t0; t < t1; ++t) {  // row softmax; every row has at least its own key
              R* row = S.data() + (t - t0) * nk;
              const R m = *std::max_element(row, row + nk);
              R sum = 0;
              for (int64_t j = 0; j < nk; ++j) sum += (row[j] = std::exp(row[j] - m));
              for (int64_t j = 0; j < nk; ++j) row[j] /= sum;
              lh[t] = m + std::log(sum);
            }
            gemm(false, false, t1 - t0, d.D, nk, R(1), S.data(), nk, vh + k0 * d.Hkv * d.D, d.Hkv * d.D, R(0),
                 oh + t0 * d.H * d.D, d.H * d.D);
          }
        }
    }
  });
  if (lse) *lse = l;
  return o;
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                        const Tensor& dout, int64_t window, double scale, Tensor& dq, Tensor& dk, Tensor& dv,
                        const ColBlock* dv_out) {
  const AttnDims d = attn_dims(q, k, v);
  dq = Tensor::empty(q.shape(), q.dtype());
  dk = Tensor::zeros(k.shape(), k.dtype());
  dv = Tensor::zeros(v.shape(), v.dtype());
  const int64_t grp = d.H / d.Hkv;
  dispatch_real(q.dtype(), [&](auto tag) {
    using R = decltype(tag);
    // One thread owns a (batch, kv head): every write to dk / dv of that head is its own.
#pragma omp parallel
    {
      std::vector<R> P(kQueryBlock * d.L), dP(kQueryBlock * d.L);
#pragma omp for collapse(2)
      for (int64_t b = 0; b < d.B; ++b)
        for (int64_t hk = 0; hk < d.Hkv; ++hk) {
          const R* kh = k.data<R>() + (b * d.L * d.Hkv + hk) * d.D;
          const R* vh = v.data<R>() + (b * d.L * d.Hkv + hk) * d.D;
          R* dkh = dk.data<R>() + (b * d.L * d.Hkv + hk) * d.D;
          R* dvh = dv.data<R>() + (b * d.L * d.Hkv + hk) * d.D;
          const int64_t kv_ld = d.Hkv * d.D, q_ld = d.H * d.D;
          for (int64_t h = hk * grp; h < (hk + 1) * grp; ++h) {
            const int64_t qoff = (b * d.L * d.H + h) * d.D;
            const R* qh = q.data<R>() + qoff;
            const R* oh = o.data<R>() + qoff;
            const R* gh = dout.data<R>() + qoff;
            R* dqh = dq.data<R>() + qoff;
            const R* lh = lse.data<R>() + (b * d.H + h) * d.L;
            for (int64_t t0 = 0; t0 < d.L; t0 += kQueryBlock) {
              const int64_t t1 = std::min(d.L, t0 + kQueryBlock), k0 = first_key(t0, window), nk = t1 - k0;
              const int64_t nq = t1 - t0;
              block_scores(qh, kh, d, t0, t1, k0, window, R(scale), P.data());
              // dP = dO V^T
              gemm(false, true, nq, nk, d.D, R(1), gh + t0 * q_ld, q_ld, vh + k0 * kv_ld, kv_ld, R(0), dP.data(), nk);
              for (int64_t t = t0; t < t1; ++t) {
                R* p = P.data() + (t - t0) * nk;
                R* dp = dP.data() + (t - t0) * nk;
                R delta = 0;  // sum_c dO o = sum_s p_s dp_s
                for (int64_t c = 0; c < d.D; ++c) delta += gh[t * q_ld + c] * oh[t * q_ld + c];
                for (int64_t j = 0; j < nk; ++j) {
                  p[j] = std::exp(p[j] - lh[t]);  // masked entries: exp(-inf) = 0
                  dp[j] = p[j] * (dp[j] - delta) * R(scale);
                }
              }
              // dQ = dS K;  dK += dS^T Q;  dV += P^T dO
              gemm(false, false, nq, d.D, nk, R(1), dP.data(), nk, kh + k0 * kv_ld, kv_ld, R(0), dqh + t0 * q_ld, q_ld);
              gemm(true, false, nk, d.D, nq, R(1), dP.data(), nk, qh + t0 * q_ld, q_ld, R(1), dkh + k0 * kv_ld, kv_ld);
              gemm(true, false, nk, d.D, nq, R(1), P.data(), nk, gh + t0 * q_ld, q_ld, R(1), dvh + k0 * kv_ld, kv_ld);
            }
          }
        }
    }
  });
  if (dv_out) put_cols(dv.reshape({d.B * d.L, d.Hkv * d.D}), *dv_out, "attention_backward dv"), dv = Tensor();
}

// One query per sequence against its cached keys lo..pos; softmax in double.
Tensor attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& positions,
                        int64_t window, bool ring, double scale) {
  check_cpu_real(q, "attention_decode", "q");
  check_same_dtype(q, k_cache, "attention_decode");
  check_same_dtype(q, v_cache, "attention_decode");
  const int64_t B = q.dim(0), H = q.dim(2), D = q.dim(3), rows = k_cache.dim(1), Hkv = k_cache.dim(2);
  LT2_CHECK(q.ndim() == 4 && q.dim(1) == 1 && k_cache.shape() == v_cache.shape() && k_cache.dim(0) == B &&
                k_cache.dim(3) == D && H % Hkv == 0,
            "attention_decode: q ", shape_str(q.shape()), " does not match the cache ", shape_str(k_cache.shape()));
  LT2_CHECK(positions.dtype() == DType::I32 && positions.numel() == B, "attention_decode: positions must be I32 [", B, "]");
  const int32_t* pos = positions.data<int32_t>();
  for (int64_t b = 0; b < B; ++b)
    LT2_CHECK(pos[b] >= 0 && (ring || pos[b] < rows), "attention_decode: position ", pos[b], " outside the cache of ",
              rows, " rows");
  const int64_t grp = H / Hkv;
  Tensor a = Tensor::zeros(q.shape(), q.dtype());
  dispatch_real(q.dtype(), [&](auto tag) {
    using R = decltype(tag);
#pragma omp parallel for collapse(2)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t p = pos[b], lo = window > 0 ? std::max<int64_t>(0, p - window + 1) : 0, hk = h / grp;
        const R* qr = q.data<R>() + (b * H + h) * D;
        std::vector<double> w(size_t(p - lo + 1));
        double m = -INFINITY, sum = 0;
        for (int64_t s = lo; s <= p; ++s) {
          const R* kr = k_cache.data<R>() + ((b * rows + (ring ? s % rows : s)) * Hkv + hk) * D;
          double acc = 0;
          for (int64_t d = 0; d < D; ++d) acc += double(qr[d]) * kr[d];
          m = std::max(m, w[size_t(s - lo)] = acc * scale);
        }
        for (double& x : w) sum += (x = std::exp(x - m));
        R* ar = a.data<R>() + (b * H + h) * D;
        for (int64_t s = lo; s <= p; ++s) {
          const R* vr = v_cache.data<R>() + ((b * rows + (ring ? s % rows : s)) * Hkv + hk) * D;
          const R wt = R(w[size_t(s - lo)] / sum);
          for (int64_t d = 0; d < D; ++d) ar[d] += wt * vr[d];
        }
      }
  });
  return a;
}

}  // namespace lt2::cpu
