// Decode attention: one query per (sequence, head) against its KV cache. One block per
// (sequence, head); each warp walks every kWarps-th key with an online softmax (running max,
// sum and a D-vector accumulator spread over the lanes), then the warps' partial results are
// merged. Work is O(visible keys x D) per head, reading each cached row once.
#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"

namespace lt2::cuda {

namespace {
constexpr int kWarps = 4;
constexpr int kMaxD = 256;              // head sizes up to 256
constexpr int kPerLane = kMaxD / 32;    // accumulator entries per lane

template <class T>
__global__ void attention_decode_kernel(const T* q, const T* kc, const T* vc, const int32_t* positions, int64_t H,
                                        int64_t Hkv, int64_t rows, int64_t D, int64_t window, bool ring, float scale,
                                        T* out) {
  const int64_t b = blockIdx.x / H, h = blockIdx.x % H, hk = h / (H / Hkv);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t p = positions[b], lo = window > 0 ? max(int64_t(0), p - window + 1) : 0;
  const T* qr = q + (b * H + h) * D;
  float qv[kPerLane], acc[kPerLane];
  for (int j = 0; j < kPerLane; ++j) {
    const int64_t d = lane + 32 * j;
    qv[j] = d < D ? ld(qr[d]) * scale : 0.f;
    acc[j] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int64_t s = lo + warp; s <= p; s += kWarps) {
    const int64_t row = ring ? s % rows : s;
    const T* kr = kc + ((b * rows + row) * Hkv + hk) * D;
    const T* vr = vc + ((b * rows + row) * Hkv + hk) * D;
    float dot = 0.f;
    for (int j = 0; j < kPerLane; ++j) {
      const int64_t d = lane + 32 * j;
      if (d < D) dot += qv[j] * ld(kr[d]);
    }
    dot = warp_sum(dot);
    const float m_new = fmaxf(m, dot), corr = expf(m - m_new), w = expf(dot - m_new);
    l = l * corr + w;
    for (int j = 0; j < kPerLane; ++j) {
      const int64_t d = lane + 32 * j;
      acc[j] = acc[j] * corr + (d < D ? w * ld(vr[d]) : 0.f);
    }
    m = m_new;
  }
  __shared__ float sm[kWarps], sl[kWarps], sacc[kWarps][kMaxD];
  if (lane == 0) sm[warp] = m, sl[warp] = l;
  for (int j = 0; j < kPerLane; ++j) {
    const int64_t d = lane + 32 * j;
    if (d < D) sacc[warp][d] = acc[j];
  }
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sm[w]);
  float denom = 0.f, f[kWarps];
  for (int w = 0; w < kWarps; ++w) {
    f[w] = sm[w] == -INFINITY ? 0.f : expf(sm[w] - M);  // a warp that saw no key adds nothing
    denom += sl[w] * f[w];
  }
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.f;
    for (int w = 0; w < kWarps; ++w) o += sacc[w][d] * f[w];
    out[(b * H + h) * D + d] = st<T>(o / denom);
  }
}
}  // namespace

Tensor attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& positions,
                        int64_t window, bool ring, double scale) {
  expect_cuda({&q, &k_cache, &v_cache, &positions}, "attention_decode");
  check_same_dtype(q, k_cache, "attention_decode");
  check_same_dtype(q, v_cache, "attention_decode");
  const int64_t B = q.dim(0), H = q.dim(2), D = q.dim(3), rows = k_cache.dim(1), Hkv = k_cache.dim(2);
  LT2_CHECK(q.ndim() == 4 && q.dim(1) == 1 && k_cache.shape() == v_cache.shape() && k_cache.dim(0) == B &&
                k_cache.dim(3) == D && H % Hkv == 0,
            "attention_decode: q ", shape_str(q.shape()), " does not match the cache ", shape_str(k_cache.shape()));
  LT2_CHECK(D <= kMaxD, "attention_decode: head size ", D, " above ", kMaxD);
  LT2_CHECK(positions.dtype() == DType::I32 && positions.numel() == B, "attention_decode: positions must be I32 [", B, "]");
  Tensor out = Tensor::empty(q.shape(), q.dtype(), Device::CUDA);
  if (B == 0) return out;
  dispatch_float(q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    attention_decode_kernel<T><<<unsigned(B * H), 32 * kWarps, 0, stream()>>>(
        q.data<T>(), k_cache.data<T>(), v_cache.data<T>(), positions.data<int32_t>(), H, Hkv, rows, D, window, ring,
        float(scale), out.data<T>());
  });
  check_launch("attention_decode");
  return out;
}

}  // namespace lt2::cuda
