// Tensor maps for TMA copies (see tma.h).
#include "cuda/tma.h"

#include <cuda_runtime.h>

#include "cuda/common.cuh"

namespace lt2::cuda {
namespace {

using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                 const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                 CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

EncodeTiled encode_tiled() {
  static const EncodeTiled fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult found{};
    // 12.0: the first driver with the function; its signature has not changed since. The
    // versioned lookup exists from runtime 12.5 on (the unversioned one is deprecated in 13).
#if CUDART_VERSION >= 12050
    LT2_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &found));
#else
    LT2_CUDA_CHECK(cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &p, cudaEnableDefault, &found));
#endif
    LT2_CHECK(found == cudaDriverEntryPointSuccess && p, "the CUDA driver has no cuTensorMapEncodeTiled (needs 12.0+)");
    return reinterpret_cast<EncodeTiled>(p);
  }();
  return fn;
}

}  // namespace

CUtensorMap tma_map_bf16_sw128(const void* base, int rank, const uint64_t* dims, const uint64_t* strides_bytes,
                               const uint32_t* box) {
  LT2_CHECK(rank >= 1 && rank <= 5, "TMA: rank ", rank, " outside 1..5");
  cuuint32_t elem_strides[5] = {1, 1, 1, 1, 1};
  CUtensorMap map{};
  const CUresult r = encode_tiled()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, cuuint32_t(rank), const_cast<void*>(base),
                                    dims, strides_bytes, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                    CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                    CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  LT2_CHECK(r == CUDA_SUCCESS, "TMA: cuTensorMapEncodeTiled failed (error ", int(r), ")");
  return map;
}

}  // namespace lt2::cuda
