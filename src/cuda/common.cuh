#pragma once
// Shared pieces of the CUDA kernels: error checks, the stream, dtype dispatch and
// float <-> storage conversions. Kernels store F32 or BF16 and compute in fp32.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/error.h"
#include "core/tensor.h"
#include "cuda/runtime.h"

namespace lt2::cuda {

using bf16 = __nv_bfloat16;

cudaStream_t stream();

#define LT2_CUDA_CHECK(expr)                                                                      \
  do {                                                                                            \
    cudaError_t err_ = (expr);                                                                    \
    if (err_ != cudaSuccess) ::lt2::fail(::lt2::cat("CUDA error in ", #expr, ": ", cudaGetErrorString(err_))); \
  } while (0)

// Call after each launch: reports a bad launch configuration at once (asynchronous
// kernel faults surface at the next synchronize()).
inline void check_launch(const char* kernel) {
  count_launch();
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) fail(cat("CUDA kernel ", kernel, " failed to launch: ", cudaGetErrorString(err)));
}

inline int64_t blocks_for(int64_t n, int threads) { return (n + threads - 1) / threads; }

// Loads and stores in fp32 whatever the storage type.
__device__ __forceinline__ float ld(float x) { return x; }
__device__ __forceinline__ float ld(bf16 x) { return __bfloat162float(x); }
template <class T> __device__ __forceinline__ T st(float x);
template <> __device__ __forceinline__ float st<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 st<bf16>(float x) { return __float2bfloat16(x); }

// VEC consecutive elements moved as one 8- or 16-byte access, converted to / from fp32. The
// caller checks alignment first (vec_aligned).
template <class T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};
template <int VEC, class T>
__device__ __forceinline__ void ld_vec(const T* p, float (&out)[VEC]) {
  const Pack<T, VEC> pk = *reinterpret_cast<const Pack<T, VEC>*>(p);
#pragma unroll
  for (int i = 0; i < VEC; ++i) out[i] = ld(pk.v[i]);
}
// The 32-bit words of the converted values, low element first (how they sit in memory).
__device__ __forceinline__ unsigned word_of(float a) { return __float_as_uint(a); }
__device__ __forceinline__ unsigned word_of(bf16 lo, bf16 hi) {
  return unsigned(__bfloat16_as_ushort(lo)) | (unsigned(__bfloat16_as_ushort(hi)) << 16);
}
// The values go out as 32-bit words in one 16-, 8- or 4-byte store each (global memory only):
// nvcc split a plain store of the pack (struct or uint4) into 2- and 4-byte stores (RoPE's
// PTX: 7 or 4 stores for one 16-byte pack of bf16).
template <int VEC, class T>
__device__ __forceinline__ void st_vec(T* p, const float (&in)[VEC]) {
  constexpr int kWords = int(sizeof(T)) * VEC / 4;
  if constexpr (kWords == 0) {  // one bf16
    *p = st<T>(in[0]);
  } else {
    unsigned w[kWords];
#pragma unroll
    for (int j = 0; j < kWords; ++j) {
      if constexpr (sizeof(T) == 4) w[j] = word_of(in[j]);
      else w[j] = word_of(st<T>(in[2 * j]), st<T>(in[2 * j + 1]));
    }
    // __stwb: the plain (write-back) global store as one instruction.
    if constexpr (kWords % 4 == 0) {
#pragma unroll
      for (int j = 0; j < kWords; j += 4)
        __stwb(reinterpret_cast<uint4*>(p) + j / 4, make_uint4(w[j], w[j + 1], w[j + 2], w[j + 3]));
    } else if constexpr (kWords == 2) {
      __stwb(reinterpret_cast<uint2*>(p), make_uint2(w[0], w[1]));
    } else {
      static_assert(kWords == 1, "st_vec: 2, 4, 8, 16 or 32 bytes");
      __stwb(reinterpret_cast<unsigned*>(p), w[0]);
    }
  }
}
// Whether every address is a multiple of `bytes`.
inline bool aligned_to(size_t bytes, std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % bytes != 0) return false;
  return true;
}
// Whether rows of n elements of elem_bytes at these addresses allow VEC-wide access.
inline bool vec_aligned(int vec, int64_t n, size_t elem_bytes, std::initializer_list<const void*> ptrs) {
  return n % vec == 0 && aligned_to(vec * elem_bytes, ptrs);
}

// Dynamic shared memory above the 48 KiB default needs an explicit opt-in per kernel.
template <class K>
inline void allow_smem(K kernel, size_t bytes) {
  LT2_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

// Calls f(float{}) or f(bf16{}) by dtype; the GPU stores F32 or BF16 only.
template <class F>
void dispatch_float(DType dt, F&& f) {
  if (dt == DType::F32) f(float{});
  else if (dt == DType::BF16) f(bf16{});
  else fail(cat("CUDA ops take F32 or BF16 tensors, got ", dtype_name(dt)));
}

// Every tensor an op touches must live on the GPU (a CPU tensor here is an engine bug).
inline void expect_cuda(std::initializer_list<const Tensor*> ts, const char* op) {
  for (const Tensor* t : ts)
    if (t->defined() && t->device() != Device::CUDA) fail(cat(op, ": a CPU tensor was passed to the CUDA backend"));
}
inline void expect_f32(const Tensor& t, const char* op, const char* what) {
  if (t.defined() && t.dtype() != DType::F32) fail(cat(op, ": ", what, " must be F32 on CUDA, got ", dtype_name(t.dtype())));
}

// Block-wide sum of one float per thread (blockDim.x a multiple of 32, at most 1024).
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float part[32];
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // part[] may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  const int nw = (blockDim.x + 31) >> 5;
  v = lane < nw ? part[lane] : 0.f;
  return warp_sum(v);
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float block_max(float v) {
  __shared__ float part[32];
  v = warp_max(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) part[warp] = v;
  __syncthreads();
  const int nw = (blockDim.x + 31) >> 5;
  v = lane < nw ? part[lane] : -INFINITY;
  return warp_max(v);
}

}  // namespace lt2::cuda
