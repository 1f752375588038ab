// Built when no CUDA compiler is found: the engine reports that no GPU backend exists.
#include "core/error.h"
#include "cuda/cuda_ops.h"
#include "cuda/dsa_floor.h"
#include "cuda/linear_narrow.h"
#include "cuda/runtime.h"

namespace lt2::cuda {
namespace {
[[noreturn]] void no_cuda() { fail("this lt2 was built without CUDA (no nvcc was found at build time)"); }
}  // namespace
int device_count() { return 0; }
std::string device_name(int) { return "none (built without CUDA)"; }
bool available() { return false; }
void* alloc(size_t) { no_cuda(); }
void release(void*) {}
MemoryStats memory_stats() { return {}; }
void reset_peak_memory() {}
void copy_to_device(void*, const void*, size_t) { no_cuda(); }
void copy_to_host(void*, const void*, size_t) { no_cuda(); }
void copy_on_device(void*, const void*, size_t) { no_cuda(); }
void memset_zero(void*, size_t) { no_cuda(); }
void synchronize() {}
uint64_t wait_count() { return 0; }
double wait_seconds() { return 0; }
uint64_t launch_count() { return 0; }
void count_launch() {}
void cast(const void*, int, void*, int, int64_t) { no_cuda(); }
void add_inplace(void*, const void*, int, int64_t) { no_cuda(); }
}  // namespace lt2::cuda

namespace lt2::cuda {
double measure_gemm_tflops() { no_cuda(); }
double measure_copy_gbps() { no_cuda(); }
double measure_l2_read_tbps() { no_cuda(); }
Tensor gather_rows_sum(const Tensor&, const Tensor&, const Tensor&) { no_cuda(); }
void scatter_rows_add(const Tensor&, const Tensor&, Tensor&) { no_cuda(); }
double time_ms(const std::function<void()>&, int, int) { no_cuda(); }
bool narrow_linear_fits(const Tensor&, int64_t, int64_t) { return false; }  // the GPU tests name it
bool conv_silu_l2norm_fused(const Tensor&, const Tensor&, int64_t) { return false; }  // and this
}  // namespace lt2::cuda
