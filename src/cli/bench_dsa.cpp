#include "cli/bench_dsa.h"

#include <cmath>

#include "cli/bench_inputs.h"
#include "cuda/dsa_floor.h"
#include "cuda/runtime.h"
#include "ops/ops.h"

namespace lt2::cli {

DsaTimes time_dsa(const DsaBenchShape& s, DType dt, int warmup, int reps) {
  const Tensor q = normal_on_gpu({s.B, s.L, s.H, s.D}, 11, dt), k = normal_on_gpu({s.B, s.L, s.Hkv, s.D}, 12, dt);
  const Tensor v = normal_on_gpu({s.B, s.L, s.Hkv, s.D}, 13, dt), dout = normal_on_gpu({s.B, s.L, s.H, s.D}, 14, dt);
  const Tensor qI = normal_on_gpu({s.B, s.L, s.HI, s.dI}, 15, dt), kI = normal_on_gpu({s.B, s.L, s.dI}, 16, dt);
  const Tensor w = normal_on_gpu({s.B, s.L, s.HI}, 17, dt);
  const double scale = 1.0 / std::sqrt(double(s.D)), ws = 1.0 / std::sqrt(double(s.HI));
  Tensor idx, Isel, o, lse, dq, dk, dv, dqI, dkI, dw;
  Tensor kl = Tensor::zeros({1}, DType::F32, Device::CUDA);
  auto forward = [&] {
    idx = ops::dsa_topk(ops::dsa_indexer_scores(qI, kI, w, ws), s.k, &Isel);
    o = ops::sparse_attention(q, k, v, idx, scale, &lse);
  };
  DsaTimes t;
  t.fwd_ms = cuda::time_ms(forward, warmup, reps);
  t.all_ms = cuda::time_ms(
      [&] {
        forward();
        ops::sparse_attention_backward(q, k, v, o, lse, idx, dout, scale, dq, dk, dv);
        const Tensor dI = ops::dsa_indexer_kl(Isel, q, k, lse, idx, scale, kl);
        ops::dsa_indexer_scores_backward(qI, kI, w, ws, idx, dI, dqI, dkI, dw);
      },
      warmup, reps);
  // Where the time goes: each op alone on the inputs the step above left.
  Tensor I, dI;
  t.parts.emplace_back("scores", cuda::time_ms([&] { I = ops::dsa_indexer_scores(qI, kI, w, ws); }, warmup, reps));
  t.parts.emplace_back("top-k", cuda::time_ms([&] { idx = ops::dsa_topk(I, s.k, &Isel); }, warmup, reps));
  t.parts.emplace_back("attention", cuda::time_ms([&] { o = ops::sparse_attention(q, k, v, idx, scale, &lse); },
                                                  warmup, reps));
  t.parts.emplace_back("attention bwd", cuda::time_ms(
      [&] { ops::sparse_attention_backward(q, k, v, o, lse, idx, dout, scale, dq, dk, dv); }, warmup, reps));
  t.parts.emplace_back("KL", cuda::time_ms([&] { dI = ops::dsa_indexer_kl(Isel, q, k, lse, idx, scale, kl); },
                                           warmup, reps));
  t.parts.emplace_back("indexer bwd", cuda::time_ms(
      [&] { ops::dsa_indexer_scores_backward(qI, kI, w, ws, idx, dI, dqI, dkI, dw); }, warmup, reps));
  Tensor rows;
  t.gather_ms = cuda::time_ms([&] { rows = cuda::gather_rows_sum(k, v, idx); }, warmup, reps);
  Tensor dk_rows = Tensor::zeros(rows.shape(), DType::F32, Device::CUDA), dv_rows = Tensor::zeros_like(dk_rows);
  t.scatter_ms = cuda::time_ms(
      [&] {
        cuda::scatter_rows_add(rows, idx, dk_rows);
        cuda::scatter_rows_add(rows, idx, dv_rows);
      },
      warmup, reps);
  return t;
}

}  // namespace lt2::cli
