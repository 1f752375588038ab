// Decode attention: one query per (sequence, head) against its KV cache, flash-decoding style.
// The visible keys are cut into splits; a block per (sequence, head, split) has each warp walk
// every kWarps-th key with an online softmax (running max, sum and a D-vector accumulator over
// the lanes), and a second kernel merges the splits. Each cached row is read once.
#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"

namespace lt2::cuda {

namespace {
constexpr int kWarps = 4;
constexpr int kMaxD = 256;              // head sizes up to 256
constexpr int kPerLane = kMaxD / 32;    // accumulator entries per lane
constexpr int kKeysPerSplit = 256;      // long contexts are cut into splits of about this many keys

// Pass 1: block (b*H + h, split) runs an online softmax over its share of the visible keys
// and leaves (max, sum, unnormalised output) for its split in the scratch arrays.
template <class T>
__global__ void attention_decode_split_kernel(const T* q, const T* kc, const T* vc, const int32_t* positions,
                                              int64_t H, int64_t Hkv, int64_t rows, int64_t D, int64_t window, bool ring,
                                              float scale, float* part_m, float* part_l, float* part_acc) {
  const int64_t bh = blockIdx.x, b = bh / H, h = bh % H, hk = h / (H / Hkv);
  const int splits = gridDim.y, split = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t p = positions[b], lo = window > 0 ? max(int64_t(0), p - window + 1) : 0;
  const int64_t n = p - lo + 1, seg = (n + splits - 1) / splits;
  const int64_t first = lo + split * seg, last = min(p, first + seg - 1);  // empty when first > last
  const T* qr = q + (b * H + h) * D;
  float qv[kPerLane], acc[kPerLane];
  for (int j = 0; j < kPerLane; ++j) {
    const int64_t d = lane + 32 * j;
    qv[j] = d < D ? ld(qr[d]) * scale : 0.f;
    acc[j] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int64_t s = first + warp; s <= last; s += kWarps) {
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
  // Merge the warps of this block, then write the split's partial result.
  __shared__ float sm[kWarps], sl[kWarps], sacc[kWarps][kMaxD];
  if (lane == 0) sm[warp] = m, sl[warp] = l;
  for (int j = 0; j < kPerLane; ++j) {
    const int64_t d = lane + 32 * j;
    if (d < D) sacc[warp][d] = acc[j];
  }
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sm[w]);
  float f[kWarps], L = 0.f;
  for (int w = 0; w < kWarps; ++w) {
    f[w] = sm[w] == -INFINITY ? 0.f : expf(sm[w] - M);  // a warp that saw no key adds nothing
    L += sl[w] * f[w];
  }
  const int64_t slot = bh * splits + split;
  if (threadIdx.x == 0) part_m[slot] = M, part_l[slot] = L;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.f;
    for (int w = 0; w < kWarps; ++w) o += sacc[w][d] * f[w];
    part_acc[slot * D + d] = o;
  }
}

// Pass 2: one block per (b, h) rescales the splits to a common max and normalises.
template <class T>
__global__ void attention_decode_combine_kernel(const float* part_m, const float* part_l, const float* part_acc,
                                                int splits, int64_t D, T* out) {
  const int64_t bh = blockIdx.x;
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, part_m[bh * splits + s]);
  float L = 0.f;
  for (int s = 0; s < splits; ++s) {
    const float m = part_m[bh * splits + s];
    if (m != -INFINITY) L += part_l[bh * splits + s] * expf(m - M);
  }
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float m = part_m[bh * splits + s];
      if (m != -INFINITY) o += part_acc[(bh * splits + s) * D + d] * expf(m - M);
    }
    out[bh * D + d] = st<T>(o / L);
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
  // Enough splits that a long context spreads over the whole GPU (flash-decoding); the most
  // keys a query can see is the window, else the cache's rows.
  const int64_t max_keys = window > 0 ? std::min(window, ring ? rows : window) : rows;
  const int splits = int(std::clamp<int64_t>((max_keys + kKeysPerSplit - 1) / kKeysPerSplit, 1, 256));
  Tensor part_m = Tensor::empty({B * H, splits}, DType::F32, Device::CUDA);
  Tensor part_l = Tensor::empty({B * H, splits}, DType::F32, Device::CUDA);
  Tensor part_acc = Tensor::empty({B * H, splits, D}, DType::F32, Device::CUDA);
  dispatch_float(q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    attention_decode_split_kernel<T><<<dim3(unsigned(B * H), unsigned(splits)), 32 * kWarps, 0, stream()>>>(
        q.data<T>(), k_cache.data<T>(), v_cache.data<T>(), positions.data<int32_t>(), H, Hkv, rows, D, window, ring,
        float(scale), part_m.data<float>(), part_l.data<float>(), part_acc.data<float>());
    check_launch("attention_decode_split");
    attention_decode_combine_kernel<T><<<unsigned(B * H), 128, 0, stream()>>>(
        part_m.data<float>(), part_l.data<float>(), part_acc.data<float>(), splits, D, out.data<T>());
    check_launch("attention_decode_combine");
  });
  return out;
}

}  // namespace lt2::cuda
