#pragma once
// The CUDA runtime as the rest of the engine sees it: is there a GPU, device memory from a
// caching allocator, copies, and the one stream every kernel runs on. Without CUDA the
// queries say "no GPU" and the memory functions fail with a clear message (no CUDA tensor
// can exist in such a build, so they are never reached in practice).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace lt2::cuda {
int device_count();  // 0 when built without CUDA or when no usable GPU is present
std::string device_name(int index);
bool available();    // device_count() > 0, cached

// Device memory. Freed blocks are kept for reuse (cudaMalloc/cudaFree synchronise the GPU);
// every kernel runs on one stream, so a block freed by the host is safe to hand out again.
void* alloc(size_t bytes);
void release(void* p);
struct MemoryStats { size_t in_use = 0, peak = 0; };
MemoryStats memory_stats();
void reset_peak_memory();

// Copies on the stream; copies to the host wait for the stream.
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host(void* dst, const void* src, size_t bytes);
void copy_on_device(void* dst, const void* src, size_t bytes);
void memset_zero(void* dst, size_t bytes);
void synchronize();  // waits for the stream; raises the first asynchronous kernel error
// How many times the host has waited for the stream (synchronize(), host <-> device copies):
// between two waits the host can run ahead of the GPU, at a wait the GPU drains and idles
// until the host issues again (what a CUDA graph of the step would save).
uint64_t wait_count();
double wait_seconds();  // the time the host has spent in those waits
// Kernels the host has issued (lt2's launches and its cuBLASLt calls): each costs the host
// a few microseconds, however little work it carries.
uint64_t launch_count();
void count_launch();

// Element-wise helpers Tensor needs (dtype codes as in core/tensor.h's DType).
void cast(const void* src, int src_dtype, void* dst, int dst_dtype, int64_t n);
void add_inplace(void* a, const void* b, int dtype, int64_t n);
}  // namespace lt2::cuda

namespace lt2::cuda {
// Ceilings for benchmark reports, measured with CUDA events (median of 5 after warm-up):
// bf16 GEMM 8192^3 in TFLOP/s, and device-to-device copy of 1 GiB in GB/s (read + write).
double measure_gemm_tflops();
double measure_copy_gbps();
// Times fn() on the stream with CUDA events: median milliseconds of `reps` after `warmup`.
double time_ms(const std::function<void()>& fn, int warmup = 2, int reps = 5);
}  // namespace lt2::cuda
