// DSA's sparse attention as a masked flash attention. Gathering each query's k keys costs
// ~k * H * D * 4 bytes of scattered reads per query (dsa.cu); the tensor-core flash kernels
// instead walk every causal key tile and drop the keys outside the index set with a bitmask,
// which does L / (2k) times the pairs but with no gather. Measured on an H100 (bench/RESULTS.md)
// the masked path is 2-6x faster for L / k from 4 to 32; its cost grows as L^2 and the gathers'
// as L k, so it takes every problem with L <= kMaxDenseRatio * k that the flash kernels support
// (128: an extrapolation from those points, not a measured crossover). The indexer's KL target
// follows the same rule: the head-averaged probabilities of every causal pair on the tensor
// cores (flash_head_mean_probs), read at the selected keys. The indexer's backward goes dense
// (dsa_indexer_dense.cu) up to L / k = 64 where its tensor-core kernels apply (BF16, d_I a
// multiple of 16), and only for nearly dense sets on its fp32 kernels.
// LT2_DSA_PATH=gather or masked forces one path (tests and benchmarks time both).
#include "cuda/dsa_masked.h"

#include <cstdlib>
#include <string>

#include "cuda/common.cuh"
#include "cuda/flash_attention.h"

namespace lt2::cuda {

namespace {

constexpr int64_t kMaxDenseRatio = 128;
// The indexer backward's dense fp32 SIMT kernels, measured on an H100, beat the gather kernels at
// L / k = 4 (4.5 vs 6.6 ms, B8 L2048 k512), lose at 8 (4.4 vs 4.1 ms, k256) and by far at 32
// (29.6 vs 7.9 ms, L16K k512). Its tensor-core kernels win at every ratio measured: 0.81 vs
// 7.35 ms at L / k = 8 (B16 L2048 k256), 3.87 vs 8.28 ms at 32 and 3.79 vs 4.58 ms at 64
// (L16K k512, k256). The dense set always goes dense.
constexpr int64_t kMaxDenseIndexerRatio = 4;
constexpr int64_t kMaxDenseIndexerRatioMma = 64;
// The dense KL target and the dense indexer gradient are [B, L, L] fp32 matrices, like the
// indexer scores the forward keeps.
constexpr double kMaxDenseMatrixBytes = 4.0 * (1 << 30);

// Row (b, t): one thread per slot ORs its key's bit in (OR commutes: the mask is the same
// whatever the order). Empty slots (< 0) set nothing.
__global__ void dsa_key_mask_kernel(const int32_t* __restrict__ idx, int64_t slots, int64_t k, int64_t words,
                                    uint32_t* __restrict__ mask) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < slots; i += int64_t(gridDim.x) * blockDim.x) {
    const int32_t s = idx[i];
    if (s >= 0) atomicOr(mask + (i / k) * words + (s >> 5), 1u << (s & 31));
  }
}

}  // namespace

namespace {
// The forced path, if any ("gather" or "masked"); read per call: tests switch it.
std::string forced_path() {
  const char* force = std::getenv("LT2_DSA_PATH");
  return force ? force : "";
}
}  // namespace

bool dsa_use_masked_flash(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& idx, const Tensor* o,
                          const Tensor* dout) {
  const std::string force = forced_path();
  if (force == "gather" || !flash_supported(q, k, v, o, dout) || k.dim(1) != q.dim(1)) return false;
  return force == "masked" || q.dim(1) <= kMaxDenseRatio * idx.dim(2);
}

// The rule for the paths that hold a [B, L, L] fp32 matrix: not forced to gather, within the
// memory bound, and the key sets at most max_ratio times sparser than dense (or dense: idx
// undefined).
static bool dense_matrix_pays(int64_t B, int64_t L, const Tensor& idx, int64_t max_ratio) {
  const std::string force = forced_path();
  if (force == "gather" || double(B) * double(L) * double(L) * 4.0 > kMaxDenseMatrixBytes) return false;
  return force == "masked" || !idx.defined() || L <= max_ratio * idx.dim(2);
}

bool dsa_use_dense_target(const Tensor& q, const Tensor& k, const Tensor& idx) {
  return flash_supported(q, k, k) && k.dim(1) == q.dim(1) &&
         dense_matrix_pays(q.dim(0), q.dim(1), idx, kMaxDenseRatio);
}

bool dsa_use_dense_indexer_backward(const Tensor& qI, const Tensor& idx) {
  const int64_t ratio = indexer_dense_mma_supported(qI) ? kMaxDenseIndexerRatioMma : kMaxDenseIndexerRatio;
  return qI.dim(3) <= kMaxDenseIndexerDim && dense_matrix_pays(qI.dim(0), qI.dim(1), idx, ratio);
}

Tensor dsa_key_mask(const Tensor& idx, int64_t L) {
  const int64_t B = idx.dim(0), k = idx.dim(2), words = flash_mask_words(L);
  Tensor mask = Tensor::zeros({B, idx.dim(1), words}, DType::I32, Device::CUDA);
  const int64_t slots = idx.numel();
  if (slots == 0) return mask;
  const int threads = 256;
  const unsigned blocks = unsigned(std::min<int64_t>((slots + threads - 1) / threads, 65535));
  dsa_key_mask_kernel<<<blocks, threads, 0, stream()>>>(idx.data<int32_t>(), slots, k, words,
                                                        reinterpret_cast<uint32_t*>(mask.data<int32_t>()));
  check_launch("dsa key mask");
  return mask;
}

}  // namespace lt2::cuda
