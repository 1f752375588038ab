#pragma once
// Tensor memory access (Hopper): host-side tensor maps for cp.async.bulk.tensor, built through
// the driver's cuTensorMapEncodeTiled (fetched from the runtime, so lt2 does not link libcuda).
// A map describes a strided global array and the box one copy moves; it holds the base address,
// so it is built per call (a few microseconds on the host) and passed to the kernel as a
// __grid_constant__ parameter.
#include <cuda.h>

#include <cstdint>

namespace lt2::cuda {

// A BF16 array of rank dims (innermost first) with byte strides for dims 1.., copied in boxes of
// box[] elements into shared memory with the 128-byte swizzle that wgmma's operand layout uses
// (box[0] * 2 must be 128 bytes at most); elements past the array's end arrive as zeros.
CUtensorMap tma_map_bf16_sw128(const void* base, int rank, const uint64_t* dims, const uint64_t* strides_bytes,
                               const uint32_t* box);

}  // namespace lt2::cuda
