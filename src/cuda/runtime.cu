// Device queries, the stream, the caching allocator and Tensor's copy / cast / add kernels.
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <type_traits>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/op_util.cuh"

namespace lt2::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;  // no driver / no GPU: CPU only
  return n;
}
std::string device_name(int index) {
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, index) != cudaSuccess) return "unavailable";
  return p.name;
}
bool available() {
  static const bool yes = device_count() > 0;
  return yes;
}

namespace {
bool g_stream_created = false;  // no GPU work has happened before the first stream() call
}  // namespace

cudaStream_t stream() {
  static cudaStream_t s = [] {
    LT2_CHECK(available(), "no CUDA GPU is available");
    cudaStream_t st;
    LT2_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    g_stream_created = true;
    return st;
  }();
  return s;
}

// ---- caching allocator ----------------------------------------------------------
// Sizes are rounded up (512 B steps below 1 MiB, then 1/8 of the power of two above), and
// freed blocks wait in per-size free lists. One stream means stream order = host order.
namespace {
struct Pool {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;  // rounded size -> block
  std::map<void*, size_t> sizes;            // live and cached blocks
  MemoryStats stats;
};
Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: tensors may be released during static destruction
  return *p;
}
size_t round_size(size_t n) {
  if (n <= (size_t(1) << 20)) return (n + 511) & ~size_t(511);
  size_t p2 = size_t(1) << (63 - __builtin_clzll(n));
  size_t step = p2 / 8;
  return (n + step - 1) / step * step;
}
}  // namespace

void* alloc(size_t bytes) {
  Pool& p = pool();
  const size_t n = round_size(std::max<size_t>(bytes, 1));
  std::lock_guard<std::mutex> lock(p.mu);
  void* ptr = nullptr;
  auto it = p.free_blocks.find(n);
  if (it != p.free_blocks.end()) {
    ptr = it->second;
    p.free_blocks.erase(it);
  } else {
    stream();  // creates the stream (and checks for a GPU) before the first allocation
    cudaError_t err = cudaMalloc(&ptr, n);
    if (err != cudaSuccess) {  // give the cached blocks back to the driver and try once more
      (void)cudaGetLastError();
      for (auto& [sz, b] : p.free_blocks) {
        cudaFree(b);  // waits for the GPU, so no kernel still uses the block
        p.sizes.erase(b);
      }
      p.free_blocks.clear();
      err = cudaMalloc(&ptr, n);
      if (err != cudaSuccess)
        fail(cat("out of GPU memory allocating ", bytes, " bytes (", p.stats.in_use, " bytes in use)"));
    }
    p.sizes[ptr] = n;
  }
  p.stats.in_use += n;
  p.stats.peak = std::max(p.stats.peak, p.stats.in_use);
  return ptr;
}

void release(void* ptr) {
  if (!ptr) return;
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  const size_t n = p.sizes.at(ptr);
  p.stats.in_use -= n;
  p.free_blocks.emplace(n, ptr);
}

MemoryStats memory_stats() {
  std::lock_guard<std::mutex> lock(pool().mu);
  return pool().stats;
}
void reset_peak_memory() {
  std::lock_guard<std::mutex> lock(pool().mu);
  pool().stats.peak = pool().stats.in_use;
}

// ---- copies -----------------------------------------------------------------------
// A copy from or to pageable host memory returns only when the stream has reached it, so the
// copy itself is part of the wait the counters measure.
namespace {
std::atomic<uint64_t> g_waits{0}, g_wait_ns{0};
template <class F>
void host_wait(F&& f) {
  ++g_waits;
  const auto t0 = std::chrono::steady_clock::now();
  f();
  if (g_stream_created) LT2_CUDA_CHECK(cudaStreamSynchronize(stream()));
  const auto waited = std::chrono::steady_clock::now() - t0;
  g_wait_ns += uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(waited).count());
}
std::atomic<uint64_t> g_launches{0};
}  // namespace
void copy_to_device(void* dst, const void* src, size_t bytes) {
  // src is pageable host memory that the caller may free at once: wait for the copy.
  host_wait([&] { LT2_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream())); });
}
void copy_to_host(void* dst, const void* src, size_t bytes) {
  host_wait([&] { LT2_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream())); });
}
void copy_on_device(void* dst, const void* src, size_t bytes) {
  LT2_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
}
void memset_zero(void* dst, size_t bytes) { LT2_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream())); }
void synchronize() {
  host_wait([] {});
}
uint64_t wait_count() { return g_waits.load(); }
double wait_seconds() { return double(g_wait_ns.load()) * 1e-9; }
void count_launch() { ++g_launches; }
uint64_t launch_count() { return g_launches.load(); }

// ---- cast and add -----------------------------------------------------------------
void cast(const void* src, int src_dtype, void* dst, int dst_dtype, int64_t n) {
  if (n == 0) return;
  dispatch_float(DType(src_dtype), [&](auto s) {
    dispatch_float(DType(dst_dtype), [&](auto d) {
      using S = decltype(s);
      using D = decltype(d);
      using Wide = std::conditional_t<(sizeof(S) > sizeof(D)), S, D>;
      ew_map<Wide>(n, {src, dst}, Cast<S, D>{static_cast<const S*>(src), static_cast<D*>(dst)}, "cast");
    });
  });
}

void add_inplace(void* a, const void* b, int dtype, int64_t n) {
  if (n == 0) return;
  dispatch_float(DType(dtype), [&](auto t) {
    using T = decltype(t);
    ew_map<T>(n, {a, b}, Add<T>{static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(a)}, "add_");
  });
}

}  // namespace lt2::cuda
